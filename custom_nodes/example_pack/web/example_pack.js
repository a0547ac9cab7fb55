// A frontend extension shipped by the example pack (served from its WEB_DIRECTORY).
// It tints the example nodes so they are easy to spot on the canvas.
import { app } from "../../scripts/app.js";

app.registerExtension({
  name: "loom.example_pack",
  async nodeCreated(node) {
    if (node.comfyClass && node.comfyClass.startsWith("Example")) {
      node.color = "#2a4d3a";
      node.bgcolor = "#335c45";
    }
  },
});

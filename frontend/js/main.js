// Entry point: builds the editor and exposes it as window.loomApp (and window.app, the name
// ComfyUI pack scripts use).
import * as LiteGraphModule from "../vendor/litegraph.es.js";
import { LoomApp } from "./app.js";
import { LoomUI } from "./ui.js";

const app = new LoomApp();
const ui = new LoomUI(app);
window.loomApp = app;
window.app = app;
window.LiteGraph = LiteGraphModule.LiteGraph;
window.loomLiteGraph = LiteGraphModule;

async function start() {
  await app.setup(document.getElementById("graph-canvas"), ui);
  ui.setTitle(app.workflowName);
  document.body.dataset.ready = "1";
}

start().catch((e) => {
  console.error(e);
  document.body.dataset.ready = "error";
  const msg = document.createElement("div");
  msg.className = "fatal";
  msg.textContent = `Loom could not start: ${e.message}`;
  document.body.append(msg);
});

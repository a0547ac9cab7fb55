// The built-in default workflow, used when the server has no txt2img template: the core
// text-to-image chain if the server has its nodes, else a tiny image chain that always runs.

import { apiPromptToWorkflow } from "./apiToGraph.js";

const TXT2IMG = {
  4: { class_type: "CheckpointLoaderSimple", inputs: {} },
  6: { class_type: "CLIPTextEncode", inputs: { text: "a red circle on a blue background", clip: ["4", 1] } },
  7: { class_type: "CLIPTextEncode", inputs: { text: "", clip: ["4", 1] } },
  5: { class_type: "EmptyLatentImage", inputs: { width: 128, height: 128, batch_size: 1 } },
  3: {
    class_type: "KSampler",
    inputs: { model: ["4", 0], positive: ["6", 0], negative: ["7", 0], latent_image: ["5", 0], seed: 42, steps: 20, cfg: 7 },
  },
  8: { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } },
  9: { class_type: "SaveImage", inputs: { images: ["8", 0], filename_prefix: "Loom" } },
};

const IMAGE_CHAIN = {
  1: { class_type: "EmptyImage", inputs: { width: 256, height: 256, batch_size: 1, color: 3355443 } },
  2: { class_type: "ImageInvert", inputs: { image: ["1", 0] } },
  3: { class_type: "SaveImage", inputs: { images: ["2", 0], filename_prefix: "Loom" } },
};

export function defaultWorkflow(objectInfo) {
  const fits = (prompt) => Object.values(prompt).every((n) => n.class_type in objectInfo);
  const prompt = fits(TXT2IMG) ? TXT2IMG : fits(IMAGE_CHAIN) ? IMAGE_CHAIN : {};
  return apiPromptToWorkflow(prompt);
}

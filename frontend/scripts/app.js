// For node-pack scripts written for ComfyUI: `import { app } from "../../scripts/app.js"`.
export const app = window.loomApp;

// For node-pack scripts written for ComfyUI: `import { api } from "../../scripts/api.js"`.
export const api = window.loomApp.api;

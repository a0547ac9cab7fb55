// The look: dark canvas, one colour per socket type, LiteGraph's drawing constants.
import { LGraphCanvas, LiteGraph } from "../vendor/litegraph.es.js";

// Socket/link colours per type (the types users meet most get fixed, distinct colours).
export const TYPE_COLORS = {
  MODEL: "#b39ddb",
  CLIP: "#ffd54f",
  VAE: "#ef5350",
  CONDITIONING: "#ffa726",
  LATENT: "#f06292",
  IMAGE: "#64b5f6",
  MASK: "#81c784",
  CONTROL_NET: "#4db6ac",
  UPSCALE_MODEL: "#9575cd",
  CLIP_VISION: "#a1887f",
  CLIP_VISION_OUTPUT: "#bcaaa4",
  STYLE_MODEL: "#90a4ae",
  SAMPLER: "#ec407a",
  SIGMAS: "#cddc39",
  NOISE: "#b0bec5",
  GUIDER: "#26c6da",
  INT: "#7fb3d5",
  FLOAT: "#aed581",
  STRING: "#80cbc4",
  BOOLEAN: "#ce93d8",
  COMBO: "#90a4ae",
  "*": "#bdbdbd",
};

/** A stable colour for a type nobody listed: hashed hue. */
export function typeColor(type) {
  const key = String(type);
  if (TYPE_COLORS[key]) return TYPE_COLORS[key];
  let h = 0;
  for (const ch of key) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return `hsl(${h % 360}, 55%, 62%)`;
}

export function applyTheme(canvas) {
  Object.assign(LiteGraph, {
    NODE_DEFAULT_COLOR: "#2b2f38",
    NODE_DEFAULT_BGCOLOR: "#22252c",
    NODE_DEFAULT_BOXCOLOR: "#666",
    NODE_TITLE_COLOR: "#c9d1d9",
    NODE_SELECTED_TITLE_COLOR: "#ffffff",
    NODE_TEXT_COLOR: "#aab2bd",
    NODE_BOX_OUTLINE_COLOR: "#e6edf3",
    WIDGET_BGCOLOR: "#1a1d23",
    WIDGET_OUTLINE_COLOR: "#3a3f4b",
    WIDGET_TEXT_COLOR: "#d7dde4",
    WIDGET_SECONDARY_TEXT_COLOR: "#8b949e",
    LINK_COLOR: "#8aa",
    NODE_ERROR_COLOUR: "#ff4d4f",
    release_link_on_empty_shows_menu: false,
    middle_click_slot_add_default_node: true,
    snaps_for_comfy: true,
    alwaysRepeatWarnings: false,
  });
  LiteGraph.debug = false;
  canvas.clear_background_color = "#16181d";
  canvas.background_image = null;
  canvas.render_shadows = false;
  canvas.render_canvas_border = false;
  canvas.render_connection_arrows = false;
  canvas.links_render_mode = LiteGraph.SPLINE_LINK;
  canvas.show_info = false;
  canvas.low_quality_zoom_threshold = 0.45;
  canvas.allow_searchbox = false; // our own search dialog takes double-clicks and link drops
  for (const [type, color] of Object.entries(TYPE_COLORS)) {
    LGraphCanvas.link_type_colors[type] = color;
    canvas.default_connection_color_byType[type] = color;
  }
}

/** Registers a colour for a type seen in /object_info that has none yet. */
export function ensureTypeColor(canvas, type) {
  if (!type || LGraphCanvas.link_type_colors[type]) return;
  const color = typeColor(type);
  LGraphCanvas.link_type_colors[type] = color;
  canvas.default_connection_color_byType[type] = color;
}

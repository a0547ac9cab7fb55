// Reading /object_info entries: which inputs are widgets, in which order their values are stored.
// The node builder (nodeTypes.js) and the API converter (convert.js) both use widgetLayout(), so the
// order of `widgets_values` and the names it maps to can never drift apart.

export const WIDGET_TYPES = new Set(["INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"]);

// Frontend-only node types: never sent to the server (the dialect's rule).
export const VIRTUAL_TYPES = new Set(["Reroute", "Note", "MarkdownNote", "PrimitiveNode"]);

export const MODE_ALWAYS = 0;
export const MODE_NEVER = 2; // muted
export const MODE_BYPASS = 4;

/** Declared inputs in declaration order: [{name, type, options, section}] (hidden ones left out). */
export function inputSpecs(def) {
  const specs = [];
  for (const section of ["required", "optional"]) {
    const entries = def.input?.[section] ?? {};
    const order = def.input_order?.[section] ?? Object.keys(entries);
    for (const name of order) {
      const entry = entries[name];
      if (entry === undefined) continue;
      const [type, options] = Array.isArray(entry) ? [entry[0], entry[1] ?? {}] : [entry, {}];
      specs.push({ name, type, options: options ?? {}, section });
    }
  }
  return specs;
}

/** The widget type of an input ("COMBO" for a list or COMBO entry), honouring `widgetType`. */
export function widgetKind(spec) {
  const t = typeof spec.options?.widgetType === "string" ? spec.options.widgetType : spec.type;
  if (Array.isArray(t) || t === "COMBO") return "COMBO";
  return t;
}

export function comboValues(spec) {
  if (Array.isArray(spec.type)) return spec.type;
  return spec.options?.options ?? [];
}

export function isWidgetSpec(spec) {
  if (spec.options?.forceInput) return false;
  return WIDGET_TYPES.has(widgetKind(spec));
}

/** Seeds get a control_after_generate companion (by option, or by ComfyUI's classic names). */
export function hasSeedControl(spec) {
  const control = spec.options?.control_after_generate;
  if (control !== undefined && control !== null) return !!control;
  return widgetKind(spec) === "INT" && (spec.name === "seed" || spec.name === "noise_seed");
}

const UPLOAD_FLAGS = ["image_upload", "video_upload", "animated_image_upload"];
// Loaders that get an upload button even when the server leaves the flag out (as ComfyUI's frontend does).
const KNOWN_MEDIA_LOADERS = { LoadImage: "image", LoadImageMask: "image", LoadVideo: "file", LoadAudio: "audio" };

export function isUploadCombo(spec) {
  return widgetKind(spec) === "COMBO" && UPLOAD_FLAGS.some((f) => spec.options?.[f] === true);
}

/**
 * The widgets a node of this definition has, in order: one entry per stored widget value.
 * role "value" entries are sent to the server under `name`; the browser-only companions
 * (role "control", "filter", "upload") take a place in widgets_values but are never sent.
 * Same order as ComfyUI's frontend, so files from either editor map the same way.
 */
export function widgetLayout(def, classType = def?.name) {
  const layout = [];
  for (const section of ["required", "optional"]) {
    const specs = inputSpecs(def).filter((s) => s.section === section);
    for (const spec of specs) {
      if (!isWidgetSpec(spec)) continue;
      const kind = widgetKind(spec);
      layout.push({ name: spec.name, api: true, role: "value", kind, spec, choices: kind === "COMBO" ? comboValues(spec) : [] });
      if (hasSeedControl(spec)) {
        layout.push({ name: "control_after_generate", api: false, role: "control", spec, companionOf: spec.name });
        if (kind === "COMBO") layout.push({ name: "control_filter_list", api: false, role: "filter", spec, companionOf: spec.name });
      }
    }
    if (section === "required") {
      let media = specs.find(isUploadCombo);
      const fallback = KNOWN_MEDIA_LOADERS[classType];
      if (!media && fallback) media = specs.find((s) => s.name === fallback && isWidgetSpec(s) && widgetKind(s) === "COMBO");
      if (media) layout.push({ name: "upload", api: false, role: "upload", spec: media, companionOf: media.name });
    }
  }
  return layout;
}

/** Socket-only inputs (types that are not widgets, or forceInput). */
export function socketSpecs(def) {
  return inputSpecs(def).filter((s) => !isWidgetSpec(s));
}

export function outputSpecs(def) {
  const types = def.output ?? [];
  return types.map((type, i) => ({
    name: def.output_name?.[i] ?? (Array.isArray(type) ? "COMBO" : type),
    type: Array.isArray(type) ? "COMBO" : type,
    isList: !!def.output_is_list?.[i],
    tooltip: def.output_tooltips?.[i],
  }));
}

/** Socket type string for an input spec (combo inputs are typed COMBO). */
export function socketType(spec) {
  return widgetKind(spec) === "COMBO" ? "COMBO" : String(spec.type);
}

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

/** "COMBO" for a list or COMBO entry, else the type string. */
export function widgetKind(spec) {
  if (Array.isArray(spec.type) || spec.type === "COMBO") return "COMBO";
  return spec.type;
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
  if (widgetKind(spec) !== "INT") return false;
  if (spec.options?.control_after_generate !== undefined) return !!spec.options.control_after_generate;
  return spec.name === "seed" || spec.name === "noise_seed";
}

/**
 * The widgets a node of this definition has, in order; one entry per stored widget value.
 * `api` says whether the value is sent to the server under `name` (companions are not).
 */
export function widgetLayout(def) {
  const layout = [];
  for (const spec of inputSpecs(def)) {
    if (!isWidgetSpec(spec)) continue;
    layout.push({ name: spec.name, api: true, spec });
    if (hasSeedControl(spec)) layout.push({ name: "control_after_generate", api: false, spec, companionOf: spec.name });
    if (spec.options?.image_upload) layout.push({ name: "upload", api: false, spec, companionOf: spec.name });
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

// Widgets for node inputs, built from /object_info specs: numbers with min/max/step/round,
// strings (multiline ones as a DOM textarea), toggles, combos, the seed's control_after_generate
// companion and the image upload button.

import { addTextareaWidget } from "./domWidget.js";
import { comboValues, widgetKind } from "./nodeSpec.js";

export const SEED_CONTROL_VALUES = ["fixed", "increment", "decrement", "randomize"];
// Randomised seeds stay inside JavaScript's exact integers.
const MAX_SAFE_SEED = 2 ** 53 - 1;
const noop = () => {};

function numberOptions(spec, isInt) {
  const o = spec.options ?? {};
  const step = o.step ?? (isInt ? 1 : 0.1);
  let precision = o.precision;
  if (precision === undefined) {
    if (isInt) precision = 0;
    else {
      const ref = o.round ?? step;
      const decimals = String(ref).includes(".") ? String(ref).split(".")[1].length : 0;
      precision = Math.max(decimals, ref < 1 ? 2 : 1);
    }
  }
  return {
    min: o.min ?? (isInt ? -(2 ** 53) : -Infinity),
    max: o.max ?? (isInt ? 2 ** 53 : Infinity),
    step2: step,
    precision,
    round: o.round,
  };
}

/** Snaps a typed or dragged number to the widget's grid (INT: whole steps from min; FLOAT: round). */
export function snapNumber(value, options, isInt) {
  let v = Number(value);
  if (!Number.isFinite(v)) return options.min ?? 0;
  if (isInt) {
    const step = options.step2 || 1;
    const base = Number.isFinite(options.min) ? options.min : 0;
    v = Math.round((v - base) / step) * step + base;
  } else if (options.round) {
    v = Math.round(v / options.round) * options.round;
    v = Number(v.toFixed(options.precision ?? 6));
  }
  return Math.min(options.max, Math.max(options.min, v));
}

function defaultValue(spec) {
  const kind = widgetKind(spec);
  const o = spec.options ?? {};
  if (o.default !== undefined) return o.default;
  switch (kind) {
    case "INT":
    case "FLOAT":
      return 0;
    case "BOOLEAN":
      return false;
    case "STRING":
      return "";
    case "COMBO":
      return comboValues(spec)[0] ?? "";
    default:
      return null;
  }
}

/**
 * Adds the widget for one input spec to a node. Returns the widgets added (more than one for a
 * seed or an upload combo), in the order widgetLayout() promises.
 */
export function addInputWidgets(node, spec, app) {
  const kind = widgetKind(spec);
  const value = defaultValue(spec);
  const added = [];
  const o = spec.options ?? {};
  if (kind === "INT" || kind === "FLOAT") {
    const isInt = kind === "INT";
    const options = numberOptions(spec, isInt);
    const w = node.addWidget("number", spec.name, value, function (v) {
      const snapped = snapNumber(v, this.options, isInt);
      if (snapped !== this.value) this.value = snapped;
    }, options);
    added.push(w);
  } else if (kind === "BOOLEAN") {
    added.push(node.addWidget("toggle", spec.name, !!value, noop, { on: o.label_on ?? "true", off: o.label_off ?? "false" }));
  } else if (kind === "STRING") {
    if (o.multiline) added.push(addTextareaWidget(node, spec.name, value, { placeholder: o.placeholder ?? spec.name }));
    else added.push(node.addWidget("text", spec.name, value, noop, {}));
  } else if (kind === "COMBO") {
    const values = comboValues(spec);
    const w = node.addWidget("combo", spec.name, values.includes(value) ? value : (values[0] ?? value), noop, { values });
    added.push(w);
  }
  const main = added[0];
  if (main && o.tooltip) main.tooltip = o.tooltip;
  if (main) main.loomSpec = spec;
  return added;
}

export function addSeedControl(node, seedWidget, option) {
  const initial = SEED_CONTROL_VALUES.includes(option) ? option : "randomize";
  const control = node.addWidget("combo", "control_after_generate", initial, noop, { values: SEED_CONTROL_VALUES });
  control.loomCompanionOf = seedWidget.name;
  seedWidget.loomControl = control;
  return control;
}

/** Applies control_after_generate to every seed of the graph (called after a queue succeeds). */
export function applySeedControls(graph) {
  for (const node of graph._nodes) {
    if (node.mode === 2 || node.mode === 4) continue;
    for (const w of node.widgets ?? []) {
      const control = w.loomControl;
      if (!control || node.getSlotFromWidget(w)?.link != null) continue;
      const { min, max, step2 } = w.options;
      const lo = Number.isFinite(min) ? min : 0;
      const hi = Math.min(Number.isFinite(max) ? max : MAX_SAFE_SEED, MAX_SAFE_SEED);
      const step = step2 || 1;
      let v = Number(w.value);
      switch (control.value) {
        case "increment":
          v += step;
          break;
        case "decrement":
          v -= step;
          break;
        case "randomize":
          v = lo + Math.floor(Math.random() * ((hi - lo) / step + 1)) * step;
          break;
        default:
          continue;
      }
      w.value = Math.min(hi, Math.max(lo, v));
      if (node.isVirtualNode) w.callback?.call(w, w.value); // a primitive passes it on to its targets
    }
  }
  graph.setDirtyCanvas(true, false);
}

/** The image upload button and the preview of the chosen image (LoadImage's `image_upload`). */
export function addUploadWidget(node, comboWidget, app) {
  const upload = node.addWidget("button", "upload", "image", () => pickAndUpload(node, comboWidget, app), {});
  upload.label = "choose file to upload";
  upload.loomCompanionOf = comboWidget.name;
  const showPreview = () => {
    const name = comboWidget.value;
    if (!name) return;
    const [filename, subfolder] = splitSubfolder(name);
    app.execution.setNodeImages(node, [{ filename, subfolder, type: "input" }], { fromWidget: true });
  };
  const prev = comboWidget.callback;
  comboWidget.callback = function (...args) {
    prev?.apply(this, args);
    showPreview();
  };
  node.loomShowUploadPreview = showPreview;
  // Dropping an image file on the node uploads it, too.
  node.onDragOver = (e) => !!e.dataTransfer?.types?.includes("Files");
  node.onDragDrop = async (e) => {
    const file = [...(e.dataTransfer?.files ?? [])].find((f) => f.type.startsWith("image/"));
    if (!file) return false;
    await uploadFile(node, comboWidget, app, file);
    return true;
  };
  return upload;
}

function splitSubfolder(name) {
  const clean = String(name).replace(/ \[(input|output|temp)\]$/, "");
  const i = clean.lastIndexOf("/");
  return i < 0 ? [clean, ""] : [clean.slice(i + 1), clean.slice(0, i)];
}

function pickAndUpload(node, comboWidget, app) {
  const input = document.createElement("input");
  input.type = "file";
  input.accept = "image/png,image/jpeg,image/webp,image/gif,image/bmp";
  input.style.display = "none";
  input.addEventListener("change", async () => {
    if (input.files?.length) await uploadFile(node, comboWidget, app, input.files[0]);
    input.remove();
  });
  document.body.append(input);
  input.click();
}

export async function uploadFile(node, comboWidget, app, file) {
  try {
    const res = await app.api.uploadImage(file);
    const name = res.subfolder ? `${res.subfolder}/${res.name}` : res.name;
    const values = comboWidget.options.values;
    if (Array.isArray(values) && !values.includes(name)) values.push(name);
    comboWidget.value = name;
    comboWidget.callback?.(name);
    app.history.checkpoint();
    app.ui.toast(`Uploaded ${name}`);
  } catch (e) {
    app.ui.toast(`Upload failed: ${e.message}`, "error");
  }
}

// Turns /object_info into LiteGraph node classes: sockets typed and coloured, widgets built
// from input specs, every widget also reachable as an input socket (drop a link on a widget, or
// use "Convert to input"), output images drawn inside the node.

import { LGraphNode, LiteGraph } from "../vendor/litegraph.es.js";
import { inputSpecs, isWidgetSpec, outputSpecs, socketType, widgetKind, widgetLayout } from "./nodeSpec.js";
import { ensureTypeColor } from "./theme.js";
import { addInputWidgets, addSeedControl, addUploadWidget } from "./widgets.js";

const CONVERTED_PROP = "loom_widgets_as_inputs";

/** Base class for every node that comes from /object_info. */
export class LoomNode extends LGraphNode {
  constructor(title) {
    super(title);
    this.serialize_widgets = true;
  }

  get loomApp() {
    return window.loomApp;
  }

  onWidgetChanged() {
    this.loomApp?.history.checkpointSoon();
  }

  onDrawBackground(ctx) {
    this.loomApp?.execution.drawNodeImages(this, ctx);
  }

  onRemoved() {
    for (const w of this.widgets ?? []) w.onRemove?.();
  }

  // Widgets converted to inputs keep their value but show as a socket row.
  onConfigure() {
    this.widgets_values_configured = true;
    for (const name of this.properties?.[CONVERTED_PROP] ?? []) setConverted(this, name, true);
    this.loomShowUploadPreview?.();
  }

  getExtraMenuOptions(canvas, options) {
    const entries = [];
    for (const w of this.widgets ?? []) {
      if (!w.loomSpec) continue;
      const converted = !!w.loomConverted;
      entries.push({
        content: converted ? `Convert ${w.name} to widget` : `Convert ${w.name} to input`,
        callback: () => {
          setConverted(this, w.name, !converted);
          this.loomApp?.history.checkpoint();
        },
      });
    }
    if (entries.length) options.unshift({ content: "Widgets as inputs", has_submenu: true, submenu: { options: entries } }, null);
    return options;
  }
}

/**
 * Shows a widget as an input socket row (value kept, used when nothing is linked) or back.
 * Converting back disconnects whatever fed it.
 */
export function setConverted(node, name, converted) {
  const widget = node.widgets?.find((w) => w.name === name);
  if (!widget || !widget.loomSpec) return false;
  const slotIndex = node.inputs.findIndex((s) => s.widget?.name === name);
  if (!converted && slotIndex >= 0 && node.inputs[slotIndex].link != null) node.disconnectInput(slotIndex);
  widget.loomConverted = converted;
  if (converted) {
    widget.loomOriginalDraw ??= widget.draw ?? null;
    widget.draw = function (ctx, drawNode, width, y, H) {
      // A socket row: the value stays stored, the row shows where to connect.
      ctx.fillStyle = LiteGraph.NODE_TEXT_COLOR;
      ctx.font = "12px Inter, system-ui, sans-serif";
      ctx.textAlign = "left";
      ctx.fillText(`${name}`, 22, y + H * 0.7);
      const linked = drawNode.getSlotFromWidget(this)?.link != null;
      if (!linked) {
        ctx.beginPath();
        ctx.arc(LiteGraph.NODE_SLOT_HEIGHT * 0.5, y + LiteGraph.NODE_SLOT_HEIGHT * 0.5, 4, 0, Math.PI * 2);
        ctx.strokeStyle = LiteGraph.NODE_TEXT_COLOR;
        ctx.stroke();
      }
    };
    widget.mouse = () => true;
  } else {
    if (widget.loomOriginalDraw) widget.draw = widget.loomOriginalDraw;
    else delete widget.draw;
    delete widget.mouse;
  }
  const list = new Set(node.properties[CONVERTED_PROP] ?? []);
  if (converted) list.add(name);
  else list.delete(name);
  if (list.size) node.properties[CONVERTED_PROP] = [...list];
  else delete node.properties[CONVERTED_PROP];
  node.setDirtyCanvas(true, true);
  return true;
}

/** Builds and registers a class per node definition. Returns the registered type names. */
export function registerNodeDefs(objectInfo, app) {
  const names = [];
  for (const [name, def] of Object.entries(objectInfo)) {
    const nodeClass = makeNodeClass(name, def, app);
    app.extensions.invoke("beforeRegisterNodeDef", nodeClass, def, app);
    LiteGraph.registerNodeType(name, nodeClass);
    // registerNodeType sets category from the type path; ours comes from the server.
    nodeClass.category = def.category ?? "";
    names.push(name);
    for (const spec of inputSpecs(def)) ensureTypeColor(app.canvas, socketType(spec));
    for (const out of outputSpecs(def)) ensureTypeColor(app.canvas, out.type);
  }
  return names;
}

function makeNodeClass(name, def, app) {
  const specs = inputSpecs(def);
  const layout = widgetLayout(def, name);
  const outputs = outputSpecs(def);
  class NodeOfType extends LoomNode {
    constructor(title) {
      super(title ?? def.display_name ?? name);
      this.comfyClass = name;
      for (const spec of specs) {
        if (!isWidgetSpec(spec)) {
          const slot = this.addInput(spec.name, socketType(spec));
          if (spec.section === "optional") slot.shape = LiteGraph.CIRCLE_SHAPE; // hollow-looking hint via label
          if (spec.options?.tooltip) slot.tooltip = spec.options.tooltip;
        }
      }
      const byName = {};
      for (const entry of layout) {
        if (entry.role === "value") {
          const [widget] = addInputWidgets(this, entry.spec, app);
          byName[entry.name] = widget;
          // Every widget is also an input socket (drawn at the widget's row when needed).
          this.addInput(entry.name, socketType(entry.spec), { widget: { name: entry.name } });
        } else if (entry.role === "control") {
          addSeedControl(this, byName[entry.companionOf], entry.spec.options?.control_after_generate);
        } else if (entry.role === "filter") {
          this.addWidget("text", "control_filter_list", "", () => {}, {}).loomCompanionOf = entry.companionOf;
        } else if (entry.role === "upload") {
          addUploadWidget(this, byName[entry.companionOf], app);
        }
      }
      for (const out of outputs) {
        const slot = this.addOutput(out.name, out.type, out.isList ? { shape: LiteGraph.GRID_SHAPE } : {});
        if (out.tooltip) slot.tooltip = out.tooltip;
      }
      const size = this.computeSize();
      size[0] = Math.max(size[0], 220);
      size[1] = Math.max(size[1], 40);
      this.setSize([size[0] * 1.1, size[1]]);
      if (def.output_node) this.loomIsOutput = true;
    }

    onNodeCreated() {
      app.extensions.invoke("nodeCreated", this, app);
    }
  }
  NodeOfType.title = def.display_name ?? name;
  NodeOfType.comfyClass = name;
  NodeOfType.nodeData = def;
  NodeOfType.loomDef = def;
  Object.defineProperty(NodeOfType, "name", { value: `LoomNode_${name.replace(/\W/g, "_")}` });
  return NodeOfType;
}

/** Updates combo lists (model files, images) of the nodes on the canvas from fresh /object_info. */
export function refreshComboValues(graph, objectInfo) {
  let changed = 0;
  for (const node of graph._nodes) {
    const def = objectInfo[node.type];
    if (!def) continue;
    for (const spec of inputSpecs(def)) {
      if (widgetKind(spec) !== "COMBO" || !isWidgetSpec(spec)) continue;
      const widget = node.widgets?.find((w) => w.name === spec.name);
      if (!widget) continue;
      const values = Array.isArray(spec.type) ? spec.type : spec.options?.options ?? [];
      widget.options.values = [...values];
      changed++;
    }
  }
  graph.setDirtyCanvas(true, true);
  return changed;
}

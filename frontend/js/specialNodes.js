// Frontend-only nodes (Reroute, Note, MarkdownNote, PrimitiveNode) and placeholders for node
// types the server does not know. None of them is ever sent to the server.

import { LGraphNode, LiteGraph } from "../vendor/litegraph.es.js";
import { addTextareaWidget } from "./domWidget.js";

class RerouteNode extends LGraphNode {
  constructor(title) {
    super(title ?? "Reroute");
    this.isVirtualNode = true;
    this.addInput("", "*");
    this.addOutput("", "*");
    this.size = [75, 26];
    this.resizable = false;
    this.collapsable = false;
  }
}
RerouteNode.title = "Reroute";
RerouteNode.title_mode = LiteGraph.NO_TITLE;
RerouteNode.collapsable = false;

class NoteNode extends LGraphNode {
  constructor(title) {
    super(title ?? "Note");
    this.isVirtualNode = true;
    this.serialize_widgets = true;
    this.color = "#433a21";
    this.bgcolor = "#5a4d2b";
    addTextareaWidget(this, "text", "", { placeholder: "note" });
    this.size = [400, 160];
  }
}

/**
 * PrimitiveNode: one value feeding widget inputs of other nodes. Its widget copies the first
 * target widget (type, options, seed control); the value is written through to every target, and
 * the converters read it from widgets_values[0].
 */
class PrimitiveNode extends LGraphNode {
  constructor(title) {
    super(title ?? "Primitive");
    this.isVirtualNode = true;
    this.serialize_widgets = true;
    this.addOutput("connect to widget input", "*");
    this.size = [240, 80];
  }

  onConfigure(info) {
    this.loomSavedValues = info.widgets_values;
    // Targets are configured after us: build the widget once the whole graph is in.
    queueMicrotask(() => this.buildWidget());
  }

  targets() {
    const out = [];
    for (const linkId of this.outputs[0]?.links ?? []) {
      const link = this.graph?._links.get(linkId);
      const node = link && this.graph.getNodeById(link.target_id);
      const slot = node?.inputs?.[link.target_slot];
      const widget = slot?.widget && node.widgets?.find((w) => w.name === slot.widget.name);
      if (widget) out.push({ node, slot, widget });
    }
    return out;
  }

  buildWidget() {
    const [first] = this.targets();
    if (!first || this.widgets?.length) return;
    const src = first.widget;
    const type = src.type === "customtext" ? "text" : src.type;
    const saved = Array.isArray(this.loomSavedValues) ? this.loomSavedValues : [];
    const value = saved.length ? saved[0] : src.value;
    const self = this;
    const widget = this.addWidget(type, "value", value, function (v) {
      for (const t of self.targets()) t.widget.value = v;
      self.loomApp?.history.checkpointSoon();
    }, { ...src.options });
    // As in ComfyUI, a number or combo primitive has its own control_after_generate (default fixed).
    if (type === "number" || type === "combo") {
      const control = this.addWidget("combo", "control_after_generate", saved[1] ?? src.loomControl?.value ?? "fixed", () => {},
        { values: ["fixed", "increment", "decrement", "randomize"] });
      if (type === "number") widget.loomControl = control;
      if (type === "combo") this.addWidget("text", "control_filter_list", saved[2] ?? "", () => {}, {});
    }
    this.outputs[0].type = first.slot.type;
    this.outputs[0].name = first.slot.type;
    this.outputs[0].widget = { name: first.widget.name };
    for (const t of this.targets()) t.widget.value = widget.value;
    this.setSize([Math.max(this.size[0], 240), this.computeSize()[1]]);
  }

  onSerialize(o) {
    // Not connected (yet): keep the saved value rather than dropping it.
    if (!this.widgets?.length && this.loomSavedValues !== undefined) o.widgets_values = this.loomSavedValues;
  }

  onConnectOutput(slot, type, input) {
    return !!input?.widget; // only widget inputs take a primitive
  }

  onConnectionsChange() {
    if (!this.graph) return;
    queueMicrotask(() => {
      if (!this.outputs[0]?.links?.length) {
        this.widgets = [];
        this.outputs[0].type = "*";
        this.outputs[0].name = "connect to widget input";
        delete this.outputs[0].widget;
      } else {
        this.buildWidget();
      }
    });
  }

  get loomApp() {
    return window.loomApp;
  }
}
PrimitiveNode.title = "Primitive";

/**
 * A node kept exactly as it was loaded: its inputs, outputs and widgets_values survive every save.
 * Used for node types the server does not have.
 */
export function makeVerbatimClass(type, { missing }) {
  class Verbatim extends LGraphNode {
    constructor(title) {
      super(title ?? type);
      this.loomMissing = missing;
      this.isVirtualNode = !missing;
      this.loomOriginal = {};
      this.size = [260, 80];
    }

    configure(info) {
      this.loomOriginal = structuredClone(info);
      super.configure(info);
    }

    serialize() {
      const current = super.serialize();
      const out = { ...this.loomOriginal, ...current };
      if ("widgets_values" in this.loomOriginal) out.widgets_values = structuredClone(this.loomOriginal.widgets_values);
      if (!current.title && this.loomOriginal.title) out.title = this.loomOriginal.title;
      return out;
    }

    onDrawForeground(ctx) {
      if (this.flags.collapsed) return;
      const lines = missing ? ["Missing node type:", type] : ["value kept from the file:", JSON.stringify(this.loomOriginal.widgets_values ?? [])];
      ctx.save();
      ctx.fillStyle = missing ? "#ff7875" : LiteGraph.NODE_TEXT_COLOR;
      ctx.font = "bold 13px Inter, system-ui, sans-serif";
      ctx.textAlign = "center";
      const slots = Math.max(this.inputs?.length ?? 0, this.outputs?.length ?? 0);
      const top = slots * LiteGraph.NODE_SLOT_HEIGHT + 18;
      lines.forEach((line, i) => ctx.fillText(line.slice(0, 40), this.size[0] / 2, top + i * 16));
      ctx.restore();
    }
  }
  Verbatim.title = type;
  Verbatim.skip_list = true;
  Verbatim.loomPlaceholder = missing;
  if (missing) {
    Verbatim.prototype.color = "#5c1f1f";
    Verbatim.prototype.bgcolor = "#3a1919";
  }
  return Verbatim;
}

export function registerSpecialNodes() {
  LiteGraph.registerNodeType("Reroute", RerouteNode);
  RerouteNode.category = "utils";
  LiteGraph.registerNodeType("Note", NoteNode);
  NoteNode.category = "utils";
  NoteNode.title = "Note";
class MarkdownNote extends NoteNode {}
MarkdownNote.title = "Markdown Note";
  MarkdownNote.skip_list = true;
  LiteGraph.registerNodeType("MarkdownNote", MarkdownNote);
  LiteGraph.registerNodeType("PrimitiveNode", PrimitiveNode);
  PrimitiveNode.category = "utils";
}

/** Registers placeholders for the types of `workflow` not registered yet; returns the missing types. */
export function registerMissingTypes(workflow, knownTypes) {
  const missing = new Set();
  for (const node of workflow?.nodes ?? []) {
    if (!node?.type || knownTypes.has(node.type)) continue;
    missing.add(node.type);
    const existing = LiteGraph.registered_node_types[node.type];
    if (!existing?.loomPlaceholder) LiteGraph.registerNodeType(node.type, makeVerbatimClass(node.type, { missing: true }));
  }
  return [...missing];
}

/** {type: pack} for missing types whose nodes say where they come from (ComfyUI saves cnr_id/aux_id). */
export function packsOf(workflow, types) {
  const packs = {};
  for (const node of workflow.nodes ?? []) {
    if (!types.includes(node.type) || packs[node.type]) continue;
    const pack = node.properties?.cnr_id ?? node.properties?.aux_id;
    if (typeof pack === "string" && pack && pack !== "comfy-core") packs[node.type] = pack;
  }
  return packs;
}

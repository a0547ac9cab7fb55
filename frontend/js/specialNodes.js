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
 * A node kept exactly as it was loaded: its inputs, outputs and widgets_values survive every save.
 * Used for node types the server does not have, and for PrimitiveNode, whose value already lives
 * in the widgets it feeds.
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
  LiteGraph.registerNodeType("PrimitiveNode", makeVerbatimClass("PrimitiveNode", { missing: false }));
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

// UI workflow (version 0.4 JSON) -> API prompt, from the saved JSON alone plus /object_info.
// Working from the serialised form (not the live canvas) means "what the editor queues" and
// "what the engine's converter (engine/workflow/ui_to_api.py) makes of the saved file" are the
// same function of the same data; tests/browser compare the two on every workflow in workflows/.
//
// Rules (the dialect's): muted (mode 2) and bypassed (mode 4) nodes are not sent; a link out of
// a bypassed node is followed to that node's input of the matching type; reroutes are followed;
// a PrimitiveNode gives its value; notes give nothing. An input that resolves to nothing keeps
// the node's own widget value. Widget values are named with widgetLayout(); a list constant is
// boxed as {"__value__": [...]} so the server does not read it as a link.

import { MODE_BYPASS, MODE_NEVER, widgetLayout } from "./nodeSpec.js";

const REROUTES = new Set(["Reroute"]);
const PRIMITIVES = new Set(["PrimitiveNode"]);
const NOTES = new Set(["Note", "MarkdownNote"]);
const FRONTEND_ONLY = new Set([...REROUTES, ...PRIMITIVES, ...NOTES]);

class Value {
  constructor(value) {
    this.value = value;
  }
}

function linkMap(workflow) {
  const links = new Map();
  for (const l of workflow.links ?? []) {
    if (Array.isArray(l)) links.set(l[0], { id: l[0], origin_id: l[1], origin_slot: l[2], target_id: l[3], target_slot: l[4], type: l[5] });
    else if (l && typeof l === "object") links.set(l.id, l);
  }
  return links;
}

const isWild = (t) => t === "*" || t === "" || t == null || t === 0;

/** Whether the canvas lets a link join slot types a and b (wildcards, comma unions, any case). */
export function slotTypesMatch(a, b) {
  if (isWild(a) || isWild(b) || a === b) return true;
  const as = new Set(String(a).toLowerCase().split(",").map((t) => t.trim()));
  return String(b).toLowerCase().split(",").some((t) => as.has(t.trim()));
}

/** Which input a bypassed node passes on for output `slot` (-1: none fits). */
export function bypassInputIndex(node, slot, wantType) {
  const inputs = node.inputs ?? [];
  if (isWild(wantType)) return slot < inputs.length ? slot : inputs.length ? 0 : -1;
  const outType = node.outputs?.[slot]?.type ?? "*";
  if (slot < inputs.length && slotTypesMatch(inputs[slot].type, outType) && slotTypesMatch(inputs[slot].type, wantType)) return slot;
  let i = inputs.findIndex((inp) => inp.type === wantType);
  if (i >= 0) return i;
  i = inputs.findIndex((inp) => slotTypesMatch(inp.type, outType) && slotTypesMatch(inp.type, wantType));
  return i;
}

export function widgetDefault(entry) {
  const o = entry.spec.options ?? {};
  if ("default" in o) return o.default;
  const kind = entry.kind;
  if (kind === "COMBO") return entry.choices[0] ?? null;
  return { INT: 0, FLOAT: 0, STRING: "", BOOLEAN: false }[kind] ?? null;
}

const boxed = (v) => (Array.isArray(v) ? { __value__: v } : v);

class Converter {
  constructor(workflow, objectInfo) {
    this.objectInfo = objectInfo;
    this.nodes = new Map((workflow.nodes ?? []).map((n) => [String(n.id), n]));
    this.links = linkMap(workflow);
    this.warnings = [];
    this.missing = new Set();
  }

  kind(node) {
    if (node.type in this.objectInfo && !FRONTEND_ONLY.has(node.type)) return "real";
    if (REROUTES.has(node.type)) return "reroute";
    if (PRIMITIVES.has(node.type)) return "primitive";
    if (NOTES.has(node.type)) return "note";
    return "unknown";
  }

  resolveInput(node, slot, wantType, visited) {
    const key = `${node.id}:I:${slot}`;
    if (visited.has(key)) throw new Error(`circular link through node ${node.id}: reroutes or bypassed nodes form a loop`);
    visited.add(key);
    const inp = node.inputs?.[slot];
    if (!inp || inp.link == null) return null;
    const link = this.links.get(inp.link);
    if (!link) return null;
    const origin = this.nodes.get(String(link.origin_id));
    if (!origin) return null;
    return this.resolveOutput(origin, link.origin_slot, wantType ?? inp.type, visited);
  }

  resolveOutput(node, slot, wantType, visited) {
    const key = `${node.id}:O:${slot}`;
    if (visited.has(key)) throw new Error(`circular link through node ${node.id}: reroutes or bypassed nodes form a loop`);
    visited.add(key);
    if (node.mode === MODE_NEVER) return null;
    if (node.mode === MODE_BYPASS) {
      const index = bypassInputIndex(node, slot, wantType);
      return index < 0 ? null : this.resolveInput(node, index, null, visited);
    }
    switch (this.kind(node)) {
      case "reroute":
        return this.resolveInput(node, 0, wantType, visited);
      case "primitive": {
        const values = node.widgets_values;
        if (Array.isArray(values) && values.length) return new Value(values[0]);
        if (values && typeof values === "object" && "value" in values) return new Value(values.value);
        return null;
      }
      case "note":
        return null;
      default:
        return [String(node.id), slot];
    }
  }

  widgetInputs(node, def) {
    const layout = widgetLayout(def, node.type);
    const valueSlots = layout.filter((e) => e.api);
    const raw = node.widgets_values;
    const named = node.widgets_values_named ?? (raw && !Array.isArray(raw) && typeof raw === "object" ? raw : null);
    const out = {};
    if (named) for (const e of valueSlots) if (e.name in named) out[e.name] = named[e.name];
    if (Array.isArray(raw) && Object.keys(out).length < valueSlots.length) {
      for (const [name, v] of Object.entries(alignPositional(raw, layout))) if (!(name in out)) out[name] = v;
    }
    const result = {};
    for (const e of valueSlots) result[e.name] = e.name in out ? out[e.name] : widgetDefault(e);
    return result;
  }

  entry(node, kind) {
    const inputs = {};
    const def = kind === "real" ? this.objectInfo[node.type] : null;
    if (def) for (const [k, v] of Object.entries(this.widgetInputs(node, def))) inputs[k] = boxed(v);
    (node.inputs ?? []).forEach((inp, slot) => {
      const r = this.resolveInput(node, slot, null, new Set());
      if (r instanceof Value) inputs[inp.name] = boxed(r.value);
      else if (r) inputs[inp.name] = r;
    });
    const meta = { title: node.title || def?.display_name || node.type };
    for (const key of ["cnr_id", "aux_id", "ver"]) if (typeof node.properties?.[key] === "string") meta[key] = node.properties[key];
    return { inputs, class_type: node.type, _meta: meta };
  }

  convert() {
    const prompt = {};
    const ordered = [...this.nodes.values()].sort((a, b) => (a.order ?? 0) - (b.order ?? 0));
    for (const node of ordered) {
      const kind = this.kind(node);
      if ((kind !== "real" && kind !== "unknown") || node.mode === MODE_NEVER || node.mode === MODE_BYPASS) continue;
      if (kind === "unknown") this.missing.add(node.type);
      prompt[String(node.id)] = this.entry(node, kind);
    }
    for (const entry of Object.values(prompt)) {
      for (const [name, v] of Object.entries(entry.inputs)) {
        if (Array.isArray(v) && v.length === 2 && typeof v[0] === "string" && !(v[0] in prompt)) delete entry.inputs[name];
      }
    }
    return prompt;
  }
}

/** {input name: value} from a positional widgets_values, tolerating saves without browser-only slots. */
function alignPositional(values, layout) {
  const valueSlots = layout.filter((e) => e.api);
  const out = {};
  if (values.length >= layout.length) {
    layout.forEach((e, i) => e.api && (out[e.name] = values[i]));
    return out;
  }
  if (values.length === valueSlots.length) {
    valueSlots.forEach((e, i) => (out[e.name] = values[i]));
    return out;
  }
  let i = 0;
  layout.forEach((e, index) => {
    if (i >= values.length) return;
    if (e.api) {
      out[e.name] = values[i++];
      return;
    }
    const valuesLeft = layout.slice(index + 1).filter((x) => x.api).length;
    if (values.length - i > valuesLeft && looksLike(e.role, values[i])) i++;
  });
  return out;
}

function looksLike(role, v) {
  if (role === "control") return typeof v === "boolean" || ["fixed", "increment", "decrement", "randomize", "increment-wrap"].includes(v);
  if (role === "filter") return typeof v === "string";
  return v == null || typeof v === "string";
}

/**
 * @param {object} workflow UI workflow JSON (version 0.4)
 * @param {object} objectInfo the server's /object_info
 * @returns {object} API prompt {id: {inputs, class_type, _meta}}
 */
export function workflowToPrompt(workflow, objectInfo) {
  return new Converter(workflow, objectInfo).convert();
}

/** The node types of a workflow that the server does not provide (besides frontend-only ones). */
export function missingNodeTypes(workflow, objectInfo) {
  const c = new Converter(workflow, objectInfo);
  c.convert();
  return [...c.missing];
}

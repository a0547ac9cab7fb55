// API prompt -> UI workflow: rebuilds a graph (for PNGs that carry only a `prompt`, and for the
// built-in default graph). Nodes are made by the registered classes, so widgets and sockets are
// exactly what a node added by hand would have; positions come from a simple layering.

import { LGraph, LiteGraph } from "../vendor/litegraph.es.js";
import { registerMissingTypes } from "./specialNodes.js";

const COLUMN = 330;
const GAP = 40;

function isLink(v) {
  return Array.isArray(v) && v.length === 2 && typeof v[0] === "string" && Number.isInteger(v[1]);
}

/** Depth of every node: 0 for nodes with no linked inputs, else 1 + the deepest source. */
function depths(prompt) {
  const memo = new Map();
  const visit = (id, stack) => {
    if (memo.has(id)) return memo.get(id);
    if (stack.has(id)) return 0; // a cycle: the server will say so
    stack.add(id);
    let d = 0;
    for (const v of Object.values(prompt[id]?.inputs ?? {})) {
      if (isLink(v) && v[0] in prompt) d = Math.max(d, visit(v[0], stack) + 1);
    }
    stack.delete(id);
    memo.set(id, d);
    return d;
  };
  for (const id of Object.keys(prompt)) visit(id, new Set());
  return memo;
}

export function apiPromptToWorkflow(prompt) {
  const graph = new LGraph();
  registerMissingTypes({ nodes: Object.values(prompt).map((n) => ({ type: n.class_type })) }, new Set(Object.keys(LiteGraph.registered_node_types).filter((k) => !LiteGraph.registered_node_types[k].loomPlaceholder)));
  const ids = Object.keys(prompt);
  let nextId = Math.max(0, ...ids.map(Number).filter(Number.isInteger)) + 1;
  const nodes = new Map();
  for (const id of ids) {
    const entry = prompt[id];
    const node = LiteGraph.createNode(entry.class_type);
    if (!node) continue;
    node.id = /^\d+$/.test(id) ? Number(id) : nextId++;
    if (entry._meta?.title && entry._meta.title !== node.title) node.title = entry._meta.title;
    if (node.loomMissing) {
      node.loomOriginal = { widgets_values: Object.fromEntries(Object.entries(entry.inputs ?? {}).filter(([, v]) => !isLink(v))) };
      for (const [name, v] of Object.entries(entry.inputs ?? {})) if (isLink(v)) node.addInput(name, "*");
    }
    for (const [name, v] of Object.entries(entry.inputs ?? {})) {
      if (isLink(v)) continue;
      const w = node.widgets?.find((x) => x.name === name);
      if (w) w.value = v;
    }
    graph.add(node);
    nodes.set(id, node);
  }
  for (const [id, node] of nodes) {
    for (const [name, v] of Object.entries(prompt[id].inputs ?? {})) {
      if (!isLink(v)) continue;
      const src = nodes.get(v[0]);
      const slot = node.inputs.findIndex((s) => (s.widget?.name ?? s.name) === name);
      if (src && slot >= 0) src.connect(v[1], node, slot);
    }
  }
  const depth = depths(prompt);
  const columns = new Map();
  for (const [id, node] of nodes) {
    const d = depth.get(id) ?? 0;
    const y = columns.get(d) ?? 0;
    node.pos = [d * COLUMN, y];
    columns.set(d, y + node.size[1] + LiteGraph.NODE_TITLE_HEIGHT + GAP);
  }
  for (const node of nodes.values()) node.loomShowUploadPreview = undefined;
  const workflow = graph.serialize();
  graph.clear(); // removes the DOM textareas of these temporary nodes
  return workflow;
}

// UI workflow (version 0.4 JSON) -> API prompt, from the saved JSON alone plus /object_info.
// Working from the serialised form (not the live canvas) means "what the editor queues" and
// "what a converter makes of the saved file" are the same function of the same data.
//
// Rules (the dialect's): muted (mode 2) and bypassed (mode 4) nodes are not sent; a link out of
// a bypassed node is followed to that node's input of the same type; frontend-only nodes
// (Reroute, Note, PrimitiveNode, ...) are followed or dropped; widget values are mapped to names
// with widgetLayout(); links into nodes that are not sent are removed.

import { MODE_BYPASS, MODE_NEVER, VIRTUAL_TYPES, widgetLayout } from "./nodeSpec.js";

function linkMap(workflow) {
  const links = new Map();
  for (const l of workflow.links ?? []) {
    if (Array.isArray(l)) links.set(l[0], { id: l[0], origin_id: l[1], origin_slot: l[2], target_id: l[3], target_slot: l[4], type: l[5] });
    else if (l && typeof l === "object") links.set(l.id, l);
  }
  return links;
}

function widgetValue(node, index, name) {
  const values = node.widgets_values;
  if (Array.isArray(values)) return values[index];
  if (values && typeof values === "object") return values[name];
  return undefined;
}

/**
 * Follows a link upstream through bypassed nodes and reroutes.
 * Returns [originNodeId, slot] for a real node, or null when nothing real feeds it.
 */
function resolveLink(link, inputType, nodes, links) {
  const seen = new Set();
  while (link) {
    const origin = nodes.get(link.origin_id);
    if (!origin || seen.has(origin.id)) return null;
    seen.add(origin.id);
    if (origin.type === "Reroute") {
      const next = origin.inputs?.[0]?.link;
      link = next != null ? links.get(next) : null;
      continue;
    }
    if (VIRTUAL_TYPES.has(origin.type)) return null; // PrimitiveNode: the target widget holds the value
    if (origin.mode === MODE_BYPASS) {
      const inputs = origin.inputs ?? [];
      const candidates = [link.origin_slot, ...inputs.keys()];
      const match = candidates.find((i) => inputs[i] && typesMatch(inputs[i].type, inputType));
      if (match === undefined || inputs[match].link == null) return null;
      link = links.get(inputs[match].link);
      continue;
    }
    return [String(origin.id), link.origin_slot];
  }
  return null;
}

function typesMatch(a, b) {
  return String(a) === String(b) || a === "*" || b === "*";
}

/**
 * @param {object} workflow UI workflow JSON (version 0.4)
 * @param {object} objectInfo the server's /object_info
 * @returns {object} API prompt {id: {inputs, class_type, _meta: {title}}}
 */
export function workflowToPrompt(workflow, objectInfo) {
  const nodes = new Map((workflow.nodes ?? []).map((n) => [n.id, n]));
  const links = linkMap(workflow);
  const prompt = {};
  const linkedInputs = new Map();
  for (const node of nodes.values()) {
    if (VIRTUAL_TYPES.has(node.type)) continue;
    if (node.mode === MODE_NEVER || node.mode === MODE_BYPASS) continue;
    const def = objectInfo[node.type];
    const inputs = {};
    const linked = new Set();
    if (def) {
      widgetLayout(def).forEach((entry, i) => {
        if (!entry.api) return;
        const value = widgetValue(node, i, entry.name);
        if (value !== undefined) inputs[entry.name] = value;
      });
    }
    for (const input of node.inputs ?? []) {
      if (input.link == null) continue;
      const link = links.get(input.link);
      if (!link) continue;
      const name = input.widget?.name ?? input.name;
      const resolved = resolveLink(link, input.type, nodes, links);
      if (resolved) {
        inputs[name] = resolved;
        linked.add(name);
      }
    }
    linkedInputs.set(String(node.id), linked);
    prompt[String(node.id)] = {
      inputs,
      class_type: node.type,
      _meta: { title: node.title ?? def?.display_name ?? node.type },
    };
  }
  // A link may point at a node that is not sent (muted): drop it, the server would reject it.
  for (const [id, entry] of Object.entries(prompt)) {
    for (const name of linkedInputs.get(id)) {
      if (!(entry.inputs[name][0] in prompt)) delete entry.inputs[name];
    }
  }
  return prompt;
}

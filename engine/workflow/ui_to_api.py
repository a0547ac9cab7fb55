"""UI workflow -> API prompt, following the rules of the frontend's `graphToPrompt`.

Every node of the root graph and of each subgraph instance becomes an entry; an inner node's
id is its path of instance ids joined with ':' (`"12:5"`, `"12:7:3"`). Muted (mode 2) and
bypassed (mode 4) nodes and frontend-only nodes (Reroute, PrimitiveNode, Note, ...) are left
out. Each linked input is resolved upstream to the node that really produces the value:
  - through a bypassed node, to its input of the matching type (its same-index input first);
  - through Reroute nodes (and KJNodes Set/Get pairs), whatever their chain;
  - into a subgraph instance, to the inner node that feeds that output;
  - out of a subgraph, to what feeds the instance's input, or to the instance's promoted
    widget value when nothing does;
  - from a PrimitiveNode, to its value.
An input that resolves to nothing (a muted source, a bypass with no matching input) keeps the
node's own widget value if it has one, and is otherwise left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from engine.workflow.errors import WorkflowError
from engine.workflow.node_kinds import (
    CORE_FRONTEND_ONLY,
    GET_TYPES,
    NOTE_TYPES,
    PRIMITIVE_TYPES,
    REROUTE_TYPES,
    SET_TYPES,
    bypass_input_index,
)
from engine.workflow.promoted import PromotedWidgets
from engine.workflow.ui_graph import (
    MODE_BYPASS,
    MODE_NEVER,
    FlatNode,
    Graph,
    UINode,
    UIWorkflow,
    parse_ui_workflow,
)
from engine.workflow.widgets import map_widget_values

_REPLACE_PROPERTY = "Run widget replace on values"


@dataclass
class ConversionResult:
    """The API prompt, the node types nobody provides, and what was repaired or ignored on the way."""

    prompt: dict[str, dict]
    missing_node_types: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing_node_types


@dataclass(frozen=True)
class _Link:
    node_id: str
    slot: int


@dataclass(frozen=True)
class _Value:
    value: Any


def wrap_value(value: Any) -> Any:
    """A list constant is boxed, so the server does not read it as a link."""
    return {"__value__": value} if isinstance(value, list) else value


class _Converter:
    def __init__(self, workflow: UIWorkflow, object_info: dict, warnings: list[str]):
        self.workflow = workflow
        self.object_info = object_info
        self.warnings = warnings
        self.flat: dict[str, FlatNode] = {}
        self.missing: dict[str, None] = {}
        self.promoted = PromotedWidgets(workflow, object_info, self.flat, self.warn)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    # -- node kinds -----------------------------------------------------------------------------
    def kind(self, node: UINode) -> str:
        t = node.type
        if t in self.workflow.subgraphs:
            return "subgraph"
        if t in self.object_info and t not in CORE_FRONTEND_ONLY:
            return "real"
        if t in REROUTE_TYPES:
            return "reroute"
        if t in PRIMITIVE_TYPES:
            return "primitive"
        if t in SET_TYPES:
            return "set"
        if t in GET_TYPES:
            return "get"
        if t in NOTE_TYPES:
            return "note"
        return "unknown"

    # -- expansion ------------------------------------------------------------------------------
    def expand(self, graph: Graph, path: tuple[str, ...], instance: FlatNode | None, stack: tuple[str, ...]) -> None:
        for node in sorted(graph.nodes.values(), key=lambda n: n.order):
            flat = FlatNode(":".join((*path, node.id)), node, graph, path, instance)
            self.flat[flat.id] = flat
            # The contents of a muted or bypassed subgraph never run.
            if self.kind(node) == "subgraph" and node.mode not in (MODE_NEVER, MODE_BYPASS):
                if node.type in stack:
                    name = self.workflow.subgraphs[node.type].name
                    raise WorkflowError(f"subgraph '{name}' contains itself (through node {flat.id})")
                self.expand(self.workflow.subgraphs[node.type], (*path, node.id), flat, (*stack, node.type))

    # -- link resolution ------------------------------------------------------------------------
    def _enter(self, visited: set, key: tuple) -> None:
        if key in visited:
            raise WorkflowError(f"circular link through node {key[0]} ({'input' if key[1] == 'I' else 'output'} "
                                f"{key[2]}): reroutes or bypassed nodes form a loop")
        visited.add(key)

    def resolve_input(self, flat: FlatNode, slot: int, want_type: Any = None,
                      visited: set | None = None) -> _Link | _Value | None:
        visited = set() if visited is None else visited
        self._enter(visited, (flat.id, "I", slot))
        node = flat.node
        if slot >= len(node.inputs):
            self.warn(f"node {flat.id} ({node.type}) has no input #{slot}")
            return None
        inp = node.inputs[slot]
        if inp.link is None:
            return None
        link = flat.graph.links.get(inp.link)
        if link is None:
            self.warn(f"node {flat.id} ({node.type}): input '{inp.name}' names link {inp.link}, "
                      "which is not in the links list; left unconnected")
            return None
        if flat.instance is not None and link.origin_id == flat.graph.input_node_id:
            return self._resolve_instance_input(flat.instance, link.origin_slot, visited)
        origin = self.flat.get(":".join((*flat.path, link.origin_id)))
        if origin is None:
            self.warn(f"node {flat.id} ({node.type}): input '{inp.name}' is linked from node "
                      f"{link.origin_id}, which does not exist; left unconnected")
            return None
        return self.resolve_output(origin, link.origin_slot, want_type if want_type is not None else inp.type, visited)

    def resolve_output(self, flat: FlatNode, slot: int, want_type: Any, visited: set) -> _Link | _Value | None:
        self._enter(visited, (flat.id, "O", slot))
        node = flat.node
        if node.mode == MODE_NEVER:
            return None
        if node.mode == MODE_BYPASS:
            index = bypass_input_index(node, slot, want_type)
            if index < 0:
                self.warn(f"bypassed node {flat.id} ({node.type}) has no input of type {want_type} "
                          f"to pass on from output #{slot}; the link is dropped")
                return None
            return self.resolve_input(flat, index, None, visited)
        kind = self.kind(node)
        if kind == "subgraph":
            return self._resolve_instance_output(flat, slot, want_type, visited)
        if kind in ("reroute", "set"):
            return self.resolve_input(flat, 0, want_type, visited)
        if kind == "get":
            source = self._find_set_node(flat)
            return None if source is None else self.resolve_input(source, 0, want_type, visited)
        if kind == "primitive":
            return self._primitive_value(flat)
        if kind == "note":
            return None
        return _Link(flat.id, slot)

    def _instance_input_index(self, instance: FlatNode, def_slot: int) -> int | None:
        """The saved instance input for the definition's input `def_slot`.

        Saves leave out unlinked widget sockets, so the instance's list may be shorter than the
        definition's: match by name, by index only when nothing was left out.
        """
        definition = self.workflow.subgraphs[instance.node.type]
        inputs = instance.node.inputs
        if def_slot < len(definition.inputs):
            name = definition.inputs[def_slot].name
            index = next((i for i, inp in enumerate(inputs) if inp.name == name), None)
            if index is not None or len(inputs) != len(definition.inputs):
                return index
        return def_slot if def_slot < len(inputs) else None

    def _resolve_instance_input(self, instance: FlatNode, def_slot: int, visited: set) -> _Link | _Value | None:
        index = self._instance_input_index(instance, def_slot)
        if index is not None and instance.node.inputs[index].link is not None:
            return self.resolve_input(instance, index, None, visited)
        promoted, _ = self.promoted.values(instance)
        if def_slot in promoted:
            return _Value(promoted[def_slot])
        return None

    def _resolve_instance_output(self, instance: FlatNode, slot: int, want_type: Any, visited: set):
        definition = self.workflow.subgraphs[instance.node.type]
        link = definition.output_link(slot)
        if link is None:
            self.warn(f"subgraph '{definition.name}' (node {instance.id}): output #{slot} is not "
                      "connected inside the subgraph")
            return None
        if link.origin_id == definition.input_node_id:  # an input wired straight to an output
            return self._resolve_instance_input(instance, link.origin_slot, visited)
        inner = self.flat.get(":".join((*instance.path, instance.node.id, link.origin_id)))
        if inner is None:
            self.warn(f"subgraph '{definition.name}': output #{slot} comes from node {link.origin_id}, "
                      "which does not exist")
            return None
        return self.resolve_output(inner, link.origin_slot, want_type, visited)

    def _find_set_node(self, get_flat: FlatNode) -> FlatNode | None:
        name = _first_widget_value(get_flat.node)
        for node in get_flat.graph.nodes.values():
            if node.type in SET_TYPES and _first_widget_value(node) == name and node.mode != MODE_NEVER:
                return self.flat.get(":".join((*get_flat.path, node.id)))
        self.warn(f"node {get_flat.id} (GetNode): no SetNode named {name!r}; the link is dropped")
        return None

    def _primitive_value(self, flat: FlatNode) -> _Value | None:
        node = flat.node
        named = node.widgets_values_named or (node.widgets_values if isinstance(node.widgets_values, dict) else None)
        if named and "value" in named:
            value = named["value"]
        elif isinstance(node.widgets_values, list) and node.widgets_values:
            value = node.widgets_values[0]
        else:
            self.warn(f"PrimitiveNode {flat.id} has no value; its targets keep their own")
            return None
        if node.properties.get(_REPLACE_PROPERTY) and isinstance(value, str) and "%" in value:
            self.warn(f"PrimitiveNode {flat.id}: '%...%' text replacements are not applied; "
                      "the value is passed on as written")
        return _Value(value)

    # -- the prompt -----------------------------------------------------------------------------
    def node_entry(self, flat: FlatNode, kind: str) -> dict:
        node = flat.node
        inputs: dict[str, Any] = {}
        info = self.object_info.get(node.type) if kind == "real" else None
        if info is not None:
            values = map_widget_values(node, info, self.warn)
            if flat.instance is not None:
                _, overrides = self.promoted.values(flat.instance)
                for (inner_id, widget), value in overrides.items():
                    if inner_id == node.id and widget in values:
                        values[widget] = value
            inputs.update({name: wrap_value(v) for name, v in values.items()})
        elif node.widgets_values:
            self.warn(f"node {flat.id} ({node.type}): unknown node type, so its widget values "
                      f"could not be named and were left out: {json.dumps(node.widgets_values)}")
        for slot, inp in enumerate(node.inputs):
            resolved = self.resolve_input(flat, slot)
            if isinstance(resolved, _Value):
                inputs[inp.name] = wrap_value(resolved.value)
            elif isinstance(resolved, _Link):
                inputs[inp.name] = [resolved.node_id, resolved.slot]
        meta: dict[str, Any] = {"title": node.title or (info or {}).get("display_name") or node.type}
        for key in ("cnr_id", "aux_id", "ver"):
            if isinstance(node.properties.get(key), str):
                meta[key] = node.properties[key]
        return {"inputs": inputs, "class_type": node.type, "_meta": meta}

    def convert(self) -> dict[str, dict]:
        self.expand(self.workflow.root, (), None, ())
        prompt: dict[str, dict] = {}
        for flat in self.flat.values():
            kind = self.kind(flat.node)
            if kind not in ("real", "unknown") or flat.node.mode in (MODE_NEVER, MODE_BYPASS):
                continue
            if kind == "unknown":
                self.missing.setdefault(flat.node.type)
                if flat.node.type.startswith(("workflow>", "workflow/")):
                    self.warn(f"node {flat.id} ({flat.node.type}) is a legacy group node; open the workflow "
                              "in the ComfyUI frontend and convert it to a subgraph")
            prompt[flat.id] = self.node_entry(flat, kind)
        for node_id, entry in prompt.items():
            for name, value in list(entry["inputs"].items()):
                if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and value[0] not in prompt:
                    self.warn(f"node {node_id}: input '{name}' pointed at node {value[0]}, which is not in the prompt")
                    del entry["inputs"][name]
        return prompt


def _first_widget_value(node: UINode) -> Any:
    values = node.widgets_values
    if isinstance(values, list) and values:
        return values[0]
    if isinstance(values, dict) and values:
        return next(iter(values.values()))
    return None


def convert_ui_to_api(workflow: dict, object_info: dict) -> ConversionResult:
    """Convert a UI workflow (0.4 or 1, with subgraphs) into an API prompt.

    `object_info` is the `/object_info` payload; it names each node's widget inputs. Node types
    it lacks (and that are not frontend-only) are kept in the prompt with their links, and
    listed in `missing_node_types`. Raises WorkflowError for a workflow that cannot be read.
    """
    warnings: list[str] = []
    parsed = parse_ui_workflow(workflow, warnings.append)
    converter = _Converter(parsed, object_info, warnings)
    prompt = converter.convert()
    return ConversionResult(prompt, list(converter.missing), warnings)

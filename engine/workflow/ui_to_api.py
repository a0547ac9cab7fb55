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

import re
from dataclasses import dataclass, field
from typing import Any

from engine.workflow.errors import WorkflowError
from engine.workflow.ui_graph import (
    MODE_BYPASS,
    MODE_NEVER,
    Graph,
    InputSlot,
    Link,
    UINode,
    UIWorkflow,
    parse_ui_workflow,
)
from engine.workflow.widgets import CONTROL, map_widget_values, widget_layout

# Node types that exist only in the browser. ComfyUI's own four first, then common pack ones.
REROUTE_TYPES = frozenset({"Reroute", "Reroute (rgthree)"})
PRIMITIVE_TYPES = frozenset({"PrimitiveNode"})
SET_TYPES = frozenset({"SetNode"})  # KJNodes: a named, wireless reroute
GET_TYPES = frozenset({"GetNode"})
NOTE_TYPES = frozenset({
    "Note", "MarkdownNote", "Note Plus (mtb)", "Label (rgthree)", "Bookmark (rgthree)",
    "Fast Groups Muter (rgthree)", "Fast Groups Bypasser (rgthree)", "Fast Muter (rgthree)",
    "Fast Bypasser (rgthree)", "Fast Actions Button (rgthree)", "Mute / Bypass Repeater (rgthree)",
    "Mute / Bypass Relay (rgthree)", "Node Collector (rgthree)", "Random Unmuter (rgthree)",
})
# These four are never real backend nodes, even if some pack registers the name.
CORE_FRONTEND_ONLY = frozenset({"Reroute", "PrimitiveNode", "Note", "MarkdownNote"})
FRONTEND_ONLY_TYPES = REROUTE_TYPES | PRIMITIVE_TYPES | SET_TYPES | GET_TYPES | NOTE_TYPES

_REPLACE_PROPERTY = "Run widget replace on values"
_NO_VALUE = object()
_LEGACY_PROXY_PREFIX = re.compile(r"^\s*(\d+)\s*:\s*(.+)$")


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


@dataclass
class _Flat:
    """One node at one place in the expanded graph."""

    id: str  # execution id: "<instance>:...:<node>"
    node: UINode
    graph: Graph
    path: tuple[str, ...]  # ids of the enclosing subgraph instances
    instance: _Flat | None  # the enclosing subgraph instance


def wrap_value(value: Any) -> Any:
    """A list constant is boxed, so the server does not read it as a link."""
    return {"__value__": value} if isinstance(value, list) else value


class _Converter:
    def __init__(self, workflow: UIWorkflow, object_info: dict, warnings: list[str]):
        self.workflow = workflow
        self.object_info = object_info
        self.warnings = warnings
        self.flat: dict[str, _Flat] = {}
        self.missing: dict[str, None] = {}
        self._promoted: dict[str, tuple[dict[int, Any], dict[tuple[str, str], Any]]] = {}
        self._promoted_slots: dict[str, list[int]] = {}

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
    def expand(self, graph: Graph, path: tuple[str, ...], instance: _Flat | None, stack: tuple[str, ...]) -> None:
        for node in sorted(graph.nodes.values(), key=lambda n: n.order):
            flat = _Flat(":".join((*path, node.id)), node, graph, path, instance)
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

    def resolve_input(self, flat: _Flat, slot: int, want_type: Any = None,
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

    def resolve_output(self, flat: _Flat, slot: int, want_type: Any, visited: set) -> _Link | _Value | None:
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

    def _instance_input_index(self, instance: _Flat, def_slot: int) -> int | None:
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

    def _resolve_instance_input(self, instance: _Flat, def_slot: int, visited: set) -> _Link | _Value | None:
        index = self._instance_input_index(instance, def_slot)
        if index is not None and instance.node.inputs[index].link is not None:
            return self.resolve_input(instance, index, None, visited)
        promoted, _ = self.promoted(instance)
        if def_slot in promoted:
            return _Value(promoted[def_slot])
        return None

    def _resolve_instance_output(self, instance: _Flat, slot: int, want_type: Any, visited: set):
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

    def _find_set_node(self, get_flat: _Flat) -> _Flat | None:
        name = _first_widget_value(get_flat.node)
        for node in get_flat.graph.nodes.values():
            if node.type in SET_TYPES and _first_widget_value(node) == name and node.mode != MODE_NEVER:
                return self.flat.get(":".join((*get_flat.path, node.id)))
        self.warn(f"node {get_flat.id} (GetNode): no SetNode named {name!r}; the link is dropped")
        return None

    def _primitive_value(self, flat: _Flat) -> _Value | None:
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

    # -- promoted subgraph widgets --------------------------------------------------------------
    def promoted(self, instance: _Flat) -> tuple[dict[int, Any], dict[tuple[str, str], Any]]:
        """Per instance: {definition input index: value} and {(inner node id, widget): value}."""
        if instance.id not in self._promoted:
            self._promoted[instance.id] = self._read_promoted(instance)
        return self._promoted[instance.id]

    def _link_target(self, graph: Graph, link: Link) -> tuple[UINode, InputSlot] | None:
        target = graph.nodes.get(link.target_id)
        if target is None:
            return None
        slot = next((inp for inp in target.inputs if inp.link == link.id), None)
        if slot is None and link.target_slot < len(target.inputs):
            slot = target.inputs[link.target_slot]
        return None if slot is None else (target, slot)

    def promoted_slots(self, definition: Graph, depth: int = 0) -> list[int]:
        """The definition inputs that show a widget on the instance: those wired to an inner widget."""
        key = definition.subgraph_id or ""
        if key not in self._promoted_slots:
            self._promoted_slots[key] = self._find_promoted_slots(definition, depth)
        return self._promoted_slots[key]

    def _find_promoted_slots(self, definition: Graph, depth: int) -> list[int]:
        slots = []
        for k in range(len(definition.inputs)):
            for link in definition.input_links(k):
                found = self._link_target(definition, link)
                if found is None:
                    continue
                target, inp = found
                if inp.widget_name is not None:
                    slots.append(k)
                    break
                nested = self.workflow.subgraphs.get(target.type)
                if nested is not None and depth < 32:
                    names = [io.name for io in nested.inputs]
                    if inp.name in names and names.index(inp.name) in self.promoted_slots(nested, depth + 1):
                        slots.append(k)
                        break
                elif target.type in self.object_info:
                    layout = widget_layout(target.type, self.object_info[target.type])
                    if any(w.is_value and w.name == inp.name for w in layout):
                        slots.append(k)
                        break
        return slots

    def _read_promoted(self, instance: _Flat) -> tuple[dict[int, Any], dict[tuple[str, str], Any]]:
        node = instance.node
        definition = self.workflow.subgraphs[node.type]
        values, named = node.widgets_values, node.widgets_values_named
        if isinstance(values, dict) and not named:
            named = values
        by_slot: dict[int, Any] = {}
        overrides: dict[tuple[str, str], Any] = {}
        if isinstance(values, list) and isinstance(node.properties.get("proxyWidgets"), list):
            self._read_proxy_widgets(instance, definition, values, by_slot, overrides)
            return by_slot, overrides
        slots = self.promoted_slots(definition)
        if named:
            for k in slots:
                if definition.inputs[k].name in named:
                    by_slot[k] = named[definition.inputs[k].name]
        elif isinstance(values, list):
            # One value per promoted input, in the definition's order; older saves also keep a
            # slot for each promoted seed's control widget: skip those.
            skip_controls = len(values) > len(slots)
            j = 0
            for k in slots:
                if j >= len(values):
                    break
                by_slot[k] = values[j]
                j += 1
                if skip_controls and self._promoted_has_control(definition, k):
                    j += 1
        for k in slots:
            if k not in by_slot:
                default = self._interior_value(instance, definition, k)
                if default is not _NO_VALUE:
                    by_slot[k] = default
        return by_slot, overrides

    def _interior_value(self, instance: _Flat, definition: Graph, def_slot: int) -> Any:
        """A promoted widget with no saved value shows the widget it stands for: when that is a nested
        instance's promoted widget, its value (a plain inner widget keeps its own value anyway)."""
        for link in definition.input_links(def_slot):
            found = self._link_target(definition, link)
            if found is None:
                continue
            target, inp = found
            nested = self.workflow.subgraphs.get(target.type)
            if nested is None:
                if inp.widget_name is not None:
                    return _NO_VALUE
                continue
            names = [io.name for io in nested.inputs]
            nested_flat = self.flat.get(":".join((*instance.path, instance.node.id, target.id)))
            if nested_flat is not None and inp.name in names and names.index(inp.name) in self.promoted_slots(nested):
                return self.promoted(nested_flat)[0].get(names.index(inp.name), _NO_VALUE)
        return _NO_VALUE

    def _read_proxy_widgets(self, instance: _Flat, definition: Graph, values: list,
                            by_slot: dict[int, Any], overrides: dict[tuple[str, str], Any]) -> None:
        """Legacy `properties.proxyWidgets`: `[[inner node id, widget name], ...]` aligned with widgets_values.

        The id "-1" stands for the subgraph's own input of that name.
        """
        names = [io.name for io in definition.inputs]
        for index, entry in enumerate(instance.node.properties["proxyWidgets"]):
            if index >= len(values) or not isinstance(entry, (list, tuple)) or len(entry) < 2:
                continue
            source_id, widget = str(entry[0]), str(entry[1])
            while m := _LEGACY_PROXY_PREFIX.match(widget):  # old saves prefixed "<nested id>: "
                widget = m.group(2)
            source = definition.nodes.get(source_id)
            if source_id == "-1" and widget in names:
                by_slot[names.index(widget)] = values[index]
            elif source is not None and source.type not in self.workflow.subgraphs:
                overrides[(source_id, widget)] = values[index]
            else:
                self.warn(f"subgraph node {instance.id}: promoted widget {list(entry)!r} could not be traced "
                          "to an inner widget; the inner node keeps its own value")

    def _promoted_has_control(self, definition: Graph, def_slot: int) -> bool:
        for link in definition.input_links(def_slot):
            found = self._link_target(definition, link)
            if found is None or found[0].type not in self.object_info:
                continue
            target, inp = found
            name = inp.widget_name or inp.name
            layout = widget_layout(target.type, self.object_info[target.type])
            for k, slot in enumerate(layout):
                if slot.is_value and slot.name == name:
                    return k + 1 < len(layout) and layout[k + 1].kind == CONTROL
        return False

    # -- the prompt -----------------------------------------------------------------------------
    def node_entry(self, flat: _Flat, kind: str) -> dict:
        node = flat.node
        inputs: dict[str, Any] = {}
        info = self.object_info.get(node.type) if kind == "real" else None
        if info is not None:
            values = map_widget_values(node, info, self.warn)
            if flat.instance is not None:
                _, overrides = self.promoted(flat.instance)
                for (inner_id, widget), value in overrides.items():
                    if inner_id == node.id and widget in values:
                        values[widget] = value
            inputs.update({name: wrap_value(v) for name, v in values.items()})
        elif node.widgets_values:
            self.warn(f"node {flat.id} ({node.type}): unknown node type, so its widget values "
                      "could not be named and were left out")
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


def bypass_input_index(node: UINode, slot: int, want_type: Any) -> int:
    """Which input a bypassed node passes on for output `slot` (-1: none fits)."""
    inputs = node.inputs
    if want_type in ("*", "", None, 0):
        if slot < len(inputs):
            return slot
        return 0 if inputs else -1
    out_type = node.outputs[slot].type if slot < len(node.outputs) else "*"
    if slot < len(inputs) and slot_types_match(inputs[slot].type, out_type) and \
            slot_types_match(inputs[slot].type, want_type):
        return slot
    for i, inp in enumerate(inputs):
        if inp.type == want_type:
            return i
    for i, inp in enumerate(inputs):
        if slot_types_match(inp.type, out_type) and slot_types_match(inp.type, want_type):
            return i
    return -1


def slot_types_match(a: Any, b: Any) -> bool:
    """Whether the canvas lets a link join slot types `a` and `b` (wildcards, comma unions, any case)."""
    if a in ("*", "", None, 0) or b in ("*", "", None, 0) or a == b:
        return True
    a_set = {t.strip() for t in str(a).lower().split(",")}
    b_set = {t.strip() for t in str(b).lower().split(",")}
    return bool(a_set & b_set)


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

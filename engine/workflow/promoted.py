"""Widgets a subgraph instance shows for its inputs ("promoted" widgets) and their values.

A definition input that is wired to an inner widget shows that widget on every instance, and
each instance saves its own value. Saves come in several shapes, all read here:
  - `widgets_values`: one value per promoted input, in the definition's order (older saves add a
    slot after a promoted seed for its control widget); `widgets_values_named` by input name;
  - legacy `properties.proxyWidgets`: `[[inner node id, widget name], ...]` aligned with
    `widgets_values`, the id "-1" standing for the subgraph's own input of that name.
An instance that saved no value shows the inner widget's value: for a plain inner node that is
its own widget value anyway; for a nested instance, that instance's promoted value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from engine.workflow.ui_graph import FlatNode, Graph, InputSlot, Link, UINode, UIWorkflow
from engine.workflow.widgets import CONTROL, widget_layout

_NO_VALUE = object()
_LEGACY_PROXY_PREFIX = re.compile(r"^\s*(\d+)\s*:\s*(.+)$")


class PromotedWidgets:
    def __init__(self, workflow: UIWorkflow, object_info: dict, flat: dict[str, FlatNode],
                 warn: Callable[[str], None]):
        self.workflow = workflow
        self.object_info = object_info
        self.flat = flat
        self.warn = warn
        self._values: dict[str, tuple[dict[int, Any], dict[tuple[str, str], Any]]] = {}
        self._slots: dict[str, list[int]] = {}

    def values(self, instance: FlatNode) -> tuple[dict[int, Any], dict[tuple[str, str], Any]]:
        """Per instance: {definition input index: value} and {(inner node id, widget): value}."""
        if instance.id not in self._values:
            self._values[instance.id] = self._read_promoted(instance)
        return self._values[instance.id]

    def _link_target(self, graph: Graph, link: Link) -> tuple[UINode, InputSlot] | None:
        target = graph.nodes.get(link.target_id)
        if target is None:
            return None
        slot = next((inp for inp in target.inputs if inp.link == link.id), None)
        if slot is None and link.target_slot < len(target.inputs):
            slot = target.inputs[link.target_slot]
        return None if slot is None else (target, slot)

    def slots(self, definition: Graph, depth: int = 0) -> list[int]:
        """The definition inputs that show a widget on the instance: those wired to an inner widget."""
        key = definition.subgraph_id or ""
        if key not in self._slots:
            self._slots[key] = self._find_promoted_slots(definition, depth)
        return self._slots[key]

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
                    if inp.name in names and names.index(inp.name) in self.slots(nested, depth + 1):
                        slots.append(k)
                        break
                elif target.type in self.object_info:
                    layout = widget_layout(target.type, self.object_info[target.type])
                    if any(w.is_value and w.name == inp.name for w in layout):
                        slots.append(k)
                        break
        return slots

    def _read_promoted(self, instance: FlatNode) -> tuple[dict[int, Any], dict[tuple[str, str], Any]]:
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
        slots = self.slots(definition)
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

    def _interior_value(self, instance: FlatNode, definition: Graph, def_slot: int) -> Any:
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
            if nested_flat is not None and inp.name in names and names.index(inp.name) in self.slots(nested):
                return self.values(nested_flat)[0].get(names.index(inp.name), _NO_VALUE)
        return _NO_VALUE

    def _read_proxy_widgets(self, instance: FlatNode, definition: Graph, values: list,
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

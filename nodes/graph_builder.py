"""Building subgraphs for node expansion.

A node may return `{"expand": graph, "result": (value_or_link, ...)}`; `GraphBuilder` makes that
graph with node ids that stay the same from run to run, so the expanded nodes hit the cache.
"""

from __future__ import annotations

from typing import Any

from nodes.interface import is_link


class Node:
    def __init__(self, node_id: str, class_type: str, inputs: dict[str, Any]):
        self.id = node_id
        self.class_type = class_type
        self.inputs = dict(inputs)
        self.override_display_id: str | None = None

    def out(self, index: int) -> list:
        return [self.id, index]

    def set_input(self, name: str, value: Any) -> None:
        if value is None:
            self.inputs.pop(name, None)
        else:
            self.inputs[name] = value

    def get_input(self, name: str) -> Any:
        return self.inputs.get(name)

    def set_override_display_id(self, display_id: str) -> None:
        self.override_display_id = display_id

    def serialize(self) -> dict:
        data: dict[str, Any] = {"class_type": self.class_type, "inputs": dict(self.inputs)}
        if self.override_display_id is not None:
            data["override_display_id"] = self.override_display_id
        return data


class GraphBuilder:
    """Collects nodes for an expansion. Ids get a prefix unique to the expanding node's call."""

    _default_prefix_root = ""
    _default_prefix_call_index = 0
    _default_prefix_graph_index = 0

    def __init__(self, prefix: str | None = None):
        self.prefix = prefix if prefix is not None else GraphBuilder.alloc_prefix()
        self.nodes: dict[str, Node] = {}
        self._id_counter = 0

    @classmethod
    def set_default_prefix(cls, prefix_root: str, call_index: int, graph_index: int = 0) -> None:
        cls._default_prefix_root = prefix_root
        cls._default_prefix_call_index = call_index
        cls._default_prefix_graph_index = graph_index

    @classmethod
    def alloc_prefix(cls, root: str | None = None, call_index: int | None = None, graph_index: int | None = None) -> str:
        root = cls._default_prefix_root if root is None else root
        call_index = cls._default_prefix_call_index if call_index is None else call_index
        if graph_index is None:
            graph_index = cls._default_prefix_graph_index
            cls._default_prefix_graph_index += 1
        return f"{root}.{call_index}.{graph_index}."

    def node(self, class_type: str, id: str | None = None, **inputs: Any) -> Node:  # noqa: A002 - dialect name
        if id is None:
            id = str(self._id_counter)
            self._id_counter += 1
        full_id = self.prefix + id
        if full_id in self.nodes:
            return self.nodes[full_id]
        node = Node(full_id, class_type, inputs)
        self.nodes[full_id] = node
        return node

    def lookup_node(self, id: str) -> Node | None:  # noqa: A002
        return self.nodes.get(self.prefix + id)

    def remove_node(self, id: str) -> None:  # noqa: A002
        self.nodes.pop(self.prefix + id, None)

    def finalize(self) -> dict[str, dict]:
        return {node_id: node.serialize() for node_id, node in self.nodes.items()}

    def replace_node_output(self, node_id: str, index: int, new_value: Any) -> None:
        full_id = self.prefix + node_id
        for node in self.nodes.values():
            for name, value in list(node.inputs.items()):
                if is_link(value) and value[0] == full_id and value[1] == index:
                    node.set_input(name, new_value)


def add_graph_prefix(graph: dict, outputs: tuple | list, prefix: str) -> tuple[dict, tuple]:
    """Prefix every node id in `graph` (and the links in `outputs`)."""
    new_graph = {}
    for node_id, info in graph.items():
        inputs = {
            k: [prefix + v[0], v[1]] if is_link(v) else v for k, v in info.get("inputs", {}).items()
        }
        new_info = dict(info)
        new_info["inputs"] = inputs
        new_graph[prefix + node_id] = new_info
    new_outputs = tuple([prefix + o[0], o[1]] if is_link(o) else o for o in outputs)
    return new_graph, new_outputs

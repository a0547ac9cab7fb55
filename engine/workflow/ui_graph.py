"""The UI workflow (what the canvas saves) read into plain typed records.

Both schema versions are accepted wherever they can appear: 0.4 (links as arrays
`[id, origin_id, origin_slot, target_id, target_slot, type]`) and 1 (links as objects), and
subgraph definitions (`definitions.subgraphs`, always object links) nested at any depth.
Native reroutes (`reroutes`, `extra.reroutes`, a link's `parentId`) are drawing aids only:
a link keeps its real origin and target, so nothing here needs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.workflow.errors import WorkflowError

MODE_ALWAYS = 0
MODE_NEVER = 2  # muted
MODE_BYPASS = 4

# The frontend's ids for a subgraph definition's input and output nodes.
SUBGRAPH_INPUT_NODE_ID = "-10"
SUBGRAPH_OUTPUT_NODE_ID = "-20"


@dataclass(frozen=True)
class Link:
    id: int
    origin_id: str
    origin_slot: int
    target_id: str
    target_slot: int
    type: Any = "*"


@dataclass(frozen=True)
class InputSlot:
    name: str
    type: Any
    link: int | None
    widget_name: str | None  # set when the socket stands for a widget (converted or promoted)


@dataclass(frozen=True)
class OutputSlot:
    name: str
    type: Any


@dataclass
class UINode:
    id: str
    type: str
    mode: int
    title: str | None
    order: float
    inputs: list[InputSlot]
    outputs: list[OutputSlot]
    widgets_values: list | dict | None
    widgets_values_named: dict | None
    properties: dict

    def label(self) -> str:
        """How messages name the node: `12 (KSampler)`."""
        return f"{self.id} ({self.type})"


@dataclass(frozen=True)
class SubgraphIO:
    name: str
    type: Any
    link_ids: tuple[int, ...]


@dataclass
class Graph:
    """The root graph, or a subgraph definition (then `subgraph_id` and the IO lists are set)."""

    nodes: dict[str, UINode]
    links: dict[int, Link]
    subgraph_id: str | None = None
    name: str = ""
    input_node_id: str = SUBGRAPH_INPUT_NODE_ID
    output_node_id: str = SUBGRAPH_OUTPUT_NODE_ID
    inputs: list[SubgraphIO] = field(default_factory=list)
    outputs: list[SubgraphIO] = field(default_factory=list)

    def output_link(self, slot: int) -> Link | None:
        """The inner link that feeds the definition's output `slot`."""
        if slot < len(self.outputs):
            for link_id in self.outputs[slot].link_ids:
                if link_id in self.links:
                    return self.links[link_id]
        for link in self.links.values():
            if link.target_id == self.output_node_id and link.target_slot == slot:
                return link
        return None

    def input_links(self, slot: int) -> list[Link]:
        """The inner links leaving the definition's input `slot`."""
        return [link for link in self.links.values()
                if link.origin_id == self.input_node_id and link.origin_slot == slot]


@dataclass
class UIWorkflow:
    root: Graph
    subgraphs: dict[str, Graph]  # by definition uuid, from every level of nesting


@dataclass
class FlatNode:
    """One node at one place in the expanded graph."""

    id: str  # execution id: "<instance>:...:<node>"
    node: UINode
    graph: Graph
    path: tuple[str, ...]  # ids of the enclosing subgraph instances
    instance: FlatNode | None  # the enclosing subgraph instance


def is_ui_workflow(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list)


def node_id_str(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise WorkflowError(f"node id {value!r} is neither a number nor a string")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _slot_index(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise WorkflowError(f"{what}: slot index {value!r} is not a number") from None


def _parse_link(raw: Any, where: str, warn: Callable[[str], None]) -> Link | None:
    try:
        if isinstance(raw, dict):
            return Link(int(raw["id"]), node_id_str(raw["origin_id"]), _slot_index(raw["origin_slot"], where),
                        node_id_str(raw["target_id"]), _slot_index(raw["target_slot"], where), raw.get("type", "*"))
        if isinstance(raw, (list, tuple)) and len(raw) >= 5:
            link_type = raw[5] if len(raw) > 5 else "*"
            return Link(int(raw[0]), node_id_str(raw[1]), _slot_index(raw[2], where),
                        node_id_str(raw[3]), _slot_index(raw[4], where), link_type)
    except (KeyError, TypeError, ValueError) as e:
        warn(f"{where}: skipped a malformed link {raw!r} ({e})")
        return None
    warn(f"{where}: skipped a malformed link {raw!r}")
    return None


def _parse_inputs(raw: Any, where: str) -> list[InputSlot]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise WorkflowError(f"{where}: 'inputs' is not a list")
    slots = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise WorkflowError(f"{where}: input #{i} is not an object")
        link = entry.get("link")
        widget = entry.get("widget")
        widget_name = widget.get("name") if isinstance(widget, dict) else None
        slots.append(InputSlot(str(entry.get("name", "")), entry.get("type", "*"),
                               int(link) if isinstance(link, (int, float)) and not isinstance(link, bool) else None,
                               str(widget_name) if widget_name is not None else None))
    return slots


def _parse_outputs(raw: Any, where: str) -> list[OutputSlot]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise WorkflowError(f"{where}: 'outputs' is not a list")
    return [OutputSlot(str(o.get("name", "")), o.get("type", "*")) if isinstance(o, dict) else OutputSlot("", "*")
            for o in raw]


def _parse_node(raw: Any, index: int, graph_name: str) -> UINode:
    where = f"{graph_name} node #{index}"
    if not isinstance(raw, dict):
        raise WorkflowError(f"{where} is not an object")
    if "id" not in raw:
        raise WorkflowError(f"{where} has no 'id'")
    node_id = node_id_str(raw["id"])
    where = f"{graph_name} node {node_id}"
    node_type = raw.get("type")
    if not isinstance(node_type, str) or not node_type:
        raise WorkflowError(f"{where} has no 'type'")
    mode = raw.get("mode", MODE_ALWAYS)
    widgets_values = raw.get("widgets_values")
    if widgets_values is not None and not isinstance(widgets_values, (list, dict)):
        raise WorkflowError(f"{where} ({node_type}): 'widgets_values' is neither a list nor an object")
    named = raw.get("widgets_values_named")
    order = raw.get("order", index)
    return UINode(
        id=node_id,
        type=node_type,
        mode=mode if isinstance(mode, int) else MODE_ALWAYS,
        title=raw.get("title") if isinstance(raw.get("title"), str) else None,
        order=order if isinstance(order, (int, float)) else index,
        inputs=_parse_inputs(raw.get("inputs"), f"{where} ({node_type})"),
        outputs=_parse_outputs(raw.get("outputs"), f"{where} ({node_type})"),
        widgets_values=widgets_values,
        widgets_values_named=named if isinstance(named, dict) else None,
        properties=raw.get("properties") if isinstance(raw.get("properties"), dict) else {},
    )


def _parse_io(raw: Any) -> list[SubgraphIO]:
    if not isinstance(raw, list):
        return []
    return [SubgraphIO(str(io.get("name", "")), io.get("type", "*"),
                       tuple(int(i) for i in io.get("linkIds") or () if isinstance(i, (int, float))))
            for io in raw if isinstance(io, dict)]


def _parse_graph(data: dict, graph_name: str, warn: Callable[[str], None]) -> Graph:
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list):
        raise WorkflowError(f"{graph_name}: 'nodes' is not a list")
    nodes: dict[str, UINode] = {}
    for i, raw in enumerate(raw_nodes):
        node = _parse_node(raw, i, graph_name)
        if node.id in nodes:
            raise WorkflowError(f"{graph_name}: two nodes have the id {node.id}")
        nodes[node.id] = node
    raw_links = data.get("links")
    raw_links = [] if raw_links is None else raw_links
    if not isinstance(raw_links, list):
        raise WorkflowError(f"{graph_name}: 'links' is not a list")
    links: dict[int, Link] = {}
    for raw in raw_links:
        if raw is None:
            continue  # deleted links leave nulls in some saved files
        link = _parse_link(raw, graph_name, warn)
        if link is not None:
            links[link.id] = link
    return Graph(nodes=nodes, links=links)


def _collect_definitions(data: dict, out: dict[str, Graph], warn: Callable[[str], None]) -> None:
    definitions = data.get("definitions")
    if not isinstance(definitions, dict):
        return
    subgraphs = definitions.get("subgraphs") or []
    if not isinstance(subgraphs, list):
        raise WorkflowError("'definitions.subgraphs' is not a list")
    for i, raw in enumerate(subgraphs):
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise WorkflowError(f"subgraph definition #{i} has no 'id'")
        sg_id = raw["id"]
        if sg_id in out:
            continue  # the same definition copied into several levels
        name = raw.get("name") or sg_id
        graph = _parse_graph(raw, f"subgraph '{name}'", warn)
        graph.subgraph_id = sg_id
        graph.name = str(name)
        for attr, key in (("input_node_id", "inputNode"), ("output_node_id", "outputNode")):
            io_node = raw.get(key)
            if isinstance(io_node, dict) and "id" in io_node:
                setattr(graph, attr, node_id_str(io_node["id"]))
        graph.inputs = _parse_io(raw.get("inputs"))
        graph.outputs = _parse_io(raw.get("outputs"))
        out[sg_id] = graph
        _collect_definitions(raw, out, warn)


def parse_ui_workflow(data: Any, warn: Callable[[str], None]) -> UIWorkflow:
    """Read a UI workflow dict; structural problems raise WorkflowError, small ones go to `warn`."""
    if not is_ui_workflow(data):
        raise WorkflowError("not a UI workflow: there is no 'nodes' list")
    root = _parse_graph(data, "workflow", warn)
    subgraphs: dict[str, Graph] = {}
    _collect_definitions(data, subgraphs, warn)
    return UIWorkflow(root=root, subgraphs=subgraphs)

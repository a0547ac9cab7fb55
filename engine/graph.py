"""The prompt as a graph: node lookup with expansion, and the order nodes become ready in.

`DynamicPrompt` is the API-format prompt plus the nodes that expansion adds while it runs.
`ExecutionList` is a "topological dissolve": nodes are staged from the outputs backwards and become
ready once every strong dependency has finished. Lazy inputs are not dependencies until a node asks
for them, and sources already available (cache hits) are never staged.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import networkx as nx

from nodes.interface import is_link


class NodeNotFoundError(KeyError):
    pass


class DependencyCycleError(Exception):
    def __init__(self, cycle: list[str]):
        self.cycle = cycle
        super().__init__("Dependency cycle detected: " + " -> ".join(cycle + cycle[:1]))


class DuplicateNodeError(Exception):
    pass


class DynamicPrompt:
    """The original prompt and the ephemeral nodes expansion added to it.

    Node packs receive this object as the DYNPROMPT hidden input, so the method names are the dialect's.
    """

    def __init__(self, original_prompt: dict[str, dict]):
        self.original_prompt = original_prompt
        self.ephemeral_prompt: dict[str, dict] = {}
        self.ephemeral_parents: dict[str, str] = {}
        self.ephemeral_display: dict[str, str] = {}

    def get_node(self, node_id: str) -> dict:
        node = self.ephemeral_prompt.get(node_id)
        if node is None:
            node = self.original_prompt.get(node_id)
        if node is None:
            raise NodeNotFoundError(f"Node {node_id} not found")
        return node

    def has_node(self, node_id: str) -> bool:
        return node_id in self.original_prompt or node_id in self.ephemeral_prompt

    def add_ephemeral_node(self, node_id: str, node_info: dict, parent_id: str, display_id: str) -> None:
        self.ephemeral_prompt[node_id] = node_info
        self.ephemeral_parents[node_id] = parent_id
        self.ephemeral_display[node_id] = display_id

    def get_real_node_id(self, node_id: str) -> str:
        while node_id in self.ephemeral_parents:
            node_id = self.ephemeral_parents[node_id]
        return node_id

    def get_parent_node_id(self, node_id: str) -> str | None:
        return self.ephemeral_parents.get(node_id)

    def get_display_node_id(self, node_id: str) -> str:
        while node_id in self.ephemeral_display:
            node_id = self.ephemeral_display[node_id]
        return node_id

    def all_node_ids(self) -> set[str]:
        return set(self.original_prompt) | set(self.ephemeral_prompt)

    def get_original_prompt(self) -> dict[str, dict]:
        return self.original_prompt


def link_graph(prompt: dict[str, dict], node_ids: set[str] | None = None) -> nx.DiGraph:
    """The prompt's links as a directed graph, source -> consumer (only between existing nodes)."""
    graph = nx.DiGraph()
    ids = node_ids if node_ids is not None else set(prompt)
    graph.add_nodes_from(ids)
    for node_id in ids:
        for value in prompt[node_id].get("inputs", {}).values():
            if is_link(value) and value[0] in prompt and value[0] in ids:
                graph.add_edge(value[0], node_id)
    return graph


def find_cycles(prompt: dict[str, dict], node_ids: set[str] | None = None) -> list[list[str]]:
    """Each dependency cycle among `node_ids`, as the list of its nodes in link order."""
    graph = link_graph(prompt, node_ids)
    if nx.is_directed_acyclic_graph(graph):
        return []
    cycles = []
    for component in nx.strongly_connected_components(graph):
        if len(component) == 1:
            (only,) = component
            if not graph.has_edge(only, only):
                continue
        edges = nx.find_cycle(graph.subgraph(component))
        cycles.append([edge[0] for edge in edges])
    return cycles


class ExecutionList:
    """Which staged nodes are ready to run.

    `is_available(node_id)` says whether a node's outputs already exist (a cache hit or finished);
    `lazy_inputs(node_id)` names the inputs that must not be followed until asked for.
    """

    def __init__(self, dynprompt: DynamicPrompt, is_available: Callable[[str], bool],
                 lazy_inputs: Callable[[str], frozenset[str]], output_ids: set[str]):
        self.dynprompt = dynprompt
        self.is_available = is_available
        self.lazy_inputs = lazy_inputs
        self.output_ids = output_ids
        self.pending: set[str] = set()
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, set[str]] = {}  # source -> consumers waiting on it
        self.external_blocks: dict[str, int] = {}
        # Insertion-ordered sets (dicts): O(1) add, remove and pop at either end.
        self._ready_outputs: OrderedDict[str, None] = OrderedDict()
        self._ready: dict[str, None] = {}

    def __len__(self) -> int:
        return len(self.pending)

    def is_empty(self) -> bool:
        return not self.pending

    # -- staging --------------------------------------------------------------------------------
    def add_node(self, node_id: str, include_lazy: bool = False) -> None:
        """Stage a node and, walking back through its links, every unavailable source it needs."""
        stack = [(node_id, include_lazy)]
        while stack:
            current, with_lazy = stack.pop()
            if current in self.pending:
                continue
            self.pending.add(current)
            self.block_count[current] = self.block_count.get(current, 0)
            inputs = self.dynprompt.get_node(current)["inputs"]
            lazy = frozenset() if with_lazy else self.lazy_inputs(current)
            for name, value in inputs.items():
                if not is_link(value) or name in lazy:
                    continue
                source = value[0]
                if self.is_available(source) or not self.dynprompt.has_node(source):
                    continue  # a link to no node fails when its consumer gathers its inputs
                self._add_strong_link(source, current)
                stack.append((source, False))
            self._maybe_ready(current)

    def add_strong_link(self, source: str, consumer: str) -> None:
        """`consumer` must wait for `source` (used for lazy inputs asked for late, and expansion results)."""
        if self.is_available(source):
            return
        self._check_no_cycle(source, consumer)
        self._add_strong_link(source, consumer)
        self.add_node(source)

    def _add_strong_link(self, source: str, consumer: str) -> None:
        consumers = self.blocking.setdefault(source, set())
        if consumer in consumers:
            return
        consumers.add(consumer)
        self.block_count[consumer] = self.block_count.get(consumer, 0) + 1
        self._unready(consumer)

    def _check_no_cycle(self, source: str, consumer: str) -> None:
        # A new edge source -> consumer closes a cycle if consumer already (transitively) blocks source.
        seen = set()
        stack = [consumer]
        path_parent: dict[str, str] = {}
        while stack:
            node = stack.pop()
            if node == source:
                cycle = [source]
                while cycle[-1] != consumer:
                    cycle.append(path_parent[cycle[-1]])
                raise DependencyCycleError(list(reversed(cycle)))
            for nxt in self.blocking.get(node, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    path_parent[nxt] = node
                    stack.append(nxt)

    def add_external_block(self, node_id: str) -> Callable[[], None]:
        """Hold a node back until the returned function is called (async work in flight)."""
        self.external_blocks[node_id] = self.external_blocks.get(node_id, 0) + 1
        self.block_count[node_id] = self.block_count.get(node_id, 0) + 1
        self._unready(node_id)

        def unblock() -> None:
            self.external_blocks[node_id] -= 1
            self.block_count[node_id] -= 1
            self._maybe_ready(node_id)

        return unblock

    def _unready(self, node_id: str) -> None:
        self._ready.pop(node_id, None)
        self._ready_outputs.pop(node_id, None)

    def _maybe_ready(self, node_id: str) -> None:
        if node_id in self.pending and self.block_count.get(node_id, 0) == 0:
            if node_id in self.output_ids:
                self._ready_outputs[node_id] = None
            else:
                self._ready[node_id] = None

    # -- running --------------------------------------------------------------------------------
    def next_ready(self) -> str | None:
        """The next node to run: an output first (so results show early), else the newest ready node.

        Taking the newest ready node finishes one branch before starting another, which keeps
        intermediate results short-lived.
        """
        if self._ready_outputs:
            return self._ready_outputs.popitem(last=False)[0]
        if self._ready:
            return self._ready.popitem()[0]
        return None

    def requeue(self, node_id: str) -> None:
        """Put a node that is not finished (it asked for more inputs) back among the staged ones."""
        self._maybe_ready(node_id)

    def complete(self, node_id: str) -> None:
        self.pending.discard(node_id)
        self.block_count.pop(node_id, None)
        for consumer in self.blocking.pop(node_id, ()):
            self.block_count[consumer] -= 1
            self._maybe_ready(consumer)

    def stuck_nodes(self) -> list[str]:
        return sorted(self.pending)

"""Cache keys for the nodes of one run (see engine/cache.py for why keys are interned Merkle keys)."""

from __future__ import annotations

import inspect
import logging
from typing import Any

from engine.cache import KeyInterner, to_hashable
from engine.graph import DependencyCycleError, DynamicPrompt
from nodes.interface import NodeDef, is_link

log = logging.getLogger("loom.engine")


def unwrap_constant(value: Any) -> Any:
    """List constants travel as {"__value__": [...]} so they are not mistaken for links."""
    if isinstance(value, dict) and "__value__" in value and len(value) == 1:
        return value["__value__"]
    return value


def _accepted(func: Any, kwargs: dict) -> dict:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params):
        return kwargs
    names = {p.name for p in params}
    return {k: v for k, v in kwargs.items() if k in names}


def is_changed_value(node_def: NodeDef, inputs: dict, node_id: str) -> Any:
    """IS_CHANGED(**constants); linked inputs arrive as None. Failure means "always run" (NaN)."""
    specs = node_def.inputs()
    kwargs: dict[str, Any] = {}
    for name, spec in specs.items():
        if spec.section == "hidden":
            if spec.type == "UNIQUE_ID":
                kwargs[name] = node_id
            continue
        if name in inputs:
            value = inputs[name]
            kwargs[name] = None if is_link(value) else unwrap_constant(value)
    try:
        return node_def.cls.IS_CHANGED(**_accepted(node_def.cls.IS_CHANGED, kwargs))
    except Exception as e:  # a failing IS_CHANGED must not fail the run: the node just re-runs
        log.warning("IS_CHANGED of node %s (%s) failed: %s", node_id, node_def.class_type, e)
        return float("nan")


class KeyBuilder:
    """Computes and remembers the keys of one run's nodes."""

    def __init__(self, dynprompt: DynamicPrompt, node_defs: dict[str, NodeDef], interner: KeyInterner):
        self.dynprompt = dynprompt
        self.node_defs = node_defs      # class_type -> NodeDef, for every class in the run
        self.interner = interner
        self.keys: dict[str, int] = {}
        self.is_changed: dict[str, Any] = {}

    def key(self, node_id: str) -> int:
        key = self.keys.get(node_id)
        if key is None:
            self.compute([node_id])
            key = self.keys[node_id]
        return key

    def compute(self, roots: list[str]) -> None:
        """Keys for `roots` and everything they link to, iteratively (graphs may be 10,000 deep).

        This runs over every node of every run, cached or not, so it is written for speed.
        """
        keys = self.keys
        original = self.dynprompt.original_prompt
        ephemeral = self.dynprompt.ephemeral_prompt
        for root in roots:
            if root in keys:
                continue
            stack = [root]
            on_path: set[str] = set()  # expanded, not finished: the current DFS path
            while stack:
                node_id = stack[-1]
                if node_id in keys:
                    stack.pop()
                    continue
                info = ephemeral.get(node_id) or original[node_id]
                inputs = info["inputs"]
                if node_id not in on_path:
                    on_path.add(node_id)
                    waiting = False
                    for value in inputs.values():
                        if type(value) is list and len(value) == 2 and type(value[0]) is str \
                                and type(value[1]) in _INDEX_TYPES:
                            source = value[0]
                            if source not in keys and (source in original or source in ephemeral):
                                if source in on_path:
                                    raise DependencyCycleError([source, node_id])
                                stack.append(source)
                                waiting = True
                    if waiting:
                        continue
                stack.pop()
                on_path.discard(node_id)
                keys[node_id] = self._signature_key(node_id, info["class_type"], inputs)

    def _signature_key(self, node_id: str, class_type: str, inputs: dict) -> int:
        keys = self.keys
        items = []
        for name, value in inputs.items():
            kind = type(value)
            if kind is int or kind is str or kind is bool or value is None:
                items.append((name, value))
            elif kind is list and len(value) == 2 and type(value[0]) is str and type(value[1]) in _INDEX_TYPES:
                source_key = keys.get(value[0])
                if source_key is None:  # a link to a node that does not exist: never cacheable
                    return self.interner.fresh()
                items.append((name, ("__link__", source_key, int(value[1]))))
            else:
                items.append((name, to_hashable(value)))
        items.sort()
        changed = None
        identity = None
        node_def = self.node_defs.get(class_type)
        if node_def is not None:
            if node_def.has_is_changed:
                changed = to_hashable(is_changed_value(node_def, inputs, node_id))
                self.is_changed[node_id] = changed
            if node_def.not_idempotent or _has_unique_id(node_def):
                identity = node_id
        try:
            return self.interner.intern((class_type, changed, identity, tuple(items)))
        except TypeError:  # something unhashable slipped through: treat the node as always-run
            return self.interner.fresh()


_INDEX_TYPES = (int, float)
_unique_id_cache: dict[type, bool] = {}


def _has_unique_id(node_def: NodeDef) -> bool:
    cls = node_def.cls
    cached = _unique_id_cache.get(cls)
    if cached is None:
        hidden = (node_def.input_types().get("hidden") or {}).values()
        cached = any((h if isinstance(h, str) else h[0]) == "UNIQUE_ID" for h in hidden)
        _unique_id_cache[cls] = cached
    return cached

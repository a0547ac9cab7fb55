"""The output cache between runs: keys that ignore node ids, and a bounded LRU store.

A node's key is its class, its constants (and IS_CHANGED value) and the keys of the nodes it links to,
so it is a Merkle key over the node's ancestry. Keys are interned to small integers: the interned
signature holds the ancestors' integers, never their whole ancestry, so a key costs O(inputs) to make
however deep the graph, and equal subgraphs under other ids get equal keys.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

try:  # torch is a dependency of the node library, but the engine itself works without it
    import torch
except ImportError:  # pragma: no cover
    torch = None


class _Unique:
    """A value equal to nothing else: makes a key that can never hit."""

    __slots__ = ("n",)
    _counter = itertools.count()

    def __init__(self) -> None:
        self.n = next(self._counter)

    def __repr__(self) -> str:
        return f"<unique {self.n}>"


def to_hashable(value: Any) -> Any:
    """A hashable stand-in for a constant input; unknown objects become unique (never equal)."""
    if value is None or isinstance(value, (bool, int, str, bytes)):
        return value
    if isinstance(value, float):
        return _Unique() if math.isnan(value) else value
    if isinstance(value, (list, tuple)):
        return ("__seq__", type(value).__name__, tuple(to_hashable(v) for v in value))
    if isinstance(value, dict):
        return ("__map__", tuple(sorted(((str(k), to_hashable(v)) for k, v in value.items()), key=lambda kv: kv[0])))
    if isinstance(value, (set, frozenset)):
        return ("__set__", frozenset(to_hashable(v) for v in value))
    return _Unique()


class KeyInterner:
    """Maps structural signatures to small ints, stable for the interner's lifetime."""

    def __init__(self, max_entries: int = 2_000_000):
        self._ids: dict[tuple, int] = {}
        self._counter = itertools.count(1)
        self.max_entries = max_entries

    def __len__(self) -> int:
        return len(self._ids)

    def intern(self, signature: tuple) -> int:
        key = self._ids.get(signature)
        if key is None:
            key = next(self._counter)
            self._ids[signature] = key
        return key

    def fresh(self) -> int:
        """A key that no signature maps to (for nodes that must always run)."""
        return next(self._counter)

    def full(self) -> bool:
        return len(self._ids) >= self.max_entries

    def clear(self) -> None:
        self._ids.clear()


def value_nbytes(value: Any, _seen: set[int] | None = None) -> int:
    """Bytes of tensor and array data reachable from a node output (shared storage counted once)."""
    seen = _seen if _seen is not None else set()
    stack = [value]
    total = 0
    while stack:
        v = stack.pop()
        if torch is not None and isinstance(v, torch.Tensor):
            if v.device.type == "meta":
                continue
            storage = v.untyped_storage()
            ptr = storage.data_ptr()
            if ptr not in seen:
                seen.add(ptr)
                total += storage.nbytes()
        elif isinstance(v, np.ndarray):
            if id(v) not in seen:
                seen.add(id(v))
                total += v.nbytes
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, (bytes, bytearray)):
            total += len(v)
    return total


@dataclass
class CacheEntry:
    outputs: list[list[Any]]     # per output slot, the list of values (list semantics of the dialect)
    ui: dict | None
    nbytes: int


class OutputCache:
    """What every cache offers the executor."""

    def get(self, key: int) -> CacheEntry | None:
        raise NotImplementedError

    def put(self, key: int, outputs: list[list[Any]], ui: dict | None) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError

    def stats(self) -> dict:
        raise NotImplementedError


class LRUCache(OutputCache):
    """Least-recently-used entries go first once the tensor bytes held pass the RAM budget.

    An entry larger than the whole budget is not kept. `max_entries` also bounds the count, since
    thousands of tiny outputs cost memory the byte count does not see.
    """

    def __init__(self, ram_budget_bytes: int = 4 << 30, max_entries: int = 100_000):
        self.budget_bytes = int(ram_budget_bytes)
        self.max_entries = max_entries
        self._entries: OrderedDict[int, CacheEntry] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def get(self, key: int) -> CacheEntry | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: int, outputs: list[list[Any]], ui: dict | None) -> None:
        nbytes = value_nbytes((outputs, ui))
        if nbytes > self.budget_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old.nbytes
        self._entries[key] = CacheEntry(outputs, ui, nbytes)
        self.bytes += nbytes
        while self._entries and (self.bytes > self.budget_bytes or len(self._entries) > self.max_entries):
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= evicted.nbytes
            self.evictions += 1

    def __contains__(self, key: int) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def stats(self) -> dict:
        return {"kind": "lru", "hits": self.hits, "misses": self.misses, "entries": len(self._entries),
                "bytes": self.bytes, "budget_bytes": self.budget_bytes, "evictions": self.evictions}


class NullCache(OutputCache):
    """Keeps nothing between runs (`--cache-none`): every run computes every node."""

    def __init__(self) -> None:
        self.misses = 0

    def get(self, key: int) -> CacheEntry | None:
        self.misses += 1
        return None

    def put(self, key: int, outputs: list[list[Any]], ui: dict | None) -> None:
        return None

    def clear(self) -> None:
        return None

    def stats(self) -> dict:
        return {"kind": "none", "hits": 0, "misses": self.misses, "entries": 0, "bytes": 0,
                "budget_bytes": 0, "evictions": 0}

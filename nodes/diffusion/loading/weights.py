"""A weight file opened for inspection: key shapes now, tensors on demand, one prefix at a time."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from nodes.diffusion.loading.state_dict import describe_keys, read_shapes, read_state_dict


class WeightFile:
    def __init__(self, path: str | os.PathLike, allow_pickle: bool | None = None):
        self.path = Path(path)
        self.allow_pickle = allow_pickle
        self.shapes, self._get = read_shapes(self.path, allow_pickle)
        self.keys = set(self.shapes)

    @classmethod
    def from_mapping(cls, name: str, state: Mapping) -> WeightFile:
        """A state dict already in memory (meta tensors work: only shapes are read until `tensors`)."""
        self = cls.__new__(cls)
        self.path = Path(name)
        self.allow_pickle = None
        self.shapes = shapes_of(state)
        self._get = state.__getitem__
        self.keys = set(self.shapes)
        self._state = state
        return self

    @property
    def name(self) -> str:
        return self.path.name

    def describe(self) -> str:
        return describe_keys(self.keys)

    def get(self, key: str):
        return self._get(key)

    def strip(self, prefix: str) -> dict[str, tuple]:
        """Shapes of the keys under `prefix`, with the prefix removed."""
        return {k[len(prefix):]: s for k, s in self.shapes.items() if k.startswith(prefix)}

    def tensors(self, prefix: str = "", keep_prefix: bool = False) -> dict:
        """The tensors under `prefix` (read from disk now; safetensors reads only these)."""
        names = [k for k in self.shapes if k.startswith(prefix)]
        state = self._read(names)
        return state if keep_prefix else {k[len(prefix):]: v for k, v in state.items()}

    def _read(self, names: Iterable[str]) -> dict:
        names = list(names)
        if getattr(self, "_state", None) is not None:
            return {k: self._state[k] for k in names}
        if self.path.suffix.lower() in (".safetensors", ".sft"):
            return read_state_dict(self.path, keys=names)
        return {k: self._get(k) for k in names}


def meta_tensors(shapes: Mapping[str, tuple]) -> dict:
    """Shape-only tensors, to run key converters over a file's layout without reading it."""
    import torch

    return {k: torch.empty(s, device="meta") for k, s in shapes.items()}


def shapes_of(state: Mapping) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in state.items()}

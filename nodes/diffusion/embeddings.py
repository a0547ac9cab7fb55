"""Textual-inversion embeddings from the embeddings folder(s), in the formats people download.

Formats: A1111 safetensors (`emb_params`), SDXL safetensors (`clip_l` / `clip_g`), A1111 .pt
(`string_to_param`), diffusers .bin (`{token: tensor}`), embeddings bundled in a LoRA
(`bundle_emb.*`), and a bare tensor per key. `.pt`/`.bin` are read with
torch.load(weights_only=True), which loads tensors and plain containers only.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

log = logging.getLogger("loom.embeddings")

EXTENSIONS = (".safetensors", ".pt", ".bin")
_cache: OrderedDict[tuple, Any] = OrderedDict()
_lock = threading.Lock()


def embedding_dirs() -> list[Path]:
    from nodes import paths

    return [d for d in paths.folders().model_folder_paths("embeddings") if d.is_dir()]


def find_file(name: str, dirs: list[Path] | None = None) -> Path | None:
    """`name` (with or without extension, maybe in a subfolder) inside one of the folders."""
    from nodes.paths import UnsafePath, safe_join

    for root in dirs if dirs is not None else embedding_dirs():
        for candidate in [name] + [name + ext for ext in EXTENSIONS]:
            try:
                path = safe_join(root, candidate)
            except UnsafePath:
                return None
            if path.is_file():
                return path
    return None


def _read(path: Path) -> Any:
    import torch

    if path.suffix.lower() in (".safetensors", ".sft"):
        from safetensors.torch import load_file

        return load_file(os.fspath(path), device="cpu")
    return torch.load(os.fspath(path), map_location="cpu", weights_only=True)


def extract(data: Any, clip_name: str, width: int) -> Any | None:
    """The [n, width] vectors for one encoder from a loaded embedding file, or None."""
    import torch

    def fits(t: Any) -> bool:
        return isinstance(t, torch.Tensor) and t.shape[-1] == width

    if isinstance(data, torch.Tensor):
        return data if fits(data) else None
    if isinstance(data, list):
        found = [t.reshape(-1, width) for item in data if isinstance(item, dict) for t in item.values() if fits(t)]
        return torch.cat(found) if found else None
    if not isinstance(data, dict):
        return None
    if "string_to_param" in data and isinstance(data["string_to_param"], dict):
        values = [v for v in data["string_to_param"].values() if fits(v)]
        return values[0] if values else None
    if clip_name in data and fits(data[clip_name]):
        return data[clip_name]
    if "emb_params" in data and fits(data["emb_params"]):
        return data["emb_params"]
    bundled = [v for k, v in data.items() if k.startswith("bundle_emb.") and
               (k.endswith(".string_to_param.*") or k.endswith("." + clip_name)) and fits(v)]
    if bundled:
        return torch.cat([b.reshape(-1, width) for b in bundled])
    tensors = [v for v in data.values() if fits(v)]
    return tensors[0] if tensors else None


def load_embedding(name: str, clip_name: str, width: int, dirs: list[Path] | None = None) -> Any | None:
    """Vectors [n, width] for `embedding:name`, or None (missing file, or none of this width)."""
    path = find_file(name, dirs)
    if path is None:
        return None
    key = (os.fspath(path), path.stat().st_mtime_ns, clip_name, width)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    try:
        data = _read(path)
    except Exception as e:  # a broken file is skipped, as ComfyUI does, but said
        log.warning("embedding %s could not be read (%s); ignoring it", path.name, e)
        return None
    vectors = extract(data, clip_name, width)
    if vectors is None:
        log.warning("embedding %s has no vectors of width %d (for %s); ignoring it", path.name, width, clip_name)
        return None
    vectors = vectors.detach().float().reshape(-1, width)
    with _lock:
        _cache[key] = vectors
        while len(_cache) > 64:
            _cache.popitem(last=False)
    return vectors

"""Reading weight files: safetensors always, pickles (.ckpt/.pt/.bin/.pth) only when allowed.

A pickle can run code when unpickled; `torch.load(weights_only=True)` narrows that, and Loom still
asks for an explicit opt-in (`allow_pickle=True` or LOOM_ALLOW_PICKLE_CHECKPOINTS=1).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

ALLOW_PICKLE_ENV = "LOOM_ALLOW_PICKLE_CHECKPOINTS"
SAFETENSORS_SUFFIXES = {".safetensors", ".sft"}
PICKLE_SUFFIXES = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".pkl"}


class ModelLoadError(ValueError):
    """A model file that cannot be loaded; the message names the file and what was found."""


def pickle_allowed(allow_pickle: bool | None = None) -> bool:
    if allow_pickle is not None:
        return allow_pickle
    return os.environ.get(ALLOW_PICKLE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelLoadError(f"{path} is a folder, not a weight file")


def read_shapes(path: str | os.PathLike, allow_pickle: bool | None = None) -> tuple[dict[str, tuple], Callable]:
    """Key -> shape without reading the weights (safetensors), and a getter for single tensors.

    Pickles have no header, so they are loaded whole (once they are allowed).
    """
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        from safetensors import safe_open

        try:
            with safe_open(os.fspath(path), framework="pt") as f:
                shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        except Exception as e:
            raise ModelLoadError(f"{path.name} is not a readable safetensors file ({e})") from e

        def get(key: str):
            with safe_open(os.fspath(path), framework="pt") as f:
                return f.get_tensor(key)

        return shapes, get
    state = read_state_dict(path, allow_pickle=allow_pickle)
    return {k: tuple(v.shape) for k, v in state.items()}, state.__getitem__


def read_state_dict(path: str | os.PathLike, allow_pickle: bool | None = None,
                    keys: Iterable[str] | None = None) -> dict:
    """All tensors of a weight file (or only `keys`), on the CPU."""
    path = Path(path)
    _check_file(path)
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        from safetensors import safe_open

        try:
            with safe_open(os.fspath(path), framework="pt") as f:
                names = list(f.keys()) if keys is None else [k for k in keys]
                return {k: f.get_tensor(k) for k in names}
        except Exception as e:
            raise ModelLoadError(f"{path.name} is not a readable safetensors file ({e})") from e
    if suffix in PICKLE_SUFFIXES:
        if not pickle_allowed(allow_pickle):
            raise ModelLoadError(
                f"{path.name} is a pickle file ({suffix}), which can run code when loaded. Convert it to "
                f".safetensors, or allow pickles explicitly with {ALLOW_PICKLE_ENV}=1 (Loom then loads it with "
                "torch.load(weights_only=True)).")
        import torch

        try:
            data = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        except Exception as e:
            raise ModelLoadError(f"{path.name} could not be read as a weights-only torch file ({e})") from e
        if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
            data = data["state_dict"]
        if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
            raise ModelLoadError(f"{path.name} does not hold a state dict (found {type(data).__name__})")
        state = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
        if keys is not None:
            state = {k: state[k] for k in keys}
        return state
    raise ModelLoadError(f"{path.name}: unsupported file type {suffix or '(none)'}; expected .safetensors "
                         f"(or {', '.join(sorted(PICKLE_SUFFIXES))} with {ALLOW_PICKLE_ENV}=1)")


def describe_keys(keys: Iterable[str], limit: int = 6) -> str:
    """'1131 tensors under model.diffusion_model (686), cond_stage_model (197), ...' for error messages."""
    counts: dict[str, int] = {}
    keys = list(keys)
    for k in keys:
        parts = k.split(".")
        head = ".".join(parts[:2]) if parts[0] in ("model", "conditioner", "first_stage_model") else parts[0]
        counts[head] = counts.get(head, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
    more = "" if len(counts) <= limit else f", and {len(counts) - limit} more groups"
    listed = ", ".join(f"{name} ({n})" for name, n in top)
    return f"{len(keys)} tensors under {listed}{more}" if keys else "no tensors"

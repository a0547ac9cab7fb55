"""Which model files a prompt needs, and which ones a worker holds: the two sides of model affinity.

Both sides name a model the way workflows do: its path relative to its model folder
("loom-demo-sd1.safetensors", "sdxl/base.safetensors"). Worker and server may keep the model folders
at different places; the names are what they agree on (the cluster's manifest check makes sure).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

from nodes import paths


def model_files() -> Iterator[tuple[str, str, Path]]:
    """(folder kind, model name, full path) of every model file (listings cached by `paths`)."""
    for kind in paths.MODEL_FOLDERS:
        for name in paths.get_filename_list(kind):
            full = paths.get_full_path(kind, name)
            if full is not None:
                yield kind, name, full


def model_names() -> set[str]:
    """Every model file name in every model folder kind (cached by `paths` until a folder changes)."""
    names: set[str] = set()
    for kind in paths.MODEL_FOLDERS:
        names.update(paths.get_filename_list(kind))
    return names


def constant_strings(prompt: dict) -> Iterator[str]:
    """The string values of a prompt's inputs (links, numbers and malformed nodes are skipped)."""
    for node in prompt.values():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if isinstance(inputs, dict):
            yield from (value for value in inputs.values() if isinstance(value, str))


def models_in_prompt(prompt: dict, known: set[str] | None = None) -> set[str]:
    """The model names among a prompt's constant string inputs."""
    known = model_names() if known is None else known
    return {value for value in constant_strings(prompt) if value in known}


def names_by_real_path() -> dict[str, str]:
    """Real path -> model name for every model file (symlinked models map to the name they are listed by)."""
    names: dict[str, str] = {}
    for _, name, full in model_files():
        names.setdefault(os.path.realpath(full), name)
        if full.is_dir():  # a diffusers folder is loaded by its model_index.json
            names.setdefault(os.path.realpath(full / "model_index.json"), name)
    return names


def loaded_model_files() -> dict[str, int]:
    """Model name -> bytes for what this process's model manager holds (nothing before a model was used)."""
    management = sys.modules.get("nodes.diffusion.management")
    manager = management.existing_model_manager() if management is not None else None
    if manager is None:
        return {}
    names = names_by_real_path()
    held: dict[str, int] = {}
    for real_path, size in manager.loaded_files().items():
        name = names.get(real_path) or Path(real_path).name
        held[name] = held.get(name, 0) + size
    return held

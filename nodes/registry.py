"""The node registry: every node class Loom knows, by class_type.

Built-in node modules each export `NODE_CLASS_MAPPINGS` (and optionally
`NODE_DISPLAY_NAME_MAPPINGS`), the same contract a ComfyUI node pack follows.
"""

from __future__ import annotations

import importlib
import logging
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from nodes.interface import NodeDef

log = logging.getLogger("loom.nodes")

# Modules that hold Loom's built-in nodes. A module that fails to import is reported, not fatal.
BUILTIN_MODULES = (
    "nodes.builtin.image",
    "nodes.builtin.mask",
    "nodes.builtin.latent",
    "nodes.builtin.primitives",
    "nodes.builtin.utility",
    "nodes.diffusion.nodes_loaders",
    "nodes.diffusion.nodes_text",
    "nodes.diffusion.nodes_conditioning",
    "nodes.diffusion.nodes_sampling",
    "nodes.diffusion.nodes_vae",
    "nodes.diffusion.nodes_controlnet",
    "nodes.diffusion.nodes_upscale",
)


@dataclass
class PackInfo:
    """A loaded (or failed) node pack, as `loom nodes list` and the server report it."""

    name: str
    path: Path
    module_name: str
    node_names: list[str] = field(default_factory=list)
    load_seconds: float = 0.0
    error: str | None = None
    web_dir: Path | None = None


class NodeRegistry:
    def __init__(self) -> None:
        self._defs: dict[str, NodeDef] = {}
        self.builtin_names: set[str] = set()
        self.packs: list[PackInfo] = []
        self.web_dirs: dict[str, Path] = {}
        self.load_errors: dict[str, str] = {}

    # -- registration ---------------------------------------------------------------------------
    def register(self, class_type: str, cls: type, display_name: str | None = None,
                 python_module: str = "nodes") -> NodeDef:
        node_def = NodeDef(class_type, cls, display_name, python_module)
        self._defs[class_type] = node_def
        return node_def

    def register_mappings(self, mappings: dict, display_names: dict | None, python_module: str,
                          builtin: bool = False) -> list[str]:
        """Register a module's NODE_CLASS_MAPPINGS. Packs cannot replace built-in nodes."""
        added = []
        display_names = display_names or {}
        for class_type, cls in mappings.items():
            if not builtin and class_type in self.builtin_names:
                log.warning("%s: node %s clashes with a built-in node and is ignored", python_module, class_type)
                continue
            self.register(class_type, cls, display_names.get(class_type), python_module)
            if builtin:
                self.builtin_names.add(class_type)
            added.append(class_type)
        return added

    def load_builtins(self, modules: Iterable[str] = BUILTIN_MODULES) -> None:
        for module_name in modules:
            try:
                module = importlib.import_module(module_name)
            except Exception:
                self.load_errors[module_name] = traceback.format_exc()
                log.error("built-in node module %s failed to import:\n%s", module_name, self.load_errors[module_name])
                continue
            self.register_mappings(getattr(module, "NODE_CLASS_MAPPINGS", {}),
                                   getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", {}), "nodes", builtin=True)

    # -- lookup ----------------------------------------------------------------------------------
    def get(self, class_type: str) -> NodeDef | None:
        return self._defs.get(class_type)

    def __contains__(self, class_type: object) -> bool:
        return class_type in self._defs

    def __len__(self) -> int:
        return len(self._defs)

    def names(self) -> list[str]:
        return list(self._defs)

    def class_mappings(self) -> dict[str, type]:
        return {name: d.cls for name, d in self._defs.items()}

    def display_names(self) -> dict[str, str]:
        return {name: d.display_name for name, d in self._defs.items()}

    def object_info(self, class_type: str | None = None) -> dict:
        """The `/object_info` payload; a node whose INPUT_TYPES raises is logged and left out."""
        names = [class_type] if class_type is not None else list(self._defs)
        info = {}
        for name in names:
            node_def = self._defs.get(name)
            if node_def is None:
                continue
            try:
                info[name] = node_def.object_info()
            except Exception:
                log.exception("object_info failed for node %s", name)
        return info


def builtin_registry() -> NodeRegistry:
    """A registry with Loom's built-in nodes only."""
    registry = NodeRegistry()
    registry.load_builtins()
    return registry

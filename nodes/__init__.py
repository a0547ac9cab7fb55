"""Loom's nodes package, which is also what a ComfyUI node pack gets from `import nodes`.

ComfyUI's `nodes` module exposes the node mappings, MAX_RESOLUTION, interrupt helpers and the core
node classes by name (`nodes.KSampler`, `nodes.SaveImage`, ...). They are answered lazily here by
a module `__getattr__`, so `import nodes.interface` stays cheap (no torch) and Loom's own code is
untouched. The mappings are those of the active registry: the one `nodes.custom_loader` is loading
packs into (the server's or the CLI's), or else a registry of the built-in nodes made on demand.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nodes.registry import NodeRegistry

_active_registry: NodeRegistry | None = None


def set_active_registry(registry: NodeRegistry | None) -> None:
    """The registry whose nodes `nodes.NODE_CLASS_MAPPINGS` shows (set by the loader)."""
    global _active_registry
    _active_registry = registry


def active_registry() -> NodeRegistry:
    global _active_registry
    if _active_registry is None:
        from nodes.registry import builtin_registry

        _active_registry = builtin_registry()
    return _active_registry


class _LiveMapping(MutableMapping):
    """A dict-like view of the active registry (class mappings or display names)."""

    def __init__(self, display: bool):
        self._display = display

    def _data(self) -> dict:
        reg = active_registry()
        return reg.display_names() if self._display else reg.class_mappings()

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())

    def __contains__(self, key: object) -> bool:
        return key in active_registry()

    def __setitem__(self, key: str, value: Any) -> None:
        reg = active_registry()
        if self._display:
            node_def = reg.get(key)
            if node_def is not None:
                node_def.display_name = value
            return
        reg.register_mappings({key: value}, None, getattr(value, "RELATIVE_PYTHON_MODULE", "custom_nodes"))

    def __delitem__(self, key: str) -> None:
        raise TypeError("Loom does not let a pack remove registered nodes")

    def __repr__(self) -> str:
        return f"<Loom {'NODE_DISPLAY_NAME_MAPPINGS' if self._display else 'NODE_CLASS_MAPPINGS'}: {len(self)} nodes>"


def interrupt_processing(value: bool = True) -> None:
    """ComfyUI's nodes.interrupt_processing: interrupt the running prompt (or clear the flag)."""
    from nodes import context

    ctx = context.current()
    flag = ctx.interrupt if ctx is not None else context.global_interrupt()
    (flag.set if value else flag.clear)()


def before_node_execution() -> None:
    """ComfyUI's nodes.before_node_execution: raise if the run was interrupted."""
    from nodes import context

    context.check_interrupt()


def common_ksampler(model: Any, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str,
                    positive: Any, negative: Any, latent: dict, denoise: float = 1.0, disable_noise: bool = False,
                    start_step: int | None = None, last_step: int | None = None,
                    force_full_denoise: bool = False) -> tuple:
    """ComfyUI's nodes.common_ksampler, run through Loom's KSampler / KSamplerAdvanced nodes."""
    reg = active_registry()
    plain = not disable_noise and start_step is None and last_step is None and not force_full_denoise
    if plain and "KSampler" in reg:
        node = reg.get("KSampler").cls()
        return getattr(node, node.FUNCTION)(model=model, seed=seed, steps=steps, cfg=cfg, sampler_name=sampler_name,
                                            scheduler=scheduler, positive=positive, negative=negative,
                                            latent_image=latent, denoise=denoise)
    if denoise == 1.0 and "KSamplerAdvanced" in reg:
        node = reg.get("KSamplerAdvanced").cls()
        return getattr(node, node.FUNCTION)(
            model=model, add_noise="disable" if disable_noise else "enable", noise_seed=seed, steps=steps, cfg=cfg,
            sampler_name=sampler_name, scheduler=scheduler, positive=positive, negative=negative,
            latent_image=latent, start_at_step=start_step or 0,
            end_at_step=steps if last_step is None else last_step,
            return_with_leftover_noise="disable" if force_full_denoise else "enable")
    raise NotImplementedError("Loom does not implement nodes.common_ksampler with these arguments "
                              "(denoise < 1 together with start/last step or disable_noise), "
                              "or its KSampler nodes are not available")


_COMPAT_NAMES = {"NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "MAX_RESOLUTION", "EXTENSION_WEB_DIRS"}


def __getattr__(name: str) -> Any:
    if name.startswith("_"):
        raise AttributeError(name)
    if name == "NODE_CLASS_MAPPINGS":
        return _LiveMapping(display=False)
    if name == "NODE_DISPLAY_NAME_MAPPINGS":
        return _LiveMapping(display=True)
    if name == "MAX_RESOLUTION":
        from nodes.interface import MAX_RESOLUTION

        return MAX_RESOLUTION
    if name == "EXTENSION_WEB_DIRS":
        return {k: str(v) for k, v in active_registry().web_dirs.items()}
    # A submodule (`from nodes import paths`) must be imported by the import system, not looked up.
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:
        raise AttributeError(name)
    reg = active_registry()
    if name in reg.builtin_names:
        return reg.get(name).cls
    raise AttributeError(f"module 'nodes' has no attribute {name!r} (Loom does not implement ComfyUI's "
                         f"nodes.{name}; core node classes are available by their class_type)")

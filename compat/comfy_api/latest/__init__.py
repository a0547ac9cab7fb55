"""`comfy_api.latest`: ComfyExtension and the `io` schema module (see comfy_api/__init__.py)."""

from __future__ import annotations

from _loom_compat import missing_attribute

from comfy_api.latest import _io as io


class ComfyExtension:
    """A pack's V3 entry: `get_node_list()` returns its node classes (may be async)."""

    async def on_load(self) -> None:
        return None

    async def get_node_list(self) -> list[type]:
        return []


__all__ = ["ComfyExtension", "io"]
__getattr__ = missing_attribute("comfy_api.latest")

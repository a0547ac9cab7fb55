"""Helpers shared by Loom's ComfyUI compatibility modules (this folder is put first on sys.path
by `nodes.custom_loader`, so `import folder_paths` or `import comfy.utils` in a node pack finds
these modules).

What Loom does not implement fails loudly, naming the missing piece, never with a silent wrong
result. `LoomNotImplemented` is both an AttributeError (so a pack's `hasattr(...)` feature test
just says no) and a NotImplementedError (so a direct use reads as what it is).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class LoomNotImplemented(AttributeError, NotImplementedError):  # noqa: N818 - reads as a sentence
    """A ComfyUI name that Loom's compatibility layer does not provide."""


def not_implemented(qualified_name: str, hint: str = "") -> LoomNotImplemented:
    message = f"Loom does not implement {qualified_name} (ComfyUI compatibility layer)"
    if hint:
        message += f": {hint}"
    return LoomNotImplemented(message)


def missing_attribute(module_name: str, hints: dict[str, str] | None = None) -> Callable[[str], Any]:
    """A module `__getattr__` that names what is missing."""
    hints = hints or {}

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise not_implemented(f"{module_name}.{name}", hints.get(name, ""))

    return __getattr__


def unsupported_function(qualified_name: str, hint: str = "") -> Callable[..., Any]:
    """A callable that exists (so imports work) but raises when a pack calls it."""

    def call(*_args: Any, **_kwargs: Any) -> Any:
        raise not_implemented(qualified_name, hint)

    call.__name__ = qualified_name.rsplit(".", 1)[-1]
    call.__qualname__ = call.__name__
    return call

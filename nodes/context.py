"""What a running node may ask of the engine: progress, previews, interrupts.

The engine installs a `NodeContext` for the node it is running (a contextvar, so async nodes
and worker threads each see their own); nodes call the module functions below and never import
the engine.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class InterruptProcessing(Exception):  # noqa: N818 - ComfyUI's name, packs catch it
    """Raised inside a node when the user interrupted the run."""


class InterruptFlag:
    """A thread-safe flag; the server sets it, the engine and nodes check it."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise InterruptProcessing("Processing interrupted")


ProgressHook = Callable[[str, float, float, Any], None]  # (node_id, value, max, preview) -> None


@dataclass
class NodeContext:
    prompt_id: str
    node_id: str  # the id the user sees (display id for expanded nodes)
    real_node_id: str
    interrupt: InterruptFlag
    on_progress: ProgressHook | None = None
    list_index: int | None = None
    extra: dict = field(default_factory=dict)


_current: contextvars.ContextVar[NodeContext | None] = contextvars.ContextVar("loom_node_context", default=None)
_global_interrupt = InterruptFlag()


def current() -> NodeContext | None:
    return _current.get()


def set_current(ctx: NodeContext | None) -> contextvars.Token:
    return _current.set(ctx)


def reset_current(token: contextvars.Token) -> None:
    _current.reset(token)


def global_interrupt() -> InterruptFlag:
    """The process-wide flag used when no run is active (and by ComfyUI-style packs)."""
    return _global_interrupt


def check_interrupt() -> None:
    """Raise InterruptProcessing if the current run was interrupted."""
    ctx = _current.get()
    (ctx.interrupt if ctx else _global_interrupt).check()


def report_progress(value: float, total: float, preview: Any = None, node_id: str | None = None) -> None:
    """Report step progress of the running node; checks for an interrupt first.

    `preview` is an optional PIL image (or `("JPEG"|"PNG", PIL.Image, max_size)`) sent as a live preview.
    """
    ctx = _current.get()
    if ctx is None:
        return
    ctx.interrupt.check()
    if ctx.on_progress is not None:
        ctx.on_progress(node_id or ctx.node_id, value, total, preview)


class ProgressBar:
    """Step progress for a node: `update(1)` per step, or `update_absolute(value)`."""

    def __init__(self, total: int, node_id: str | None = None):
        self.total = total
        self.current = 0
        self.node_id = node_id

    def update_absolute(self, value: float, total: float | None = None, preview: Any = None) -> None:
        if total is not None:
            self.total = total
        self.current = min(value, self.total) if self.total else value
        report_progress(self.current, self.total, preview, self.node_id)

    def update(self, value: float) -> None:
        self.update_absolute(self.current + value)

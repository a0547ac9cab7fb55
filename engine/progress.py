"""Per-node progress of a run: the dialect's `progress` and `progress_state` events, and previews."""

from __future__ import annotations

from typing import Any

from engine import events as ev
from engine.events import Event, EventSink
from engine.graph import DynamicPrompt

# `progress_state` carries the state of every non-pending node, and clients replace their map with it.
# Past this many nodes that would make each event O(graph), so only the live nodes are sent.
FULL_STATE_LIMIT = 256


class ProgressTracker:
    def __init__(self, prompt_id: str, dynprompt: DynamicPrompt, emit: EventSink):
        self.prompt_id = prompt_id
        self.dynprompt = dynprompt
        self.emit = emit
        self.states: dict[str, dict] = {}
        self._live: set[str] = set()  # running or failed nodes

    def _entry(self, node_id: str, state: str, value: float, maximum: float) -> dict:
        display = self.dynprompt.get_display_node_id(node_id)
        return {"value": value, "max": maximum, "state": state, "node_id": node_id, "prompt_id": self.prompt_id,
                "display_node_id": display, "parent_node_id": self.dynprompt.get_parent_node_id(node_id),
                "real_node_id": self.dynprompt.get_real_node_id(node_id)}

    def _send(self, changed: str) -> None:
        if len(self.states) <= FULL_STATE_LIMIT:
            nodes = dict(self.states)
        else:
            nodes = {k: self.states[k] for k in self._live}
            nodes[changed] = self.states[changed]
        self.emit(Event(ev.PROGRESS_STATE, {"prompt_id": self.prompt_id, "nodes": nodes}))

    def start(self, node_id: str) -> None:
        self.states[node_id] = self._entry(node_id, "running", 0, 1)
        self._live.add(node_id)
        self._send(node_id)

    # Entries are replaced, never changed in place: an event already emitted (and not yet sent or
    # pickled) keeps the state it was emitted with.
    def finish(self, node_id: str) -> None:
        entry = self.states.get(node_id) or self._entry(node_id, "running", 0, 1)
        self.states[node_id] = {**entry, "state": "finished", "value": entry["max"]}
        self._live.discard(node_id)
        self._send(node_id)

    def fail(self, node_id: str) -> None:
        entry = self.states.get(node_id) or self._entry(node_id, "running", 0, 1)
        self.states[node_id] = {**entry, "state": "error"}
        self._live.add(node_id)
        self._send(node_id)

    def on_progress(self, node_id: str, value: float, maximum: float, preview: Any = None) -> None:
        """The hook nodes reach through nodes.context.report_progress."""
        self.emit(Event(ev.PROGRESS, {"value": value, "max": maximum, "prompt_id": self.prompt_id, "node": node_id}))
        entry = self.states.get(node_id) or self._entry(node_id, "running", 0, 1)
        self.states[node_id] = {**entry, "value": value, "max": maximum}
        self._send(node_id)
        if preview is not None:
            image, fmt, max_size = _unpack_preview(preview)
            self.emit(Event(ev.PREVIEW, {
                "prompt_id": self.prompt_id, "node_id": node_id,
                "display_node_id": self.dynprompt.get_display_node_id(node_id),
                "parent_node_id": self.dynprompt.get_parent_node_id(node_id),
                "real_node_id": self.dynprompt.get_real_node_id(node_id),
                "image": image, "format": fmt, "max_size": max_size}))


def _unpack_preview(preview: Any) -> tuple[Any, str, int]:
    """A preview is a PIL image or ComfyUI's ("JPEG"|"PNG", image, max_size) tuple."""
    if isinstance(preview, tuple) and len(preview) == 3:
        return preview[1], str(preview[0]).upper(), int(preview[2] or 512)
    return preview, "JPEG", 512

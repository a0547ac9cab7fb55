"""Structured events the engine emits while it runs a prompt.

Each event's `type` and `data` are exactly the dialect's WebSocket message (`execution_start`,
`execution_cached`, `executing`, `progress`, `progress_state`, `executed`, `execution_success`,
`execution_error`, `execution_interrupted`), so the server forwards them as they are and the CLI
draws them. One more type, `preview`, carries a live preview image (`data["image"]` is a PIL image)
for the server to send as a binary frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

EXECUTION_START = "execution_start"
EXECUTION_CACHED = "execution_cached"
EXECUTING = "executing"
PROGRESS = "progress"
PROGRESS_STATE = "progress_state"
EXECUTED = "executed"
EXECUTION_SUCCESS = "execution_success"
EXECUTION_ERROR = "execution_error"
EXECUTION_INTERRUPTED = "execution_interrupted"
PREVIEW = "preview"

# Events recorded in a history item's status messages (the dialect keeps these).
STATUS_MESSAGE_TYPES = (EXECUTION_START, EXECUTION_CACHED, EXECUTION_SUCCESS, EXECUTION_ERROR,
                        EXECUTION_INTERRUPTED)


@dataclass
class Event:
    type: str
    data: dict = field(default_factory=dict)


EventSink = Callable[[Event], None]


def timestamp_ms() -> int:
    return int(time.time() * 1000)


def discard(_event: Event) -> None:
    """An event sink that drops everything."""

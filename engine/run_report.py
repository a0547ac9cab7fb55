"""What a run reports: its RunResult (what the history keeps) and the data of the dialect's
`execution_error` and `execution_interrupted` messages."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field

from engine import events as ev
from engine.results import format_inputs


@dataclass(repr=False)  # asyncio reprs a task's result at teardown; keep that O(1)
class RunResult:
    prompt_id: str
    status: str                                   # "success" | "error" | "interrupted"
    outputs: dict[str, dict] = field(default_factory=dict)     # display node id -> ui dict
    messages: list[tuple[str, dict]] = field(default_factory=list)
    meta: dict[str, dict] = field(default_factory=dict)
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    error: dict | None = None

    def __repr__(self) -> str:
        return f"RunResult({self.prompt_id!r}, {self.status!r}, {len(self.executed)} executed)"

    @property
    def status_str(self) -> str:
        """The dialect's history status string (an interrupt counts as an error there)."""
        return "success" if self.status == "success" else "error"


def blocked_error(prompt_id: str, node_id: str, node_type: str, executed: list[str], message: str) -> dict:
    """`execution_error` for an ExecutionBlocker with a message, at the display node it stopped."""
    return {
        "prompt_id": prompt_id, "node_id": node_id, "node_type": node_type, "executed": list(executed),
        "exception_message": message, "exception_type": "ExecutionBlocked", "traceback": [],
        "current_inputs": {}, "current_outputs": [], "timestamp": ev.timestamp_ms()}


def node_error(prompt_id: str, node_id: str, node_type: str | None, executed: list[str], error: BaseException,
               current_inputs: dict, current_outputs: list[str]) -> dict:
    """`execution_error` for an exception raised while running `node_id`."""
    tb = traceback.format_exception(error)
    return {
        "prompt_id": prompt_id, "node_id": node_id, "node_type": node_type, "executed": list(executed),
        "exception_message": str(error) or type(error).__name__,
        "exception_type": f"{type(error).__module__}.{type(error).__qualname__}",
        "traceback": tb, "current_inputs": format_inputs(current_inputs), "current_outputs": current_outputs,
        "timestamp": ev.timestamp_ms()}


def interrupted(prompt_id: str, node_id: str | None, node_type: str | None, executed: list[str]) -> dict:
    """`execution_interrupted`: where the run stopped (None when between nodes)."""
    return {"prompt_id": prompt_id, "node_id": node_id, "node_type": node_type, "executed": list(executed),
            "timestamp": ev.timestamp_ms()}

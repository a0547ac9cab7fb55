"""The shapes the API returns for queue items, history items and jobs (dialect 2.2-2.4, /api/jobs).

A queue item is the dialect's 5-tuple `[number, prompt_id, prompt, extra_data, outputs_to_execute]`.
A history item is `{prompt, outputs, status, meta}`. A job is the flat summary the official frontend
(1.58) lists its queue and history from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# extra_data keys that carry credentials: kept in memory for the run, never stored or returned.
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")

PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED = "pending", "in_progress", "completed", "failed", "cancelled"
JOB_STATUSES = (PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED)
PREVIEWABLE_MEDIA = {"images", "video", "audio"}
THREE_D_EXTENSIONS = (".obj", ".fbx", ".gltf", ".glb")


@dataclass
class QueueItem:
    number: float
    prompt_id: str
    prompt: dict
    extra_data: dict  # without the sensitive keys
    outputs: list[str]
    create_time: int  # ms
    sensitive: dict = field(default_factory=dict)
    seq: int = 0  # arrival order, breaks ties between equal numbers
    start_time: int | None = None
    attempts: int = 0  # times a worker was lost while running it (the run is requeued once)

    @property
    def client_id(self) -> str | None:
        cid = self.extra_data.get("client_id")
        return cid if isinstance(cid, str) and cid else None

    @property
    def workflow_id(self) -> str | None:
        pnginfo = self.extra_data.get("extra_pnginfo")
        workflow = pnginfo.get("workflow") if isinstance(pnginfo, dict) else None
        wid = workflow.get("id") if isinstance(workflow, dict) else None
        return wid if isinstance(wid, str) else None

    def as_tuple(self) -> list:
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]

    def run_extra_data(self) -> dict:
        """extra_data as the engine sees it: with the credentials the client sent."""
        return {**self.extra_data, **self.sensitive}


def split_sensitive(extra_data: dict) -> tuple[dict, dict]:
    public = {k: v for k, v in extra_data.items() if k not in SENSITIVE_EXTRA_DATA_KEYS}
    secret = {k: extra_data[k] for k in SENSITIVE_EXTRA_DATA_KEYS if k in extra_data}
    return public, secret


def history_item(item: QueueItem, outputs: dict, status_str: str, messages: list, meta: dict) -> dict:
    return {
        "prompt": item.as_tuple(),
        "outputs": outputs,
        "status": {"status_str": status_str, "completed": status_str == "success",
                   "messages": [list(m) for m in messages]},
        "meta": meta,
    }


def _is_previewable(media_type: str, entry: dict) -> bool:
    if media_type in PREVIEWABLE_MEDIA:
        return True
    fmt = entry.get("format")
    if isinstance(fmt, str) and fmt.startswith(("video/", "audio/")):
        return True
    filename = entry.get("filename")
    return isinstance(filename, str) and filename.lower().endswith(THREE_D_EXTENSIONS)


def outputs_summary(outputs: dict) -> tuple[int, dict | None]:
    """How many output files a run made, and the one to show as its thumbnail (saved output first)."""
    count, best, fallback = 0, None, None
    for node_id, node_outputs in outputs.items():
        if not isinstance(node_outputs, dict):
            continue
        for media_type, entries in node_outputs.items():
            if media_type == "animated" or not isinstance(entries, list):
                continue
            for entry in entries:
                if not isinstance(entry, dict):
                    continue
                count += 1
                if best is None and _is_previewable(media_type, entry):
                    enriched = {**entry, "nodeId": node_id, "mediaType": media_type}
                    if entry.get("type") == "output":
                        best = enriched
                    elif fallback is None:
                        fallback = enriched
    return count, best or fallback


def job_status_for(status_str: str, messages: list) -> str:
    """Map a finished run onto the jobs vocabulary: an interrupt is `cancelled`, not `failed`."""
    if status_str == "success":
        return COMPLETED
    if any(m and m[0] == "execution_interrupted" for m in messages):
        return CANCELLED
    return FAILED


def run_times(messages: list) -> tuple[int | None, int | None, dict | None]:
    """(execution_start_time, execution_end_time, execution_error) from a run's status messages."""
    start = end = error = None
    for entry in messages:
        if not isinstance(entry, (list, tuple)) or len(entry) < 2 or not isinstance(entry[1], dict):
            continue
        event, data = entry[0], entry[1]
        if event == "execution_start":
            start = data.get("timestamp")
        elif event in ("execution_success", "execution_error", "execution_interrupted"):
            end = data.get("timestamp")
            if event == "execution_error":
                error = data
    return start, end, error


def prune(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}

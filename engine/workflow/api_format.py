"""The API prompt format: `{node_id: {"class_type", "inputs", "_meta": {"title"}}}`.

`normalise_api_prompt` checks the shape and tidies what hand-written or script-made prompts
often get wrong: numeric node ids, links written `[4, 0]` instead of `["4", 0]`, a missing
`_meta.title`.
"""

from __future__ import annotations

from typing import Any

from engine.workflow.errors import WorkflowError
from engine.workflow.ui_to_api import ConversionResult


def is_api_prompt(data: Any) -> bool:
    """A non-empty dict whose every value is a node with a `class_type` string."""
    return (isinstance(data, dict) and bool(data)
            and all(isinstance(v, dict) and isinstance(v.get("class_type"), str) for v in data.values()))


def _normalise_link(value: Any, node_ids: set[str]) -> Any:
    if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (int, float))
            and not isinstance(value[0], bool) and isinstance(value[1], (int, float)) and not isinstance(value[1], bool)):
        source = str(int(value[0])) if float(value[0]).is_integer() else str(value[0])
        if source in node_ids:
            return [source, int(value[1])]
    if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], float) and value[1].is_integer()):
        return [value[0], int(value[1])]
    return value


def normalise_api_prompt(prompt: Any, object_info: dict | None = None) -> ConversionResult:
    """Check and tidy an API prompt; node types absent from `object_info` are listed as missing."""
    if not isinstance(prompt, dict) or not prompt:
        raise WorkflowError("an API prompt must be a non-empty object of nodes")
    node_ids = {str(k) for k in prompt}
    out: dict[str, dict] = {}
    missing: dict[str, None] = {}
    warnings: list[str] = []
    for raw_id, node in prompt.items():
        node_id = str(raw_id)
        if not isinstance(node, dict):
            raise WorkflowError(f"node {node_id} is not an object")
        class_type = node.get("class_type")
        if not isinstance(class_type, str) or not class_type:
            raise WorkflowError(f"node {node_id} has no 'class_type'")
        inputs = node.get("inputs")
        if inputs is None:
            warnings.append(f"node {node_id} ({class_type}) has no 'inputs'; taken as empty")
            inputs = {}
        if not isinstance(inputs, dict):
            raise WorkflowError(f"node {node_id} ({class_type}): 'inputs' is not an object")
        meta = dict(node["_meta"]) if isinstance(node.get("_meta"), dict) else {}
        info = (object_info or {}).get(class_type)
        if not isinstance(meta.get("title"), str):
            meta["title"] = (info or {}).get("display_name") or class_type
        if object_info is not None and info is None:
            missing.setdefault(class_type)
        entry = {k: v for k, v in node.items() if k not in ("inputs", "class_type", "_meta")}
        entry.update({"inputs": {str(k): _normalise_link(v, node_ids) for k, v in inputs.items()},
                      "class_type": class_type, "_meta": meta})
        out[node_id] = entry
    return ConversionResult(out, list(missing), warnings)

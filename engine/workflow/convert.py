"""Tell the two workflow formats apart and turn either into an API prompt."""

from __future__ import annotations

from typing import Any

from engine.workflow.api_format import is_api_prompt, normalise_api_prompt
from engine.workflow.errors import WorkflowError
from engine.workflow.ui_graph import is_ui_workflow
from engine.workflow.ui_to_api import ConversionResult, convert_ui_to_api

UI, API = "ui", "api"


def workflow_kind(data: Any) -> tuple[str, Any]:
    """("ui" | "api", the workflow itself); a `POST /prompt` body is unwrapped to its prompt.

    Raises WorkflowError, naming what was found, for anything else.
    """
    if is_ui_workflow(data):
        return UI, data
    if is_api_prompt(data):
        return API, data
    if isinstance(data, dict) and is_api_prompt(data.get("prompt")):
        return API, data["prompt"]
    if isinstance(data, dict) and isinstance(data.get("workflow"), dict) and is_ui_workflow(data["workflow"]):
        return UI, data["workflow"]
    if isinstance(data, dict):
        if not data:
            raise WorkflowError("the workflow is empty")
        keys = ", ".join(list(map(str, data))[:6])
        raise WorkflowError(f"neither a UI workflow (no 'nodes' list) nor an API prompt (nodes with "
                            f"'class_type'); top-level keys: {keys}")
    raise WorkflowError(f"a workflow is a JSON object, not {type(data).__name__}")


def to_api_prompt(data: Any, object_info: dict) -> ConversionResult:
    """Any workflow (UI or API) as a normalised API prompt."""
    kind, workflow = workflow_kind(data)
    if kind == UI:
        return convert_ui_to_api(workflow, object_info)
    return normalise_api_prompt(workflow, object_info)

"""Workflow formats: UI workflows (0.4 and 1, with subgraphs), API prompts, and files holding them."""

from engine.workflow.api_format import is_api_prompt, normalise_api_prompt
from engine.workflow.convert import API, UI, to_api_prompt, workflow_kind
from engine.workflow.errors import WorkflowError, WorkflowFileError
from engine.workflow.files import load_workflow_file
from engine.workflow.ui_graph import is_ui_workflow
from engine.workflow.ui_to_api import ConversionResult, convert_ui_to_api

__all__ = [
    "API",
    "UI",
    "ConversionResult",
    "WorkflowError",
    "WorkflowFileError",
    "convert_ui_to_api",
    "is_api_prompt",
    "is_ui_workflow",
    "load_workflow_file",
    "normalise_api_prompt",
    "to_api_prompt",
    "workflow_kind",
]

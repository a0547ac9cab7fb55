"""Read a workflow from a file: JSON (UI or API format) or a PNG that carries one.

A PNG made by SaveImage holds the UI workflow in a `workflow` text chunk and the API prompt in
`prompt`; like the frontend, the workflow is preferred.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from engine.workflow.convert import workflow_kind
from engine.workflow.errors import WorkflowError, WorkflowFileError

log = logging.getLogger("loom.workflow")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise WorkflowFileError(f"{what} is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None


def _from_png(data: bytes, name: str) -> tuple[str, Any]:
    try:
        from nodes.image_files import read_png_text
    except ImportError as e:
        raise WorkflowFileError(f"{name}: cannot read PNG metadata ({e})") from None
    try:
        texts = read_png_text(data)
    except ValueError as e:
        raise WorkflowFileError(f"{name}: {e}") from None
    errors = []
    for key in ("workflow", "prompt"):
        if key not in texts:
            continue
        try:
            return workflow_kind(_parse_json(texts[key], f"{name}: the PNG's '{key}' text"))
        except WorkflowFileError as e:
            errors.append(str(e))
        except WorkflowError as e:
            errors.append(f"{name}: the PNG's '{key}' text: {e}")
        log.warning("%s", errors[-1])
    if errors:
        raise WorkflowFileError("; ".join(errors))
    found = ", ".join(sorted(texts)) or "none"
    raise WorkflowFileError(f"{name}: the PNG holds no 'workflow' or 'prompt' metadata (text chunks: {found})")


def load_workflow_file(path: str | os.PathLike) -> tuple[str, Any]:
    """("ui" | "api", workflow) from a .json or .png file; WorkflowFileError says what is wrong."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise WorkflowFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise WorkflowFileError(f"{path}: is a directory, not a workflow file") from None
    except OSError as e:
        raise WorkflowFileError(f"{path}: cannot be read ({e.strerror or e})") from None
    if data.startswith(PNG_SIGNATURE):
        return _from_png(data, path.name)
    if path.suffix.lower() == ".png":
        raise WorkflowFileError(f"{path.name}: has a .png name but is not a PNG file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise WorkflowFileError(f"{path.name}: neither a JSON workflow nor a PNG (not UTF-8 text)") from None
    if not text.strip():
        raise WorkflowFileError(f"{path.name}: the file is empty")
    try:
        return workflow_kind(_parse_json(text, path.name))
    except WorkflowFileError:
        raise
    except WorkflowError as e:
        raise WorkflowFileError(f"{path.name}: {e}") from None

"""Utility nodes: PreviewAny (ComfyUI's comfy_extras/nodes_preview_any.py) shows any value as text."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import torch

from nodes.interface import AnyType

MAX_REPR = 2000


def summarize_tensor(t: torch.Tensor) -> str:
    """Shape, dtype and (when cheap to state) the value range, never the values themselves."""
    text = f"Tensor(shape={list(t.shape)}, dtype={str(t.dtype).removeprefix('torch.')}"
    if t.numel() and not t.is_complex() and t.device.type != "meta":
        values = t.detach().float()
        text += f", min={values.min().item():.4g}, max={values.max().item():.4g}"
    return text + ")"


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return summarize_tensor(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return f"{type(value).__name__}(...)"
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # numpy arrays and the like
        return f"{type(value).__name__}(shape={list(value.shape)}, dtype={value.dtype})"
    text = repr(value)
    return text if len(text) <= MAX_REPR else text[:MAX_REPR] + "..."


def render_value(value: Any) -> str:
    """The text PreviewAny shows: strings as they are, numbers via str, the rest as JSON."""
    if value is None:
        return "None"
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return str(value)
    if isinstance(value, torch.Tensor):
        return summarize_tensor(value)
    try:
        return json.dumps(value, indent=4, default=_json_default)
    except (TypeError, ValueError):  # e.g. dict keys JSON cannot hold, or a reference cycle
        text = repr(value)
        return text if len(text) <= MAX_REPR else text[:MAX_REPR] + "..."


class PreviewAny:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"source": (AnyType("*"), {})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "main"
    OUTPUT_NODE = True
    CATEGORY = "utils"
    DESCRIPTION = "Show any value as text (tensors by shape, dtype and range)."

    def main(self, source=None):
        text = render_value(source)
        return {"ui": {"text": [text]}, "result": (text,)}


NODE_CLASS_MAPPINGS = {"PreviewAny": PreviewAny}
NODE_DISPLAY_NAME_MAPPINGS = {"PreviewAny": "Preview Any"}

"""Turning what node functions return into node outputs, in the dialect's list semantics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nodes.interface import ExecutionBlocker, NodeDef, is_link


def merge_results(node_def: NodeDef, results: list,
                  resolve_link: Callable[[list], list] | None = None) -> tuple[list[list[Any]], dict | None]:
    """Merge the per-call results of a node (one per list item) into its outputs and ui.

    Each output becomes the list of the calls' values; an OUTPUT_IS_LIST output concatenates them.
    A call returns a tuple, `{"ui": ..., "result": ...}`, or an ExecutionBlocker. After an expansion,
    `resolve_link` gives the values that a link in a result points to.
    """
    n_out = len(node_def.return_types)
    outputs: list[list[Any]] = [[] for _ in range(n_out)]
    ui: dict | None = None
    for r in results:
        if isinstance(r, dict):
            if r.get("ui") is not None:
                ui = merge_ui(ui, r["ui"])
            values = r.get("result") or ()
        else:
            values = () if r is None else r
        if isinstance(values, ExecutionBlocker):
            values = (values,) * n_out
        if not isinstance(values, (tuple, list)):
            raise TypeError(f"{node_def.class_type} returned {type(values).__name__}; expected a tuple of outputs")
        if len(values) < n_out:
            raise TypeError(f"{node_def.class_type} returned {len(values)} outputs; RETURN_TYPES declares {n_out}")
        for i in range(n_out):
            value = values[i]
            if resolve_link is not None and is_link(value):
                outputs[i].extend(resolve_link(value))
            elif node_def.output_is_list[i] and not isinstance(value, ExecutionBlocker):
                outputs[i].extend(value)
            else:
                outputs[i].append(value)
    return outputs, ui


def merge_ui(current: dict | None, new: dict) -> dict:
    """ui dicts of several calls merge key by key, lists concatenated."""
    if current is None:
        return {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in new.items()}
    for k, v in new.items():
        if isinstance(v, (list, tuple)) and isinstance(current.get(k), list):
            current[k].extend(v)
        else:
            current[k] = v
    return current


def first_blocker(kwargs: dict, input_is_list: bool) -> ExecutionBlocker | None:
    for value in kwargs.values():
        if isinstance(value, ExecutionBlocker):
            return value
        if input_is_list and isinstance(value, list):
            for item in value:
                if isinstance(item, ExecutionBlocker):
                    return item
    return None


def format_inputs(inputs: dict) -> dict:
    """Input values shortened for an error report (tensors as shape and dtype)."""
    out = {}
    for name, values in inputs.items():
        if name in ("prompt", "extra_pnginfo", "dynprompt"):
            continue
        out[name] = [short_repr(v) for v in (values if isinstance(values, list) else [values])][:8]
    return out


def short_repr(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):
        return f"{type(value).__name__}(shape={list(shape)}, dtype={value.dtype})"
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."

"""Turn a V3 node (io.ComfyNode with define_schema/execute) into a V1 class Loom's engine runs."""

from __future__ import annotations

import inspect
from typing import Any

from comfy_api.latest import _io as io

_HIDDEN_INPUTS = {h.value: h.name for h in io.Hidden}


def _wrap_output(out: Any) -> Any:
    if not isinstance(out, io.NodeOutput):
        return out
    if out.block_execution is not None:
        from nodes.interface import ExecutionBlocker

        return tuple(ExecutionBlocker(out.block_execution) for _ in out.args) or (ExecutionBlocker(out.block_execution),)
    result: dict[str, Any] = {"result": tuple(out.args)}
    if out.ui is not None:
        result["ui"] = out.ui if isinstance(out.ui, dict) else getattr(out.ui, "as_dict", lambda: out.ui)()
    if out.expand is not None:
        result["expand"] = out.expand
    return result


def to_v1(cls: type) -> tuple[str, type]:
    schema: io.Schema = cls.define_schema()
    required, optional = {}, {}
    for inp in schema.inputs:
        (optional if inp.optional else required)[inp.id] = inp.v1()
    hidden = {h.name: h.value for h in (io.Hidden(x) if not isinstance(x, io.Hidden) else x for x in schema.hidden)}
    if schema.is_output_node:
        hidden.setdefault("prompt", "PROMPT")
        hidden.setdefault("extra_pnginfo", "EXTRA_PNGINFO")
    input_types = {"required": required, "optional": optional, "hidden": hidden}

    def run(self: Any, **kwargs: Any) -> Any:
        values = {k: kwargs.pop(k, None) for k in hidden}
        cls.hidden = io._HiddenValues(values)
        out = cls.execute(**kwargs)
        if inspect.isawaitable(out):
            async def finish() -> Any:
                return _wrap_output(await out)
            return finish()
        return _wrap_output(out)

    attrs: dict[str, Any] = {
        "INPUT_TYPES": classmethod(lambda c: input_types),
        "RETURN_TYPES": tuple(o.io_type for o in schema.outputs),
        "RETURN_NAMES": tuple(o.display_name or o.id or o.io_type for o in schema.outputs),
        "OUTPUT_IS_LIST": tuple(o.is_output_list for o in schema.outputs),
        "OUTPUT_TOOLTIPS": tuple(o.tooltip for o in schema.outputs),
        "FUNCTION": "execute_v3", "execute_v3": run, "CATEGORY": schema.category,
        "DESCRIPTION": schema.description, "INPUT_IS_LIST": schema.is_input_list,
        "OUTPUT_NODE": schema.is_output_node, "NOT_IDEMPOTENT": schema.not_idempotent,
        "DEPRECATED": schema.is_deprecated, "EXPERIMENTAL": schema.is_experimental,
        "DISPLAY_NAME": schema.display_name or schema.node_id, "V3_CLASS": cls,
    }
    if hasattr(cls, "check_lazy_status"):
        attrs["check_lazy_status"] = lambda self, **kw: cls.check_lazy_status(**kw)
    if hasattr(cls, "fingerprint_inputs"):
        attrs["IS_CHANGED"] = classmethod(lambda c, **kw: cls.fingerprint_inputs(**kw))
    if hasattr(cls, "validate_inputs"):
        def validate(c: type, **kw: Any) -> Any:
            return cls.validate_inputs(**kw)

        # the engine reads the parameter names; the first one stands for the class (inspect drops it)
        params = list(inspect.signature(cls.validate_inputs).parameters.values())
        validate.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter("cls", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + params)
        attrs["VALIDATE_INPUTS"] = classmethod(validate)
    return schema.node_id, type(f"V1_{cls.__name__}", (), attrs)

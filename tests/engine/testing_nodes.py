"""Small nodes that exercise each execution semantic of the dialect (test-only)."""

from __future__ import annotations

import asyncio
import time

from nodes import context
from nodes.graph_builder import GraphBuilder
from nodes.interface import AnyType, ExecutionBlocker

CALLS: dict[str, int] = {}


def _count(name: str) -> None:
    CALLS[name] = CALLS.get(name, 0) + 1


class Int:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -1000, "max": 1000})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "testing"

    def run(self, value):
        _count("Int")
        return (value,)


class Add:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT", {"default": 0}), "b": ("INT", {"default": 0})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "testing"

    def run(self, a, b):
        _count("Add")
        return (a + b,)


class Output:
    """An output node that reports the value it receives in its ui."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (AnyType("*"),)}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "testing"

    def run(self, value):
        _count("Output")
        return {"ui": {"value": [value]}}


class ListOut:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"count": ("INT", {"default": 3, "min": 0})}}

    RETURN_TYPES = ("INT",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "run"
    CATEGORY = "testing"

    def run(self, count):
        return (list(range(count)),)


class ListSum:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"values": ("INT",)}}

    RETURN_TYPES = ("INT",)
    INPUT_IS_LIST = True
    FUNCTION = "run"
    CATEGORY = "testing"

    def run(self, values):
        return (sum(values),)


class LazySwitch:
    """Returns `on_true` or `on_false`; only the branch it picks is evaluated."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"switch": ("BOOLEAN", {"default": True}),
                             "on_true": ("INT", {"lazy": True}), "on_false": ("INT", {"lazy": True})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "testing"

    def check_lazy_status(self, switch, on_true=None, on_false=None):
        if switch and on_true is None:
            return ["on_true"]
        if not switch and on_false is None:
            return ["on_false"]
        return []

    def run(self, switch, on_true=None, on_false=None):
        return (on_true if switch else on_false,)


class Counter:
    """Counts its own executions (to see what the cache skipped)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0}), "tag": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "testing"

    def run(self, value, tag):
        _count("Counter:" + tag)
        return (value,)


class SumExpand:
    """Expands into a chain of Add nodes summing 0..n-1 (node expansion)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"n": ("INT", {"default": 3, "min": 1})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "testing"

    def run(self, n):
        _count("SumExpand")
        g = GraphBuilder()
        total = g.node("Int", value=0)
        for i in range(1, n):
            total = g.node("Add", a=total.out(0), b=i)
        return {"result": (total.out(0),), "expand": g.finalize()}


class Block:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0}), "block": ("BOOLEAN", {"default": True}),
                             "message": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "testing"

    def run(self, value, block, message):
        if block:
            return (ExecutionBlocker(message or None),)
        return (value,)


class AsyncSleep:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0}), "seconds": ("FLOAT", {"default": 0.2})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "testing"

    async def run(self, value, seconds):
        await asyncio.sleep(seconds)
        return (value,)


class Hidden:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}, "hidden": {"prompt": "PROMPT", "extra": "EXTRA_PNGINFO", "uid": "UNIQUE_ID",
                                           "dyn": "DYNPROMPT"}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "testing"

    def run(self, prompt, extra, uid, dyn):
        return {"ui": {"uid": [uid], "prompt_nodes": sorted(prompt), "extra": [extra],
                       "dyn_has_self": [dyn.has_node(uid)]}}


class Changing:
    """IS_CHANGED returns NaN: always runs."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "testing"

    @classmethod
    def IS_CHANGED(cls, value):
        return float("nan")

    def run(self, value):
        _count("Changing")
        return (value,)


class NotIdempotent:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    NOT_IDEMPOTENT = True
    CATEGORY = "testing"

    def run(self, value):
        _count("NotIdempotent")
        return (value,)


class Raise:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "testing"

    def run(self, value):
        raise ValueError(f"boom {value}")


class Slow:
    """Steps with progress; checks the interrupt at every step through report_progress."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0}), "steps": ("INT", {"default": 5}),
                             "step_seconds": ("FLOAT", {"default": 0.0})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "testing"

    def run(self, value, steps, step_seconds):
        bar = context.ProgressBar(steps)
        for _ in range(steps):
            time.sleep(step_seconds)
            bar.update(1)
        return (value,)


class Validated:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": 0, "max": 10})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "testing"

    @classmethod
    def VALIDATE_INPUTS(cls, value):
        if value % 2:
            return f"value must be even, got {value}"
        return True

    def run(self, value):
        return (value,)


class Combo:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"choice": (["a", "b", "c"],), "flag": ("BOOLEAN", {"default": False}),
                             "ratio": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0}),
                             "text": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "testing"

    def run(self, choice, flag, ratio, text):
        return (f"{choice}|{flag}|{ratio}|{text}",)


class FloatIn:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"number": ("FLOAT,INT",)}}

    RETURN_TYPES = ("FLOAT",)
    FUNCTION = "run"
    CATEGORY = "testing"

    def run(self, number):
        return (float(number),)


class ImageIn:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "testing"

    def run(self, image):
        return (image,)


class Tensor:
    """Makes a float32 tensor of `n` elements (for cache byte accounting)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"n": ("INT", {"default": 1024, "min": 1, "max": 1 << 30}), "fill": ("FLOAT", {"default": 0.0})}}

    RETURN_TYPES = ("TENSOR",)
    FUNCTION = "run"
    CATEGORY = "testing"

    def run(self, n, fill):
        import torch

        _count("Tensor")
        return (torch.full((n,), fill, dtype=torch.float32),)


NODE_CLASS_MAPPINGS = {name: cls for name, cls in globals().items()
                       if isinstance(cls, type) and hasattr(cls, "INPUT_TYPES") and cls.__module__ == __name__}

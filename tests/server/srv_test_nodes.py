"""Test-only nodes for the server tests: a node that takes its time (progress, previews, interrupts)
and a node that fails. Registered into the registry by the tests (and by tests/serve_with_test_nodes.py)."""

from __future__ import annotations

import time

import torch
from PIL import Image

from nodes.context import check_interrupt, report_progress


class LoomTestSleep:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "seconds": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 600.0}),
            "steps": ("INT", {"default": 10, "min": 1, "max": 100000}),
            "preview_size": ("INT", {"default": 0, "min": 0, "max": 4096}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 2**31}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "loom_test"

    def run(self, seconds, steps, preview_size, seed):
        preview = None
        if preview_size:
            # Noise does not compress: previews this size really cost bandwidth.
            preview = Image.effect_noise((preview_size, preview_size), 64).convert("RGB")
        for i in range(steps):
            check_interrupt()
            time.sleep(seconds / steps)
            report_progress(i + 1, steps, preview)
        return (torch.full((1, 16, 16, 3), (seed % 256) / 255.0),)


class LoomTestBusy:
    """Keeps a CPU core busy with torch work (which, like real models, releases the GIL)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seconds": ("FLOAT", {"default": 2.0, "min": 0.0, "max": 600.0})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "loom_test"

    def run(self, seconds):
        a = torch.rand(256, 256)
        deadline = time.monotonic() + seconds
        steps = 0
        while time.monotonic() < deadline:
            a = torch.tanh(a @ a)
            steps += 1
            if steps % 20 == 0:
                report_progress(min(time.monotonic() + seconds - deadline, seconds), seconds)
        return (a[None, :16, :16, None].expand(1, 16, 16, 3).clone(),)


class LoomTestFail:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"message": ("STRING", {"default": "boom"})}, "optional": {"image": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "loom_test"

    def run(self, message, image=None):
        raise RuntimeError(message)


NODE_CLASS_MAPPINGS = {"LoomTestSleep": LoomTestSleep, "LoomTestBusy": LoomTestBusy, "LoomTestFail": LoomTestFail}


def make_registry():
    from nodes.registry import builtin_registry

    registry = builtin_registry()
    registry.register_mappings(NODE_CLASS_MAPPINGS, None, "srv_test_nodes")
    return registry

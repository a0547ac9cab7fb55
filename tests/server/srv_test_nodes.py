"""Test-only nodes for the server tests: a node that takes its time (progress, previews, interrupts)
and a node that fails. Registered into the registry by the tests (and by serve_for_tests.py)."""

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


class LoomTestFail:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"message": ("STRING", {"default": "boom"})}, "optional": {"image": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "loom_test"

    def run(self, message, image=None):
        raise RuntimeError(message)


NODE_CLASS_MAPPINGS = {"LoomTestSleep": LoomTestSleep, "LoomTestFail": LoomTestFail}


def make_registry():
    from nodes.registry import builtin_registry

    registry = builtin_registry()
    registry.register_mappings(NODE_CLASS_MAPPINGS, None, "srv_test_nodes")
    return registry

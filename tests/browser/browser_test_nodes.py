"""Nodes that exist only for the browser tests: one that takes its time (progress, previews,
interrupts) and one that fails. Registered by tests/serve_with_test_nodes.py."""

from __future__ import annotations

import time

from PIL import Image

from nodes.context import check_interrupt, report_progress


class BrowserTestSlow:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE",),
            "seconds": ("FLOAT", {"default": 3.0, "min": 0.0, "max": 600.0, "step": 0.1}),
            "steps": ("INT", {"default": 10, "min": 1, "max": 10000}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "testing"

    def run(self, image, seconds, steps):
        for i in range(steps):
            check_interrupt()
            time.sleep(seconds / steps)
            preview = Image.new("RGB", (32, 32), (i * 20 % 256, 120, 200))
            report_progress(i + 1, steps, preview)
        return (image,)


class BrowserTestFail:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "message": ("STRING", {"default": "the test node failed on purpose"})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "testing"

    def run(self, image, message):
        raise RuntimeError(message)


NODE_CLASS_MAPPINGS = {"BrowserTestSlow": BrowserTestSlow, "BrowserTestFail": BrowserTestFail}
NODE_DISPLAY_NAME_MAPPINGS = {"BrowserTestSlow": "Slow (test)", "BrowserTestFail": "Fail (test)"}

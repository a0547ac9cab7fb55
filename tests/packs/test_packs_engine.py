"""Packs written for ComfyUI run workflows through Loom's engine: the example pack, and a pack that
imports folder_paths, nodes, server and comfy.utils the way real packs do."""

from __future__ import annotations

import pytest
import torch
from pack_helpers import write_pack

from engine.cache import LRUCache
from engine.execution import Executor
from engine.validation import validate_prompt
from nodes.custom_loader import load_custom_nodes
from nodes.paths import REPO_ROOT
from nodes.registry import builtin_registry

COMPAT_PACK = '''
import os
import torch
import folder_paths
import nodes
import comfy.utils
import comfy.model_management
from server import PromptServer

NOTES = []


@PromptServer.instance.routes.get("/compat_pack/ping")
async def ping(request):
    from aiohttp import web
    return web.json_response({"pong": True})


class CompatBrighten:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE",),
            "amount": ("FLOAT", {"default": 0.25, "min": 0.0, "max": 1.0}),
            "steps": ("INT", {"default": 3, "min": 1, "max": nodes.MAX_RESOLUTION}),
        }, "hidden": {"unique_id": "UNIQUE_ID"}}

    RETURN_TYPES = ("IMAGE", "STRING")
    FUNCTION = "run"
    CATEGORY = "compat"

    def run(self, image, amount, steps, unique_id=None):
        pbar = comfy.utils.ProgressBar(steps)
        out = image.to(comfy.model_management.intermediate_device())
        for _ in range(steps):
            comfy.model_management.throw_exception_if_processing_interrupted()
            out = (out + amount / steps).clamp(0, 1)
            pbar.update(1)
        PromptServer.instance.send_sync("compat_pack.done", {"node": unique_id})
        # a pack that saves through folder_paths, like SaveImage does
        full_folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            "compat/out", folder_paths.get_output_directory(), out.shape[2], out.shape[1])
        path = os.path.join(full_folder, f"{name}_{counter:05}_.txt")
        with open(path, "w") as f:
            f.write("ok")
        # and that reuses a core node class through the nodes module
        inverted = nodes.NODE_CLASS_MAPPINGS["ImageInvert"]().invert(out)[0]
        return (1.0 - inverted, os.path.relpath(path, folder_paths.get_output_directory()))


NODE_CLASS_MAPPINGS = {"CompatBrighten": CompatBrighten}
'''


@pytest.fixture
def registry(cn_dir, data_dirs):
    write_pack(cn_dir, "compat_pack", COMPAT_PACK)
    reg = builtin_registry()
    infos = load_custom_nodes(reg, dirs=[cn_dir, REPO_ROOT / "custom_nodes"], allow=["compat_pack", "example_pack"])
    assert all(i.error is None for i in infos), [i.error for i in infos]
    return reg


def run(registry, prompt, executor=None):
    v = validate_prompt(registry, prompt)
    assert v.ok, (v.error, v.node_errors)
    events = []
    ex = executor or Executor(registry, cache=LRUCache(1 << 30))
    result = ex.execute(prompt, "pid-1", execute_outputs=v.outputs, on_event=events.append)
    assert result.status == "success", result.messages
    return result, events


def test_compat_pack_runs_with_progress_and_server_messages(registry, data_dirs):
    from server import compat_bridge

    sent = []
    compat_bridge.bind_headless(lambda event, data, sid: sent.append((event, data)))
    try:
        prompt = {
            "1": {"class_type": "ExampleGradientImage",
                  "inputs": {"width": 16, "height": 8, "start": 0.0, "end": 0.5, "direction": "left_to_right"}},
            "2": {"class_type": "CompatBrighten", "inputs": {"image": ["1", 0], "amount": 0.5, "steps": 4}},
            "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}},
            "4": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "compat"}},
        }
        result, events = run(registry, prompt)
    finally:
        compat_bridge.unbind()
    progress = [(e.data["node"], e.data["value"], e.data["max"]) for e in events if e.type == "progress"]
    assert ("1", 4, 4) in progress  # the example pack's ProgressBar
    assert [p for p in progress if p[0] == "2"] == [("2", 1, 4), ("2", 2, 4), ("2", 3, 4), ("2", 4, 4)]
    assert sent == [("compat_pack.done", {"node": "2"})]
    saved = result.outputs["4"]["images"][0]
    assert (data_dirs.output_dir / saved["filename"]).is_file()
    assert (data_dirs.output_dir / "compat" / "out_00001_.txt").read_text() == "ok"


def test_example_pack_lazy_switch_computes_only_the_needed_branch(registry):
    prompt = {
        "1": {"class_type": "ExampleGradientImage",
              "inputs": {"width": 8, "height": 8, "start": 0.0, "end": 1.0, "direction": "left_to_right"}},
        "2": {"class_type": "ExampleGradientImage",
              "inputs": {"width": 8, "height": 8, "start": 0.0, "end": 1.0, "direction": "right_to_left",
                         "invert": True}},
        "3": {"class_type": "ExampleLazySwitch", "inputs": {"use_first": False, "first": ["1", 0], "second": ["2", 0]}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    _, events = run(registry, prompt)
    executed = [e.data["node"] for e in events if e.type == "executing" and e.data.get("node")]
    assert "2" in executed and "1" not in executed


def test_example_pack_output_list_fans_out(registry):
    prompt = {
        "1": {"class_type": "ExampleSplitLines", "inputs": {"text": "red\n\n green \nblue"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}},
    }
    result, _ = run(registry, prompt)
    assert result.outputs["2"]["text"] == ["red", "green", "blue"]
    assert result.outputs["3"]["text"] == ["3"]


def test_example_gradient_values(registry):
    cls = registry.get("ExampleGradientImage").cls
    (image,) = cls().draw(width=5, height=4, start=0.0, end=1.0, direction="left_to_right")
    assert image.shape == (1, 4, 5, 3)
    assert torch.allclose(image[0, 2, :, 0], torch.linspace(0, 1, 5))
    (flipped,) = cls().draw(width=5, height=4, start=0.0, end=1.0, direction="right_to_left", invert=True)
    assert torch.allclose(flipped, image)

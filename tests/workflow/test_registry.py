"""Conversion against Loom's real built-in nodes, checked by the real validator."""

from __future__ import annotations

import pytest
from PIL import Image
from workflow_builders import WorkflowBuilder, load_data

from engine.validation import validate_prompt
from engine.workflow import convert_ui_to_api
from nodes.registry import builtin_registry

DEFAULT_WORKFLOW_TYPES = {"CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler",
                          "VAEDecode", "SaveImage"}


@pytest.fixture
def registry(data_dirs):
    Image.new("RGB", (8, 8), (200, 10, 10)).save(data_dirs.input_dir / "cat.png")
    (data_dirs.models_dirs[0] / "checkpoints").mkdir(parents=True, exist_ok=True)
    (data_dirs.models_dirs[0] / "checkpoints" / "v1-5-pruned-emaonly-fp16.safetensors").write_bytes(b"")
    return builtin_registry()


def test_image_workflow_converts_and_validates(registry):
    wf = WorkflowBuilder(version=1)
    load = wf.node("LoadImage", outputs=["IMAGE", "MASK"], widgets=["cat.png", "image"])
    size = wf.node("PrimitiveNode", outputs=["INT"], widgets=[16, "fixed"])
    reroute = wf.node("Reroute", inputs=[("", "*")], outputs=["IMAGE"])
    scale = wf.node("ImageScale", inputs=[("image", "IMAGE"), ("width", "INT", "width")], outputs=["IMAGE"],
                    widgets=["bilinear", 512, 24, "disabled"])
    invert = wf.node("ImageInvert", inputs=[("image", "IMAGE")], outputs=["IMAGE"], mode=4)
    save = wf.node("SaveImage", inputs=[("images", "IMAGE")], widgets=["converted"])
    wf.node("Note", widgets=["a note"])
    wf.link(load, 0, reroute, 0)
    wf.link(reroute, 0, scale, "image")
    wf.link(size, 0, scale, "width")
    wf.link(scale, 0, invert, 0)
    wf.link(invert, 0, save, 0)
    result = convert_ui_to_api(wf.build(), registry.object_info())
    assert result.missing_node_types == [] and result.warnings == []
    assert result.prompt[str(scale["id"])]["inputs"] == {"upscale_method": "bilinear", "width": 16, "height": 24,
                                                         "crop": "disabled", "image": [str(load["id"]), 0]}
    assert result.prompt[str(save["id"])]["inputs"] == {"filename_prefix": "converted",
                                                        "images": [str(scale["id"]), 0]}
    validation = validate_prompt(registry, result.prompt)
    assert validation.ok, validation.error
    assert validation.outputs == [str(save["id"])]


def test_default_workflow_against_the_builtin_nodes(registry):
    missing = DEFAULT_WORKFLOW_TYPES - set(registry.names())
    if missing:
        pytest.skip(f"built-in nodes not written yet: {', '.join(sorted(missing))}")
    result = convert_ui_to_api(load_data("default_workflow.json"), registry.object_info())
    assert result.missing_node_types == [] and result.warnings == []
    prompt = result.prompt
    assert prompt["3"]["inputs"] == {"seed": 156680208700286, "steps": 20, "cfg": 8, "sampler_name": "euler",
                                     "scheduler": "normal", "denoise": 1, "model": ["4", 0], "positive": ["6", 0],
                                     "negative": ["7", 0], "latent_image": ["5", 0]}
    assert prompt["4"]["inputs"] == {"ckpt_name": "v1-5-pruned-emaonly-fp16.safetensors"}
    assert prompt["9"]["inputs"] == {"filename_prefix": "ComfyUI", "images": ["8", 0]}
    validation = validate_prompt(registry, prompt)
    assert validation.ok, validation.error

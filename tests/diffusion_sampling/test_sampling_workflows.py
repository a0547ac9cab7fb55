"""The example workflows in workflows/: well-formed UI 0.4 files that convert and validate against Loom."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from engine.validation import validate_prompt
from engine.workflow import convert_ui_to_api, is_ui_workflow
from nodes.registry import builtin_registry

ROOT = Path(__file__).resolve().parents[2] / "workflows"
FILES = sorted(ROOT.glob("*.json"))
# Nodes the model-layer helper provides; until they are in the registry their inputs can't be checked.
MODEL_LAYER_NODES = {"CheckpointLoaderSimple", "CLIPTextEncode", "LoraLoader", "ControlNetLoader"}


def _builder():
    spec = importlib.util.spec_from_file_location("make_workflows", ROOT / "make_workflows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_workflow_is_listed_and_up_to_date():
    builder = _builder()
    assert {f.name for f in FILES} == set(builder.WORKFLOWS)
    for f in FILES:
        assert json.loads(f.read_text()) == builder.WORKFLOWS[f.name](), f"{f.name}: rerun workflows/make_workflows.py"
    for image in builder.INPUT_IMAGES:
        assert (ROOT / "inputs" / image).is_file()


@pytest.fixture
def populated(data_dirs):
    """Loom's folders with (empty) model files of the names the workflows use, and the input images."""
    builder = _builder()
    models = data_dirs.models_dirs[0]
    for folder, name in (("checkpoints", builder.DEMO_CKPT), ("checkpoints", builder.SDXL_BASE),
                         ("checkpoints", builder.SDXL_REFINER), ("controlnet", builder.DEMO_CONTROLNET),
                         ("loras", builder.DEMO_LORA), ("upscale_models", builder.DEMO_UPSCALER)):
        (models / folder).mkdir(parents=True, exist_ok=True)
        (models / folder / name).write_bytes(b"")
    for image in (ROOT / "inputs").glob("*.png"):
        shutil.copy(image, data_dirs.input_dir / image.name)
    return data_dirs


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_workflow_converts_and_validates(path, populated):
    workflow = json.loads(path.read_text())
    assert is_ui_workflow(workflow) and workflow["version"] == 0.4
    registry = builtin_registry()
    result = convert_ui_to_api(workflow, registry.object_info())
    assert set(result.missing_node_types) <= MODEL_LAYER_NODES, result.missing_node_types
    prompt = result.prompt
    by_type = {}
    for node in prompt.values():
        by_type.setdefault(node["class_type"], []).append(node["inputs"])
    for inputs in by_type.get("KSampler", []):
        assert inputs["sampler_name"] in registry.object_info("KSampler")["KSampler"]["input"]["required"][
            "sampler_name"][0]
        assert 0 < inputs["denoise"] <= 1 and isinstance(inputs["seed"], int)
    if result.missing_node_types:
        pytest.skip(f"model-layer nodes not in the registry yet: {sorted(result.missing_node_types)}")
    v = validate_prompt(registry, prompt)
    assert v.ok, v.describe(prompt)
    assert v.outputs


# -- end to end on tiny models ------------------------------------------------------------------------------
def _install_tiny_models(data_dirs) -> None:
    """The tiny test models under the names the workflows use; small copies of the input images."""
    from PIL import Image

    from nodes.diffusion.nodes_upscale import import_spandrel
    from tests import tiny_models as tm

    builder = _builder()
    models = data_dirs.models_dirs[0]
    for family, folder, name in (("sd1", "checkpoints", builder.DEMO_CKPT), ("sdxl", "checkpoints", builder.SDXL_BASE),
                                 ("sdxl_refiner", "checkpoints", builder.SDXL_REFINER)):
        tiny = tm.tiny_checkpoint(models, family)
        shutil.copy(models / folder / tiny, models / folder / name)
    shutil.copy(models / "controlnet" / tm.tiny_controlnet(models), models / "controlnet" / builder.DEMO_CONTROLNET)
    shutil.copy(models / "loras" / tm.tiny_lora(models, "kohya"), models / "loras" / builder.DEMO_LORA)
    import_spandrel()
    from spandrel.architectures.Compact import Compact

    (models / "upscale_models").mkdir(exist_ok=True)
    from safetensors.torch import save_file

    save_file(Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2).state_dict(),
              str(models / "upscale_models" / builder.DEMO_UPSCALER))
    for image in (ROOT / "inputs").glob("*.png"):
        Image.open(image).resize((32, 32)).save(data_dirs.input_dir / image.name)


def _small(prompt: dict) -> dict:
    """Few steps and tiny latents, so a workflow runs in a second on the CPU."""
    for node in prompt.values():
        inputs = node["inputs"]
        if node["class_type"] == "KSampler":
            inputs["steps"] = 2
        elif node["class_type"] == "KSamplerAdvanced":
            inputs["steps"] = 4
            inputs["end_at_step"] = 2 if inputs["end_at_step"] < 10000 else 10000
            inputs["start_at_step"] = 2 if inputs["start_at_step"] > 0 else 0
        elif node["class_type"] == "EmptyLatentImage":
            inputs["width"] = inputs["height"] = 64
    return prompt


def test_workflows_run_end_to_end_on_tiny_models(data_dirs):
    from engine.execution import Executor

    pytest.importorskip("nodes.diffusion.nodes_loaders")
    _install_tiny_models(data_dirs)
    registry = builtin_registry()
    executor = Executor(registry)
    for path in FILES:
        workflow = json.loads(path.read_text())
        prompt = _small(convert_ui_to_api(workflow, registry.object_info()).prompt)
        v = validate_prompt(registry, prompt)
        assert v.ok, (path.name, v.describe(prompt))
        events = []
        result = executor.execute(prompt, path.stem, execute_outputs=v.outputs, on_event=events.append)
        assert result.status == "success", (path.name, result.error)
        saved = [img for out in result.outputs.values() for img in out.get("images", [])]
        assert saved and all((data_dirs.output_dir / img["subfolder"] / img["filename"]).is_file() for img in saved)
        if any(n["class_type"].startswith("KSampler") for n in prompt.values()):
            assert any(e.type == "progress" for e in events), path.name
            assert any(e.type == "preview" for e in events), path.name


@pytest.mark.parametrize("family", ["sd2_v", "sd1_inpaint", "sdxl_refiner"])
def test_loaded_families_sample(family, data_dirs):
    """Checkpoints of the other families, loaded by the loader nodes, through KSampler and VAEDecode."""
    import torch

    loaders = pytest.importorskip("nodes.diffusion.nodes_loaders")
    from nodes.diffusion.nodes_sampling import KSampler
    from nodes.diffusion.nodes_text import CLIPTextEncode
    from nodes.diffusion.nodes_vae import VAEDecode
    from tests import tiny_models as tm

    name = tm.tiny_checkpoint(data_dirs.models_dirs[0], family)
    model, clip, vae = loaders.CheckpointLoaderSimple().load_checkpoint(name)
    if family == "sd2_v":
        assert model.prediction_type == "v_prediction"
    (pos,) = CLIPTextEncode().encode(clip, "a house")
    (neg,) = CLIPTextEncode().encode(clip, "")
    (latent,) = KSampler().sample(model, 1, 2, 5.0, "dpmpp_2m", "karras", pos, neg,
                                  {"samples": torch.zeros(1, 4, 8, 8)})
    (image,) = VAEDecode().decode(vae, latent)
    assert image.shape == (1, 16, 16, 3) and torch.isfinite(image).all()

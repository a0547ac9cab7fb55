"""Every file in workflows/ runs as it is with the models the repository ships: converted by the
engine's UI->API converter, validated, run by `engine.execution.Executor` on the CPU, and each saved
image judged by the demo analyser (tools/demo_model/analyse.py) against what the workflow's prompt
names. The workflows' seeds are fixed, so the runs are deterministic; the model gets about 9 in 10
prompts right (tools/demo_model/README.md), the seeds in the files are ones it gets right.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from tests.workflows_run.workflows_run_support import (
    MODELS,
    WORKFLOWS,
    border_colour,
    iou,
    load_input,
    named,
    positive_text,
)
from tools.demo_model import analyse

CHECKED = {"txt2img.json", "img2img.json", "inpaint.json", "lora.json", "controlnet.json", "hires_fix.json",
           "upscale_with_model.json", "sdxl_base_refiner.json"}


def test_every_workflow_file_is_run_here(builder):
    files = {p.name for p in WORKFLOWS.glob("*.json")}
    assert files == set(builder.WORKFLOWS) == CHECKED


def test_txt2img_draws_what_the_prompt_names(runner):
    run = runner.run("txt2img.json")
    (image,) = run.images
    assert image.shape == (128, 128, 3)
    colour, shape = named(positive_text(run.prompt))
    a = analyse.analyse(image)
    assert (a.color, a.shape, a.striped) == (colour, shape, False), a.features
    assert any(e.type == "progress" for e in run.events) and any(e.type == "preview" for e in run.events)


def test_hires_fix_resamples_at_twice_the_size(runner, builder):
    run = runner.run("hires_fix.json")
    (image,) = run.images
    assert image.shape == (builder.HIRES_SIZE, builder.HIRES_SIZE, 3) and builder.HIRES_SIZE > builder.SIZE
    colour, shape = named(positive_text(run.prompt))
    a = analyse.analyse(image)
    assert (a.color, a.shape) == (colour, shape), a.features
    samplers = [n["inputs"] for n in run.prompt.values() if n["class_type"] == "KSampler"]
    assert sorted(s["denoise"] for s in samplers) == [0.5, 1.0]


def test_lora_stripes_the_fill(runner):
    run = runner.run("lora.json")
    (image,) = run.images
    colour, _ = named(positive_text(run.prompt))
    a = analyse.analyse(image)
    assert a.striped and a.stripe > 2 * analyse.STRIPE_THRESHOLD, a.stripe
    assert a.color == colour


def test_controlnet_follows_the_hint(runner, builder):
    run = runner.run("controlnet.json")
    (image,) = run.images
    hint = load_input(builder.HINT)[..., :3].mean(-1) > 0.5
    colour, _ = named(positive_text(run.prompt))
    a = analyse.analyse(image)
    assert iou(a.mask, hint) >= 0.6, iou(a.mask, hint)
    assert a.color == colour


def test_img2img_keeps_the_scene(runner, builder):
    run = runner.run("img2img.json")
    (image,) = run.images
    scene = load_input(builder.SCENE)[..., :3]
    before, after = analyse.analyse(scene), analyse.analyse(image)
    assert (after.color, after.shape) == (before.color, before.shape) == builder.SCENE_TUPLE[:2]
    assert border_colour(image) == border_colour(scene) == builder.SCENE_TUPLE[4]
    assert iou(after.mask, before.mask) >= 0.7, iou(after.mask, before.mask)
    assert np.abs(image - scene).mean() > 0.005, "denoise 0.6 redraws the picture; it came back unchanged"


def test_inpaint_changes_only_the_transparent_area(runner, builder):
    run = runner.run("inpaint.json")
    (image,) = run.images
    rgba = load_input(builder.SCENE_HOLE)
    hole = rgba[..., 3] < 0.5
    # The VAE decoder sees 8x8-pixel latents and their neighbours: allow a latent's width of margin.
    near = ndimage.binary_dilation(hole, iterations=8)
    diff = np.abs(image - rgba[..., :3]).mean(-1)
    assert diff[~near].mean() < 0.04, diff[~near].mean()
    assert diff[hole].mean() > 0.15, diff[hole].mean()
    colour, _ = named(positive_text(run.prompt))
    a = analyse.analyse(image)
    assert a.color == colour and a.color != builder.HOLE_SCENE_TUPLE[0]
    assert (a.mask & near).sum() >= 0.9 * a.mask.sum(), "the new object spills out of the repainted area"


def test_upscale_with_the_shipped_model_doubles_the_size(runner, builder):
    run = runner.run("upscale_with_model.json")
    (image,) = run.images
    scene = load_input(builder.SCENE)[..., :3]
    assert image.shape == (2 * scene.shape[0], 2 * scene.shape[1], 3)
    before, after = analyse.analyse(scene), analyse.analyse(image)
    assert (after.color, after.shape) == (before.color, before.shape)
    back = image.reshape(scene.shape[0], 2, scene.shape[1], 2, 3).mean((1, 3))
    psnr = 10 * np.log10(1 / np.mean((back - scene) ** 2))
    assert psnr > 30, f"the 2x picture, averaged back down, is {psnr:.1f} dB from its input"


def test_sdxl_base_refiner(runner, builder):
    missing = [name for folder, name in builder.NEEDS_USER_MODELS["sdxl_base_refiner.json"]
               if not (MODELS / folder / name).is_file()]
    if missing:
        pytest.skip(f"needs the user's SDXL checkpoints in models/checkpoints/: {', '.join(missing)}")
    run = runner.run("sdxl_base_refiner.json")
    assert run.images[0].shape == (1024, 1024, 3)


@pytest.mark.parametrize("name", sorted(CHECKED))
def test_nodes_do_not_overlap(name):
    """Node boxes (title bar included) as saved; the editor draws them at these sizes."""
    nodes = json.loads((WORKFLOWS / name).read_text())["nodes"]
    boxes = [(n["type"], n["pos"][0], n["pos"][1] - 30, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
             for n in nodes]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            apart = a[3] <= b[1] or b[3] <= a[1] or a[4] <= b[2] or b[4] <= a[2]
            assert apart, f"{name}: {a[0]} overlaps {b[0]}"

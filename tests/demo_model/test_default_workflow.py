"""The shipped demo model through Loom's engine on the CPU, judged by the demo analyser.

The workflows are the ComfyUI txt2img graph (CheckpointLoaderSimple -> CLIPTextEncode ->
EmptyLatentImage -> KSampler -> VAEDecode -> SaveImage) at the model's 128x128, with a LoRA or a
ControlNet added for their tests. Three seeds per check; the model is right about 9 times in 10,
so each check asks for 2 of 3.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tools.demo_model import analyse, data
from tools.demo_model.export import CKPT_NAME, CONTROL_NAME, LORA_NAME

pytest.importorskip("engine.execution")
MODELS = Path(__file__).resolve().parents[2] / "models"
SEEDS = 3


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    if not (MODELS / "checkpoints" / CKPT_NAME).is_file():
        pytest.skip(f"the demo checkpoint models/checkpoints/{CKPT_NAME} is missing")
    from nodes import paths
    from tools.demo_model.evaluate import Runner

    paths.configure(data_dir=tmp_path_factory.mktemp("demo_data"), models_dir=MODELS)
    return Runner()


def _prompt(text: str, seed: int, **kw) -> dict:
    from tools.demo_model.evaluate import txt2img_prompt

    return txt2img_prompt(text, seed, batch=SEEDS, prefix="test/demo", **kw)


def test_a_red_circle_gives_a_red_circle(runner):
    images = runner.images(_prompt("a red circle", 7))
    assert len(images) == SEEDS and images[0].shape == (128, 128, 3)
    found = [analyse.analyse(im) for im in images]
    assert sum(a.color == "red" and a.shape == "circle" for a in found) >= 2, [(a.color, a.shape) for a in found]
    assert not any(a.striped for a in found)


def test_the_prompt_decides_colour_and_shape(runner):
    found = [analyse.analyse(im) for im in runner.images(_prompt("a blue star on a white background", 11))]
    assert sum(a.color == "blue" and a.shape == "star" for a in found) >= 2, [(a.color, a.shape) for a in found]


def test_the_stripes_lora_stripes_the_fill(runner):
    found = [analyse.analyse(im) for im in runner.images(_prompt("a yellow square", 5, lora=LORA_NAME))]
    assert sum(a.striped for a in found) >= 2, [round(a.stripe, 3) for a in found]


def test_the_controlnet_follows_a_shape_mask(runner):
    from PIL import Image

    from nodes import paths

    g = torch.Generator().manual_seed(3)
    scene = data.scenes_from_tuples([("green", "triangle", "large", "top left", "white")], generator=g)
    mask = data.render(scene, generator=g)["mask"][0, 0]
    Image.fromarray((mask * 255).round().byte().numpy()).convert("RGB").save(paths.folders().input_dir / "hint.png")
    found = [analyse.analyse(im) for im in
             runner.images(_prompt("a green shape on a white background", 21, hint_image="hint.png",
                                   controlnet=CONTROL_NAME))]
    truth = mask.numpy() > 0.5
    ious = [(a.mask & truth).sum() / max(1, (a.mask | truth).sum()) for a in found]
    assert sum(i >= 0.5 for i in ious) >= 2, ious


def test_the_analyser_is_right_on_generated_scenes():
    from tools.demo_model.evaluate import check_analyser

    figures = check_analyser(n=300, seed=5)
    assert figures["analyser_color"] > 0.95 and figures["analyser_shape"] > 0.95, figures
    assert figures["analyser_stripes"] > 0.95, figures


def test_the_analyser_refuses_what_is_not_one_rgb_image():
    with pytest.raises(ValueError, match="expected an RGB image"):
        analyse.analyse(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="expected one image, got a batch of 2"):
        analyse.analyse(torch.zeros(2, 8, 8, 3))
    blank = analyse.analyse(torch.full((32, 32, 3), 0.5))
    assert (blank.color, blank.shape) == ("none", "none")

"""The shipped 2x upscale model (tools/demo_model/train_upscaler.py): spandrel loads it as a 2x
Compact model through Loom's UpscaleModelLoader, and it beats bicubic on held-out generated scenes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.workflows_run.workflows_run_support import MODELS
from tools.demo_model import train_upscaler

PATH = MODELS / "upscale_models" / train_upscaler.UPSCALER_NAME


def _load(runner):
    from nodes.diffusion.nodes_upscale import UpscaleModelLoader

    runner.configure()
    (ref,) = UpscaleModelLoader().load_model(train_upscaler.UPSCALER_NAME)
    return ref


def test_spandrel_loads_it_as_a_small_2x_compact_model(runner):
    from safetensors import safe_open

    assert PATH.stat().st_size < 100_000
    with safe_open(str(PATH), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    ref = _load(runner)
    assert ref.scale == 2 and ref.model.architecture.id == "Compact"
    assert (ref.model.input_channels, ref.model.output_channels) == (3, 3)
    assert sum(p.numel() for p in ref.model.model.parameters()) < 50_000


def test_it_beats_bicubic_on_held_out_scenes(runner):
    ref = _load(runner)
    # Seed 4242 is neither the training seed nor the figure's (12345) in the README.
    figures = train_upscaler.evaluate(ref.model.model.float(), n=100, seed=4242)
    assert figures["model"] > figures["bicubic"] + 1.0, figures
    assert figures["bicubic"] > figures["nearest"], figures


def test_untrained_model_is_nearest_neighbour():
    model = train_upscaler.build(feat=8, convs=2)
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), F.interpolate(x, scale_factor=2, mode="nearest"))

"""Upscale models through spandrel (without torchvision)."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from nodes.diffusion import nodes_upscale as nu


@pytest.fixture
def compact_model(data_dirs):
    """A tiny Real-ESRGAN Compact (2x) saved where UpscaleModelLoader looks."""
    from safetensors.torch import save_file

    spandrel = nu.import_spandrel()
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2)
    folder = data_dirs.models_dirs[0] / "upscale_models"
    folder.mkdir(parents=True, exist_ok=True)
    save_file(net.state_dict(), str(folder / "tiny-compact-x2.safetensors"))
    torch.save({"params_ema": net.state_dict()}, folder / "tiny-compact-x2.pth")
    return spandrel


def test_spandrel_imports_without_torchvision_and_hides_the_stand_in():
    spandrel = nu.import_spandrel()
    assert hasattr(spandrel, "ModelLoader")
    if importlib.util.find_spec("torchvision") is None:
        assert "torchvision" not in sys.modules
        from spandrel.architectures.LaMa.__arch import LaMa as lama_arch

        with pytest.raises(RuntimeError, match="needs torchvision"):
            lama_arch.rotate(torch.zeros(1, 3, 4, 4), 0.0)


def test_upscale_model_loads_and_runs_tiled(compact_model):
    assert "tiny-compact-x2.safetensors" in nu.UpscaleModelLoader.INPUT_TYPES()["required"]["model_name"][0]
    (model,) = nu.UpscaleModelLoader().load_model("tiny-compact-x2.safetensors")
    assert model.scale == 2
    image = torch.rand(2, 40, 24, 3)
    (out,) = nu.ImageUpscaleWithModel().upscale(model, image)
    assert out.shape == (2, 80, 48, 3) and 0 <= out.min() and out.max() <= 1
    # tiling (small tiles, overlap) gives the same picture as one tile, up to the blend at seams
    with torch.inference_mode():
        whole = model.model(image.movedim(-1, 1)).clamp(0, 1).movedim(1, -1)
    tiled_small = nu.ImageUpscaleWithModel()
    tiled_small.TILE, tiled_small.OVERLAP = 16, 8
    (pieces,) = tiled_small.upscale(model, image)
    assert (pieces - whole).abs().mean() < 0.02
    (from_pth,) = nu.UpscaleModelLoader().load_model("tiny-compact-x2.pth")
    assert from_pth.scale == 2


def test_upscale_loader_rejects_other_files(data_dirs):
    from safetensors.torch import save_file

    folder = data_dirs.models_dirs[0] / "upscale_models"
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"not.a.model": torch.zeros(3)}, str(folder / "junk.safetensors"))
    with pytest.raises(ValueError, match="junk.safetensors"):
        nu.UpscaleModelLoader().load_model("junk.safetensors")
    with pytest.raises(FileNotFoundError):
        nu.UpscaleModelLoader().load_model("missing.safetensors")
    with pytest.raises(TypeError, match="UPSCALE_MODEL"):
        nu.ImageUpscaleWithModel().upscale("model", torch.rand(1, 8, 8, 3))

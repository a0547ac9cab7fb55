"""Latent nodes and the resize helpers behind them (bislerp included)."""

import math

import pytest
import torch
import torch.nn.functional as F

from nodes.builtin.resize import bislerp, common_upscale


def _latent(b=2, c=4, h=8, w=8, **extra):
    return {"samples": torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(0)), **extra}


def test_empty_latent_image(run_node):
    (lat,) = run_node("EmptyLatentImage", width=64, height=48, batch_size=3)
    assert set(lat) == {"samples"}
    assert lat["samples"].shape == (3, 4, 6, 8) and lat["samples"].dtype == torch.float32
    assert torch.all(lat["samples"] == 0)


@pytest.mark.parametrize("method", ["nearest-exact", "bilinear", "area", "bicubic", "bislerp"])
def test_latent_upscale_methods_keep_a_constant_field(run_node, method):
    lat = {"samples": torch.ones(1, 4, 8, 8) * torch.tensor([1.0, -2.0, 0.5, 3.0])[None, :, None, None],
           "noise_mask": torch.ones(1, 1, 64, 64)}
    (out,) = run_node("LatentUpscale", samples=lat, upscale_method=method, width=128, height=96, crop="disabled")
    assert out["samples"].shape == (1, 4, 12, 16)
    assert torch.allclose(out["samples"], out["samples"][:, :, :1, :1].expand_as(out["samples"]), atol=1e-5)
    assert torch.allclose(out["samples"][0, :, 0, 0], torch.tensor([1.0, -2.0, 0.5, 3.0]), atol=1e-5)
    assert out["noise_mask"] is lat["noise_mask"]  # other keys are carried along
    assert lat["samples"].shape == (1, 4, 8, 8)  # the input is not modified


def test_latent_upscale_sizes(run_node):
    lat = _latent(h=8, w=16)
    (same,) = run_node("LatentUpscale", samples=lat, upscale_method="bilinear", width=0, height=0, crop="disabled")
    assert same is lat
    (out,) = run_node("LatentUpscale", samples=lat, upscale_method="bilinear", width=0, height=128, crop="disabled")
    assert out["samples"].shape[-2:] == (16, 32)  # aspect kept
    (out,) = run_node("LatentUpscale", samples=lat, upscale_method="bilinear", width=8, height=8, crop="center")
    assert out["samples"].shape[-2:] == (8, 8)  # sides are at least 64 px
    (out,) = run_node("LatentUpscale", samples=lat, upscale_method="nearest-exact", width=64, height=64, crop="center")
    assert torch.equal(out["samples"], lat["samples"][..., 4:12])
    (out,) = run_node("LatentUpscaleBy", samples=lat, upscale_method="bislerp", scale_by=1.5)
    assert out["samples"].shape == (2, 4, 12, 24)


def test_bislerp_matches_bilinear_for_parallel_vectors_and_keeps_norms():
    direction = torch.tensor([1.0, 2.0, -1.0, 0.5])
    scale = torch.rand(1, 1, 5, 7, generator=torch.Generator().manual_seed(1)) + 0.5
    parallel = direction[None, :, None, None] * scale
    assert torch.allclose(bislerp(parallel, 11, 9), F.interpolate(parallel, size=(9, 11), mode="bilinear"), atol=1e-5)
    # Two orthogonal unit vectors: the midpoint stays on the unit sphere (linear mixing gives 0.707).
    a, b = torch.tensor([1.0, 0, 0, 0]), torch.tensor([0, 1.0, 0, 0])
    field = torch.stack([a, b], dim=-1)[None, :, None, :]  # [1,4,1,2]
    out = bislerp(field, 3, 1)
    assert out.norm(dim=1).flatten().tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    assert out[0, :2, 0, 1].tolist() == pytest.approx([math.sqrt(0.5), math.sqrt(0.5)], abs=1e-5)
    # Opposite vectors have no unique arc: mixed linearly, no NaN.
    opposite = torch.stack([a, -a], dim=-1)[None, :, None, :]
    assert torch.isfinite(bislerp(opposite, 4, 1)).all()


def test_common_upscale_5d_and_errors():
    video = torch.randn(1, 4, 3, 4, 4)
    out = common_upscale(video, 8, 6, "bilinear")
    assert out.shape == (1, 4, 3, 6, 8)
    assert torch.allclose(out[:, :, 1], F.interpolate(video[:, :, 1], size=(6, 8), mode="bilinear"))
    with pytest.raises(ValueError, match="at least 1"):
        common_upscale(video, 0, 4, "bilinear")
    with pytest.raises(ValueError, match="unknown crop"):
        common_upscale(video, 4, 4, "bilinear", "left")


def test_latent_composite(run_node):
    to = {"samples": torch.zeros(2, 4, 8, 8), "batch_index": [5, 6]}
    src = {"samples": torch.ones(1, 4, 4, 4)}
    (out,) = run_node("LatentComposite", samples_to=to, samples_from=src, x=16, y=40, feather=0)
    s = out["samples"]
    assert out["batch_index"] == [5, 6] and torch.all(to["samples"] == 0)
    assert torch.all(s[:, :, 5:8, 2:6] == 1) and s.sum() == 2 * 4 * 3 * 4  # clipped at the bottom
    (out,) = run_node("LatentComposite", samples_to=to, samples_from=src, x=16, y=16, feather=16)
    row = out["samples"][0, 0, 3, :].tolist()  # middle row of the pasted block (rows 2..5)
    assert row == pytest.approx([0, 0, 0.5, 1, 1, 0.5, 0, 0])
    corner = out["samples"][0, 0, 2, 2].item()
    assert corner == pytest.approx(0.25)  # top and left fades multiply
    (out,) = run_node("LatentComposite", samples_to=to, samples_from=src, x=0, y=0, feather=16)
    assert out["samples"][0, 0, 0, 0].item() == 1.0  # edges on the border of samples_to are not faded


def test_latent_from_batch(run_node):
    lat = _latent(b=4, noise_mask=torch.rand(2, 1, 8, 8))
    (out,) = run_node("LatentFromBatch", samples=lat, batch_index=1, length=2)
    assert torch.equal(out["samples"], lat["samples"][1:3]) and out["batch_index"] == [1, 2]
    # masks [m0, m1] repeat to [m0, m1, m0, m1]: items 1 and 2 are m1, m0
    assert torch.equal(out["noise_mask"], torch.stack([lat["noise_mask"][1], lat["noise_mask"][0]]))
    (again,) = run_node("LatentFromBatch", samples=out, batch_index=1, length=5)
    assert again["batch_index"] == [2] and again["samples"].shape[0] == 1
    (last,) = run_node("LatentFromBatch", samples=lat, batch_index=63, length=1)
    assert last["batch_index"] == [3]  # clamped to the last item
    single_mask = _latent(b=3, noise_mask=torch.rand(1, 1, 8, 8))
    (out,) = run_node("LatentFromBatch", samples=single_mask, batch_index=2, length=1)
    assert torch.equal(out["noise_mask"], single_mask["noise_mask"])


def test_repeat_latent_batch(run_node):
    lat = _latent(b=2, noise_mask=torch.rand(2, 1, 8, 8), batch_index=[3, 4])
    (out,) = run_node("RepeatLatentBatch", samples=lat, amount=3)
    assert out["samples"].shape[0] == 6 and torch.equal(out["samples"][4:], lat["samples"])
    assert out["noise_mask"].shape[0] == 6 and torch.equal(out["noise_mask"][2:4], lat["noise_mask"])
    assert out["batch_index"] == [3, 4, 5, 6, 7, 8]
    (out,) = run_node("RepeatLatentBatch", samples={"samples": torch.zeros(1, 4, 2, 2)}, amount=2)
    assert set(out) == {"samples"} and out["samples"].shape[0] == 2


def test_set_latent_noise_mask_and_errors(run_node):
    lat = _latent(b=1)
    (out,) = run_node("SetLatentNoiseMask", samples=lat, mask=torch.ones(64, 64))
    assert out["noise_mask"].shape == (1, 1, 64, 64) and "noise_mask" not in lat
    with pytest.raises(TypeError, match=r"SetLatentNoiseMask: samples must be a LATENT"):
        run_node("SetLatentNoiseMask", samples=torch.zeros(1, 4, 8, 8), mask=torch.ones(8, 8))
    with pytest.raises(ValueError, match=r"samples\['samples'\] must be \[B,C,H,W\]"):
        run_node("LatentUpscaleBy", samples={"samples": torch.zeros(8, 8)}, upscale_method="area", scale_by=2)


def test_lanczos_stays_within_the_input_range():
    step = torch.zeros(1, 1, 4, 8)
    step[..., 4:] = 1.0
    out = common_upscale(step, 21, 9, "lanczos")
    assert out.shape == (1, 1, 9, 21) and out.min() >= 0 and out.max() <= 1
    assert out[0, 0, 4, 0] == 0 and out[0, 0, 4, -1] == 1

"""The sampling loop on a tiny UNet: every sampler, seeds, img2img, inpaint, areas, ControlNet, SDXL."""

from __future__ import annotations

import pytest
import torch

from nodes.diffusion.sampling import SAMPLER_NAMES, ksample
from nodes.diffusion.types import ControlApplication
from tests.diffusion_sampling import tiny


def _run(model, positive, negative, latent, sampler="euler", steps=3, seed=5, cfg=4.0, **kw):
    return ksample(model, seed, steps, cfg, sampler, "karras", positive, negative, latent, **kw)["samples"]


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_every_sampler_runs(sampler, sd_model, conds):
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    out = _run(sd_model, *conds, latent, sampler=sampler, steps=4)
    assert out.shape == (1, 4, 8, 8)
    assert torch.isfinite(out).all()
    # a sampler that does nothing would return the scaled noise; a real one moves towards the model
    noise_scaled = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    assert not torch.allclose(out, noise_scaled, atol=1e-3)


def test_same_seed_same_result_and_other_seed_differs(sd_model, conds, empty_latent):
    a = _run(sd_model, *conds, empty_latent, sampler="euler_ancestral", seed=11)
    b = _run(sd_model, *conds, empty_latent, sampler="euler_ancestral", seed=11)
    c = _run(sd_model, *conds, empty_latent, sampler="euler_ancestral", seed=12)
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 1e-2


def test_cfg_one_skips_the_negative(sd_model, conds, empty_latent, monkeypatch):
    calls = []
    unet = sd_model.unet.module
    original = unet.forward

    def counting(sample, *args, **kwargs):
        calls.append(sample.shape[0])
        return original(sample, *args, **kwargs)

    monkeypatch.setattr(unet, "forward", counting)
    _run(sd_model, *conds, empty_latent, cfg=1.0, steps=2)
    assert calls == [1, 1]
    calls.clear()
    _run(sd_model, *conds, empty_latent, cfg=5.0, steps=2)
    assert calls == [2, 2]      # cond and uncond in one batch


def test_denoise_below_one_keeps_structure(sd_model, conds):
    g = torch.Generator().manual_seed(0)
    source = torch.randn(1, 4, 16, 16, generator=g) * 3
    latent = {"samples": source}
    low = _run(sd_model, *conds, latent, denoise=0.3, steps=4)
    full = _run(sd_model, *conds, latent, denoise=1.0, steps=4)
    dist_low = (low - source).pow(2).mean()
    dist_full = (full - source).pow(2).mean()
    assert dist_low < dist_full * 0.5


def test_inpaint_mask_keeps_the_unmasked_region(sd_model, conds):
    g = torch.Generator().manual_seed(3)
    source = torch.randn(1, 4, 16, 16, generator=g)
    mask = torch.zeros(1, 32, 32)       # pixel-size mask, resized to the latent
    mask[:, :, 16:] = 1.0               # repaint the right half
    out = _run(sd_model, *conds, {"samples": source, "noise_mask": mask}, steps=4, sampler="dpmpp_2m")
    left, right = (out - source)[..., :7].abs().max(), (out - source)[..., 9:].abs().mean()
    assert left < 1e-4
    assert right > 0.05


def test_ddim_inpaint_uses_its_own_noise_and_keeps_the_known_part(sd_model, conds):
    source = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(4))
    mask = torch.zeros(1, 16, 16)
    mask[:, 8:] = 1
    out = _run(sd_model, *conds, {"samples": source, "noise_mask": mask}, sampler="ddim", steps=3)
    assert (out - source)[:, :, :7].abs().max() < 1e-4


def test_split_run_with_leftover_noise_equals_one_run(sd_model, conds, empty_latent):
    full = _run(sd_model, *conds, empty_latent, steps=6)
    first = _run(sd_model, *conds, empty_latent, steps=6, last_step=3, force_full_denoise=False)
    assert not torch.allclose(first, full, rtol=1e-2)      # stopped halfway, with noise left in
    second = _run(sd_model, *conds, {"samples": first}, steps=6, start_step=3, disable_noise=True)
    assert torch.allclose(second, full, rtol=1e-4, atol=1e-3)
    denoised_early = _run(sd_model, *conds, empty_latent, steps=6, last_step=3, force_full_denoise=True)
    assert not torch.allclose(denoised_early, first, rtol=1e-2)
    untouched = _run(sd_model, *conds, {"samples": first}, steps=6, start_step=6, disable_noise=True)
    assert torch.equal(untouched, first)


def test_area_conditioning_changes_its_region_more(sd_model, empty_latent):
    base_pos, neg = tiny.text_cond(1), tiny.text_cond(2)
    other = tiny.text_cond(9)[0]
    # ComfyUI units: 8 px; the tiny VAE has 2 px per cell, so an 8x16 px area at (x=16, y=0) is 4x8 cells
    # at x=8: the right half of the top rows... use the right half of the image.
    area_cond = [other[0], {"area": (32 // 8, 16 // 8, 0, 16 // 8), "strength": 3.0}]
    base = _run(sd_model, base_pos, neg, empty_latent, steps=3)
    with_area = _run(sd_model, base_pos + [area_cond], neg, empty_latent, steps=3)
    diff = (with_area - base).abs()
    inside, outside = diff[..., 8:].mean(), diff[..., :4].mean()
    assert inside > 0.01
    assert inside > 3 * outside


def test_mask_conditioning_weights_its_region(sd_model, empty_latent):
    pos, neg = tiny.text_cond(1), tiny.text_cond(2)
    mask = torch.zeros(1, 16, 16)
    mask[:, :8] = 1.0     # top half
    masked = [tiny.text_cond(7)[0][0], {"mask": mask, "mask_strength": 1.0, "strength": 2.0,
                                        "set_area_to_bounds": False}]
    base = _run(sd_model, pos, neg, empty_latent)
    out = _run(sd_model, pos + [masked], neg, empty_latent)
    diff = (out - base).abs()
    assert diff[:, :, :6].mean() > 3 * diff[:, :, 10:].mean()


def test_timestep_range_limits_a_cond(sd_model, empty_latent):
    pos, neg = tiny.text_cond(1), tiny.text_cond(2)
    # 3 karras steps sample at sigmas 14.6, 1.27 and 0.029; 60%..90% of the schedule is 1.16..0.34
    late = [[tiny.text_cond(8)[0][0], {"start_percent": 0.6, "end_percent": 0.9}]]
    only_base = _run(sd_model, pos, neg, empty_latent)
    # an entry that is active on none of the steps leaves the result unchanged
    assert torch.allclose(_run(sd_model, pos + late, neg, empty_latent), only_base, atol=1e-6)
    early = [[tiny.text_cond(8)[0][0], {"start_percent": 0.0, "end_percent": 0.5}]]
    assert not torch.allclose(_run(sd_model, pos + early, neg, empty_latent), only_base, atol=1e-3)


def _controlled(cond, controlnet, strength, start=0.0, end=1.0):
    hint = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    app = ControlApplication(control=controlnet, hint=hint, strength=strength, start_percent=start, end_percent=end)
    return [[t, dict(o, control=app)] for t, o in cond], app


def test_controlnet_strength(sd_model, controlnet, conds, empty_latent):
    pos, neg = conds
    base = _run(sd_model, pos, neg, empty_latent)
    zero, _ = _controlled(pos, controlnet, 0.0)
    assert torch.equal(_run(sd_model, zero, neg, empty_latent), base)
    strong, _ = _controlled(pos, controlnet, 1.0)
    assert (_run(sd_model, strong, neg, empty_latent) - base).abs().mean() > 1e-3
    # a range that holds none of the steps' sigmas (14.6, 1.27, 0.029): the ControlNet never runs
    # (only the batching differs: the controlled positive runs apart from the negative)
    outside, _ = _controlled(pos, controlnet, 1.0, start=0.6, end=0.9)
    assert torch.allclose(_run(sd_model, outside, neg, empty_latent), base, rtol=1e-4, atol=1e-3)


def test_controlnet_shared_by_positive_and_negative_runs_in_one_batch(sd_model, controlnet, conds,
                                                                      empty_latent, monkeypatch):
    pos, neg = conds
    pos_c, app = _controlled(pos, controlnet, 0.8)
    neg_c = [[t, dict(o, control=app)] for t, o in neg]
    calls = []
    cn = controlnet.controlnet.module
    original = cn.forward
    monkeypatch.setattr(cn, "forward", lambda sample, *a, **k: calls.append(sample.shape[0]) or original(sample, *a, **k))
    out = _run(sd_model, pos_c, neg_c, empty_latent, steps=2)
    assert calls == [2, 2]
    assert torch.isfinite(out).all()


def test_sdxl_added_conditioning(sdxl_model, empty_latent):
    pos = tiny.text_cond(1, dim=64, pooled=32)
    neg = tiny.text_cond(2, dim=64, pooled=32)
    base = _run(sdxl_model, pos, neg, empty_latent)
    assert torch.isfinite(base).all()
    resized = [[pos[0][0], dict(pos[0][1], width=2048, height=512, target_width=2048, target_height=512)]]
    assert not torch.allclose(_run(sdxl_model, resized, neg, empty_latent), base, atol=1e-4)


def test_inpainting_unet_gets_mask_and_masked_image(inpaint_model, conds):
    source = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 16, 16)
    mask[:, 4:12, 4:12] = 1
    pos, neg = conds
    pos = [[t, dict(o, concat_latent_image=source * 0.5, concat_mask=mask)] for t, o in pos]
    out = _run(inpaint_model, pos, neg, {"samples": source, "noise_mask": mask})
    assert out.shape == source.shape and torch.isfinite(out).all()
    assert (out - source)[..., :3, :].abs().max() < 1e-4


def test_bad_conditioning_is_reported(sd_model, empty_latent):
    with pytest.raises(TypeError, match="positive"):
        _run(sd_model, [torch.zeros(1, 8, 32)], tiny.text_cond(2), empty_latent)
    with pytest.raises(ValueError, match="empty"):
        _run(sd_model, [], tiny.text_cond(2), empty_latent)


def test_fast_path_goes_through_torch_compile_and_matches_eager(conds, empty_latent, monkeypatch):
    """The --fast wrapper (channels_last, dynamo, output copy) on the CPU with dynamo's eager backend."""
    from nodes.diffusion.sampling import fast, settings

    model = tiny.model_ref(tiny.tiny_unet(seed=5), key="tiny-unet-fast")
    eager = _run(model, *conds, empty_latent, steps=2)
    monkeypatch.setattr(settings, "compile_backend", "eager")
    monkeypatch.setattr(fast, "fast_enabled", lambda device: True)
    fast.compile_seconds.clear()
    compiled = _run(model, *conds, empty_latent, steps=2)
    assert fast.compile_seconds, "the compiled caller was not used"
    # channels_last reorders the convolutions' sums: equal up to float rounding
    assert (compiled - eager).abs().max() < 1e-4 * eager.abs().max()
    assert model.unet.module.conv_in.weight.is_contiguous(memory_format=torch.channels_last)


def test_fast_path_is_a_no_op_on_cpu(sd_model):
    from nodes.diffusion.sampling import fast, settings

    settings_fast = settings.fast
    try:
        settings.fast = True
        assert not fast.fast_enabled(torch.device("cpu"))
    finally:
        settings.fast = settings_fast

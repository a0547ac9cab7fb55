"""The sampling, conditioning, ControlNet and VAE nodes, called as the engine calls them."""

from __future__ import annotations

import threading

import pytest
import torch

from nodes import context
from nodes.diffusion import nodes_conditioning as nc
from nodes.diffusion import nodes_controlnet as ncn
from nodes.diffusion import nodes_sampling as ns
from nodes.diffusion import nodes_vae as nv
from nodes.diffusion.sampling import Sampler, settings
from nodes.registry import NodeRegistry
from tests.diffusion_sampling import tiny

MODULES = ("nodes.diffusion.nodes_sampling", "nodes.diffusion.nodes_conditioning", "nodes.diffusion.nodes_vae",
           "nodes.diffusion.nodes_controlnet", "nodes.diffusion.nodes_upscale")


def test_nodes_register_with_comfyui_names_and_object_info(data_dirs):
    registry = NodeRegistry()
    registry.load_builtins(MODULES)
    assert not registry.load_errors
    info = registry.object_info()
    for name in ("KSampler", "KSamplerAdvanced", "SamplerCustom", "KSamplerSelect", "BasicScheduler",
                 "KarrasScheduler", "SDTurboScheduler", "ConditioningCombine", "ConditioningConcat",
                 "ConditioningAverage", "ConditioningSetArea", "ConditioningSetMask", "ConditioningZeroOut",
                 "ConditioningSetTimestepRange", "InpaintModelConditioning", "VAEDecode", "VAEEncode",
                 "VAEEncodeForInpaint", "VAEDecodeTiled", "VAEEncodeTiled", "ControlNetApply",
                 "ControlNetApplyAdvanced", "UpscaleModelLoader", "ImageUpscaleWithModel"):
        assert name in info, name
    ks = info["KSampler"]["input"]["required"]
    assert list(ks) == ["model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive", "negative",
                        "latent_image", "denoise"]
    assert ks["seed"][1]["control_after_generate"] is True
    assert "euler" in ks["sampler_name"][0] and "karras" in ks["scheduler"][0]
    assert info["SamplerCustom"]["output_name"] == ["output", "denoised_output"]
    assert info["KSamplerAdvanced"]["display_name"] == "KSampler (Advanced)"


def _ctx(on_progress, interrupt=None):
    return context.NodeContext(prompt_id="p", node_id="3", real_node_id="3",
                               interrupt=interrupt or context.InterruptFlag(), on_progress=on_progress)


def test_ksampler_reports_progress_and_previews(sd_model, conds, empty_latent, monkeypatch):
    monkeypatch.setattr(settings, "preview_every", 2)
    events = []
    token = context.set_current(_ctx(lambda node, value, total, preview: events.append((node, value, total, preview))))
    try:
        (out,) = ns.KSampler().sample(sd_model, 3, 5, 6.0, "euler", "normal", *conds, empty_latent)
    finally:
        context.reset_current(token)
    assert out["samples"].shape == (1, 4, 16, 16)
    assert [(e[0], e[1], e[2]) for e in events] == [("3", i, 5) for i in range(1, 6)]
    previews = [e[3] for e in events]
    assert [p is not None for p in previews] == [False, True, False, True, True]
    assert previews[1].mode == "RGB" and previews[1].size == (16, 16)


def test_interrupt_stops_sampling_promptly(sd_model, conds, empty_latent):
    flag = context.InterruptFlag()
    seen = []

    def on_progress(node, value, total, preview):
        seen.append(value)
        if value == 2:
            flag.set()

    token = context.set_current(_ctx(on_progress, flag))
    try:
        with pytest.raises(context.InterruptProcessing):
            ns.KSampler().sample(sd_model, 3, 50, 6.0, "dpmpp_2m", "karras", *conds, empty_latent)
    finally:
        context.reset_current(token)
    assert seen == [1, 2]


def test_interrupt_from_another_thread(sd_model, conds):
    flag = context.InterruptFlag()
    started = threading.Event()

    def on_progress(node, value, total, preview):
        started.set()

    threading.Timer(0.0, lambda: started.wait(30) and flag.set()).start()
    token = context.set_current(_ctx(on_progress, flag))
    try:
        with pytest.raises(context.InterruptProcessing):
            ns.KSampler().sample(sd_model, 3, 10000, 6.0, "euler", "karras", *conds, {"samples": torch.zeros(1, 4, 8, 8)})
    finally:
        context.reset_current(token)


def test_custom_sampling_nodes_match_ksampler(sd_model, conds, empty_latent):
    (sampler,) = ns.KSamplerSelect().get_sampler("dpmpp_2m")
    assert isinstance(sampler, Sampler)
    (sigmas,) = ns.BasicScheduler().get_sigmas(sd_model, "karras", 4, 1.0)
    out, denoised = ns.SamplerCustom().sample(sd_model, True, 9, 5.0, *conds, sampler, sigmas, empty_latent)
    (ref,) = ns.KSampler().sample(sd_model, 9, 4, 5.0, "dpmpp_2m", "karras", *conds, empty_latent)
    assert torch.equal(out["samples"], ref["samples"])
    assert denoised["samples"].shape == out["samples"].shape
    # with a final sigma of 0 the last step lands on its own denoised estimate
    assert torch.allclose(denoised["samples"], out["samples"], atol=1e-4)
    (karras,) = ns.KarrasScheduler().get_sigmas(4, 14.614642, 0.0291675, 7.0)
    assert torch.allclose(karras, sigmas, atol=1e-4)
    (turbo,) = ns.SDTurboScheduler().get_sigmas(sd_model, 2, 1.0)
    assert len(turbo) == 3 and turbo[-1] == 0 and turbo[0] > turbo[1]
    (partial,) = ns.BasicScheduler().get_sigmas(sd_model, "normal", 4, 0.5)
    assert len(partial) == 5 and partial[0] < sigmas[0]


def test_ksampler_advanced_keeps_the_latent_when_starting_past_the_end(sd_model, conds):
    latent = {"samples": torch.randn(1, 4, 8, 8), "batch_index": [3]}
    (out,) = ns.KSamplerAdvanced().sample(sd_model, "enable", 1, 4, 5.0, "euler", "normal", *conds, latent,
                                          start_at_step=4, end_at_step=10000, return_with_leftover_noise="disable")
    assert torch.equal(out["samples"], latent["samples"]) and out["batch_index"] == [3]


def test_bad_inputs_are_named(sd_model, conds, empty_latent):
    with pytest.raises(TypeError, match="KSampler: model must be a MODEL"):
        ns.KSampler().sample("not a model", 1, 2, 5.0, "euler", "normal", *conds, empty_latent)
    with pytest.raises(TypeError, match="latent_image"):
        ns.KSampler().sample(sd_model, 1, 2, 5.0, "euler", "normal", *conds, torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match="unknown sampler"):
        ns.KSampler().sample(sd_model, 1, 2, 5.0, "nope", "normal", *conds, empty_latent)
    with pytest.raises(ValueError, match="this model works on 4"):
        ns.KSampler().sample(sd_model, 1, 2, 5.0, "euler", "normal", *conds, {"samples": torch.ones(1, 16, 8, 8)})
    with pytest.raises(ValueError, match="KarrasScheduler"):
        ns.KarrasScheduler().get_sigmas(4, 1.0, 2.0, 7.0)


# -- conditioning nodes --------------------------------------------------------------------------------
def test_conditioning_nodes():
    a, b = tiny.text_cond(1, pooled=4), tiny.text_cond(2, tokens=4, pooled=4)
    (both,) = nc.ConditioningCombine().combine(a, b)
    assert len(both) == 2 and both[0][0] is a[0][0]
    (cat,) = nc.ConditioningConcat().concat(a, b)
    assert cat[0][0].shape == (1, 12, 32)
    (avg,) = nc.ConditioningAverage().addWeighted(a, b, 0.25)
    expected = a[0][0] * 0.25 + torch.cat([b[0][0], torch.zeros(1, 4, 32)], dim=1) * 0.75
    assert torch.allclose(avg[0][0], expected)
    assert torch.allclose(avg[0][1]["pooled_output"], a[0][1]["pooled_output"] * 0.25 + b[0][1]["pooled_output"] * 0.75)
    (area,) = nc.ConditioningSetArea().append(a, 128, 64, 16, 8, 2.0)
    assert area[0][1]["area"] == (8, 16, 1, 2) and area[0][1]["strength"] == 2.0
    assert "area" not in a[0][1]                      # inputs are never changed
    (mask,) = nc.ConditioningSetMask().append(a, torch.ones(8, 8), "mask bounds", 0.5)
    assert mask[0][1]["mask"].shape == (1, 8, 8) and mask[0][1]["set_area_to_bounds"] is True
    assert mask[0][1]["mask_strength"] == 0.5
    (zero,) = nc.ConditioningZeroOut().zero_out(a)
    assert not zero[0][0].any() and not zero[0][1]["pooled_output"].any()
    (ranged,) = nc.ConditioningSetTimestepRange().set_range(a, 0.2, 0.8)
    assert (ranged[0][1]["start_percent"], ranged[0][1]["end_percent"]) == (0.2, 0.8)
    with pytest.raises(TypeError, match="ConditioningCombine: conditioning_2"):
        nc.ConditioningCombine().combine(a, "text")


def test_controlnet_nodes(sd_model, controlnet, conds, empty_latent):
    pos, neg = conds
    hint = torch.rand(1, 32, 32, 3)
    p2, n2 = ncn.ControlNetApplyAdvanced().apply_controlnet(pos, neg, controlnet, hint, 0.9, 0.0, 1.0)
    assert p2[0][1]["control"] is n2[0][1]["control"]          # shared: one batch in the sampler
    p3, n3 = ncn.ControlNetApplyAdvanced().apply_controlnet(p2, n2, controlnet, hint, 0.5, 0.2, 0.8)
    assert p3[0][1]["control"].previous is p2[0][1]["control"]
    assert ncn.ControlNetApplyAdvanced().apply_controlnet(pos, neg, controlnet, hint, 0.0, 0.0, 1.0) == (pos, neg)
    (base,) = ns.KSampler().sample(sd_model, 1, 3, 5.0, "euler", "normal", pos, neg, empty_latent)
    (guided,) = ns.KSampler().sample(sd_model, 1, 3, 5.0, "euler", "normal", p3, n3, empty_latent)
    assert (guided["samples"] - base["samples"]).abs().mean() > 1e-3
    (old,) = ncn.ControlNetApply().apply_controlnet(pos, controlnet, hint, 1.0)
    assert old[0][1]["control_apply_to_uncond"] is True
    (guided_old,) = ns.KSampler().sample(sd_model, 1, 3, 5.0, "euler", "normal", old, neg, empty_latent)
    assert torch.isfinite(guided_old["samples"]).all()
    with pytest.raises(TypeError, match="CONTROL_NET"):
        ncn.ControlNetApply().apply_controlnet(pos, "cn", hint, 1.0)


# -- VAE nodes -------------------------------------------------------------------------------------------
def test_vae_encode_decode_shapes(vae):
    image = torch.rand(2, 34, 30, 3)
    (latent,) = nv.VAEEncode().encode(vae, image)
    assert latent["samples"].shape == (2, 4, 17, 15)
    (decoded,) = nv.VAEDecode().decode(vae, latent)
    assert decoded.shape == (2, 34, 30, 3) and 0 <= decoded.min() and decoded.max() <= 1
    rgba = torch.rand(1, 32, 32, 4)
    assert nv.VAEEncode().encode(vae, rgba)[0]["samples"].shape == (1, 4, 16, 16)


def test_vae_tiled_matches_untiled(vae):
    g = torch.Generator().manual_seed(0)
    latent = {"samples": torch.randn(1, 4, 40, 40, generator=g)}
    (full,) = nv.VAEDecode().decode(vae, latent)
    (tiles,) = nv.VAEDecodeTiled().decode(vae, latent, tile_size=64, overlap=32)
    assert tiles.shape == full.shape == (1, 80, 80, 3)
    assert (tiles - full).abs().mean() < 0.02
    image = torch.rand(1, 80, 80, 3, generator=g)
    (enc_full,) = nv.VAEEncode().encode(vae, image)
    (enc_tiles,) = nv.VAEEncodeTiled().encode(vae, image, tile_size=64, overlap=32)
    assert enc_tiles["samples"].shape == enc_full["samples"].shape
    assert (enc_tiles["samples"] - enc_full["samples"]).abs().mean() < 0.05 * enc_full["samples"].abs().mean() + 0.02


def test_vae_encode_for_inpaint_and_inpaint_model_conditioning(vae, conds):
    image = torch.rand(1, 32, 32, 3)
    mask = torch.zeros(1, 32, 32)
    mask[:, 8:16, 8:16] = 1
    (latent,) = nv.VAEEncodeForInpaint().encode(vae, image, mask, grow_mask_by=4)
    assert latent["samples"].shape == (1, 4, 16, 16)
    grown = latent["noise_mask"]
    assert grown.shape == (1, 1, 32, 32) and grown.sum() > mask.sum()
    pos, neg, lat = nc.InpaintModelConditioning().encode(*conds, image, vae, mask, True)
    assert lat["samples"].shape == (1, 4, 16, 16) and lat["noise_mask"].shape == (1, 1, 32, 32)
    assert pos[0][1]["concat_latent_image"].shape == (1, 4, 16, 16)
    assert neg[0][1]["concat_mask"] is pos[0][1]["concat_mask"]
    with pytest.raises(TypeError, match="VAEEncode: vae must be a VAE"):
        nv.VAEEncode().encode("vae", image)
    with pytest.raises(TypeError, match="IMAGE"):
        nv.VAEEncode().encode(vae, torch.rand(32, 32))


def test_vae_decode_falls_back_when_out_of_memory(vae, monkeypatch):
    latent = {"samples": torch.randn(2, 4, 24, 24, generator=torch.Generator().manual_seed(2))}
    (full,) = nv.VAEDecode().decode(vae, latent)
    module = vae.vae.module
    original = module.decode
    seen = []

    def tight_memory(z, *args, **kwargs):
        seen.append(tuple(z.shape))
        if z.shape[0] > 1 or z.shape[-1] > 16:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(z, *args, **kwargs)

    monkeypatch.setattr(module, "decode", tight_memory)
    (fallback,) = nv.VAEDecode().decode(vae, latent)
    assert seen[0][0] == 2 and (1, 4, 24, 24) in seen and any(s[-1] <= 16 for s in seen)
    assert fallback.shape == full.shape
    assert (fallback - full).abs().mean() < 0.08      # small tiles: GroupNorm statistics differ per tile


def test_previews_never_break_sampling():
    from nodes.diffusion import previews

    events = []
    token = context.set_current(_ctx(lambda node, value, total, preview: events.append(preview)))
    try:
        callback = previews.progress_callback("sd1")
        odd = torch.zeros(1, 16, 8, 8)                # a 16-channel latent has no SD factors
        for i in range(3):
            callback(i, odd, odd, 3)
    finally:
        context.reset_current(token)
    assert events == [None, None, None]

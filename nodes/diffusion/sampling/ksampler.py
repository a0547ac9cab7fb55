"""One sampling run, end to end: schedule slicing (denoise, start/end steps), initial noise,
conditioning, the denoiser, the sampler loop and the step callback.

LATENT values hold the VAE's raw latents; the run scales them into the model's latent space on
the way in and back on the way out, as ComfyUI does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from nodes.diffusion.sampling import fast
from nodes.diffusion.sampling.base import SamplerRun
from nodes.diffusion.sampling.conditioning import ConditionContext, prepare_entries
from nodes.diffusion.sampling.controlnet import ControlRunner
from nodes.diffusion.sampling.guider import CFGDenoiser
from nodes.diffusion.sampling.noise import prepare_noise
from nodes.diffusion.sampling.samplers import Sampler, get_sampler
from nodes.diffusion.sampling.schedule import NoiseSchedule, latent_downscale, latent_scale
from nodes.diffusion.sampling.schedulers import calculate_sigmas
from nodes.diffusion.types import ModelRef
from nodes.tensor_ops import mask_at_size, repeat_to_batch

StepCallback = Callable[[int, torch.Tensor, torch.Tensor, int], None]   # (step, x, denoised, total)


def manager():
    from nodes.diffusion.management import model_manager

    return model_manager()


# -- schedules --------------------------------------------------------------------------------------
def ksampler_sigmas(model: ModelRef, sampler: Sampler, scheduler: str, steps: int, denoise: float = 1.0
                    ) -> torch.Tensor:
    """KSampler's schedule: `steps` steps, truncated to the last `denoise` part of a longer one."""
    schedule = NoiseSchedule.for_model(model)

    def full(n: int) -> torch.Tensor:
        if sampler.discard_penultimate_sigma:
            s = calculate_sigmas(schedule, scheduler, n + 1)
            return torch.cat([s[:-2], s[-1:]])
        return calculate_sigmas(schedule, scheduler, n)

    if denoise is None or denoise > 0.9999:
        return full(steps)
    if denoise <= 0.0:
        return torch.zeros(0)
    return full(int(steps / denoise))[-(steps + 1):]


def slice_sigmas(sigmas: torch.Tensor, start_step: int | None, last_step: int | None,
                 force_full_denoise: bool) -> torch.Tensor | None:
    """KSamplerAdvanced's window; None when start_step leaves nothing to do."""
    if last_step is not None and last_step < len(sigmas) - 1:
        sigmas = sigmas[:last_step + 1].clone()
        if force_full_denoise:
            sigmas[-1] = 0
    if start_step is not None:
        if start_step < len(sigmas) - 1:
            sigmas = sigmas[start_step:]
        else:
            return None
    return sigmas


# -- the run ---------------------------------------------------------------------------------------------
@dataclass
class SampleResult:
    samples: torch.Tensor          # raw latent, float32 CPU
    denoised: torch.Tensor | None  # the last step's denoised estimate, raw latent, float32 CPU


def prepare_mask(mask: torch.Tensor, shape: Sequence[int], device: torch.device) -> torch.Tensor:
    """A noise mask of any size -> [B, C, H, W] at the latent's size (bilinear)."""
    mask = mask_at_size(torch.as_tensor(mask, dtype=torch.float32), *shape[2:])
    mask = mask.expand(-1, shape[1], -1, -1)
    return repeat_to_batch(mask, shape[0]).to(device)


def fix_latent_channels(model: ModelRef, latent: torch.Tensor) -> torch.Tensor:
    """An all-zero latent with the wrong channel count (e.g. an SD EmptyLatentImage) is resized."""
    config = model.unet.config or getattr(model.unet.module, "config", {})
    channels = int(config.get("out_channels", latent.shape[1]))
    if latent.shape[1] != channels and not torch.count_nonzero(latent):
        return torch.zeros((latent.shape[0], channels) + tuple(latent.shape[2:]), dtype=latent.dtype)
    if latent.shape[1] != channels:
        raise ValueError(f"the latent has {latent.shape[1]} channels but this model works on {channels}")
    return latent


def sample(model: ModelRef, noise: torch.Tensor, positive: Any, negative: Any, cfg: float,
           sampler: Sampler, sigmas: torch.Tensor, latent_image: torch.Tensor,
           denoise_mask: torch.Tensor | None = None, seed: int | None = None,
           callback: StepCallback | None = None) -> SampleResult:
    """Sample `latent_image` (raw) along `sigmas` from `noise`; returns raw latents."""
    m = manager()
    unet = m.unet_for(model)
    device = torch.device(m.device)
    dtype = getattr(unet, "dtype", None) or m.dtype
    schedule = NoiseSchedule.for_model(model)
    sigma_list = [float(s) for s in torch.as_tensor(sigmas).flatten().tolist()]
    if len(sigma_list) < 2:
        return SampleResult(latent_image.float().cpu(), None)
    for i in range(len(sigma_list) - 1):
        if sigma_list[i + 1] > sigma_list[i]:
            raise ValueError(f"sigmas must not increase: {sigma_list}")
    scale = latent_scale(model)
    latent = latent_image.to(device, torch.float32) * scale
    noise = noise.to(device, torch.float32)
    mask = prepare_mask(denoise_mask, latent.shape, device) if denoise_mask is not None else None

    ctx = ConditionContext(schedule=schedule, latent_shape=tuple(latent.shape), device=device, dtype=dtype,
                           unet_config=dict(unet.config), family=model.unet.family,
                           downscale=latent_downscale(model), latent_image=latent, denoise_mask=mask,
                           latent_scale=scale)
    entries = prepare_entries(positive, negative, ctx)
    inpaint_noise = noise
    if mask is not None and sampler.random_inpaint_noise:
        g = torch.Generator(device="cpu").manual_seed(((seed if seed is not None else 41) + 1) & (2 ** 64 - 1))
        inpaint_noise = torch.randn(noise.shape, generator=g).to(device)
    controls = ControlRunner(m, schedule, device, dtype) if any(e.control is not None for e in entries) else None
    unet_call = fast.unet_caller(unet, device, allowed=not getattr(m, "low_vram", False))
    denoiser = CFGDenoiser(unet_call, schedule, entries, cfg, device, dtype,
                           controls=controls, latent_image=latent, noise=inpaint_noise, denoise_mask=mask)

    total = len(sigma_list) - 1
    last = {}

    def on_step(i: int, x: torch.Tensor, denoised: torch.Tensor) -> None:
        last["denoised"] = denoised
        if callback is not None:
            callback(i, x, denoised, total)

    run = SamplerRun(model=denoiser, sigmas=sigma_list, schedule=schedule, seed=seed, callback=on_step)
    with torch.inference_mode():
        x = schedule.noise_scaling(sigma_list[0], noise, latent, schedule.is_max_denoise(sigma_list[0]))
        x = sampler.function(run, x, **sampler.options)
        samples = (x / scale).float().cpu()
        denoised = last.get("denoised")
        denoised = (denoised / scale).float().cpu() if denoised is not None else None
    return SampleResult(samples, denoised)


def ksample(model: ModelRef, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str,
            positive: Any, negative: Any, latent: dict, denoise: float = 1.0, disable_noise: bool = False,
            start_step: int | None = None, last_step: int | None = None, force_full_denoise: bool = False,
            callback: StepCallback | None = None) -> dict:
    """KSampler / KSamplerAdvanced: LATENT in, LATENT out."""
    if not isinstance(latent, dict) or "samples" not in latent:
        raise TypeError("latent_image must be a LATENT dict with 'samples'")
    sampler = get_sampler(sampler_name)
    latent_image = fix_latent_channels(model, latent["samples"])
    if disable_noise:
        noise = torch.zeros(latent_image.shape, dtype=torch.float32)
    else:
        noise = prepare_noise(latent_image, seed, latent.get("batch_index"))
    sigmas = ksampler_sigmas(model, sampler, scheduler, steps, denoise)
    sigmas = slice_sigmas(sigmas, start_step, last_step, force_full_denoise)
    out = dict(latent)
    if sigmas is None:
        out["samples"] = latent_image
        return out
    result = sample(model, noise, positive, negative, cfg, sampler, sigmas, latent_image,
                    denoise_mask=latent.get("noise_mask"), seed=seed, callback=callback)
    out["samples"] = result.samples
    return out

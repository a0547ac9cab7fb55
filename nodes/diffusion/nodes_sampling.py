"""Sampler nodes with ComfyUI's names, inputs and outputs: KSampler, KSamplerAdvanced, and the
custom-sampling set (SamplerCustom, KSamplerSelect, BasicScheduler, KarrasScheduler, SDTurboScheduler).

SAMPLER values are `nodes.diffusion.sampling.Sampler`; SIGMAS are 1-D float32 CPU tensors.
"""

from __future__ import annotations

import torch

from nodes.diffusion import previews
from nodes.diffusion.sampling import (
    SAMPLER_NAMES,
    SCHEDULER_NAMES,
    NoiseSchedule,
    Sampler,
    calculate_sigmas,
    get_sampler,
    ksample,
    prepare_noise,
    sample,
)
from nodes.diffusion.sampling.ksampler import fix_latent_channels
from nodes.diffusion.sampling.schedulers import karras
from nodes.diffusion.types import ModelRef

SEED = ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                "tooltip": "The random seed used for creating the noise."})
STEPS = ("INT", {"default": 20, "min": 1, "max": 10000, "tooltip": "The number of steps used in the denoising process."})
CFG = ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                 "tooltip": "Classifier-Free Guidance scale: how strongly the prompt is followed."})


def _check_model(model, node: str) -> ModelRef:
    if not isinstance(model, ModelRef):
        raise TypeError(f"{node}: model must be a MODEL (from a checkpoint loader), got {type(model).__name__}")
    return model


def _check_latent(latent, node: str) -> dict:
    if not isinstance(latent, dict) or not torch.is_tensor(latent.get("samples")) or latent["samples"].ndim != 4:
        raise TypeError(f"{node}: latent_image must be a LATENT {{'samples': [B,C,H,W]}}")
    return latent


class KSampler:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The model used for denoising the input latent."}),
            "seed": SEED, "steps": STEPS, "cfg": CFG,
            "sampler_name": (SAMPLER_NAMES, {"tooltip": "The algorithm used when sampling."}),
            "scheduler": (SCHEDULER_NAMES, {"tooltip": "How noise is removed over the steps."}),
            "positive": ("CONDITIONING", {"tooltip": "What to include in the image."}),
            "negative": ("CONDITIONING", {"tooltip": "What to exclude from the image."}),
            "latent_image": ("LATENT", {"tooltip": "The latent image to denoise."}),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                  "tooltip": "How much of the schedule to run; below 1 keeps the input's structure."}),
        }}

    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The denoised latent.",)
    FUNCTION = "sample"
    CATEGORY = "sampling"
    DESCRIPTION = "Denoises a latent image with the model, guided by the positive and negative conditioning."

    def sample(self, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise=1.0):
        model = _check_model(model, "KSampler")
        latent = _check_latent(latent_image, "KSampler")
        callback = previews.progress_callback(model.unet.family)
        return (ksample(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                        denoise=denoise, callback=callback),)


class KSamplerAdvanced:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",),
            "add_noise": (["enable", "disable"],),
            "noise_seed": SEED, "steps": STEPS, "cfg": CFG,
            "sampler_name": (SAMPLER_NAMES,), "scheduler": (SCHEDULER_NAMES,),
            "positive": ("CONDITIONING",), "negative": ("CONDITIONING",), "latent_image": ("LATENT",),
            "start_at_step": ("INT", {"default": 0, "min": 0, "max": 10000}),
            "end_at_step": ("INT", {"default": 10000, "min": 0, "max": 10000}),
            "return_with_leftover_noise": (["disable", "enable"],),
        }}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "sample"
    CATEGORY = "sampling"
    DESCRIPTION = "KSampler over a window of the schedule, optionally without adding noise or leaving noise in."

    def sample(self, model, add_noise, noise_seed, steps, cfg, sampler_name, scheduler, positive, negative,
               latent_image, start_at_step, end_at_step, return_with_leftover_noise, denoise=1.0):
        model = _check_model(model, "KSamplerAdvanced")
        latent = _check_latent(latent_image, "KSamplerAdvanced")
        callback = previews.progress_callback(model.unet.family)
        return (ksample(model, noise_seed, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                        denoise=denoise, disable_noise=add_noise == "disable", start_step=start_at_step,
                        last_step=end_at_step, force_full_denoise=return_with_leftover_noise != "enable",
                        callback=callback),)


class SamplerCustom:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",),
            "add_noise": ("BOOLEAN", {"default": True}),
            "noise_seed": SEED, "cfg": CFG,
            "positive": ("CONDITIONING",), "negative": ("CONDITIONING",),
            "sampler": ("SAMPLER",), "sigmas": ("SIGMAS",), "latent_image": ("LATENT",),
        }}

    RETURN_TYPES = ("LATENT", "LATENT")
    RETURN_NAMES = ("output", "denoised_output")
    FUNCTION = "sample"
    CATEGORY = "sampling/custom_sampling"

    def sample(self, model, add_noise, noise_seed, cfg, positive, negative, sampler, sigmas, latent_image):
        model = _check_model(model, "SamplerCustom")
        latent = dict(_check_latent(latent_image, "SamplerCustom"))
        if not isinstance(sampler, Sampler):
            raise TypeError(f"SamplerCustom: sampler must be a SAMPLER (e.g. from KSamplerSelect), "
                            f"got {type(sampler).__name__}")
        sigmas = torch.as_tensor(sigmas, dtype=torch.float32).flatten()
        samples = fix_latent_channels(model, latent["samples"])
        latent["samples"] = samples
        if add_noise:
            noise = prepare_noise(samples, noise_seed, latent.get("batch_index"))
        else:
            noise = torch.zeros(samples.shape, dtype=torch.float32)
        callback = previews.progress_callback(model.unet.family)
        result = sample(model, noise, positive, negative, cfg, sampler, sigmas, samples,
                        denoise_mask=latent.get("noise_mask"), seed=noise_seed, callback=callback)
        out = dict(latent, samples=result.samples)
        denoised = dict(latent, samples=result.denoised) if result.denoised is not None else out
        return (out, denoised)


class KSamplerSelect:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"sampler_name": (SAMPLER_NAMES,)}}

    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "get_sampler"
    CATEGORY = "sampling/custom_sampling/samplers"

    def get_sampler(self, sampler_name):
        return (get_sampler(sampler_name),)


class BasicScheduler:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",), "scheduler": (SCHEDULER_NAMES,),
            "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "get_sigmas"
    CATEGORY = "sampling/custom_sampling/schedulers"

    def get_sigmas(self, model, scheduler, steps, denoise):
        model = _check_model(model, "BasicScheduler")
        total = steps
        if denoise < 1.0:
            if denoise <= 0.0:
                return (torch.zeros(0),)
            total = int(steps / denoise)
        sigmas = calculate_sigmas(NoiseSchedule.for_model(model), scheduler, total)
        return (sigmas[-(steps + 1):],)


class KarrasScheduler:
    @classmethod
    def INPUT_TYPES(cls):
        sigma = {"min": 0.0, "max": 5000.0, "step": 0.01, "round": False}
        return {"required": {
            "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
            "sigma_max": ("FLOAT", {"default": 14.614642, **sigma}),
            "sigma_min": ("FLOAT", {"default": 0.0291675, **sigma}),
            "rho": ("FLOAT", {"default": 7.0, "min": 0.0, "max": 100.0, "step": 0.01, "round": False}),
        }}

    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "get_sigmas"
    CATEGORY = "sampling/custom_sampling/schedulers"

    def get_sigmas(self, steps, sigma_max, sigma_min, rho):
        if sigma_min <= 0 or sigma_max <= sigma_min or rho <= 0:
            raise ValueError(f"KarrasScheduler: need 0 < sigma_min < sigma_max and rho > 0 "
                             f"(got sigma_min={sigma_min}, sigma_max={sigma_max}, rho={rho})")
        return (karras(steps, sigma_min, sigma_max, rho),)


class SDTurboScheduler:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",),
            "steps": ("INT", {"default": 1, "min": 1, "max": 10}),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0, "max": 1.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "get_sigmas"
    CATEGORY = "sampling/custom_sampling/schedulers"

    def get_sigmas(self, model, steps, denoise):
        schedule = NoiseSchedule.for_model(_check_model(model, "SDTurboScheduler"))
        start = 10 - int(10 * denoise)
        timesteps = [999 - 100 * i for i in range(10)][start:start + steps]
        return (torch.tensor([schedule.sigma(t) for t in timesteps] + [0.0], dtype=torch.float32),)


NODE_CLASS_MAPPINGS = {
    "KSampler": KSampler,
    "KSamplerAdvanced": KSamplerAdvanced,
    "SamplerCustom": SamplerCustom,
    "KSamplerSelect": KSamplerSelect,
    "BasicScheduler": BasicScheduler,
    "KarrasScheduler": KarrasScheduler,
    "SDTurboScheduler": SDTurboScheduler,
}
NODE_DISPLAY_NAME_MAPPINGS = {"KSamplerAdvanced": "KSampler (Advanced)"}

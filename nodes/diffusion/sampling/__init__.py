"""Loom's sampling loop: k-diffusion-style samplers over sigma schedules around a diffusers UNet.

Public API:
- `SAMPLER_NAMES`, `SCHEDULER_NAMES`, `get_sampler(name)`, `calculate_sigmas(schedule, name, steps)`
- `prepare_noise(latent, seed, batch_index)`: ComfyUI's seed -> noise
- `ksample(...)`: KSampler/KSamplerAdvanced on LATENT dicts; `sample(...)`: any sampler + sigmas
- `settings`: `fast`, preview method/interval
"""

from nodes.diffusion.sampling import settings
from nodes.diffusion.sampling.ksampler import SampleResult, ksample, ksampler_sigmas, sample, slice_sigmas
from nodes.diffusion.sampling.noise import prepare_noise
from nodes.diffusion.sampling.samplers import SAMPLER_NAMES, Sampler, get_sampler
from nodes.diffusion.sampling.schedule import NoiseSchedule
from nodes.diffusion.sampling.schedulers import SCHEDULER_NAMES, calculate_sigmas

__all__ = ["SAMPLER_NAMES", "SCHEDULER_NAMES", "NoiseSchedule", "SampleResult", "Sampler", "calculate_sigmas",
           "get_sampler", "ksample", "ksampler_sigmas", "prepare_noise", "sample", "settings", "slice_sigmas"]

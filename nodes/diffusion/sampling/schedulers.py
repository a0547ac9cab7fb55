"""Sigma schedules by ComfyUI's scheduler names.

Each function returns a float32 CPU tensor of descending sigmas ending at 0. They follow
ComfyUI's definitions so the same name gives the same schedule, including two of its quirks:
`ddim_uniform` can return more than `steps` steps when 1000 is not a multiple of `steps` (as in
the original DDIM code), and `beta` merges steps that land on the same training timestep.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from nodes.diffusion.sampling.schedule import NoiseSchedule


def _with_zero(values) -> torch.Tensor:
    return torch.tensor([float(v) for v in values] + [0.0], dtype=torch.float32)


def karras(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022): evenly spaced in sigma^(1/rho)."""
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    return _with_zero(((hi + ramp * (lo - hi)) ** rho).tolist())


def exponential(steps: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Evenly spaced in log sigma."""
    return _with_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), steps, dtype=torch.float64)
                      .exp().tolist())


def kl_optimal(steps: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Evenly spaced in arctan(sigma) (the KL-optimal schedule, AYS paper appendix)."""
    if steps == 1:
        return _with_zero([sigma_max])
    w = torch.arange(steps, dtype=torch.float64) / (steps - 1)
    return _with_zero(torch.tan(w * math.atan(sigma_min) + (1 - w) * math.atan(sigma_max)).tolist())


def simple(schedule: NoiseSchedule, steps: int) -> torch.Tensor:
    """Training sigmas taken at an even stride from the top."""
    sigmas = schedule.sigmas.tolist()
    stride = len(sigmas) / steps
    return _with_zero([sigmas[-(1 + int(i * stride))] for i in range(steps)])


def normal(schedule: NoiseSchedule, steps: int, sgm: bool = False) -> torch.Tensor:
    """Evenly spaced timesteps between the ends (sgm_uniform leaves out the last one)."""
    start = schedule.timestep(schedule.sigma_max)
    end = schedule.timestep(schedule.sigma_min)
    if sgm:
        ts = np.linspace(start, end, steps + 1)[:-1]
    else:
        ts = np.linspace(start, end, steps)
    return _with_zero([schedule.sigma(t) for t in ts])


def ddim_uniform(schedule: NoiseSchedule, steps: int) -> torch.Tensor:
    """DDIM's uniform discretisation: every (T // steps)-th timestep from timestep 1."""
    sigmas = schedule.sigmas.tolist()
    stride = max(len(sigmas) // steps, 1)
    picked = sigmas[1::stride]
    return _with_zero(picked[::-1])


def beta(schedule: NoiseSchedule, steps: int, alpha: float = 0.6, beta_: float = 0.6) -> torch.Tensor:
    """Timesteps at the quantiles of a Beta(0.6, 0.6) distribution (arXiv 2407.12173)."""
    import scipy.stats

    sigmas = schedule.sigmas.tolist()
    last = len(sigmas) - 1
    quantiles = 1 - np.linspace(0, 1, steps, endpoint=False)
    ts = np.rint(scipy.stats.beta.ppf(quantiles, alpha, beta_) * last)
    picked, previous = [], None
    for t in ts:
        if t != previous:
            picked.append(sigmas[int(t)])
        previous = t
    return _with_zero(picked)


def linear_quadratic(schedule: NoiseSchedule, steps: int, threshold_noise: float = 0.025,
                     linear_steps: int | None = None) -> torch.Tensor:
    """Mochi's schedule: linear for the first half, then quadratic, scaled to sigma_max."""
    if steps == 1:
        fractions = [1.0, 0.0]
    else:
        n_lin = steps // 2 if linear_steps is None else linear_steps
        n_quad = steps - n_lin
        gap = n_lin - threshold_noise * steps
        qa = gap / (n_lin * n_quad ** 2)
        qb = threshold_noise / n_lin - 2 * gap / (n_quad ** 2)
        qc = qa * n_lin ** 2
        ramp = [i * threshold_noise / n_lin for i in range(n_lin)]
        ramp += [qa * i * i + qb * i + qc for i in range(n_lin, steps)]
        fractions = [1.0 - v for v in ramp + [1.0]]
    return torch.tensor(fractions, dtype=torch.float32) * schedule.sigma_max


SCHEDULER_NAMES = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
                   "linear_quadratic", "kl_optimal"]


def calculate_sigmas(schedule: NoiseSchedule, scheduler: str, steps: int) -> torch.Tensor:
    """The sigma schedule `scheduler` gives for `steps` steps of this model."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    lo, hi = schedule.sigma_min, schedule.sigma_max
    if scheduler == "simple":
        return simple(schedule, steps)
    if scheduler == "sgm_uniform":
        return normal(schedule, steps, sgm=True)
    if scheduler == "normal":
        return normal(schedule, steps)
    if scheduler == "karras":
        return karras(steps, lo, hi)
    if scheduler == "exponential":
        return exponential(steps, lo, hi)
    if scheduler == "ddim_uniform":
        return ddim_uniform(schedule, steps)
    if scheduler == "beta":
        return beta(schedule, steps)
    if scheduler == "linear_quadratic":
        return linear_quadratic(schedule, steps)
    if scheduler == "kl_optimal":
        return kl_optimal(steps, lo, hi)
    raise ValueError(f"unknown scheduler {scheduler!r}; expected one of {', '.join(SCHEDULER_NAMES)}")

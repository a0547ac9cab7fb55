"""What a sampler function is given, and small helpers shared by the sampler modules.

A sampler is a function `fn(run, x) -> x` that walks `run.sigmas` (Python floats, descending,
usually ending at 0) calling `run.model(x, sigma) -> denoised` and `run.step(i, x, denoised)` once
per step. Sigmas stay Python floats so the control flow never reads a tensor back from the GPU:
per-step coefficients are host scalars passed to the kernels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from nodes.diffusion.sampling.noise import BrownianTreeNoiseSampler, NoiseSampler, default_noise_sampler
from nodes.diffusion.sampling.schedule import NoiseSchedule


class Denoiser(Protocol):
    """x (noisy, sigma space) and sigma -> the CFG-combined denoised estimate."""

    want_uncond: bool                       # set by CFG++ samplers: always run the uncond pass
    uncond_denoised: torch.Tensor | None    # the last call's uncond estimate (CFG++ samplers)

    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor: ...


@dataclass
class SamplerRun:
    model: Denoiser
    sigmas: list[float]
    schedule: NoiseSchedule
    seed: int | None = None
    callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return len(self.sigmas) - 1

    def step(self, i: int, x: torch.Tensor, denoised: torch.Tensor) -> None:
        if self.callback is not None:
            self.callback(i, x, denoised)

    def noise_sampler(self, x: torch.Tensor) -> NoiseSampler:
        return default_noise_sampler(x, self.seed)

    def brownian_noise_sampler(self, x: torch.Tensor, on_cpu: bool = True) -> NoiseSampler:
        positive = [s for s in self.sigmas if s > 0]
        return BrownianTreeNoiseSampler(x, min(positive), max(positive), self.seed, on_cpu=on_cpu)


SamplerFunction = Callable[[SamplerRun, torch.Tensor], torch.Tensor]


def to_d(x: torch.Tensor, sigma: float, denoised: torch.Tensor) -> torch.Tensor:
    """The probability-flow ODE derivative dx/dsigma."""
    return (x - denoised) * (1.0 / sigma)


def ancestral_step(sigma: float, sigma_next: float, eta: float = 1.0) -> tuple[float, float]:
    """(sigma_down, sigma_up): where to step deterministically, and how much noise to add back."""
    if not eta or sigma_next == 0:
        return sigma_next, 0.0
    up = min(sigma_next, eta * math.sqrt(sigma_next ** 2 * (sigma ** 2 - sigma_next ** 2) / sigma ** 2))
    down = math.sqrt(max(sigma_next ** 2 - up ** 2, 0.0))
    return down, up


def neg_log(sigma: float) -> float:
    """Half log-SNR of a discrete (variance-exploding in sigma space) model: lambda = -log(sigma)."""
    return -math.log(sigma)

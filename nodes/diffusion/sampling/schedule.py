"""A model's discrete noise schedule, seen in k-diffusion terms (sigmas).

A discrete DDPM model trained on T timesteps with cumulative alphas `a_t` is sampled in
"sigma space": x = x0 + sigma * eps with sigma_t = sqrt((1 - a_t) / a_t). The UNet is fed
x / sqrt(sigma^2 + 1) and the index of the training timestep whose sigma is nearest (as ComfyUI
does), and its output (epsilon or v) is turned back into a denoised estimate.

The schedule comes from the family's diffusers scheduler config (`ModelRef.scheduler_config`).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import torch

from nodes.diffusion.types import SDXL, SDXL_REFINER, ModelRef

# Used when a model carries no scheduler config: Stable Diffusion's training schedule.
DEFAULT_SCHEDULER_CONFIG = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
}

# Latent scaling per family: LATENT holds the VAE's raw latents; the UNet sees them times this.
LATENT_SCALE = {SDXL: 0.13025, SDXL_REFINER: 0.13025}
DEFAULT_LATENT_SCALE = 0.18215


def betas_from_config(config: dict) -> torch.Tensor:
    """The training betas (float64) a diffusers scheduler config describes."""
    if config.get("trained_betas") is not None:
        return torch.tensor(config["trained_betas"], dtype=torch.float64)
    n = int(config.get("num_train_timesteps", 1000))
    start = float(config.get("beta_start", 0.0001))
    end = float(config.get("beta_end", 0.02))
    kind = config.get("beta_schedule", "linear")
    if kind == "scaled_linear":   # LDM's "linear": linear in sqrt(beta)
        return torch.linspace(start ** 0.5, end ** 0.5, n, dtype=torch.float64) ** 2
    if kind == "linear":
        return torch.linspace(start, end, n, dtype=torch.float64)
    if kind == "squaredcos_cap_v2":
        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        return torch.tensor([min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), 0.999) for i in range(n)],
                            dtype=torch.float64)
    raise ValueError(f"unsupported beta_schedule {kind!r} in the model's scheduler config "
                     "(expected scaled_linear, linear or squaredcos_cap_v2)")


@dataclass(frozen=True)
class NoiseSchedule:
    """Sigmas of a discrete model, ascending (index = training timestep), and its parameterisation."""

    sigmas: torch.Tensor          # float32 [T], ascending
    prediction_type: str = "epsilon"

    @classmethod
    def from_config(cls, config: dict | None, prediction_type: str | None = None) -> NoiseSchedule:
        config = dict(DEFAULT_SCHEDULER_CONFIG, **(config or {}))
        betas = betas_from_config(config)
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        if config.get("rescale_betas_zero_snr"):
            raise ValueError("zero-terminal-SNR schedules are not supported by Loom's sampler yet")
        sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        pred = prediction_type or config.get("prediction_type") or "epsilon"
        if pred not in ("epsilon", "v_prediction"):
            raise ValueError(f"unsupported prediction_type {pred!r} (expected epsilon or v_prediction)")
        return cls(sigmas.float(), pred)

    @classmethod
    def for_model(cls, model: ModelRef) -> NoiseSchedule:
        return cls.from_config(model.scheduler_config, model.prediction_type)

    def __post_init__(self) -> None:
        # Python copies for the per-step lookups: no tensor ops (and no device syncs) in the loop.
        object.__setattr__(self, "_log_sigmas", [math.log(s) for s in self.sigmas.tolist()])

    @property
    def num_timesteps(self) -> int:
        return int(self.sigmas.shape[0])

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def timestep(self, sigma: float) -> int:
        """The training timestep whose sigma is nearest in log space."""
        logs = self._log_sigmas
        if sigma <= 0:
            return 0
        ls = math.log(sigma)
        i = bisect.bisect_left(logs, ls)
        if i <= 0:
            return 0
        if i >= len(logs):
            return len(logs) - 1
        return i if abs(logs[i] - ls) < abs(ls - logs[i - 1]) else i - 1

    def sigma(self, timestep: float) -> float:
        """Sigma at a (fractional) timestep, interpolated in log space."""
        logs = self._log_sigmas
        t = min(max(float(timestep), 0.0), len(logs) - 1)
        lo, hi = math.floor(t), math.ceil(t)
        w = t - lo
        return math.exp((1 - w) * logs[lo] + w * logs[hi])

    def percent_to_sigma(self, percent: float) -> float:
        """Start/end percent of the schedule -> sigma (0% = pure noise, 100% = clean)."""
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        return self.sigma((1.0 - percent) * (self.num_timesteps - 1))

    # -- the denoiser parameterisation (sigma_data = 1) ---------------------------------------------
    @staticmethod
    def input_scale(sigma: float) -> float:
        return 1.0 / math.sqrt(sigma * sigma + 1.0)

    def denoised(self, x: torch.Tensor, model_output: torch.Tensor, sigma: float) -> torch.Tensor:
        if self.prediction_type == "v_prediction":
            s2 = sigma * sigma + 1.0
            return x * (1.0 / s2) - model_output * (sigma / math.sqrt(s2))
        return x - model_output * sigma

    def noise_scaling(self, sigma: float, noise: torch.Tensor, latent: torch.Tensor,
                      max_denoise: bool = False) -> torch.Tensor:
        """The starting point of sampling: latent + noise at sigma (variance-preserving at the top)."""
        scale = math.sqrt(1.0 + sigma * sigma) if max_denoise else sigma
        return noise * scale + latent

    def is_max_denoise(self, first_sigma: float) -> bool:
        return math.isclose(first_sigma, self.sigma_max, rel_tol=1e-5) or first_sigma > self.sigma_max


def latent_scale(model: ModelRef) -> float:
    """How the model's latent space relates to the VAE's raw latents."""
    return float(model.options.get("latent_scaling_factor", LATENT_SCALE.get(model.unet.family,
                                                                            DEFAULT_LATENT_SCALE)))


def latent_downscale(model: ModelRef) -> int:
    """Pixels per latent cell for this model (8 for every real SD family; tiny test models say 2)."""
    return int(model.options.get("latent_downscale", 8))

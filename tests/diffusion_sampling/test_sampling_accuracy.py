"""Sampler maths against an exact denoiser.

For data x0 ~ N(0, s^2) the ideal denoiser is D(x, sigma) = x s^2 / (s^2 + sigma^2), and the
probability-flow ODE carries x(sigma_max) to x(0) = x(sigma_max) * s / sqrt(s^2 + sigma_max^2).
Deterministic samplers must land there (closer with more steps); stochastic ones must produce
samples with variance s^2 (first-order ones need many steps for that). LCM is left out of the
variance check: it is only right for consistency-distilled models.
"""

from __future__ import annotations

import math

import pytest
import torch

from nodes.diffusion.sampling import SAMPLER_NAMES, NoiseSchedule, calculate_sigmas, get_sampler
from nodes.diffusion.sampling.base import SamplerRun

SCHEDULE = NoiseSchedule.from_config({})
S_DATA = 0.5
STOCHASTIC = {"lcm", "seeds_2", "exp_heun_2_x0_sde", "er_sde", "dpmpp_2s_ancestral_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde",
              "dpmpp_sde_gpu", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu",
              "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "res_multistep_ancestral",
              "res_multistep_ancestral_cfg_pp"}


class GaussianDenoiser:
    want_uncond = False
    uncond_denoised = None

    def __init__(self):
        self.calls = 0

    def __call__(self, x, sigma):
        self.calls += 1
        out = x * (S_DATA ** 2 / (S_DATA ** 2 + sigma ** 2))
        self.uncond_denoised = out
        return out


def _sample(name: str, steps: int, x: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, int]:
    sampler = get_sampler(name)
    sigmas = calculate_sigmas(SCHEDULE, "karras", steps + (1 if sampler.discard_penultimate_sigma else 0))
    if sampler.discard_penultimate_sigma:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    model = GaussianDenoiser()
    run = SamplerRun(model=model, sigmas=sigmas.tolist(), schedule=SCHEDULE, seed=seed)
    return sampler.function(run, x.clone(), **sampler.options), model.calls


@pytest.mark.parametrize("name", [n for n in SAMPLER_NAMES if n not in STOCHASTIC])
def test_deterministic_samplers_solve_the_ode(name):
    sigma_max = SCHEDULE.sigma_max
    x_t = torch.linspace(-2, 2, 64, dtype=torch.float64).reshape(1, 1, 8, 8) * sigma_max
    exact = x_t * (S_DATA / math.sqrt(S_DATA ** 2 + sigma_max ** 2))
    coarse, _ = _sample(name, 8, x_t)
    fine, calls = _sample(name, 40, x_t)
    err_coarse = (coarse - exact).abs().max().item()
    err_fine = (fine - exact).abs().max().item()
    scale = exact.abs().max().item()
    assert err_fine < 0.05 * scale, (name, err_fine, scale)
    assert err_fine <= err_coarse + 1e-9, (name, err_coarse, err_fine)
    assert calls >= 40 or name == "dpm_adaptive"     # adaptive: the error target sets the step count


@pytest.mark.parametrize("name", sorted(STOCHASTIC - {"lcm"}))
def test_stochastic_samplers_give_the_data_variance(name):
    sigma_max = SCHEDULE.sigma_max
    g = torch.Generator().manual_seed(1)
    x_t = torch.randn(1, 4, 32, 32, generator=g, dtype=torch.float64) * math.sqrt(sigma_max ** 2 + S_DATA ** 2)
    out, _ = _sample(name, 100, x_t, seed=3)
    assert torch.isfinite(out).all()
    std = out.std().item()
    assert abs(std - S_DATA) < 0.05 * S_DATA, (name, std)


def test_second_order_samplers_beat_euler():
    sigma_max = SCHEDULE.sigma_max
    x_t = torch.linspace(-2, 2, 64, dtype=torch.float64).reshape(1, 1, 8, 8) * sigma_max
    exact = x_t * (S_DATA / math.sqrt(S_DATA ** 2 + sigma_max ** 2))
    euler_err = (_sample("euler", 20, x_t)[0] - exact).abs().max()
    for name in ("heun", "dpmpp_2m", "lms", "deis", "uni_pc", "uni_pc_bh2", "ipndm", "ipndm_v", "res_multistep"):
        assert (_sample(name, 20, x_t)[0] - exact).abs().max() < euler_err / 3, name

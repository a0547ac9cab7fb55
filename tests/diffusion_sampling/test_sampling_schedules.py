"""Sigma schedules, noise and the sampler registry."""

from __future__ import annotations

import math

import pytest
import torch

from nodes.diffusion.sampling import (
    SAMPLER_NAMES,
    SCHEDULER_NAMES,
    NoiseSchedule,
    calculate_sigmas,
    get_sampler,
    ksampler_sigmas,
    prepare_noise,
    slice_sigmas,
)

SCHEDULE = NoiseSchedule.from_config({"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"})


def test_noise_schedule_matches_sd_training_range():
    assert SCHEDULE.num_timesteps == 1000
    assert SCHEDULE.sigma_min == pytest.approx(0.0292, abs=1e-3)
    assert SCHEDULE.sigma_max == pytest.approx(14.6146, abs=1e-3)
    assert SCHEDULE.timestep(SCHEDULE.sigma_max) == 999
    assert SCHEDULE.timestep(SCHEDULE.sigma(500)) == 500
    assert SCHEDULE.percent_to_sigma(0.0) > SCHEDULE.sigma_max
    assert SCHEDULE.percent_to_sigma(1.0) == 0.0


@pytest.mark.parametrize("scheduler", SCHEDULER_NAMES)
@pytest.mark.parametrize("steps", [1, 4, 20, 30])
def test_scheduler_is_descending_and_ends_at_zero(scheduler, steps):
    sigmas = calculate_sigmas(SCHEDULE, scheduler, steps)
    assert sigmas.dtype == torch.float32 and sigmas.ndim == 1
    values = sigmas.tolist()
    assert values[-1] == 0.0
    assert all(a > b for a, b in zip(values, values[1:])), values
    assert values[0] <= SCHEDULE.sigma_max * 1.0001
    if scheduler == "ddim_uniform":      # ComfyUI's rule: every (1000 // steps)-th timestep from 1
        assert len(values) == len(range(1, 1000, 1000 // steps)) + 1
    elif scheduler == "beta":            # steps landing on the same timestep merge
        assert 2 <= len(values) <= steps + 1
    else:
        assert len(values) == steps + 1


def test_karras_endpoints():
    sigmas = calculate_sigmas(SCHEDULE, "karras", 10)
    assert sigmas[0].item() == pytest.approx(SCHEDULE.sigma_max, rel=1e-5)
    assert sigmas[-2].item() == pytest.approx(SCHEDULE.sigma_min, rel=1e-5)


def test_unknown_scheduler_names_the_choices():
    with pytest.raises(ValueError, match="karras"):
        calculate_sigmas(SCHEDULE, "nope", 10)
    with pytest.raises(ValueError, match="at least 1"):
        calculate_sigmas(SCHEDULE, "karras", 0)


def test_sampler_names_follow_comfyui_and_unknown_is_an_error():
    for name in ("euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_2s_ancestral",
                 "dpmpp_sde", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "ddpm", "lcm", "ddim", "uni_pc",
                 "uni_pc_bh2", "deis", "ipndm"):
        assert name in SAMPLER_NAMES
    assert SAMPLER_NAMES.index("euler") < SAMPLER_NAMES.index("heun") < SAMPLER_NAMES.index("ddim")
    with pytest.raises(ValueError, match="euler"):
        get_sampler("dpm_adaptive_turbo")


def test_noise_is_comfyui_seed_noise():
    latent = torch.zeros(2, 4, 8, 8)
    for seed in (0, 7, 123456789, 2 ** 63 + 11):
        torch.manual_seed(seed)
        expected = torch.randn(latent.shape)
        assert torch.equal(prepare_noise(latent, seed), expected)
    assert not torch.equal(prepare_noise(latent, 1), prepare_noise(latent, 2))


def test_noise_batch_index_gives_each_image_its_batch_noise():
    full = prepare_noise(torch.zeros(4, 4, 8, 8), 99, batch_index=[0, 1, 2, 3])
    assert torch.equal(full, prepare_noise(torch.zeros(4, 4, 8, 8), 99))   # drawn in order = one draw
    third = prepare_noise(torch.zeros(1, 4, 8, 8), 99, batch_index=[2])
    assert torch.equal(third[0], full[2])
    with pytest.raises(ValueError, match="negative"):
        prepare_noise(torch.zeros(1, 4, 8, 8), 1, batch_index=[-1])


def test_ksampler_denoise_truncates_a_longer_schedule(sd_model):
    euler = get_sampler("euler")
    full = ksampler_sigmas(sd_model, euler, "normal", 10)
    half = ksampler_sigmas(sd_model, euler, "normal", 10, denoise=0.5)
    assert len(half) == 11 and half[-1] == 0
    assert half[0] < full[0]
    assert torch.allclose(half, ksampler_sigmas(sd_model, euler, "normal", 20)[-11:])
    assert len(ksampler_sigmas(sd_model, euler, "normal", 10, denoise=0.0)) == 0


def test_discard_penultimate_sigma_samplers_keep_the_step_count(sd_model):
    sig = ksampler_sigmas(sd_model, get_sampler("uni_pc"), "karras", 8)
    assert len(sig) == 9 and sig[-1] == 0
    assert not math.isclose(sig[-2].item(), ksampler_sigmas(sd_model, get_sampler("euler"), "karras", 8)[-2].item())


def test_slice_sigmas_start_end_and_leftover_noise():
    sig = torch.linspace(10, 0, 11)
    assert slice_sigmas(sig, 3, None, False).tolist() == sig[3:].tolist()
    window = slice_sigmas(sig, None, 5, force_full_denoise=False)
    assert window[-1].item() == pytest.approx(5.0)
    assert slice_sigmas(sig, None, 5, force_full_denoise=True)[-1].item() == 0
    assert slice_sigmas(sig, 10, None, False) is None


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_denoised_recovers_the_clean_latent(prediction):
    schedule = NoiseSchedule.from_config({}, prediction)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    for sigma in (0.05, 1.0, 14.0):
        x = x0 + sigma * eps                          # sigma space
        alpha, sigma_vp = 1 / math.sqrt(1 + sigma ** 2), sigma / math.sqrt(1 + sigma ** 2)
        output = eps if prediction == "epsilon" else alpha * eps - sigma_vp * x0
        assert torch.allclose(schedule.denoised(x, output, sigma), x0, atol=1e-4)
    with pytest.raises(ValueError, match="prediction_type"):
        NoiseSchedule.from_config({}, "sample")

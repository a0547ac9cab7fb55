"""Single-step and linear-multistep samplers on sigmas (k-diffusion's family, ComfyUI's names).

Each follows the published method (Karras et al. 2022 for euler/heun/dpm_2, DDPM, LCM,
iPNDM/DEIS from diff-sampler, CFG++ and gradient estimation) written over Python-float sigmas.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from nodes.diffusion.sampling.base import SamplerRun, ancestral_step, to_d


def euler(run: SamplerRun, x: torch.Tensor) -> torch.Tensor:
    s = run.sigmas
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        run.step(i, x, denoised)
        x = x + to_d(x, s[i], denoised) * (s[i + 1] - s[i])
    return x


def euler_ancestral(run: SamplerRun, x: torch.Tensor, eta: float = 1.0, s_noise: float = 1.0) -> torch.Tensor:
    s = run.sigmas
    noise = run.noise_sampler(x)
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        run.step(i, x, denoised)
        down, up = ancestral_step(s[i], s[i + 1], eta)
        if down == 0:
            x = denoised
            continue
        x = x + to_d(x, s[i], denoised) * (down - s[i])
        if up > 0:
            x = x + noise(s[i], s[i + 1]) * (s_noise * up)
    return x


def heun(run: SamplerRun, x: torch.Tensor) -> torch.Tensor:
    s = run.sigmas
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        run.step(i, x, denoised)
        d = to_d(x, s[i], denoised)
        dt = s[i + 1] - s[i]
        if s[i + 1] == 0:
            x = x + d * dt
            continue
        x_2 = x + d * dt
        d_2 = to_d(x_2, s[i + 1], run.model(x_2, s[i + 1]))
        x = x + (d + d_2) * (0.5 * dt)
    return x


def heunpp2(run: SamplerRun, x: torch.Tensor) -> torch.Tensor:
    """Heun++: up to three evaluations per step, weighted by the remaining noise levels."""
    s = run.sigmas
    last = s[-1]
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        run.step(i, x, denoised)
        d = to_d(x, s[i], denoised)
        dt = s[i + 1] - s[i]
        if s[i + 1] == last:
            x = x + d * dt
            continue
        x_2 = x + d * dt
        d_2 = to_d(x_2, s[i + 1], run.model(x_2, s[i + 1]))
        if s[i + 2] == last:
            w2 = s[i + 1] / (2 * s[0])
            x = x + (d * (1 - w2) + d_2 * w2) * dt
            continue
        x_3 = x_2 + d_2 * (s[i + 2] - s[i + 1])
        d_3 = to_d(x_3, s[i + 2], run.model(x_3, s[i + 2]))
        w2, w3 = s[i + 1] / (3 * s[0]), s[i + 2] / (3 * s[0])
        x = x + (d * (1 - w2 - w3) + d_2 * w2 + d_3 * w3) * dt
    return x


def _log_midpoint(a: float, b: float) -> float:
    return math.exp(0.5 * (math.log(a) + math.log(b)))


def dpm_2(run: SamplerRun, x: torch.Tensor) -> torch.Tensor:
    s = run.sigmas
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        run.step(i, x, denoised)
        d = to_d(x, s[i], denoised)
        if s[i + 1] == 0:
            x = x + d * (s[i + 1] - s[i])
            continue
        mid = _log_midpoint(s[i], s[i + 1])
        x_2 = x + d * (mid - s[i])
        d_2 = to_d(x_2, mid, run.model(x_2, mid))
        x = x + d_2 * (s[i + 1] - s[i])
    return x


def dpm_2_ancestral(run: SamplerRun, x: torch.Tensor, eta: float = 1.0, s_noise: float = 1.0) -> torch.Tensor:
    s = run.sigmas
    noise = run.noise_sampler(x)
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        run.step(i, x, denoised)
        down, up = ancestral_step(s[i], s[i + 1], eta)
        d = to_d(x, s[i], denoised)
        if down == 0:
            x = x + d * (down - s[i])
            continue
        mid = _log_midpoint(s[i], down)
        x_2 = x + d * (mid - s[i])
        d_2 = to_d(x_2, mid, run.model(x_2, mid))
        x = x + d_2 * (down - s[i])
        x = x + noise(s[i], s[i + 1]) * (s_noise * up)
    return x


def _lms_coefficients(sigmas: list[float], i: int, order: int) -> list[float]:
    """Integrals over [sigma_i, sigma_i+1] of the Lagrange basis on the last `order` sigmas."""
    nodes = [sigmas[i - k] for k in range(order)]
    coeffs = []
    for j in range(order):
        basis = np.polynomial.Polynomial([1.0])
        for k in range(order):
            if k != j:
                basis = basis * np.polynomial.Polynomial([-nodes[k], 1.0]) / (nodes[j] - nodes[k])
        antiderivative = basis.integ()
        coeffs.append(float(antiderivative(sigmas[i + 1]) - antiderivative(sigmas[i])))
    return coeffs


def lms(run: SamplerRun, x: torch.Tensor, order: int = 4) -> torch.Tensor:
    s = run.sigmas
    history: list[torch.Tensor] = []
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        run.step(i, x, denoised)
        history.append(to_d(x, s[i], denoised))
        if len(history) > order:
            history.pop(0)
        if s[i + 1] == 0:
            x = denoised
            continue
        coeffs = _lms_coefficients(s, i, min(i + 1, order))
        for c, d in zip(coeffs, reversed(history)):
            x = x + d * c
    return x


def ddpm(run: SamplerRun, x: torch.Tensor) -> torch.Tensor:
    """Ancestral DDPM steps, taken in the variance-preserving space."""
    s = run.sigmas
    noise = run.noise_sampler(x)
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        run.step(i, x, denoised)
        eps = (x - denoised) * (1.0 / s[i])
        a_bar = 1.0 / (s[i] ** 2 + 1)
        a_bar_prev = 1.0 / (s[i + 1] ** 2 + 1)
        alpha = a_bar / a_bar_prev
        x_vp = x * (1.0 / math.sqrt(1.0 + s[i] ** 2))
        mu = (x_vp - eps * ((1 - alpha) / math.sqrt(1 - a_bar))) * (1.0 / math.sqrt(alpha))
        if s[i + 1] > 0:
            mu = mu + noise(s[i], s[i + 1]) * math.sqrt((1 - alpha) * (1 - a_bar_prev) / (1 - a_bar))
            mu = mu * math.sqrt(1.0 + s[i + 1] ** 2)
        x = mu
    return x


def lcm(run: SamplerRun, x: torch.Tensor) -> torch.Tensor:
    """Latent consistency: jump to the denoised estimate, then re-noise to the next sigma."""
    s = run.sigmas
    noise = run.noise_sampler(x)
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        run.step(i, x, denoised)
        x = denoised
        if s[i + 1] > 0:
            x = run.schedule.noise_scaling(s[i + 1], noise(s[i], s[i + 1]), x)
    return x


# Adams-Bashforth weights for 1..4 previous derivatives (iPNDM's fixed-step coefficients).
_AB_WEIGHTS = {1: [1.0], 2: [3 / 2, -1 / 2], 3: [23 / 12, -16 / 12, 5 / 12], 4: [55 / 24, -59 / 24, 37 / 24, -9 / 24]}


def _adams_bashforth(run: SamplerRun, x: torch.Tensor, max_order: int,
                     weights: Callable[[int, int], list[float]]) -> torch.Tensor:
    """Linear multistep on the ODE derivative; `weights(i, order)` gives step i's coefficients."""
    s = run.sigmas
    history: list[torch.Tensor] = []
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        run.step(i, x, denoised)
        d = to_d(x, s[i], denoised)
        if s[i + 1] == 0:
            x = denoised
        else:
            terms = [d] + history[::-1]
            x = x + sum(t * w for t, w in zip(terms, weights(i, min(max_order, i + 1)))) * (s[i + 1] - s[i])
        history = (history + [d])[-(max_order - 1):]
    return x


def ipndm(run: SamplerRun, x: torch.Tensor, max_order: int = 4) -> torch.Tensor:
    """Improved PNDM: Adams-Bashforth with fixed coefficients on the ODE derivative."""
    return _adams_bashforth(run, x, max_order, lambda i, order: _AB_WEIGHTS[order])


def _ipndm_v_weights(s: list[float], i: int, order: int) -> list[float]:
    """Variable-step Adams-Bashforth weights of iPNDM-v (diff-sampler)."""
    h = s[i + 1] - s[i]
    if order == 1:
        return [1.0]
    h1 = s[i] - s[i - 1]
    if order == 2:
        return [(2 + h / h1) / 2, -(h / h1) / 2]
    h2 = s[i - 1] - s[i - 2]
    t1 = (1 - h / (3 * (h + h1)) * (h * (h + h1)) / (h1 * (h1 + h2))) / 2
    if order == 3:
        return [(2 + h / h1) / 2 + t1, -(h / h1) / 2 - (1 + h1 / h2) * t1, t1 * h1 / h2]
    h3 = s[i - 2] - s[i - 3]
    t2 = ((1 - h / (3 * (h + h1))) / 2 + (1 - h / (2 * (h + h1))) * h / (6 * (h + h1 + h2))) \
        * (h * (h + h1) * (h + h1 + h2)) / (h1 * (h1 + h2) * (h1 + h2 + h3))
    r = h1 * (h1 + h2) / (h2 * (h2 + h3))
    return [(2 + h / h1) / 2 + t1 + t2,
            -(h / h1) / 2 - (1 + h1 / h2) * t1 - (1 + h1 / h2 + r) * t2,
            t1 * h1 / h2 + (h1 / h2 + r * (1 + h2 / h3)) * t2,
            -t2 * r * h1 / h2]


def ipndm_v(run: SamplerRun, x: torch.Tensor, max_order: int = 4) -> torch.Tensor:
    """iPNDM with variable-step weights (for uneven sigma spacing)."""
    return _adams_bashforth(run, x, max_order, lambda i, order: _ipndm_v_weights(run.sigmas, i, order))


# DEIS ("tab" variant): the derivative is extrapolated with a polynomial in the VP-SDE time tau
# (EDM's sigma range 0.002..80 mapped to tau in [1e-3, 1]) and integrated over sigma.
_EPS_S, _SMIN, _SMAX = 1e-3, 0.002, 80.0
_VP_BETA_D = 2 * (math.log(_SMIN ** 2 + 1) / _EPS_S - math.log(_SMAX ** 2 + 1)) / (_EPS_S - 1)
_VP_BETA_MIN = math.log(_SMAX ** 2 + 1) - 0.5 * _VP_BETA_D


def _sigma_to_tau(sigma: np.ndarray) -> np.ndarray:
    return (np.sqrt(_VP_BETA_MIN ** 2 + 2 * _VP_BETA_D * np.log(sigma ** 2 + 1)) - _VP_BETA_MIN) / _VP_BETA_D


def _deis_coefficients(s: list[float], i: int, order: int) -> list[float]:
    taus = _sigma_to_tau(np.array([s[i - k] for k in range(order)]))
    nodes, weights = np.polynomial.legendre.leggauss(32)
    a, b = s[i], s[i + 1]
    sig = 0.5 * (b - a) * nodes + 0.5 * (a + b)
    tau = _sigma_to_tau(sig)
    coeffs = []
    for j in range(order):
        basis = np.ones_like(tau)
        for k in range(order):
            if k != j:
                basis *= (tau - taus[k]) / (taus[j] - taus[k])
        coeffs.append(float(0.5 * (b - a) * np.sum(weights * basis)))
    return coeffs


def deis(run: SamplerRun, x: torch.Tensor, max_order: int = 3) -> torch.Tensor:
    s = run.sigmas
    history: list[torch.Tensor] = []
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        run.step(i, x, denoised)
        d = to_d(x, s[i], denoised)
        order = min(max_order, i + 1) if s[i + 1] > 0 else 1
        if order == 1:
            x = x + d * (s[i + 1] - s[i])
        else:
            terms = [d] + history[::-1]
            x = x + sum(t * c for t, c in zip(terms, _deis_coefficients(s, i, order)))
        history = (history + [d])[-(max_order - 1):]
    return x


def gradient_estimation(run: SamplerRun, x: torch.Tensor, ge_gamma: float = 2.0,
                        cfg_pp: bool = False) -> torch.Tensor:
    """Euler plus a correction from the change of the derivative (arXiv 2306.04848)."""
    s = run.sigmas
    run.model.want_uncond = cfg_pp
    old_d = None
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        run.step(i, x, denoised)
        d = to_d(x, s[i], run.model.uncond_denoised if cfg_pp else denoised)
        dt = s[i + 1] - s[i]
        if s[i + 1] == 0:
            x = denoised
        else:
            x = denoised + d * s[i + 1] if cfg_pp else x + d * dt
            if old_d is not None:
                x = x + (d - old_d) * ((ge_gamma - 1) * dt)
        old_d = d
    return x


def euler_ancestral_cfg_pp(run: SamplerRun, x: torch.Tensor, eta: float = 1.0,
                           s_noise: float = 1.0) -> torch.Tensor:
    """CFG++ (arXiv 2406.08070): step along the unconditional direction from the guided estimate."""
    s = run.sigmas
    noise = run.noise_sampler(x)
    run.model.want_uncond = True
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        run.step(i, x, denoised)
        if s[i + 1] == 0:
            x = denoised
            continue
        d = to_d(x, s[i], run.model.uncond_denoised)
        down, up = ancestral_step(s[i], s[i + 1], eta)
        x = denoised + d * down
        if eta > 0 and s_noise > 0 and up > 0:
            x = x + noise(s[i], s[i + 1]) * (s_noise * up)
    return x


def euler_cfg_pp(run: SamplerRun, x: torch.Tensor) -> torch.Tensor:
    return euler_ancestral_cfg_pp(run, x, eta=0.0, s_noise=0.0)

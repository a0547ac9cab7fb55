"""Exponential-integrator samplers in half-log-SNR time: DPM-Solver++ (2S, SDE, 2M, 2M SDE,
3M SDE), RES multistep and UniPC (bh1/bh2), written for discrete models where, in sigma space,
alpha = 1 and lambda = -log(sigma)."""

from __future__ import annotations

import math

import torch

from nodes.diffusion.sampling.base import SamplerRun, ancestral_step, neg_log, to_d


def dpmpp_2s_ancestral(run: SamplerRun, x: torch.Tensor, eta: float = 1.0, s_noise: float = 1.0) -> torch.Tensor:
    s = run.sigmas
    noise = run.noise_sampler(x)
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        run.step(i, x, denoised)
        down, up = ancestral_step(s[i], s[i + 1], eta)
        if down == 0:
            x = x + to_d(x, s[i], denoised) * (down - s[i])
        else:
            h = neg_log(down) - neg_log(s[i])
            s_mid = math.exp(-(neg_log(s[i]) + 0.5 * h))
            x_2 = x * (s_mid / s[i]) - denoised * math.expm1(-0.5 * h)
            denoised_2 = run.model(x_2, s_mid)
            x = x * (down / s[i]) - denoised_2 * math.expm1(-h)
        if s[i + 1] > 0 and up > 0:
            x = x + noise(s[i], s[i + 1]) * (s_noise * up)
    return x


def dpmpp_sde(run: SamplerRun, x: torch.Tensor, eta: float = 1.0, s_noise: float = 1.0, r: float = 0.5,
              tree_on_cpu: bool = True) -> torch.Tensor:
    if run.steps < 1:
        return x
    s = run.sigmas
    noise = run.brownian_noise_sampler(x, on_cpu=tree_on_cpu)
    fac = 1 / (2 * r)
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        run.step(i, x, denoised)
        if s[i + 1] == 0:
            x = denoised
            continue
        lam_s, lam_t = neg_log(s[i]), neg_log(s[i + 1])
        s_mid = math.exp(-(lam_s + r * (lam_t - lam_s)))
        # first stage: to the intermediate sigma, with its share of noise
        down, up = ancestral_step(s[i], s_mid, eta)
        x_2 = x * (down / s[i]) - denoised * math.expm1(-(neg_log(down) - lam_s))
        if eta > 0 and s_noise > 0 and up > 0:
            x_2 = x_2 + noise(s[i], s_mid) * (s_noise * up)
        denoised_2 = run.model(x_2, s_mid)
        # second stage: the whole step with the blended estimate
        down, up = ancestral_step(s[i], s[i + 1], eta)
        blended = denoised * (1 - fac) + denoised_2 * fac
        x = x * (down / s[i]) - blended * math.expm1(-(neg_log(down) - lam_s))
        if eta > 0 and s_noise > 0 and up > 0:
            x = x + noise(s[i], s[i + 1]) * (s_noise * up)
    return x


def dpmpp_2m(run: SamplerRun, x: torch.Tensor) -> torch.Tensor:
    s = run.sigmas
    old_denoised = None
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        run.step(i, x, denoised)
        if s[i + 1] == 0:
            x = denoised
        else:
            h = neg_log(s[i + 1]) - neg_log(s[i])
            if old_denoised is None:
                estimate = denoised
            else:
                r = (neg_log(s[i]) - neg_log(s[i - 1])) / h
                estimate = denoised * (1 + 1 / (2 * r)) - old_denoised * (1 / (2 * r))
            x = x * (s[i + 1] / s[i]) - estimate * math.expm1(-h)
        old_denoised = denoised
    return x


def dpmpp_2m_cfg_pp(run: SamplerRun, x: torch.Tensor) -> torch.Tensor:
    s = run.sigmas
    run.model.want_uncond = True
    old_uncond = None
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        uncond = run.model.uncond_denoised
        run.step(i, x, denoised)
        if s[i + 1] == 0:
            x = denoised
        else:
            h = neg_log(s[i + 1]) - neg_log(s[i])
            mix = uncond * -math.exp(-h)
            if old_uncond is not None:
                r = (neg_log(s[i]) - neg_log(s[i - 1])) / h
                mix = mix - (denoised - old_uncond) * (math.expm1(-h) / (2 * r))
            x = denoised + mix + x * math.exp(-h)
        old_uncond = uncond
    return x


def dpmpp_2m_sde(run: SamplerRun, x: torch.Tensor, eta: float = 1.0, s_noise: float = 1.0,
                 solver_type: str = "midpoint", tree_on_cpu: bool = True) -> torch.Tensor:
    if solver_type not in ("midpoint", "heun"):
        raise ValueError(f"solver_type must be 'heun' or 'midpoint', got {solver_type!r}")
    if run.steps < 1:
        return x
    s = run.sigmas
    noise = run.brownian_noise_sampler(x, on_cpu=tree_on_cpu)
    old_denoised, h_last = None, None
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        run.step(i, x, denoised)
        h = None
        if s[i + 1] == 0:
            x = denoised
        else:
            h = neg_log(s[i + 1]) - neg_log(s[i])
            h_eta = h * (eta + 1)
            phi1 = -math.expm1(-h_eta)
            x = x * (s[i + 1] / s[i] * math.exp(-h * eta)) + denoised * phi1
            if old_denoised is not None:
                r = h_last / h
                if solver_type == "heun":
                    x = x + (denoised - old_denoised) * ((phi1 / -h_eta + 1) / r)
                else:
                    x = x + (denoised - old_denoised) * (0.5 * phi1 / r)
            if eta > 0 and s_noise > 0:
                x = x + noise(s[i], s[i + 1]) * (s[i + 1] * math.sqrt(-math.expm1(-2 * h * eta)) * s_noise)
        old_denoised, h_last = denoised, h
    return x


def dpmpp_3m_sde(run: SamplerRun, x: torch.Tensor, eta: float = 1.0, s_noise: float = 1.0,
                 tree_on_cpu: bool = True) -> torch.Tensor:
    if run.steps < 1:
        return x
    s = run.sigmas
    noise = run.brownian_noise_sampler(x, on_cpu=tree_on_cpu)
    d_1 = d_2 = None          # previous denoised estimates
    h_1 = h_2 = None          # previous step sizes
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        run.step(i, x, denoised)
        h = None
        if s[i + 1] == 0:
            x = denoised
        else:
            h = neg_log(s[i + 1]) - neg_log(s[i])
            h_eta = h * (eta + 1)
            x = x * (s[i + 1] / s[i] * math.exp(-h * eta)) + denoised * -math.expm1(-h_eta)
            phi_2 = math.expm1(-h_eta) / h_eta + 1
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                g0 = (denoised - d_1) * (1 / r0)
                g1 = (d_1 - d_2) * (1 / r1)
                first = g0 + (g0 - g1) * (r0 / (r0 + r1))
                second = (g0 - g1) * (1 / (r0 + r1))
                phi_3 = phi_2 / h_eta - 0.5
                x = x + first * phi_2 - second * phi_3
            elif h_1 is not None:
                x = x + (denoised - d_1) * (phi_2 * h / h_1)
            if eta > 0 and s_noise > 0:
                x = x + noise(s[i], s[i + 1]) * (s[i + 1] * math.sqrt(-math.expm1(-2 * h * eta)) * s_noise)
        d_1, d_2 = denoised, d_1
        h_1, h_2 = h, h_1
    return x


def res_multistep(run: SamplerRun, x: torch.Tensor, eta: float = 0.0, s_noise: float = 1.0,
                  cfg_pp: bool = False) -> torch.Tensor:
    """Second-order refined exponential solver (arXiv 2308.02157), optionally ancestral / CFG++."""
    s = run.sigmas
    noise = run.noise_sampler(x)
    run.model.want_uncond = cfg_pp
    old_down = old_est = None
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        uncond = run.model.uncond_denoised if cfg_pp else None
        run.step(i, x, denoised)
        down, up = ancestral_step(s[i], s[i + 1], eta)
        if down == 0 or old_est is None:
            if cfg_pp:
                x = denoised + to_d(x, s[i], uncond) * down
            else:
                x = x + to_d(x, s[i], denoised) * (down - s[i])
        else:
            h = neg_log(down) - neg_log(s[i])
            c2 = (neg_log(s[i - 1]) - neg_log(old_down)) / h
            phi1 = math.expm1(-h) / -h
            phi2 = (phi1 - 1.0) / -h
            b1, b2 = phi1 - phi2 / c2, phi2 / c2
            if not math.isfinite(b1):
                b1 = 0.0
            if not math.isfinite(b2):
                b2 = 0.0
            if cfg_pp:
                x = (x + (denoised - uncond)) * math.exp(-h) + (uncond * b1 + old_est * b2) * h
            else:
                x = x * math.exp(-h) + (denoised * b1 + old_est * b2) * h
        if s[i + 1] > 0 and up > 0:
            x = x + noise(s[i], s[i + 1]) * (s_noise * up)
        old_est = uncond if cfg_pp else denoised
        old_down = down
    return x


# -- UniPC (Zhao et al. 2023), multistep data-prediction form -----------------------------------------
def _unipc_coefficients(h: float, rks: list[float], variant: str) -> tuple[float, list[float], list[float]]:
    """(B_h, predictor weights, corrector weights) for previous points at relative positions rks."""
    hh = -h
    b_h = hh if variant == "bh1" else math.expm1(hh)
    order = len(rks) + 1
    points = rks + [1.0]
    rows, rhs = [], []
    h_phi_k = math.expm1(hh) / hh - 1
    factorial = 1
    for k in range(1, order + 1):
        rows.append([r ** (k - 1) for r in points])
        rhs.append(h_phi_k * factorial / b_h)
        factorial *= k + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    R = torch.tensor(rows, dtype=torch.float64)
    b = torch.tensor(rhs, dtype=torch.float64)
    if order == 1:
        predictor: list[float] = []
        corrector = [0.5]
    else:
        predictor = [0.5] if order == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1]).tolist()
        corrector = torch.linalg.solve(R, b).tolist()
    return b_h, predictor, corrector


def uni_pc(run: SamplerRun, x: torch.Tensor, variant: str = "bh1", max_order: int = 3) -> torch.Tensor:
    s = run.sigmas
    n = run.steps
    if n < 1:
        return x
    denoised = run.model(x, s[0])
    run.step(0, x, denoised)
    history: list[tuple[float, torch.Tensor]] = [(neg_log(s[0]), denoised)]
    for i in range(n):
        if s[i + 1] == 0:
            return history[-1][1]
        order = min(max_order, len(history), n - i)
        lam_0, m0 = history[-1]
        lam_t = neg_log(s[i + 1])
        h = lam_t - lam_0
        previous = history[-order:-1][::-1]
        rks = [(lam - lam_0) / h for lam, _ in previous]
        diffs = [(m - m0) * (1.0 / rk) for (_, m), rk in zip(previous, rks)]
        b_h, rho_p, rho_c = _unipc_coefficients(h, rks, variant)
        base = x * (s[i + 1] / s[i]) - m0 * math.expm1(-h)
        x_pred = base
        for w, dk in zip(rho_p, diffs):
            x_pred = x_pred - dk * (b_h * w)
        if i + 1 == n:
            return x_pred
        m_t = run.model(x_pred, s[i + 1])
        run.step(i + 1, x_pred, m_t)
        x = base - (m_t - m0) * (b_h * rho_c[-1])
        for w, dk in zip(rho_c[:-1], diffs):
            x = x - dk * (b_h * w)
        history = (history + [(lam_t, m_t)])[-max_order:]
    return x


def uni_pc_bh2(run: SamplerRun, x: torch.Tensor) -> torch.Tensor:
    return uni_pc(run, x, variant="bh2")

"""Less common samplers of ComfyUI's list: SEEDS-2 and exponential Heun, ER-SDE, DPM-Solver++(2S)
ancestral with CFG++, and DPM-Solver fast / adaptive (fixed NFE budget or error-controlled steps).

Discrete models in sigma space have alpha = 1 and lambda = -log(sigma); the formulas below are
those of the papers with that substitution.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from nodes.diffusion.sampling.base import SamplerRun, ancestral_step, neg_log, to_d


def seeds_2(run: SamplerRun, x: torch.Tensor, eta: float = 1.0, s_noise: float = 1.0, r: float = 0.5,
            solver_type: str = "phi_1") -> torch.Tensor:
    """SEEDS-2 (arXiv 2305.14267): two-stage stochastic exponential solver in data prediction."""
    if solver_type not in ("phi_1", "phi_2"):
        raise ValueError(f"solver_type must be 'phi_1' or 'phi_2', got {solver_type!r}")
    s = run.sigmas
    noise = run.noise_sampler(x)
    inject = eta > 0 and s_noise > 0
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        run.step(i, x, denoised)
        if s[i + 1] == 0:
            x = denoised
            continue
        h = neg_log(s[i + 1]) - neg_log(s[i])
        h_eta = h * (eta + 1)
        s_mid = math.exp(-(neg_log(s[i]) + r * h))
        x_2 = x * (s_mid / s[i] * math.exp(-r * h * eta)) - denoised * math.expm1(-r * h_eta)
        sde_noise = None
        if inject:
            sde_noise = noise(s[i], s_mid) * math.sqrt(-math.expm1(-2 * r * h * eta))
            x_2 = x_2 + sde_noise * (s_mid * s_noise)
        denoised_2 = run.model(x_2, s_mid)
        decay = s[i + 1] / s[i] * math.exp(-h * eta)
        if solver_type == "phi_1":
            blended = torch.lerp(denoised, denoised_2, 1 / (2 * r))
            x = x * decay - blended * math.expm1(-h_eta)
        else:
            phi_2 = (math.expm1(-h_eta) + h_eta) / -h_eta
            b2 = phi_2 / r
            b1 = math.expm1(-h_eta) - b2
            x = x * decay - (denoised * b1 + denoised_2 * b2)
        if inject:
            segment = (r - 1) * h * eta
            sde_noise = sde_noise * math.exp(segment) + noise(s_mid, s[i + 1]) * math.sqrt(-math.expm1(2 * segment))
            x = x + sde_noise * (s[i + 1] * s_noise)
    return x


def exp_heun_2_x0(run: SamplerRun, x: torch.Tensor) -> torch.Tensor:
    """Deterministic exponential Heun, second order, data prediction in log-SNR time."""
    return seeds_2(run, x, eta=0.0, s_noise=0.0, r=1.0, solver_type="phi_2")


def exp_heun_2_x0_sde(run: SamplerRun, x: torch.Tensor, eta: float = 1.0, s_noise: float = 1.0) -> torch.Tensor:
    return seeds_2(run, x, eta=eta, s_noise=s_noise, r=1.0, solver_type="phi_2")


def er_sde(run: SamplerRun, x: torch.Tensor, s_noise: float = 1.0, max_stage: int = 3) -> torch.Tensor:
    """Extended reverse-time SDE solver, VP ER-SDE-Solver-3 (arXiv 2309.06169)."""
    s = run.sigmas
    noise = run.noise_sampler(x)

    def scaler(v):
        return v * (np.exp(v ** 0.3) + 10.0)

    points = np.arange(200, dtype=np.float64)
    old = old_d = None
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        run.step(i, x, denoised)
        stage = min(max_stage, i + 1)
        if s[i + 1] == 0:
            x = denoised
        else:
            ls, lt = s[i], s[i + 1]          # er_lambda = sigma / alpha = sigma here
            ratio = float(scaler(lt) / scaler(ls))
            x = x * ratio + denoised * (1 - ratio)
            if stage >= 2:
                dt = lt - ls
                step = -dt / 200
                pos = lt + points * step
                scaled = scaler(pos)
                first = float(np.sum(1 / scaled) * step)
                d = (denoised - old) * (1.0 / (ls - s[i - 1]))
                x = x + d * (dt + first * float(scaler(lt)))
                if stage >= 3:
                    second = float(np.sum((pos - ls) / scaled) * step)
                    u = (d - old_d) * (2.0 / (ls - s[i - 2]))
                    x = x + u * (dt ** 2 / 2 + second * float(scaler(lt)))
                old_d = d
            if s_noise > 0:
                spread = lt ** 2 - ls ** 2 * ratio ** 2
                if spread > 0:
                    x = x + noise(s[i], s[i + 1]) * (s_noise * math.sqrt(spread))
        old = denoised
    return x


def dpmpp_2s_ancestral_cfg_pp(run: SamplerRun, x: torch.Tensor, eta: float = 1.0,
                              s_noise: float = 1.0) -> torch.Tensor:
    """DPM-Solver++(2S) ancestral, stepping along the unconditional estimate (CFG++)."""
    s = run.sigmas
    noise = run.noise_sampler(x)
    run.model.want_uncond = True
    for i in range(run.steps):
        denoised = run.model(x, s[i])
        uncond = run.model.uncond_denoised
        guidance = denoised - uncond
        run.step(i, x, denoised)
        down, up = ancestral_step(s[i], s[i + 1], eta)
        if down == 0:
            x = x + to_d(x, s[i], uncond) * (down - s[i])
        else:
            h = neg_log(down) - neg_log(s[i])
            s_mid = math.exp(-(neg_log(s[i]) + 0.5 * h))
            x_2 = x * (s_mid / s[i]) - uncond * math.expm1(-0.5 * h)
            run.model(x_2, s_mid)
            x = x * (down / s[i]) - run.model.uncond_denoised * math.expm1(-h)
        if s[i + 1] > 0 and up > 0:
            x = x + noise(s[i], s[i + 1]) * (s_noise * up)
        x = x + guidance
    return x


# -- DPM-Solver (Lu et al. 2022), in noise prediction and t = -log(sigma) --------------------------------------
class _DPMSolver:
    def __init__(self, run: SamplerRun, total: int):
        self.run, self.total, self.nfe = run, total, 0

    def eps(self, x: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        sigma = math.exp(-t)
        denoised = self.run.model(x, sigma)
        # progress counts model evaluations; an adaptive run may need more than the budget shown
        self.run.step(min(self.nfe, self.total - 1), x, denoised)
        self.nfe += 1
        return (x - denoised) * (1.0 / sigma), denoised

    def step(self, x: torch.Tensor, t: float, t_next: float, order: int, eps: torch.Tensor,
             r1: float | None = None) -> torch.Tensor:
        h = t_next - t
        sig_next = math.exp(-t_next)
        if order == 1:
            return x - eps * (sig_next * math.expm1(h))
        if order == 2:
            r1 = 0.5 if r1 is None else r1
            s1 = t + r1 * h
            u1 = x - eps * (math.exp(-s1) * math.expm1(r1 * h))
            eps_1, _ = self.eps(u1, s1)
            return x - eps * (sig_next * math.expm1(h)) - (eps_1 - eps) * (sig_next / (2 * r1) * math.expm1(h))
        r1, r2 = 1 / 3, 2 / 3
        s1, s2 = t + r1 * h, t + r2 * h
        u1 = x - eps * (math.exp(-s1) * math.expm1(r1 * h))
        eps_1, _ = self.eps(u1, s1)
        u2 = (x - eps * (math.exp(-s2) * math.expm1(r2 * h))
              - (eps_1 - eps) * (math.exp(-s2) * (r2 / r1) * (math.expm1(r2 * h) / (r2 * h) - 1)))
        eps_2, _ = self.eps(u2, s2)
        return x - eps * (sig_next * math.expm1(h)) - (eps_2 - eps) * (sig_next / r2 * (math.expm1(h) / h - 1))


def _range(run: SamplerRun) -> tuple[float, float]:
    s = run.sigmas
    sigma_min = s[-1] if s[-1] > 0 else s[-2]
    return s[0], sigma_min


def dpm_fast(run: SamplerRun, x: torch.Tensor) -> torch.Tensor:
    """DPM-Solver-fast: the step budget split into order-3 steps (the sigmas' ends only are used)."""
    if run.steps < 1:
        return x
    sigma_max, sigma_min = _range(run)
    nfe = run.steps
    solver = _DPMSolver(run, nfe)
    t_start, t_end = -math.log(sigma_max), -math.log(sigma_min)
    m = nfe // 3 + 1
    ts = np.linspace(t_start, t_end, m + 1)
    orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
    for i, order in enumerate(orders):
        eps, _ = solver.eps(x, float(ts[i]))
        x = solver.step(x, float(ts[i]), float(ts[i + 1]), order, eps)
    return x


def dpm_adaptive(run: SamplerRun, x: torch.Tensor, order: int = 3, rtol: float = 0.05, atol: float = 0.0078,
                 h_init: float = 0.05, pcoeff: float = 0.0, icoeff: float = 1.0, dcoeff: float = 0.0,
                 accept_safety: float = 0.81) -> torch.Tensor:
    """DPM-Solver-12/23 with a PID step-size controller on the embedded error estimate."""
    if run.steps < 1:
        return x
    sigma_max, sigma_min = _range(run)
    solver = _DPMSolver(run, run.steps)
    s, t_end = -math.log(sigma_max), -math.log(sigma_min)
    h = abs(h_init)
    b1, b2, b3 = (pcoeff + icoeff + dcoeff) / order, -(pcoeff + 2 * dcoeff) / order, dcoeff / order
    errs: list[float] = []
    x_prev = x
    while s < t_end - 1e-5:
        t = min(t_end, s + h)
        eps, _ = solver.eps(x, s)
        if order == 2:
            x_low = solver.step(x, s, t, 1, eps)
            x_high = solver.step(x, s, t, 2, eps)
        else:
            x_low = solver.step(x, s, t, 2, eps, r1=1 / 3)
            x_high = solver.step(x, s, t, 3, eps)
        delta = torch.maximum(torch.full_like(x_low, atol), rtol * torch.maximum(x_low.abs(), x_prev.abs()))
        error = float(torch.linalg.norm((x_low - x_high) / delta) / x.numel() ** 0.5)
        inv = 1 / (error + 1e-8)
        if not errs:
            errs = [inv, inv, inv]
        errs[0] = inv
        factor = 1 + math.atan(errs[0] ** b1 * errs[1] ** b2 * errs[2] ** b3 - 1)
        if factor >= accept_safety:
            errs[2], errs[1] = errs[1], errs[0]
            x_prev, x, s = x_low, x_high, t
        h *= factor
    return x

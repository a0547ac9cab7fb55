"""The SAMPLER registry: ComfyUI's sampler names that Loom implements, in ComfyUI's order.

A name Loom does not implement is absent from the list (a workflow asking for it fails validation
with the usual "value not in list" error); nothing is silently replaced. Not implemented (yet):
seeds_3, sa_solver, sa_solver_pece. `ddim` is ComfyUI's own
alias: Euler steps with an independently seeded noise for the inpainting blend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from nodes.diffusion.sampling import k_samplers as k
from nodes.diffusion.sampling import k_samplers_dpmpp as dp
from nodes.diffusion.sampling import k_samplers_extra as ex
from nodes.diffusion.sampling.base import SamplerFunction


@dataclass(frozen=True)
class Sampler:
    """A SAMPLER value: a sampler function plus how KSampler should treat it."""

    name: str
    function: SamplerFunction
    options: dict = field(default_factory=dict)
    discard_penultimate_sigma: bool = False   # dpm_2*, uni_pc*: ComfyUI's KSampler drops sigma[-2]
    random_inpaint_noise: bool = False        # ddim: the inpaint blend uses noise seeded seed + 1


_FUNCTIONS: dict[str, SamplerFunction] = {
    "euler": k.euler,
    "euler_cfg_pp": k.euler_cfg_pp,
    "euler_ancestral": k.euler_ancestral,
    "euler_ancestral_cfg_pp": k.euler_ancestral_cfg_pp,
    "heun": k.heun,
    "heunpp2": k.heunpp2,
    "exp_heun_2_x0": ex.exp_heun_2_x0,
    "exp_heun_2_x0_sde": ex.exp_heun_2_x0_sde,
    "dpm_2": k.dpm_2,
    "dpm_2_ancestral": k.dpm_2_ancestral,
    "lms": k.lms,
    "dpm_fast": ex.dpm_fast,
    "dpm_adaptive": ex.dpm_adaptive,
    "dpmpp_2s_ancestral": dp.dpmpp_2s_ancestral,
    "dpmpp_2s_ancestral_cfg_pp": ex.dpmpp_2s_ancestral_cfg_pp,
    "dpmpp_sde": dp.dpmpp_sde,
    "dpmpp_sde_gpu": partial(dp.dpmpp_sde, tree_on_cpu=False),
    "dpmpp_2m": dp.dpmpp_2m,
    "dpmpp_2m_cfg_pp": dp.dpmpp_2m_cfg_pp,
    "dpmpp_2m_sde": dp.dpmpp_2m_sde,
    "dpmpp_2m_sde_gpu": partial(dp.dpmpp_2m_sde, tree_on_cpu=False),
    "dpmpp_2m_sde_heun": partial(dp.dpmpp_2m_sde, solver_type="heun"),
    "dpmpp_2m_sde_heun_gpu": partial(dp.dpmpp_2m_sde, solver_type="heun", tree_on_cpu=False),
    "dpmpp_3m_sde": dp.dpmpp_3m_sde,
    "dpmpp_3m_sde_gpu": partial(dp.dpmpp_3m_sde, tree_on_cpu=False),
    "ddpm": k.ddpm,
    "lcm": k.lcm,
    "ipndm": k.ipndm,
    "ipndm_v": k.ipndm_v,
    "deis": k.deis,
    "res_multistep": dp.res_multistep,
    "res_multistep_cfg_pp": partial(dp.res_multistep, cfg_pp=True),
    "res_multistep_ancestral": partial(dp.res_multistep, eta=1.0),
    "res_multistep_ancestral_cfg_pp": partial(dp.res_multistep, eta=1.0, cfg_pp=True),
    "gradient_estimation": k.gradient_estimation,
    "gradient_estimation_cfg_pp": partial(k.gradient_estimation, cfg_pp=True),
    "er_sde": ex.er_sde,
    "seeds_2": ex.seeds_2,
    "ddim": k.euler,
    "uni_pc": dp.uni_pc,
    "uni_pc_bh2": dp.uni_pc_bh2,
}

SAMPLER_NAMES: list[str] = list(_FUNCTIONS)
_DISCARD_PENULTIMATE = {"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"}


def get_sampler(name: str, **options) -> Sampler:
    """The SAMPLER for a ComfyUI sampler name (options go to the sampler function)."""
    fn = _FUNCTIONS.get(name)
    if fn is None:
        raise ValueError(f"unknown sampler {name!r}; Loom implements: {', '.join(SAMPLER_NAMES)}")
    return Sampler(name, fn, dict(options), discard_penultimate_sigma=name in _DISCARD_PENULTIMATE,
                   random_inpaint_noise=name == "ddim")

"""ComfyUI's `comfy.samplers`, for packs that read the sampler and scheduler names.

The names are the ones Loom's own KSampler offers (read from `nodes.diffusion.sampling`, or from
the registered KSampler's INPUT_TYPES), so a pack's combo never offers a sampler Loom cannot run.
Sampling objects themselves (CFGGuider, KSAMPLER, sample, ...) are not provided.
"""

from __future__ import annotations

from typing import Any

from _loom_compat import missing_attribute, not_implemented


def _from_sampling_module(attr_names: tuple[str, ...]) -> list[str] | None:
    try:
        import nodes.diffusion.sampling as sampling
    except ImportError:
        return None
    for attr in attr_names:
        value = getattr(sampling, attr, None)
        if value:
            return list(value)
    return None


def _from_ksampler_node(input_name: str) -> list[str] | None:
    import nodes

    ksampler = nodes.NODE_CLASS_MAPPINGS.get("KSampler")
    if ksampler is None:
        return None
    entry = (ksampler.INPUT_TYPES().get("required") or {}).get(input_name)
    if entry and isinstance(entry[0], (list, tuple)):
        return list(entry[0])
    return None


def sampler_names() -> list[str]:
    names = _from_sampling_module(("SAMPLER_NAMES", "SAMPLERS")) or _from_ksampler_node("sampler_name")
    if names is None:
        raise not_implemented("comfy.samplers.KSampler.SAMPLERS", "Loom's sampling nodes are not available")
    return names


def scheduler_names() -> list[str]:
    names = _from_sampling_module(("SCHEDULER_NAMES", "SCHEDULERS")) or _from_ksampler_node("scheduler")
    if names is None:
        raise not_implemented("comfy.samplers.KSampler.SCHEDULERS", "Loom's sampling nodes are not available")
    return names


class _KSamplerMeta(type):
    @property
    def SAMPLERS(cls) -> list[str]:  # noqa: N802 - ComfyUI's name
        return sampler_names()

    @property
    def SCHEDULERS(cls) -> list[str]:  # noqa: N802
        return scheduler_names()


class KSampler(metaclass=_KSamplerMeta):
    """Only the class-level name lists; instantiating it is not supported."""

    DISCARD_PENULTIMATE_SIGMA_SAMPLERS: set[str] = {"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"}

    def __init__(self, *_args: Any, **_kwargs: Any):
        raise not_implemented("comfy.samplers.KSampler(...)", "use Loom's KSampler node instead")


_missing = missing_attribute("comfy.samplers")


def __getattr__(name: str) -> Any:
    if name in ("SAMPLER_NAMES", "KSAMPLER_NAMES"):
        return sampler_names()
    if name == "SCHEDULER_NAMES":
        return scheduler_names()
    return _missing(name)

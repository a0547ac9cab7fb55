"""How the loop calls the UNet: eagerly, or (opt-in, `settings.fast`) through torch.compile.

The eager SD1.5 step on an H100 is host-bound (Python and kernel launches cost more than the GPU
work), so the fast path compiles the UNet with inductor and CUDA graphs (`settings.compile_mode`,
"reduce-overhead" by default, "max-autotune" to also autotune kernels), after switching it to
channels_last. One compiled wrapper is kept per UNet module for
the life of the process; dynamo keeps one graph per input shape/dtype under it, so a user pays the
compile once per (model, shape, dtype). On CPU (or without CUDA) the fast flag changes nothing.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable

import torch

from nodes.diffusion.sampling import settings

log = logging.getLogger("loom.sampling")

UNetCall = Callable[..., torch.Tensor]

_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_seen: dict[tuple, float] = {}   # (id(module), shapes, dtype) -> seconds the first call took
compile_seconds: dict[str, float] = {}   # human-readable key -> first-call seconds (for the bench)


def eager_call(module: torch.nn.Module) -> UNetCall:
    def call(sample, timestep, embeds, **kwargs):
        return module(sample, timestep, encoder_hidden_states=embeds, return_dict=False, **kwargs)[0]
    return call


def fast_enabled(device: torch.device) -> bool:
    return bool(settings.fast) and device.type == "cuda" and torch.cuda.is_available()


def _compiled_module(module: torch.nn.Module):
    by_mode = _compiled.setdefault(module, {})
    how = (settings.compile_backend, settings.compile_mode)
    compiled = by_mode.get(how)
    if compiled is None:
        import torch._dynamo

        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        module.to(memory_format=torch.channels_last)
        if settings.compile_backend == "inductor":
            compiled = torch.compile(module, mode=settings.compile_mode, dynamic=False)
        else:
            compiled = torch.compile(module, backend=settings.compile_backend, dynamic=False)
        by_mode[how] = compiled
    return compiled


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def unet_caller(module: torch.nn.Module, device: torch.device, label: str = "unet", allowed: bool = True,
                force: bool = False) -> UNetCall:
    """The function the denoiser calls for this UNet. `allowed=False` (e.g. low-VRAM streaming of
    weights, which a captured graph cannot follow) keeps it eager; `force` compiles on any device
    (tests use it with a light backend on the CPU)."""
    if not allowed or not (force or fast_enabled(device)):
        return eager_call(module)
    compiled = _compiled_module(module)

    def call(sample, timestep, embeds, **kwargs):
        sample = sample.contiguous(memory_format=torch.channels_last)
        key = (id(module), settings.compile_backend, settings.compile_mode, tuple(sample.shape),
               tuple(embeds.shape), sample.dtype, tuple(sorted(kwargs)))
        first = key not in _seen
        if first:
            _sync(device)
            start = time.perf_counter()
        torch.compiler.cudagraph_mark_step_begin()
        out = compiled(sample, timestep, encoder_hidden_states=embeds, return_dict=False, **kwargs)[0]
        if first:
            _sync(device)
            seconds = time.perf_counter() - start
            _seen[key] = seconds
            compile_seconds[f"{label} {tuple(sample.shape)} {sample.dtype}"] = seconds
            log.info("compiled %s for %s %s in %.1f s", label, tuple(sample.shape), sample.dtype, seconds)
        # CUDA-graph outputs are reused by the next replay: hand out a copy the caller owns.
        return out.clone()

    return call

"""LoRAs as peft adapters on the loaded base modules: no copy, no reload, exact off-switch.

A LoRA file (kohya/A1111 format, or diffusers/peft format) is parsed once with diffusers' own
converters. Each module gets one adapter per file version (the name comes from path + mtime);
`activate(module, part, loras)` then makes exactly the given LoRAs active with their strengths.
A ref without LoRAs (or with strength 0 only) runs with adapters disabled: the base output, bit
for bit. Adapters stay injected for reuse; beyond `MAX_ADAPTERS` per module the least recently
used is deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from nodes.diffusion.loading.state_dict import ModelLoadError, read_state_dict
from nodes.diffusion.types import SDXL, SDXL_REFINER, LoraRef

log = logging.getLogger("loom.lora")

MAX_ADAPTERS = 8
_STATE_ATTR = "_loom_loras"            # OrderedDict[adapter name, bool (has weights for this module)]
_PARSED_CACHE = 4
_parsed: OrderedDict[str, tuple[dict, dict | None]] = OrderedDict()
_lock = threading.RLock()

# diffusers' name for each part in a LoRA state dict.
PART_PREFIX = {"unet": "unet", "text_encoder": "text_encoder", "text_encoder_2": "text_encoder_2"}


def adapter_name(path: str | os.PathLike) -> str:
    """A stable adapter name for one version of one file (peft names may not contain dots)."""
    real = os.path.realpath(path)
    try:
        mtime = os.stat(real).st_mtime_ns
    except OSError:
        mtime = 0
    digest = hashlib.sha1(f"{real}@{mtime}".encode()).hexdigest()[:12]
    return f"loom_{digest}"


def parse(path: str | os.PathLike, family: str, unet_config: dict | None = None) -> tuple[dict, dict | None]:
    """(diffusers-format state dict with unet./text_encoder./text_encoder_2. keys, network alphas).

    SDXL kohya files may name UNet blocks the original way (input_blocks_4_1); diffusers maps them
    with the UNet's config (the loaded model's when given, else the family's)."""
    if family in (SDXL, SDXL_REFINER) and unet_config is None:
        from nodes.diffusion import skeletons

        unet_config = skeletons.component_config(family, "unet")
    layout = (tuple(unet_config.get("block_out_channels") or ()), unet_config.get("layers_per_block")) \
        if unet_config else None
    key = f"{adapter_name(path)}:{family}:{layout}"
    with _lock:
        if key in _parsed:
            _parsed.move_to_end(key)
            return _parsed[key]
    raw = read_state_dict(path)
    if family in (SDXL, SDXL_REFINER):
        from diffusers.loaders import StableDiffusionXLLoraLoaderMixin as Mixin
    else:
        from diffusers.loaders import StableDiffusionLoraLoaderMixin as Mixin
    try:
        state, alphas = Mixin.lora_state_dict(raw, unet_config=unet_config if family in (SDXL, SDXL_REFINER) else None)
    except (ValueError, KeyError) as e:
        raise ModelLoadError(f"{os.path.basename(path)} is not a LoRA Loom can read ({e})") from e
    state = {k: v for k, v in state.items()}
    if not any(k.split(".")[0] in PART_PREFIX.values() for k in state):
        raise ModelLoadError(f"{os.path.basename(path)} holds no UNet or text-encoder LoRA weights")
    with _lock:
        _parsed[key] = (state, alphas)
        while len(_parsed) > _PARSED_CACHE:
            _parsed.popitem(last=False)
    return state, alphas


def parts_in(path: str | os.PathLike, family: str) -> set[str]:
    """Which parts ("unet", "text_encoder", "text_encoder_2") a LoRA file has weights for."""
    state, _ = parse(path, family)
    return {p for p, prefix in PART_PREFIX.items() if any(k.startswith(prefix + ".") for k in state)}


def _load_adapter(module: Any, part: str, path: str, name: str, family: str) -> bool:
    """Inject the LoRA's `part` weights into `module` as adapter `name`; False if it has none."""
    state, alphas = parse(path, family, dict(module.config) if part == "unet" else None)
    prefix = PART_PREFIX[part]
    if not any(k.startswith(prefix + ".") for k in state):
        return False
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            if part == "unet":
                module.load_lora_adapter(dict(state), prefix=prefix, network_alphas=alphas, adapter_name=name)
            else:
                from diffusers.loaders.lora_base import _load_lora_into_text_encoder

                with _quiet_transformers():
                    _load_lora_into_text_encoder(state_dict=dict(state), network_alphas=alphas,
                                                 text_encoder=module, prefix=prefix, text_encoder_name=prefix,
                                                 adapter_name=name)
    except (ValueError, KeyError, RuntimeError) as e:
        raise ModelLoadError(f"LoRA {os.path.basename(path)} does not fit this {family} {part} ({e})") from e
    return True


@contextlib.contextmanager
def _quiet_transformers():
    """transformers prints a load report (listing other adapters as 'missing') and a progress bar."""
    from transformers.utils import logging as tlog

    level = tlog.get_verbosity()
    bar = tlog.is_progress_bar_enabled()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        tlog.set_verbosity(level)
        if bar:
            tlog.enable_progress_bar()


def _combine(loras: Iterable[LoraRef]) -> OrderedDict[str, tuple[str, float]]:
    """adapter name -> (path, total strength); the same file twice adds up (LoRAs are linear)."""
    out: OrderedDict[str, tuple[str, float]] = OrderedDict()
    for ref in loras:
        name = adapter_name(ref.path)
        path, strength = out.get(name, (ref.path, 0.0))
        out[name] = (path, strength + float(ref.strength))
    return OrderedDict((k, v) for k, v in out.items() if v[1] != 0.0)


def loaded_adapters(module: Any) -> list[str]:
    return list(getattr(module, _STATE_ATTR, {}) or {})


def activate(module: Any, part: str, loras: Iterable[LoraRef], family: str) -> list[str]:
    """Make exactly `loras` active on `module` (a UNet or text encoder); returns the active names."""
    from diffusers.utils.peft_utils import set_adapter_layers, set_weights_and_activate_adapters

    with _lock:
        state: OrderedDict[str, bool] = getattr(module, _STATE_ATTR, None) or OrderedDict()
        wanted = _combine(loras)
        for name, (path, _) in wanted.items():
            if name not in state:
                state[name] = _load_adapter(module, part, path, name, family)
                setattr(module, _STATE_ATTR, state)
            state.move_to_end(name)
        active = [n for n in wanted if state.get(n)]
        _evict(module, state, keep=set(wanted))
        setattr(module, _STATE_ATTR, state)
        if not any(state.values()):
            return []
        if active:
            set_weights_and_activate_adapters(module, active, [wanted[n][1] for n in active])
            set_adapter_layers(module, enabled=True)
        else:
            set_adapter_layers(module, enabled=False)
        return active


def _evict(module: Any, state: OrderedDict[str, bool], keep: set[str]) -> None:
    from diffusers.utils.peft_utils import delete_adapter_layers

    while len(state) > MAX_ADAPTERS:
        victim = next((n for n in state if n not in keep), None)
        if victim is None:
            return
        if state.pop(victim):
            if hasattr(module, "delete_adapters"):
                module.delete_adapters(victim)
            else:
                delete_adapter_layers(module, victim)

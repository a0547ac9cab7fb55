"""Modules from an inferred config and original-layout weights, through diffusers' own converters.

Modules are created on the meta device and the converted tensors are assigned in place, so no
random initialisation runs and no weight is copied twice. A key the config does not expect, or a
missing one, is an error that names the component: a config inferred wrongly never runs silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nodes.diffusion.loading.layout import CONTROLNET_PREFIX, UNET_PREFIX
from nodes.diffusion.loading.state_dict import ModelLoadError

_IGNORED_UNEXPECTED = ("position_ids", "logit_scale")


def _cast(state: Mapping, dtype: Any) -> dict:
    if dtype is None:
        return dict(state)
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}


def _empty(factory):
    from accelerate import init_empty_weights

    with init_empty_weights():
        return factory()


def assign_weights(model: Any, state: Mapping, what: str, dtype: Any = None) -> Any:
    """Load `state` into a meta-initialised model strictly; returns the model in eval mode."""
    try:
        result = model.load_state_dict(_cast(state, dtype), strict=False, assign=True)
    except RuntimeError as e:  # shape mismatches
        raise ModelLoadError(f"{what}: the weights do not fit the inferred config: {str(e)[:600]}") from e
    unexpected = [k for k in result.unexpected_keys if not k.endswith(_IGNORED_UNEXPECTED)]
    if result.missing_keys or unexpected:
        raise ModelLoadError(
            f"{what}: the weights do not fit the inferred config ({len(result.missing_keys)} missing, e.g. "
            f"{result.missing_keys[:3]}; {len(unexpected)} unexpected, e.g. {unexpected[:3]})")
    leftover = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if leftover:
        raise ModelLoadError(f"{what}: parameters left without weights: {leftover[:3]}")
    model.eval()
    model.requires_grad_(False)
    return model


def build_unet(state: Mapping, config: dict, dtype: Any = None, what: str = "UNet"):
    """`state`: original-layout UNet keys without the `model.diffusion_model.` prefix."""
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    model = _empty(lambda: UNet2DConditionModel.from_config(config))
    converted = convert_ldm_unet_checkpoint({UNET_PREFIX + k: v for k, v in state.items()}, config)
    return assign_weights(model, converted, what, dtype)


def build_vae(state: Mapping, config: dict, dtype: Any = None, what: str = "VAE"):
    """`state`: original-layout VAE keys without the `first_stage_model.` prefix."""
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    model = _empty(lambda: AutoencoderKL.from_config(config))
    converted = convert_ldm_vae_checkpoint({"first_stage_model." + k: v for k, v in state.items()}, config)
    return assign_weights(model, converted, what, dtype)


def build_controlnet(state: Mapping, config: dict, dtype: Any = None, what: str = "ControlNet"):
    """`state`: original-layout ControlNet keys without the `control_model.` prefix."""
    from diffusers import ControlNetModel
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    # diffusers' converter expects the hint encoder's last conv at index 14 (the released size,
    # 6 inner convs); move it there when the model has another number of inner convs.
    hint = sorted({int(k.split(".")[1]) for k in state if k.startswith("input_hint_block.")})
    state = dict(state)
    if hint and hint[-1] != 14:
        for suffix in ("weight", "bias"):
            state[f"input_hint_block.14.{suffix}"] = state.pop(f"input_hint_block.{hint[-1]}.{suffix}")
    model = _empty(lambda: ControlNetModel.from_config(config))
    converted = convert_controlnet_checkpoint({CONTROLNET_PREFIX + k: v for k, v in state.items()}, config)
    return assign_weights(model, converted, what, dtype)


def build_text_encoder(state: Mapping, config_kwargs: dict, class_name: str, dtype: Any = None,
                       what: str = "text encoder"):
    """`state`: transformers-layout keys, with or without the `text_model.` prefix."""
    import transformers
    from transformers import CLIPTextConfig

    cls = getattr(transformers, class_name)
    config = CLIPTextConfig(**config_kwargs)
    model = _empty(lambda: cls(config))
    keep_prefix = hasattr(model, "text_model")
    canonical = {}
    for key, value in state.items():
        key = key.removeprefix("text_model.")
        if keep_prefix and key != "text_projection.weight":
            key = "text_model." + key
        canonical[key] = value
    if not keep_prefix:
        canonical.pop("text_projection.weight", None)  # CLIP-L / OpenCLIP-H: the projection is unused
    return assign_weights(model, canonical, what, dtype)


def open_clip_to_hf(state: Mapping, prefix: str, hidden_size: int) -> dict:
    """OpenCLIP text tower under `prefix` -> transformers keys, with diffusers' converter."""
    from types import SimpleNamespace

    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint

    fake_model = SimpleNamespace(config=SimpleNamespace(hidden_size=hidden_size))
    return convert_open_clip_checkpoint(fake_model, dict(state), prefix=prefix)

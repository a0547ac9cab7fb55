"""Standalone component files: UNet (diffusion model), VAE, text encoders, ControlNet.

Each may come in the original layout (with or without its checkpoint prefix) or in diffusers'
layout; diffusers-layout files are mapped to the original layout on shape-only tensors so the same
inference reads them, then loaded directly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nodes.diffusion import skeletons
from nodes.diffusion.loading import detect, infer
from nodes.diffusion.loading.build import (
    _empty,
    assign_weights,
    build_controlnet,
    build_text_encoder,
    build_unet,
    build_vae,
    open_clip_to_hf,
)
from nodes.diffusion.loading.checkpoint import ModelInfo, TextEncoderInfo
from nodes.diffusion.loading.layout import HF, OPEN_CLIP
from nodes.diffusion.loading.ldm_export import controlnet_to_ldm, unet_to_ldm, vae_to_ldm
from nodes.diffusion.loading.state_dict import ModelLoadError
from nodes.diffusion.loading.weights import WeightFile, meta_tensors, shapes_of
from nodes.diffusion.types import SD1, SD2, SDXL


def _diffusers_unet_ldm_shapes(shapes: dict, controlnet: bool = False) -> dict:
    n = infer._count(shapes, "down_blocks.{}.")
    layers = infer._count(shapes, "down_blocks.0.resnets.{}.")
    config = {"block_out_channels": [0] * n, "layers_per_block": layers}
    convert = controlnet_to_ldm if controlnet else unet_to_ldm
    return shapes_of(convert(meta_tensors(shapes), config, prefix=""))


def _refuse(weights: WeightFile, wanted: str, folder: str) -> ModelLoadError:
    return ModelLoadError(f"{weights.name} is not {wanted}: found {detect.what_is_it(weights.keys)} "
                          f"({weights.describe()}). {folder}")


# -- UNet --------------------------------------------------------------------------------------
def inspect_unet_file(weights: WeightFile) -> tuple[ModelInfo, str, str]:
    """(info, layout, prefix) of a lone diffusion model (or a checkpoint's UNet)."""
    layout = detect.unet_layout(weights.keys)
    if layout is None:
        raise _refuse(weights, "a Stable Diffusion UNet", "Loom loads SD1/SD2/SDXL UNets.")
    kind, prefix = layout
    shapes = weights.strip(prefix)
    ldm = _diffusers_unet_ldm_shapes(shapes) if kind == "diffusers" else shapes
    try:
        family, prediction = infer.detect_unet_family(
            ldm, None, get=(lambda k: weights.get(prefix + k)) if kind == "ldm" else None)
        config = infer.infer_unet_config(ldm, family, prediction)
    except (KeyError, ValueError) as e:
        raise ModelLoadError(f"{weights.name}: the UNet layout is not one Loom supports ({e})") from e
    return ModelInfo(weights.path, family, prediction, unet_config=config), kind, prefix


def load_unet_file(weights: WeightFile, info: ModelInfo, kind: str, prefix: str, dtype: Any = None):
    what = f"{weights.name}: UNet"
    if kind == "ldm":
        return build_unet(weights.tensors(prefix), info.unet_config, dtype, what)
    from diffusers import UNet2DConditionModel

    model = _empty(lambda: UNet2DConditionModel.from_config(info.unet_config))
    return assign_weights(model, weights.tensors(prefix), what, dtype)


# -- VAE ---------------------------------------------------------------------------------------
def vae_family_hint(path: str | os.PathLike) -> str:
    """Which latent scaling a lone VAE file uses: SD and SDXL VAEs share one architecture."""
    return SDXL if "xl" in Path(path).name.lower() else SD1


def load_vae_file(weights: WeightFile, family: str | None = None, dtype: Any = None) -> tuple[Any, dict]:
    layout = detect.vae_layout(weights.keys)
    if layout is None:
        raise _refuse(weights, "a VAE", "Loom loads AutoencoderKL VAEs (SD1/SD2/SDXL).")
    kind, prefix = layout
    family = family or vae_family_hint(weights.path)
    shapes = weights.strip(prefix)
    if kind == "diffusers":
        n = infer._count(shapes, "decoder.up_blocks.{}.")
        shapes = shapes_of(vae_to_ldm(meta_tensors(shapes), {"up_block_types": [0] * n}, prefix=""))
    try:
        config = infer.infer_vae_config(shapes, family)
    except (KeyError, ValueError) as e:
        raise ModelLoadError(f"{weights.name}: the VAE layout is not one Loom supports ({e})") from e
    if kind == "ldm":
        return build_vae(weights.tensors(prefix), config, dtype, f"{weights.name}: VAE"), config
    from diffusers import AutoencoderKL

    model = _empty(lambda: AutoencoderKL.from_config(config))
    return assign_weights(model, weights.tensors(prefix), f"{weights.name}: VAE", dtype), config


# -- text encoders -----------------------------------------------------------------------------
def inspect_text_encoder_file(weights: WeightFile) -> TextEncoderInfo:
    """A lone CLIP text encoder: which one (L, H or G) and its config."""
    layout = detect.standalone_text_layout(weights.keys)
    if layout is None:
        raise _refuse(weights, "a CLIP text encoder", "Loom loads CLIP-L, OpenCLIP-H and OpenCLIP-G encoders.")
    kind, prefix = layout
    if kind == "open_clip":
        shapes = infer.open_clip_text_shapes(weights.shapes, prefix)
    else:
        shapes = {k.removeprefix("text_model."): v for k, v in weights.strip(prefix).items()}
    hidden = shapes["embeddings.token_embedding.weight"][1]
    projection = "text_projection.weight" in shapes
    if hidden == 1280 or (projection and hidden not in (768, 1024)):
        name, component, family = "clip_g", "text_encoder_2", SDXL
    elif hidden == 1024 or kind == "open_clip":
        name, component, family = "clip_h", "text_encoder", SD2
    else:
        name, component, family = "clip_l", "text_encoder", SD1
    base = skeletons.component_config(family, component)
    config, _ = infer.infer_text_config(shapes, base, open_clip=kind == "open_clip" or name != "clip_l")
    class_name = "CLIPTextModelWithProjection" if name == "clip_g" else "CLIPTextModel"
    return TextEncoderInfo(component, name, config, class_name, prefix, OPEN_CLIP if kind == "open_clip" else HF)


def load_text_encoder_file(weights: WeightFile, info: TextEncoderInfo, dtype: Any = None):
    if info.layout == OPEN_CLIP:
        state = open_clip_to_hf(weights.tensors(info.prefix, keep_prefix=True), info.prefix, info.config["hidden_size"])
    else:
        state = weights.tensors(info.prefix)
    return build_text_encoder(state, info.config, info.class_name, dtype, f"{weights.name}: {info.clip_name}")


# -- ControlNet --------------------------------------------------------------------------------
def load_controlnet(path: str | os.PathLike, dtype: Any = None, allow_pickle: bool | None = None) -> tuple[Any, dict]:
    """An SD ControlNet: a diffusers folder, or a single file (original `control_model.*` or diffusers layout)."""
    path = Path(path)
    if path.is_dir():
        from diffusers import ControlNetModel

        if not (path / "config.json").exists():
            raise ModelLoadError(f"{path.name} is not a diffusers ControlNet folder (no config.json)")
        try:
            model = ControlNetModel.from_pretrained(path, torch_dtype=dtype, local_files_only=True)
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"{path.name}: could not load the ControlNet ({e})") from e
        model.eval()
        model.requires_grad_(False)
        return model, dict(model.config)
    weights = WeightFile(path, allow_pickle)
    layout = detect.controlnet_layout(weights.keys)
    if layout is None:
        raise _refuse(weights, "a ControlNet", "Loom loads SD ControlNets (original or diffusers layout).")
    kind, prefix = layout
    shapes = weights.strip(prefix)
    ldm = _diffusers_unet_ldm_shapes(shapes, controlnet=True) if kind == "diffusers" else shapes
    family = SD2 if any(len(s) == 2 for k, s in ldm.items() if k.endswith(".1.proj_in.weight")) else SD1
    try:
        config = infer.infer_controlnet_config(ldm, family)
    except (KeyError, ValueError, IndexError) as e:
        raise ModelLoadError(f"{weights.name}: the ControlNet layout is not one Loom supports ({e})") from e
    what = f"{weights.name}: ControlNet"
    if kind == "ldm":
        return build_controlnet(weights.tensors(prefix), config, dtype, what), config
    from diffusers import ControlNetModel

    model = _empty(lambda: ControlNetModel.from_config(config))
    return assign_weights(model, weights.tensors(prefix), what, dtype), config

"""Whole models: single-file checkpoints (LDM/SGM layout) and diffusers folders.

Two steps, so callers can cache and reload parts: `inspect_*` reads keys and shapes only and
returns a `ModelInfo` (family, prediction type, one inferred config per component); `load_*`
builds the requested components from it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodes.diffusion import skeletons
from nodes.diffusion.loading import detect, infer
from nodes.diffusion.loading.build import build_text_encoder, build_unet, build_vae, open_clip_to_hf
from nodes.diffusion.loading.layout import HF, OPEN_CLIP, TEXT_SLOTS, UNET_PREFIX, TextSlot
from nodes.diffusion.loading.state_dict import ModelLoadError
from nodes.diffusion.loading.weights import WeightFile
from nodes.diffusion.types import SD1, SD1_INPAINT, SD2, SDXL, SDXL_REFINER

SUPPORTED = "SD1.x, SD2.x, SDXL (base, refiner) and SD1 inpainting"


@dataclass
class TextEncoderInfo:
    component: str            # "text_encoder" | "text_encoder_2"
    clip_name: str            # "clip_l" | "clip_h" | "clip_g"
    config: dict              # CLIPTextConfig keyword arguments
    class_name: str           # "CLIPTextModel" | "CLIPTextModelWithProjection"
    prefix: str = ""          # where its keys sit in the file
    layout: str = HF
    layers_missing: int = 0   # SD2 encoders saved without their last layer (diffusers keeps 23 of 24)


@dataclass
class ModelInfo:
    path: Path
    family: str
    prediction_type: str = "epsilon"
    source: str = "single_file"          # "single_file" | "diffusers"
    unet_config: dict | None = None
    vae_config: dict | None = None
    vae_prefix: str = ""
    text: list[TextEncoderInfo] = field(default_factory=list)

    def components(self) -> list[str]:
        names = [n for n, c in (("unet", self.unet_config), ("vae", self.vae_config)) if c is not None]
        return names + [t.component for t in self.text]

    def text_info(self, component: str) -> TextEncoderInfo:
        return next(t for t in self.text if t.component == component)


def _text_info(slot: TextSlot, component: str, shapes: dict, family: str) -> TextEncoderInfo:
    base = skeletons.component_config(family, component)
    config, class_name = infer.infer_text_config(shapes, base, open_clip=slot.layout == OPEN_CLIP)
    class_name = "CLIPTextModelWithProjection" if slot.name == "clip_g" else "CLIPTextModel"
    return TextEncoderInfo(component, slot.name, config, class_name, slot.prefix, slot.layout)


def text_shapes(weights: WeightFile, slot: TextSlot) -> dict | None:
    """HF-layout shapes (no `text_model.`) of the text encoder in `slot`, or None if absent."""
    if slot.layout == OPEN_CLIP:
        shapes = infer.open_clip_text_shapes(weights.shapes, slot.prefix)
        return shapes if "embeddings.token_embedding.weight" in shapes else None
    shapes = {k.removeprefix("text_model."): s for k, s in weights.strip(slot.prefix).items()}
    return shapes if "embeddings.token_embedding.weight" in shapes else None


def inspect_single_file(weights: WeightFile) -> ModelInfo:
    """Family and component configs of an original-layout checkpoint, from shapes only."""
    keys = weights.keys
    layout = detect.unet_layout(keys)
    if layout is None or layout[1] != UNET_PREFIX:
        found = detect.what_is_it(keys)
        hint = ""
        if found.startswith("a UNet"):
            hint = " A lone diffusion model goes in models/diffusion_models (UNETLoader)."
        elif found in ("a LoRA", "a VAE", "a ControlNet", "a textual-inversion embedding"):
            hint = f" It is {found}: load it with the matching loader, not as a checkpoint."
        raise ModelLoadError(f"{weights.name} is not a checkpoint Loom can load ({SUPPORTED}): found {found} "
                             f"({weights.describe()}).{hint}")
    unet_shapes = weights.strip(UNET_PREFIX)
    prefixes = detect.text_prefixes(keys)
    try:
        family, prediction = infer.detect_unet_family(unet_shapes, prefixes, get=lambda k: weights.get(UNET_PREFIX + k))
        if "v_pred" in keys:  # SGM checkpoints mark v-prediction with an empty `v_pred` tensor
            prediction = "v_prediction"
        info = ModelInfo(weights.path, family, prediction)
        info.unet_config = infer.infer_unet_config(unet_shapes, family, prediction)
    except (KeyError, ValueError) as e:
        raise ModelLoadError(f"{weights.name}: the UNet layout is not one Loom supports ({e})") from e
    vae = detect.vae_layout(keys)
    if vae and vae[0] == "ldm" and vae[1]:
        info.vae_prefix = vae[1]
        info.vae_config = infer.infer_vae_config(weights.strip(vae[1]), family)
    slots = TEXT_SLOTS[family]
    if family == SD2 and slots[0].prefix not in prefixes and "conditioner.embedders.0.model." in prefixes:
        slots = (TextSlot("conditioner.embedders.0.model.", OPEN_CLIP, "clip_h"),)  # SD2 saved in SGM format
    for slot, component in zip(slots, skeletons.TEXT_COMPONENTS[family]):
        shapes = text_shapes(weights, slot)
        if shapes is not None:
            info.text.append(_text_info(slot, component, shapes, family))
    return info


def load_single_file(weights: WeightFile, info: ModelInfo, names: list[str], dtype: Any = None) -> dict[str, Any]:
    """Build the named components ("unet", "vae", "text_encoder", "text_encoder_2") of a checkpoint."""
    out = {}
    for name in names:
        what = f"{weights.name}: {name}"
        if name == "unet":
            out[name] = build_unet(weights.tensors(UNET_PREFIX), info.unet_config, dtype, what)
        elif name == "vae":
            out[name] = build_vae(weights.tensors(info.vae_prefix), info.vae_config, dtype, what)
        else:
            text = info.text_info(name)
            if text.layout == OPEN_CLIP:
                state = open_clip_to_hf(weights.tensors(text.prefix, keep_prefix=True), text.prefix,
                                        text.config["hidden_size"])
            else:
                state = weights.tensors(text.prefix)
            out[name] = build_text_encoder(state, text.config, text.class_name, dtype, what)
    return out


# -- diffusers folders ------------------------------------------------------------------------------
def _family_from_unet_config(config: dict, has_text_encoder_1: bool) -> str:
    if config.get("addition_embed_type") == "text_time":
        return SDXL if has_text_encoder_1 else SDXL_REFINER
    if config.get("use_linear_projection") or config.get("cross_attention_dim") == 1024:
        return SD2
    return SD1_INPAINT if config.get("in_channels") == 9 else SD1


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path} could not be read as JSON ({e})") from e


def inspect_diffusers_folder(path: str | os.PathLike) -> ModelInfo:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"diffusers folder not found: {path}")
    index_path = path / "model_index.json"
    if not index_path.exists():
        raise ModelLoadError(f"{path.name} is not a diffusers model folder (no model_index.json)")
    index = _read_json(index_path)
    pipeline = index.get("_class_name", "?")
    unet_entry = index.get("unet") or [None, None]
    if unet_entry[1] != "UNet2DConditionModel":
        raise ModelLoadError(f"{path.name} is a {pipeline} folder without a UNet2DConditionModel; Loom loads "
                             f"{SUPPORTED}")
    unet_config = _read_json(path / "unet" / "config.json")
    has_te1 = bool((index.get("text_encoder") or [None, None])[1])
    family = _family_from_unet_config(unet_config, has_te1)
    scheduler = path / "scheduler" / "scheduler_config.json"
    prediction = _read_json(scheduler).get("prediction_type", "epsilon") if scheduler.exists() else "epsilon"
    info = ModelInfo(path, family, prediction, source="diffusers", unet_config=unet_config)
    if (index.get("vae") or [None, None])[1] and (path / "vae" / "config.json").exists():
        info.vae_config = _read_json(path / "vae" / "config.json")
    for slot, component in zip(TEXT_SLOTS[family], skeletons.TEXT_COMPONENTS[family]):
        config_path = path / component / "config.json"
        if not (index.get(component) or [None, None])[1] or not config_path.exists():
            continue
        config = _read_json(config_path)
        class_name = (config.get("architectures") or ["CLIPTextModel"])[0]
        missing = 1 if family == SD2 and config.get("hidden_size") == 1024 and config.get("num_hidden_layers") == 23 else 0
        info.text.append(TextEncoderInfo(component, slot.name, config, class_name, layers_missing=missing))
    return info


def load_diffusers_folder(info: ModelInfo, names: list[str], dtype: Any = None) -> dict[str, Any]:
    import transformers
    from diffusers import AutoencoderKL, UNet2DConditionModel

    out = {}
    for name in names:
        try:
            if name == "unet":
                model = UNet2DConditionModel.from_pretrained(info.path, subfolder="unet", torch_dtype=dtype,
                                                             local_files_only=True)
            elif name == "vae":
                model = AutoencoderKL.from_pretrained(info.path, subfolder="vae", torch_dtype=dtype,
                                                      local_files_only=True)
            else:
                cls = getattr(transformers, info.text_info(name).class_name)
                model = cls.from_pretrained(info.path / name, torch_dtype=dtype, local_files_only=True)
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"{info.path.name}: could not load {name} ({e})") from e
        model.eval()
        model.requires_grad_(False)
        out[name] = model
    return out


def folder_tokenizer(info: ModelInfo, component: str):
    """The folder's own tokenizer when it has one, else the family's (same CLIP vocabulary)."""
    name = "tokenizer" if component == "text_encoder" else "tokenizer_2"
    folder = info.path / name
    if info.source == "diffusers" and any((folder / f).exists() for f in ("tokenizer.json", "vocab.json")):
        from transformers import CLIPTokenizer

        try:
            return CLIPTokenizer.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError):
            pass
    return skeletons.family_tokenizer(info.family, component)

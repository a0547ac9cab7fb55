"""diffusers components -> the original single-file (LDM / SGM) layout.

diffusers only converts the other way (`single_file_utils.convert_ldm_*`). This is the inverse,
driven by each component's config so any block count and layers-per-block works: the tests'
tiny models and real SD1/SD2/SDXL alike. Every key is mapped or the export fails: nothing is
dropped silently.

    sd = diffusers_to_ldm_state_dict(unet=unet, vae=vae, text_encoders=[te], family="sd1")
    save_single_file("model.safetensors", unet=unet, vae=vae, text_encoders=[te])
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from nodes.diffusion.loading.layout import CONTROLNET_PREFIX, HF, OPEN_CLIP, TEXT_SLOTS, UNET_PREFIX
from nodes.diffusion.types import SD1, SD1_INPAINT, SD2, SDXL, SDXL_REFINER

_RESNET_RENAMES = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_UNET_FIXED = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "class_embedding.linear_1": "label_emb.0.0",
    "class_embedding.linear_2": "label_emb.0.2",
}
_VAE_ATTN_RENAMES = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _state_and_config(component: Any) -> tuple[dict, dict]:
    """A module with `.config`, or a `(state_dict, config)` pair -> (state_dict, config dict)."""
    if isinstance(component, tuple):
        state, config = component
        return dict(state), dict(config or {})
    config = getattr(component, "config", None) or {}
    state = component.state_dict()
    # A module with peft adapters exports its base weights: LoRAs are not part of a checkpoint.
    if any(".base_layer." in k for k in state):
        state = {k.replace(".base_layer.", "."): v for k, v in state.items() if ".lora_" not in k}
    config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return state, config


def _split(rest: str) -> tuple[str, str]:
    head, _, tail = rest.partition(".")
    return head, tail


def _resnet(rest: str) -> str:
    head, tail = _split(rest)
    return f"{_RESNET_RENAMES.get(head, head)}.{tail}"


class _UNetIndex:
    """Where each diffusers block sits among LDM's input_blocks / output_blocks."""

    def __init__(self, config: dict, keys: Sequence[str]):
        n = len(config["block_out_channels"])
        per_block = config.get("layers_per_block", 2)
        layers = list(per_block) if isinstance(per_block, (list, tuple)) else [per_block] * n
        self.down_res: dict[tuple[int, int], int] = {}
        self.down_sample: dict[int, int] = {}
        idx = 1
        for i in range(n):
            for j in range(layers[i]):
                self.down_res[i, j] = idx
                idx += 1
            if i < n - 1:
                self.down_sample[i] = idx
                idx += 1
        self.up_res: dict[tuple[int, int], int] = {}
        self.up_last: dict[int, int] = {}
        idx = 0
        for i, count in enumerate(reversed(layers)):
            for j in range(count + 1):
                self.up_res[i, j] = idx
                idx += 1
            self.up_last[i] = idx - 1
        self.up_has_attn = {i for i in range(n) if any(k.startswith(f"up_blocks.{i}.attentions.") for k in keys)}


def _unet_body_key(key: str, index: _UNetIndex) -> str | None:
    """Map the keys UNet and ControlNet share (down path, mid block, embeddings); None if not one."""
    for src, dst in _UNET_FIXED.items():
        if key.startswith(src + "."):
            return dst + key[len(src):]
    if m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        return f"input_blocks.{index.down_res[int(m[1]), int(m[2])]}.0.{_resnet(m[3])}"
    if m := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
        return f"input_blocks.{index.down_res[int(m[1]), int(m[2])]}.1.{m[3]}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"input_blocks.{index.down_sample[int(m[1])]}.0.op.{m[2]}"
    if m := re.match(r"mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
    if m := re.match(r"mid_block\.attentions\.0\.(.+)", key):
        return f"middle_block.1.{m[1]}"
    return None


def unet_to_ldm(state: Mapping, config: dict, prefix: str = UNET_PREFIX) -> dict:
    index = _UNetIndex(config, list(state))
    out = {}
    for key, value in state.items():
        new = _unet_body_key(key, index)
        if new is None:
            if m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
                new = f"output_blocks.{index.up_res[int(m[1]), int(m[2])]}.0.{_resnet(m[3])}"
            elif m := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
                new = f"output_blocks.{index.up_res[int(m[1]), int(m[2])]}.1.{m[3]}"
            elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
                i = int(m[1])
                new = f"output_blocks.{index.up_last[i]}.{2 if i in index.up_has_attn else 1}.conv.{m[2]}"
            else:
                raise ValueError(f"UNet key {key!r} has no place in the original layout")
        out[prefix + new] = value
    return out


def controlnet_to_ldm(state: Mapping, config: dict, prefix: str = CONTROLNET_PREFIX) -> dict:
    index = _UNetIndex(config, list(state))
    n_blocks = len({k.split(".")[2] for k in state if k.startswith("controlnet_cond_embedding.blocks.")})
    out = {}
    for key, value in state.items():
        new = _unet_body_key(key, index)
        if new is None:
            if m := re.match(r"controlnet_down_blocks\.(\d+)\.(.+)", key):
                new = f"zero_convs.{m[1]}.0.{m[2]}"
            elif m := re.match(r"controlnet_mid_block\.(.+)", key):
                new = f"middle_block_out.0.{m[1]}"
            elif m := re.match(r"controlnet_cond_embedding\.conv_in\.(.+)", key):
                new = f"input_hint_block.0.{m[1]}"
            elif m := re.match(r"controlnet_cond_embedding\.blocks\.(\d+)\.(.+)", key):
                new = f"input_hint_block.{2 * int(m[1]) + 2}.{m[2]}"
            elif m := re.match(r"controlnet_cond_embedding\.conv_out\.(.+)", key):
                new = f"input_hint_block.{2 * n_blocks + 2}.{m[1]}"
            else:
                raise ValueError(f"ControlNet key {key!r} has no place in the original layout")
        out[prefix + new] = value
    return out


def vae_to_ldm(state: Mapping, config: dict, prefix: str = "first_stage_model.") -> dict:
    n_up = len(config.get("up_block_types") or config.get("block_out_channels") or ()) or (
        1 + max(int(k.split(".")[2]) for k in state if k.startswith("decoder.up_blocks.")))
    out = {}
    for key, value in state.items():
        new = None
        if m := re.match(r"(encoder|decoder)\.(conv_in|conv_out)\.(.+)", key):
            new = key
        elif m := re.match(r"(encoder|decoder)\.conv_norm_out\.(.+)", key):
            new = f"{m[1]}.norm_out.{m[2]}"
        elif re.match(r"(post_)?quant_conv\.", key):
            new = key
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            new = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = f"decoder.up.{n_up - 1 - int(m[1])}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            new = f"decoder.up.{n_up - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", key):
            new = f"{m[1]}.mid.attn_1.{_VAE_ATTN_RENAMES.get(m[2], m[2])}.{m[3]}"
            if m[3] == "weight" and value.ndim == 2:  # LDM's attention projections are 1x1 convs
                value = value.reshape(*value.shape, 1, 1)
        if new is None:
            raise ValueError(f"VAE key {key!r} has no place in the original layout")
        out[prefix + new] = value
    return out


def _text_canonical(state: Mapping) -> dict:
    """transformers-5 CLIPTextModel is flattened; CLIPTextModelWithProjection keeps `text_model.`."""
    return {k.removeprefix("text_model."): v for k, v in state.items()}


def text_encoder_to_ldm(state: Mapping, prefix: str, layout: str) -> dict:
    import torch

    state = _text_canonical(state)
    out = {}
    if layout == HF:
        for key, value in state.items():
            if key == "embeddings.position_ids":
                continue
            out[prefix + ("text_projection.weight" if key == "text_projection.weight" else "text_model." + key)] = value
        positions = state["embeddings.position_embedding.weight"].shape[0]
        out[prefix + "text_model.embeddings.position_ids"] = torch.arange(positions, dtype=torch.int64)[None]
        return out
    if layout != OPEN_CLIP:
        raise ValueError(f"unknown text encoder layout {layout!r}")
    fused: dict[tuple[int, str], dict[str, Any]] = {}
    for key, value in state.items():
        if key == "embeddings.position_ids":
            continue
        if key == "embeddings.token_embedding.weight":
            out[prefix + "token_embedding.weight"] = value
        elif key == "embeddings.position_embedding.weight":
            out[prefix + "positional_embedding"] = value
        elif key.startswith("final_layer_norm."):
            out[prefix + "ln_final." + key.split(".", 1)[1]] = value
        elif key == "text_projection.weight":
            out[prefix + "text_projection"] = value.T.contiguous()
        elif m := re.match(r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", key):
            fused.setdefault((int(m[1]), m[3]), {})[m[2]] = value
        elif m := re.match(r"encoder\.layers\.(\d+)\.(.+)", key):
            rest = (m[2].replace("self_attn.out_proj", "attn.out_proj").replace("layer_norm1", "ln_1")
                    .replace("layer_norm2", "ln_2").replace("mlp.fc1", "mlp.c_fc").replace("mlp.fc2", "mlp.c_proj"))
            out[f"{prefix}transformer.resblocks.{m[1]}.{rest}"] = value
        else:
            raise ValueError(f"text encoder key {key!r} has no place in the OpenCLIP layout")
    for (layer, kind), parts in fused.items():
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"text encoder layer {layer} lacks some of q/k/v {kind}")
        out[f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


def guess_family(unet_config: dict | None, n_text_encoders: int) -> str:
    if unet_config:
        if unet_config.get("addition_embed_type") == "text_time":
            return SDXL_REFINER if n_text_encoders == 1 else SDXL
        if unet_config.get("in_channels") == 9:
            return SD1_INPAINT
        return SD2 if unet_config.get("use_linear_projection") else SD1
    return {2: SDXL}.get(n_text_encoders, SD1)


def diffusers_to_ldm_state_dict(unet: Any = None, vae: Any = None, text_encoders: Sequence[Any] = (),
                                controlnet: Any = None, family: str | None = None) -> dict:
    """The original single-file state dict of the given diffusers components.

    Each component is a module (with `.config`) or a `(state_dict, config)` pair. `family` picks the
    text-encoder layout (SD1: CLIP-L; SD2: OpenCLIP-H; SDXL: CLIP-L + OpenCLIP-G; refiner: OpenCLIP-G);
    it is guessed from the UNet config when omitted. A ControlNet goes under `control_model.`.
    """
    out: dict = {}
    unet_state = unet_config = None
    if unet is not None:
        unet_state, unet_config = _state_and_config(unet)
    family = family or guess_family(unet_config, len(text_encoders))
    if unet_state is not None:
        out.update(unet_to_ldm(unet_state, unet_config))
    if vae is not None:
        out.update(vae_to_ldm(*_state_and_config(vae)))
    if text_encoders:
        slots = TEXT_SLOTS[family]
        if len(text_encoders) != len(slots):
            raise ValueError(f"family {family} has {len(slots)} text encoder(s), got {len(text_encoders)}")
        for slot, encoder in zip(slots, text_encoders):
            out.update(text_encoder_to_ldm(_state_and_config(encoder)[0], slot.prefix, slot.layout))
    if controlnet is not None:
        out.update(controlnet_to_ldm(*_state_and_config(controlnet)))
    return out


def save_single_file(path: str | os.PathLike, unet: Any = None, vae: Any = None, text_encoders: Sequence[Any] = (),
                     controlnet: Any = None, family: str | None = None, dtype: Any = None,
                     metadata: dict[str, str] | None = None) -> dict:
    """Write components as one original-layout `.safetensors` file; returns the state dict written.

    `dtype` (e.g. torch.float16) casts floating tensors, as released checkpoints usually are.
    """
    from safetensors.torch import save_file

    state = diffusers_to_ldm_state_dict(unet, vae, text_encoders, controlnet, family)
    tensors = {}
    for key, value in state.items():
        value = value.detach().to("cpu")
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        tensors[key] = value.contiguous().clone()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file(tensors, os.fspath(path), metadata={"format": "pt", **(metadata or {})})
    return tensors

"""What a weight file holds, from its keys alone: which parts, in which layout, of which family.

Everything is normalised to the original (LDM) layout before configs are inferred, so one inference
path serves single files, standalone components in either layout, and diffusers folders.
"""

from __future__ import annotations

from collections.abc import Iterable

from nodes.diffusion.loading.layout import ALL_TEXT_PREFIXES, CONTROLNET_PREFIX, UNET_PREFIX, VAE_PREFIXES

# Model families Loom does not run, by a key only they have (with or without a wrapper prefix).
_OTHER_FAMILIES = (
    ("Flux", ("double_blocks.0.img_attn.norm.key_norm.scale", "transformer_blocks.0.attn.norm_added_k.weight",
              "single_transformer_blocks.0.attn.norm_k.weight")),
    ("Stable Diffusion 3", ("joint_blocks.0.context_block.attn.qkv.weight",
                            "transformer_blocks.0.attn.add_q_proj.weight")),
    ("Stable Cascade", ("clf.1.weight", "down_blocks.1.0.channelwise.0.weight")),
    ("AuraFlow", ("double_layers.0.attn.w1q.weight",)),
    ("Hunyuan-DiT", ("mlp_t5.0.weight",)),
    ("PixArt", ("t_block.1.weight", "adaln_single.emb.timestep_embedder.linear_1.weight")),
    ("Mochi", ("t5_yproj.weight",)),
    ("Wan", ("head.modulation",)),
    ("Lumina", ("cap_embedder.0.weight",)),
    ("HiDream", ("double_stream_blocks.0.block.adaLN_modulation.1.bias",)),
    ("Stable Audio", ("transformer.rotary_pos_emb.inv_freq",)),
    ("T5 text encoder", ("encoder.block.0.layer.0.SelfAttention.q.weight", "shared.weight")),
)


def other_family(keys: Iterable[str]) -> str | None:
    """The name of a known unsupported family whose marker key is present, else None."""
    keys = set(keys)
    stripped = {k.removeprefix(UNET_PREFIX) for k in keys}
    for name, markers in _OTHER_FAMILIES:
        if any(m in keys or m in stripped for m in markers):
            return name
    return None


def unet_layout(keys: set[str]) -> tuple[str, str] | None:
    """(layout, prefix) of the UNet in a file: ("ldm", "model.diffusion_model."), ("ldm", ""), ("diffusers", "")."""
    if UNET_PREFIX + "input_blocks.0.0.weight" in keys:
        return "ldm", UNET_PREFIX
    if "input_blocks.0.0.weight" in keys and "time_embed.0.weight" in keys and "input_hint_block.0.weight" not in keys:
        return "ldm", ""
    if "conv_in.weight" in keys and "down_blocks.0.resnets.0.conv1.weight" in keys and "time_embedding.linear_1.weight" in keys:
        if not any(k.startswith("controlnet_") for k in keys):
            return "diffusers", ""
    return None


def vae_layout(keys: set[str]) -> tuple[str, str] | None:
    for prefix in VAE_PREFIXES:
        if prefix + "encoder.conv_in.weight" in keys or prefix + "decoder.conv_in.weight" in keys:
            return "ldm", prefix
    if "decoder.up.0.block.0.conv1.weight" in keys or "encoder.down.0.block.0.conv1.weight" in keys:
        return "ldm", ""
    if "decoder.up_blocks.0.resnets.0.conv1.weight" in keys or "encoder.down_blocks.0.resnets.0.conv1.weight" in keys:
        return "diffusers", ""
    return None


def controlnet_layout(keys: set[str]) -> tuple[str, str] | None:
    if CONTROLNET_PREFIX + "input_hint_block.0.weight" in keys:
        return "ldm", CONTROLNET_PREFIX
    if "input_hint_block.0.weight" in keys:
        return "ldm", ""
    if "controlnet_cond_embedding.conv_in.weight" in keys:
        return "diffusers", ""
    return None


def text_prefixes(keys: set[str]) -> list[str]:
    """Checkpoint prefixes under which a text encoder is present."""
    found = []
    for prefix in ALL_TEXT_PREFIXES:
        if (prefix + "text_model.embeddings.token_embedding.weight" in keys
                or prefix + "token_embedding.weight" in keys):
            found.append(prefix)
    return found


def standalone_text_layout(keys: set[str]) -> tuple[str, str] | None:
    """(layout, prefix) of a lone text encoder file: HF (keys under `<prefix>text_model.`, or flattened)
    or OpenCLIP. A text encoder inside a checkpoint is found too."""
    for outer in ("", "transformer.", "cond_stage_model.transformer.", "conditioner.embedders.0.transformer."):
        for inner in ("text_model.", ""):
            prefix = outer + inner
            if (prefix + "embeddings.token_embedding.weight" in keys
                    and prefix + "encoder.layers.0.mlp.fc1.weight" in keys):
                return "hf", outer
    if "token_embedding.weight" in keys and "transformer.resblocks.0.attn.in_proj_weight" in keys:
        return "open_clip", ""
    return None


def looks_like_lora(keys: set[str]) -> bool:
    return any(".lora_" in k or k.startswith(("lora_unet_", "lora_te")) or ".lora." in k for k in keys)


def looks_like_embedding(keys: set[str]) -> bool:
    return bool(keys) and (keys <= {"emb_params", "clip_l", "clip_g", "string_to_param", "string_to_token", "name",
                                     "step", "sd_checkpoint", "sd_checkpoint_name"} or "string_to_param.*" in keys)


def what_is_it(keys: Iterable[str]) -> str:
    """A short description of a file's content for error messages ('a LoRA', 'a VAE', ...)."""
    keys = set(keys)
    other = other_family(keys)
    if other:
        return f"a {other} model"
    if looks_like_lora(keys):
        return "a LoRA"
    if looks_like_embedding(keys):
        return "a textual-inversion embedding"
    parts = []
    if unet_layout(keys):
        parts.append("a UNet")
    if vae_layout(keys):
        parts.append("a VAE")
    if text_prefixes(keys) or standalone_text_layout(keys):
        parts.append("a text encoder")
    if controlnet_layout(keys):
        parts.append("a ControlNet")
    return " + ".join(parts) if parts else "no Stable Diffusion component Loom knows"

"""Component configs from tensor shapes (original layout, prefixes removed).

The weights tell channels, depths, widths and placements; the family skeleton tells the rest
(attention heads, norm groups, scheduler, latent scaling). Conventions the weights cannot show,
shared by the real models and the project's tiny ones:
- SD1: 8 attention heads per block.  SD2/SDXL: head dimension 64 (heads = channels // 64).
- CLIP text encoders: head dimension 64 (at least one head); OpenCLIP (H/G) use gelu, OpenAI CLIP-L quick_gelu.
- SDXL size embedding: 256 per number (6 numbers for the base model, 5 for the refiner).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from nodes.diffusion import skeletons
from nodes.diffusion.types import SD1, SD1_INPAINT, SD2, SDXL, SDXL_REFINER

Shapes = Mapping[str, tuple]
SDXL_TIME_EMBED_DIM = 256
V_PRED_STD_THRESHOLD = 0.09   # ComfyUI's heuristic for SD2 768-v checkpoints


def _count(shapes: Shapes, pattern: str) -> int:
    """How many consecutive indices N have a key starting with pattern.format(N)."""
    n = 0
    while any(k.startswith(pattern.format(n)) for k in shapes):
        n += 1
    return n


def _depth(shapes: Shapes, block: str) -> int:
    return _count(shapes, block + ".1.transformer_blocks.{}.")


class _UNetShape:
    """Levels of an LDM UNet (or ControlNet) read from its input/output blocks."""

    def __init__(self, shapes: Shapes, with_output: bool = True):
        self.model_channels, self.in_channels = shapes["input_blocks.0.0.weight"][:2]
        self.levels: list[dict] = []
        level = {"channels": 0, "depths": []}
        i = 1
        while f"input_blocks.{i}.0.op.weight" in shapes or f"input_blocks.{i}.0.in_layers.0.weight" in shapes:
            if f"input_blocks.{i}.0.op.weight" in shapes:
                self.levels.append(level)
                level = {"channels": 0, "depths": []}
            else:
                level["channels"] = shapes[f"input_blocks.{i}.0.out_layers.3.weight"][0]
                level["depths"].append(_depth(shapes, f"input_blocks.{i}"))
            i += 1
        self.levels.append(level)
        if with_output:
            idx = 0
            for level in reversed(self.levels):
                level["out_depths"] = []
                for _ in range(len(level["depths"]) + 1):
                    level["out_depths"].append(_depth(shapes, f"output_blocks.{idx}"))
                    idx += 1
        self.mid_depth = _count(shapes, "middle_block.1.transformer_blocks.{}.")
        first_attn = next((k for k in shapes if k.endswith("transformer_blocks.0.attn2.to_k.weight")), None)
        self.context_dim = shapes[first_attn][1] if first_attn else None
        proj = next((k for k in shapes if k.endswith(".1.proj_in.weight")), None)
        self.linear_projection = bool(proj) and len(shapes[proj]) == 2
        self.adm_channels = shapes["label_emb.0.0.weight"][1] if "label_emb.0.0.weight" in shapes else None
        self.time_embed_dim = shapes["time_embed.0.weight"][0]


def detect_unet_family(shapes: Shapes, text_prefixes: list[str] | None = None,
                       get: Callable | None = None) -> tuple[str, str]:
    """(family, prediction_type) of an LDM-layout UNet; `text_prefixes` (from the same file) break ties."""
    unet = _UNetShape(shapes, with_output=False)
    if unet.context_dim is None:
        raise ValueError("the UNet has no cross-attention: not a Stable Diffusion model")
    prediction = "v_prediction" if "v_pred" in shapes else "epsilon"
    if unet.adm_channels is not None:
        if text_prefixes:
            refiner = "conditioner.embedders.1.model." not in text_prefixes
        else:
            refiner = unet.adm_channels - 5 * SDXL_TIME_EMBED_DIM == unet.context_dim
        return (SDXL_REFINER if refiner else SDXL), prediction
    if unet.linear_projection or unet.context_dim == 1024:
        if unet.in_channels == 4 and prediction == "epsilon" and get is not None:
            prediction = _sd2_prediction(shapes, get)
        return SD2, prediction
    return (SD1_INPAINT if unet.in_channels == 9 else SD1), prediction


def _sd2_prediction(shapes: Shapes, get: Callable) -> str:
    """ComfyUI's heuristic: v-prediction SD2 models have a wide spread in the last norm1 bias."""
    last = [k for k in shapes if re.fullmatch(r"output_blocks\.\d+\.1\.transformer_blocks\.0\.norm1\.bias", k)]
    if not last:
        return "epsilon"
    tensor = get(max(last, key=lambda k: int(k.split(".")[1])))
    if tensor.device.type == "meta":
        return "epsilon"
    return "v_prediction" if float(tensor.float().std(unbiased=False)) > V_PRED_STD_THRESHOLD else "epsilon"


def _heads(family: str, channels: int) -> int:
    return 8 if family in (SD1, SD1_INPAINT) else max(1, channels // 64)


def _blocks_config(unet: _UNetShape, family: str) -> dict:
    """The fields UNet and ControlNet share: levels, attention placement and depth, context."""
    levels = unet.levels
    layers = [len(level["depths"]) for level in levels]
    if len(set(layers)) != 1:
        raise ValueError(f"levels have different numbers of resnets ({layers}); not supported")
    for level in levels:
        if len(set(level["depths"])) > 1:
            raise ValueError(f"transformer depth varies inside a level ({level['depths']}); not supported")
    depths = [level["depths"][0] for level in levels]
    attn = [d > 0 for d in depths]
    mid = unet.mid_depth or 1
    if attn[-1] and depths[-1] != mid:
        raise ValueError(f"middle block depth {mid} differs from the last level's {depths[-1]}; not supported")
    per_block = [d if d else 1 for d in depths]
    per_block[-1] = mid
    config = {
        "in_channels": unet.in_channels,
        "block_out_channels": [level["channels"] for level in levels],
        "layers_per_block": layers[0],
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn],
        "transformer_layers_per_block": per_block[0] if len(set(per_block)) == 1 else per_block,
        "cross_attention_dim": unet.context_dim,
        "use_linear_projection": unet.linear_projection,
        "attention_head_dim": [_heads(family, level["channels"]) for level in levels],
        "mid_block_type": "UNetMidBlock2DCrossAttn" if unet.mid_depth else "UNetMidBlock2D",
    }
    heads = config["attention_head_dim"]
    if len(set(heads)) == 1:
        config["attention_head_dim"] = heads[0]
    if unet.time_embed_dim != 4 * unet.model_channels:
        config["time_embedding_dim"] = unet.time_embed_dim
    if unet.adm_channels is not None:
        config.update(addition_embed_type="text_time", addition_time_embed_dim=SDXL_TIME_EMBED_DIM,
                      projection_class_embeddings_input_dim=unet.adm_channels)
    else:
        config.update(addition_embed_type=None, projection_class_embeddings_input_dim=None)
    return config


def infer_unet_config(shapes: Shapes, family: str, prediction_type: str = "epsilon") -> dict:
    unet = _UNetShape(shapes)
    config = skeletons.component_config(family, "unet", prediction_type)
    config.update(_blocks_config(unet, family))
    config["out_channels"] = shapes["out.2.weight"][0]
    per_block = config["transformer_layers_per_block"]
    per_block = per_block if isinstance(per_block, list) else [per_block] * len(unet.levels)
    up_types, reverse, symmetric = [], [], True
    for i, level in enumerate(reversed(unet.levels)):
        has_attn = any(level["out_depths"])
        up_types.append("CrossAttnUpBlock2D" if has_attn else "UpBlock2D")
        depths = [d or 1 for d in level["out_depths"]]
        reverse.append(depths)
        symmetric &= not has_attn or all(d == per_block[::-1][i] for d in depths)
    config["up_block_types"] = up_types
    if not symmetric:  # e.g. distilled SDXL variants: diffusers then wants per-layer depths both ways
        layers = config["layers_per_block"]
        config["transformer_layers_per_block"] = [[d] * layers for d in per_block]
        config["reverse_transformer_layers_per_block"] = reverse
    return config


def infer_controlnet_config(shapes: Shapes, family: str = SD1) -> dict:
    unet = _UNetShape(shapes, with_output=False)
    config = skeletons.component_config(SD1, "controlnet")
    config.update(_blocks_config(unet, family))
    hint = sorted({int(k.split(".")[1]) for k in shapes if k.startswith("input_hint_block.")})
    convs = [shapes[f"input_hint_block.{i}.weight"] for i in hint]
    # conv_in, then pairs (same width, then stride-2 to the next width), then conv_out.
    config["conditioning_embedding_out_channels"] = [convs[0][0]] + [c[0] for c in convs[1:-1][1::2]]
    config["conditioning_channels"] = convs[0][1]
    for key in ("addition_time_embed_dim",):
        config.setdefault(key, SDXL_TIME_EMBED_DIM)
    return config


def infer_vae_config(shapes: Shapes, family: str) -> dict:
    config = skeletons.component_config(family, "vae")
    levels = _count(shapes, "encoder.down.{}.")
    if levels == 0:
        levels = _count(shapes, "decoder.up.{}.")
        channels = [shapes[f"decoder.up.{i}.block.0.conv2.weight"][0] for i in range(levels)]
        layers = _count(shapes, "decoder.up.0.block.{}.") - 1
    else:
        channels = [shapes[f"encoder.down.{i}.block.0.conv2.weight"][0] for i in range(levels)]
        layers = _count(shapes, "encoder.down.0.block.{}.")
    config.update(
        block_out_channels=channels, layers_per_block=layers,
        down_block_types=["DownEncoderBlock2D"] * levels, up_block_types=["UpDecoderBlock2D"] * levels,
        latent_channels=shapes["decoder.conv_in.weight"][1] if "decoder.conv_in.weight" in shapes
        else shapes["encoder.conv_out.weight"][0] // 2,
        use_quant_conv="quant_conv.weight" in shapes, use_post_quant_conv="post_quant_conv.weight" in shapes,
        mid_block_add_attention=any(".mid.attn_1." in k for k in shapes),
    )
    if "encoder.conv_in.weight" in shapes:
        config["in_channels"] = shapes["encoder.conv_in.weight"][1]
    if "decoder.conv_out.weight" in shapes:
        config["out_channels"] = shapes["decoder.conv_out.weight"][0]
    return config


def infer_text_config(shapes: Shapes, base: dict, open_clip: bool) -> tuple[dict, str]:
    """(CLIPTextConfig kwargs, class name) from HF-layout keys without the `text_model.` prefix."""
    hidden = shapes["embeddings.token_embedding.weight"][1]
    projection = shapes.get("text_projection.weight")
    config = dict(base)
    config.update(
        vocab_size=shapes["embeddings.token_embedding.weight"][0],
        hidden_size=hidden,
        max_position_embeddings=shapes["embeddings.position_embedding.weight"][0],
        num_hidden_layers=_count(shapes, "encoder.layers.{}."),
        intermediate_size=shapes["encoder.layers.0.mlp.fc1.weight"][0],
        num_attention_heads=max(1, hidden // 64),
    )
    gelu = open_clip or hidden in (1024, 1280) or (projection is not None and hidden != 768)
    config["hidden_act"] = "gelu" if gelu else "quick_gelu"
    if projection is not None:
        config["projection_dim"] = projection[0]
    for drop in ("architectures", "_name_or_path", "id2label", "label2id"):
        config.pop(drop, None)
    return config, "CLIPTextModelWithProjection" if projection is not None else "CLIPTextModel"


def open_clip_text_shapes(shapes: Shapes, prefix: str) -> dict:
    """HF-layout shapes of an OpenCLIP text tower (what the conversion will produce)."""
    out = {}
    for key, shape in shapes.items():
        if not key.startswith(prefix):
            continue
        k = key[len(prefix):]
        if k == "token_embedding.weight":
            out["embeddings.token_embedding.weight"] = shape
        elif k == "positional_embedding":
            out["embeddings.position_embedding.weight"] = shape
        elif k == "text_projection":
            out["text_projection.weight"] = (shape[1], shape[0])
        elif m := re.fullmatch(r"transformer\.resblocks\.(\d+)\.mlp\.c_fc\.weight", k):
            out[f"encoder.layers.{m[1]}.mlp.fc1.weight"] = shape
    return out

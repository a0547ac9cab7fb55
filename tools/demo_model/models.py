"""The demo model's architecture: Stable Diffusion 1.x, scaled down.

Same topology as SD 1.5 so Loom loads it through the code that loads a real SD 1.5 checkpoint:
- UNet: 4 levels, channel multipliers (1, 2, 2, 2) on 32 channels, 2 resnets per level,
  cross-attention on the first three levels and the middle block, 8 heads per block (SD1's
  `attention_head_dim=8`), 1x1-conv projections, context width = text width.
- VAE: AutoencoderKL with 4 levels (8x downscale, 4 latent channels), 2 resnets per level,
  mid-block attention; latents rescaled so that SD1's scaling factor 0.18215 gives unit variance.
- Text encoder: CLIPTextModel with the real CLIP vocabulary (49408 tokens), width 64, 4 layers,
  one head of 64 (head dimension 64, as the loader assumes), quick_gelu.
- ControlNet: diffusers' ControlNetModel.from_unet, SD's hint encoder widths (16, 32, 96, 256).
- Noise schedule: SD1's (scaled_linear 0.00085..0.012, 1000 steps, epsilon prediction).
"""

from __future__ import annotations

import torch

RESOLUTION = 128
LATENT_SIZE = RESOLUTION // 8
SCALING_FACTOR = 0.18215
TEXT_WIDTH = 64

UNET_CONFIG = dict(
    sample_size=LATENT_SIZE, in_channels=4, out_channels=4, block_out_channels=(32, 64, 64, 64), layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=TEXT_WIDTH, attention_head_dim=8, norm_num_groups=32,
)
VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64, 96, 96), layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    norm_num_groups=32, sample_size=RESOLUTION, scaling_factor=SCALING_FACTOR,
)
TEXT_CONFIG = dict(
    vocab_size=49408, hidden_size=TEXT_WIDTH, intermediate_size=4 * TEXT_WIDTH, num_hidden_layers=4,
    num_attention_heads=1, max_position_embeddings=77, hidden_act="quick_gelu",
    bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
)
CONTROL_HINT_CHANNELS = (16, 32, 96, 256)
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    prediction_type="epsilon", clip_sample=False, set_alpha_to_one=False, steps_offset=1,
)
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"]


def build_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**UNET_CONFIG)


def build_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(**VAE_CONFIG)


def build_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))


def build_controlnet(unet):
    from diffusers import ControlNetModel

    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=CONTROL_HINT_CHANNELS)


def tokenizer():
    """The real CLIP tokenizer (SD1: padded with <|endoftext|>), from Loom's offline skeleton."""
    from nodes.diffusion.skeletons import clip_tokenizer

    return clip_tokenizer()


def tokenize(tok, texts: list[str]) -> torch.Tensor:
    if isinstance(tok, CaptionTokenizer):
        return tok(texts)
    return tok(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids


class CaptionTokenizer:
    """The real CLIP tokenizer, memoised per word: fast enough to caption millions of scenes.

    CLIP's BPE never merges across words (its pre-tokenizer splits on spaces and punctuation), so
    the ids of a lower-case caption of plain words and commas are the concatenation of its words'
    ids. Every new caption shape is checked against the real tokenizer while `checks` lasts."""

    def __init__(self, tok, checks: int = 256):
        self.tok, self.words, self.checks = tok, {}, checks
        self.bos, self.eos = tok.bos_token_id, tok.eos_token_id

    def _word(self, w: str) -> list[int]:
        ids = self.words.get(w)
        if ids is None:
            ids = self.words[w] = self.tok(w, add_special_tokens=False).input_ids
        return ids

    def __call__(self, texts: list[str]) -> torch.Tensor:
        out = torch.full((len(texts), 77), self.eos, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = [self.bos]
            for w in text.replace(",", " , ").split():
                ids += self._word(w)
            ids = ids[:76] + [self.eos]
            out[i, :len(ids)] = torch.tensor(ids)
            if self.checks > 0:
                self.checks -= 1
                ref = self.tok(text, padding="max_length", max_length=77, truncation=True).input_ids
                if ref != out[i].tolist():
                    raise AssertionError(f"memoised tokenization differs for {text!r}")
        return out


def text_state(state: dict) -> dict:
    """Text-encoder keys without transformers-4's `text_model.` prefix (transformers 5 flattened them)."""
    return {k.removeprefix("text_model."): v for k, v in state.items() if not k.endswith("position_ids")}


def load_text_state(te, state: dict) -> None:
    own = te.state_dict()
    prefixed = any(k.startswith("text_model.") for k in own)
    state = text_state(state)
    if prefixed:
        state = {"text_model." + k: v for k, v in state.items()}
    missing, unexpected = te.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(f"text encoder weights do not fit: missing {missing[:4]}, unexpected {unexpected[:4]}")


@torch.no_grad()
def normalise_vae_latents(vae, images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Fold a per-channel shift and scale into quant_conv / post_quant_conv so that
    `encode(x).mode() * SCALING_FACTOR` has zero mean and unit variance on `images` ([-1,1]).
    The decoder sees exactly the same values as before, so reconstructions do not change."""
    z = torch.cat([vae.encode(images[i:i + 256]).latent_dist.mean for i in range(0, len(images), 256)])
    mean = z.float().mean(dim=(0, 2, 3))
    std = z.float().std(dim=(0, 2, 3))
    a = 1.0 / (std * SCALING_FACTOR)                                  # z' = (z - mean) * a
    qc, pqc = vae.quant_conv, vae.post_quant_conv
    c = mean.numel()
    w, b = qc.weight.data, qc.bias.data
    w[:c] *= a[:, None, None, None].to(w.dtype)
    b[:c] = ((b[:c].float() - mean) * a).to(b.dtype)
    b[c:] += (2 * torch.log(a)).to(b.dtype)                           # logvar of the scaled latent
    pw, pb = pqc.weight.data, pqc.bias.data                           # decoder input z = z' / a + mean
    pb += (pw[:, :, 0, 0].float() @ mean).to(pb.dtype)
    pw /= a[None, :, None, None].to(pw.dtype)
    return mean.tolist(), std.tolist()

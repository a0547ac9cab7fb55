"""Tiny diffusers components built in memory for the sampling tests (random weights, a few MB).

The VAE has two blocks, so one latent cell is 2x2 pixels (ModelRef.options["latent_downscale"] = 2).
"""

from __future__ import annotations

import torch

from nodes.diffusion.types import (
    SD1,
    SDXL,
    ControlNetRef,
    LoadedComponent,
    ModelRef,
    VAERef,
)

SD_SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
                "num_train_timesteps": 1000, "prediction_type": "epsilon"}
TEXT_DIM = 32


def _seeded(seed: int):
    torch.manual_seed(seed)


def tiny_unet(in_channels: int = 4, seed: int = 0):
    from diffusers import UNet2DConditionModel

    _seeded(seed)
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=in_channels, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_DIM, attention_head_dim=8, norm_num_groups=32).eval()


def tiny_sdxl_unet(seed: int = 0, pooled_dim: int = 32):
    from diffusers import UNet2DConditionModel

    _seeded(seed)
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + pooled_dim, cross_attention_dim=64,
        norm_num_groups=32).eval()


def tiny_vae(seed: int = 0):
    from diffusers import AutoencoderKL

    _seeded(seed)
    return AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3,
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         latent_channels=4, norm_num_groups=32, layers_per_block=1).eval()


def tiny_controlnet(unet, seed: int = 1):
    from diffusers import ControlNetModel

    _seeded(seed)
    cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32)).eval()
    # ControlNets start as no-ops (zero convs); give them weights so they change the result.
    with torch.no_grad():
        for block in list(cn.controlnet_down_blocks) + [cn.controlnet_mid_block]:
            block.weight.normal_(0, 0.3)
            block.bias.normal_(0, 0.1)
        cn.controlnet_cond_embedding.conv_out.weight.normal_(0, 0.3)
    return cn


def model_ref(unet, family: str = SD1, key: str = "tiny-unet") -> ModelRef:
    return ModelRef(unet=LoadedComponent(key=key, module=unet, family=family, config=dict(unet.config)),
                    scheduler_config=dict(SD_SCHEDULER), options={"latent_downscale": 2})


def vae_ref(vae) -> VAERef:
    return VAERef(vae=LoadedComponent(key="tiny-vae", module=vae, family=SD1, config=dict(vae.config)),
                  scaling_factor=0.18215, downscale=2, latent_channels=4)


def controlnet_ref(cn) -> ControlNetRef:
    return ControlNetRef(controlnet=LoadedComponent(key="tiny-cn", module=cn, family=SD1, config=dict(cn.config)))


def text_cond(seed: int, tokens: int = 8, dim: int = TEXT_DIM, pooled: int | None = None) -> list:
    g = torch.Generator().manual_seed(seed)
    options = {}
    if pooled:
        options["pooled_output"] = torch.randn(1, pooled, generator=g)
    return [[torch.randn(1, tokens, dim, generator=g), options]]


__all__ = ["SD1", "SDXL", "tiny_unet", "tiny_sdxl_unet", "tiny_vae", "tiny_controlnet", "model_ref", "vae_ref",
           "controlnet_ref", "text_cond"]

"""Helpers shared by the model-layer tests."""

from __future__ import annotations

from nodes.diffusion import skeletons


def same_weights(a, b) -> list[str]:
    """Keys whose tensors differ between two modules (position_ids buffers ignored)."""
    import torch

    sa = {k: v for k, v in a.state_dict().items() if "position_ids" not in k}
    sb = {k: v for k, v in b.state_dict().items() if "position_ids" not in k}
    if set(sa) != set(sb):
        return sorted(set(sa) ^ set(sb))
    return [k for k in sa if not torch.equal(sa[k], sb[k])]


def meta_family(family: str, prediction: str = "epsilon") -> dict:
    """Full-size modules of a family, on the meta device, built from the shipped skeleton."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    with init_empty_weights():
        modules = {"unet": UNet2DConditionModel.from_config(skeletons.component_config(family, "unet", prediction)),
                   "vae": AutoencoderKL.from_config(skeletons.component_config(family, "vae", prediction))}
        for name in skeletons.TEXT_COMPONENTS[family]:
            config = skeletons.component_config(family, name, prediction)
            cls = CLIPTextModelWithProjection if "WithProjection" in config["architectures"][0] else CLIPTextModel
            modules[name] = cls(CLIPTextConfig(**config))
    return modules

"""Family detection and config inference on real-size layouts, from meta-device state dicts.

No weights exist here: each family's skeleton is instantiated on the meta device, exported to the
original layout, and the loader must infer back configs that build exactly the same modules.
"""

from __future__ import annotations

import pytest

from nodes.diffusion import skeletons
from nodes.diffusion.loading import checkpoint as ck
from nodes.diffusion.loading import components as comps
from nodes.diffusion.loading.ldm_export import diffusers_to_ldm_state_dict
from nodes.diffusion.loading.weights import WeightFile
from tests.diffusion_models.helpers import meta_family


def shapes(module) -> dict:
    return {k: tuple(v.shape) for k, v in module.state_dict().items() if "position_ids" not in k}


def rebuilt(cls, config):
    from accelerate import init_empty_weights

    with init_empty_weights():
        return cls.from_config(config)


def heads(config) -> list:
    value = config["attention_head_dim"]
    n = len(config["block_out_channels"])
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


def attention_heads_in_attn_blocks(config) -> list:
    return [h for h, t in zip(heads(config), config["down_block_types"]) if t.startswith("CrossAttn")]


CASES = [("sd1", "sd1"), ("sd1_inpaint", "sd1_inpaint"), ("sd2", "sd2"), ("sdxl", "sdxl"),
         ("sdxl_refiner", "sdxl_refiner")]


@pytest.mark.parametrize("family,expected", CASES)
def test_real_size_checkpoint_detection(family, expected):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    m = meta_family(family)
    names = skeletons.TEXT_COMPONENTS[family]
    state = diffusers_to_ldm_state_dict(m["unet"], m["vae"], [m[n] for n in names], family=family)
    info = ck.inspect_single_file(WeightFile.from_mapping(f"{family}.safetensors", state))
    assert info.family == expected
    assert info.prediction_type == "epsilon"
    assert shapes(rebuilt(UNet2DConditionModel, info.unet_config)) == shapes(m["unet"])
    assert attention_heads_in_attn_blocks(info.unet_config) == attention_heads_in_attn_blocks(dict(m["unet"].config))
    assert shapes(rebuilt(AutoencoderKL, info.vae_config)) == shapes(m["vae"])
    assert [t.component for t in info.text] == list(names)
    for text in info.text:
        want = m[text.component].config
        got = text.config
        for field in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
                      "vocab_size", "max_position_embeddings"):
            assert got[field] == getattr(want, field), (text.component, field)


def test_sdxl_unet_alone_and_refiner_alone():
    for family in ("sdxl", "sdxl_refiner"):
        m = meta_family(family)
        state = diffusers_to_ldm_state_dict(unet=m["unet"], family=family)
        unet_only = {k.removeprefix("model.diffusion_model."): v for k, v in state.items()}
        info, kind, prefix = comps.inspect_unet_file(WeightFile.from_mapping("unet.safetensors", unet_only))
        assert (info.family, kind, prefix) == (family, "ldm", "")
        # the same UNet in diffusers' own layout
        info, kind, _ = comps.inspect_unet_file(WeightFile.from_mapping("u.safetensors", m["unet"].state_dict()))
        assert (info.family, kind) == (family, "diffusers")


def test_sd2_in_sgm_layout_and_v_prediction_marker():
    m = meta_family("sd2")
    state = diffusers_to_ldm_state_dict(m["unet"], m["vae"], [m["text_encoder"]], family="sd2")
    sgm = {k.replace("cond_stage_model.model.", "conditioner.embedders.0.model."): v for k, v in state.items()}
    info = ck.inspect_single_file(WeightFile.from_mapping("sd2-sgm.safetensors", sgm))
    assert info.family == "sd2" and info.text[0].prefix == "conditioner.embedders.0.model."
    import torch

    state["v_pred"] = torch.empty(0, device="meta")
    assert ck.inspect_single_file(WeightFile.from_mapping("v.safetensors", state)).prediction_type == "v_prediction"


def test_text_encoder_kinds_from_real_widths():
    from transformers import CLIPTextModel

    for family, component, expected in (("sd1", "text_encoder", "clip_l"), ("sd2", "text_encoder", "clip_h"),
                                        ("sdxl", "text_encoder_2", "clip_g")):
        module = meta_family(family)[component]
        state = {("text_model." + k if isinstance(module, CLIPTextModel) else k): v
                 for k, v in module.state_dict().items()}
        info = comps.inspect_text_encoder_file(WeightFile.from_mapping("te.safetensors", state))
        assert info.clip_name == expected
        assert info.config["hidden_act"] == module.config.hidden_act
        assert info.config["num_hidden_layers"] == module.config.num_hidden_layers

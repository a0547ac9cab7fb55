"""diffusers -> original layout: key names of the real models, and bit-identical round trips."""

from __future__ import annotations

import pytest
import torch

from nodes.diffusion.loading import checkpoint as ck
from nodes.diffusion.loading.ldm_export import diffusers_to_ldm_state_dict, save_single_file
from nodes.diffusion.loading.weights import WeightFile
from tests.diffusion_models.helpers import meta_family, same_weights
from tests.tiny_models import build_modules


def test_sd15_keys_match_the_released_checkpoint():
    m = meta_family("sd1")
    sd = diffusers_to_ldm_state_dict(m["unet"], m["vae"], [m["text_encoder"]], family="sd1")
    assert len(sd) == 1131  # v1-5-pruned-emaonly.safetensors has 1131 tensors
    expected = {
        "model.diffusion_model.input_blocks.3.0.op.weight": (320, 320, 3, 3),
        "model.diffusion_model.output_blocks.2.1.conv.weight": (1280, 1280, 3, 3),
        "model.diffusion_model.output_blocks.5.2.conv.weight": (1280, 1280, 3, 3),
        "model.diffusion_model.output_blocks.11.0.skip_connection.weight": (320, 640, 1, 1),
        "model.diffusion_model.input_blocks.1.1.proj_in.weight": (320, 320, 1, 1),
        "first_stage_model.encoder.mid.attn_1.q.weight": (512, 512, 1, 1),
        "first_stage_model.decoder.up.0.block.0.nin_shortcut.weight": (128, 256, 1, 1),
        "cond_stage_model.transformer.text_model.embeddings.position_ids": (1, 77),
        "cond_stage_model.transformer.text_model.final_layer_norm.weight": (768,),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key


def test_sdxl_keys_use_the_sgm_layout():
    m = meta_family("sdxl")
    sd = diffusers_to_ldm_state_dict(m["unet"], m["vae"], [m["text_encoder"], m["text_encoder_2"]], family="sdxl")
    assert tuple(sd["conditioner.embedders.1.model.transformer.resblocks.31.attn.in_proj_weight"].shape) == (3840, 1280)
    assert tuple(sd["conditioner.embedders.1.model.text_projection"].shape) == (1280, 1280)
    assert tuple(sd["model.diffusion_model.label_emb.0.0.weight"].shape) == (1280, 2816)
    assert "conditioner.embedders.0.transformer.text_model.encoder.layers.11.mlp.fc2.weight" in sd
    assert "model.diffusion_model.output_blocks.8.0.skip_connection.weight" in sd


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl", "sdxl_refiner", "sd1_inpaint"])
def test_round_trip_is_bit_identical(family, tmp_path):
    modules = build_modules(family)
    encoders = [modules[k] for k in ("text_encoder", "text_encoder_2") if k in modules]
    path = tmp_path / f"{family}.safetensors"
    save_single_file(path, unet=modules["unet"], vae=modules["vae"], text_encoders=encoders, family=family)
    weights = WeightFile(path)
    info = ck.inspect_single_file(weights)
    assert info.family == family
    loaded = ck.load_single_file(weights, info, info.components())
    assert set(loaded) == set(modules)
    for name, module in loaded.items():
        assert same_weights(module, modules[name]) == [], name


def test_round_trip_through_diffusers_own_single_file_loader(tmp_path, tiny_cache):
    """The exported file reads back with diffusers' from_single_file too (offline, local config)."""
    from diffusers import StableDiffusionPipeline

    modules = build_modules("sd1")
    path = tmp_path / "sd1.safetensors"
    save_single_file(path, unet=modules["unet"], vae=modules["vae"], text_encoders=[modules["text_encoder"]])
    pipe = StableDiffusionPipeline.from_single_file(str(path), config=str(tiny_cache / "diffusers" / "tiny-sd1"),
                                                    local_files_only=True, safety_checker=None)
    for name in ("unet", "vae", "text_encoder"):
        assert same_weights(getattr(pipe, name), modules[name]) == [], name


def test_fp16_export_and_unknown_keys(tmp_path):
    modules = build_modules("sd1")
    state = save_single_file(tmp_path / "half.safetensors", unet=modules["unet"], dtype=torch.float16)
    assert all(v.dtype == torch.float16 for v in state.values())
    bad = dict(modules["unet"].state_dict())
    bad["mystery.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="mystery.weight"):
        diffusers_to_ldm_state_dict(unet=(bad, dict(modules["unet"].config)))


def test_controlnet_export_layout():
    from tests.tiny_models import _controlnet

    sd = diffusers_to_ldm_state_dict(controlnet=_controlnet(), family="sd1")
    hint = sorted(int(k.split(".")[2]) for k in sd if ".input_hint_block." in k and k.endswith("weight"))
    assert hint == [0, 2, 4, 6]            # conv_in, 2 inner convs, conv_out (released models: 0..14)
    assert "control_model.zero_convs.0.0.weight" in sd and "control_model.middle_block_out.0.weight" in sd

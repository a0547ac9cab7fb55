"""Loading what users download (tiny models in every format), through the loader nodes, and the errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from nodes.diffusion.loading.state_dict import ALLOW_PICKLE_ENV, ModelLoadError
from nodes.diffusion.nodes_loaders import (
    CheckpointLoaderSimple,
    CLIPLoader,
    ControlNetLoader,
    DiffusersLoader,
    DualCLIPLoader,
    UNETLoader,
    VAELoader,
)
from tests import tiny_models as tm
from tests.diffusion_models.helpers import same_weights


@pytest.mark.parametrize("family", ["sd1", "sd1_inpaint", "sd2", "sd2_v", "sdxl", "sdxl_refiner"])
def test_checkpoint_loader_every_family(family, models_dir, manager):
    name = tm.tiny_checkpoint(models_dir, family)
    assert name in CheckpointLoaderSimple.INPUT_TYPES()["required"]["ckpt_name"][0]
    model, clip, vae = CheckpointLoaderSimple().load_checkpoint(name)
    reference = tm.tiny_modules("sd2" if family == "sd2_v" else family)
    base_family = "sd2" if family == "sd2_v" else family
    assert model.unet.family == clip.family == base_family
    assert model.prediction_type == ("v_prediction" if family == "sd2_v" else "epsilon")
    assert model.scheduler_config["prediction_type"] == model.prediction_type
    assert same_weights(manager.unet_for(model), reference["unet"]) == [] or family == "sd2_v"
    assert same_weights(manager.vae_for(vae), reference["vae"]) == []
    encoders = manager.text_encoders_for(clip)
    assert [e.config.hidden_size for e in encoders] == [reference[k].config.hidden_size
                                                        for k in ("text_encoder", "text_encoder_2") if k in reference]
    assert vae.downscale == 2 and vae.latent_channels == 4
    assert model.options["latent_downscale"] == 2 and model.options["latent_scaling_factor"] == vae.scaling_factor
    assert vae.scaling_factor == (0.13025 if family.startswith("sdxl") else 0.18215)


def test_loading_twice_reuses_the_modules(models_dir, manager):
    name = tm.tiny_sd1_checkpoint(models_dir)
    first = CheckpointLoaderSimple().load_checkpoint(name)
    second = CheckpointLoaderSimple().load_checkpoint(name)
    assert first[0].unet is second[0].unet and first[0].unet.module is second[0].unet.module
    assert first[1].encoders[0] is second[1].encoders[0]


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_diffusers_folder(family, models_dir, manager):
    name = tm.tiny_diffusers(models_dir, family)
    assert name in DiffusersLoader.INPUT_TYPES()["required"]["model_path"][0]
    model, clip, vae = DiffusersLoader().load_checkpoint(name)
    reference = tm.tiny_modules(family)
    assert same_weights(manager.unet_for(model), reference["unet"]) == []
    assert same_weights(manager.vae_for(vae), reference["vae"]) == []
    for encoder, key in zip(manager.text_encoders_for(clip), ("text_encoder", "text_encoder_2")):
        assert same_weights(encoder, reference[key]) == []
    # a checkpoint name that is a diffusers folder also works with the checkpoint loader's code path
    from nodes.diffusion.model_files import load_checkpoint

    assert load_checkpoint(models_dir / "diffusers" / name)[0].unet is model.unet


@pytest.mark.parametrize("fmt", ["single", "diffusers"])
def test_unet_and_vae_files(fmt, models_dir, manager):
    reference = tm.tiny_modules("sdxl")
    unet_name = tm.tiny_component(models_dir, "unet", "sdxl", fmt)
    (model,) = UNETLoader().load_unet(unet_name, "default")
    assert model.unet.family == "sdxl"
    assert same_weights(manager.unet_for(model), reference["unet"]) == []
    vae_name = tm.tiny_component(models_dir, "vae", "sdxl", fmt)
    (vae,) = VAELoader().load_vae(vae_name)
    assert same_weights(manager.vae_for(vae), reference["vae"]) == []
    assert vae.scaling_factor == 0.13025   # "sdxl" in the file name


def test_unet_fp8_storage(models_dir, manager):
    name = tm.tiny_component(models_dir, "unet", "sd1")
    (model,) = UNETLoader().load_unet(name, "fp8_e4m3fn")
    unet = manager.unet_for(model)
    assert unet.conv_in.weight.dtype == torch.float8_e4m3fn
    with torch.no_grad():
        out = unet(torch.randn(1, 4, 8, 8), 5, encoder_hidden_states=torch.randn(1, 77, 32)).sample
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_clip_loaders(models_dir, manager):
    reference = tm.tiny_modules("sdxl")
    l_name = tm.tiny_component(models_dir, "clip_l", "sdxl")
    g_name = tm.tiny_component(models_dir, "clip_g", "sdxl")
    (clip,) = DualCLIPLoader().load_clip(g_name, l_name, "sdxl")   # order does not matter
    assert clip.family == "sdxl"
    encoders = manager.text_encoders_for(clip)
    assert same_weights(encoders[0], reference["text_encoder"]) == []
    assert same_weights(encoders[1], reference["text_encoder_2"]) == []
    (single,) = CLIPLoader().load_clip(tm.tiny_component(models_dir, "clip_l", "sd1"), "stable_diffusion")
    assert single.family == "sd1" and len(single.encoders) == 1
    with pytest.raises(RuntimeError, match="not supported"):
        CLIPLoader().load_clip(l_name, "sd3")
    with pytest.raises(ModelLoadError, match="CLIP-L and an OpenCLIP-G"):
        DualCLIPLoader().load_clip(l_name, l_name, "sdxl")


@pytest.mark.parametrize("fmt", ["single", "diffusers"])
def test_controlnet_loader(fmt, models_dir, manager):
    from tests.tiny_models import _controlnet

    name = tm.tiny_controlnet(models_dir, fmt)
    assert name in ControlNetLoader.INPUT_TYPES()["required"]["control_net_name"][0]
    (cn,) = ControlNetLoader().load_controlnet(name)
    assert same_weights(manager.controlnet_for(cn), _controlnet()) == []


# -- errors --------------------------------------------------------------------------------------------
def test_pickle_checkpoints_need_the_flag(models_dir, manager, tiny_cache, monkeypatch):
    from safetensors.torch import load_file

    state = load_file(str(tiny_cache / "checkpoints" / "tiny-sd1.safetensors"))
    path = models_dir / "checkpoints" / "tiny-sd1.ckpt"
    torch.save({"state_dict": state}, path)
    monkeypatch.delenv(ALLOW_PICKLE_ENV, raising=False)
    with pytest.raises(ModelLoadError, match=f"tiny-sd1.ckpt is a pickle.*{ALLOW_PICKLE_ENV}=1"):
        CheckpointLoaderSimple().load_checkpoint("tiny-sd1.ckpt")
    monkeypatch.setenv(ALLOW_PICKLE_ENV, "1")
    model, clip, vae = CheckpointLoaderSimple().load_checkpoint("tiny-sd1.ckpt")
    assert same_weights(manager.unet_for(model), tm.tiny_modules("sd1")["unet"]) == []


def test_not_a_model(models_dir, manager):
    (models_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (models_dir / "checkpoints" / "notes.safetensors").write_bytes(b"this is not a model")
    with pytest.raises(ModelLoadError, match="notes.safetensors is not a readable safetensors file"):
        CheckpointLoaderSimple().load_checkpoint("notes.safetensors")


def test_a_lora_is_not_a_checkpoint(models_dir, manager):
    name = tm.tiny_lora(models_dir, "kohya")
    shutil.copy(models_dir / "loras" / name, models_dir / "checkpoints" / name)
    with pytest.raises(ModelLoadError, match=f"{name} is not a checkpoint.*found a LoRA.*matching loader"):
        CheckpointLoaderSimple().load_checkpoint(name)


def test_unsupported_family_is_named(models_dir, manager):
    from safetensors.torch import save_file

    flux_like = {"double_blocks.0.img_attn.norm.key_norm.scale": torch.zeros(4), "img_in.weight": torch.zeros(4, 4)}
    save_file(flux_like, str(models_dir / "checkpoints" / "flux1-dev.safetensors"))
    with pytest.raises(ModelLoadError, match="flux1-dev.safetensors is not a checkpoint.*found a Flux model"):
        CheckpointLoaderSimple().load_checkpoint("flux1-dev.safetensors")
    sd3_like = {"model.diffusion_model.joint_blocks.0.context_block.attn.qkv.weight": torch.zeros(3, 3)}
    save_file(sd3_like, str(models_dir / "diffusion_models" / "sd3.safetensors"))
    with pytest.raises(ModelLoadError, match="sd3.safetensors is not a Stable Diffusion UNet.*Stable Diffusion 3"):
        UNETLoader().load_unet("sd3.safetensors")


def test_missing_files(models_dir, manager):
    with pytest.raises(FileNotFoundError, match="checkpoints.*nope.safetensors"):
        CheckpointLoaderSimple().load_checkpoint("nope.safetensors")
    from nodes.diffusion.model_files import load_checkpoint, load_diffusers

    with pytest.raises(FileNotFoundError, match="gone.safetensors"):
        load_checkpoint(models_dir / "checkpoints" / "gone.safetensors")
    folder = models_dir / "diffusers" / "empty"
    folder.mkdir(parents=True)
    with pytest.raises(ModelLoadError, match="empty is not a diffusers model folder"):
        load_diffusers(folder)


def test_diffusers_folder_of_another_family(models_dir, manager):
    folder = models_dir / "diffusers" / "flux"
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline",
                                                         "transformer": ["diffusers", "FluxTransformer2DModel"]}))
    with pytest.raises(ModelLoadError, match="flux is a FluxPipeline folder"):
        DiffusersLoader().load_checkpoint("flux")


def test_weights_that_do_not_fit_their_config(models_dir, manager, tiny_cache):
    from safetensors.torch import load_file, save_file

    state = load_file(str(tiny_cache / "checkpoints" / "tiny-sd1.safetensors"))
    del state["model.diffusion_model.out.0.weight"]
    save_file(state, str(models_dir / "checkpoints" / "broken.safetensors"))
    model, clip, vae = None, None, None
    with pytest.raises(ModelLoadError, match="broken.safetensors: unet: the weights do not fit"):
        model, clip, vae = CheckpointLoaderSimple().load_checkpoint("broken.safetensors")

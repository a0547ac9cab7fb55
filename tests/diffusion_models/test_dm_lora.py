"""LoRAs as adapters: on, off (bit-exact base), strength 0, two at once, both file formats, the nodes."""

from __future__ import annotations

import pytest
import torch

from nodes.diffusion import lora
from nodes.diffusion.loading.state_dict import ModelLoadError
from nodes.diffusion.nodes_loaders import CheckpointLoaderSimple, LoraLoader, LoraLoaderModelOnly
from nodes.diffusion.types import LoraRef
from tests import tiny_models as tm


@pytest.fixture
def sd1(models_dir, manager):
    model, clip, vae = CheckpointLoaderSimple().load_checkpoint(tm.tiny_sd1_checkpoint(models_dir))
    return model, clip


def outputs(manager, model, clip):
    """(UNet output, text-encoder output) for fixed inputs, under exactly the refs' LoRAs."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 8, 8, generator=gen)
    ctx = torch.randn(1, 77, 32, generator=gen)
    ids = torch.tensor([[49406, 320, 1125, 539, 320, 2368, 49407] + [49407] * 70])
    with torch.no_grad():
        unet_out = manager.unet_for(model)(x, 10, encoder_hidden_states=ctx).sample.clone()
        te_out = manager.text_encoders_for(clip)[0](ids).last_hidden_state.clone()
    return unet_out, te_out


@pytest.mark.parametrize("kind", ["kohya", "diffusers", "diffusers_b"])
def test_lora_on_then_off_is_exact(kind, sd1, models_dir, manager):
    model, clip = sd1
    base = outputs(manager, model, clip)
    name = tm.tiny_lora(models_dir, kind)
    with_lora = LoraLoader().load_lora(model, clip, name, 1.0, 1.0)
    on = outputs(manager, *with_lora)
    assert not torch.equal(on[0], base[0]) and not torch.equal(on[1], base[1])
    off = outputs(manager, model, clip)          # the refs without the LoRA run again
    assert torch.equal(off[0], base[0]) and torch.equal(off[1], base[1])
    again = outputs(manager, *with_lora)         # and back on, without loading anything new
    assert torch.equal(again[0], on[0]) and torch.equal(again[1], on[1])
    assert len(lora.loaded_adapters(manager.unet_for(model))) == 1


def test_strength_zero_is_the_base(sd1, models_dir, manager):
    model, clip = sd1
    base = outputs(manager, model, clip)
    name = tm.tiny_lora(models_dir, "kohya")
    assert LoraLoader().load_lora(model, clip, name, 0.0, 0.0) == (model, clip)
    zero = (model.with_lora(LoraRef(str(models_dir / "loras" / name), 0.0)),
            clip.with_lora(LoraRef(str(models_dir / "loras" / name), 0.0)))
    out = outputs(manager, *zero)
    assert torch.equal(out[0], base[0]) and torch.equal(out[1], base[1])


def test_model_only_and_separate_strengths(sd1, models_dir, manager):
    model, clip = sd1
    base = outputs(manager, model, clip)
    name = tm.tiny_lora(models_dir, "diffusers")
    (model_only,) = LoraLoaderModelOnly().load_lora_model_only(model, name, 0.8)
    out = outputs(manager, model_only, clip)
    assert not torch.equal(out[0], base[0]) and torch.equal(out[1], base[1])
    half_clip = LoraLoader().load_lora(model, clip, name, 0.0, 0.5)
    out = outputs(manager, *half_clip)
    assert torch.equal(out[0], base[0]) and not torch.equal(out[1], base[1])


def test_two_loras_with_weights(sd1, models_dir, manager):
    model, clip = sd1
    a = tm.tiny_lora(models_dir, "diffusers")
    b = tm.tiny_lora(models_dir, "kohya")
    base = outputs(manager, model, clip)
    ab = outputs(manager, *LoraLoader().load_lora(*LoraLoader().load_lora(model, clip, a, 0.7, 0.7), b, 0.4, 0.4))
    ba = outputs(manager, *LoraLoader().load_lora(*LoraLoader().load_lora(model, clip, a, 0.4, 0.4), b, 0.7, 0.7))
    only_a = outputs(manager, *LoraLoader().load_lora(model, clip, a, 0.7, 0.7))
    for x, y in ((ab, ba), (ab, only_a), (ab, base)):
        assert not torch.equal(x[0], y[0]) and not torch.equal(x[1], y[1])
    # In a linear layer, LoRA deltas add up: check one attention projection exactly.
    unet = manager.unet_for(LoraLoader().load_lora(*LoraLoader().load_lora(model, clip, a, 0.7, 0.7), b, 0.4, 0.4)[0])
    layer = unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q
    x = torch.randn(3, 32)
    with torch.no_grad():
        both = layer(x)
        lora.activate(unet, "unet", [LoraRef(str(models_dir / "loras" / a), 0.7)], "sd1")
        da = layer(x) - layer.base_layer(x)
        lora.activate(unet, "unet", [LoraRef(str(models_dir / "loras" / b), 0.4)], "sd1")
        db = layer(x) - layer.base_layer(x)
    torch.testing.assert_close(both, layer.base_layer(x) + da + db, rtol=1e-5, atol=1e-6)
    assert torch.equal(outputs(manager, model, clip)[0], base[0])


def test_matches_diffusers_pipeline_loading(sd1, models_dir, manager, tiny_cache):
    """Same numbers as diffusers' own load_lora_weights + set_adapters on the same weights."""
    from diffusers import StableDiffusionPipeline

    model, clip = sd1
    name = tm.tiny_lora(models_dir, "kohya")
    ours = outputs(manager, *LoraLoader().load_lora(model, clip, name, 0.6, 0.6))
    pipe = StableDiffusionPipeline.from_pretrained(tiny_cache / "diffusers" / "tiny-sd1", safety_checker=None,
                                                   local_files_only=True)
    pipe.load_lora_weights(str(models_dir / "loras" / name), adapter_name="x")
    pipe.set_adapters(["x"], [0.6])
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 8, 8, generator=gen)
    ctx = torch.randn(1, 77, 32, generator=gen)
    ids = torch.tensor([[49406, 320, 1125, 539, 320, 2368, 49407] + [49407] * 70])
    with torch.no_grad():
        torch.testing.assert_close(pipe.unet(x, 10, encoder_hidden_states=ctx).sample, ours[0])
        torch.testing.assert_close(pipe.text_encoder(ids).last_hidden_state, ours[1])


def test_sdxl_kohya_lora_on_both_text_encoders(models_dir, manager):
    model, clip, _ = CheckpointLoaderSimple().load_checkpoint(tm.tiny_sdxl_checkpoint(models_dir))
    name = tm.tiny_lora(models_dir, "sdxl_kohya")
    assert lora.parts_in(models_dir / "loras" / name, "sdxl") == {"unet", "text_encoder", "text_encoder_2"}
    ids = torch.tensor([[49406, 320, 2368, 49407] + [0] * 73])
    with torch.no_grad():
        base = [te(ids).last_hidden_state for te in manager.text_encoders_for(clip)]
        _, with_lora = LoraLoader().load_lora(model, clip, name, 1.0, 1.0)
        on = [te(ids).last_hidden_state for te in manager.text_encoders_for(with_lora)]
    assert all(not torch.equal(a, b) for a, b in zip(base, on))
    x, ctx = torch.randn(1, 4, 8, 8), torch.randn(1, 77, 96)
    cond = {"text_embeds": torch.randn(1, 64), "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]])}
    with torch.no_grad():
        plain = manager.unet_for(model)(x, 5, encoder_hidden_states=ctx, added_cond_kwargs=cond).sample
        lora_model = LoraLoader().load_lora(model, clip, name, 1.0, 1.0)[0]
        changed = manager.unet_for(lora_model)(x, 5, encoder_hidden_states=ctx, added_cond_kwargs=cond).sample
        again = manager.unet_for(model)(x, 5, encoder_hidden_states=ctx, added_cond_kwargs=cond).sample
    assert not torch.equal(plain, changed) and torch.equal(plain, again)


def test_not_a_lora(models_dir, manager, sd1):
    model, clip = sd1
    tm.tiny_embedding(models_dir)
    import shutil

    shutil.copy(models_dir / "embeddings" / "tiny-emb.safetensors", models_dir / "loras" / "emb.safetensors")
    with pytest.raises(ModelLoadError, match="emb.safetensors holds no UNet or text-encoder LoRA weights"):
        LoraLoader().load_lora(model, clip, "emb.safetensors", 1.0, 1.0)


def test_adapter_names_follow_the_file_version(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"1")
    first = lora.adapter_name(path)
    import os

    os.utime(path, ns=(1, 10**18))
    assert lora.adapter_name(path) != first and "." not in first

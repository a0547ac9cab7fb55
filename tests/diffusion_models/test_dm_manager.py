"""The model manager: caching by file version, LRU unloading under a RAM budget, in-use protection, /free."""

from __future__ import annotations

import os

import pytest
import torch

from nodes import context
from nodes.diffusion.management import ModelManager, file_key, model_manager
from nodes.diffusion.nodes_loaders import CheckpointLoaderSimple
from nodes.diffusion.types import LoadedComponent, ModelRef
from tests import tiny_models as tm


def linear_loader(counter: dict, name: str, size: int = 256):
    def load():
        counter[name] = counter.get(name, 0) + 1
        torch.manual_seed(len(name))
        return torch.nn.Linear(size, size), {"component": "unet"}
    return load


def test_lru_unloads_under_a_ram_budget():
    one = 256 * 256 * 4 + 256 * 4
    mm = ModelManager(device="cpu", ram_budget_bytes=int(2.5 * one))
    loads: dict = {}
    a = mm.load("a", "sd1", linear_loader(loads, "a"))
    b = mm.load("b", "sd1", linear_loader(loads, "b"))
    weight_a = a.module.weight.clone()
    c = mm.load("c", "sd1", linear_loader(loads, "c"))
    assert a.module is None and b.module is not None and c.module is not None   # a was least recent
    assert mm.loaded_keys() == ["b", "c"]
    module = mm.prepare(a)                                   # using it again reloads it, evicting b
    assert loads == {"a": 2, "b": 1, "c": 1} and torch.equal(module.weight, weight_a)
    assert b.module is None and mm.loaded_keys() == ["c", "a"]
    assert mm.stats()["ram_bytes"] <= mm.ram_budget


def test_in_memory_components_are_never_unloaded():
    one = 256 * 256 * 4 + 256 * 4
    mm = ModelManager(device="cpu", ram_budget_bytes=one)
    pinned = mm.register(LoadedComponent("mine", torch.nn.Linear(256, 256), "sd1"))
    loads: dict = {}
    other = mm.load("other", "sd1", linear_loader(loads, "other"))
    mm.load("third", "sd1", linear_loader(loads, "third"))
    assert pinned.module is not None and other.module is None
    mm.free(unload_models=True)
    assert pinned.module is not None and mm.loaded_keys() == ["mine"]
    # a component built in memory can be used directly, without registering it first
    direct = LoadedComponent("direct", torch.nn.Linear(4, 4), "sd1")
    assert mm.unet_for(ModelRef(unet=direct)) is direct.module


def test_components_in_use_by_the_running_node_stay():
    one = 256 * 256 * 4 + 256 * 4
    mm = ModelManager(device="cpu", ram_budget_bytes=int(1.5 * one))
    loads: dict = {}
    ctx = context.NodeContext(prompt_id="p", node_id="3", real_node_id="3", interrupt=context.InterruptFlag())
    token = context.set_current(ctx)
    try:
        a = mm.load("a", "sd1", linear_loader(loads, "a"))
        mm.prepare(a)
        b = mm.load("b", "sd1", linear_loader(loads, "b"))
        mm.prepare(b)
        assert a.module is not None and b.module is not None   # over budget, but both used by node 3
    finally:
        context.reset_current(token)
    mm.load("c", "sd1", linear_loader(loads, "c"))
    assert a.module is None or b.module is None                # outside the node, the budget wins again


def test_free_keeps_or_drops(models_dir, manager):
    model, clip, vae = CheckpointLoaderSimple().load_checkpoint(tm.tiny_sd1_checkpoint(models_dir))
    manager.free(unload_models=False)
    assert model.unet.module is not None
    manager.free(unload_models=True)
    assert model.unet.module is None and clip.encoders[0].module is None and vae.vae.module is None
    unet = manager.unet_for(model)                          # reloaded from the file on demand
    assert unet is model.unet.module and isinstance(unet, torch.nn.Module)


def test_a_changed_file_is_a_new_model(models_dir, manager):
    name = tm.tiny_sd1_checkpoint(models_dir)
    first = CheckpointLoaderSimple().load_checkpoint(name)[0]
    path = models_dir / "checkpoints" / name
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    second = CheckpointLoaderSimple().load_checkpoint(name)[0]
    assert first.unet.key != second.unet.key and second.unet.key == file_key(path, "unet")
    assert first.unet.key not in manager.loaded_keys()         # the old version was dropped


def test_settings_and_singleton(monkeypatch):
    from nodes.diffusion.management import configure_model_manager

    monkeypatch.setenv("LOOM_RAM_BUDGET_GB", "0.5")
    mm = configure_model_manager(device="cpu")
    assert model_manager() is mm and mm.ram_budget == 2**29
    assert mm.device.type == "cpu" and mm.dtype == torch.float32 and mm.vae_dtype == torch.float32
    stats = mm.stats()
    assert stats["device"] == "cpu" and stats["loaded"] == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_vram_lru_and_low_vram_on_cuda(models_dir):
    from nodes.diffusion.management import configure_model_manager
    from nodes.diffusion.nodes_loaders import LoraLoader
    from nodes.diffusion.text_encoding import encode_text

    mm = configure_model_manager(device="cuda", dtype="fp16")
    model, clip, vae = CheckpointLoaderSimple().load_checkpoint(tm.tiny_sd1_checkpoint(models_dir))
    unet = mm.unet_for(model)
    assert next(unet.parameters()).device.type == "cuda" and next(unet.parameters()).dtype == torch.float16
    base, _ = encode_text(clip, "a (red:1.2) fox")
    lora_model, lora_clip = LoraLoader().load_lora(model, clip, tm.tiny_lora(models_dir, "kohya"), 1.0, 1.0)
    with_lora, _ = encode_text(lora_clip, "a (red:1.2) fox")        # LoRA layers follow the base to the GPU
    assert base.dtype == torch.float32 and not torch.equal(base, with_lora)
    assert torch.equal(encode_text(clip, "a (red:1.2) fox")[0], base)
    assert all(p.device.type == "cuda" for p in mm.unet_for(lora_model).parameters())
    mm.vram_budget = model.unet.size_bytes() + 1024      # room for one UNet: the next model pushes it out
    mm.vae_for(vae)
    assert next(unet.parameters()).device.type == "cpu" and mm.keys_on_device() == [vae.vae.key]
    mm.low_vram = True
    unet = mm.unet_for(model)
    with torch.no_grad():
        out = unet(torch.randn(1, 4, 8, 8, device="cuda", dtype=torch.float16), 5,
                   encoder_hidden_states=torch.randn(1, 77, 32, device="cuda", dtype=torch.float16)).sample
    assert out.device.type == "cuda" and next(unet.parameters()).device.type == "cpu"
    from nodes.diffusion.nodes_loaders import CLIPLoader

    (cpu_clip,) = CLIPLoader().load_clip(tm.tiny_component(models_dir, "clip_l", "sd1"), "stable_diffusion", "cpu")
    (encoder,) = mm.text_encoders_for(cpu_clip)
    assert next(encoder.parameters()).device.type == "cpu" and encode_text(cpu_clip, "a fox")[0].shape == (1, 77, 32)
    mm.free()

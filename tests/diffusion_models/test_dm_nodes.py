"""The loader and text nodes speak ComfyUI's interface, register as built-ins and import light."""

from __future__ import annotations

import subprocess
import sys

from nodes.interface import NodeDef
from nodes.registry import builtin_registry

EXPECTED = {
    # class_type: (input names in order, RETURN_TYPES, FUNCTION, CATEGORY)
    "CheckpointLoaderSimple": (["ckpt_name"], ("MODEL", "CLIP", "VAE"), "load_checkpoint", "loaders"),
    "DiffusersLoader": (["model_path"], ("MODEL", "CLIP", "VAE"), "load_checkpoint", "advanced/loaders/deprecated"),
    "UNETLoader": (["unet_name", "weight_dtype"], ("MODEL",), "load_unet", "advanced/loaders"),
    "CLIPLoader": (["clip_name", "type", "device"], ("CLIP",), "load_clip", "advanced/loaders"),
    "DualCLIPLoader": (["clip_name1", "clip_name2", "type", "device"], ("CLIP",), "load_clip", "advanced/loaders"),
    "VAELoader": (["vae_name"], ("VAE",), "load_vae", "loaders"),
    "LoraLoader": (["model", "clip", "lora_name", "strength_model", "strength_clip"], ("MODEL", "CLIP"),
                   "load_lora", "loaders"),
    "LoraLoaderModelOnly": (["model", "lora_name", "strength_model"], ("MODEL",), "load_lora_model_only", "loaders"),
    "ControlNetLoader": (["control_net_name"], ("CONTROL_NET",), "load_controlnet", "loaders"),
    "CLIPTextEncode": (["text", "clip"], ("CONDITIONING",), "encode", "conditioning"),
    "CLIPSetLastLayer": (["clip", "stop_at_clip_layer"], ("CLIP",), "set_last_layer", "conditioning"),
    "CLIPTextEncodeSDXL": (["width", "height", "crop_w", "crop_h", "target_width", "target_height", "text_g", "clip",
                            "text_l"], ("CONDITIONING",), "encode", "advanced/conditioning"),
    "CLIPTextEncodeSDXLRefiner": (["ascore", "width", "height", "text", "clip"], ("CONDITIONING",), "encode",
                                  "advanced/conditioning"),
}


def test_nodes_match_comfyui(data_dirs):
    registry = builtin_registry()
    for name, (inputs, returns, function, category) in EXPECTED.items():
        node = registry.get(name)
        assert node is not None, f"{name} not registered: {registry.load_errors}"
        assert isinstance(node, NodeDef)
        assert [i for i in node.inputs() if node.inputs()[i].section != "hidden"] == inputs, name
        assert (node.return_types, node.function_name, node.category) == (returns, function, category), name
        assert callable(getattr(node.cls, function))
    info = registry.object_info("CLIPSetLastLayer")["CLIPSetLastLayer"]
    assert info["input"]["required"]["stop_at_clip_layer"] == ["INT", {"default": -1, "min": -24, "max": -1, "step": 1}]
    types = registry.get("UNETLoader").inputs()["weight_dtype"].combo_options
    assert types == ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]
    assert registry.display_names()["CheckpointLoaderSimple"] == "Load Checkpoint"


def test_combos_list_model_files(models_dir):
    from nodes.diffusion.nodes_loaders import CheckpointLoaderSimple, LoraLoader, VAELoader
    from tests import tiny_models as tm

    assert CheckpointLoaderSimple.INPUT_TYPES()["required"]["ckpt_name"][0] == []
    tm.tiny_sd1_checkpoint(models_dir)
    tm.tiny_lora(models_dir, "kohya")
    tm.tiny_component(models_dir, "vae", "sd1")
    assert CheckpointLoaderSimple.INPUT_TYPES()["required"]["ckpt_name"][0] == ["tiny-sd1.safetensors"]
    assert LoraLoader.INPUT_TYPES()["required"]["lora_name"][0] == ["tiny-sd1-lora-kohya.safetensors"]
    assert VAELoader.INPUT_TYPES()["required"]["vae_name"][0] == ["tiny-sd1-vae.safetensors"]


def test_node_modules_import_without_torch_or_diffusers():
    code = ("import sys, nodes.diffusion.nodes_loaders, nodes.diffusion.nodes_text; "
            "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'peft') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_network_was_touched(no_network):
    assert no_network == []

"""Upscale-model nodes with ComfyUI's names: UpscaleModelLoader and ImageUpscaleWithModel (spandrel).

Loom installs without torchvision. spandrel imports it for two architectures only (LaMa,
RestoreFormer), at import time; so `import spandrel` is done with a stand-in
`torchvision.transforms.functional` in sys.modules, removed again right after, whose functions raise
an error naming torchvision if one of those two models is ever run. Every other architecture
(ESRGAN, Real-ESRGAN Compact, SwinIR, HAT, DAT, ...) works as usual.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
import sys
import types

import torch

from nodes import paths
from nodes.diffusion.nodes_vae import tiled
from nodes.diffusion.types import UpscaleModelRef

_TORCHVISION_MISSING = ("this upscale model's architecture (LaMa or RestoreFormer) needs torchvision, which is "
                        "not installed: Loom installs without it. Install the torchvision build that matches "
                        "your torch to use it.")


class _InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _needs_torchvision(*_args, **_kwargs):
    raise RuntimeError(_TORCHVISION_MISSING)


def _torchvision_stand_in() -> dict[str, types.ModuleType]:
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = _InterpolationMode
    functional.rotate = _needs_torchvision
    functional.normalize = _needs_torchvision
    functional.__loom_stand_in__ = True
    transforms = types.ModuleType("torchvision.transforms")
    transforms.functional = functional
    root = types.ModuleType("torchvision")
    root.transforms = transforms
    root.__loom_stand_in__ = True
    return {"torchvision": root, "torchvision.transforms": transforms, "torchvision.transforms.functional": functional}


def import_spandrel():
    """`import spandrel`, with the torchvision stand-in only while it imports (if torchvision is absent)."""
    if "spandrel" in sys.modules:
        return sys.modules["spandrel"]
    if importlib.util.find_spec("torchvision") is not None:
        return importlib.import_module("spandrel")
    stand_in = _torchvision_stand_in()
    sys.modules.update(stand_in)
    try:
        return importlib.import_module("spandrel")
    finally:
        # Other libraries probe for torchvision; they must keep seeing that it is not installed.
        for name, module in stand_in.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


def load_state_dict(path) -> dict:
    path = str(path)
    if path.endswith((".safetensors", ".sft")):
        from safetensors.torch import load_file

        return load_file(path)
    data = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("params_ema", "params", "state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    return data


class UpscaleModelLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model_name": (paths.get_filename_list("upscale_models"),)}}

    RETURN_TYPES = ("UPSCALE_MODEL",)
    FUNCTION = "load_model"
    CATEGORY = "loaders"

    def load_model(self, model_name):
        spandrel = import_spandrel()
        path = paths.get_full_path_or_raise("upscale_models", model_name)
        sd = load_state_dict(path)
        if "module.layers.0.residual_group.blocks.0.norm1.weight" in sd:   # DataParallel-saved SwinIR
            sd = {k.removeprefix("module."): v for k, v in sd.items()}
        try:
            model = spandrel.ModelLoader().load_from_state_dict(sd).eval()
        except spandrel.UnsupportedModelError as e:
            raise ValueError(f"UpscaleModelLoader: {model_name} is not an upscale model architecture spandrel "
                             f"knows ({e})") from e
        if not isinstance(model, spandrel.ImageModelDescriptor):
            raise ValueError(f"UpscaleModelLoader: {model_name} is a {type(model).__name__}; an upscale model "
                             "must be a single-image model")
        return (UpscaleModelRef(model=model, scale=int(model.scale)),)


def _device() -> torch.device:
    try:
        from nodes.diffusion.management import model_manager

        return torch.device(model_manager().device)
    except (ImportError, AttributeError):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class ImageUpscaleWithModel:
    TILE, OVERLAP = 512, 32

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"upscale_model": ("UPSCALE_MODEL",), "image": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"
    CATEGORY = "image/upscaling"

    def upscale(self, upscale_model, image):
        if not isinstance(upscale_model, UpscaleModelRef):
            raise TypeError(f"ImageUpscaleWithModel: upscale_model must be an UPSCALE_MODEL, "
                            f"got {type(upscale_model).__name__}")
        if not torch.is_tensor(image) or image.ndim != 4:
            raise TypeError("ImageUpscaleWithModel: image must be an IMAGE [B,H,W,C]")
        descriptor = upscale_model.model
        device = _device()
        channels = int(getattr(descriptor, "input_channels", 3))
        pixels = image[..., :channels].movedim(-1, 1).float()
        descriptor.to(device)
        tile = self.TILE
        try:
            while True:
                try:
                    with torch.inference_mode():
                        out = tiled(lambda t: descriptor(t.to(device)), pixels, tile, self.OVERLAP,
                                    float(upscale_model.scale), int(getattr(descriptor, "output_channels", 3)))
                    break
                except torch.OutOfMemoryError:
                    tile //= 2
                    if tile < 128:
                        raise
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
        finally:
            descriptor.to("cpu")
        return (out.movedim(1, -1).clamp(0.0, 1.0),)


NODE_CLASS_MAPPINGS = {
    "UpscaleModelLoader": UpscaleModelLoader,
    "ImageUpscaleWithModel": ImageUpscaleWithModel,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "UpscaleModelLoader": "Load Upscale Model",
    "ImageUpscaleWithModel": "Upscale Image (using Model)",
}

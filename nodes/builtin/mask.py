"""Mask nodes with ComfyUI's names and semantics (nodes.py LoadImageMask, comfy_extras/nodes_mask.py).

A MASK is float32 [B,H,W] in 0..1; every node accepts [H,W] and [B,1,H,W] too and returns [B,H,W].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nodes import paths
from nodes.builtin.image import input_image_hash, resolve_input_image, validate_input_image
from nodes.builtin.values import check_image, check_mask
from nodes.image_files import load_image_channel
from nodes.interface import MAX_RESOLUTION
from nodes.tensor_ops import edge_ramp, repeat_to_batch

CHANNELS = ["alpha", "red", "green", "blue"]


def _int(default: int, lo: int, hi: int = MAX_RESOLUTION) -> tuple:
    return ("INT", {"default": default, "min": lo, "max": hi, "step": 1})


class LoadImageMask:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": (paths.list_input_images(), {"image_upload": True}), "channel": (CHANNELS,)}}

    RETURN_TYPES = ("MASK",)
    FUNCTION = "load_image"
    CATEGORY = "mask"
    DESCRIPTION = "Load one channel of an image as a mask; alpha gives 1 - alpha."

    def load_image(self, image, channel):
        if channel not in CHANNELS:
            raise ValueError(f"LoadImageMask: unknown channel {channel!r} (expected one of {CHANNELS})")
        return (load_image_channel(resolve_input_image(image), channel),)

    @classmethod
    def IS_CHANGED(cls, image, channel):
        return input_image_hash(image)

    @classmethod
    def VALIDATE_INPUTS(cls, image):
        return validate_input_image(image)


class SolidMask:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
                             "width": _int(512, 1), "height": _int(512, 1)}}

    RETURN_TYPES = ("MASK",)
    FUNCTION = "solid"
    CATEGORY = "mask"
    DESCRIPTION = "A [1,H,W] mask filled with one value."

    def solid(self, value, width, height):
        return (torch.full((1, height, width), float(value), dtype=torch.float32),)


class InvertMask:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",)}}

    RETURN_TYPES = ("MASK",)
    FUNCTION = "invert"
    CATEGORY = "mask"
    DESCRIPTION = "1 - mask."

    def invert(self, mask):
        return (1.0 - check_mask(mask, "InvertMask"),)


MASK_OPERATIONS = {
    "multiply": lambda d, s: d * s,
    "add": lambda d, s: d + s,
    "subtract": lambda d, s: d - s,
    "and": lambda d, s: (d.round().bool() & s.round().bool()).float(),
    "or": lambda d, s: (d.round().bool() | s.round().bool()).float(),
    "xor": lambda d, s: (d.round().bool() ^ s.round().bool()).float(),
}


class MaskComposite:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"destination": ("MASK",), "source": ("MASK",), "x": _int(0, 0), "y": _int(0, 0),
                             "operation": (list(MASK_OPERATIONS),)}}

    RETURN_TYPES = ("MASK",)
    FUNCTION = "combine"
    CATEGORY = "mask"
    DESCRIPTION = "Combine source into destination at (x, y); and/or/xor round both to 0/1; the result is clamped to 0..1."

    def combine(self, destination, source, x, y, operation):
        if operation not in MASK_OPERATIONS:
            raise ValueError(f"MaskComposite: unknown operation {operation!r} (expected one of {list(MASK_OPERATIONS)})")
        dest = check_mask(destination, "MaskComposite", "destination")
        src = check_mask(source, "MaskComposite", "source")
        batch = max(dest.shape[0], src.shape[0])
        out = repeat_to_batch(dest, batch).clone()
        src = repeat_to_batch(src, batch)
        bottom, right = min(y + src.shape[1], out.shape[1]), min(x + src.shape[2], out.shape[2])
        if bottom > y and right > x:
            region = out[:, y:bottom, x:right]
            out[:, y:bottom, x:right] = MASK_OPERATIONS[operation](region, src[:, :bottom - y, :right - x])
        return (out.clamp(0.0, 1.0),)


class FeatherMask:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",), "left": _int(0, 0), "top": _int(0, 0), "right": _int(0, 0), "bottom": _int(0, 0)}}

    RETURN_TYPES = ("MASK",)
    FUNCTION = "feather"
    CATEGORY = "mask"
    DESCRIPTION = "Fade the mask linearly to 0 over the given number of pixels from each edge."

    def feather(self, mask, left, top, right, bottom):
        mask = check_mask(mask, "FeatherMask")
        h, w = mask.shape[1:]
        left, right, top, bottom = min(left, w), min(right, w), min(top, h), min(bottom, h)
        cols = edge_ramp(w, left) * edge_ramp(w, right).flip(0)
        rows = edge_ramp(h, top) * edge_ramp(h, bottom).flip(0)
        return (mask * rows[:, None] * cols[None, :],)


class ThresholdMask:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",), "value": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01})}}

    RETURN_TYPES = ("MASK",)
    FUNCTION = "image_to_mask"
    CATEGORY = "mask"
    DESCRIPTION = "1 where mask > value, else 0."

    def image_to_mask(self, mask, value):
        return ((check_mask(mask, "ThresholdMask") > value).float(),)


class ImageToMask:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "channel": (["red", "green", "blue", "alpha"],)}}

    RETURN_TYPES = ("MASK",)
    FUNCTION = "image_to_mask"
    CATEGORY = "mask"
    DESCRIPTION = "One channel of the image as a mask (alpha as stored, not inverted)."

    def image_to_mask(self, image, channel):
        image = check_image(image, "ImageToMask")
        names = ["red", "green", "blue", "alpha"]
        if channel not in names:
            raise ValueError(f"ImageToMask: unknown channel {channel!r} (expected one of {names})")
        index = names.index(channel)
        if index >= image.shape[-1]:
            raise ValueError(f"ImageToMask: the image has {image.shape[-1]} channels, so it has no {channel} channel")
        return (image[..., index].clone(),)


class MaskToImage:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "mask_to_image"
    CATEGORY = "mask"
    DESCRIPTION = "The mask as a grey RGB image."

    def mask_to_image(self, mask):
        return (check_mask(mask, "MaskToImage")[..., None].expand(-1, -1, -1, 3).clone(),)


class GrowMask:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",), "expand": _int(0, -MAX_RESOLUTION),
                             "tapered_corners": ("BOOLEAN", {"default": True})}}

    RETURN_TYPES = ("MASK",)
    FUNCTION = "expand_mask"
    CATEGORY = "mask"
    DESCRIPTION = "Grow (expand > 0) or shrink (expand < 0) by one pixel per step; tapered corners use a cross, else a square."

    def expand_mask(self, mask, expand, tapered_corners):
        out = check_mask(mask, "GrowMask").float()[:, None]
        if expand == 0:
            return (out[:, 0].clone(),)
        # Grey dilation/erosion with a 3x3 footprint, edges replicated (scipy's reflect mode for 3x3).
        offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if not (tapered_corners and dy and dx)]
        reduce = torch.maximum if expand > 0 else torch.minimum
        h, w = out.shape[-2:]
        for _ in range(min(abs(expand), h + w)):  # past h + w steps nothing can change
            padded = F.pad(out, (1, 1, 1, 1), mode="replicate")
            result = out
            for dy, dx in offsets:
                result = reduce(result, padded[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w])
            out = result
        return (out[:, 0],)


class CropMask:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",), "x": _int(0, 0), "y": _int(0, 0), "width": _int(512, 1), "height": _int(512, 1)}}

    RETURN_TYPES = ("MASK",)
    FUNCTION = "crop"
    CATEGORY = "mask"
    DESCRIPTION = "Cut a width x height region at (x, y); the region is clipped to the mask."

    def crop(self, mask, x, y, width, height):
        return (check_mask(mask, "CropMask")[:, y:y + height, x:x + width].clone(),)


NODE_CLASS_MAPPINGS = {
    "LoadImageMask": LoadImageMask,
    "SolidMask": SolidMask,
    "InvertMask": InvertMask,
    "MaskComposite": MaskComposite,
    "FeatherMask": FeatherMask,
    "ThresholdMask": ThresholdMask,
    "ImageToMask": ImageToMask,
    "MaskToImage": MaskToImage,
    "GrowMask": GrowMask,
    "CropMask": CropMask,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "LoadImageMask": "Load Image (as Mask)",
    "ImageToMask": "Convert Image to Mask",
    "MaskToImage": "Convert Mask to Image",
}

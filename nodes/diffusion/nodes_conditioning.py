"""Conditioning nodes with ComfyUI's names and semantics.

CONDITIONING is a list of [tensor [B,T,C], options]; these nodes return new lists and never
change their inputs. Areas are stored as ComfyUI does: (height, width, y, x) in units of 8 pixels,
or ("percentage", h, w, y, x).
"""

from __future__ import annotations

import logging

import torch

from nodes.diffusion.nodes_vae import LoadedVAE, _check_image, _check_vae, crop_to_multiple, inpaint_mask
from nodes.interface import MAX_RESOLUTION

log = logging.getLogger("loom.nodes")


def _check_cond(conditioning, node: str, name: str = "conditioning") -> list:
    if not isinstance(conditioning, (list, tuple)) or not all(
            isinstance(c, (list, tuple)) and len(c) >= 2 and torch.is_tensor(c[0]) and isinstance(c[1], dict)
            for c in conditioning):
        raise TypeError(f"{node}: {name} must be a CONDITIONING list of [tensor, options] pairs")
    return list(conditioning)


def set_values(conditioning: list, values: dict) -> list:
    """A copy of the conditioning with `values` set in every entry's options."""
    return [[c[0], dict(c[1], **values)] for c in conditioning]


class ConditioningCombine:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning_1": ("CONDITIONING",), "conditioning_2": ("CONDITIONING",)}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "combine"
    CATEGORY = "conditioning"

    def combine(self, conditioning_1, conditioning_2):
        return (_check_cond(conditioning_1, "ConditioningCombine", "conditioning_1")
                + _check_cond(conditioning_2, "ConditioningCombine", "conditioning_2"),)


class ConditioningAverage:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning_to": ("CONDITIONING",), "conditioning_from": ("CONDITIONING",),
                             "conditioning_to_strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0,
                                                                    "step": 0.01})}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "addWeighted"
    CATEGORY = "conditioning"

    def addWeighted(self, conditioning_to, conditioning_from, conditioning_to_strength):  # noqa: N802 - ComfyUI's name
        to = _check_cond(conditioning_to, "ConditioningAverage", "conditioning_to")
        src = _check_cond(conditioning_from, "ConditioningAverage", "conditioning_from")
        if not src:
            raise ValueError("ConditioningAverage: conditioning_from is empty")
        if len(src) > 1:
            log.warning("ConditioningAverage: conditioning_from has %d entries; only the first is used", len(src))
        w = float(conditioning_to_strength)
        cond_from, pooled_from = src[0][0], src[0][1].get("pooled_output")
        out = []
        for tensor, options in to:
            part = cond_from[:, :tensor.shape[1]]
            if part.shape[1] < tensor.shape[1]:
                pad = torch.zeros(part.shape[0], tensor.shape[1] - part.shape[1], part.shape[2], dtype=part.dtype)
                part = torch.cat([part, pad], dim=1)
            options = dict(options)
            pooled_to = options.get("pooled_output", pooled_from)
            if pooled_from is not None and pooled_to is not None:
                options["pooled_output"] = pooled_to * w + pooled_from * (1.0 - w)
            elif pooled_from is not None:
                options["pooled_output"] = pooled_from
            out.append([tensor * w + part * (1.0 - w), options])
        return (out,)


class ConditioningConcat:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning_to": ("CONDITIONING",), "conditioning_from": ("CONDITIONING",)}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "concat"
    CATEGORY = "conditioning"

    def concat(self, conditioning_to, conditioning_from):
        to = _check_cond(conditioning_to, "ConditioningConcat", "conditioning_to")
        src = _check_cond(conditioning_from, "ConditioningConcat", "conditioning_from")
        if not src:
            raise ValueError("ConditioningConcat: conditioning_from is empty")
        if len(src) > 1:
            log.warning("ConditioningConcat: conditioning_from has %d entries; only the first is used", len(src))
        cond_from = src[0][0]
        return ([[torch.cat((t, cond_from.to(t.dtype)), dim=1), dict(o)] for t, o in to],)


class ConditioningSetArea:
    @classmethod
    def INPUT_TYPES(cls):
        size = {"min": 64, "max": MAX_RESOLUTION, "step": 8}
        pos = {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}
        return {"required": {"conditioning": ("CONDITIONING",),
                             "width": ("INT", {"default": 64, **size}), "height": ("INT", {"default": 64, **size}),
                             "x": ("INT", pos), "y": ("INT", pos),
                             "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01})}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "append"
    CATEGORY = "conditioning"

    def append(self, conditioning, width, height, x, y, strength):
        cond = _check_cond(conditioning, "ConditioningSetArea")
        return (set_values(cond, {"area": (height // 8, width // 8, y // 8, x // 8), "strength": strength,
                                  "set_area_to_bounds": False}),)


class ConditioningSetAreaPercentage:
    @classmethod
    def INPUT_TYPES(cls):
        frac = {"min": 0, "max": 1.0, "step": 0.01}
        return {"required": {"conditioning": ("CONDITIONING",),
                             "width": ("FLOAT", {"default": 1.0, **frac}), "height": ("FLOAT", {"default": 1.0, **frac}),
                             "x": ("FLOAT", {"default": 0, **frac}), "y": ("FLOAT", {"default": 0, **frac}),
                             "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01})}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "append"
    CATEGORY = "conditioning"

    def append(self, conditioning, width, height, x, y, strength):
        cond = _check_cond(conditioning, "ConditioningSetAreaPercentage")
        return (set_values(cond, {"area": ("percentage", height, width, y, x), "strength": strength,
                                  "set_area_to_bounds": False}),)


class ConditioningSetAreaStrength:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning": ("CONDITIONING",),
                             "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01})}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "append"
    CATEGORY = "conditioning"

    def append(self, conditioning, strength):
        return (set_values(_check_cond(conditioning, "ConditioningSetAreaStrength"), {"strength": strength}),)


class ConditioningSetMask:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning": ("CONDITIONING",), "mask": ("MASK",),
                             "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}),
                             "set_cond_area": (["default", "mask bounds"],)}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "append"
    CATEGORY = "conditioning"

    def append(self, conditioning, mask, set_cond_area, strength):
        cond = _check_cond(conditioning, "ConditioningSetMask")
        if not torch.is_tensor(mask) or mask.ndim < 2:
            raise TypeError("ConditioningSetMask: mask must be a MASK [B,H,W]")
        if mask.ndim < 3:
            mask = mask.unsqueeze(0)
        return (set_values(cond, {"mask": mask, "set_area_to_bounds": set_cond_area != "default",
                                  "mask_strength": strength}),)


class ConditioningZeroOut:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning": ("CONDITIONING",)}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "zero_out"
    CATEGORY = "advanced/conditioning"

    def zero_out(self, conditioning):
        out = []
        for tensor, options in _check_cond(conditioning, "ConditioningZeroOut"):
            options = dict(options)
            if options.get("pooled_output") is not None:
                options["pooled_output"] = torch.zeros_like(options["pooled_output"])
            out.append([torch.zeros_like(tensor), options])
        return (out,)


class ConditioningSetTimestepRange:
    @classmethod
    def INPUT_TYPES(cls):
        frac = {"min": 0.0, "max": 1.0, "step": 0.001}
        return {"required": {"conditioning": ("CONDITIONING",),
                             "start": ("FLOAT", {"default": 0.0, **frac}), "end": ("FLOAT", {"default": 1.0, **frac})}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "set_range"
    CATEGORY = "advanced/conditioning"

    def set_range(self, conditioning, start, end):
        cond = _check_cond(conditioning, "ConditioningSetTimestepRange")
        return (set_values(cond, {"start_percent": start, "end_percent": end}),)


class InpaintModelConditioning:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"positive": ("CONDITIONING",), "negative": ("CONDITIONING",), "vae": ("VAE",),
                             "pixels": ("IMAGE",), "mask": ("MASK",),
                             "noise_mask": ("BOOLEAN", {"default": True, "tooltip": "Add a noise mask to the "
                                                        "latent so sampling only happens within the mask."})}}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    FUNCTION = "encode"
    CATEGORY = "conditioning/inpaint"

    def encode(self, positive, negative, pixels, vae, mask, noise_mask=True):
        v = LoadedVAE(_check_vae(vae, "InpaintModelConditioning"))
        pixels = _check_image(pixels, "InpaintModelConditioning")
        mask = inpaint_mask(mask, pixels.shape[1], pixels.shape[2], "InpaintModelConditioning")
        pixels = crop_to_multiple(pixels, v.downscale)
        mask = crop_to_multiple(mask.movedim(1, -1), v.downscale).movedim(-1, 1)
        keep = (1.0 - mask.round()).movedim(1, -1)
        masked = (pixels[..., :3] - 0.5) * keep + 0.5
        concat_latent = v.encode(masked)
        latent = {"samples": v.encode(pixels)}
        if noise_mask:
            latent["noise_mask"] = mask
        extra = {"concat_latent_image": concat_latent, "concat_mask": mask}
        return (set_values(_check_cond(positive, "InpaintModelConditioning", "positive"), extra),
                set_values(_check_cond(negative, "InpaintModelConditioning", "negative"), extra), latent)


NODE_CLASS_MAPPINGS = {
    "ConditioningCombine": ConditioningCombine,
    "ConditioningAverage": ConditioningAverage,
    "ConditioningConcat": ConditioningConcat,
    "ConditioningSetArea": ConditioningSetArea,
    "ConditioningSetAreaPercentage": ConditioningSetAreaPercentage,
    "ConditioningSetAreaStrength": ConditioningSetAreaStrength,
    "ConditioningSetMask": ConditioningSetMask,
    "ConditioningZeroOut": ConditioningZeroOut,
    "ConditioningSetTimestepRange": ConditioningSetTimestepRange,
    "InpaintModelConditioning": InpaintModelConditioning,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "ConditioningCombine": "Conditioning (Combine)",
    "ConditioningAverage": "Conditioning (Average)",
    "ConditioningConcat": "Conditioning (Concat)",
    "ConditioningSetArea": "Conditioning (Set Area)",
    "ConditioningSetAreaPercentage": "Conditioning (Set Area with Percentage)",
    "ConditioningSetMask": "Conditioning (Set Mask)",
}

"""Latent nodes that need no model, with ComfyUI's names and semantics (nodes.py).

LATENT is {"samples": [B,C,H,W], "noise_mask"?: [B,1,H,W], "batch_index"?: [int]}. Pixel sizes
map to latent sizes by the VAE's factor of 8; batch_index keeps the per-image noise seeds of a
sub-batch equal to those of the full batch.
"""

from __future__ import annotations

import torch

from nodes.builtin.resize import CROP_METHODS, LATENT_METHODS, common_upscale
from nodes.builtin.values import check_latent, check_mask
from nodes.interface import MAX_RESOLUTION
from nodes.tensor_ops import edge_ramp, repeat_to_batch

LATENT_CHANNELS = 4
LATENT_FACTOR = 8


def _int(default: int, lo: int, hi: int = MAX_RESOLUTION, step: int = 8, **extra) -> tuple:
    return ("INT", {"default": default, "min": lo, "max": hi, "step": step, **extra})


class EmptyLatentImage:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "width": _int(512, 16, tooltip="The width of the latent images in pixels."),
            "height": _int(512, 16, tooltip="The height of the latent images in pixels."),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096, "tooltip": "The number of latent images in the batch."}),
        }}

    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The empty latent image batch.",)
    FUNCTION = "generate"
    CATEGORY = "latent"
    DESCRIPTION = "Create a new batch of empty latent images to be denoised via sampling."

    def generate(self, width, height, batch_size=1):
        shape = (batch_size, LATENT_CHANNELS, height // LATENT_FACTOR, width // LATENT_FACTOR)
        return ({"samples": torch.zeros(shape, dtype=torch.float32)},)


class LatentUpscale:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",), "upscale_method": (LATENT_METHODS,),
                             "width": _int(512, 0), "height": _int(512, 0), "crop": (CROP_METHODS,)}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "upscale"
    CATEGORY = "latent"
    DESCRIPTION = "Resize to width x height pixels (/8 in the latent); a side of 0 keeps the aspect ratio; sides are at least 64."

    def upscale(self, samples, upscale_method, width, height, crop):
        samples = check_latent(samples, "LatentUpscale")
        if width == 0 and height == 0:
            return (samples,)
        h, w = samples["samples"].shape[-2:]
        if width == 0:
            height = max(64, height)
            width = max(64, round(w * height / h))
        elif height == 0:
            width = max(64, width)
            height = max(64, round(h * width / w))
        else:
            width, height = max(64, width), max(64, height)
        out = dict(samples)
        out["samples"] = common_upscale(samples["samples"], width // 8, height // 8, upscale_method, crop)
        return (out,)


class LatentUpscaleBy:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",), "upscale_method": (LATENT_METHODS,),
                             "scale_by": ("FLOAT", {"default": 1.5, "min": 0.01, "max": 8.0, "step": 0.01})}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "upscale"
    CATEGORY = "latent"
    DESCRIPTION = "Resize the latent by a factor."

    def upscale(self, samples, upscale_method, scale_by):
        samples = check_latent(samples, "LatentUpscaleBy")
        h, w = samples["samples"].shape[-2:]
        out = dict(samples)
        out["samples"] = common_upscale(samples["samples"], max(1, round(w * scale_by)), max(1, round(h * scale_by)),
                                        upscale_method)
        return (out,)


class LatentComposite:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples_to": ("LATENT",), "samples_from": ("LATENT",),
                             "x": _int(0, 0), "y": _int(0, 0), "feather": _int(0, 0)}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "composite"
    CATEGORY = "latent"
    DESCRIPTION = "Paste samples_from into samples_to at (x, y) pixels; feather fades the inner edges."

    def composite(self, samples_to, samples_from, x, y, feather=0):
        to = check_latent(samples_to, "LatentComposite", "samples_to")
        src = check_latent(samples_from, "LatentComposite", "samples_from")["samples"]
        x, y, feather = x // 8, y // 8, feather // 8
        out_samples = to["samples"].clone()
        th, tw = out_samples.shape[-2:]
        src = repeat_to_batch(src, out_samples.shape[0])[..., :max(th - y, 0), :max(tw - x, 0)]
        h, w = src.shape[-2:]
        if h and w:
            target = out_samples[..., y:y + h, x:x + w]
            if feather == 0:
                target[...] = src
            else:
                # Fade only the edges that lie inside samples_to, as ComfyUI does.
                rows = edge_ramp(h, feather if y != 0 else 0) * edge_ramp(h, feather if y + h < th else 0).flip(0)
                cols = edge_ramp(w, feather if x != 0 else 0) * edge_ramp(w, feather if x + w < tw else 0).flip(0)
                m = rows[:, None] * cols[None, :]
                target[...] = src * m + target * (1 - m)
        out = dict(to)
        out["samples"] = out_samples
        return (out,)


class LatentFromBatch:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",), "batch_index": ("INT", {"default": 0, "min": 0, "max": 63}),
                             "length": ("INT", {"default": 1, "min": 1, "max": 64})}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "frombatch"
    CATEGORY = "latent/batch"
    DESCRIPTION = "Take `length` latents starting at batch_index; noise_mask and batch_index follow."

    def frombatch(self, samples, batch_index, length):
        samples = check_latent(samples, "LatentFromBatch")
        s_in = samples["samples"]
        n = s_in.shape[0]
        if batch_index < 0:
            batch_index += n
        start = max(0, min(n - 1, batch_index))
        length = max(1, min(n - start, length))
        out = dict(samples)
        out["samples"] = s_in[start:start + length].clone()
        if "noise_mask" in samples:
            masks = samples["noise_mask"]
            out["noise_mask"] = masks.clone() if masks.shape[0] == 1 else repeat_to_batch(masks, n)[start:start + length].clone()
        if "batch_index" in samples:
            out["batch_index"] = list(samples["batch_index"][start:start + length])
        else:
            out["batch_index"] = list(range(start, start + length))
        return (out,)


class RepeatLatentBatch:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",), "amount": ("INT", {"default": 1, "min": 1, "max": 64})}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "repeat"
    CATEGORY = "latent/batch"
    DESCRIPTION = "Repeat the whole batch `amount` times; batch_index continues so repeats get new noise."

    def repeat(self, samples, amount):
        samples = check_latent(samples, "RepeatLatentBatch")
        s_in = samples["samples"]
        out = dict(samples)
        out["samples"] = s_in.repeat((amount,) + (1,) * (s_in.ndim - 1))
        masks = samples.get("noise_mask")
        if masks is not None and masks.shape[0] > 1:
            masks = repeat_to_batch(masks, s_in.shape[0])
            out["noise_mask"] = masks.repeat((amount,) + (1,) * (masks.ndim - 1))
        if "batch_index" in samples:
            indices = list(samples["batch_index"])
            offset = max(indices) - min(indices) + 1
            out["batch_index"] = indices + [x + i * offset for i in range(1, amount) for x in indices]
        return (out,)


class SetLatentNoiseMask:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",), "mask": ("MASK",)}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "set_mask"
    CATEGORY = "latent/inpaint"
    DESCRIPTION = "Only the masked (1) area of the latent is denoised by the sampler."

    def set_mask(self, samples, mask):
        out = dict(check_latent(samples, "SetLatentNoiseMask"))
        out["noise_mask"] = check_mask(mask, "SetLatentNoiseMask")[:, None]
        return (out,)


NODE_CLASS_MAPPINGS = {
    "EmptyLatentImage": EmptyLatentImage,
    "LatentUpscale": LatentUpscale,
    "LatentUpscaleBy": LatentUpscaleBy,
    "LatentComposite": LatentComposite,
    "LatentFromBatch": LatentFromBatch,
    "RepeatLatentBatch": RepeatLatentBatch,
    "SetLatentNoiseMask": SetLatentNoiseMask,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "EmptyLatentImage": "Empty Latent Image",
    "LatentUpscale": "Upscale Latent",
    "LatentUpscaleBy": "Upscale Latent By",
    "LatentComposite": "Latent Composite",
    "LatentFromBatch": "Latent From Batch",
    "RepeatLatentBatch": "Repeat Latent Batch",
    "SetLatentNoiseMask": "Set Latent Noise Mask",
}

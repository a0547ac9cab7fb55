"""Image operations with ComfyUI's names and semantics (nodes.py, comfy_extras/nodes_images.py,
nodes_post_processing.py, nodes_mask.py). Registered through nodes.builtin.image.
"""

from __future__ import annotations

import torch

from nodes.builtin.resize import CROP_METHODS, IMAGE_METHODS, match_channels, resize_mask, upscale_image
from nodes.builtin.values import check_image, check_mask
from nodes.interface import MAX_RESOLUTION
from nodes.tensor_ops import repeat_to_batch


def _int(default: int, lo: int, hi: int = MAX_RESOLUTION, step: int = 1, **extra) -> tuple:
    return ("INT", {"default": default, "min": lo, "max": hi, "step": step, **extra})


class EmptyImage:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"width": _int(512, 1), "height": _int(512, 1), "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
                             "color": _int(0, 0, 0xFFFFFF, display="color")}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "generate"
    CATEGORY = "image"
    DESCRIPTION = "A batch of images filled with one colour (color is 0xRRGGBB)."

    def generate(self, width, height, batch_size=1, color=0):
        rgb = torch.tensor([(color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF], dtype=torch.float32) / 255.0
        return (rgb.expand(batch_size, height, width, 3).clone(),)


class ImageInvert:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "invert"
    CATEGORY = "image"
    DESCRIPTION = "1 - colour for every pixel; an alpha channel is kept as it is."

    def invert(self, image):
        image = check_image(image, "ImageInvert")
        out = 1.0 - image
        if image.shape[-1] == 4:  # alpha is coverage, not colour
            out[..., 3] = image[..., 3]
        return (out,)


class ImageScale:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "upscale_method": (IMAGE_METHODS,),
                             "width": _int(512, 0), "height": _int(512, 0), "crop": (CROP_METHODS,)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"
    CATEGORY = "image/upscaling"
    DESCRIPTION = "Resize to width x height; a side of 0 keeps the aspect ratio, both 0 leave the image as it is."

    def upscale(self, image, upscale_method, width, height, crop):
        image = check_image(image, "ImageScale")
        if width == 0 and height == 0:
            return (image,)
        h, w = image.shape[1:3]
        if width == 0:
            width = max(1, round(w * height / h))
        elif height == 0:
            height = max(1, round(h * width / w))
        return (upscale_image(image, width, height, upscale_method, crop),)


class ImageScaleBy:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "upscale_method": (IMAGE_METHODS,),
                             "scale_by": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 8.0, "step": 0.01})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"
    CATEGORY = "image/upscaling"
    DESCRIPTION = "Resize by a factor."

    def upscale(self, image, upscale_method, scale_by):
        image = check_image(image, "ImageScaleBy")
        h, w = image.shape[1:3]
        return (upscale_image(image, max(1, round(w * scale_by)), max(1, round(h * scale_by)), upscale_method),)


def _soft_light(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    g = torch.where(a <= 0.25, ((16 * a - 12) * a + 4) * a, torch.sqrt(a.clamp_min(0)))
    return torch.where(b <= 0.5, a - (1 - 2 * b) * a * (1 - a), a + (2 * b - 1) * (g - a))


BLEND_MODES = {
    "normal": lambda a, b: b,
    "multiply": lambda a, b: a * b,
    "screen": lambda a, b: 1 - (1 - a) * (1 - b),
    "overlay": lambda a, b: torch.where(a <= 0.5, 2 * a * b, 1 - 2 * (1 - a) * (1 - b)),
    "soft_light": _soft_light,
    "difference": lambda a, b: a - b,  # ComfyUI's: signed, then clamped (not |a - b|)
}


class ImageBlend:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image1": ("IMAGE",), "image2": ("IMAGE",),
                             "blend_factor": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01}),
                             "blend_mode": (list(BLEND_MODES),)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "blend_images"
    CATEGORY = "image/postprocessing"
    DESCRIPTION = "image1 * (1 - blend_factor) + mode(image1, image2) * blend_factor; image2 is fitted to image1."

    def blend_images(self, image1, image2, blend_factor, blend_mode):
        image1, image2 = check_image(image1, "ImageBlend", "image1"), check_image(image2, "ImageBlend", "image2")
        if blend_mode not in BLEND_MODES:
            raise ValueError(f"ImageBlend: unknown blend_mode {blend_mode!r} (expected one of {list(BLEND_MODES)})")
        image2 = match_channels(image2, image1.shape[-1])
        if image2.shape[1:3] != image1.shape[1:3]:
            image2 = upscale_image(image2, image1.shape[2], image1.shape[1], "bicubic", "center")
        image2 = repeat_to_batch(image2, image1.shape[0])
        blended = BLEND_MODES[blend_mode](image1, image2)
        return (torch.clamp(image1 * (1 - blend_factor) + blended * blend_factor, 0, 1),)


class ImageCompositeMasked:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"destination": ("IMAGE",), "source": ("IMAGE",), "x": _int(0, 0), "y": _int(0, 0),
                             "resize_source": ("BOOLEAN", {"default": False})},
                "optional": {"mask": ("MASK",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "composite"
    CATEGORY = "image"
    DESCRIPTION = "Paste source onto destination at (x, y), through the mask when one is given."

    def composite(self, destination, source, x, y, resize_source, mask=None):
        dest = check_image(destination, "ImageCompositeMasked", "destination").clone()
        src = match_channels(check_image(source, "ImageCompositeMasked", "source"), dest.shape[-1])
        if resize_source:
            src = upscale_image(src, dest.shape[2], dest.shape[1], "bilinear")
        src = repeat_to_batch(src, dest.shape[0])
        sh, sw = src.shape[1:3]
        alpha = (torch.ones((dest.shape[0], sh, sw)) if mask is None
                 else repeat_to_batch(resize_mask(check_mask(mask, "ImageCompositeMasked"), sh, sw), dest.shape[0]))
        # The visible part of source once placed at (x, y) (x, y may be negative).
        dx0, dy0 = max(x, 0), max(y, 0)
        dx1, dy1 = min(x + sw, dest.shape[2]), min(y + sh, dest.shape[1])
        if dx1 <= dx0 or dy1 <= dy0:
            return (dest,)
        sx0, sy0 = dx0 - x, dy0 - y
        part = src[:, sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0]
        a = alpha[:, sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0, None]
        dest[:, dy0:dy1, dx0:dx1] = part * a + dest[:, dy0:dy1, dx0:dx1] * (1 - a)
        return (dest,)


class ImageBatch:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image1": ("IMAGE",), "image2": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "batch"
    CATEGORY = "image"
    DESCRIPTION = "Join two batches; image2 is resized (bilinear, centre crop) to image1's size."

    def batch(self, image1, image2):
        image1, image2 = check_image(image1, "ImageBatch", "image1"), check_image(image2, "ImageBatch", "image2")
        channels = max(image1.shape[-1], image2.shape[-1])
        image1, image2 = match_channels(image1, channels), match_channels(image2, channels)
        if image2.shape[1:3] != image1.shape[1:3]:
            image2 = upscale_image(image2, image1.shape[2], image1.shape[1], "bilinear", "center")
        return (torch.cat((image1, image2), dim=0),)


class ImageCrop:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "width": _int(512, 1), "height": _int(512, 1), "x": _int(0, 0), "y": _int(0, 0)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "crop"
    CATEGORY = "image/transform"
    DESCRIPTION = "Cut a width x height region at (x, y); the region is clipped to the image."

    def crop(self, image, width, height, x, y):
        image = check_image(image, "ImageCrop")
        x, y = min(x, image.shape[2] - 1), min(y, image.shape[1] - 1)
        return (image[:, y:y + height, x:x + width, :],)


class ImagePadForOutpaint:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "left": _int(0, 0, step=8), "top": _int(0, 0, step=8),
                             "right": _int(0, 0, step=8), "bottom": _int(0, 0, step=8), "feathering": _int(40, 0)}}

    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "expand_image"
    CATEGORY = "image"
    DESCRIPTION = "Pad with grey (0.5) for outpainting; the mask is 1 on the padding, fading into the image by feathering."

    def expand_image(self, image, left, top, right, bottom, feathering):
        image = check_image(image, "ImagePadForOutpaint")
        b, h, w, c = image.shape
        out = torch.full((b, h + top + bottom, w + left + right, c), 0.5, dtype=torch.float32)
        out[:, top:top + h, left:left + w] = image
        mask = torch.ones((h + top + bottom, w + left + right), dtype=torch.float32)
        inner = torch.zeros((h, w), dtype=torch.float32)
        if feathering > 0 and feathering * 2 < h and feathering * 2 < w:
            # Distance of each pixel to the nearest padded edge (unpadded edges do not count).
            i = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
            j = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
            far_h, far_w = torch.full_like(i, h), torch.full_like(j, w)
            d = torch.minimum(torch.minimum(i if top else far_h, (h - i) if bottom else far_h),
                              torch.minimum(j if left else far_w, (w - j) if right else far_w))
            inner = torch.where(d < feathering, ((feathering - d) / feathering) ** 2, inner)
        mask[top:top + h, left:left + w] = inner
        return (out, mask[None])


NODE_CLASS_MAPPINGS = {
    "EmptyImage": EmptyImage,
    "ImageInvert": ImageInvert,
    "ImageScale": ImageScale,
    "ImageScaleBy": ImageScaleBy,
    "ImageBlend": ImageBlend,
    "ImageCompositeMasked": ImageCompositeMasked,
    "ImageBatch": ImageBatch,
    "ImageCrop": ImageCrop,
    "ImagePadForOutpaint": ImagePadForOutpaint,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "EmptyImage": "Empty Image",
    "ImageInvert": "Invert Image",
    "ImageScale": "Upscale Image",
    "ImageScaleBy": "Upscale Image By",
    "ImageBlend": "Image Blend",
    "ImageCompositeMasked": "ImageCompositeMasked",
    "ImageBatch": "Batch Images",
    "ImageCrop": "Image Crop",
    "ImagePadForOutpaint": "Pad Image for Outpainting",
}

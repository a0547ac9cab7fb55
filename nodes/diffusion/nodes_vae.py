"""VAE nodes with ComfyUI's names: VAEDecode, VAEEncode, VAEEncodeForInpaint, VAEDecodeTiled,
VAEEncodeTiled.

LATENT holds the VAE's raw latents (ComfyUI's convention): encode returns the posterior's mean and
decode takes it back; the model's latent scaling is the sampler's business. Images are cropped to a
multiple of the VAE's downscale (8 for real models) before encoding. Tiled decoding and encoding
blend overlapping tiles with linear ramps, so seams do not show.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from nodes import context
from nodes.diffusion.types import VAERef
from nodes.tensor_ops import mask_at_size

BATCH = 4   # images per VAE call


def _manager():
    from nodes.diffusion.management import model_manager

    return model_manager()


def _check_vae(vae, node: str) -> VAERef:
    if not isinstance(vae, VAERef):
        raise TypeError(f"{node}: vae must be a VAE (from a checkpoint or VAE loader), got {type(vae).__name__}")
    return vae


def _check_image(image, node: str, name: str = "pixels") -> torch.Tensor:
    if not torch.is_tensor(image) or image.ndim != 4 or image.shape[-1] not in (1, 3, 4):
        shape = list(image.shape) if torch.is_tensor(image) else type(image).__name__
        raise TypeError(f"{node}: {name} must be an IMAGE [B,H,W,C] with 1, 3 or 4 channels, got {shape}")
    return image


def _check_latent(latent, node: str) -> torch.Tensor:
    if not isinstance(latent, dict) or not torch.is_tensor(latent.get("samples")) or latent["samples"].ndim != 4:
        raise TypeError(f"{node}: samples must be a LATENT {{'samples': [B,C,H,W]}}")
    return latent["samples"]


def crop_to_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """Centre-crop an IMAGE [B,H,W,C] so both sides are multiples of `multiple`."""
    h, w = image.shape[1], image.shape[2]
    nh, nw = (h // multiple) * multiple, (w // multiple) * multiple
    if nh == 0 or nw == 0:
        raise ValueError(f"the image ({w}x{h}) is smaller than one latent cell ({multiple} px)")
    if (nh, nw) == (h, w):
        return image
    y0, x0 = (h % multiple) // 2, (w % multiple) // 2
    return image[:, y0:y0 + nh, x0:x0 + nw, :]


def _rgb(image: torch.Tensor) -> torch.Tensor:
    if image.shape[-1] == 1:
        return image.expand(-1, -1, -1, 3)
    return image[..., :3]


def _vae_input(image: torch.Tensor) -> torch.Tensor:
    """IMAGE [B,H,W,C] in 0..1 -> the VAE's input [B,3,H,W] in -1..1."""
    return _rgb(image).movedim(-1, 1) * 2.0 - 1.0


def _vae_output(x: torch.Tensor) -> torch.Tensor:
    """The VAE's output [B,3,H,W] in -1..1 -> IMAGE [B,H,W,3] in 0..1."""
    return ((x + 1.0) * 0.5).clamp(0.0, 1.0).movedim(1, -1)


class LoadedVAE:
    """The loaded AutoencoderKL of a VAERef, with encode/decode on IMAGE/latent tensors."""

    def __init__(self, ref: VAERef):
        self.ref = ref
        self.module = _manager().vae_for(ref)
        self.device = next(self.module.parameters()).device
        self.dtype = next(self.module.parameters()).dtype
        self.downscale = int(ref.downscale)

    def _run(self, fn, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out = fn(x.to(self.device, self.dtype)).float()
            if self.dtype == torch.float16 and not torch.isfinite(out).all() and torch.isfinite(x).all():
                # fp16 VAEs (SDXL's) overflow on some inputs: redo this call in float32
                self.module.float()
                try:
                    out = fn(x.to(self.device, torch.float32)).float()
                finally:
                    self.module.to(self.dtype)
        return out

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """IMAGE [B,H,W,C] (sides a multiple of the downscale) -> raw latent [B,C,h,w] float32 CPU."""
        outs = []
        for start in range(0, pixels.shape[0], BATCH):
            context.check_interrupt()
            outs.append(self._run(self._encode_raw, _vae_input(pixels[start:start + BATCH])).cpu())
        return torch.cat(outs)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Raw latent [B,C,h,w] -> IMAGE [B,H,W,3] in 0..1, float32 CPU.

        Out of GPU memory, it retries image by image, then in tiles."""
        outs = []
        batch = BATCH
        start = 0
        while start < latent.shape[0]:
            context.check_interrupt()
            chunk = latent[start:start + batch]
            try:
                x = self._run(self._decode_raw, chunk)
            except torch.OutOfMemoryError:
                self._free()
                if batch > 1:
                    batch = 1
                    continue
                tile = max(8, min(512 // self.downscale, max(chunk.shape[-2:]) // 2))
                x = self.decode_tiled(chunk, tile, tile // 4)
            outs.append(_vae_output(x).cpu())
            start += chunk.shape[0]
        return torch.cat(outs)

    def decode_tiled(self, latent: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
        """Raw latent [B,C,h,w] -> the VAE's output [B,3,H,W], decoded in overlapping latent tiles."""
        return tiled(lambda t: self._run(self._decode_raw, t), latent, tile, overlap, self.downscale, 3)

    def _encode_raw(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.module.encode(pixels).latent_dist.mode()

    def _decode_raw(self, latent: torch.Tensor) -> torch.Tensor:
        return self.module.decode(latent).sample

    def _free(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def _positions(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = max(tile - overlap, 1)
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return sorted(set(starts))


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> torch.Tensor:
    """Per-pixel weights along one side of a tile: ramps over the overlap on inner edges."""
    w = torch.ones(length)
    if overlap > 0:
        ramp = (torch.arange(overlap, dtype=torch.float32) + 1) / (overlap + 1)
        n = min(overlap, length)
        if not at_start:
            w[:n] = torch.minimum(w[:n], ramp[:n])
        if not at_end:
            w[-n:] = torch.minimum(w[-n:], ramp[:n].flip(0))
    return w


def tiled(fn, x: torch.Tensor, tile: int, overlap: int, scale: float, out_channels: int) -> torch.Tensor:
    """Apply `fn` ([B,C,t,t] -> [B,out_channels,t*scale,t*scale]) tile by tile over x [B,C,H,W], blending."""
    b, _, h, w = x.shape
    oh, ow = round(h * scale), round(w * scale)
    out = torch.zeros(b, out_channels, oh, ow)
    weight = torch.zeros(1, 1, oh, ow)
    ys, xs = _positions(h, tile, overlap), _positions(w, tile, overlap)
    bar = context.ProgressBar(len(ys) * len(xs))
    out_overlap = round(overlap * scale)
    for y in ys:
        for x0 in xs:
            piece = fn(x[:, :, y:y + tile, x0:x0 + tile])
            th, tw = piece.shape[-2:]
            oy, ox = round(y * scale), round(x0 * scale)
            wy = _ramp(th, out_overlap, y == 0, y + tile >= h)
            wx = _ramp(tw, out_overlap, x0 == 0, x0 + tile >= w)
            mask = (wy[:, None] * wx[None, :])[None, None]
            out[:, :, oy:oy + th, ox:ox + tw] += piece.float().cpu() * mask
            weight[:, :, oy:oy + th, ox:ox + tw] += mask
            bar.update(1)
    return out / weight.clamp_min(1e-8)


def _tile_overlap(tile_size: int, overlap: int) -> tuple[int, int]:
    if tile_size < overlap * 4:
        overlap = tile_size // 4
    return tile_size, overlap


class VAEDecode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT", {"tooltip": "The latent to be decoded."}),
                             "vae": ("VAE", {"tooltip": "The VAE model used for decoding the latent."})}}

    RETURN_TYPES = ("IMAGE",)
    OUTPUT_TOOLTIPS = ("The decoded image.",)
    FUNCTION = "decode"
    CATEGORY = "latent"
    DESCRIPTION = "Decodes latent images back into pixel space images."

    def decode(self, vae, samples):
        latent = _check_latent(samples, "VAEDecode")
        return (LoadedVAE(_check_vae(vae, "VAEDecode")).decode(latent),)


class VAEEncode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"pixels": ("IMAGE",), "vae": ("VAE",)}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "encode"
    CATEGORY = "latent"

    def encode(self, vae, pixels):
        v = LoadedVAE(_check_vae(vae, "VAEEncode"))
        pixels = crop_to_multiple(_check_image(pixels, "VAEEncode"), v.downscale)
        return ({"samples": v.encode(pixels)},)


class VAEDecodeTiled:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples": ("LATENT",), "vae": ("VAE",),
            "tile_size": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 32}),
            "overlap": ("INT", {"default": 64, "min": 0, "max": 4096, "step": 32}),
            "temporal_size": ("INT", {"default": 64, "min": 8, "max": 4096, "step": 4,
                                      "tooltip": "Only used for video VAEs: frames decoded at a time."}),
            "temporal_overlap": ("INT", {"default": 8, "min": 4, "max": 4096, "step": 4,
                                         "tooltip": "Only used for video VAEs: frames to overlap."}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "decode"
    CATEGORY = "_for_testing"

    def decode(self, vae, samples, tile_size, overlap=64, temporal_size=64, temporal_overlap=8):
        latent = _check_latent(samples, "VAEDecodeTiled")
        v = LoadedVAE(_check_vae(vae, "VAEDecodeTiled"))
        tile_size, overlap = _tile_overlap(tile_size, overlap)
        tile, ov = max(1, tile_size // v.downscale), overlap // v.downscale
        return (_vae_output(v.decode_tiled(latent, tile, ov)),)


class VAEEncodeTiled:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "pixels": ("IMAGE",), "vae": ("VAE",),
            "tile_size": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 64}),
            "overlap": ("INT", {"default": 64, "min": 0, "max": 4096, "step": 32}),
            "temporal_size": ("INT", {"default": 64, "min": 8, "max": 4096, "step": 4,
                                      "tooltip": "Only used for video VAEs: frames encoded at a time."}),
            "temporal_overlap": ("INT", {"default": 8, "min": 4, "max": 4096, "step": 4,
                                         "tooltip": "Only used for video VAEs: frames to overlap."}),
        }}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "encode"
    CATEGORY = "_for_testing"

    def encode(self, vae, pixels, tile_size, overlap, temporal_size=64, temporal_overlap=8):
        v = LoadedVAE(_check_vae(vae, "VAEEncodeTiled"))
        pixels = crop_to_multiple(_check_image(pixels, "VAEEncodeTiled"), v.downscale)
        tile_size, overlap = _tile_overlap(tile_size, overlap)
        tile = max(v.downscale, (tile_size // v.downscale) * v.downscale)
        ov = (overlap // v.downscale) * v.downscale
        channels = int(v.ref.latent_channels)
        latent = tiled(lambda t: v._run(v._encode_raw, t), _vae_input(pixels), tile, ov, 1.0 / v.downscale, channels)
        return ({"samples": latent},)


class VAEEncodeForInpaint:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"pixels": ("IMAGE",), "vae": ("VAE",), "mask": ("MASK",),
                             "grow_mask_by": ("INT", {"default": 6, "min": 0, "max": 64, "step": 1})}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "encode"
    CATEGORY = "latent/inpaint"

    def encode(self, vae, pixels, mask, grow_mask_by=6):
        v = LoadedVAE(_check_vae(vae, "VAEEncodeForInpaint"))
        pixels = _check_image(pixels, "VAEEncodeForInpaint")
        mask = inpaint_mask(mask, pixels.shape[1], pixels.shape[2], "VAEEncodeForInpaint")
        pixels, mask = crop_to_multiple(pixels, v.downscale), crop_to_multiple(mask.movedim(1, -1), v.downscale)
        mask = mask.movedim(-1, 1)
        if grow_mask_by > 0:
            kernel = torch.ones(1, 1, grow_mask_by, grow_mask_by)
            padding = math.ceil((grow_mask_by - 1) / 2)
            grown = F.conv2d(mask.round(), kernel, padding=padding).clamp(0, 1)
            grown = grown[:, :, :mask.shape[2], :mask.shape[3]]
        else:
            grown = mask
        keep = (1.0 - mask.round()).movedim(1, -1)
        grey = (_rgb(pixels) - 0.5) * keep + 0.5
        return ({"samples": v.encode(grey), "noise_mask": grown.round()},)


def inpaint_mask(mask, height: int, width: int, node: str) -> torch.Tensor:
    """A MASK of any size -> [B,1,height,width] (bilinear)."""
    if not torch.is_tensor(mask) or mask.ndim < 2:
        raise TypeError(f"{node}: mask must be a MASK [B,H,W]")
    return mask_at_size(mask, height, width)


NODE_CLASS_MAPPINGS = {
    "VAEDecode": VAEDecode,
    "VAEEncode": VAEEncode,
    "VAEEncodeForInpaint": VAEEncodeForInpaint,
    "VAEDecodeTiled": VAEDecodeTiled,
    "VAEEncodeTiled": VAEEncodeTiled,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "VAEDecode": "VAE Decode",
    "VAEEncode": "VAE Encode",
    "VAEEncodeForInpaint": "VAE Encode (for Inpainting)",
    "VAEDecodeTiled": "VAE Decode (Tiled)",
    "VAEEncodeTiled": "VAE Encode (Tiled)",
}

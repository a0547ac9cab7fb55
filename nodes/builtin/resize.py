"""Resizing shared by the image, mask and latent nodes.

Everything works on channel-first tensors [B,C,H,W] (a 5-D video latent [B,C,T,H,W] is resized
frame by frame). Method names are ComfyUI's: nearest-exact, bilinear, area, bicubic (torch),
lanczos (PIL, per channel in float so nothing is quantised) and bislerp (spherical interpolation
of the channel vectors, which keeps latent norms where linear mixing would shrink them).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from nodes.tensor_ops import mask_at_size

TORCH_METHODS = ("nearest-exact", "bilinear", "area", "bicubic")
IMAGE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]
LATENT_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "bislerp"]
CROP_METHODS = ["disabled", "center"]


def center_crop_to_aspect(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Crop the middle of [..., H, W] to the aspect ratio width:height."""
    old_h, old_w = samples.shape[-2:]
    old_aspect, new_aspect = old_w / old_h, width / height
    x = y = 0
    if old_aspect > new_aspect:
        x = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
    return samples[..., y:old_h - y, x:old_w - x]


def lanczos(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Lanczos resize of [B,C,H,W] through PIL's float ("F") images, one channel at a time."""
    if samples.numel() == 0:
        return samples.new_zeros((*samples.shape[:2], height, width))
    out = torch.empty((*samples.shape[:2], height, width), dtype=samples.dtype)
    src = samples.detach().to("cpu", torch.float32).numpy()
    for b in range(src.shape[0]):
        for c in range(src.shape[1]):
            resized = Image.fromarray(src[b, c], mode="F").resize((width, height), Image.Resampling.LANCZOS)
            out[b, c] = torch.from_numpy(np.array(resized, dtype=np.float32))
    # Lanczos rings past the input's range; keep within it (an image stays in 0..1).
    return out.clamp(float(src.min()), float(src.max())).to(samples.device)


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of vectors along dim 1 ([N,C,...]), with norms mixed linearly."""
    a_norm = a.norm(dim=1, keepdim=True)
    b_norm = b.norm(dim=1, keepdim=True)
    a_unit = a / a_norm.clamp_min(1e-12)
    b_unit = b / b_norm.clamp_min(1e-12)
    dot = (a_unit * b_unit).sum(dim=1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.acos(dot)
    sin_omega = torch.sin(omega)
    safe = sin_omega.abs() > 1e-5
    sin_safe = torch.where(safe, sin_omega, torch.ones_like(sin_omega))
    unit = (torch.sin((1 - t) * omega) / sin_safe) * a_unit + (torch.sin(t * omega) / sin_safe) * b_unit
    norm = a_norm * (1 - t) + b_norm * t
    linear = a * (1 - t) + b * t
    # Parallel vectors: nothing to rotate; opposite ones have no unique arc: mix linearly.
    return torch.where(safe, unit * norm, torch.where(dot > 0, a_unit * norm, linear))


def _source_positions(old: int, new: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each output index: the two source indices and the weight of the second (half-pixel centres)."""
    pos = ((torch.arange(new, dtype=torch.float64) + 0.5) * (old / new) - 0.5).clamp(0, old - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=old - 1)
    return lo, hi, (pos - lo).float()


def bislerp(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Bilinear resize of [B,C,H,W] where each 1-D step is a slerp of the C-dim vectors."""
    x = samples.float()
    lo, hi, t = _source_positions(x.shape[-1], width)
    x = _slerp(x[..., lo], x[..., hi], t.view(1, 1, 1, -1))
    lo, hi, t = _source_positions(x.shape[-2], height)
    x = _slerp(x[..., lo, :], x[..., hi, :], t.view(1, 1, -1, 1))
    return x.to(samples.dtype)


def common_upscale(samples: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled") -> torch.Tensor:
    """Resize [B,C,H,W] (or [B,C,T,H,W]) to width x height with one of ComfyUI's methods."""
    if width < 1 or height < 1:
        raise ValueError(f"cannot resize to {width}x{height}: both sides must be at least 1")
    if samples.ndim == 5:
        b, c, t = samples.shape[:3]
        flat = samples.movedim(2, 1).reshape(b * t, c, *samples.shape[-2:])
        out = common_upscale(flat, width, height, method, crop)
        return out.reshape(b, t, c, height, width).movedim(1, 2)
    if samples.ndim != 4:
        raise ValueError(f"expected [B,C,H,W] samples, got shape {list(samples.shape)}")
    if crop == "center":
        samples = center_crop_to_aspect(samples, width, height)
    elif crop != "disabled":
        raise ValueError(f"unknown crop {crop!r} (expected one of {CROP_METHODS})")
    if method == "bislerp":
        return bislerp(samples, width, height)
    if method == "lanczos":
        return lanczos(samples, width, height)
    if method not in TORCH_METHODS:
        raise ValueError(f"unknown upscale method {method!r} (expected one of {IMAGE_METHODS + ['bislerp']})")
    return F.interpolate(samples, size=(height, width), mode=method)


def upscale_image(image: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled") -> torch.Tensor:
    """IMAGE [B,H,W,C] resized (channels-last in and out)."""
    return common_upscale(image.movedim(-1, 1), width, height, method, crop).movedim(1, -1)


def resize_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """MASK of any leading shape to [B,H,W] at the given size (bilinear, as ComfyUI does for masks)."""
    return mask_at_size(mask, height, width)[:, 0]


def match_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """IMAGE [...,C] to `channels` channels: drop extra ones (alpha) or pad with 1.0 (opaque)."""
    have = image.shape[-1]
    if have == channels:
        return image
    if have > channels:
        return image[..., :channels]
    return torch.cat([image, torch.ones((*image.shape[:-1], channels - have), dtype=image.dtype)], dim=-1)

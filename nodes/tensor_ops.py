"""Small tensor helpers shared by the built-in and the diffusion nodes."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def repeat_to_batch(tensor: torch.Tensor, batch: int) -> torch.Tensor:
    """Repeat (or cut) along dim 0 to exactly `batch` entries."""
    if tensor.shape[0] == batch:
        return tensor
    if tensor.shape[0] > batch:
        return tensor[:batch]
    reps = math.ceil(batch / tensor.shape[0])
    return tensor.repeat((reps,) + (1,) * (tensor.ndim - 1))[:batch]


def mask_at_size(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A mask of any leading shape ([H,W], [B,H,W], [B,1,H,W]) as float [B,1,height,width] (bilinear)."""
    mask = mask.float().reshape((-1, 1) + tuple(mask.shape[-2:]))
    if mask.shape[-2:] != (height, width):
        mask = F.interpolate(mask, size=(height, width), mode="bilinear", align_corners=False)
    return mask


def edge_ramp(size: int, width: int) -> torch.Tensor:
    """1/width, 2/width .. 1 over the first `width` entries, 1 after: the fade in from one edge."""
    ramp = torch.ones(size)
    if width > 0:
        n = min(width, size)
        ramp[:n] = (torch.arange(n, dtype=torch.float32) + 1) / width
    return ramp

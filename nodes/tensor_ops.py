"""Small tensor helpers shared by the built-in and the diffusion nodes."""

from __future__ import annotations

import math

import torch


def repeat_to_batch(tensor: torch.Tensor, batch: int) -> torch.Tensor:
    """Repeat (or cut) along dim 0 to exactly `batch` entries."""
    if tensor.shape[0] == batch:
        return tensor
    if tensor.shape[0] > batch:
        return tensor[:batch]
    reps = math.ceil(batch / tensor.shape[0])
    return tensor.repeat((reps,) + (1,) * (tensor.ndim - 1))[:batch]


def edge_ramp(size: int, width: int) -> torch.Tensor:
    """1/width, 2/width .. 1 over the first `width` entries, 1 after: the fade in from one edge."""
    ramp = torch.ones(size)
    if width > 0:
        n = min(width, size)
        ramp[:n] = (torch.arange(n, dtype=torch.float32) + 1) / width
    return ramp

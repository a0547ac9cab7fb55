"""Checks that turn a wrongly shaped IMAGE / MASK / LATENT into an error naming the problem.

Nodes call these on their inputs so that a bad link or a pack's odd tensor fails with
"ImageScale: image must be IMAGE [B,H,W,C] ..." instead of a torch error deep inside.
"""

from __future__ import annotations

from typing import Any

import torch


def check_image(value: Any, node: str, name: str = "image") -> torch.Tensor:
    """An IMAGE [B,H,W,C]; a single [H,W,C] image gets a batch dimension."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{node}: {name} must be an IMAGE tensor, got {type(value).__name__}")
    if value.ndim == 3 and value.shape[-1] in (1, 3, 4):
        value = value[None]
    if value.ndim != 4 or value.shape[0] < 1 or value.shape[1] < 1 or value.shape[2] < 1:
        raise ValueError(f"{node}: {name} must be IMAGE [B,H,W,C] with B,H,W >= 1, got shape {list(value.shape)}")
    return value


def check_mask(value: Any, node: str, name: str = "mask") -> torch.Tensor:
    """A MASK as [B,H,W] ([H,W] and [B,1,H,W] are accepted and reshaped)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{node}: {name} must be a MASK tensor, got {type(value).__name__}")
    if value.ndim < 2 or value.numel() == 0:
        raise ValueError(f"{node}: {name} must be MASK [B,H,W], got shape {list(value.shape)}")
    if value.ndim == 4 and value.shape[1] != 1:
        raise ValueError(f"{node}: {name} must be MASK [B,H,W] or [B,1,H,W], got shape {list(value.shape)}")
    return value.reshape(-1, value.shape[-2], value.shape[-1])


def check_latent(value: Any, node: str, name: str = "samples") -> dict:
    """A LATENT dict whose "samples" is a [B,C,H,W] (or [B,C,T,H,W]) tensor."""
    if not isinstance(value, dict) or not isinstance(value.get("samples"), torch.Tensor):
        raise TypeError(f"{node}: {name} must be a LATENT ({{'samples': tensor, ...}}), got {type(value).__name__}")
    if value["samples"].ndim not in (4, 5):
        raise ValueError(f"{node}: {name}['samples'] must be [B,C,H,W], got shape {list(value['samples'].shape)}")
    return value

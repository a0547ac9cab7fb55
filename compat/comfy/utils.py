"""ComfyUI's `comfy.utils`: progress bars, resizing, tensor-file loading and small helpers.

`ProgressBar` reports through `PROGRESS_BAR_HOOK`, whose default sends Loom progress events for
the running node (and checks for an interrupt), as ComfyUI's server hook does. A pack may replace
the hook with `set_progress_bar_global_hook`, as in ComfyUI.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from _loom_compat import missing_attribute

from nodes import context as _context

PROGRESS_BAR_ENABLED = True


def _loom_progress_hook(value: float, total: float, preview: Any = None, node_id: str | None = None) -> None:
    _context.report_progress(value, total, preview, node_id)


PROGRESS_BAR_HOOK = _loom_progress_hook


def set_progress_bar_enabled(enabled: bool) -> None:
    global PROGRESS_BAR_ENABLED
    PROGRESS_BAR_ENABLED = enabled


def set_progress_bar_global_hook(function: Any) -> None:
    global PROGRESS_BAR_HOOK
    PROGRESS_BAR_HOOK = function


class ProgressBar:
    """`update(1)` per step or `update_absolute(value, total, preview)`; preview may be a PIL image
    or ("JPEG"|"PNG", PIL image, max_size)."""

    def __init__(self, total: int, node_id: str | None = None):
        self.total = total
        self.current = 0
        self.hook = PROGRESS_BAR_HOOK
        self.node_id = node_id

    def update_absolute(self, value: float, total: float | None = None, preview: Any = None) -> None:
        if total is not None:
            self.total = total
        self.current = min(value, self.total) if self.total else value
        if self.hook is not None:
            self.hook(self.current, self.total, preview, node_id=self.node_id)

    def update(self, value: float) -> None:
        self.update_absolute(self.current + value)


# -- resizing --------------------------------------------------------------------------------------
def common_upscale(samples: torch.Tensor, width: int, height: int, upscale_method: str, crop: str) -> torch.Tensor:
    """Resize channel-first [B,C,H,W] (or [B,C,T,H,W]) samples; ComfyUI's method and crop names."""
    from nodes.builtin.resize import common_upscale as resize

    return resize(samples, width, height, upscale_method, crop)


def lanczos(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    from nodes.builtin.resize import lanczos as resize

    return resize(samples, width, height)


def bislerp(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    from nodes.builtin.resize import bislerp as resize

    return resize(samples, width, height)


def get_tiled_scale_steps(width: int, height: int, tile_x: int, tile_y: int, overlap: int) -> int:
    return math.ceil(height / (tile_y - overlap)) * math.ceil(width / (tile_x - overlap))


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, tile - overlap))
    starts.append(size - tile)  # the last tile ends at the edge
    return sorted(set(starts))


@torch.inference_mode()
def tiled_scale(samples: torch.Tensor, function: Any, tile_x: int = 64, tile_y: int = 64, overlap: int = 8,
                upscale_amount: float = 4, out_channels: int = 3, output_device: str = "cpu",
                pbar: ProgressBar | None = None) -> torch.Tensor:
    """Run `function` over overlapping tiles of [B,C,H,W] and blend them with feathered edges.

    `function(tile)` must return the tile scaled by `upscale_amount` with `out_channels` channels.
    """
    b, _, h, w = samples.shape
    out_h, out_w = round(h * upscale_amount), round(w * upscale_amount)
    output = torch.empty((b, out_channels, out_h, out_w), device=output_device)
    feather = max(1, round(overlap * upscale_amount))
    for i in range(b):
        acc = torch.zeros((1, out_channels, out_h, out_w), device=output_device)
        weight = torch.zeros_like(acc)
        for y in _tile_starts(h, tile_y, overlap):
            for x in _tile_starts(w, tile_x, overlap):
                tile = samples[i:i + 1, :, y:y + tile_y, x:x + tile_x]
                scaled = function(tile).to(output_device)
                th, tw = scaled.shape[-2:]
                mask = torch.ones((1, 1, th, tw), device=output_device)
                ramp = torch.arange(1, feather + 1, device=output_device, dtype=mask.dtype) / feather
                n = min(feather, th // 2, tw // 2)
                if overlap > 0 and n > 0:
                    r = ramp[:n]
                    mask[..., :n, :] *= r.view(-1, 1)
                    mask[..., th - n:, :] *= r.flip(0).view(-1, 1)
                    mask[..., :, :n] *= r
                    mask[..., :, tw - n:] *= r.flip(0)
                oy, ox = round(y * upscale_amount), round(x * upscale_amount)
                acc[..., oy:oy + th, ox:ox + tw] += scaled * mask
                weight[..., oy:oy + th, ox:ox + tw] += mask
                if pbar is not None:
                    pbar.update(1)
        output[i:i + 1] = acc / weight.clamp_min(1e-8)
    return output


# -- tensors and files --------------------------------------------------------------------------------
def load_torch_file(ckpt: str, safe_load: bool = False, device: Any = None, return_metadata: bool = False) -> Any:
    """A state dict from .safetensors (or a pickle checkpoint, loaded with weights_only=True)."""
    device = torch.device("cpu") if device is None else device
    metadata = None
    if str(ckpt).lower().endswith((".safetensors", ".sft")):
        import safetensors

        sd = {}
        with safetensors.safe_open(str(ckpt), framework="pt", device=str(device)) as f:
            for k in f.keys():
                sd[k] = f.get_tensor(k)
            metadata = f.metadata() if return_metadata else None
    else:
        data = torch.load(ckpt, map_location=device, weights_only=True)
        sd = data.get("state_dict", data) if isinstance(data, dict) else data
    return (sd, metadata) if return_metadata else sd


def save_torch_file(sd: dict, ckpt: str, metadata: dict | None = None) -> None:
    import safetensors.torch

    safetensors.torch.save_file(sd, ckpt, metadata=metadata)


def calculate_parameters(sd: dict, prefix: str = "") -> int:
    return sum(v.nelement() for k, v in sd.items() if k.startswith(prefix))


def state_dict_key_replace(state_dict: dict, keys_to_replace: dict) -> dict:
    for old, new in keys_to_replace.items():
        if old in state_dict:
            state_dict[new] = state_dict.pop(old)
    return state_dict


def state_dict_prefix_replace(state_dict: dict, replace_prefix: dict, filter_keys: bool = False) -> dict:
    out = {} if filter_keys else state_dict
    for old, new in replace_prefix.items():
        for k in [k for k in state_dict if k.startswith(old)]:
            out[new + k[len(old):]] = state_dict.pop(k)
    return out


def repeat_to_batch_size(tensor: torch.Tensor, batch_size: int, dim: int = 0) -> torch.Tensor:
    n = tensor.shape[dim]
    if n > batch_size:
        return tensor.narrow(dim, 0, batch_size)
    if n < batch_size:
        reps = [1] * tensor.ndim
        reps[dim] = math.ceil(batch_size / n)
        return tensor.repeat(reps).narrow(dim, 0, batch_size)
    return tensor


def resize_to_batch_size(tensor: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Stretch or shrink the batch by picking evenly spaced items."""
    n = tensor.shape[0]
    if n == batch_size:
        return tensor
    if batch_size <= 1:
        return tensor[:batch_size]
    index = torch.linspace(0, n - 1, batch_size).round().long()
    return tensor[index]


def get_attr(obj: Any, attr: str) -> Any:
    for name in attr.split("."):
        obj = getattr(obj, name)
    return obj


def set_attr(obj: Any, attr: str, value: Any) -> Any:
    *parents, last = attr.split(".")
    for name in parents:
        obj = getattr(obj, name)
    prev = getattr(obj, last)
    setattr(obj, last, value)
    return prev


def set_attr_param(obj: Any, attr: str, value: torch.Tensor) -> Any:
    return set_attr(obj, attr, torch.nn.Parameter(value, requires_grad=False))


def copy_to_param(obj: Any, attr: str, value: torch.Tensor) -> None:
    get_attr(obj, attr).data.copy_(value)


__getattr__ = missing_attribute("comfy.utils")

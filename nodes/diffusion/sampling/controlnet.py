"""ControlNet residuals for a batched UNet call, from a ControlApplication chain.

Each application in the chain whose [start_percent, end_percent] covers the current sigma runs
its diffusers ControlNetModel on the same input as the UNet; the outputs (scaled by strength) are
summed and passed to the UNet as down/mid block residuals.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nodes.diffusion.sampling.schedule import NoiseSchedule
from nodes.diffusion.types import ControlApplication
from nodes.tensor_ops import repeat_to_batch


def chain(app: ControlApplication | None) -> list[ControlApplication]:
    out = []
    while app is not None:
        out.append(app)
        app = app.previous
    return out[::-1]


def resize_hint(hint: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """IMAGE [B,H,W,C] -> [B,3,height,width]: centre-cropped to the aspect ratio, nearest-exact."""
    if hint.ndim == 3:
        hint = hint.unsqueeze(0)
    if hint.ndim != 4:
        raise ValueError(f"a ControlNet hint must be an IMAGE [batch, height, width, channels], "
                         f"got shape {tuple(hint.shape)}")
    img = hint.movedim(-1, 1).float()
    if img.shape[1] == 1:
        img = img.expand(-1, 3, -1, -1)
    img = img[:, :3]
    src_h, src_w = img.shape[-2:]
    src_ratio, dst_ratio = src_w / src_h, width / height
    if src_ratio > dst_ratio:
        keep = round(src_h * dst_ratio)
        x0 = (src_w - keep) // 2
        img = img[..., x0:x0 + keep]
    elif src_ratio < dst_ratio:
        keep = round(src_w / dst_ratio)
        y0 = (src_h - keep) // 2
        img = img[..., y0:y0 + keep, :]
    if img.shape[-2:] != (height, width):
        img = F.interpolate(img, size=(height, width), mode="nearest-exact")
    return img


class ControlRunner:
    """Runs the ControlNets of one sampling run; hints are prepared once per shape."""

    def __init__(self, manager, schedule: NoiseSchedule, device: torch.device, dtype: torch.dtype):
        self.manager = manager
        self.schedule = schedule
        self.device, self.dtype = device, dtype
        self._hints: dict[tuple, torch.Tensor] = {}
        self._ranges: dict[int, tuple[float, float]] = {}

    def _active(self, app: ControlApplication, sigma: float) -> bool:
        if app.strength == 0:
            return False
        bounds = self._ranges.get(id(app))
        if bounds is None:
            bounds = (self.schedule.percent_to_sigma(app.start_percent),
                      self.schedule.percent_to_sigma(app.end_percent))
            self._ranges[id(app)] = bounds
        return bounds[1] <= sigma <= bounds[0]

    def _hint(self, app: ControlApplication, model, shape: tuple[int, ...], batch: int, chunks: int) -> torch.Tensor:
        key = (id(app), shape, batch, chunks)
        hint = self._hints.get(key)
        if hint is None:
            embedding = getattr(model.config, "conditioning_embedding_out_channels", (16, 32, 96, 256))
            factor = 2 ** (len(embedding) - 1)
            hint = resize_hint(torch.as_tensor(app.hint), shape[-2] * factor, shape[-1] * factor)
            hint = repeat_to_batch(hint, batch).repeat(chunks, 1, 1, 1)
            hint = hint.to(self.device, self.dtype)
            self._hints[key] = hint
        return hint

    def residuals(self, app: ControlApplication, xin: torch.Tensor, timestep: torch.Tensor,
                  embeds: torch.Tensor, added: dict | None, batch: int, chunks: int, sigma: float
                  ) -> tuple[list[torch.Tensor], torch.Tensor] | None:
        down_total, mid_total = None, None
        for link in chain(app):
            if not self._active(link, sigma):
                continue
            model = self.manager.controlnet_for(link.control)
            hint = self._hint(link, model, tuple(xin.shape), batch, chunks)
            down, mid = model(xin, timestep, encoder_hidden_states=embeds, controlnet_cond=hint,
                              conditioning_scale=float(link.strength), added_cond_kwargs=added or None,
                              return_dict=False)
            if down_total is None:
                down_total, mid_total = list(down), mid
            else:
                down_total = [a + b for a, b in zip(down_total, down)]
                mid_total = mid_total + mid
        if down_total is None:
            return None
        return down_total, mid_total

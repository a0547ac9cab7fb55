"""CONDITIONING -> what the denoiser runs each step, resolved once before the loop.

ComfyUI's semantics: every entry of the positive (and negative) list is evaluated over its area
(the whole latent, a rectangle, or a mask's bounds), weighted by its strength and mask, and the
predictions of one side are averaged with those weights. Areas are in ComfyUI's units (8 pixels)
and entries may be limited to a part of the schedule (start_percent/end_percent). A positive
area gets a negative entry over the same area if the negative has none (so CFG compares like
with like there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from nodes.diffusion.sampling.schedule import NoiseSchedule
from nodes.diffusion.types import SDXL_REFINER, ControlApplication
from nodes.tensor_ops import mask_at_size, repeat_to_batch

POSITIVE, NEGATIVE = 0, 1

# Latent of an all-grey (zero) image for SD's VAE, in the model's latent space: what a 9-channel
# inpainting UNet sees as "masked image" when no image is given.
_BLANK_INPAINT_LATENT = (0.8223, -0.6876, 0.6364, 0.1380)


@dataclass(eq=False)
class CondEntry:
    """One conditioning entry, ready to run."""

    side: int                                   # POSITIVE or NEGATIVE
    embeds: torch.Tensor                        # [Bc, T, C] on the device, model dtype
    options: dict
    area: tuple[int, int, int, int] | None      # (h, w, y, x) in latent cells
    mult: torch.Tensor | None                   # [1 or B, 1, h, w] weights; None = 1 everywhere
    sigma_start: float = math.inf               # active while sigma_end <= sigma <= sigma_start
    sigma_end: float = 0.0
    control: ControlApplication | None = None
    added: dict[str, torch.Tensor] = field(default_factory=dict)   # SDXL text_embeds/time_ids [1|B, ...]
    concat: torch.Tensor | None = None          # [B, k, H, W] extra UNet input channels (inpaint models)

    @property
    def plain(self) -> bool:
        return self.area is None and self.mult is None

    def active(self, sigma: float) -> bool:
        return self.sigma_end <= sigma <= self.sigma_start


def _resolve_area(area: Any, h: int, w: int, cells_per_unit: float) -> tuple[int, int, int, int]:
    if isinstance(area, (list, tuple)) and area and area[0] == "percentage":
        _, ph, pw, py, px = area
        ah, aw, ay, ax = max(1, round(ph * h)), max(1, round(pw * w)), round(py * h), round(px * w)
    else:
        try:
            ah, aw, ay, ax = (int(round(float(v) * cells_per_unit)) for v in area)
        except (TypeError, ValueError) as e:
            raise ValueError(f"conditioning area must be (height, width, y, x), got {area!r}") from e
        ah, aw = max(1, ah), max(1, aw)
    ay, ax = min(max(ay, 0), h - 1), min(max(ax, 0), w - 1)
    return min(ah, h - ay), min(aw, w - ax), ay, ax


def _mask_to_latent(mask: torch.Tensor, h: int, w: int) -> torch.Tensor:
    mask = torch.as_tensor(mask, dtype=torch.float32)
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim == 4:
        mask = mask[:, 0]
    if mask.shape[-2:] != (h, w):
        mask = F.interpolate(mask.unsqueeze(1), size=(h, w), mode="bilinear", align_corners=False).squeeze(1)
    return mask


def _mask_bounds(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """(h, w, y, x) of the non-zero part of a [B,H,W] mask (at least 8 cells each way)."""
    any_batch = mask.abs().amax(dim=0)
    ys, xs = torch.nonzero(any_batch, as_tuple=True)
    if ys.numel() == 0:
        return 8, 8, 0, 0
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    return max(8, y1 - y0 + 1), max(8, x1 - x0 + 1), y0, x0


def _feathered(mult: torch.Tensor, area: tuple[int, int, int, int], h: int, w: int) -> torch.Tensor:
    """Ramp a rectangle's weight up over its inner edges (not at the latent's border), as ComfyUI does."""
    ah, aw, ay, ax = area
    mult = mult.clone()
    for dim, (size, offset, full) in ((2, (ah, ay, h)), (3, (aw, ax, w))):
        ramp = min(8, size // 4)
        for t in range(ramp):
            factor = (t + 1) / ramp
            if offset != 0:
                mult.narrow(dim, t, 1).mul_(factor)
            if offset + size < full:
                mult.narrow(dim, size - 1 - t, 1).mul_(factor)
    return mult


def _cover_areas(conds: list[dict], other: list[dict]) -> None:
    """Give `other` an entry over each area of `conds` it has none for (ComfyUI's rule)."""
    for c in conds:
        if "area" not in c:
            continue
        ah, aw, ay, ax = c["area"]
        best = None
        for o in other:
            if "area" in o:
                oh, ow, oy, ox = o["area"]
                inside = ay >= oy and ax >= ox and oy + oh >= ay + ah and ox + ow >= ax + aw
                if not inside:
                    continue
                if best is None or "area" not in best or best["area"][0] * best["area"][1] > oh * ow:
                    best = o
            elif best is None:
                best = o
        if best is None or best.get("area") == c["area"]:
            continue
        copy = dict(c)
        copy["side"] = best["side"]
        copy["tensor"] = best["tensor"]
        # the text side (ComfyUI's model_conds) comes from `best`; area, mask, strength, timestep
        # range and control stay those of `c`
        for key in ("pooled_output", "width", "height", "crop_w", "crop_h", "target_width",
                    "target_height", "aesthetic_score", "concat_latent_image", "concat_mask"):
            copy.pop(key, None)
            if key in best:
                copy[key] = best[key]
        other.append(copy)


def _control_to_uncond(pos: list[dict], neg: list[dict]) -> None:
    """The old ControlNetApply guides the negative side too: hand its chains to plain negatives."""
    chains = [c["control"] for c in pos if "area" not in c and c.get("control_apply_to_uncond")
              and c.get("control") is not None]
    plain = [i for i, c in enumerate(neg) if "area" not in c]
    if not chains or not plain or any(neg[i].get("control") is not None for i in plain):
        return
    originals = {i: neg[i] for i in plain}
    for k, app in enumerate(chains):
        i = plain[k % len(plain)]
        neg[i] = dict(originals[i], control=app)


def _read(conditioning: Any, side: int, name: str) -> list[dict]:
    if conditioning is None:
        return []
    if not isinstance(conditioning, (list, tuple)):
        raise TypeError(f"{name} must be a CONDITIONING list of [tensor, options] pairs, "
                        f"got {type(conditioning).__name__}")
    out = []
    for i, item in enumerate(conditioning):
        if not (isinstance(item, (list, tuple)) and len(item) >= 2 and torch.is_tensor(item[0])
                and isinstance(item[1], dict)):
            raise TypeError(f"{name}[{i}] is not a [tensor, options] pair")
        if item[0].ndim != 3:
            raise ValueError(f"{name}[{i}]: the conditioning tensor must be [batch, tokens, channels], "
                             f"got shape {tuple(item[0].shape)}")
        out.append(dict(item[1], tensor=item[0], side=side))
    return out


@dataclass
class ConditionContext:
    """What entry preparation needs to know about the model and the latent."""

    schedule: NoiseSchedule
    latent_shape: tuple[int, ...]       # [B, C, H, W] of the latent being sampled
    device: torch.device
    dtype: torch.dtype
    unet_config: dict
    family: str
    downscale: int                      # pixels per latent cell
    latent_image: torch.Tensor | None = None    # model space, on device
    denoise_mask: torch.Tensor | None = None    # [B, C, H, W] on device
    latent_scale: float = 0.18215


def prepare_entries(positive: Any, negative: Any, ctx: ConditionContext) -> list[CondEntry]:
    """Resolve areas, masks, timestep ranges and model extras of both conditioning lists."""
    b, _, h, w = ctx.latent_shape
    cells_per_unit = 8.0 / ctx.downscale
    pos, neg = _read(positive, POSITIVE, "positive"), _read(negative, NEGATIVE, "negative")
    if not pos:
        raise ValueError("positive conditioning is empty")
    for c in pos + neg:
        if "area" in c:
            c["area"] = _resolve_area(c["area"], h, w, cells_per_unit)
        if c.get("mask") is not None:
            c["mask"] = _mask_to_latent(c["mask"], h, w)
            if c.get("set_area_to_bounds"):
                c["area"] = _resolve_area(_mask_bounds(c["mask"]), h, w, 1.0)
    _cover_areas(pos, neg)
    _cover_areas(neg, pos)
    _control_to_uncond(pos, neg)
    return [_entry(c, ctx, b, h, w) for c in pos + neg]


def _entry(c: dict, ctx: ConditionContext, b: int, h: int, w: int) -> CondEntry:
    area = c.get("area")
    strength = float(c.get("strength", 1.0))
    mult = None
    if c.get("mask") is not None:
        mask = c["mask"]
        if area is not None:
            ah, aw, ay, ax = area
            mask = mask[:, ay:ay + ah, ax:ax + aw]
        mult = (mask * float(c.get("mask_strength", 1.0)) * strength).unsqueeze(1)
        mult = repeat_to_batch(mult, b).to(ctx.device)
    elif area is not None or strength != 1.0:
        ah, aw = (area[0], area[1]) if area is not None else (h, w)
        mult = torch.full((1, 1, ah, aw), strength, device=ctx.device)
        if area is not None:
            mult = _feathered(mult, area, h, w)
    entry = CondEntry(side=c["side"], embeds=c["tensor"].to(ctx.device, ctx.dtype), options=c, area=area,
                      mult=mult, control=_effective_control(c.get("control")))
    if "start_percent" in c:
        entry.sigma_start = ctx.schedule.percent_to_sigma(float(c["start_percent"]))
    if "end_percent" in c:
        entry.sigma_end = ctx.schedule.percent_to_sigma(float(c["end_percent"]))
    if ctx.unet_config.get("addition_embed_type") == "text_time":
        entry.added = _sdxl_added(c, ctx, h, w)
    extra_channels = int(ctx.unet_config.get("in_channels", 4)) - int(ctx.unet_config.get("out_channels", 4))
    if extra_channels > 0:
        entry.concat = _inpaint_concat(c, ctx, b, h, w, extra_channels)
    return entry


def _effective_control(app: ControlApplication | None) -> ControlApplication | None:
    """The chain, or None when every link has strength 0 (then it is exactly no ControlNet)."""
    link = app
    while link is not None:
        if link.strength != 0:
            return app
        link = link.previous
    return None


def _sdxl_added(c: dict, ctx: ConditionContext, h: int, w: int) -> dict[str, torch.Tensor]:
    """SDXL's micro-conditioning: pooled text embedding and the size/crop (or aesthetic) ids."""
    cfg = ctx.unet_config
    total = int(cfg.get("projection_class_embeddings_input_dim") or 0)
    per_id = int(cfg.get("addition_time_embed_dim") or 256)
    pooled = c.get("pooled_output")
    refiner = ctx.family == SDXL_REFINER
    if pooled is None:
        n_ids = 5 if refiner else 6
        pooled = torch.zeros(1, max(total - n_ids * per_id, 1))
    n_ids = (total - pooled.shape[-1]) // per_id if total else (5 if refiner else 6)
    px_h, px_w = h * ctx.downscale, w * ctx.downscale
    height, width = float(c.get("height", px_h)), float(c.get("width", px_w))
    crop_h, crop_w = float(c.get("crop_h", 0)), float(c.get("crop_w", 0))
    if n_ids == 5:
        score = float(c.get("aesthetic_score", 2.5 if c["side"] == NEGATIVE else 6.0))
        ids = [height, width, crop_h, crop_w, score]
    elif n_ids == 6:
        ids = [height, width, crop_h, crop_w, float(c.get("target_height", height)),
               float(c.get("target_width", width))]
    else:
        raise ValueError(f"this UNet expects {n_ids} added time ids; Loom knows SDXL (6) and its refiner (5)")
    if pooled.ndim == 1:
        pooled = pooled.unsqueeze(0)
    return {"text_embeds": pooled.to(ctx.device, ctx.dtype),
            "time_ids": torch.tensor([ids], device=ctx.device, dtype=ctx.dtype)}


def _inpaint_concat(c: dict, ctx: ConditionContext, b: int, h: int, w: int, channels: int) -> torch.Tensor:
    """Extra input channels of an inpainting UNet: the (rounded) mask and the masked image latent."""
    mask = c.get("concat_mask", None)
    mask = ctx.denoise_mask[:, :1] if mask is None and ctx.denoise_mask is not None else mask
    image = c.get("concat_latent_image")
    if image is not None:
        image = image.to(ctx.device, torch.float32) * ctx.latent_scale
    elif ctx.latent_image is not None:
        image = ctx.latent_image
    if mask is None or image is None:
        ones = torch.ones((b, 1, h, w), device=ctx.device)
        blank = torch.tensor(_BLANK_INPAINT_LATENT[: channels - 1], device=ctx.device).view(1, -1, 1, 1)
        return torch.cat([ones, blank.expand(b, -1, h, w)], dim=1)
    mask = mask_at_size(torch.as_tensor(mask, dtype=torch.float32, device=ctx.device), h, w)
    if image.shape[-2:] != (h, w):
        image = F.interpolate(image, size=(h, w), mode="bilinear", align_corners=False)
    if image.shape[1] + 1 != channels:
        raise ValueError(f"the inpainting UNet takes {channels} extra channels but the masked image latent "
                         f"has {image.shape[1]}")
    return torch.cat([repeat_to_batch(mask.round(), b), repeat_to_batch(image, b)], dim=1)

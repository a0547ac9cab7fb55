"""The denoiser the samplers call: classifier-free guidance over area/mask conditioning,
ControlNet residuals, and inpainting's known-region blend.

Per call: entries active at this sigma are grouped by what can share one UNet batch (same area
size, same ControlNet chain, compatible token lengths); each group is one UNet call with
positive and negative rows side by side. Predictions are merged per side with the entries'
weights, then combined: uncond + cfg * (cond - uncond). With cfg == 1 the negative side is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from nodes.diffusion.sampling.conditioning import NEGATIVE, POSITIVE, CondEntry
from nodes.diffusion.sampling.controlnet import ControlRunner
from nodes.diffusion.sampling.schedule import NoiseSchedule
from nodes.tensor_ops import repeat_to_batch

UNetCall = Callable[..., torch.Tensor]   # (sample, timestep, encoder_hidden_states, **kwargs) -> eps/v


class CFGDenoiser:
    def __init__(self, unet_call: UNetCall, schedule: NoiseSchedule, entries: list[CondEntry], cfg: float,
                 device: torch.device, dtype: torch.dtype, controls: ControlRunner | None = None,
                 latent_image: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                 denoise_mask: torch.Tensor | None = None):
        self.unet_call = unet_call
        self.schedule = schedule
        self.entries = entries
        self.cfg = float(cfg)
        self.device, self.dtype = device, dtype
        self.controls = controls
        self.latent_image = latent_image
        self.noise = noise
        self.mask = denoise_mask
        self.want_uncond = False
        self.uncond_denoised: torch.Tensor | None = None
        self._groups: dict[tuple[int, ...], list[_Group]] = {}
        self.calls = 0

    # -- the denoiser protocol -------------------------------------------------------------------
    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        self.calls += 1
        if self.mask is not None:
            known = self.latent_image + self.noise * sigma
            x = x * self.mask + known * (1.0 - self.mask)
        need_uncond = self.want_uncond or not math.isclose(self.cfg, 1.0)
        active = tuple(i for i, e in enumerate(self.entries)
                       if e.active(sigma) and (need_uncond or e.side == POSITIVE))
        cond, uncond = self._predict(x, sigma, active)
        if uncond is None:
            uncond = cond
        self.uncond_denoised = uncond
        out = cond if not need_uncond else uncond + (cond - uncond) * self.cfg
        if self.mask is not None:
            out = out * self.mask + self.latent_image * (1.0 - self.mask)
        return out

    # -- internals -----------------------------------------------------------------------------------
    def _predict(self, x: torch.Tensor, sigma: float, active: tuple[int, ...]
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        groups = self._groups.get(active)
        if groups is None:
            groups = self._groups[active] = _make_groups([self.entries[i] for i in active], x.shape[0])
        results: dict[int, list[tuple[CondEntry, torch.Tensor]]] = {POSITIVE: [], NEGATIVE: []}
        for group in groups:
            for entry, pred in zip(group.entries, self._run_group(group, x, sigma)):
                results[entry.side].append((entry, pred))
        merged = {side: _merge(x, preds) if preds else None for side, preds in results.items()}
        if merged[POSITIVE] is None:   # every positive entry is outside its timestep range now
            merged[POSITIVE] = merged[NEGATIVE] if merged[NEGATIVE] is not None else x
        return merged[POSITIVE], merged[NEGATIVE]

    def _run_group(self, group: _Group, x: torch.Tensor, sigma: float) -> list[torch.Tensor]:
        area = group.entries[0].area
        crop = x if area is None else x[:, :, area[2]:area[2] + area[0], area[3]:area[3] + area[1]]
        n = len(group.entries)
        batch = crop.shape[0]
        x_in = crop if n == 1 else crop.repeat(n, 1, 1, 1)
        model_in = (x_in * self.schedule.input_scale(sigma)).to(self.dtype)
        if group.concat is not None:
            concat = group.concat if area is None else \
                group.concat[:, :, area[2]:area[2] + area[0], area[3]:area[3] + area[1]]
            model_in = torch.cat([model_in, concat.to(self.dtype)], dim=1)
        timestep = torch.full((model_in.shape[0],), float(self.schedule.timestep(sigma)), device=x.device)
        kwargs = {}
        if group.added:
            kwargs["added_cond_kwargs"] = group.added
        control = group.entries[0].control
        if control is not None and self.controls is not None:
            res = self.controls.residuals(control, model_in, timestep, group.embeds, group.added, batch, n, sigma)
            if res is not None:
                kwargs["down_block_additional_residuals"], kwargs["mid_block_additional_residual"] = res
        out = self.unet_call(model_in, timestep, group.embeds, **kwargs).float()
        denoised = self.schedule.denoised(x_in, out, sigma)
        return list(denoised.chunk(n)) if n > 1 else [denoised]


class _Group:
    """Entries that run in one UNet call, with their batched text inputs built once."""

    def __init__(self, entries: list[CondEntry], batch: int):
        self.entries = entries
        length = math.lcm(*(e.embeds.shape[1] for e in entries))
        # Repeating a token sequence leaves cross-attention unchanged, so unequal lengths can batch.
        self.embeds = torch.cat([repeat_to_batch(e.embeds, batch).repeat(1, length // e.embeds.shape[1], 1)
                                 for e in entries])
        self.added = {k: torch.cat([repeat_to_batch(e.added[k], batch) for e in entries])
                      for k in (entries[0].added or {})}
        concats = [e.concat for e in entries]
        self.concat = None if concats[0] is None else torch.cat([repeat_to_batch(c, batch) for c in concats])


def _group_key(entry: CondEntry) -> tuple:
    area = None if entry.area is None else entry.area[:2]
    return (area, id(entry.control) if entry.control is not None else None, entry.concat is not None,
            tuple(sorted(entry.added)))


def _make_groups(entries: list[CondEntry], batch: int) -> list[_Group]:
    buckets: dict[tuple, list[CondEntry]] = {}
    for e in entries:
        # equal-size areas at different places share a call only if they sit at the same place
        key = _group_key(e) + ((e.area[2:] if e.area is not None else None),)
        buckets.setdefault(key, []).append(e)
    groups = []
    for members in buckets.values():
        shortest = min(m.embeds.shape[1] for m in members)
        if math.lcm(*(m.embeds.shape[1] for m in members)) // shortest > 4:
            by_len: dict[int, list[CondEntry]] = {}
            for m in members:
                by_len.setdefault(m.embeds.shape[1], []).append(m)
            groups.extend(_Group(ms, batch) for ms in by_len.values())
        else:
            groups.append(_Group(members, batch))
    return groups


def _merge(x: torch.Tensor, preds: list[tuple[CondEntry, torch.Tensor]]) -> torch.Tensor:
    """Weighted average of one side's predictions over their areas."""
    if len(preds) == 1 and preds[0][0].plain:
        return preds[0][1]
    total = torch.zeros_like(x)
    weight = torch.full_like(x, 1e-37)
    for entry, pred in preds:
        if entry.area is None:
            t_view, w_view = total, weight
        else:
            h, w, y, xo = entry.area
            t_view = total[:, :, y:y + h, xo:xo + w]
            w_view = weight[:, :, y:y + h, xo:xo + w]
        mult = entry.mult
        if mult is None:
            t_view += pred
            w_view += 1.0
        else:
            t_view += pred * mult
            w_view += mult.expand_as(pred)
    return total / weight

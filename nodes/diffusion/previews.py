"""Live previews while sampling: latent2rgb (a per-family linear map from latent channels to RGB).

The sampler's step callback hands over the denoised estimate (model latent space); every
`settings.preview_every` steps its first image is mapped to RGB at latent resolution and sent as
the `preview` argument of the progress report (a PIL image). The factors are the published
latent2rgb approximations for the SD and SDXL VAEs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from PIL import Image

from nodes import context
from nodes.diffusion.sampling import settings
from nodes.diffusion.types import SDXL, SDXL_REFINER

log = logging.getLogger("loom.previews")

# [latent channel][R, G, B], and an RGB bias
_SD_FACTORS = ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350), (-0.2829, 0.1762, 0.2721),
               (-0.2120, -0.2616, -0.7177))
_SDXL_FACTORS = ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068), (0.1076, 0.1111, -0.0362),
                 (-0.3165, -0.2492, -0.2188))
_SDXL_BIAS = (0.1084, -0.0175, -0.0011)
FACTORS: dict[str, tuple[tuple, tuple | None]] = {SDXL: (_SDXL_FACTORS, _SDXL_BIAS),
                                                  SDXL_REFINER: (_SDXL_FACTORS, _SDXL_BIAS)}
DEFAULT_FACTORS = (_SD_FACTORS, None)


_factor_tensors: dict[tuple[str, torch.device], tuple[torch.Tensor, torch.Tensor | None]] = {}


def _factors_on(family: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The factors as tensors on `device`, made once: a fresh host-to-GPU copy every step would make
    the sampling loop wait for the GPU."""
    key = (family if family in FACTORS else "", device)
    cached = _factor_tensors.get(key)
    if cached is None:
        factors, bias = FACTORS.get(family, DEFAULT_FACTORS)
        cached = (torch.tensor(factors, dtype=torch.float32, device=device),
                  None if bias is None else torch.tensor(bias, dtype=torch.float32, device=device))
        _factor_tensors[key] = cached
    return cached


def latent_rgb(latent: torch.Tensor, family: str) -> torch.Tensor:
    """The first image of a [B, 4, h, w] model-space latent as RGB uint8 [h, w, 3], on its device."""
    weight, bias = _factors_on(family, latent.device)   # [C, 3], [3]
    first = latent[0].float()
    if first.shape[0] != weight.shape[0]:
        raise ValueError(f"latent2rgb for {family!r} expects {weight.shape[0]} latent channels, got {first.shape[0]}")
    rgb = torch.einsum("chw,cr->hwr", first, weight)
    if bias is not None:
        rgb = rgb + bias
    return ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8)


def _to_image(pixels: torch.Tensor, max_size: int | None = None) -> Image.Image:
    image = Image.fromarray(pixels.numpy().copy(), mode="RGB")  # the buffer is reused for the next preview
    limit = max_size or settings.preview_max_size
    if max(image.size) > limit:
        image.thumbnail((limit, limit), Image.Resampling.BILINEAR)
    return image


class _Pending:
    """Previews copied off the GPU without waiting: each is handed out once its copy is done."""

    def __init__(self) -> None:
        self.buffer: torch.Tensor | None = None
        self.event = None
        self._pinned: torch.Tensor | None = None   # one page-locked buffer for the whole run

    def submit(self, pixels: torch.Tensor) -> None:
        if pixels.device.type == "cuda":
            if self._pinned is None or self._pinned.shape != pixels.shape:
                self._pinned = torch.empty(pixels.shape, dtype=pixels.dtype, pin_memory=True)
            self.buffer = self._pinned
            self.buffer.copy_(pixels, non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record()
        else:
            self.buffer, self.event = pixels.cpu(), None

    def take(self, wait: bool = False) -> Image.Image | None:
        if self.buffer is None:
            return None
        if self.event is not None and not self.event.query():
            if not wait:
                return None
            self.event.synchronize()
        image = _to_image(self.buffer)
        self.buffer = self.event = None
        return image


def progress_callback(family: str, node_id: str | None = None,
                      on_step: Callable[[int, torch.Tensor], None] | None = None
                      ) -> Callable[[int, torch.Tensor, torch.Tensor, int], None]:
    """A sampler step callback: checks for interrupts, reports `step/total` and a preview now and then.

    On a GPU the preview of step i is sent with a later step's report (as soon as its copy to the
    host is done), so previews never make the loop wait for the GPU; the last step's is sent with it.
    """
    every = max(1, int(settings.preview_every))
    pending = _Pending()
    state = {"enabled": True}

    def callback(i: int, x: torch.Tensor, denoised: torch.Tensor, total: int) -> None:
        context.check_interrupt()
        if on_step is not None:
            on_step(i, denoised)
        done = i + 1
        ctx = context.current()
        preview = None
        if ctx is not None and ctx.on_progress is not None and settings.preview_method != "none":
            last = done == total
            if (done % every == 0 or last) and state["enabled"]:
                try:
                    pixels = latent_rgb(denoised, family)
                except ValueError as e:   # a latent layout without factors: no previews, sampling goes on
                    log.warning("no live preview: %s", e)
                    state["enabled"] = False
                else:
                    preview = pending.take()
                    pending.submit(pixels)
                    if last or preview is None:
                        preview = pending.take(wait=last) or preview
        context.report_progress(done, total, preview, node_id)

    return callback

"""Live previews while sampling: latent2rgb (a per-family linear map from latent channels to RGB).

The sampler's step callback hands over the denoised estimate (model latent space); every
`settings.preview_every` steps its first image is mapped to RGB at latent resolution and sent as
the `preview` argument of the progress report (a PIL image). The factors are the published
latent2rgb approximations for the SD and SDXL VAEs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image

from nodes import context
from nodes.diffusion.sampling import settings
from nodes.diffusion.types import SDXL, SDXL_REFINER

# [latent channel][R, G, B], and an RGB bias
_SD_FACTORS = ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350), (-0.2829, 0.1762, 0.2721),
               (-0.2120, -0.2616, -0.7177))
_SDXL_FACTORS = ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068), (0.1076, 0.1111, -0.0362),
                 (-0.3165, -0.2492, -0.2188))
_SDXL_BIAS = (0.1084, -0.0175, -0.0011)
FACTORS: dict[str, tuple[tuple, tuple | None]] = {SDXL: (_SDXL_FACTORS, _SDXL_BIAS),
                                                  SDXL_REFINER: (_SDXL_FACTORS, _SDXL_BIAS)}
DEFAULT_FACTORS = (_SD_FACTORS, None)


def latent_to_rgb(latent: torch.Tensor, family: str, max_size: int | None = None) -> Image.Image:
    """The first image of a [B, 4, h, w] model-space latent as an RGB PIL image."""
    factors, bias = FACTORS.get(family, DEFAULT_FACTORS)
    first = latent[0].float()
    if first.shape[0] != len(factors):
        raise ValueError(f"latent2rgb for {family!r} expects {len(factors)} latent channels, got {first.shape[0]}")
    weight = torch.tensor(factors, dtype=first.dtype, device=first.device)        # [C, 3]
    rgb = torch.einsum("chw,cr->hwr", first, weight)
    if bias is not None:
        rgb = rgb + torch.tensor(bias, dtype=first.dtype, device=first.device)
    pixels = ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).cpu().numpy()
    image = Image.fromarray(pixels, mode="RGB")
    limit = max_size or settings.preview_max_size
    if max(image.size) > limit:
        image.thumbnail((limit, limit), Image.Resampling.BILINEAR)
    return image


def progress_callback(family: str, node_id: str | None = None,
                      on_step: Callable[[int, torch.Tensor], None] | None = None
                      ) -> Callable[[int, torch.Tensor, torch.Tensor, int], None]:
    """A sampler step callback: checks for interrupts, reports `step/total` and a preview now and then."""
    every = max(1, int(settings.preview_every))

    def callback(i: int, x: torch.Tensor, denoised: torch.Tensor, total: int) -> None:
        context.check_interrupt()
        if on_step is not None:
            on_step(i, denoised)
        preview = None
        done = i + 1
        ctx = context.current()
        wants_preview = ctx is not None and ctx.on_progress is not None and settings.preview_method != "none"
        if wants_preview and (done % every == 0 or done == total):
            preview = latent_to_rgb(denoised, family)
        context.report_progress(done, total, preview, node_id)

    return callback

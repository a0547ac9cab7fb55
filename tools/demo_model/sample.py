"""Generate images with the diffusers components directly (training-time checks on the GPU).

Loom's own evaluation goes through its nodes (evaluate.py); this loop is for quick looks during
training: Euler, classifier-free guidance, an optional ControlNet, ComfyUI-style seeds (CPU
`torch.randn` over the latent shape).
"""

from __future__ import annotations

import torch

from tools.demo_model import models


@torch.no_grad()
def encode_prompts(te, tok, prompts: list[str], device) -> torch.Tensor:
    return te(models.tokenize(tok, prompts).to(device))[0]


@torch.no_grad()
def generate(unet, te, vae, tok, prompts: list[str], seeds: list[int], steps: int = 20, cfg: float = 7.0,
             controlnet=None, control: torch.Tensor | None = None, control_scale: float = 1.0,
             batch: int = 64) -> torch.Tensor:
    """Images [N,H,W,3] in 0..1 on the CPU. `control`: [N,3,H,W] in 0..1."""
    from diffusers import EulerDiscreteScheduler

    device = next(unet.parameters()).device
    amp = device.type == "cuda"
    out = []
    for i in range(0, len(prompts), batch):
        p, s = prompts[i:i + batch], seeds[i:i + batch]
        n = len(p)
        sched = EulerDiscreteScheduler.from_config(models.SCHEDULER_CONFIG)
        sched.set_timesteps(steps, device=device)
        with torch.autocast(device.type, torch.bfloat16, enabled=amp):
            cond = encode_prompts(te, tok, p, device)
            uncond = encode_prompts(te, tok, [""] * n, device)
        ctx = torch.cat([uncond, cond]).float()
        x = torch.stack([torch.randn(4, models.LATENT_SIZE, models.LATENT_SIZE,
                                     generator=torch.Generator().manual_seed(seed)) for seed in s]).to(device)
        x = x * sched.init_noise_sigma
        hint = None if control is None else torch.cat([control[i:i + batch]] * 2).to(device)
        for t in sched.timesteps:
            xin = sched.scale_model_input(torch.cat([x, x]), t)
            with torch.autocast(device.type, torch.bfloat16, enabled=amp):
                kw = {}
                if controlnet is not None:
                    down, mid = controlnet(xin, t, ctx, controlnet_cond=hint, conditioning_scale=control_scale,
                                           return_dict=False)
                    kw = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
                eps = unet(xin, t, ctx, **kw).sample.float()
            eu, ec = eps.chunk(2)
            x = sched.step(eu + cfg * (ec - eu), t, x).prev_sample
        with torch.autocast(device.type, torch.bfloat16, enabled=amp):
            img = vae.decode(x / models.SCALING_FACTOR).sample.float()
        out.append((img / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu())
    return torch.cat(out)


def grid(images: torch.Tensor, cols: int = 8):
    """A PIL grid of [N,H,W,3] images."""
    from PIL import Image

    n, h, w, _ = images.shape
    rows = (n + cols - 1) // cols
    canvas = torch.ones(rows * h, cols * w, 3)
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = images[i]
    return Image.fromarray((canvas * 255).round().byte().numpy())

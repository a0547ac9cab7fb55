"""Train the demo 2x upscale model (models/upscale_models/loom-demo-2x.safetensors) on the CPU.

    OMP_NUM_THREADS=1 python -m tools.demo_model.train_upscaler [--minutes 4] [--out models/upscale_models]

Architecture: Real-ESRGAN's "Compact" (SRVGGNetCompact), as spandrel builds it: a 3x3 conv + PReLU,
`convs` more of them, a last conv to 3*2*2 channels and a pixel shuffle, added to the nearest-neighbour
2x of the input. The last conv starts at zero, so the untrained model *is* nearest-neighbour and
training only learns the residual. The state dict is spandrel's (`body.0.weight` ... `body.N.bias`),
so spandrel (and Loom's UpscaleModelLoader, and ComfyUI's) detect it as a 2x Compact model.

Data: scenes from the demo generator (data.py; textured backgrounds, 30% striped fills) drawn at
128 or 256 px; the input is the same picture made 2x smaller by area averaging or antialiased
bilinear. Mean squared error, Adam with a cosine learning rate, for a fixed wall-clock budget.
(An L1 loss stalled here about 0.25 dB above bicubic: on these flat-coloured scenes nearest-neighbour
is already L1-optimal on most pixels, and the median it aims for is not what PSNR measures.)

Held-out figure: PSNR on scenes from another seed, 64 -> 128 px (area-downscaled inputs), against
bicubic and nearest-neighbour upscaling of the same inputs; also fp16 vs fp32 weights.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from tools.demo_model import data

UPSCALER_NAME = "loom-demo-2x.safetensors"
SCALE = 2


def build(feat: int = 16, convs: int = 6) -> torch.nn.Module:
    """spandrel's Compact 2x with the last conv zeroed: starts as nearest-neighbour upscaling."""
    from nodes.diffusion.nodes_upscale import import_spandrel

    import_spandrel()
    from spandrel.architectures.Compact import Compact

    model = Compact(num_in_ch=3, num_out_ch=3, num_feat=feat, num_conv=convs, upscale=SCALE, act_type="prelu")
    # He init for the PReLU's 0.25 slope keeps the features' scale through the stack (PyTorch's
    # default shrinks it layer by layer, and training then sits at nearest-neighbour for a long time).
    for layer in model.body[:-1]:
        if isinstance(layer, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(layer.weight, a=0.25, nonlinearity="leaky_relu")
            torch.nn.init.zeros_(layer.bias)
    last = model.body[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    return model


def downscale(hr: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "area":
        return F.avg_pool2d(hr, SCALE)
    return F.interpolate(hr, scale_factor=1 / SCALE, mode="bilinear", antialias=True, align_corners=False)


def pairs(n: int, g: torch.Generator, res: int = 128, mode: str = "area") -> tuple[torch.Tensor, torch.Tensor]:
    """(low-res input, high-res target), [n,3,res/2,res/2] and [n,3,res,res] in 0..1."""
    sc = data.sample_scenes(n, g, exclude_held_out=False)
    striped = torch.rand(n, generator=g) < 0.3
    hr = data.render(sc, res=res, striped=striped, generator=g)["image"]
    return downscale(hr, mode).clamp(0, 1), hr


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over images of the PSNR in dB (signal range 1)."""
    mse = ((a.clamp(0, 1) - b) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1 / mse)).mean())


@torch.no_grad()
def evaluate(model: torch.nn.Module, n: int = 200, seed: int = 12345, mode: str = "area") -> dict[str, float]:
    """PSNR of the model, bicubic and nearest-neighbour on held-out scenes, 64 -> 128 px."""
    lr, hr = pairs(n, torch.Generator().manual_seed(seed), 128, mode)
    model.eval()
    out = torch.cat([model(chunk) for chunk in lr.split(50)])
    return {"model": psnr(out, hr),
            "bicubic": psnr(F.interpolate(lr, scale_factor=SCALE, mode="bicubic", align_corners=False), hr),
            "nearest": psnr(F.interpolate(lr, scale_factor=SCALE, mode="nearest"), hr)}


def train(minutes: float, feat: int, convs: int, batch: int, lr: float, seed: int, log_every: int = 100):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = build(feat, convs)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    budget = minutes * 60
    t0 = time.monotonic()
    step = 0
    while (elapsed := time.monotonic() - t0) < budget:
        for group in opt.param_groups:   # cosine decay over the time budget
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * min(1.0, elapsed / budget)))
        res = 256 if step % 4 == 3 else 128
        x, y = pairs(batch if res == 128 else max(1, batch // 4), g, res, "area" if step % 2 else "bilinear")
        model.train()
        loss = F.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % log_every == 0:
            print(f"step {step:5d}  {elapsed:6.0f}s  MSE {loss.item():.5f}", flush=True)
    return model.eval(), step


def save(model: torch.nn.Module, path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import save_file

    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"architecture": "Compact (SRVGGNetCompact)", "scale": str(SCALE),
                                          "trained_by": "tools/demo_model/train_upscaler.py"})
    return state


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--feat", type=int, default=16)
    ap.add_argument("--convs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("models/upscale_models"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    model, steps = train(args.minutes, args.feat, args.convs, args.batch, args.lr, args.seed)
    params = sum(p.numel() for p in model.parameters())
    state = save(model, args.out / UPSCALER_NAME)
    fp32 = evaluate(model)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    fp16 = evaluate(model)
    bilinear = evaluate(model, mode="bilinear")
    print(f"{params} parameters, {steps} steps of batch {args.batch} in {args.minutes} min")
    print(f"held-out PSNR 64->128 (area-downscaled inputs): model {fp16['model']:.2f} dB (fp32 weights "
          f"{fp32['model']:.2f}), bicubic {fp16['bicubic']:.2f}, nearest {fp16['nearest']:.2f}")
    print(f"held-out PSNR 64->128 (bilinear-downscaled inputs): model {bilinear['model']:.2f} dB, "
          f"bicubic {bilinear['bicubic']:.2f}")
    print(f"wrote {args.out / UPSCALER_NAME}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

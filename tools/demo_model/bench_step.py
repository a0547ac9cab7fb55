"""Time one training step of the demo UNet + text encoder and VAE on the GPU, in a few variants.

    python -m tools.demo_model.bench_step [--compile]

Prints the top CUDA kernels of an eager step, then a table: variant, batch, ms/step, samples/s.
"""

from __future__ import annotations

import argparse
import time

import torch

from tools.demo_model import models


def _step_fn(unet, te, batch, device, channels_last=False):
    params = list(unet.parameters()) + list(te.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4)
    x = torch.randn(batch, 4, 16, 16, device=device)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    ids = torch.randint(0, 49408, (batch, 77), device=device)
    t = torch.randint(0, 1000, (batch,), device=device)

    def step():
        with torch.autocast("cuda", torch.bfloat16):
            ctx = te(ids)[0]
            pred = unet(x, t, ctx).sample
        loss = (pred.float() - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _vae_step_fn(vae, batch, device):
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, 128, 128, device=device)

    def step():
        with torch.autocast("cuda", torch.bfloat16):
            rec = vae(x).sample
        loss = (rec.float() - x).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def timed(step, n=15, warm=5) -> float:
    for _ in range(warm):
        step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n * 1000


def profile(step, label):
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    with prof(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        for _ in range(3):
            step()
        torch.cuda.synchronize()
    print(f"--- {label}: top CUDA kernels (3 steps)")
    print(p.key_averages().table(sort_by="cuda_time_total", row_limit=14, max_name_column_width=60))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    rows = []
    unet, te = models.build_unet().to(dev), models.build_text_encoder().to(dev)
    profile(_step_fn(unet, te, 512, dev), "UNet+TE eager, batch 512")
    for b in (512, 2048):
        ms = timed(_step_fn(unet, te, b, dev))
        rows.append(("unet+te eager", b, ms))
    unet_cl = models.build_unet().to(dev).to(memory_format=torch.channels_last)
    ms = timed(_step_fn(unet_cl, te, 2048, dev, channels_last=True))
    rows.append(("unet+te channels_last", 2048, ms))
    from torch.nn.attention import SDPBackend, sdpa_kernel

    for backend in (SDPBackend.MATH, SDPBackend.EFFICIENT_ATTENTION):
        try:
            with sdpa_kernel(backend):
                ms = timed(_step_fn(unet, te, 2048, dev))
            rows.append((f"unet+te sdpa={backend.name}", 2048, ms))
        except RuntimeError as e:
            rows.append((f"unet+te sdpa={backend.name} failed: {str(e)[:60]}", 2048, float("nan")))
    vae = models.build_vae().to(dev)
    profile(_vae_step_fn(vae, 64, dev), "VAE eager, batch 64")
    rows.append(("vae eager", 64, timed(_vae_step_fn(vae, 64, dev), n=8)))
    vae_cl = models.build_vae().to(dev).to(memory_format=torch.channels_last)
    rows.append(("vae channels_last", 64, timed(_vae_step_fn(vae_cl, 64, dev), n=8)))
    if args.compile:
        t = time.time()
        cu = torch.compile(models.build_unet().to(dev))
        ct = torch.compile(models.build_text_encoder().to(dev))
        step = _step_fn(cu, ct, 2048, dev)
        step()
        torch.cuda.synchronize()
        print(f"compile + first step: {time.time() - t:.0f}s")
        rows.append(("unet+te compiled", 2048, timed(step)))
    print(f"{'variant':50s} {'batch':>6s} {'ms/step':>9s} {'samples/s':>10s}")
    for name, b, ms in rows:
        print(f"{name:50s} {b:6d} {ms:9.1f} {b / ms * 1000:10.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

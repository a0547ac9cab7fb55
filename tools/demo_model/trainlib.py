"""Shared pieces of the demo model's training stages: log, files, time budget, the latent pool."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from tools.demo_model import data, models

LOG: list[str] = []
OUT = Path(".")


def set_out(path: Path) -> None:
    global OUT
    OUT = Path(path)
    OUT.mkdir(parents=True, exist_ok=True)


def log(msg: str) -> None:
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    print(line, flush=True)
    LOG.append(line)
    (OUT / "log.txt").write_text("\n".join(LOG) + "\n")


def save(state: dict, name: str, dtype=None) -> None:
    from safetensors.torch import save_file

    tensors = {}
    for k, v in state.items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors[k] = v.contiguous()
    save_file(tensors, str(OUT / name))


def load(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


class Clock:
    """Time budget with an LR schedule: warm-up, flat, cosine down to 10% over the last 30%."""

    def __init__(self, budget: float, warmup: int = 200):
        self.start, self.budget, self.warmup = time.time(), budget, warmup

    def frac(self) -> float:
        return (time.time() - self.start) / self.budget

    def done(self) -> bool:
        return self.frac() >= 1.0

    def lr_factor(self, step: int) -> float:
        f = self.frac()
        decay = 1.0 if f < 0.7 else 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, (f - 0.7) / 0.3)))
        return min(1.0, (step + 1) / self.warmup) * decay


def fused(device) -> dict:
    """AdamW's fused CUDA kernel: one launch instead of a dozen per step (training is launch-bound)."""
    return {"fused": True} if device.type == "cuda" else {}


def images_to_model(x: torch.Tensor) -> torch.Tensor:
    return x * 2 - 1


# ---------------------------------------------------------------------------------------------
class Pool:
    """Encoded scenes kept on the device: latents, two token-id captions each, optional hints."""

    def __init__(self, n: int, vae, tok, device, seed: int, striped: bool = False, control: bool = False,
                 shape_word_p: float = 0.9, chunk: int = 1024):
        self.n, self.vae, self.tok, self.device = n, vae, tok, device
        self.striped, self.control, self.shape_word_p, self.chunk = striped, control, shape_word_p, chunk
        self.gen = torch.Generator().manual_seed(seed)
        self.rng = random.Random(seed)
        s = models.LATENT_SIZE
        self.lat = torch.empty(n, 4, s, s, device=device, dtype=torch.float16)
        self.ids = torch.empty(n, 2, 77, device=device, dtype=torch.int32)
        if control:
            self.hint = torch.empty(n, 2, data.RESOLUTION, data.RESOLUTION, device=device, dtype=torch.uint8)
        t = time.time()
        self.fill(0, n)
        log(f"pool of {n} scenes (striped={striped}, control={control}) in {time.time() - t:.1f}s")

    @torch.no_grad()
    def fill(self, lo: int, hi: int) -> None:
        amp = self.device.type == "cuda"
        for i in range(lo, hi, self.chunk):
            j = min(hi, i + self.chunk)
            sc = data.sample_scenes(j - i, self.gen, self.device)
            r = data.render(sc, striped=self.striped, generator=self.gen)
            with torch.autocast(self.device.type, torch.bfloat16, enabled=amp):
                z = self.vae.encode(images_to_model(r["image"])).latent_dist.mean
            self.lat[i:j] = (z.float() * models.SCALING_FACTOR).half()
            caps = [data.captions(sc, self.rng, shape_word_p=self.shape_word_p, **({"striped": True} if self.striped else {}))
                    for _ in range(2)]
            ids = models.tokenize(self.tok, caps[0] + caps[1]).view(2, j - i, 77).transpose(0, 1)
            self.ids[i:j] = ids.to(self.device, torch.int32)
            if self.control:
                self.hint[i:j, 0] = (r["mask"][:, 0] * 255).round().byte()
                self.hint[i:j, 1] = (r["edge"][:, 0] * 255).round().byte()

    def refresh(self, frac: float) -> None:
        k = int(self.n * frac)
        lo = random.randrange(0, self.n - k + 1)
        self.fill(lo, lo + k)

    def batch(self, b: int, empty_ids: torch.Tensor, drop: float = 0.1):
        idx = torch.randint(0, self.n, (b,), device=self.device)
        which = torch.randint(0, 2, (b,), device=self.device)
        ids = self.ids[idx, which].long()
        dropped = torch.rand(b, device=self.device) < drop
        ids = torch.where(dropped[:, None], empty_ids[None], ids)
        hint = None
        if self.control:
            kind = torch.randint(0, 2, (b,), device=self.device)
            hint = (self.hint[idx, kind].float() / 255)[:, None].expand(-1, 3, -1, -1)
        return self.lat[idx].float(), ids, hint


def diffusion_loss(pred: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor):
    snr = alphas_cumprod[t] / (1 - alphas_cumprod[t])
    w = snr.clamp(max=5.0) / snr                      # min-SNR-5 weighting for epsilon prediction
    return (w * F.mse_loss(pred.float(), noise, reduction="none").mean(dim=(1, 2, 3))).mean()


def noised(lat: torch.Tensor, sched, offset: float = 0.1):
    b = lat.shape[0]
    noise = torch.randn_like(lat) + offset * torch.randn(b, lat.shape[1], 1, 1, device=lat.device)
    t = torch.randint(0, sched.config.num_train_timesteps, (b,), device=lat.device)
    return sched.add_noise(lat, noise, t), noise, t



def load_base(path: Path, device):
    unet, te = models.build_unet(), models.build_text_encoder()
    unet.load_state_dict(load(path / "unet_ema.safetensors"))
    models.load_text_state(te, load(path / "te_ema.safetensors"))
    return unet.to(device).eval(), te.to(device).eval()


def load_vae(path: Path, device):
    vae = models.build_vae()
    vae.load_state_dict({k: v.float() for k, v in load(path / "vae.safetensors").items()})
    return vae.to(device).eval()

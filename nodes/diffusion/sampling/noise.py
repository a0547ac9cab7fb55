"""Noise: the initial latent noise (ComfyUI's seed semantics) and the per-step noise of
ancestral and SDE samplers."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch

NoiseSampler = Callable[[float, float], torch.Tensor]   # (sigma, sigma_next) -> unit-variance noise


def prepare_noise(latent: torch.Tensor, seed: int, batch_index: Sequence[int] | None = None) -> torch.Tensor:
    """The initial noise for a latent batch, exactly as ComfyUI draws it.

    CPU generator seeded with `seed`, one `randn` over the whole latent shape. With a batch_index
    (a latent taken out of a bigger batch), noise is drawn image by image up to the largest index,
    so image i of a batch gets the same noise whether it is sampled alone or in its batch.
    """
    # A private CPU generator gives the same stream as `torch.manual_seed(seed)` without touching
    # the global RNG.
    generator = torch.Generator(device="cpu")
    generator.manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
    shape = tuple(latent.shape)
    if batch_index is None:
        return torch.randn(shape, dtype=torch.float32, layout=latent.layout, generator=generator, device="cpu")
    indices = [int(i) for i in batch_index]
    if not indices:
        raise ValueError("batch_index is empty")
    if min(indices) < 0:
        raise ValueError(f"batch_index must not be negative: {indices}")
    wanted = set(indices)
    drawn: dict[int, torch.Tensor] = {}
    for i in range(max(indices) + 1):
        one = torch.randn((1,) + shape[1:], dtype=torch.float32, generator=generator, device="cpu")
        if i in wanted:
            drawn[i] = one
    return torch.cat([drawn[i] for i in indices], dim=0)


def default_noise_sampler(x: torch.Tensor, seed: int | None) -> NoiseSampler:
    """Independent Gaussian noise per call, from a generator on x's device seeded like ComfyUI."""
    generator = None
    if seed is not None:
        generator = torch.Generator(device=x.device)
        # ComfyUI offsets the CPU stream by one so it differs from the initial noise stream.
        generator.manual_seed((int(seed) + (1 if x.device.type == "cpu" else 0)) & 0xFFFF_FFFF_FFFF_FFFF)
    shape, dtype, device = x.shape, x.dtype, x.device

    def sample(sigma: float, sigma_next: float) -> torch.Tensor:
        return torch.randn(shape, dtype=dtype, device=device, generator=generator)

    return sample


class BrownianTreeNoiseSampler:
    """Noise from a Brownian tree over [sigma_min, sigma_max] (torchsde), so SDE samplers give
    the same result whatever the step count splits, for a given seed.

    `on_cpu` keeps the tree on the CPU (ComfyUI's default; its *_gpu samplers keep it on device).
    """

    def __init__(self, x: torch.Tensor, sigma_min: float, sigma_max: float, seed: int | None,
                 on_cpu: bool = True):
        import torchsde

        self.device, self.dtype = x.device, x.dtype
        self.on_cpu = on_cpu
        tree_device = torch.device("cpu") if on_cpu else x.device
        if seed is None:
            seed = int(torch.randint(0, 2 ** 63 - 1, ()).item())
        t0 = torch.tensor(min(sigma_min, sigma_max), device=tree_device)
        t1 = torch.tensor(max(sigma_min, sigma_max), device=tree_device)
        w0 = torch.zeros(x.shape, dtype=x.dtype, device=tree_device)
        self.tree = torchsde.BrownianTree(t0, w0, t1, entropy=int(seed) & 0x7FFF_FFFF_FFFF_FFFF)
        self._tree_device = tree_device

    def __call__(self, sigma: float, sigma_next: float) -> torch.Tensor:
        lo, hi = sorted((float(sigma), float(sigma_next)))
        sign = 1.0 if sigma < sigma_next else -1.0
        t0 = torch.tensor(lo, device=self._tree_device)
        t1 = torch.tensor(hi, device=self._tree_device)
        with warnings.catch_warnings():
            # torchsde warns when a float32 end point round-trips a hair above the tree's end
            warnings.filterwarnings("ignore", message="Should have tb<=t1")
            w = self.tree(t0, t1) * sign / max(hi - lo, 1e-12) ** 0.5
        return w.to(device=self.device, dtype=self.dtype)

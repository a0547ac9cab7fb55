"""Process-wide sampling settings (the server's CLI flags set them; tests may too).

- `fast`: the opt-in fast path (`--fast`): the UNet is compiled with torch.compile (CUDA graphs,
  channels_last) once per (model, shape, dtype). A no-op on CPU.
- `compile_mode`: torch.compile's mode for the fast path; env `LOOM_COMPILE_MODE`. The default,
  "reduce-overhead" (inductor + CUDA graphs), removes the per-step Python/launch cost that bounds
  the eager loop; "max-autotune" also autotunes kernels, for a few % more at minutes of compile
  per shape. `compile_backend` (env `LOOM_COMPILE_BACKEND`, default "inductor") is for debugging.
- `preview_method`: "latent2rgb" (default) or "none"; env `LOOM_PREVIEW_METHOD`.
- `preview_every`: send a live preview at most every N steps (default 1); env `LOOM_PREVIEW_EVERY`.
- `preview_max_size`: the longest side of a preview image in pixels; env `LOOM_PREVIEW_SIZE`.
"""

from __future__ import annotations

import os


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


fast: bool = os.environ.get("LOOM_FAST", "").lower() in ("1", "true", "yes")
compile_mode: str = os.environ.get("LOOM_COMPILE_MODE", "reduce-overhead")
compile_backend: str = os.environ.get("LOOM_COMPILE_BACKEND", "inductor")
preview_method: str = os.environ.get("LOOM_PREVIEW_METHOD", "latent2rgb")
preview_every: int = _env_int("LOOM_PREVIEW_EVERY", 1)
preview_max_size: int = _env_int("LOOM_PREVIEW_SIZE", 512)

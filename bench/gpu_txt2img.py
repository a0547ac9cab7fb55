"""txt2img on one GPU: Loom's nodes through the engine vs diffusers' pipelines, same random weights.

    .venv/bin/python bench/gpu_txt2img.py                      # SD1.5 512px + SDXL 1024px, batch 1 and 4
    .venv/bin/python bench/gpu_txt2img.py --fast               # also Loom's --fast path (torch.compile)
    .venv/bin/python bench/gpu_txt2img.py --families sd1 --batches 1 --steps 20 --repeat 3
    .venv/bin/python bench/gpu_txt2img.py --tiny               # a CPU check of the script, tiny models

With --fast, each (family, batch) compiles its UNet shapes once (about a minute or two each with the
default "reduce-overhead" mode): run the families one at a time to stay within a 10-minute limit.

Weights are random, built on the GPU from the family skeleton configs (nodes/diffusion/configs/),
saved as a single-file fp16 checkpoint that Loom loads with CheckpointLoaderSimple; diffusers runs
the very same modules. Loom runs the graph loader -> CLIPTextEncode x2 -> EmptyLatentImage ->
KSampler (euler, normal, cfg 7.5) -> VAEDecode -> sink through engine.execution.Executor:
  - "Loom (full)": a new prompt text and seed each time (text encode + sampling + decode);
  - "Loom (cached, new seed)": only the seed changes: the engine re-runs KSampler and VAEDecode;
  - "Loom --fast": the cached re-run with settings.fast (compile time shown on its own).
diffusers: StableDiffusion(XL)Pipeline with EulerDiscreteScheduler, output_type="pt", its VAE in the
dtype Loom's model manager gives VAEs.
Times are medians of --repeat runs after one warm-up; it/s comes from step timestamps (the device
is synchronised at each step in both runners); peak VRAM is torch.cuda.max_memory_allocated over
the run, one runner's weights resident at a time.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

NEGATIVE = "blurry, low quality"
SIZES = {"sd1": 512, "sdxl": 1024}
TINY_SIZE = 64


class LoomBenchSink:
    """An output node that only holds its input (so no PNG encoding is timed)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",)}}

    RETURN_TYPES = ()
    FUNCTION = "sink"
    OUTPUT_NODE = True
    CATEGORY = "bench"

    def sink(self, images):
        return {"ui": {"shape": [list(images.shape)]}}


@dataclass
class Row:
    family: str
    batch: int
    runner: str
    run_s: float
    it_s: float
    peak_gib: float | None
    note: str = ""
    samples: list[float] = field(default_factory=list)

    @property
    def per_image(self) -> float:
        return self.run_s / self.batch


# -- models -------------------------------------------------------------------------------------------------
def build_modules(family: str, tiny: bool, device: torch.device, dtype: torch.dtype) -> dict:
    if tiny:
        from tests.tiny_models import build_modules as tiny_modules

        return tiny_modules(family)
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from nodes.diffusion import skeletons

    torch.manual_seed(0)
    with torch.device(device):
        out = {"unet": UNet2DConditionModel.from_config(skeletons.component_config(family, "unet")),
               "vae": AutoencoderKL.from_config(skeletons.component_config(family, "vae"))}
        for part, cls in (("text_encoder", CLIPTextModel), ("text_encoder_2", CLIPTextModelWithProjection)):
            if part in skeletons.TEXT_COMPONENTS[family]:
                out[part] = cls(CLIPTextConfig(**skeletons.component_config(family, part)))
    for module in out.values():
        module.to(dtype).eval()
    return out


def diffusers_pipeline(family: str, modules: dict):
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    from nodes.diffusion import skeletons

    scheduler = EulerDiscreteScheduler.from_config(skeletons.scheduler_config(family))
    if family == "sdxl":
        return StableDiffusionXLPipeline(vae=modules["vae"], text_encoder=modules["text_encoder"],
                                         text_encoder_2=modules["text_encoder_2"],
                                         tokenizer=skeletons.family_tokenizer(family, "text_encoder"),
                                         tokenizer_2=skeletons.family_tokenizer(family, "text_encoder_2"),
                                         unet=modules["unet"], scheduler=scheduler)
    return StableDiffusionPipeline(vae=modules["vae"], text_encoder=modules["text_encoder"],
                                   tokenizer=skeletons.family_tokenizer(family, "text_encoder"), unet=modules["unet"],
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


# -- timing helpers -----------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None


def steps_per_second(stamps: list[float]) -> float:
    if len(stamps) < 2:
        return float("nan")
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


# -- Loom ------------------------------------------------------------------------------------------------
def loom_prompt(ckpt: str, text: str, seed: int, size: int, batch: int, steps: int) -> dict:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": batch}},
        "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": seed, "steps": steps, "cfg": 7.5,
                                                   "sampler_name": "euler", "scheduler": "normal",
                                                   "positive": ["2", 0], "negative": ["3", 0],
                                                   "latent_image": ["4", 0], "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "LoomBenchSink", "inputs": {"images": ["6", 0]}},
    }


class LoomRunner:
    def __init__(self, device: torch.device):
        from engine.cache import LRUCache
        from engine.execution import Executor
        from nodes.registry import builtin_registry

        self.device = device
        self.registry = builtin_registry()
        self.registry.register("LoomBenchSink", LoomBenchSink)
        missing = [n for n in ("CheckpointLoaderSimple", "CLIPTextEncode", "KSampler", "VAEDecode") if n not in self.registry]
        if missing:
            raise SystemExit(f"Loom's registry lacks {missing}: {self.registry.load_errors}")
        self.executor = Executor(self.registry, cache=LRUCache(16 << 30))
        self.counter = 0

    def run(self, prompt: dict) -> tuple[float, float]:
        """(wall seconds, it/s) of one execution."""
        from engine.validation import validate_prompt

        v = validate_prompt(self.registry, prompt)
        if not v.ok:
            raise SystemExit("invalid bench prompt: " + "; ".join(v.describe(prompt)))
        stamps: list[float] = []

        def on_event(event) -> None:
            if event.type == "progress" and event.data.get("node") == "5":
                sync(self.device)
                stamps.append(time.perf_counter())

        self.counter += 1
        sync(self.device)
        start = time.perf_counter()
        result = self.executor.execute(prompt, f"bench-{self.counter}", execute_outputs=v.outputs, on_event=on_event)
        sync(self.device)
        elapsed = time.perf_counter() - start
        if result.status != "success":
            raise SystemExit(f"Loom run failed: {result.error}")
        return elapsed, steps_per_second(stamps)


def bench_loom(family: str, ckpt: str, args, device: torch.device, rows: list[Row]) -> None:
    from nodes.diffusion.sampling import fast, settings

    size = TINY_SIZE if args.tiny else SIZES[family]
    runner = LoomRunner(device)
    seed = 1000
    for batch in args.batches:
        seed += 1
        reset_peak(device)
        cold, _ = runner.run(loom_prompt(ckpt, f"warm-up {batch}", seed, size, batch, args.steps))
        note = f"first run {cold:.1f} s incl. load" if batch == args.batches[0] else ""
        full, cached = [], []
        for rep in range(args.repeat):
            seed += 1
            full.append(runner.run(loom_prompt(ckpt, f"a photo number {batch}-{rep}", seed, size, batch, args.steps)))
        peak = peak_gib(device)
        for _ in range(args.repeat):
            seed += 1
            cached.append(runner.run(loom_prompt(ckpt, f"a photo number {batch}-0", seed, size, batch, args.steps)))
        rows.append(Row(family, batch, "Loom (full)", statistics.median(t for t, _ in full),
                        statistics.median(s for _, s in full), peak, note))
        rows.append(Row(family, batch, "Loom (cached, new seed)", statistics.median(t for t, _ in cached),
                        statistics.median(s for _, s in cached), peak))
    if args.fast:
        settings.fast = True
        try:
            for batch in args.batches:
                fast.compile_seconds.clear()
                seed += 1
                reset_peak(device)
                first, _ = runner.run(loom_prompt(ckpt, f"a photo number {batch}-0", seed, size, batch, args.steps))
                compiled = sum(fast.compile_seconds.values())
                times = []
                for _ in range(args.repeat):
                    seed += 1
                    times.append(runner.run(loom_prompt(ckpt, f"a photo number {batch}-0", seed, size, batch,
                                                        args.steps)))
                active = fast.fast_enabled(device)
                note = (f"first run {first:.1f} s, compile {compiled:.1f} s ({settings.compile_mode})" if active
                        else "no-op here (needs CUDA)")
                rows.append(Row(family, batch, "Loom --fast (cached)", statistics.median(t for t, _ in times),
                                statistics.median(s for _, s in times), peak_gib(device), note))
        finally:
            settings.fast = False
    runner.executor.reset()
    from nodes.diffusion.management import model_manager

    model_manager().free(unload_models=True)


# -- diffusers -------------------------------------------------------------------------------------------------
def _diffusers_run(pipe, text: str, seed: int, batch: int, size: int, steps: int,
                   device: torch.device) -> tuple[float, float]:
    stamps: list[float] = []

    def on_step(_pipe, _i, _t, kwargs):
        sync(device)
        stamps.append(time.perf_counter())
        return kwargs

    generator = torch.Generator(device="cpu").manual_seed(seed)
    sync(device)
    start = time.perf_counter()
    with torch.inference_mode():
        out = pipe(text, negative_prompt=NEGATIVE, num_inference_steps=steps, guidance_scale=7.5,
                   num_images_per_prompt=batch, height=size, width=size, generator=generator,
                   output_type="pt", callback_on_step_end=on_step).images
        out.cpu()
    sync(device)
    return time.perf_counter() - start, steps_per_second(stamps)


def bench_diffusers(family: str, modules: dict, args, device: torch.device, rows: list[Row]) -> None:
    from nodes.diffusion.management import model_manager

    pipe = diffusers_pipeline(family, modules).to(device)
    # the VAE in the dtype Loom's manager uses for VAEs (bf16 on recent GPUs), so decode costs compare
    vae = pipe.vae.to(model_manager().vae_dtype if device.type == "cuda" else torch.float32)
    vae.config.force_upcast = False
    decode = vae.decode
    vae.decode = lambda z, *a, **k: decode(z.to(vae.dtype), *a, **k)   # the pipelines pass UNet-dtype latents
    pipe.set_progress_bar_config(disable=True)
    # Loom's EmptyLatentImage assumes 8 px per latent cell; give diffusers the same latent size
    size = (TINY_SIZE if args.tiny else SIZES[family]) // 8 * pipe.vae_scale_factor
    for batch in args.batches:
        _diffusers_run(pipe, "warm-up", 1, batch, size, args.steps, device)
        reset_peak(device)
        times = [_diffusers_run(pipe, f"a photo number {batch}-{rep}", 10 + rep, batch, size, args.steps, device)
                 for rep in range(args.repeat)]
        rows.append(Row(family, batch, "diffusers pipeline", statistics.median(t for t, _ in times),
                        statistics.median(s for _, s in times), peak_gib(device)))
    pipe.to("cpu")


def warm_up_gpu(device: torch.device, seconds: float = 8.0) -> None:
    """Keep the GPU busy for a few seconds first: clocks ramp up under load, and without this the runner
    measured first looks slower than the ones after it."""
    a = torch.randn(4096, 4096, device=device, dtype=torch.float16)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(20):
            a = (a @ a).clamp_(-1, 1)
        sync(device)


# -- report -----------------------------------------------------------------------------------------------------
def table(rows: list[Row], args, device_name: str) -> str:
    head = (f"txt2img, {args.steps} steps, euler, cfg 7.5 - {device_name}, torch {torch.__version__}"
            + (" (tiny models, CPU check)" if args.tiny else ""))
    lines = [head, "", "| model | batch | runner | s / image | it/s | run (s) | peak VRAM (GiB) | notes |",
             "|---|---:|---|---:|---:|---:|---:|---|"]
    for r in rows:
        peak = f"{r.peak_gib:.2f}" if r.peak_gib is not None else "-"
        lines.append(f"| {r.family} | {r.batch} | {r.runner} | {r.per_image:.3f} | {r.it_s:.2f} | {r.run_s:.3f} "
                     f"| {peak} | {r.note} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["sd1", "sdxl"], choices=["sd1", "sdxl"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (20; 4 with --tiny)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--fast", action="store_true", help="also time Loom's --fast path")
    parser.add_argument("--tiny", action="store_true", help="tiny random models on the CPU (checks the script)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu_txt2img.md")
    args = parser.parse_args()
    args.steps = args.steps or (4 if args.tiny else 20)

    if args.tiny:
        torch.set_num_threads(1)
        os.environ["LOOM_DEVICE"] = "cpu"
        device, dtype = torch.device("cpu"), torch.float32
        device_name = "CPU"
    else:
        if not torch.cuda.is_available():
            print("needs a CUDA GPU (use --tiny for a CPU check)", file=sys.stderr)
            return 2
        device, dtype = torch.device("cuda"), torch.float16
        device_name = torch.cuda.get_device_name(device)

    from nodes import paths
    from nodes.diffusion.loading.ldm_export import save_single_file

    if device.type == "cuda":
        warm_up_gpu(device)
    work = Path(tempfile.mkdtemp(prefix="loom-bench-"))
    paths.configure(data_dir=work / "data", models_dir=work / "models")
    rows: list[Row] = []
    for family in args.families:
        print(f"[{family}] building random weights ...", flush=True)
        modules = build_modules(family, args.tiny, device, dtype)
        ckpt = f"bench-{family}.safetensors"
        text_encoders = [modules[k] for k in ("text_encoder", "text_encoder_2") if k in modules]
        save_single_file(work / "models" / "checkpoints" / ckpt, unet=modules["unet"], vae=modules["vae"],
                         text_encoders=text_encoders, family=family, dtype=dtype)
        for module in modules.values():
            module.to("cpu")
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        print(f"[{family}] Loom ...", flush=True)
        bench_loom(family, ckpt, args, device, rows)
        print(f"[{family}] diffusers ...", flush=True)
        bench_diffusers(family, modules, args, device, rows)
        del modules
        gc.collect()
        (work / "models" / "checkpoints" / ckpt).unlink()
        # written after each family, so a run cut short still leaves its figures
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table(rows, args, device_name))
    print()
    print(table(rows, args, device_name))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

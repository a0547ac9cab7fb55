"""Evaluate the shipped demo model through Loom's own nodes and engine, on the CPU.

    python -m tools.demo_model.evaluate [--models models] [--work /tmp/loom_demo_eval] [--seeds 2]

Every image is a real workflow (CheckpointLoaderSimple -> CLIPTextEncode x2 -> EmptyLatentImage
128x128 -> KSampler euler/normal 20 steps cfg 7 -> VAEDecode -> SaveImage), validated and run by
`engine.execution.Executor`; LoraLoader and ControlNetLoader + LoadImage + ControlNetApplyAdvanced
are added for those figures. The saved PNGs are judged by the analyser (analyse.py):
- colour / shape: the held-out prompts (data.HELD_OUT, never drawn in training) and the bare
  "a red circle" prompts for every colour and shape;
- ControlNet: held-out scenes' shape masks (half) and outlines (half) as hints, prompts naming only
  colour and background ("a red shape on a blue background"); the output follows the hint when its
  object mask overlaps the hint's shape with IoU >= 0.5 (also reported: the analyser's shape class);
- LoRA: the bare prompts with the stripes LoRA at strength 1; striped per the analyser (the same
  prompts without the LoRA give the false-positive rate).
Also checks the analyser on the generator's ground truth. Prints a table; writes figures.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from tools.demo_model import analyse, data
from tools.demo_model.export import CKPT_NAME, CONTROL_NAME, LORA_NAME

NEGATIVE = ""
SETTINGS = {"steps": 20, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal"}


def txt2img_prompt(text: str, seed: int, lora: str | None = None, hint_image: str | None = None,
                   controlnet: str | None = None, size: int = data.RESOLUTION, prefix: str = "eval/img",
                   batch: int = 1) -> dict:
    """The API-format workflow for one image."""
    p = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT_NAME}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["ckpt", 1]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": batch}},
        "sample": {"class_type": "KSampler", "inputs": {
            "model": ["ckpt", 0], "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0],
            "seed": seed, "denoise": 1.0, **SETTINGS}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sample", 0], "vae": ["ckpt", 2]}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": prefix}},
    }
    if lora:
        p["lora"] = {"class_type": "LoraLoader", "inputs": {"model": ["ckpt", 0], "clip": ["ckpt", 1],
                                                            "lora_name": lora, "strength_model": 1.0,
                                                            "strength_clip": 1.0}}
        p["sample"]["inputs"]["model"] = ["lora", 0]
        p["pos"]["inputs"]["clip"] = p["neg"]["inputs"]["clip"] = ["lora", 1]
    if hint_image:
        p["cn"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": controlnet or CONTROL_NAME}}
        p["hint"] = {"class_type": "LoadImage", "inputs": {"image": hint_image}}
        p["apply"] = {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "positive": ["pos", 0], "negative": ["neg", 0], "control_net": ["cn", 0], "image": ["hint", 0],
            "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}}
        p["sample"]["inputs"]["positive"] = ["apply", 0]
        p["sample"]["inputs"]["negative"] = ["apply", 1]
    return p


class Runner:
    """Runs API prompts through Loom's engine and returns the saved image."""

    def __init__(self):
        from engine.cache import LRUCache
        from engine.execution import Executor
        from nodes.registry import builtin_registry

        self.registry = builtin_registry()
        self.executor = Executor(self.registry, cache=LRUCache(4 << 30))
        self.count = 0

    def __call__(self, prompt: dict) -> np.ndarray:
        return self.images(prompt)[0]

    def images(self, prompt: dict) -> list[np.ndarray]:
        """Every image the prompt's SaveImage node wrote, float32 [H,W,3] in 0..1."""
        from PIL import Image

        from engine.validation import validate_prompt
        from nodes import paths

        v = validate_prompt(self.registry, prompt)
        if not v.ok:
            raise RuntimeError(f"workflow does not validate: {v.error} {v.node_errors}")
        self.count += 1
        result = self.executor.execute(prompt, f"eval-{self.count}", extra_data={}, execute_outputs=v.outputs,
                                       on_event=lambda event: None)
        if result.status != "success":
            raise RuntimeError(f"workflow failed: {result.messages[-1:]}")
        out = []
        for info in result.outputs["save"]["images"]:
            path = paths.folders().output_dir / info["subfolder"] / info["filename"]
            out.append(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0)
        return out


def check_analyser(n: int = 1000, seed: int = 1) -> dict:
    """Accuracy of the analyser on clean generated scenes (30% with striped fills)."""
    g = torch.Generator().manual_seed(seed)
    sc = data.sample_scenes(n, g, exclude_held_out=False)
    striped = torch.rand(n, generator=g) < 0.3
    images = data.render(sc, striped=striped, generator=g)["image"].permute(0, 2, 3, 1).numpy()
    res = [analyse.analyse(im) for im in images]
    truth = [sc.tuple_at(i) for i in range(n)]
    return {
        "analyser_color": sum(r.color == t[0] for r, t in zip(res, truth)) / n,
        "analyser_shape": sum(r.shape == t[1] for r, t in zip(res, truth)) / n,
        "analyser_stripes": sum(r.striped == bool(s) for r, s in zip(res, striped)) / n,
    }


def evaluate(seeds: int = 2, limit: int | None = None, grid_path: Path | None = None) -> dict:
    from PIL import Image

    from nodes import paths

    run = Runner()
    figures: dict = {}
    shown = []
    t0 = time.time()

    held = data.eval_prompts()[:limit]
    res = []
    for s in range(seeds):
        for i, (text, t) in enumerate(held):
            img = run(txt2img_prompt(text, 1000 + 100 * s + i, prefix=f"eval/heldout_{s}_{i}"))
            res.append((analyse.analyse(img), t))
            if s == 0 and i < 16:
                shown.append(img)
    figures["heldout_color"] = float(np.mean([a.color == t[0] for a, t in res]))
    figures["heldout_shape"] = float(np.mean([a.shape == t[1] for a, t in res]))
    figures["heldout_both"] = float(np.mean([a.color == t[0] and a.shape == t[1] for a, t in res]))
    figures["heldout_images"] = len(res)

    bare = data.bare_prompts()[:limit]
    base_res = []
    for i, (text, _c, _s) in enumerate(bare):
        img = run(txt2img_prompt(text, 7 + i, prefix=f"eval/bare_{i}"))
        base_res.append(analyse.analyse(img))
        if i % 5 == 0:
            shown.append(img)
    figures["bare_color"] = float(np.mean([a.color == b[1] for a, b in zip(base_res, bare)]))
    figures["bare_shape"] = float(np.mean([a.shape == b[2] for a, b in zip(base_res, bare)]))
    figures["bare_striped_without_lora"] = float(np.mean([a.striped for a in base_res]))

    lora_dir = paths.folders().model_folder_paths("loras")
    if any((d / LORA_NAME).exists() for d in lora_dir):
        lres = []
        for i, (text, _c, _s) in enumerate(bare):
            img = run(txt2img_prompt(text, 7 + i, lora=LORA_NAME, prefix=f"eval/lora_{i}"))
            lres.append(analyse.analyse(img))
            if i % 5 == 0:
                shown.append(img)
        figures["lora_striped"] = float(np.mean([a.striped for a in lres]))
        figures["lora_color"] = float(np.mean([a.color == b[1] for a, b in zip(lres, bare)]))
        figures["lora_shape"] = float(np.mean([a.shape == b[2] for a, b in zip(lres, bare)]))

    cn_dirs = paths.folders().model_folder_paths("controlnet")
    if any((d / CONTROL_NAME).exists() for d in cn_dirs):
        tuples = [t for _, t in data.eval_prompts()][:limit or 40][:40]
        g = torch.Generator().manual_seed(4321)
        sc = data.scenes_from_tuples(tuples, generator=g)
        r = data.render(sc, generator=g)
        half = len(tuples) // 2
        hints = torch.cat([r["mask"][:half], r["edge"][half:]])[:, 0]
        truth = (r["mask"][:, 0] > 0.5).numpy()
        cres, ious = [], []
        for i, t in enumerate(tuples):
            name = f"demo_hint_{i}.png"
            Image.fromarray((hints[i] * 255).round().byte().numpy()).convert("RGB").save(paths.folders().input_dir / name)
            text = f"{'an' if t[0] == 'orange' else 'a'} {t[0]} shape on {'an' if t[4] == 'orange' else 'a'} {t[4]} background"
            img = run(txt2img_prompt(text, 55 + i, hint_image=name, prefix=f"eval/control_{i}"))
            a = analyse.analyse(img)
            cres.append((a, t))
            ious.append(float((a.mask & truth[i]).sum() / max(1, (a.mask | truth[i]).sum())))
            if i % 5 == 0:
                shown.append(img)
        figures["control_follows_iou50"] = float(np.mean([x >= 0.5 for x in ious]))
        figures["control_mean_iou"] = float(np.mean(ious))
        figures["control_shape_class"] = float(np.mean([a.shape == t[1] for a, t in cres]))
        figures["control_color"] = float(np.mean([a.color == t[0] for a, t in cres]))
    figures["images"] = run.count
    figures["seconds"] = round(time.time() - t0, 1)
    if grid_path is not None and shown:
        from tools.demo_model.sample import grid

        grid(torch.from_numpy(np.stack(shown)), cols=8).save(grid_path)
    return figures


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=Path(__file__).resolve().parents[2] / "models")
    p.add_argument("--work", type=Path, default=Path("/tmp/loom_demo_eval"))
    p.add_argument("--seeds", type=int, default=2, help="seeds per held-out prompt")
    p.add_argument("--limit", type=int, help="use only the first N prompts of each set (quick check)")
    p.add_argument("--grid", type=Path, help="write a grid of some of the images here")
    a = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from nodes import paths

    paths.configure(data_dir=a.work, models_dir=a.models)
    figures = check_analyser()
    figures.update(evaluate(a.seeds, a.limit, a.grid))
    a.work.mkdir(parents=True, exist_ok=True)
    (a.work / "figures.json").write_text(json.dumps(figures, indent=2))
    print(f"{'figure':32s} value")
    for k, v in figures.items():
        print(f"{k:32s} {v:.3f}" if isinstance(v, float) else f"{k:32s} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

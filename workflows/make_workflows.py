"""Writes Loom's example workflows (UI format 0.4, loadable in ComfyUI's editor) and their input images.

    python workflows/make_workflows.py        # rewrites workflows/*.json and workflows/inputs/*.png

Each workflow is a small graph built with `Graph` below; node sockets and widget order follow
ComfyUI's core nodes (tests/diffusion_sampling/test_sampling_workflows.py checks them against Loom's
registry by converting every file to an API prompt). Every workflow but the SDXL one runs as it is
with the models the repository ships (tools/demo_model/README.md): the demo checkpoint at its
native 128x128, prompts in its vocabulary, euler/normal, 20 steps, cfg 7 and an empty negative prompt
(what it learned as "unconditional": 10% of its training captions were dropped to ""). The input
images are scenes drawn by the demo model's own generator (tools/demo_model/data.py), so img2img,
inpaint and ControlNet stay in its domain. tests/workflows_run/ runs them all and checks the images.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEMO_CKPT = "loom-demo-sd1.safetensors"
DEMO_CONTROLNET = "loom-demo-control.safetensors"
DEMO_LORA = "loom-demo-stripes.safetensors"
DEMO_UPSCALER = "loom-demo-2x.safetensors"
SDXL_BASE = "sd_xl_base_1.0.safetensors"
SDXL_REFINER = "sd_xl_refiner_1.0.safetensors"
SDXL_NEGATIVE = "blurry, low quality, watermark, text"
# The demo model's unconditional prompt is the empty caption; words it never saw only add noise.
NEGATIVE = ""
SIZE = 128        # the demo model's native size
# KSampler widgets: seed, control_after_generate, steps, cfg, sampler, scheduler (+ denoise).
SAMPLER = (20, 7.0, "euler", "normal")

# The input images, written by write_inputs() and seeded into Loom's input folder (nodes.paths).
SCENE = "loom-demo-scene.png"              # img2img and the model upscale
SCENE_HOLE = "loom-demo-scene-hole.png"    # inpaint: transparent where to repaint
HINT = "loom-demo-hint-star.png"           # ControlNet: a white shape mask on black
INPUT_IMAGES = (SCENE, SCENE_HOLE, HINT)
# (colour, shape, size, position, background) of the scenes, in data.py's vocabulary.
SCENE_TUPLE = ("yellow", "star", "large", "center", "blue")
HOLE_SCENE_TUPLE = ("white", "square", "large", "center", "green")
HINT_TUPLE = ("white", "star", "large", "center", "black")
# Hires fix: sample at 128, enlarge the latent, resample at denoise 0.5.
HIRES_SCALE = 2.0
HIRES_SIZE = int(SIZE * HIRES_SCALE)

# class_type -> (link inputs [(name, type)], widget names, outputs [(name, type)])
SPECS: dict[str, tuple[list, list, list]] = {
    "CheckpointLoaderSimple": ([], ["ckpt_name"], [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")]),
    "CLIPTextEncode": ([("clip", "CLIP")], ["text"], [("CONDITIONING", "CONDITIONING")]),
    "EmptyLatentImage": ([], ["width", "height", "batch_size"], [("LATENT", "LATENT")]),
    "KSampler": ([("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                  ("latent_image", "LATENT")],
                 ["seed", "control_after_generate", "steps", "cfg", "sampler_name", "scheduler", "denoise"],
                 [("LATENT", "LATENT")]),
    "KSamplerAdvanced": ([("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                          ("latent_image", "LATENT")],
                         ["add_noise", "noise_seed", "control_after_generate", "steps", "cfg", "sampler_name",
                          "scheduler", "start_at_step", "end_at_step", "return_with_leftover_noise"],
                         [("LATENT", "LATENT")]),
    "VAEDecode": ([("samples", "LATENT"), ("vae", "VAE")], [], [("IMAGE", "IMAGE")]),
    "VAEEncode": ([("pixels", "IMAGE"), ("vae", "VAE")], [], [("LATENT", "LATENT")]),
    "SaveImage": ([("images", "IMAGE")], ["filename_prefix"], []),
    "LoadImage": ([], ["image", "upload"], [("IMAGE", "IMAGE"), ("MASK", "MASK")]),
    "LoraLoader": ([("model", "MODEL"), ("clip", "CLIP")], ["lora_name", "strength_model", "strength_clip"],
                   [("MODEL", "MODEL"), ("CLIP", "CLIP")]),
    "ControlNetLoader": ([], ["control_net_name"], [("CONTROL_NET", "CONTROL_NET")]),
    "ControlNetApplyAdvanced": ([("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                                 ("control_net", "CONTROL_NET"), ("image", "IMAGE")],
                                ["strength", "start_percent", "end_percent"],
                                [("positive", "CONDITIONING"), ("negative", "CONDITIONING")]),
    "InpaintModelConditioning": ([("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("vae", "VAE"),
                                  ("pixels", "IMAGE"), ("mask", "MASK")], ["noise_mask"],
                                 [("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("latent", "LATENT")]),
    "LatentUpscaleBy": ([("samples", "LATENT")], ["upscale_method", "scale_by"], [("LATENT", "LATENT")]),
    "UpscaleModelLoader": ([], ["model_name"], [("UPSCALE_MODEL", "UPSCALE_MODEL")]),
    "ImageUpscaleWithModel": ([("upscale_model", "UPSCALE_MODEL"), ("image", "IMAGE")], [], [("IMAGE", "IMAGE")]),
}

# Node sizes (width, body height below the title). At least what the editor computes for the node's
# sockets and widgets; samplers, LoadImage and SaveImage get the 180+ px under their widgets the
# editor gives an image or a live preview, so nothing grows into a neighbour during a run.
NODE_SIZES: dict[str, tuple[int, int]] = {
    "CheckpointLoaderSimple": (320, 100), "CLIPTextEncode": (400, 160), "EmptyLatentImage": (320, 110),
    "KSampler": (320, 470), "KSamplerAdvanced": (340, 540), "VAEDecode": (210, 50), "VAEEncode": (210, 50),
    "SaveImage": (360, 330), "LoadImage": (320, 330), "LoraLoader": (320, 130), "ControlNetLoader": (320, 60),
    "ControlNetApplyAdvanced": (320, 190), "InpaintModelConditioning": (320, 140), "LatentUpscaleBy": (320, 90),
    "UpscaleModelLoader": (320, 60), "ImageUpscaleWithModel": (240, 50),
}
TITLE_HEIGHT = 30   # LiteGraph draws the title above `pos`
GAP_X, GAP_Y = 60, 40
ORIGIN = (20, 60)


class Graph:
    """A UI workflow under construction: nodes in columns, links.

    Nodes are stacked top to bottom in the column they are added to; `workflow()` places the
    columns side by side, each as wide as its widest node, so no two nodes overlap.
    """

    def __init__(self):
        self.nodes: list[dict] = []
        self.links: list[list] = []
        self.columns: dict[int, list[dict]] = {}

    def add(self, class_type: str, column: int, widgets: list | None = None, title: str | None = None,
            **links: tuple[dict, int]) -> dict:
        inputs, widget_names, outputs = SPECS[class_type]
        widgets = list(widgets or [])
        if len(widgets) != len(widget_names):
            raise ValueError(f"{class_type} takes widgets {widget_names}, got {widgets}")
        node = {"id": len(self.nodes) + 1, "type": class_type, "pos": [0, 0], "size": list(NODE_SIZES[class_type]),
                "flags": {}, "order": len(self.nodes), "mode": 0,
                "inputs": [], "outputs": [{"name": n, "type": t, "links": [], "slot_index": i}
                                          for i, (n, t) in enumerate(outputs)],
                "properties": {"Node name for S&R": class_type}}
        if title:
            node["title"] = title
        if widgets:
            node["widgets_values"] = widgets
        unknown = set(links) - {n for n, _ in inputs}
        if unknown:
            raise ValueError(f"{class_type} has no link input {sorted(unknown)}")
        for slot, (name, kind) in enumerate(inputs):
            if name not in links:
                raise ValueError(f"{class_type}.{name} is not connected")
            source, out_slot = links[name]
            link_id = len(self.links) + 1
            self.links.append([link_id, source["id"], out_slot, node["id"], slot, kind])
            source["outputs"][out_slot]["links"].append(link_id)
            node["inputs"].append({"name": name, "type": kind, "link": link_id})
        if not node["inputs"]:
            del node["inputs"]
        self.nodes.append(node)
        self.columns.setdefault(column, []).append(node)
        return node

    def _place(self) -> None:
        x = ORIGIN[0]
        for column in sorted(self.columns):
            y = ORIGIN[1]
            for node in self.columns[column]:
                node["pos"] = [x, y]
                y += node["size"][1] + TITLE_HEIGHT + GAP_Y
            x += max(node["size"][0] for node in self.columns[column]) + GAP_X

    def workflow(self) -> dict:
        self._place()
        for node in self.nodes:
            for out in node["outputs"]:
                out["links"] = out["links"] or None
            if not node["outputs"]:
                del node["outputs"]
        return {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
                "links": self.links, "groups": [], "config": {},
                "extra": {"ds": {"scale": 1, "offset": [0, 0]}}, "version": 0.4}


def _prompts(g: Graph, clip, text: str, negative: str = NEGATIVE, column: int = 1) -> tuple[dict, dict]:
    pos = g.add("CLIPTextEncode", column, [text], title="Positive prompt", clip=clip)
    neg = g.add("CLIPTextEncode", column, [negative], title="Negative prompt", clip=clip)
    return pos, neg


def _ksampler(seed: int, denoise: float = 1.0) -> list:
    steps, cfg, sampler, scheduler = SAMPLER
    return [seed, "randomize", steps, cfg, sampler, scheduler, denoise]


def _decode_and_save(g: Graph, samples, vae, prefix: str, column: int) -> dict:
    image = g.add("VAEDecode", column, samples=(samples, 0), vae=vae)
    return g.add("SaveImage", column + 1, [prefix], images=(image, 0))


def txt2img() -> dict:
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", 0, [DEMO_CKPT])
    pos, neg = _prompts(g, (ckpt, 1), "a large yellow star on a blue background")
    latent = g.add("EmptyLatentImage", 1, [SIZE, SIZE, 1])
    samples = g.add("KSampler", 2, _ksampler(3), model=(ckpt, 0), positive=(pos, 0), negative=(neg, 0),
                    latent_image=(latent, 0))
    _decode_and_save(g, samples, (ckpt, 2), "Loom_txt2img", 3)
    return g.workflow()


def img2img() -> dict:
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", 0, [DEMO_CKPT])
    scene = g.add("LoadImage", 0, [SCENE, "image"])
    pos, neg = _prompts(g, (ckpt, 1), "a yellow star on a blue background")
    latent = g.add("VAEEncode", 1, pixels=(scene, 0), vae=(ckpt, 2))
    samples = g.add("KSampler", 2, _ksampler(7, denoise=0.6), model=(ckpt, 0), positive=(pos, 0),
                    negative=(neg, 0), latent_image=(latent, 0))
    _decode_and_save(g, samples, (ckpt, 2), "Loom_img2img", 3)
    return g.workflow()


def inpaint() -> dict:
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", 0, [DEMO_CKPT])
    scene = g.add("LoadImage", 0, [SCENE_HOLE, "image"])
    pos, neg = _prompts(g, (ckpt, 1), "a red circle on a green background")
    cond = g.add("InpaintModelConditioning", 2, [True], positive=(pos, 0), negative=(neg, 0), vae=(ckpt, 2),
                 pixels=(scene, 0), mask=(scene, 1))
    samples = g.add("KSampler", 3, _ksampler(7), model=(ckpt, 0), positive=(cond, 0), negative=(cond, 1),
                    latent_image=(cond, 2))
    _decode_and_save(g, samples, (ckpt, 2), "Loom_inpaint", 4)
    return g.workflow()


def lora() -> dict:
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", 0, [DEMO_CKPT])
    # Strength 1 is the scale the LoRA ships at (tools/demo_model/README.md); 0.83 is its trained scale.
    lora_node = g.add("LoraLoader", 0, [DEMO_LORA, 1.0, 1.0], model=(ckpt, 0), clip=(ckpt, 1))
    pos, neg = _prompts(g, (lora_node, 1), "an orange circle on a blue background")
    latent = g.add("EmptyLatentImage", 1, [SIZE, SIZE, 1])
    samples = g.add("KSampler", 2, _ksampler(11), model=(lora_node, 0), positive=(pos, 0), negative=(neg, 0),
                    latent_image=(latent, 0))
    _decode_and_save(g, samples, (ckpt, 2), "Loom_lora", 3)
    return g.workflow()


def controlnet() -> dict:
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", 0, [DEMO_CKPT])
    cn = g.add("ControlNetLoader", 0, [DEMO_CONTROLNET])
    hint = g.add("LoadImage", 0, [HINT, "image"])
    pos, neg = _prompts(g, (ckpt, 1), "a yellow shape on a purple background")
    latent = g.add("EmptyLatentImage", 1, [SIZE, SIZE, 1])
    applied = g.add("ControlNetApplyAdvanced", 2, [1.0, 0.0, 1.0], positive=(pos, 0), negative=(neg, 0),
                    control_net=(cn, 0), image=(hint, 0))
    samples = g.add("KSampler", 3, _ksampler(5), model=(ckpt, 0), positive=(applied, 0), negative=(applied, 1),
                    latent_image=(latent, 0))
    _decode_and_save(g, samples, (ckpt, 2), "Loom_controlnet", 4)
    return g.workflow()


def hires_fix() -> dict:
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", 0, [DEMO_CKPT])
    pos, neg = _prompts(g, (ckpt, 1), "a purple diamond on a yellow background")
    latent = g.add("EmptyLatentImage", 1, [SIZE, SIZE, 1])
    first = g.add("KSampler", 2, _ksampler(4), title="KSampler (128x128)", model=(ckpt, 0), positive=(pos, 0),
                  negative=(neg, 0), latent_image=(latent, 0))
    bigger = g.add("LatentUpscaleBy", 2, ["nearest-exact", HIRES_SCALE], samples=(first, 0))
    second = g.add("KSampler", 3, _ksampler(4, denoise=0.5), title=f"KSampler ({HIRES_SIZE}x{HIRES_SIZE})",
                   model=(ckpt, 0), positive=(pos, 0), negative=(neg, 0), latent_image=(bigger, 0))
    _decode_and_save(g, second, (ckpt, 2), "Loom_hires", 4)
    return g.workflow()


def upscale_with_model() -> dict:
    g = Graph()
    scene = g.add("LoadImage", 0, [SCENE, "image"])
    model = g.add("UpscaleModelLoader", 0, [DEMO_UPSCALER])
    big = g.add("ImageUpscaleWithModel", 1, upscale_model=(model, 0), image=(scene, 0))
    g.add("SaveImage", 2, ["Loom_upscaled"], images=(big, 0))
    return g.workflow()


def sdxl_refiner() -> dict:
    """Needs the user's SDXL base and refiner checkpoints (not shipped)."""
    g = Graph()
    base = g.add("CheckpointLoaderSimple", 0, [SDXL_BASE], title="Load SDXL base")
    refiner = g.add("CheckpointLoaderSimple", 0, [SDXL_REFINER], title="Load SDXL refiner")
    prompt = "a cinematic photo of a red fox in a snowy forest, golden hour"
    pos, neg = _prompts(g, (base, 1), prompt, SDXL_NEGATIVE)
    rpos, rneg = _prompts(g, (refiner, 1), prompt, SDXL_NEGATIVE)
    latent = g.add("EmptyLatentImage", 1, [1024, 1024, 1])
    first = g.add("KSamplerAdvanced", 2, ["enable", 1234, "fixed", 25, 7.0, "euler", "normal", 0, 20, "enable"],
                  title="Base (steps 0-20)", model=(base, 0), positive=(pos, 0), negative=(neg, 0),
                  latent_image=(latent, 0))
    second = g.add("KSamplerAdvanced", 3, ["disable", 1234, "fixed", 25, 7.0, "euler", "normal", 20, 10000, "disable"],
                   title="Refiner (steps 20-25)", model=(refiner, 0), positive=(rpos, 0), negative=(rneg, 0),
                   latent_image=(first, 0))
    _decode_and_save(g, second, (refiner, 2), "Loom_sdxl", 4)
    return g.workflow()


WORKFLOWS = {
    "txt2img.json": txt2img,
    "img2img.json": img2img,
    "inpaint.json": inpaint,
    "lora.json": lora,
    "controlnet.json": controlnet,
    "hires_fix.json": hires_fix,
    "upscale_with_model.json": upscale_with_model,
    "sdxl_base_refiner.json": sdxl_refiner,
}
# Workflows that need model files the repository does not ship.
NEEDS_USER_MODELS = {"sdxl_base_refiner.json": [("checkpoints", SDXL_BASE), ("checkpoints", SDXL_REFINER)]}


# -- input images ------------------------------------------------------------------------------------
def _render(t: tuple[str, str, str, str, str], seed: int):
    """One plain-background scene from the demo generator: (image [3,H,W], shape mask [H,W])."""
    import torch

    sys.path.insert(0, str(HERE.parent))
    from tools.demo_model import data

    g = torch.Generator().manual_seed(seed)
    drawn = data.render(data.scenes_from_tuples([t], generator=g), generator=g)
    return drawn["image"][0], drawn["mask"][0, 0]


def _to_pil(chw):
    from PIL import Image

    return Image.fromarray((chw.permute(1, 2, 0) * 255).round().byte().numpy())


def write_inputs() -> None:
    import torch
    from PIL import Image

    folder = HERE / "inputs"
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.png"):
        if old.name not in INPUT_IMAGES:
            old.unlink()
    image, _ = _render(SCENE_TUPLE, seed=1)
    _to_pil(image).save(folder / SCENE, optimize=True)
    # Inpaint: transparent (alpha 0) over the square and a margin around it; LoadImage's mask is
    # 1 - alpha, so that is the area the sampler repaints. The RGB under it stays the scene.
    image, mask = _render(HOLE_SCENE_TUPLE, seed=2)
    hole = torch.nn.functional.max_pool2d(mask[None, None], 13, stride=1, padding=6)[0, 0] > 0.5
    rgba = _to_pil(image).convert("RGBA")
    rgba.putalpha(Image.fromarray(((~hole).byte() * 255).numpy()))
    rgba.save(folder / SCENE_HOLE, optimize=True)
    # ControlNet hint: the shape's mask, white on black (what the demo ControlNet was trained on).
    _, mask = _render(HINT_TUPLE, seed=3)
    Image.fromarray((mask * 255).round().byte().numpy()).convert("RGB").save(folder / HINT, optimize=True)


def main() -> None:
    for name, build in WORKFLOWS.items():
        (HERE / name).write_text(json.dumps(build(), indent=1) + "\n")
    write_inputs()
    print(f"wrote {len(WORKFLOWS)} workflows and {len(INPUT_IMAGES)} input images to {HERE}")


if __name__ == "__main__":
    main()

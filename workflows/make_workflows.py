"""Writes Loom's example workflows (UI format 0.4, loadable in ComfyUI's editor) and their input images.

    python workflows/make_workflows.py        # rewrites workflows/*.json and workflows/inputs/*.png

Each workflow is a small graph built with `Graph` below; node sockets and widget order follow
ComfyUI's core nodes (tests/diffusion_sampling/test_sampling_workflows.py checks them against Loom's
registry by converting every file to an API prompt). Model names are the project's demo models;
the SDXL and upscale workflows name files the user must supply.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEMO_CKPT = "loom-demo-sd1.safetensors"
DEMO_CONTROLNET = "loom-demo-control.safetensors"
DEMO_LORA = "loom-demo-stripes.safetensors"
SDXL_BASE = "sd_xl_base_1.0.safetensors"
SDXL_REFINER = "sd_xl_refiner_1.0.safetensors"
UPSCALER = "RealESRGAN_x4plus.pth"
NEGATIVE = "blurry, low quality, watermark, text"

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
    "ImageScaleBy": ([("image", "IMAGE")], ["upscale_method", "scale_by"], [("IMAGE", "IMAGE")]),
}


class Graph:
    """A UI workflow under construction: nodes, links, positions."""

    def __init__(self):
        self.nodes: list[dict] = []
        self.links: list[list] = []

    def add(self, class_type: str, pos: tuple[int, int], widgets: list | None = None, title: str | None = None,
            **links: tuple[dict, int]) -> dict:
        inputs, widget_names, outputs = SPECS[class_type]
        widgets = list(widgets or [])
        if len(widgets) != len(widget_names):
            raise ValueError(f"{class_type} takes widgets {widget_names}, got {widgets}")
        node = {"id": len(self.nodes) + 1, "type": class_type, "pos": list(pos),
                "size": [320, 60 + 26 * (len(widgets) + max(len(inputs), len(outputs)))],
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
        return node

    def workflow(self) -> dict:
        for node in self.nodes:
            for out in node["outputs"]:
                out["links"] = out["links"] or None
            if not node["outputs"]:
                del node["outputs"]
        return {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
                "links": self.links, "groups": [], "config": {},
                "extra": {"ds": {"scale": 1, "offset": [0, 0]}}, "version": 0.4}


def _text(g: Graph, clip, text: str, y: int) -> dict:
    return g.add("CLIPTextEncode", (420, y), [text], clip=clip)


def txt2img() -> dict:
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", (20, 200), [DEMO_CKPT])
    pos = _text(g, (ckpt, 1), "a lighthouse on a rocky coast at sunset, detailed", 80)
    neg = _text(g, (ckpt, 1), NEGATIVE, 320)
    latent = g.add("EmptyLatentImage", (420, 560), [512, 512, 1])
    samples = g.add("KSampler", (860, 120), [42, "fixed", 20, 7.0, "euler", "normal", 1.0],
                    model=(ckpt, 0), positive=(pos, 0), negative=(neg, 0), latent_image=(latent, 0))
    image = g.add("VAEDecode", (1220, 120), samples=(samples, 0), vae=(ckpt, 2))
    g.add("SaveImage", (1460, 120), ["Loom_txt2img"], images=(image, 0))
    return g.workflow()


def img2img() -> dict:
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", (20, 200), [DEMO_CKPT])
    pos = _text(g, (ckpt, 1), "a watercolor painting of hills under a big sun", 80)
    neg = _text(g, (ckpt, 1), NEGATIVE, 320)
    photo = g.add("LoadImage", (20, 460), ["loom-demo-photo.png", "image"])
    latent = g.add("VAEEncode", (420, 560), pixels=(photo, 0), vae=(ckpt, 2))
    samples = g.add("KSampler", (860, 120), [7, "fixed", 20, 7.0, "dpmpp_2m", "karras", 0.6],
                    model=(ckpt, 0), positive=(pos, 0), negative=(neg, 0), latent_image=(latent, 0))
    image = g.add("VAEDecode", (1220, 120), samples=(samples, 0), vae=(ckpt, 2))
    g.add("SaveImage", (1460, 120), ["Loom_img2img"], images=(image, 0))
    return g.workflow()


def inpaint() -> dict:
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", (20, 200), [DEMO_CKPT])
    pos = _text(g, (ckpt, 1), "a red hot-air balloon in the sky", 80)
    neg = _text(g, (ckpt, 1), NEGATIVE, 320)
    photo = g.add("LoadImage", (20, 460), ["loom-demo-inpaint.png", "image"])
    cond = g.add("InpaintModelConditioning", (420, 560), [True], positive=(pos, 0), negative=(neg, 0),
                 vae=(ckpt, 2), pixels=(photo, 0), mask=(photo, 1))
    samples = g.add("KSampler", (860, 120), [3, "fixed", 25, 7.0, "euler_ancestral", "normal", 1.0],
                    model=(ckpt, 0), positive=(cond, 0), negative=(cond, 1), latent_image=(cond, 2))
    image = g.add("VAEDecode", (1220, 120), samples=(samples, 0), vae=(ckpt, 2))
    g.add("SaveImage", (1460, 120), ["Loom_inpaint"], images=(image, 0))
    return g.workflow()


def lora() -> dict:
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", (20, 200), [DEMO_CKPT])
    lora_node = g.add("LoraLoader", (20, 400), [DEMO_LORA, 1.0, 1.0], model=(ckpt, 0), clip=(ckpt, 1))
    pos = _text(g, (lora_node, 1), "a cat sitting on a sofa, stripes", 80)
    neg = _text(g, (lora_node, 1), NEGATIVE, 320)
    latent = g.add("EmptyLatentImage", (420, 560), [512, 512, 1])
    samples = g.add("KSampler", (860, 120), [11, "fixed", 20, 7.0, "euler", "normal", 1.0],
                    model=(lora_node, 0), positive=(pos, 0), negative=(neg, 0), latent_image=(latent, 0))
    image = g.add("VAEDecode", (1220, 120), samples=(samples, 0), vae=(ckpt, 2))
    g.add("SaveImage", (1460, 120), ["Loom_lora"], images=(image, 0))
    return g.workflow()


def controlnet() -> dict:
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", (20, 200), [DEMO_CKPT])
    pos = _text(g, (ckpt, 1), "a stone house with a garden, sunny day", 80)
    neg = _text(g, (ckpt, 1), NEGATIVE, 320)
    cn = g.add("ControlNetLoader", (20, 460), [DEMO_CONTROLNET])
    hint = g.add("LoadImage", (20, 580), ["loom-demo-control-hint.png", "image"])
    applied = g.add("ControlNetApplyAdvanced", (420, 560), [1.0, 0.0, 1.0], positive=(pos, 0), negative=(neg, 0),
                    control_net=(cn, 0), image=(hint, 0))
    latent = g.add("EmptyLatentImage", (420, 800), [512, 512, 1])
    samples = g.add("KSampler", (860, 120), [5, "fixed", 20, 7.0, "dpmpp_2m", "karras", 1.0],
                    model=(ckpt, 0), positive=(applied, 0), negative=(applied, 1), latent_image=(latent, 0))
    image = g.add("VAEDecode", (1220, 120), samples=(samples, 0), vae=(ckpt, 2))
    g.add("SaveImage", (1460, 120), ["Loom_controlnet"], images=(image, 0))
    return g.workflow()


def hires_fix() -> dict:
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", (20, 200), [DEMO_CKPT])
    pos = _text(g, (ckpt, 1), "a mountain village in the snow, evening lights", 80)
    neg = _text(g, (ckpt, 1), NEGATIVE, 320)
    latent = g.add("EmptyLatentImage", (420, 560), [512, 512, 1])
    first = g.add("KSampler", (860, 120), [21, "fixed", 20, 7.0, "euler", "normal", 1.0], title="KSampler (base)",
                  model=(ckpt, 0), positive=(pos, 0), negative=(neg, 0), latent_image=(latent, 0))
    bigger = g.add("LatentUpscaleBy", (860, 460), ["nearest-exact", 1.5], samples=(first, 0))
    second = g.add("KSampler", (1220, 120), [21, "fixed", 15, 7.0, "dpmpp_2m", "karras", 0.5],
                   title="KSampler (hires)", model=(ckpt, 0), positive=(pos, 0), negative=(neg, 0),
                   latent_image=(bigger, 0))
    image = g.add("VAEDecode", (1580, 120), samples=(second, 0), vae=(ckpt, 2))
    g.add("SaveImage", (1820, 120), ["Loom_hires"], images=(image, 0))
    return g.workflow()


def upscale_with_model() -> dict:
    g = Graph()
    photo = g.add("LoadImage", (20, 120), ["loom-demo-photo.png", "image"])
    model = g.add("UpscaleModelLoader", (20, 460), [UPSCALER])
    big = g.add("ImageUpscaleWithModel", (420, 120), upscale_model=(model, 0), image=(photo, 0))
    g.add("SaveImage", (760, 120), ["Loom_upscaled"], images=(big, 0))
    return g.workflow()


def sdxl_refiner() -> dict:
    g = Graph()
    base = g.add("CheckpointLoaderSimple", (20, 120), [SDXL_BASE], title="Load SDXL base")
    refiner = g.add("CheckpointLoaderSimple", (20, 520), [SDXL_REFINER], title="Load SDXL refiner")
    prompt = "a cinematic photo of a red fox in a snowy forest, golden hour"
    pos = _text(g, (base, 1), prompt, 40)
    neg = _text(g, (base, 1), NEGATIVE, 260)
    rpos = _text(g, (refiner, 1), prompt, 480)
    rneg = _text(g, (refiner, 1), NEGATIVE, 700)
    latent = g.add("EmptyLatentImage", (420, 920), [1024, 1024, 1])
    first = g.add("KSamplerAdvanced", (860, 120),
                  ["enable", 1234, "fixed", 25, 7.0, "euler", "normal", 0, 20, "enable"], title="Base (steps 0-20)",
                  model=(base, 0), positive=(pos, 0), negative=(neg, 0), latent_image=(latent, 0))
    second = g.add("KSamplerAdvanced", (1220, 120),
                   ["disable", 1234, "fixed", 25, 7.0, "euler", "normal", 20, 10000, "disable"],
                   title="Refiner (steps 20-25)", model=(refiner, 0), positive=(rpos, 0), negative=(rneg, 0),
                   latent_image=(first, 0))
    image = g.add("VAEDecode", (1580, 120), samples=(second, 0), vae=(refiner, 2))
    g.add("SaveImage", (1820, 120), ["Loom_sdxl"], images=(image, 0))
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


# -- input images ------------------------------------------------------------------------------------
def _photo(size: int = 512):
    """A simple landscape: sky gradient, sun, two hills."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(img)
    for y in range(size):
        t = y / size
        draw.line([(0, y), (size, y)], fill=(int(90 + 120 * t), int(150 + 60 * t), int(235 - 40 * t)))
    draw.ellipse([size * 0.62, size * 0.12, size * 0.82, size * 0.32], fill=(255, 214, 90))
    hill = [(x, size * 0.62 - 60 * math.sin(x / size * math.pi * 1.3)) for x in range(0, size + 1, 8)]
    draw.polygon(hill + [(size, size), (0, size)], fill=(70, 140, 70))
    hill2 = [(x, size * 0.78 - 40 * math.sin(x / size * math.pi * 2 + 1)) for x in range(0, size + 1, 8)]
    draw.polygon(hill2 + [(size, size), (0, size)], fill=(40, 105, 50))
    return img


def write_inputs() -> None:
    from PIL import Image, ImageDraw

    folder = HERE / "inputs"
    folder.mkdir(exist_ok=True)
    photo = _photo()
    photo.save(folder / "loom-demo-photo.png", optimize=True)
    # inpaint: transparent where to repaint (LoadImage's mask is 1 - alpha)
    rgba = photo.convert("RGBA")
    alpha = Image.new("L", photo.size, 255)
    ImageDraw.Draw(alpha).ellipse([150, 60, 330, 240], fill=0)
    rgba.putalpha(alpha)
    rgba.save(folder / "loom-demo-inpaint.png", optimize=True)
    # ControlNet hint: white outlines on black (a house and a path)
    hint = Image.new("RGB", (512, 512))
    d = ImageDraw.Draw(hint)
    d.rectangle([150, 220, 360, 420], outline="white", width=4)
    d.polygon([(130, 225), (255, 110), (380, 225)], outline="white", width=4)
    d.rectangle([230, 320, 280, 420], outline="white", width=4)
    d.line([(255, 420), (200, 512)], fill="white", width=4)
    d.line([(280, 420), (330, 512)], fill="white", width=4)
    hint.save(folder / "loom-demo-control-hint.png", optimize=True)


def main() -> None:
    for name, build in WORKFLOWS.items():
        (HERE / name).write_text(json.dumps(build(), indent=1) + "\n")
    write_inputs()
    print(f"wrote {len(WORKFLOWS)} workflows and 3 input images to {HERE}")


if __name__ == "__main__":
    main()

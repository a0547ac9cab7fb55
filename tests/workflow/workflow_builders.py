"""A hand-written /object_info and builders of UI workflows, shared by the workflow-format tests."""

from __future__ import annotations

import itertools
import json
import uuid
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
MUTE, BYPASS = 2, 4  # node modes of a UI workflow


SAMPLERS = ["euler", "euler_ancestral", "dpmpp_2m"]


SCHEDULERS = ["normal", "karras", "simple"]


def _node(inputs: dict, outputs: list[str], display: str, optional: dict | None = None,
          output_names: list[str] | None = None) -> dict:
    section = {"required": inputs}
    order = {"required": list(inputs)}
    if optional:
        section["optional"] = optional
        order["optional"] = list(optional)
    return {"input": section, "input_order": order, "output": outputs, "output_is_list": [False] * len(outputs),
            "output_name": output_names or outputs, "name": display.replace(" ", ""), "display_name": display,
            "description": "", "python_module": "nodes", "category": "test", "output_node": not outputs}


def make_object_info() -> dict:
    """A small /object_info in the shape the server returns, with the core nodes' real inputs."""
    info = {
        "CheckpointLoaderSimple": _node({"ckpt_name": [["model.safetensors", "v1-5-pruned-emaonly-fp16.safetensors"]]},
                                        ["MODEL", "CLIP", "VAE"], "Load Checkpoint"),
        "CLIPTextEncode": _node({"text": ["STRING", {"multiline": True, "dynamicPrompts": True}], "clip": ["CLIP"]},
                                ["CONDITIONING"], "CLIP Text Encode (Prompt)"),
        "EmptyLatentImage": _node({"width": ["INT", {"default": 512, "min": 16}],
                                   "height": ["INT", {"default": 512, "min": 16}],
                                   "batch_size": ["INT", {"default": 1, "min": 1}]}, ["LATENT"], "Empty Latent Image"),
        # As in ComfyUI before `control_after_generate` was declared: the frontend adds it for "seed".
        "KSampler": _node({"model": ["MODEL"], "seed": ["INT", {"default": 0, "min": 0}],
                           "steps": ["INT", {"default": 20}], "cfg": ["FLOAT", {"default": 8.0}],
                           "sampler_name": [SAMPLERS], "scheduler": [SCHEDULERS],
                           "positive": ["CONDITIONING"], "negative": ["CONDITIONING"],
                           "latent_image": ["LATENT"], "denoise": ["FLOAT", {"default": 1.0}]},
                          ["LATENT"], "KSampler"),
        "VAEDecode": _node({"samples": ["LATENT"], "vae": ["VAE"]}, ["IMAGE"], "VAE Decode"),
        "SaveImage": _node({"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "ComfyUI"}]}, [],
                           "Save Image"),
        "LoadImage": _node({"image": [["example.png", "cat.png"], {"image_upload": True}]}, ["IMAGE", "MASK"],
                           "Load Image"),
        "LoadImageMask": _node({"image": [["example.png"], {"image_upload": True}],
                                "channel": [["alpha", "red", "green", "blue"]]}, ["MASK"], "Load Image (as Mask)"),
        "LoraLoader": _node({"model": ["MODEL"], "clip": ["CLIP"], "lora_name": [["style.safetensors"]],
                             "strength_model": ["FLOAT", {"default": 1.0}], "strength_clip": ["FLOAT", {"default": 1.0}]},
                            ["MODEL", "CLIP"], "Load LoRA"),
        "ImageScale": _node({"image": ["IMAGE"], "upscale_method": [["nearest-exact", "bilinear"]],
                             "width": ["INT", {"default": 512}], "height": ["INT", {"default": 512}],
                             "crop": [["disabled", "center"]]}, ["IMAGE"], "Upscale Image"),
        "ImageInvert": _node({"image": ["IMAGE"]}, ["IMAGE"], "Invert Image"),
        "TextJoin": _node({"a": ["STRING", {"forceInput": True}], "b": ["STRING", {"default": ""}]},
                          ["STRING"], "Text Join"),
        # A V3-style combo that declares the control widget (the frontend adds a filter list too).
        "RandomChoice": _node({"choice": ["COMBO", {"options": ["a", "b", "c"], "control_after_generate": True}],
                               "count": ["INT", {"default": 1}]}, ["STRING"], "Random Choice"),
        "RandomNoise": _node({"noise_seed": ["INT", {"default": 0, "control_after_generate": True}]}, ["NOISE"],
                             "RandomNoise"),
        "MultiPick": _node({"items": ["COMBO", {"options": ["x", "y", "z"], "multi_select": True}]}, ["STRING"],
                           "Multi Pick"),
        "SaveText": _node({"text": ["STRING", {"forceInput": True}]}, [], "Save Text",
                          optional={"override": ["INT", {"defaultInput": True}],
                                    "suffix": ["STRING", {"default": ".txt"}], "append": ["BOOLEAN", {"default": False}]}),
    }
    for name, entry in info.items():
        entry["name"] = name
    return info


def load_data(name: str) -> Any:
    return json.loads((DATA / name).read_text())


class GraphBuilder:
    """Builds the `nodes`/`links` of a UI graph the way the frontend saves them."""

    def __init__(self, link_style: str = "array", first_id: int = 1):
        self.link_style = link_style  # "array" (0.4 root) or "object" (version 1, subgraph definitions)
        self.nodes: list[dict] = []
        self.links: list = []
        self._ids = itertools.count(first_id)
        self._link_ids = itertools.count(1)

    def node(self, type_: str, inputs: list | None = None, outputs: list | None = None,
             widgets: list | dict | None = None, mode: int = 0, title: str | None = None, **extra) -> dict:
        """inputs: (name, type) or (name, type, widget_name); outputs: type names."""
        node = {"id": next(self._ids), "type": type_, "pos": [0, 0], "size": [100, 50], "flags": {},
                "order": len(self.nodes), "mode": mode, "properties": {}}
        node["inputs"] = [{"name": i[0], "type": i[1], "link": None, **({"widget": {"name": i[2]}} if len(i) > 2 else {})}
                          for i in inputs or []]
        node["outputs"] = [{"name": t, "type": t, "links": []} for t in outputs or []]
        if widgets is not None:
            node["widgets_values"] = widgets
        if title:
            node["title"] = title
        node.update(extra)
        self.nodes.append(node)
        return node

    def link(self, origin: dict | int, origin_slot: int, target: dict | int, target_slot: int | str,
             type_: str = "*") -> int:
        """Link an output to an input (slot index or input name); ids -10/-20 are subgraph IO nodes."""
        origin_id = origin["id"] if isinstance(origin, dict) else origin
        target_id = target["id"] if isinstance(target, dict) else target
        if isinstance(target_slot, str):
            target_slot = [i["name"] for i in target["inputs"]].index(target_slot)
        link_id = next(self._link_ids)
        if isinstance(target, dict):
            target["inputs"][target_slot]["link"] = link_id
            type_ = target["inputs"][target_slot]["type"] if type_ == "*" else type_
        if isinstance(origin, dict):
            origin["outputs"][origin_slot]["links"].append(link_id)
        if self.link_style == "array":
            self.links.append([link_id, origin_id, origin_slot, target_id, target_slot, type_])
        else:
            self.links.append({"id": link_id, "origin_id": origin_id, "origin_slot": origin_slot,
                               "target_id": target_id, "target_slot": target_slot, "type": type_})
        return link_id


class WorkflowBuilder(GraphBuilder):
    def __init__(self, version: float = 0.4):
        super().__init__("array" if version == 0.4 else "object")
        self.version = version
        self.subgraphs: list[dict] = []

    def build(self, **extra) -> dict:
        if self.version == 0.4:
            wf = {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
                  "links": self.links, "groups": [], "config": {}, "extra": {}, "version": 0.4}
        else:
            wf = {"version": 1, "state": {"lastGroupId": 0, "lastNodeId": len(self.nodes),
                                          "lastLinkId": len(self.links), "lastRerouteId": 0},
                  "nodes": self.nodes, "links": self.links, "groups": [], "config": {}, "extra": {}}
        if self.subgraphs:
            wf["definitions"] = {"subgraphs": self.subgraphs}
        wf.update(extra)
        return wf


class SubgraphBuilder(GraphBuilder):
    """A subgraph definition; link from input slot k with `link(-10, k, ...)`, to output k with `link(..., -20, k)`."""

    def __init__(self, name: str, inputs: list[tuple[str, str]], outputs: list[tuple[str, str]], first_id: int = 1):
        # Real saves keep node ids unique across the root and every definition: pick first_id so.
        super().__init__("object", first_id=first_id)
        self.id = str(uuid.uuid4())
        self.name = name
        self.inputs = [{"id": str(uuid.uuid4()), "name": n, "type": t, "linkIds": []} for n, t in inputs]
        self.outputs = [{"id": str(uuid.uuid4()), "name": n, "type": t, "linkIds": []} for n, t in outputs]

    def link(self, origin, origin_slot, target, target_slot, type_="*") -> int:
        link_id = super().link(origin, origin_slot, target, target_slot, type_)
        if origin == -10:
            self.inputs[origin_slot]["linkIds"].append(link_id)
        if target == -20:
            self.outputs[target_slot]["linkIds"].append(link_id)
        return link_id

    def build(self) -> dict:
        return {"id": self.id, "version": 1, "revision": 0, "name": self.name,
                "state": {"lastGroupId": 0, "lastNodeId": len(self.nodes), "lastLinkId": len(self.links),
                          "lastRerouteId": 0},
                "inputNode": {"id": -10, "bounding": [0, 0, 75, 100]},
                "outputNode": {"id": -20, "bounding": [500, 0, 75, 100]},
                "inputs": self.inputs, "outputs": self.outputs, "widgets": [],
                "nodes": self.nodes, "links": self.links, "groups": [], "config": {}, "extra": {}}


# -- workflows shared by the conversion and frontend-parity tests ---------------------------------------
def image_chain(wf: WorkflowBuilder, middle_modes: list[int]):
    """LoadImage -> ImageInvert x N -> SaveImage."""
    load = wf.node("LoadImage", outputs=["IMAGE", "MASK"], widgets=["cat.png", "image"])
    prev = load
    middles = []
    for mode in middle_modes:
        node = wf.node("ImageInvert", inputs=[("image", "IMAGE")], outputs=["IMAGE"], mode=mode)
        wf.link(prev, 0, node, 0)
        middles.append(node)
        prev = node
    save = wf.node("SaveImage", inputs=[("images", "IMAGE")], widgets=["out"])
    wf.link(prev, 0, save, 0)
    return load, middles, save


def encode_subgraph() -> SubgraphBuilder:
    """(clip, text) -> CLIPTextEncode -> CONDITIONING, with `text` promoted."""
    sg = SubgraphBuilder("Encode", inputs=[("clip", "CLIP"), ("text", "STRING")],
                         outputs=[("CONDITIONING", "CONDITIONING")], first_id=50)
    enc = sg.node("CLIPTextEncode", inputs=[("clip", "CLIP"), ("text", "STRING", "text")],
                  outputs=["CONDITIONING"], widgets=["inner default"])
    sg.link(-10, 0, enc, "clip")
    sg.link(-10, 1, enc, "text")
    sg.link(enc, 0, -20, 0)
    return sg


def instance(wf: WorkflowBuilder, sg: SubgraphBuilder, widgets=None, promoted=(), mode=0, **extra) -> dict:
    inputs = [(i["name"], i["type"], i["name"]) if i["name"] in promoted else (i["name"], i["type"])
              for i in sg.inputs]
    return wf.node(sg.id, inputs=inputs, outputs=[o["type"] for o in sg.outputs], widgets=widgets, mode=mode,
                   **extra)


def encode_workflow(version=1, n_instances=1, values=("a cat",)):
    wf = WorkflowBuilder(version=version)
    sg = encode_subgraph()
    wf.subgraphs.append(sg.build())
    ckpt = wf.node("CheckpointLoaderSimple", outputs=["MODEL", "CLIP", "VAE"], widgets=["model.safetensors"])
    ks = wf.node("KSampler", inputs=[("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING")],
                 outputs=["LATENT"], widgets=[1, "fixed", 20, 7.0, "euler", "normal", 1.0])
    wf.link(ckpt, 0, ks, 0)
    instances = []
    for k in range(n_instances):
        inst = instance(wf, sg, widgets=[values[k]], promoted=("text",))
        wf.link(ckpt, 1, inst, 0)
        wf.link(inst, 0, ks, 1 + k)
        instances.append(inst)
    return wf, ckpt, ks, instances


def nested_workflow():
    """LoadImage -> [Outer: [Inner: ImageScale(width promoted)] -> ImageInvert] -> SaveImage."""
    inner = SubgraphBuilder("Inner", inputs=[("image", "IMAGE"), ("width", "INT")], outputs=[("IMAGE", "IMAGE")],
                            first_id=61)
    scale = inner.node("ImageScale", inputs=[("image", "IMAGE"), ("width", "INT", "width")], outputs=["IMAGE"],
                       widgets=["bilinear", 100, 200, "disabled"])
    inner.link(-10, 0, scale, "image")
    inner.link(-10, 1, scale, "width")
    inner.link(scale, 0, -20, 0)

    outer = SubgraphBuilder("Outer", inputs=[("image", "IMAGE"), ("width", "INT")], outputs=[("IMAGE", "IMAGE")])
    outer._ids = iter(range(5, 100))
    nested = outer.node(inner.id, inputs=[("image", "IMAGE"), ("width", "INT", "width")], outputs=["IMAGE"],
                        widgets=[111])
    inv = outer.node("ImageInvert", inputs=[("image", "IMAGE")], outputs=["IMAGE"])
    outer.link(-10, 0, nested, 0)
    outer.link(-10, 1, nested, 1)
    outer.link(nested, 0, inv, 0)
    outer.link(inv, 0, -20, 0)

    wf = WorkflowBuilder(version=1)
    outer_def = outer.build()
    outer_def["definitions"] = {"subgraphs": [inner.build()]}  # nested definitions are found too
    wf.subgraphs.append(outer_def)
    load = wf.node("LoadImage", outputs=["IMAGE", "MASK"], widgets=["cat.png", "image"])
    wf._ids = iter(range(20, 100))
    inst = wf.node(outer.id, inputs=[("image", "IMAGE"), ("width", "INT", "width")], outputs=["IMAGE"],
                   widgets=[300])
    save = wf.node("SaveImage", inputs=[("images", "IMAGE")], widgets=["out"])
    wf.link(load, 0, inst, 0)
    wf.link(inst, 0, save, 0)
    return wf, load, inst, save


def compressed_instance_workflow():
    """A 0.4 save whose subgraph instance dropped its unlinked promoted sockets (text and seed)."""
    sg = SubgraphBuilder("Sampler", inputs=[("text", "STRING"), ("clip", "CLIP"), ("seed", "INT")],
                         outputs=[("CONDITIONING", "CONDITIONING")], first_id=50)
    enc = sg.node("CLIPTextEncode", inputs=[("clip", "CLIP"), ("text", "STRING", "text")],
                  outputs=["CONDITIONING"], widgets=[""])
    ks = sg.node("KSampler", inputs=[("seed", "INT", "seed")], outputs=["LATENT"],
                 widgets=[0, "randomize", 20, 8, "euler", "simple", 1])
    sg.link(-10, 0, enc, "text")
    sg.link(-10, 1, enc, "clip")
    sg.link(-10, 2, ks, "seed")
    sg.link(enc, 0, -20, 0)
    wf = WorkflowBuilder(version=0.4)
    wf.subgraphs.append(sg.build())
    ckpt = wf.node("CheckpointLoaderSimple", outputs=["MODEL", "CLIP", "VAE"], widgets=["model.safetensors"])
    inst = wf.node(sg.id, inputs=[("clip", "CLIP")], outputs=["CONDITIONING"], widgets=["a red fox", 77])
    wf.link(ckpt, 1, inst, 0)
    return wf, ckpt, inst

"""A hand-written /object_info and builders of UI workflows, shared by the workflow-format tests."""

from __future__ import annotations

import itertools
import json
import uuid
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"


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

"""Helpers of tests/workflows_run: the example workflows run through the engine with the shipped models."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"
MODELS = REPO / "models"


def load_builder():
    """workflows/make_workflows.py as a module (its names: model files, input images, scenes)."""
    spec = importlib.util.spec_from_file_location("make_workflows", WORKFLOWS / "make_workflows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Run:
    prompt: dict          # the API prompt the converter made of the file
    images: list[np.ndarray]   # every image a SaveImage node wrote, float32 [H,W,3] in 0..1
    events: list          # the engine's events


class WorkflowRunner:
    """UI file -> engine converter -> validation -> Executor, as `loom run` does, sharing one cache
    so the checkpoint is loaded once."""

    def __init__(self, data_dir: Path):
        from engine.cache import LRUCache
        from engine.execution import Executor
        from nodes.registry import builtin_registry

        self.data_dir = data_dir
        self.folders = self.configure()
        self.registry = builtin_registry()
        self.executor = Executor(self.registry, cache=LRUCache(2 << 30))

    def configure(self):
        """The shipped models folder and this runner's data folder, with the example inputs seeded
        into it as `loom serve` and `loom run` do; set again before each run, as other test modules
        configure their own folders."""
        from nodes import paths

        folders = paths.configure(data_dir=self.data_dir, models_dir=MODELS)
        folders.seed_example_inputs()
        return folders

    def prompt(self, name: str) -> dict:
        from engine.workflow import convert_ui_to_api

        result = convert_ui_to_api(json.loads((WORKFLOWS / name).read_text()), self.registry.object_info())
        assert result.ok, f"{name}: node types missing: {result.missing_node_types}"
        return result.prompt

    def run(self, name: str) -> Run:
        from PIL import Image

        from engine.validation import validate_prompt

        self.folders = self.configure()
        prompt = self.prompt(name)
        v = validate_prompt(self.registry, prompt)
        assert v.ok, f"{name} does not validate: {v.describe(prompt)}"
        events: list = []
        result = self.executor.execute(prompt, name, extra_data={}, execute_outputs=v.outputs, on_event=events.append)
        assert result.status == "success", f"{name}: {result.status} {result.messages[-1:]}"
        images = []
        for output in result.outputs.values():
            for info in output.get("images", []):
                path = self.folders.output_dir / info["subfolder"] / info["filename"]
                images.append(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0)
        assert images, f"{name} saved no image"
        return Run(prompt, images, events)


def positive_text(prompt: dict) -> str:
    """The positive prompt of the last sampler, followed upstream through conditioning nodes."""
    samplers = [nid for nid, node in prompt.items() if node["class_type"].startswith("KSampler")]
    node = prompt[samplers[-1]]
    while "text" not in node["inputs"]:
        link = node["inputs"].get("positive") or node["inputs"].get("conditioning")
        assert link is not None, f"no positive prompt upstream of {node['class_type']}"
        node = prompt[link[0]]
    return node["inputs"]["text"]


def named(text: str) -> tuple[str | None, str | None]:
    """The colour and shape a prompt names (the first of each, in the demo model's words)."""
    from tools.demo_model import data

    words = text.replace(",", " ").split()
    colour = next((w for w in words if w in data.COLOR_NAMES), None)
    shape = next((w for w in words if w in data.SHAPES), None)
    return colour, shape


def load_input(name: str) -> np.ndarray:
    """An example input image as float32 [H,W,C] in 0..1 (RGBA kept)."""
    from PIL import Image

    return np.asarray(Image.open(WORKFLOWS / "inputs" / name), dtype=np.float32) / 255.0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def border_colour(image: np.ndarray) -> str:
    from tools.demo_model import analyse

    border = np.concatenate([image[:3].reshape(-1, 3), image[-3:].reshape(-1, 3),
                             image[:, :3].reshape(-1, 3), image[:, -3:].reshape(-1, 3)])
    return analyse.color_name(np.median(border, axis=0))

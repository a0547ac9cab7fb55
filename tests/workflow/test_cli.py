"""`loom convert` run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from workflow_builders import WorkflowBuilder, load_data

from engine.workflow import convert_ui_to_api

REPO = Path(__file__).resolve().parents[2]


def loom(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "server.cli", "convert", *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_converts_a_ui_workflow(tmp_path, object_info, object_info_file):
    path = tmp_path / "default.json"
    path.write_text(json.dumps(load_data("default_workflow.json")))
    proc = loom(path, "--object-info", object_info_file)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert json.loads(proc.stdout) == convert_ui_to_api(load_data("default_workflow.json"), object_info).prompt


def test_unknown_node_types_exit_1_and_are_named(tmp_path, object_info_file):
    wf = WorkflowBuilder()
    wf.node("LoadImage", outputs=["IMAGE", "MASK"], widgets=["cat.png", "image"])
    wf.node("SuperResolution9000", widgets=[4])
    wf.node("SuperResolution9000")
    wf.node("AnotherMissing")
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(wf.build()))
    proc = loom(path, "--object-info", object_info_file, "--compact")
    assert proc.returncode == 1
    assert "unknown node types: SuperResolution9000, AnotherMissing" in proc.stderr
    assert "warning:" in proc.stderr  # the unnamed widget value of the unknown node
    prompt = json.loads(proc.stdout)
    assert prompt["2"]["class_type"] == "SuperResolution9000" and len(proc.stdout.strip().splitlines()) == 1


@pytest.mark.parametrize("content, expected", [
    ("{not json", "not valid JSON"),
    ('{"hello": "world"}', "neither a UI workflow"),
])
def test_bad_files_exit_2_with_one_line(tmp_path, object_info_file, content, expected):
    path = tmp_path / "bad.json"
    path.write_text(content)
    proc = loom(path, "--object-info", object_info_file)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("loom convert: error:") and expected in lines[0]


def test_missing_file_and_bad_object_info_exit_2(tmp_path, object_info_file):
    proc = loom(tmp_path / "absent.json", "--object-info", object_info_file)
    assert proc.returncode == 2 and "no such file" in proc.stderr
    (tmp_path / "wf.json").write_text(json.dumps(load_data("default_workflow.json")))
    (tmp_path / "info.json").write_text("[]")
    proc = loom(tmp_path / "wf.json", "--object-info", tmp_path / "info.json")
    assert proc.returncode == 2 and "--object-info" in proc.stderr


def test_api_prompt_is_printed_back_normalised_to_a_file(tmp_path, object_info_file):
    path = tmp_path / "api.json"
    path.write_text(json.dumps({"1": {"class_type": "LoadImage", "inputs": {"image": "cat.png"}},
                                "2": {"class_type": "SaveImage", "inputs": {"images": [1, 0]}}}))
    out = tmp_path / "out.json"
    proc = loom(path, "--object-info", object_info_file, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert json.loads(out.read_text()) == {
        "1": {"inputs": {"image": "cat.png"}, "class_type": "LoadImage", "_meta": {"title": "Load Image"}},
        "2": {"inputs": {"images": ["1", 0]}, "class_type": "SaveImage", "_meta": {"title": "Save Image"}},
    }


def test_png_input(tmp_path, object_info, object_info_file):
    info = PngInfo()
    info.add_text("workflow", json.dumps(load_data("default_workflow.json")))
    Image.new("RGB", (2, 2)).save(tmp_path / "img.png", pnginfo=info)
    proc = loom(tmp_path / "img.png", "--object-info", object_info_file)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["3"]["inputs"]["seed"] == 156680208700286


def test_builtin_registry_is_used_by_default(tmp_path):
    """No --object-info: Loom's own nodes name the widgets."""
    wf = WorkflowBuilder()
    load = wf.node("LoadImage", outputs=["IMAGE", "MASK"], widgets=["cat.png", "image"])
    scale = wf.node("ImageScale", inputs=[("image", "IMAGE")], outputs=["IMAGE"], widgets=["bilinear", 64, 32, "center"])
    wf.link(load, 0, scale, 0)
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(wf.build()))
    proc = loom(path, "--no-custom-nodes")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["2"]["inputs"] == {"upscale_method": "bilinear", "width": 64, "height": 32,
                                                      "crop": "center", "image": ["1", 0]}


NOISY_PACK = '''
print("*** noisy pack says hello ***")


class Echo:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "times": ("INT", {"default": 1}),
                             "seed": ("INT", {"default": 0})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "test"

    def run(self, image, times, seed):
        return (image,)


NODE_CLASS_MAPPINGS = {"Echo": Echo}
'''


def test_custom_node_packs_name_widgets_and_their_prints_stay_off_stdout(tmp_path):
    pack = tmp_path / "packs" / "noisy_pack"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text(NOISY_PACK)
    wf = WorkflowBuilder()
    load = wf.node("LoadImage", outputs=["IMAGE", "MASK"], widgets=["cat.png", "image"])
    echo = wf.node("Echo", inputs=[("image", "IMAGE")], outputs=["IMAGE"], widgets=[3, 99, "fixed"])
    wf.link(load, 0, echo, 0)
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(wf.build()))
    proc = loom(path, "--custom-nodes", tmp_path / "packs")
    assert proc.returncode == 0, proc.stderr
    assert "noisy pack says hello" in proc.stderr
    assert json.loads(proc.stdout)["2"]["inputs"] == {"times": 3, "seed": 99, "image": ["1", 0]}

"""`loom run` as a user runs it: a subprocess on a workflow file."""

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def loom(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=cwd or REPO, capture_output=True,
                          text=True, timeout=120, env={"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                                                       "PATH": "/usr/bin:/bin"})


def write_workflow(tmp_path, **width):
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 16, "batch_size": 1, "color": 0}},
              "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}, "_meta": {"title": "Invert"}},
              "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "cli"}}}
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(prompt))
    return path


def test_run_writes_outputs_and_prints_where(tmp_path):
    wf = write_workflow(tmp_path)
    out = tmp_path / "out"
    result = loom("run", str(wf), "--data-dir", str(tmp_path / "data"), "--output-dir", str(out),
                  "--set", "1.width=24", "--no-custom-nodes")
    assert result.returncode == 0, result.stderr
    written = Path(result.stdout.strip())
    assert written.parent == out and written.exists()
    image = Image.open(written)
    assert image.size == (24, 16) and image.getpixel((0, 0))[:3] == (255, 255, 255)
    assert "[1] EmptyImage #1" in result.stderr and "ImageInvert #2 (Invert)" in result.stderr


def test_invalid_workflow_is_explained(tmp_path):
    wf = write_workflow(tmp_path)
    result = loom("run", str(wf), "--data-dir", str(tmp_path / "data"), "--set", "1.width=0", "--no-custom-nodes")
    assert result.returncode == 1
    assert "EmptyImage #1" in result.stderr and "input 'width'" in result.stderr and "smaller than min" in result.stderr


def test_bad_files_and_overrides(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = loom("run", str(bad), "--data-dir", str(tmp_path / "data"), "--no-custom-nodes")
    assert result.returncode == 2 and "error" in result.stderr
    wf = write_workflow(tmp_path)
    result = loom("run", str(wf), "--data-dir", str(tmp_path / "data"), "--set", "Nobody.x=1", "--no-custom-nodes")
    assert result.returncode == 2 and "no node with id or title 'Nobody'" in result.stderr
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"1": {"class_type": "NoSuchNode", "inputs": {}}}))
    result = loom("run", str(unknown), "--data-dir", str(tmp_path / "data"), "--no-custom-nodes")
    assert result.returncode == 1 and "NoSuchNode" in result.stderr


def test_help_lists_subcommands():
    result = loom("--help")
    assert result.returncode == 0
    for name in ("serve", "run", "convert"):
        assert name in result.stdout

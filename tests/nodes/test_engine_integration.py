"""The built-in nodes through the real engine: validation, execution, cache and IS_CHANGED."""

import json

import numpy as np
import pytest
from PIL import Image

from nodes.image_files import read_png_text

engine_validation = pytest.importorskip("engine.validation")
engine_execution = pytest.importorskip("engine.execution")
engine_cache = pytest.importorskip("engine.cache")

PROMPT = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "prev.png [output]"}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "run/e2e"}},
    "4": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 32, "batch_size": 2}},
    "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 0]}},
}


def _run(executor, registry, prompt, extra=None):
    v = engine_validation.validate_prompt(registry, prompt)
    assert v.error is None, v.error
    result = executor.execute(prompt, "p", extra_data=extra or {}, execute_outputs=v.outputs, on_event=lambda e: None)
    assert result.status == "success", result.messages
    return result


def test_prompt_runs_end_to_end_and_reruns_when_the_file_changes(registry, data_dirs):
    Image.new("RGBA", (4, 4), (255, 0, 0, 255)).save(data_dirs.output_dir / "prev.png")
    executor = engine_execution.Executor(registry, cache=engine_cache.LRUCache(1 << 28))
    extra = {"extra_pnginfo": {"workflow": {"nodes": [], "links": []}}}
    result = _run(executor, registry, PROMPT, extra)
    assert result.outputs["3"] == {"images": [{"filename": "e2e_00001_.png", "subfolder": "run", "type": "output"}]}
    assert result.outputs["6"]["text"] == [json.dumps(
        {"samples": "Tensor(shape=[2, 4, 4, 8], dtype=float32, min=0, max=0)"}, indent=4)]
    saved = data_dirs.output_dir / "run" / "e2e_00001_.png"
    assert np.asarray(Image.open(saved))[0, 0].tolist() == [0, 255, 255]  # red inverted
    texts = read_png_text(saved)
    assert json.loads(texts["prompt"]) == PROMPT and json.loads(texts["workflow"]) == extra["extra_pnginfo"]["workflow"]

    # Same file: everything is cached, nothing is saved again.
    again = _run(executor, registry, PROMPT, extra)
    assert again.outputs["3"]["images"][0]["filename"] == "e2e_00001_.png"
    # New content under the same name: IS_CHANGED makes LoadImage and what follows run again.
    Image.new("RGBA", (4, 4), (0, 0, 255, 0)).save(data_dirs.output_dir / "prev.png")
    third = _run(executor, registry, PROMPT, extra)
    assert third.outputs["3"]["images"][0]["filename"] == "e2e_00002_.png"
    assert third.outputs["4"]["text"] == ["Tensor(shape=[1, 4, 4], dtype=float32, min=1, max=1)"]


def test_missing_image_is_a_validation_error_naming_the_file(registry, data_dirs):
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "nope.png"}},
              "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    v = engine_validation.validate_prompt(registry, prompt)
    assert not v.ok
    (error,) = v.node_errors["1"]["errors"]
    assert error["details"] == "Invalid image file: nope.png (no such file in the input folder)"
    assert v.node_errors["1"]["class_type"] == "LoadImage"

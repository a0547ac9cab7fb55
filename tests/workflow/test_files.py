"""Workflow files: JSON in either format, PNGs with embedded metadata, and clear errors."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from workflow_builders import load_data

from engine.workflow import (
    WorkflowError,
    WorkflowFileError,
    load_workflow_file,
    normalise_api_prompt,
    to_api_prompt,
    workflow_kind,
)

API_PROMPT = {"1": {"class_type": "LoadImage", "inputs": {"image": "cat.png"}},
              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}


def write_png(path, chunks: dict[str, str], how: str = "text"):
    info = PngInfo()
    for key, value in chunks.items():
        if how == "itxt":
            info.add_itxt(key, value, zip=True)
        else:
            info.add_text(key, value, zip=(how == "ztxt"))
    Image.new("RGB", (4, 4), (10, 20, 30)).save(path, pnginfo=info)
    return path


def test_json_files_are_detected_by_shape(tmp_path):
    ui = load_data("default_workflow.json")
    (tmp_path / "ui.json").write_text(json.dumps(ui))
    (tmp_path / "api.json").write_text(json.dumps(API_PROMPT))
    (tmp_path / "body.json").write_text(json.dumps({"prompt": API_PROMPT, "client_id": "abc"}))
    assert load_workflow_file(tmp_path / "ui.json") == ("ui", ui)
    assert load_workflow_file(tmp_path / "api.json") == ("api", API_PROMPT)
    assert load_workflow_file(tmp_path / "body.json") == ("api", API_PROMPT)


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(API_PROMPT).encode())
    assert load_workflow_file(path)[0] == "api"


@pytest.mark.parametrize("how", ["text", "ztxt", "itxt"])
def test_png_round_trip_prefers_the_workflow(tmp_path, object_info, how):
    ui = load_data("default_workflow.json")
    prompt = to_api_prompt(ui, object_info).prompt
    path = write_png(tmp_path / "out.png", {"prompt": json.dumps(prompt), "workflow": json.dumps(ui)}, how)
    kind, data = load_workflow_file(path)
    assert (kind, data) == ("ui", ui)
    assert to_api_prompt(data, object_info).prompt == prompt


def test_png_with_only_a_prompt(tmp_path, object_info):
    path = write_png(tmp_path / "api.png", {"prompt": json.dumps(API_PROMPT)})
    kind, data = load_workflow_file(path)
    assert (kind, data) == ("api", API_PROMPT)
    assert to_api_prompt(data, object_info).prompt["2"]["inputs"]["images"] == ["1", 0]


def test_png_with_a_broken_workflow_falls_back_to_the_prompt(tmp_path):
    path = write_png(tmp_path / "half.png", {"workflow": "{not json", "prompt": json.dumps(API_PROMPT)})
    assert load_workflow_file(path) == ("api", API_PROMPT)


def test_png_without_workflow_names_what_it_holds(tmp_path):
    path = write_png(tmp_path / "plain.png", {"parameters": "a1111 stuff"})
    with pytest.raises(WorkflowFileError, match=r"plain.png: the PNG holds no 'workflow' or 'prompt'.*parameters"):
        load_workflow_file(path)


def test_png_whose_metadata_is_not_json(tmp_path):
    path = write_png(tmp_path / "bad.png", {"workflow": "{oops"})
    with pytest.raises(WorkflowFileError, match=r"bad.png: the PNG's 'workflow' text is not valid JSON"):
        load_workflow_file(path)


@pytest.mark.parametrize("content, message", [
    (b'{"nodes": [', r"broken.json is not valid JSON: .* \(line 1, column"),
    (b"", r"the file is empty"),
    (b"\xff\xfe\x00\x01binary", r"neither a JSON workflow nor a PNG"),
    (b"[1, 2]", r"a workflow is a JSON object, not list"),
    (b"{}", r"the workflow is empty"),
    (b'{"foo": 1, "bar": {}}', r"neither a UI workflow .* top-level keys: foo, bar"),
])
def test_bad_json_files(tmp_path, content, message):
    path = tmp_path / "broken.json"
    path.write_bytes(content)
    with pytest.raises(WorkflowFileError, match=message):
        load_workflow_file(path)


def test_missing_file_directory_and_fake_png(tmp_path):
    with pytest.raises(WorkflowFileError, match="no such file"):
        load_workflow_file(tmp_path / "nope.json")
    with pytest.raises(WorkflowFileError, match="is a directory"):
        load_workflow_file(tmp_path)
    fake = tmp_path / "fake.png"
    fake.write_text("{}")
    with pytest.raises(WorkflowFileError, match="not a PNG file"):
        load_workflow_file(fake)


def test_workflow_kind_unwraps_a_saved_workflow_object():
    ui = load_data("default_workflow.json")
    assert workflow_kind({"workflow": ui}) == ("ui", ui)
    with pytest.raises(WorkflowError):
        workflow_kind("text")


def test_api_prompt_is_normalised(object_info):
    raw = {1: {"class_type": "LoadImage", "inputs": {"image": "cat.png"}},
           "2": {"class_type": "SaveImage", "inputs": {"images": [1, 0.0], "filename_prefix": "x"},
                 "_meta": {"title": "Keep me"}},
           "3": {"class_type": "EmptyLatentImage", "inputs": {"width": [64, 0], "height": 64, "batch_size": 1}},
           "4": {"class_type": "NotInstalled"}}
    result = normalise_api_prompt(raw, object_info)
    assert list(result.prompt) == ["1", "2", "3", "4"]
    assert result.prompt["1"]["_meta"] == {"title": "Load Image"}
    assert result.prompt["2"] == {"inputs": {"images": ["1", 0], "filename_prefix": "x"},
                                  "class_type": "SaveImage", "_meta": {"title": "Keep me"}}
    assert result.prompt["3"]["inputs"]["width"] == [64, 0]  # no node 64: a constant, left alone
    assert result.prompt["4"]["inputs"] == {} and result.missing_node_types == ["NotInstalled"]
    assert any("node 4 (NotInstalled) has no 'inputs'" in w for w in result.warnings)


@pytest.mark.parametrize("prompt, message", [
    ({}, "non-empty"),
    ({"1": 5}, "node 1 is not an object"),
    ({"1": {"inputs": {}}}, "node 1 has no 'class_type'"),
    ({"1": {"class_type": "LoadImage", "inputs": []}}, "'inputs' is not an object"),
])
def test_bad_api_prompts(prompt, message):
    with pytest.raises(WorkflowError, match=message):
        normalise_api_prompt(prompt)


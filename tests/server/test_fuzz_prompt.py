"""Random and mutated prompts at POST /prompt: always 200 or a 400 in the dialect's shape, never a crash."""

from __future__ import annotations

import copy
import json

import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from srv_helpers import image_graph

BASE_PROMPTS = [
    image_graph(),
    {
        "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "2": {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["1", 0], "upscale_method": "nearest-exact",
                                                           "scale_by": 1.5}},
        "3": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "4": {"class_type": "ImageToMask", "inputs": {"image": ["3", 0], "channel": "red"}},
        "5": {"class_type": "MaskToImage", "inputs": {"mask": ["4", 0]}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}},
        "7": {"class_type": "PrimitiveInt", "inputs": {"value": 5}},
        "8": {"class_type": "PreviewAny", "inputs": {"source": ["7", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "fuzz"},
              "_meta": {"title": "Save"}},
    },
]
CLASS_TYPES = ["EmptyImage", "SaveImage", "PreviewImage", "ImageInvert", "EmptyLatentImage", "LoadImage",
               "PrimitiveInt", "PreviewAny", "ImageScale", "LoomTestFail", "NoSuchNode", ""]

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                      st.text(max_size=20))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)
link = st.tuples(st.sampled_from(["1", "2", "3", "4", "9", "99", ""]), st.integers(-2, 5)).map(list)
input_value = st.one_of(json_value, link, st.sampled_from(["nearest-exact", "red", "fuzz", 64, 0, -1, 1e309]))


@st.composite
def mutated_prompt(draw) -> dict:
    prompt = copy.deepcopy(draw(st.sampled_from(BASE_PROMPTS)))
    for _ in range(draw(st.integers(1, 5))):
        node_id = draw(st.sampled_from(sorted(prompt))) if prompt else "1"
        node = prompt.get(node_id)
        action = draw(st.integers(0, 8))
        if action == 0:
            prompt.pop(node_id, None)
        elif action == 1 and isinstance(node, dict):
            node["class_type"] = draw(st.one_of(st.sampled_from(CLASS_TYPES), json_value))
        elif action == 2 and isinstance(node, dict) and isinstance(node.get("inputs"), dict) and node["inputs"]:
            name = draw(st.sampled_from(sorted(node["inputs"])))
            node["inputs"][name] = draw(input_value)
        elif action == 3 and isinstance(node, dict) and isinstance(node.get("inputs"), dict) and node["inputs"]:
            node["inputs"].pop(draw(st.sampled_from(sorted(node["inputs"]))))
        elif action == 4 and isinstance(node, dict):
            node["inputs"] = draw(json_value)
        elif action == 5:
            prompt[draw(st.text(max_size=4))] = draw(json_value)
        elif action == 6:
            prompt[node_id] = draw(json_value)
        elif action == 7 and isinstance(node, dict) and isinstance(node.get("inputs"), dict):
            node["inputs"][draw(st.text(max_size=6))] = draw(input_value)
        elif action == 8:  # a cycle or a self link
            if isinstance(node, dict) and isinstance(node.get("inputs"), dict) and node["inputs"]:
                node["inputs"][draw(st.sampled_from(sorted(node["inputs"])))] = [node_id, 0]
    return prompt


request_body = st.one_of(
    json_value,
    st.fixed_dictionaries({"prompt": json_value}),
    st.fixed_dictionaries({"prompt": mutated_prompt()}),
    st.fixed_dictionaries({"prompt": mutated_prompt(), "partial_execution_targets": st.lists(
        st.sampled_from(["1", "3", "6", "8", "9"]), max_size=3)}),
    st.fixed_dictionaries({"prompt": mutated_prompt()}, optional={
        "client_id": json_value, "prompt_id": st.one_of(st.text(max_size=10), json_value),
        "number": st.one_of(st.integers(), st.floats(), json_value), "front": json_value,
        "partial_execution_targets": st.one_of(st.lists(st.sampled_from(["1", "3", "6", "9", "x"]), max_size=3),
                                               json_value),
        "extra_data": st.one_of(st.just({"extra_pnginfo": {"workflow": {"id": "w"}}}), json_value)}),
)


def check_response(r: requests.Response) -> None:
    assert r.status_code in (200, 400), (r.status_code, r.text)
    body = r.json()
    if r.status_code == 200:
        assert set(body) == {"prompt_id", "number", "node_errors"}
        assert isinstance(body["node_errors"], dict)
    else:
        assert set(body) == {"error", "node_errors"}, body
        assert {"type", "message", "details", "extra_info"} <= set(body["error"]), body
        assert body["error"]["type"] != "internal_error", body["error"]  # the validator itself crashed
        assert isinstance(body["node_errors"], dict)
        for node_error in body["node_errors"].values():
            assert {"errors", "dependent_outputs", "class_type"} <= set(node_error)


def test_fuzz_post_prompt(make_server):
    # No workers: what gets queued is never run (a mutated EmptyImage could ask for gigabytes).
    server = make_server(workers=[])
    session = requests.Session()
    url = server.url + "/api/prompt"

    @settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(body=request_body)
    def post_json(body):
        check_response(session.post(url, data=json.dumps(body), timeout=30))

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(raw=st.one_of(st.binary(max_size=64), st.text(max_size=64).map(str.encode)))
    def post_bytes(raw):
        check_response(session.post(url, data=raw, timeout=30))

    post_json()
    post_bytes()
    assert session.get(server.url + "/api/prompt", timeout=10).status_code == 200
    assert session.get(server.url + "/api/queue", timeout=10).status_code == 200
    assert session.get(server.url + "/api/jobs?limit=5", timeout=10).json()["pagination"]["total"] >= 1

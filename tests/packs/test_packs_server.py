"""The real `loom serve` with packs: a broken pack, a hanging pack and a node that raises leave it
serving; pack routes and web folders are served; /api/nodes lists, installs and disables packs."""

from __future__ import annotations

import json
import signal
import sys
import time
import urllib.error
import urllib.request

import pytest
from pack_helpers import node_code, write_pack

from tests.shared_helpers import ServeProcess

GOOD_PACK = '''
from aiohttp import web
from server import PromptServer


@PromptServer.instance.routes.get("/goodpack/hello")
async def hello(request):
    return web.json_response({"hello": "from a pack"})


class Raises:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT", {"default": 1})}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "go"
    OUTPUT_NODE = True
    def go(self, x):
        raise RuntimeError("this node always fails")


class Fine:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT", {"default": 1})}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "go"
    OUTPUT_NODE = True
    def go(self, x):
        return {"ui": {"value": [x * 2]}, "result": (x * 2,)}


NODE_CLASS_MAPPINGS = {"GoodPackRaises": Raises, "GoodPackFine": Fine}
WEB_DIRECTORY = "web"
'''


class Serve(ServeProcess):
    """`python -m server.cli serve` with its own custom_nodes folder and a short pack import timeout."""

    stop_signal = signal.SIGTERM

    def __init__(self, tmp_path, cn_dir):
        super().__init__([sys.executable, "-m", "server.cli"], "--data-dir", str(tmp_path / "data"),
                         "--models-dir", str(tmp_path / "models"),
                         env={"LOOM_CUSTOM_NODES_DIR": str(cn_dir), "LOOM_PACK_IMPORT_TIMEOUT": "2"})

    def request(self, path: str, body: dict | None = None) -> tuple[int, object]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode()


@pytest.fixture
def served(tmp_path):
    cn_dir = tmp_path / "custom_nodes"
    write_pack(cn_dir, "a_broken", "raise RuntimeError('this pack is broken')\n")
    write_pack(cn_dir, "b_hangs", "import time\nwhile True:\n    time.sleep(0.1)\n")
    write_pack(cn_dir, "c_good", GOOD_PACK, **{"web/good__js": "console.log('good pack');\n"})
    server = Serve(tmp_path, cn_dir)
    try:
        server.wait_ready(90)
        yield server, cn_dir
    finally:
        server.stop()


def wait_history(server: Serve, prompt_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, history = server.request(f"/history/{prompt_id}")
        if status == 200 and prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
            return history[prompt_id]
        time.sleep(0.1)
    raise AssertionError(f"prompt {prompt_id} did not finish:\n{server.text()}")


def test_server_survives_bad_packs_and_failing_nodes(served, tmp_path):
    server, cn_dir = served
    status, info = server.request("/object_info")
    assert status == 200 and "GoodPackRaises" in info and "GoodPackFine" in info
    assert "Import times for custom nodes" in server.text() and "(IMPORT FAILED)" in server.text()

    status, listing = server.request("/api/nodes")
    rows = {r["name"]: r for r in listing["packs"]}
    assert "this pack is broken" in rows["a_broken"]["load_error"]
    assert "did not finish within 2 s" in rows["b_hangs"]["load_error"]
    assert rows["c_good"]["node_count"] == 2 and rows["c_good"]["load_error"] is None

    assert server.request("/goodpack/hello") == (200, {"hello": "from a pack"})
    status, js = server.request("/extensions/c_good/good.js")
    assert status == 200 and "good pack" in js

    status, queued = server.request("/prompt", {"prompt": {"1": {"class_type": "GoodPackRaises", "inputs": {"x": 1}}}})
    assert status == 200, queued
    item = wait_history(server, queued["prompt_id"])
    assert item["status"]["status_str"] == "error"
    errors = [m for m in item["status"]["messages"] if m[0] == "execution_error"]
    assert "this node always fails" in errors[0][1]["exception_message"]

    status, queued = server.request("/prompt", {"prompt": {"1": {"class_type": "GoodPackFine", "inputs": {"x": 21}}}})
    item = wait_history(server, queued["prompt_id"])
    assert item["status"]["status_str"] == "success" and item["outputs"]["1"]["value"] == [42]

    # a workflow with an unknown node type names a pack that provides it
    status, err = server.request("/prompt", {"prompt": {"1": {"class_type": "VHS_VideoCombine", "inputs": {}}}})
    assert status == 400
    assert "ComfyUI-VideoHelperSuite" in json.dumps(err)
    status, found = server.request("/api/nodes/providers?class_type=VHS_VideoCombine&class_type=Nope")
    assert status == 200 and found["providers"]["Nope"] == []
    assert found["providers"]["VHS_VideoCombine"][0]["url"].endswith("ComfyUI-VideoHelperSuite")


def test_api_installs_into_the_running_server_and_disables(served, tmp_path):
    server, cn_dir = served
    src = write_pack(tmp_path / "src", "hotpack", node_code("HotNode", "5"))
    status, body = server.request("/api/nodes/install", {"source": str(src)})
    assert status == 200, body
    assert body["loaded_nodes"] == ["HotNode"] and body["restart_required"] is False
    status, info = server.request("/object_info/HotNode")
    assert status == 200 and "HotNode" in info
    status, queued = server.request("/prompt", {"prompt": {"1": {"class_type": "HotNode", "inputs": {}},
                                                           "2": {"class_type": "PreviewAny",
                                                                 "inputs": {"source": ["1", 0]}}}})
    assert wait_history(server, queued["prompt_id"])["outputs"]["2"]["text"] == ["5"]

    status, body = server.request("/api/nodes/disable", {"name": "hotpack"})
    assert status == 200 and body["restart_required"] is True
    assert (cn_dir / "hotpack.disabled").is_dir()
    status, listing = server.request("/api/nodes")
    assert listing["restart_required"] is True
    assert {r["name"]: r for r in listing["packs"]}["hotpack"]["enabled"] is False

    status, body = server.request("/api/nodes/install", {"source": str(tmp_path / "missing")})
    assert status == 400 and "not an existing folder" in body["error"]["message"]
    status, body = server.request("/api/nodes/remove", {})
    assert status == 400 and "name" in body["error"]["message"]
    status, body = server.request("/api/nodes/remove", {"name": "hotpack"})
    assert status == 200 and not (cn_dir / "hotpack.disabled").exists()

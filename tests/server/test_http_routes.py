"""Every informational and per-user route: success shapes and error shapes (always JSON)."""

from __future__ import annotations

import json
import struct

import pytest
import requests
from srv_helpers import REPO
from srv_test_nodes import make_registry


def assert_error(r: requests.Response, status: int, error_type: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert set(body["error"]) == {"type", "message", "details", "extra_info"}
    if error_type:
        assert body["error"]["type"] == error_type, body
    return body


@pytest.fixture
def pack_server(make_server, tmp_path):
    """A server whose registry knows one node pack with a web folder, locales and example workflows."""
    from nodes.registry import PackInfo

    pack = tmp_path / "custom_nodes" / "demo_pack"
    (pack / "web" / "sub").mkdir(parents=True)
    (pack / "web" / "demo.js").write_text("console.log('demo')")
    (pack / "web" / "sub" / "more.js").write_text("export {}")
    (pack / "locales" / "en").mkdir(parents=True)
    (pack / "locales" / "en" / "main.json").write_text(json.dumps({"hello": "Hello"}))
    (pack / "locales" / "en" / "nodeDefs.json").write_text(json.dumps({"DemoNode": {"display_name": "Demo"}}))
    (pack / "example_workflows").mkdir()
    (pack / "example_workflows" / "demo flow.json").write_text(json.dumps({"nodes": [], "links": []}))
    (tmp_path / "outside.js").write_text("secret()")
    registry = make_registry()
    registry.packs.append(PackInfo(name="demo_pack", path=pack, module_name="custom_nodes.demo_pack",
                                   web_dir=pack / "web"))
    registry.web_dirs["demo_pack"] = pack / "web"
    return make_server(registry_=registry)


def test_object_info(server):
    info = server.get("/api/object_info").json()
    assert {"EmptyImage", "SaveImage", "LoomTestSleep"} <= set(info)
    node = info["SaveImage"]
    assert {"input", "input_order", "output", "output_is_list", "output_name", "name", "display_name",
            "description", "python_module", "category", "output_node"} <= set(node)
    assert node["output_node"] is True
    one = server.get("/object_info/EmptyImage").json()
    assert list(one) == ["EmptyImage"] and one["EmptyImage"] == info["EmptyImage"]
    assert server.get("/api/object_info/NoSuchNode").json() == {}


def test_system_stats_features_prompt(server):
    stats = server.get("/api/system_stats").json()
    assert {"os", "ram_total", "ram_free", "comfyui_version", "python_version", "pytorch_version",
            "embedded_python", "argv", "required_frontend_version"} <= set(stats["system"])
    device = stats["devices"][0]
    assert {"name", "type", "index", "vram_total", "vram_free", "torch_vram_total", "torch_vram_free"} <= set(device)
    assert server.get("/api/features").json() == {"supports_preview_metadata": True,
                                                  "max_upload_size": server.config.max_upload_bytes}


def test_models_embeddings_and_metadata(server, tmp_path):
    models = tmp_path / "models"
    (models / "embeddings").mkdir(parents=True)
    (models / "embeddings" / "nice_style.safetensors").write_bytes(b"x")
    (models / "checkpoints" / "sub").mkdir(parents=True)
    header = json.dumps({"__metadata__": {"modelspec.title": "Tiny"}}).encode()
    (models / "checkpoints" / "sub" / "tiny.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    bare = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    (models / "checkpoints" / "bare.safetensors").write_bytes(struct.pack("<Q", len(bare)) + bare + b"\0" * 4)
    (models / "checkpoints" / "sub" / "tiny.webp").write_bytes(b"RIFF....WEBP")

    assert server.get("/api/embeddings").json() == ["nice_style"]
    assert {"checkpoints", "loras", "vae", "embeddings"} <= set(server.get("/api/models").json())
    assert server.get("/api/models/checkpoints").json() == ["bare.safetensors", "sub/tiny.safetensors"]
    assert_error(server.get("/api/models/not_a_folder"), 404, "not_found")
    folders = server.get("/api/experiment/models").json()
    ckpt = next(f for f in folders if f["name"] == "checkpoints")
    assert ckpt["folders"][0].endswith("checkpoints")
    files = server.get("/api/experiment/models/checkpoints").json()
    assert {f["name"] for f in files} == {"bare.safetensors", "sub/tiny.safetensors"}
    assert all(f["pathIndex"] == 0 for f in files)
    assert server.get("/api/experiment/models/preview/checkpoints/0/sub/tiny.safetensors").content == b"RIFF....WEBP"
    assert_error(server.get("/api/experiment/models/preview/checkpoints/0/bare.safetensors"), 404)
    assert_error(server.get("/api/experiment/models/preview/checkpoints/9/bare.safetensors"), 404)
    assert_error(server.get("/api/experiment/models/nope"), 404)

    meta = server.get("/api/view_metadata/checkpoints?filename=sub/tiny.safetensors")
    assert meta.json() == {"modelspec.title": "Tiny"}
    assert_error(server.get("/api/view_metadata/checkpoints?filename=bare.safetensors"), 404)
    assert_error(server.get("/api/view_metadata/checkpoints?filename=missing.safetensors"), 404)
    assert_error(server.get("/api/view_metadata/checkpoints?filename=x.ckpt"), 400)
    assert_error(server.get("/api/view_metadata/checkpoints"), 400)
    assert_error(server.get("/api/view_metadata/nowhere?filename=a.safetensors"), 404)
    assert_error(server.get("/api/view_metadata/checkpoints?filename=../../outside.safetensors"), 404)


def test_extensions_i18n_templates(pack_server):
    s = pack_server
    urls = s.get("/api/extensions").json()
    assert "/extensions/demo_pack/demo.js" in urls and "/extensions/demo_pack/sub/more.js" in urls
    r = s.get("/extensions/demo_pack/demo.js")
    assert r.status_code == 200 and r.text == "console.log('demo')"
    assert r.headers["Cache-Control"] == "no-cache"
    assert_error(s.get("/extensions/demo_pack/../../outside.js"), 404)  # clients normalise ../ away
    assert_error(requests.get(s.url + "/extensions/demo_pack/%2e%2e%2f%2e%2e%2foutside.js"), 403)
    assert_error(s.get("/extensions/demo_pack/nothing.js"), 404)
    assert_error(s.get("/extensions/unknown_pack/x.js"), 404)

    assert s.get("/api/i18n").json() == {"en": {"hello": "Hello", "nodeDefs": {"DemoNode": {"display_name": "Demo"}}}}

    templates = s.get("/api/workflow_templates").json()
    assert templates["demo_pack"] == ["demo flow"]
    ours = sorted(p.stem for p in (REPO / "workflows").glob("*.json"))
    if ours:  # Loom's own workflows/ folder is offered as the "loom" templates
        assert templates["loom"] == ours
        assert s.get(f"/api/workflow_templates/loom/{ours[0]}.json").json()
    r = s.get("/api/workflow_templates/demo_pack/demo flow.json")
    assert r.json() == {"nodes": [], "links": []}
    assert_error(s.get("/api/workflow_templates/demo_pack/missing.json"), 404)
    assert_error(s.get("/api/workflow_templates/nobody/x.json"), 404)
    assert_error(requests.get(s.url + "/api/workflow_templates/demo_pack/..%2f..%2f..%2foutside.js"), 403)


def test_settings(server):
    assert server.get("/api/settings").json() == {}
    assert server.get("/api/settings/Comfy.Theme").json() is None
    assert server.post("/api/settings/Comfy.Theme", json="dark").status_code == 200
    assert server.post("/api/settings", json={"A.B": 1, "C": [1, 2]}).status_code == 200
    assert server.get("/api/settings").json() == {"Comfy.Theme": "dark", "A.B": 1, "C": [1, 2]}
    assert server.get("/settings/A.B").json() == 1
    assert_error(server.post("/api/settings", data=b"{oops"), 400, "invalid_json")
    assert_error(server.post("/api/settings", json=[1]), 400, "invalid_json")
    assert server.ctx.store.settings_get("default")["Comfy.Theme"] == "dark"   # kept in the SQLite store


def test_users(server):
    # Single-user: no "users" key, so the official frontend skips its login screen.
    assert server.get("/api/users").json() == {"storage": "server", "migrated": True}
    user_id = server.post("/api/users", json={"username": "ann"}).json()
    assert user_id.startswith("ann_")
    assert_error(server.post("/api/users", json={"username": "ann"}), 400, "duplicate_user")
    assert_error(server.post("/api/users", json={}), 400)


def test_userdata_roundtrip(server):
    wf = {"nodes": [], "version": 0.4}
    r = server.post("/api/userdata/workflows%2Fmy%20flow.json", data=json.dumps(wf))
    assert r.status_code == 200 and r.json() == "workflows/my flow.json"
    r = server.post("/api/userdata/workflows%2Fsecond.json?full_info=true", data=b"{}")
    info = r.json()
    assert info["path"] == "workflows/second.json" and info["size"] == 2 and info["modified"] > 0
    assert_error(server.post("/api/userdata/workflows%2Fsecond.json?overwrite=false", data=b"{}"), 409, "conflict")
    assert server.get("/api/userdata/workflows%2Fmy%20flow.json").json() == wf
    r = server.get("/api/userdata?dir=workflows")
    assert sorted(r.json()) == ["my flow.json", "second.json"]
    full = server.get("/api/userdata?dir=workflows&recurse=true&full_info=true&split=false").json()
    assert {f["path"] for f in full} == {"my flow.json", "second.json"}
    server.post("/api/userdata/workflows%2Fdeep%2Fthird.json", data=b"{}")
    assert server.get("/api/userdata?dir=workflows").json() == ["my flow.json", "second.json"]
    split = server.get("/api/userdata?dir=workflows&recurse=true&split=true").json()
    assert ["deep/third.json", "deep", "third.json"] in split
    v2 = server.get("/api/v2/userdata?path=workflows").json()
    assert v2[0] == {"name": "deep", "path": "workflows/deep", "type": "directory"}
    assert {e["name"] for e in v2 if e["type"] == "file"} == {"my flow.json", "second.json", "third.json"}
    assert_error(server.get("/api/v2/userdata?path=nothing"), 404)
    assert_error(server.get("/api/v2/userdata?path=workflows%2Fsecond.json"), 400)
    r = server.post("/api/userdata/workflows%2Fsecond.json/move/workflows%2Frenamed.json")
    assert r.status_code == 200 and r.json() == "workflows/renamed.json"
    assert_error(server.post("/api/userdata/workflows%2Fmy%20flow.json/move/workflows%2Frenamed.json"
                             "?overwrite=false"), 409)
    assert_error(server.post("/api/userdata/workflows%2Fgone.json/move/workflows%2Fx.json"), 404)
    assert requests.delete(server.url + "/api/userdata/workflows%2Frenamed.json").status_code == 204
    assert_error(requests.delete(server.url + "/api/userdata/workflows%2Frenamed.json"), 404)
    assert_error(server.get("/api/userdata/workflows%2Frenamed.json"), 404)
    assert_error(server.get("/api/userdata"), 400, "missing_dir")
    assert_error(server.get("/api/userdata?dir=nothing"), 404)
    # user.css is served as CSS; everything else as a download, HTML never as HTML.
    server.post("/api/userdata/user.css", data=b"body{}")
    r = server.get("/api/userdata/user.css")
    assert r.headers["Content-Type"].startswith("text/css") and r.headers["Content-Disposition"] == "inline"
    server.post("/api/userdata/page.html", data=b"<script>alert(1)</script>")
    r = server.get("/api/userdata/page.html")
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["Content-Disposition"] == "attachment" and r.headers["X-Content-Type-Options"] == "nosniff"


def test_internal_routes(server):
    server.queue_prompt({"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1,
                                                                      "color": 0}},
                         "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "i"}}})
    assert isinstance(server.get("/internal/logs").json(), str)
    raw = server.get("/internal/logs/raw").json()
    assert set(raw) == {"entries", "size"}
    assert requests.patch(server.url + "/internal/logs/subscribe",
                          json={"clientId": "x", "enabled": True}).status_code == 200
    folders = server.get("/internal/folder_paths").json()
    assert folders["checkpoints"][0].endswith("checkpoints")
    (server.ctx.folders.input_dir / "a.png").write_bytes(b"x")
    assert "a.png" in server.get("/internal/files/input").json()
    assert_error(server.get("/internal/files/secrets"), 400, "invalid_type")
    assert server.get("/api/global_subgraphs").json() == {}
    assert server.get("/api/node_replacements").json() == {}


def test_errors_are_json(server):
    assert_error(server.get("/api/does/not/exist"), 404, "not_found")
    assert_error(server.get("/no-such-page.html"), 404, "not_found")
    assert_error(requests.put(server.url + "/api/prompt"), 405, "method_not_allowed")
    assert_error(server.post("/api/history", data=b"nope"), 400, "invalid_json")


def test_what_the_official_frontend_asks_for_at_load(server):
    # Folders it lists, and ComfyUI's core template index (Loom's templates come from /api/workflow_templates).
    assert server.get("/api/userdata?dir=workflows&recurse=true&split=false&full_info=true").json() == []
    assert server.get("/api/userdata?dir=subgraphs&recurse=true&split=false&full_info=true").json() == []
    assert server.get("/templates/index.json").json() == []
    assert server.get("/templates/index.fr.json").json() == []
    assert server.get("/templates/index_logo.json").json() == {}
    assert_error(server.get("/templates/other.json"), 404)


def test_placeholder_and_frontend(make_server, tmp_path):
    placeholder = make_server()
    r = placeholder.get("/")
    assert r.status_code == 200 and "Loom is running" in r.text and r.headers["Cache-Control"] == "no-cache"
    placeholder.stop()
    root = tmp_path / "web"
    (root / "js").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>Loom editor</title>")
    (root / "js" / "app.js").write_text("export const x = 1")
    editor = make_server(web_root=root)
    assert "Loom editor" in editor.get("/").text
    r = editor.get("/js/app.js")
    assert r.text == "export const x = 1" and r.headers["Cache-Control"] == "no-cache"
    assert_error(editor.get("/js/missing.js"), 404)
    assert_error(requests.get(editor.url + "/%2e%2e/%2e%2e/etc/passwd"), 403)


def test_cache_is_visible(server):
    from srv_helpers import image_graph

    before = server.get("/api/loom/stats").json()["workers"]["local"]["cache"]
    for _ in range(2):
        server.wait_history(server.queue_prompt(image_graph(prefix="statstest"))["prompt_id"])
    after = server.get("/api/loom/stats").json()["workers"]["local"]["cache"]
    assert {"hits", "misses", "entries", "bytes", "budget_bytes"} <= set(after)
    assert after["hits"] > before["hits"] and after["entries"] >= 1 and after["bytes"] > 0
    assert server.get("/api/system_stats").json()["loom"]["workers"]["local"]["cache"]["entries"] >= 1

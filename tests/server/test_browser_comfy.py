"""The official ComfyUI frontend (`--frontend comfy`) against Loom in headless Chromium: load, queue, see the image."""

from __future__ import annotations

import shutil

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]

WORKFLOW = {
    "last_node_id": 2, "last_link_id": 1,
    "nodes": [
        {"id": 1, "type": "EmptyImage", "pos": [50, 100], "size": [315, 130], "flags": {}, "order": 0, "mode": 0,
         "inputs": [], "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1], "slot_index": 0}],
         "properties": {"Node name for S&R": "EmptyImage"}, "widgets_values": [96, 64, 1, 0x3366FF]},
        {"id": 2, "type": "SaveImage", "pos": [450, 100], "size": [315, 270], "flags": {}, "order": 1, "mode": 0,
         "inputs": [{"name": "images", "type": "IMAGE", "link": 1}], "outputs": [],
         "properties": {"Node name for S&R": "SaveImage"}, "widgets_values": ["browser_test"]},
    ],
    "links": [[1, 1, 0, 2, 0, "IMAGE"]], "groups": [], "config": {}, "extra": {}, "version": 0.4,
}


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium")
def test_official_frontend_runs_a_workflow(make_server, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    from server.routes_frontend import resolve_web_root

    server = make_server(web_root=resolve_web_root("comfy"))
    # A returning user: no first-run template browser over the canvas.
    assert server.post("/api/settings", json={"Comfy.TutorialCompleted": True}).status_code == 200
    problems: list[str] = []
    views: list[tuple[int, str]] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
            page.on("response", lambda r: views.append((r.status, r.headers.get("content-type", "")))
                    if "/api/view?" in r.url else None)
            page.goto(server.url + "/", wait_until="domcontentloaded", timeout=90_000)
            page.wait_for_function("() => window.app && window.app.graph && window.app.vueAppReady !== false",
                                   timeout=120_000)
            page.screenshot(path=str(tmp_path / "1_loaded.png"))
            page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", WORKFLOW)
            nodes = page.evaluate("() => window.app.graph._nodes.map(n => n.type)")
            assert sorted(nodes) == ["EmptyImage", "SaveImage"]
            prompt = page.evaluate("async () => (await window.app.graphToPrompt()).output")
            assert prompt["1"]["inputs"] == {"width": 96, "height": 64, "batch_size": 1, "color": 0x3366FF}
            assert prompt["2"]["inputs"]["images"] == ["1", 0]
            page.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
            page.wait_for_function(
                "() => { const o = window.app.nodeOutputs || {}; return Object.values(o).some("
                "v => v && v.images && v.images.length); }", timeout=60_000)
            outputs = page.evaluate("() => JSON.parse(JSON.stringify(window.app.nodeOutputs))")
            image = next(v for v in outputs.values() if v.get("images"))["images"][0]
            assert image["type"] == "output" and image["filename"].startswith("browser_test")
            # The frontend fetched the image from /api/view and decoded it on the SaveImage node.
            page.wait_for_function(
                "() => { const n = window.app.graph._nodes.find(n => n.type === 'SaveImage');"
                " return n && n.imgs && n.imgs.length && n.imgs[0].complete && n.imgs[0].naturalWidth > 0; }",
                timeout=30_000)
            size = page.evaluate("() => { const n = window.app.graph._nodes.find(n => n.type === 'SaveImage');"
                                 " return [n.imgs[0].naturalWidth, n.imgs[0].naturalHeight]; }")
            assert size == [96, 64]
            assert any(status == 200 and ctype.startswith("image/") for status, ctype in views), views
            page.screenshot(path=str(tmp_path / "2_after_run.png"))
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            print("\n".join(problems[-30:]))
            raise
        finally:
            browser.close()
    saved = list(server.ctx.folders.output_dir.glob("browser_test*.png"))
    assert len(saved) == 1
    # The workflow the frontend sent is embedded in the PNG, as in ComfyUI.
    from PIL import Image

    assert '"EmptyImage"' in Image.open(saved[0]).text.get("workflow", "")

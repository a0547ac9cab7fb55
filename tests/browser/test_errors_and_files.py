"""Errors shown where they belong; unknown nodes kept; PNG and JSON files dropped on the page."""

import io
import json

from PIL import Image
from PIL.PngImagePlugin import PngInfo

CHAIN = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 255}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "drop"}},
}


def test_validation_error_marks_the_node_and_input(editor):
    ed = editor
    ed.js("(p) => loomApp.loadWorkflow(p)", CHAIN)
    # Disconnect Save Image's input: the server must refuse, naming node 3 and its `images` input.
    ed.js("() => loomApp.graph.getNodeById(3).disconnectInput(0)")
    res = ed.queue()
    assert "node_errors" in res[0] and "3" in res[0]["node_errors"], res
    errs = ed.js("() => loomApp.execution.nodeErrors")
    assert list(errs) == ["3"]
    assert ed.js("() => loomApp.graph.getNodeById(3).has_errors") is True
    panel = ed.page.locator("#error-panel")
    panel.wait_for()
    text = panel.inner_text()
    assert "Save Image" in text and "images" in text
    ed.shot("validation_error_on_node")
    # Fixing it and queueing again clears the marks.
    ed.js("() => loomApp.graph.getNodeById(2).connect(0, loomApp.graph.getNodeById(3), 0)")
    res = ed.queue()
    assert res[0].get("prompt_id"), res
    assert ed.js("() => Object.keys(loomApp.execution.nodeErrors).length") == 0
    assert ed.page.locator("#error-panel").count() == 0
    ed.wait_idle()


def test_unknown_node_types_are_placeholders_that_survive_save(editor):
    ed = editor
    wf = ed.js("(p) => loomApp.loadWorkflow(p).then(() => loomApp.serializeWorkflow())", CHAIN)
    ghost = {
        "id": 7, "type": "FancyUpscaler (somepack)", "pos": [300, 400], "size": [280, 120], "flags": {}, "order": 3,
        "mode": 0, "title": "My upscaler",
        "inputs": [{"name": "image", "type": "IMAGE", "link": 9}, {"name": "scale", "type": "FLOAT", "widget": {"name": "scale"}, "link": None}],
        "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [], "slot_index": 0}],
        "properties": {"Node name for S&R": "FancyUpscaler", "cnr_id": "somepack"},
        "widgets_values": [2.5, "lanczos", {"nested": [1, 2]}],
        "extra_key_from_another_editor": {"keep": True},
    }
    wf["nodes"].append(ghost)
    wf["links"].append([9, 2, 0, 7, 0, "IMAGE"])
    next(n for n in wf["nodes"] if n["id"] == 2)["outputs"][0]["links"].append(9)
    wf["last_link_id"] = 9
    wf["last_node_id"] = 7
    ed.js("(w) => loomApp.loadWorkflow(w)", wf)
    banner = ed.page.locator("#banner")
    banner.wait_for()
    assert "FancyUpscaler (somepack)" in banner.inner_text()
    assert "from the node pack somepack" in banner.inner_text()
    ed.shot("missing_node_banner")
    # Move it (an edit), save, reload the save: the node is still there, verbatim.
    ed.js("() => { const n = loomApp.graph.getNodeById(7); n.pos[0] += 50; }")
    saved = ed.js("() => loomApp.serializeWorkflow()")
    node = next(n for n in saved["nodes"] if n["id"] == 7)
    assert node["widgets_values"] == ghost["widgets_values"]
    assert node["extra_key_from_another_editor"] == {"keep": True}
    assert node["title"] == "My upscaler" and node["properties"]["cnr_id"] == "somepack"
    assert node["pos"][0] == 350
    assert [i["name"] for i in node["inputs"]] == ["image", "scale"] and node["inputs"][0]["link"] == 9
    assert [9, 2, 0, 7, 0, "IMAGE"] in saved["links"]
    ed.js("(w) => loomApp.loadWorkflow(w)", saved)
    again = ed.js("() => loomApp.serializeWorkflow()")
    assert next(n for n in again["nodes"] if n["id"] == 7)["widgets_values"] == ghost["widgets_values"]
    # Queueing names the missing type instead of losing it.
    res = ed.queue()
    assert "error" in res[0]
    ed.shot("missing_node_queue_refused")


def png_with(text: dict) -> bytes:
    info = PngInfo()
    for k, v in text.items():
        info.add_text(k, json.dumps(v))
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 50, 50)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def drop_file(ed, data: bytes, name: str, mime: str) -> None:
    ed.js("""async ([b64, name, mime]) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], name, {type: mime}));
        const target = document.getElementById('graph-canvas');
        const r = target.getBoundingClientRect();
        for (const type of ['dragenter', 'dragover', 'drop'])
            target.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true,
                clientX: r.left + 30, clientY: r.top + 30}));
    }""", [__import__("base64").b64encode(data).decode(), name, mime])


def test_drop_png_with_workflow_or_prompt(editor):
    ed = editor
    wf = ed.js("(p) => loomApp.loadWorkflow(p).then(() => loomApp.serializeWorkflow())", CHAIN)
    ed.js("() => document.getElementById('btn-new').click()")
    ed.page.wait_for_function("loomApp.graph._nodes.length === 0")

    # A PNG carrying the UI workflow (what SaveImage writes, ours or ComfyUI's).
    drop_file(ed, png_with({"workflow": wf, "prompt": CHAIN}), "ours.png", "image/png")
    ed.page.wait_for_function("loomApp.graph._nodes.length === 3")
    assert sorted(ed.node_ids()) == [1, 2, 3]
    assert ed.js("() => loomApp.toApiPrompt()['1'].inputs.color") == 255
    ed.shot("png_with_workflow_dropped")

    # A PNG with only an API `prompt`: the graph is rebuilt from it.
    api = {"10": {"class_type": "EmptyImage", "inputs": {"width": 48, "height": 40, "batch_size": 2, "color": 7}},
           "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "api"}}}
    drop_file(ed, png_with({"prompt": api}), "api_only.png", "image/png")
    ed.page.wait_for_function("loomApp.graph._nodes.length === 2")
    prompt = ed.js("() => loomApp.toApiPrompt()")
    assert {k: (v["class_type"], v["inputs"]) for k, v in prompt.items()} == {k: (v["class_type"], v["inputs"]) for k, v in api.items()}
    ed.shot("png_with_prompt_only_dropped")

    # A workflow JSON file dropped, and a PNG without metadata (a clear error, nothing lost).
    drop_file(ed, json.dumps(wf).encode(), "wf.json", "application/json")
    ed.page.wait_for_function("loomApp.graph._nodes.length === 3")
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    drop_file(ed, buf.getvalue(), "plain.png", "image/png")
    toast = ed.page.locator(".toast.error").last
    toast.wait_for()
    assert "plain.png" in toast.inner_text() and "no embedded workflow" in toast.inner_text()
    assert ed.js("() => loomApp.graph._nodes.length") == 3


def test_run_output_png_carries_the_workflow(editor):
    """A PNG the server saved from our queue loads back into the same graph."""
    ed = editor
    ed.js("(p) => loomApp.loadWorkflow(p)", CHAIN)
    before = ed.js("() => loomApp.toApiPrompt()")
    ed.queue()
    ed.wait_images(3)
    name = ed.js("() => loomApp.execution.images.get('3').images[0].dataset.filename")
    path = next(ed.server.data_dir.rglob(name))
    ed.js("() => document.getElementById('btn-new').click()")
    drop_file(ed, path.read_bytes(), name, "image/png")
    ed.page.wait_for_function("loomApp.graph._nodes.length === 3")
    assert ed.js("() => loomApp.toApiPrompt()") == before

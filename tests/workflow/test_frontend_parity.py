"""Differential test: our converter against the real frontend's `graphToPrompt`.

The official frontend (the `comfyui-frontend-package` wheel) is served by a small aiohttp app that
answers /object_info from the test fixture; headless Chromium loads each workflow with
`app.loadGraphData` and converts it with `app.graphToPrompt`. Both prompts must be equal.

Deliberate differences from the 1.58 frontend, tested elsewhere and left out here:
  - a subgraph input wired straight to its output: 1.58 throws "No output node found"; we pass it on;
  - subgraph node ids that collide with root ids: 1.58 renumbers them on load; we keep the saved
    ids (execution ids stay unique thanks to the path prefix);
  - a PrimitiveNode reaching its target through a Reroute: 1.58 ignores it; we follow the reroute
    (as the legacy frontend did);
  - a dict `widgets_values`: 1.58 reads its values in order; we match them by widget name;
  - a legacy promoted seed's control slot in an instance's values: 1.58 shifts the later values
    (`steps: "randomize"`); we skip the slot.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from pathlib import Path

import pytest
from workflow_builders import (
    BYPASS,
    MUTE,
    SubgraphBuilder,
    WorkflowBuilder,
    compressed_instance_workflow,
    encode_workflow,
    image_chain,
    instance,
    load_data,
    make_object_info,
    nested_workflow,
)

from engine.workflow import convert_ui_to_api
from tests.shared_helpers import CHROMIUM, CHROMIUM_ARGS, free_port


def _static_dir() -> Path | None:
    try:
        import comfyui_frontend_package
    except ImportError:
        return None
    return Path(comfyui_frontend_package.__file__).parent / "static"


def _serve(static: Path, object_info: dict, port: int, started: threading.Event, box: dict) -> None:
    from aiohttp import web

    async def index(_request):
        return web.FileResponse(static / "index.html")

    def reply(body):
        async def handler(_request):
            return web.json_response(body)
        return handler

    async def not_found(_request):
        return web.json_response({}, status=404)  # JSON, so the frontend's JSON.parse does not choke

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/api/object_info", reply(object_info))
    app.router.add_get("/api/settings", reply({}))
    app.router.add_get("/api/users", reply({}))
    app.router.add_get("/api/extensions", reply([]))
    app.router.add_route("*", "/api/{tail:.*}", not_found)
    app.router.add_static("/", static)
    loop = asyncio.new_event_loop()
    box["loop"] = loop
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    started.set()
    loop.run_forever()
    loop.run_until_complete(runner.cleanup())


@pytest.fixture(scope="module")
def frontend():
    static = _static_dir()
    if static is None or not (static / "index.html").is_file():
        pytest.skip("comfyui-frontend-package is not installed")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    port = free_port()
    started, box = threading.Event(), {}
    thread = threading.Thread(target=_serve, args=(static, make_object_info(), port, started, box), daemon=True)
    thread.start()
    assert started.wait(30), "the stub server did not start"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_function("window.app && window.app.graph && Array.isArray(window.app.graph.nodes)",
                               timeout=120_000)

        def graph_to_prompt(workflow: dict) -> dict:
            return page.evaluate("""async (wf) => {
                await window.app.loadGraphData(wf);
                return (await window.app.graphToPrompt()).output;
            }""", workflow)

        yield graph_to_prompt
        browser.close()
    box["loop"].call_soon_threadsafe(box["loop"].stop)
    thread.join(10)


# -- the cases ---------------------------------------------------------------------------------------
def case_default():
    return load_data("default_workflow.json")


def case_mute():
    wf = WorkflowBuilder()
    image_chain(wf, [MUTE])
    return wf.build()


def case_bypass_chain():
    wf = WorkflowBuilder()
    image_chain(wf, [BYPASS, 0, BYPASS, BYPASS])
    return wf.build()


def case_bypass_by_type():
    wf = WorkflowBuilder()
    ckpt = wf.node("CheckpointLoaderSimple", outputs=["MODEL", "CLIP", "VAE"], widgets=["model.safetensors"])
    lora = wf.node("LoraLoader", inputs=[("clip", "CLIP"), ("model", "MODEL")], outputs=["MODEL", "CLIP"],
                   widgets=["style.safetensors", 1.0, 1.0], mode=BYPASS)
    wf.link(ckpt, 1, lora, 0)
    wf.link(ckpt, 0, lora, 1)
    enc = wf.node("CLIPTextEncode", inputs=[("clip", "CLIP")], outputs=["CONDITIONING"], widgets=["a cat"])
    ks = wf.node("KSampler", inputs=[("model", "MODEL"), ("positive", "CONDITIONING")], outputs=["LATENT"],
                 widgets=[3, "fixed", 20, 7.5, "euler", "normal", 1.0])
    wf.link(lora, 1, enc, 0)
    wf.link(lora, 0, ks, 0)
    wf.link(enc, 0, ks, 1)
    return wf.build()


def case_bypass_without_match():
    wf = WorkflowBuilder()
    load = wf.node("LoadImage", outputs=["IMAGE", "MASK"], widgets=["cat.png", "image"])
    scale = wf.node("ImageScale", inputs=[("image", "IMAGE")], outputs=["IMAGE"],
                    widgets=["bilinear", 64, 64, "disabled"], mode=BYPASS)
    join = wf.node("TextJoin", inputs=[("a", "STRING"), ("b", "STRING", "b")], outputs=["STRING"], widgets=["kept"])
    wf.link(load, 0, scale, 0)
    wf.link(scale, 0, join, "b", "STRING")
    return wf.build()


def case_reroutes():
    wf = WorkflowBuilder()
    load = wf.node("LoadImage", outputs=["IMAGE", "MASK"], widgets=["cat.png", "image"])
    r1 = wf.node("Reroute", inputs=[("", "*")], outputs=["IMAGE"])
    r2 = wf.node("Reroute", inputs=[("", "*")], outputs=["IMAGE"])
    inv = wf.node("ImageInvert", inputs=[("image", "IMAGE")], outputs=["IMAGE"], mode=BYPASS)
    r3 = wf.node("Reroute", inputs=[("", "*")], outputs=["IMAGE"])
    save = wf.node("SaveImage", inputs=[("images", "IMAGE")], widgets=["out"])
    loose = wf.node("Reroute", inputs=[("", "*")], outputs=["IMAGE"])
    save2 = wf.node("SaveImage", inputs=[("images", "IMAGE")], widgets=["loose"])
    wf.link(load, 0, r1, 0)
    wf.link(r1, 0, r2, 0)
    wf.link(r2, 0, inv, 0)
    wf.link(inv, 0, r3, 0)
    wf.link(r3, 0, save, 0)
    wf.link(loose, 0, save2, 0)
    return wf.build()


def case_native_reroutes():
    wf = WorkflowBuilder(version=1)
    image_chain(wf, [0])
    data = wf.build(reroutes=[{"id": 1, "pos": [10, 10], "linkIds": [2]}])
    data["links"][1]["parentId"] = 1
    return data


def case_primitive():
    wf = WorkflowBuilder()
    prim = wf.node("PrimitiveNode", outputs=["INT"], widgets=[768, "fixed"], title="size")
    prim["outputs"][0]["widget"] = {"name": "width"}
    latent = wf.node("EmptyLatentImage", inputs=[("width", "INT", "width"), ("height", "INT", "height")],
                     outputs=["LATENT"], widgets=[512, 512, 1])
    wf.link(prim, 0, latent, "width")
    wf.link(prim, 0, latent, "height")
    return wf.build()


def case_widget_socket():
    wf = WorkflowBuilder()
    src = wf.node("TextJoin", inputs=[("a", "STRING")], outputs=["STRING"], widgets=["!"])
    enc = wf.node("CLIPTextEncode", inputs=[("clip", "CLIP"), ("text", "STRING", "text")],
                  outputs=["CONDITIONING"], widgets=["stale text"])
    wf.link(src, 0, enc, "text")
    return wf.build()


def case_widgets():
    wf = WorkflowBuilder()
    wf.node("KSampler", outputs=["LATENT"], widgets=[42, "randomize", 25, 6.5, "dpmpp_2m", "karras", 0.8])
    wf.node("KSampler", outputs=["LATENT"], widgets=[42, True, 25, 6.5, "dpmpp_2m", "karras", 0.8])
    wf.node("RandomNoise", outputs=["NOISE"], widgets=[7, "increment"])
    wf.node("RandomChoice", outputs=["STRING"], widgets=["b", "randomize", "", 3])
    wf.node("LoadImage", outputs=["IMAGE", "MASK"], widgets=["cat.png", "image"])
    wf.node("LoadImageMask", outputs=["MASK"], widgets=["example.png", "red", "image"])
    wf.node("SaveText", inputs=[("text", "STRING")], widgets=[".md", True])
    wf.node("MultiPick", outputs=["STRING"], widgets=[["x", "z"]])
    wf.node("EmptyLatentImage", outputs=["LATENT"], title="Renamed", widgets=[64, 80, 2])
    wf.node("Note", widgets=["a note"])
    wf.node("MarkdownNote", widgets=["# note"])
    return wf.build()


def case_subgraph(version):
    return lambda: encode_workflow(version)[0].build()


def case_two_instances():
    return encode_workflow(n_instances=2, values=("positive words", "negative words"))[0].build()


def case_subgraph_input_from_outside():
    wf, _, _, (inst,) = encode_workflow()
    join = wf.node("TextJoin", inputs=[("a", "STRING")], outputs=["STRING"], widgets=["x"])
    wf.link(join, 0, inst, "text")
    return wf.build()


def case_nested(mode=0, bypass_inner=False):
    def build():
        wf, _, inst, _ = nested_workflow()
        inst["mode"] = mode
        if bypass_inner:
            wf.subgraphs[0]["nodes"][1]["mode"] = BYPASS
        return wf.build()
    return build


def case_defaults_and_short_values():
    wf = WorkflowBuilder()
    wf.node("SaveText", inputs=[("text", "STRING")], widgets=[".md"])
    wf.node("SaveImage", inputs=[("images", "IMAGE")])
    wf.node("LoadImage", outputs=["IMAGE", "MASK"], widgets=["cat.png"])
    return wf.build()


def case_compressed_instance():
    wf, _, _ = compressed_instance_workflow()
    return wf.build()


def case_legacy_proxy_widgets():
    sg = SubgraphBuilder("Latent", inputs=[("width", "INT")], outputs=[("LATENT", "LATENT")], first_id=50)
    latent = sg.node("EmptyLatentImage", inputs=[("width", "INT", "width")], outputs=["LATENT"],
                     widgets=[512, 512, 1])
    sg.link(-10, 0, latent, "width")
    sg.link(latent, 0, -20, 0)
    wf = WorkflowBuilder(version=1)
    wf.subgraphs.append(sg.build())
    instance(wf, sg, widgets=[640, 832], properties={"proxyWidgets": [["-1", "width"], ["50", "height"]]})
    return wf.build()


def case_nested_without_outer_value():
    wf, _, inst, _ = nested_workflow()
    inst.pop("widgets_values")
    return wf.build()


CASES = {
    "default": case_default, "mute": case_mute, "bypass_chain": case_bypass_chain,
    "bypass_by_type": case_bypass_by_type, "bypass_without_match": case_bypass_without_match,
    "reroutes": case_reroutes, "native_reroutes": case_native_reroutes, "primitive": case_primitive,
    "widget_socket": case_widget_socket, "widgets": case_widgets,
    "subgraph_v1": case_subgraph(1), "subgraph_v04": case_subgraph(0.4), "two_instances": case_two_instances,
    "subgraph_input_from_outside": case_subgraph_input_from_outside,
    "nested": case_nested(), "nested_muted": case_nested(MUTE), "nested_bypassed": case_nested(BYPASS),
    "nested_inner_bypassed": case_nested(bypass_inner=True),
    "defaults_and_short_values": case_defaults_and_short_values, "compressed_instance": case_compressed_instance,
    "legacy_proxy_widgets": case_legacy_proxy_widgets, "nested_without_outer_value": case_nested_without_outer_value,
}


@pytest.mark.parametrize("name", list(CASES))
def test_same_prompt_as_the_frontend(frontend, name):
    workflow = CASES[name]()
    ours = convert_ui_to_api(json.loads(json.dumps(workflow)), make_object_info()).prompt
    theirs = frontend(workflow)
    assert ours == theirs, f"\nours:   {json.dumps(ours, sort_keys=True)}\ntheirs: {json.dumps(theirs, sort_keys=True)}"

"""Every workflow in workflows/ (and the feature fixtures here): the editor loads it, saves it, and
queues exactly what the engine's Python converter makes of the saved file; those in workflows/ run
with the shipped models and show their pictures (the SDXL one only where its checkpoints are)."""

import json
from pathlib import Path

import pytest
from browser_support import REPO, overlapping_nodes, python_convert

from tests.workflows_run.workflows_run_support import load_builder

HERE = Path(__file__).resolve().parent
FILES = sorted((REPO / "workflows").glob("*.json")) + sorted((HERE / "workflows").glob("*.json"))


def queued_body(ed) -> tuple[dict, list]:
    """Queues through the toolbar path and returns the POST /api/prompt body the page sent."""
    with ed.page.expect_request(lambda r: r.url.endswith("/api/prompt") and r.method == "POST") as req:
        result = ed.js("() => loomApp.queue()")
    return json.loads(req.value.post_data), result


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_editor_queues_what_the_python_converter_makes(editor, loom_server, path):
    ed = editor
    original = json.loads(path.read_text())
    ed.js("(w) => loomApp.loadWorkflow(w)", original)
    ed.shot(f"loaded_{path.stem}")
    saved = ed.js("() => loomApp.serializeWorkflow()")
    body, result = queued_body(ed)
    assert body["extra_data"]["extra_pnginfo"]["workflow"]["nodes"], "the workflow travels with the prompt"
    info = loom_server.object_info
    from_saved = python_convert(saved, info)
    assert body["prompt"] == from_saved
    if "nodes" in original:  # a UI file: saving in the editor changed nothing the server would see
        assert python_convert(original, info) == from_saved
    res = result[0]
    if path.parent == HERE / "workflows":
        return  # the feature fixtures name inputs and models no server has: the conversion is their check
    missing = [name for folder, name in load_builder().NEEDS_USER_MODELS.get(path.name, [])
               if name not in _model_list(info, folder)]
    if missing:
        assert "prompt_id" not in res and all(name in json.dumps(res) for name in missing), res
        pytest.skip(f"{path.name} needs the user's {', '.join(missing)}; the server refused it, naming them")
    assert "prompt_id" in res, f"{path.name} was refused: {json.dumps(res.get('node_errors') or res.get('error'))}"
    # Every workflow in workflows/ runs with the shipped models: wait for its pictures.
    saves = [n["id"] for n in original["nodes"] if n["type"] == "SaveImage"]
    assert saves
    for node_id in saves:
        ed.wait_images(node_id, timeout=60000)
    ed.wait_idle(timeout=20000)
    assert ed.js("() => loomApp.execution.execError") is None
    ed.shot(f"ran_{path.stem}")
    sizes = ed.js("(ids) => ids.map(id => loomApp.execution.images.get(String(id)).images.map(i => [i.naturalWidth, i.naturalHeight]))",
                  saves)
    assert all(w >= 128 and h >= 128 for per_node in sizes for w, h in per_node), sizes
    assert overlapping_nodes(ed) == [], "a node grew into another while showing its image"
    assert not ed.errors


def _model_list(object_info: dict, folder: str) -> list[str]:
    loader = {"checkpoints": ("CheckpointLoaderSimple", "ckpt_name")}[folder]
    return object_info[loader[0]]["input"]["required"][loader[1]][0]

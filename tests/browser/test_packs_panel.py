"""The node packs panel and the cache readout, against a real `loom serve` whose custom_nodes folder
is a temp folder of the test (LOOM_CUSTOM_NODES_DIR), so the repo's custom_nodes/ is never changed.

pip sees only a folder of tiny wheels made here (PIP_NO_INDEX + PIP_FIND_LINKS), with a fake
`numpy 1.26.0` that exists only to be refused; nothing reaches the network.
"""

from __future__ import annotations

import shutil
import socket
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
from browser_support import REPO, Server, free_port

from tests.packs.pack_helpers import commit_all, init_repo, make_wheel, write_pack
from tests.shared_helpers import ServeProcess

PACK_NODE = "DemoPackSwatch"
DEMO_CHECKPOINT = REPO / "models" / "checkpoints" / "loom-demo-sd1.safetensors"

# One V1 node: a grey square IMAGE of the given size (so the output cache holds size*size*3*4 bytes).
SWATCH_PACK = f'''
import torch


class Swatch:
    @classmethod
    def INPUT_TYPES(cls):
        return {{"required": {{"size": ("INT", {{"default": 32, "min": 8, "max": 256}})}}}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "make"
    OUTPUT_NODE = True
    CATEGORY = "demo pack"

    def make(self, size):
        return {{"ui": {{"text": [f"{{size}}px"]}}, "result": (torch.full((1, size, size, 3), 0.5),)}}


NODE_CLASS_MAPPINGS = {{"{PACK_NODE}": Swatch}}
NODE_DISPLAY_NAME_MAPPINGS = {{"{PACK_NODE}": "Demo Pack Swatch"}}
'''


@pytest.fixture(scope="module")
def packs_env(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("packs_panel")
    (root / "custom_nodes").mkdir()
    wheels = root / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "numpy", "1.26.0", files={"numpy/__init__.py": "raise ImportError('fake numpy for tests')\n"})
    if DEMO_CHECKPOINT.is_file():  # the repo's 20 MB demo model: loading it makes the model count move
        (root / "models" / "checkpoints").mkdir(parents=True)
        # A copy: the model loader refuses a symlink that points out of its folder.
        shutil.copyfile(DEMO_CHECKPOINT, root / "models" / "checkpoints" / DEMO_CHECKPOINT.name)
    return {"root": root, "env": {"LOOM_CUSTOM_NODES_DIR": str(root / "custom_nodes"), "PIP_NO_INDEX": "1",
                                  "PIP_FIND_LINKS": str(wheels), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}}


@pytest.fixture(scope="module")
def packs_server(packs_env):
    """`loom serve` on loopback with its output cache on and an empty custom_nodes folder of its own."""
    root = packs_env["root"]
    data = root / "data"
    data.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        for k, v in packs_env["env"].items():
            mp.setenv(k, v)
        port = free_port()
        server = Server([str(REPO / ".venv" / "bin" / "loom"), "serve", "--port", str(port),
                         "--data-dir", str(data), "--models-dir", str(root / "models")], data, port)
    assert server.get_json("/api/nodes")["packs"] == [], "the server must not see the repo's custom_nodes/"
    server.custom_nodes = root / "custom_nodes"
    yield server
    server.stop()


def open_packs(ed) -> None:
    if ed.js("() => loomApp.ui.panels.current") != "packs":
        ed.page.click("#btn-panel-packs")
    ed.page.locator(".packs-panel").wait_for()


def ops_started(ed) -> int:
    return ed.js("() => loomApp.ui.panels.packs.ops")


def final_message(ed, after_op: int, timeout: float = 30000) -> tuple[str, str]:
    """(kind, text) of the panel's message once the operation started after `after_op` has answered."""
    ed.page.wait_for_function(
        """(op) => { const m = document.querySelector('.packs-panel .pack-msg[role]');
                     return m && +m.dataset.op > op && m.dataset.kind !== 'busy'; }""",
        arg=after_op, timeout=timeout)
    box = ed.page.locator(".packs-panel .pack-msg[role]")
    return box.get_attribute("data-kind"), box.inner_text()


def install(ed, source: str) -> tuple[str, str]:
    open_packs(ed)
    op = ops_started(ed)
    ed.page.fill(".pack-source", source)
    ed.page.click(".pack-install-btn")
    return final_message(ed, op)


def act(ed, pack: str, action: str, confirm: bool = False) -> tuple[str, str]:
    op = ops_started(ed)
    ed.page.click(f'.pack[data-name="{pack}"] [data-act="{action}"]')
    if confirm:
        ed.page.click(".modal-foot button:has-text('Remove')")
    return final_message(ed, op)


def readout(ed) -> dict:
    return ed.js("""() => { const d = document.getElementById('cache-readout').dataset;
        return {entries: +d.entries, bytes: +d.bytes, hits: +d.hits, misses: +d.misses, models: +d.models,
                text: document.getElementById('cache-readout').textContent}; }""")


def wait_readout(ed, condition: str, timeout: float = 20000) -> dict:
    ed.page.wait_for_function(f"() => {{ const d = document.getElementById('cache-readout').dataset; return {condition}; }}",
                              timeout=timeout)
    return readout(ed)


def make_git_pack(root: Path) -> Path:
    repo = write_pack(root, "loom_demo_pack", SWATCH_PACK)
    init_repo(repo)
    commit_all(repo, "one node")
    return repo


def test_install_from_git_add_the_node_run_it_update_disable_enable_remove(make_editor, packs_server, tmp_path):
    ed = make_editor(packs_server)
    repo = make_git_pack(tmp_path / "src")
    # A workflow that uses the pack's node before it is installed: a placeholder and the banner.
    placeholder = {"nodes": [{"id": 1, "type": PACK_NODE, "pos": [60, 80], "size": [260, 80], "flags": {}, "order": 0,
                              "mode": 0, "inputs": [], "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": None}],
                              "properties": {}, "widgets_values": [40]}],
                   "links": [], "groups": [], "version": 0.4, "last_node_id": 1, "last_link_id": 0}
    ed.js("(w) => loomApp.loadWorkflow(w)", placeholder)
    ed.page.locator("#banner").wait_for()
    assert PACK_NODE in ed.page.locator("#banner").inner_text()

    open_packs(ed)
    assert "No node packs are installed" in ed.page.locator(".packs-panel").inner_text()
    ed.shot("packs_panel_empty")

    kind, text = install(ed, f"{repo.as_uri()}@main")
    assert kind == "ok", text
    assert "Installed loom_demo_pack" in text and f"1 node loaded ({PACK_NODE})" in text
    row = ed.page.locator('.pack[data-name="loom_demo_pack"]')
    assert row.get_attribute("data-state") == "enabled"
    row_text = row.inner_text()
    assert "1 node · loaded in" in row_text and "@main" in row_text and "git" in row_text
    assert (packs_server.custom_nodes / "loom_demo_pack" / "__init__.py").is_file()
    ed.shot("pack_installed")

    # The node definitions were fetched again: the placeholder became the real node, the banner went.
    assert ed.js(f"() => !!loomApp.objectInfo.{PACK_NODE} && !loomApp.graph.getNodeById(1).loomMissing")
    assert ed.js("() => loomApp.graph.getNodeById(1).widgets[0].value") == 40
    assert ed.page.locator("#banner").is_hidden()

    # Add it from the node search on an empty canvas and queue it.
    ed.js("() => document.getElementById('btn-new').click()")
    ed.page.wait_for_function("loomApp.graph._nodes.length === 0")
    before = readout(ed)
    node = ed.add_by_search((300, 300), "demo pack swatch", PACK_NODE)
    ed.page.click("#btn-queue")
    after = wait_readout(ed, f"+d.misses > {before['misses']}")
    ed.wait_idle()
    assert ed.js(f"() => loomApp.execution.outputs['{node}']?.text") == ["32px"]
    assert after["entries"] == before["entries"] + 1 and after["bytes"] == before["bytes"] + 32 * 32 * 3 * 4
    assert after["text"] != before["text"] and "hits" in after["text"]
    ed.shot("pack_node_ran_cache_readout")

    # Update pulls the new commit; the running server keeps the old code until a restart.
    (repo / "README.md").write_text("now with a readme\n")
    new_commit = commit_all(repo, "readme")
    kind, text = act(ed, "loom_demo_pack", "update")
    assert kind == "ok" and "Updated loom_demo_pack" in text and "Restart Loom" in text and new_commit[:10] in text, text
    assert new_commit[:10] in ed.page.locator('.pack[data-name="loom_demo_pack"] .source').inner_text()

    # Disable: the server keeps its nodes until a restart, and says so.
    kind, text = act(ed, "loom_demo_pack", "disable")
    assert kind == "ok" and "Disabled loom_demo_pack" in text and "until Loom restarts" in text
    assert ed.page.locator('.pack[data-name="loom_demo_pack"]').get_attribute("data-state") == "disabled"
    assert "Restart Loom to finish" in ed.page.locator(".packs-panel").inner_text()
    assert (packs_server.custom_nodes / "loom_demo_pack.disabled").is_dir()
    ed.shot("pack_disabled")

    # Enable loads it into the running server again.
    kind, text = act(ed, "loom_demo_pack", "enable")
    assert kind == "ok" and f"Enabled loom_demo_pack: 1 node loaded ({PACK_NODE})" in text, text
    assert ed.page.locator('.pack[data-name="loom_demo_pack"]').get_attribute("data-state") == "enabled"
    assert (packs_server.custom_nodes / "loom_demo_pack").is_dir()

    # Remove asks first; Cancel keeps it, Remove deletes it.
    ed.page.click('.pack[data-name="loom_demo_pack"] [data-act="remove"]')
    ed.page.locator(".modal").wait_for()
    assert "loom_demo_pack" in ed.page.locator(".modal").inner_text()
    ed.shot("pack_remove_confirm")
    ed.page.click(".modal-foot button:has-text('Cancel')")
    assert (packs_server.custom_nodes / "loom_demo_pack").is_dir()
    kind, text = act(ed, "loom_demo_pack", "remove", confirm=True)
    assert kind == "ok" and "Removed loom_demo_pack" in text
    assert ed.page.locator('.pack[data-name="loom_demo_pack"]').count() == 0
    assert not any(packs_server.custom_nodes.glob("loom_demo_pack*"))
    ed.shot("pack_removed")
    assert not ed.errors


def test_failing_pack_shows_its_error_and_a_conflict_names_the_packages(make_editor, packs_server, tmp_path):
    ed = make_editor(packs_server)
    broken = write_pack(tmp_path / "src", "broken_demo", """
        def helper():
            raise RuntimeError("the demo pack cannot start")
        helper()
    """)
    kind, text = install(ed, str(broken))
    assert kind == "error" and "Installed broken_demo, but it failed to load" in text, text
    row = ed.page.locator('.pack[data-name="broken_demo"]')
    assert row.get_attribute("data-state") == "failed"
    summary = row.locator(".pack-error summary")
    assert "RuntimeError: the demo pack cannot start" in summary.inner_text()
    assert row.locator(".pack-error pre").is_hidden()
    summary.click()
    assert "Traceback" in row.locator(".pack-error pre").inner_text()
    ed.shot("pack_failed_with_traceback")

    greedy = write_pack(tmp_path / "src", "greedy_demo", "NODE_CLASS_MAPPINGS = {}\n",
                        **{"requirements__txt": "numpy==1.26.0\n"})
    kind, text = install(ed, str(greedy))
    assert kind == "error", text
    assert "would change packages Loom depends on (numpy)" in text and "isolated" in text
    assert ed.page.locator(".pack-msg .packages li").all_inner_texts() == ["numpy"]
    assert ed.page.locator('.pack[data-name="greedy_demo"]').count() == 0
    assert not (packs_server.custom_nodes / "greedy_demo").exists()
    ed.shot("pack_dependency_conflict")

    kind, text = install(ed, str(tmp_path / "no_such_pack"))
    assert kind == "error" and "Could not install" in text and "not an existing folder" in text

    assert act(ed, "broken_demo", "remove", confirm=True)[0] == "ok"
    assert not ed.errors


def test_cache_readout_follows_runs_and_free_memory(make_editor, packs_server):
    ed = make_editor(packs_server)
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 24, "height": 40, "batch_size": 1, "color": 7777}},
              "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    ed.js("(p) => loomApp.loadWorkflow(p)", prompt)
    before = wait_readout(ed, "d.entries !== undefined")
    ed.page.click("#btn-queue")
    after = wait_readout(ed, f"+d.misses > {before['misses']}")
    ed.wait_idle()
    assert after["entries"] > before["entries"] and after["bytes"] >= before["bytes"] + 24 * 40 * 3 * 4
    assert after["text"] != before["text"]
    assert "cache" in after["text"] and "/4 GB" in after["text"] and "hits" in after["text"]
    # Again: every node comes from the cache, so the hit count rises.
    ed.page.click("#btn-queue")
    again = wait_readout(ed, f"+d.hits > {after['hits']}")
    ed.wait_idle()
    assert again["entries"] == after["entries"]

    models = DEMO_CHECKPOINT.is_file()
    if models:  # a run that loads the demo checkpoint: the loaded-model count moves
        loader = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": DEMO_CHECKPOINT.name}},
                  "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}}}
        ed.js("(p) => loomApp.loadWorkflow(p)", loader)
        ed.page.click("#btn-queue")
        loaded = wait_readout(ed, "+d.models > 0", timeout=30000)
        ed.wait_idle(30000)
        assert f"{loaded['models']} model" in loaded["text"]

    ed.page.click("#cache-readout")
    pop = ed.page.locator("#cache-popover")
    pop.locator("table.stats").first.wait_for()
    figures = pop.inner_text()
    assert "hits / misses" in figures and "evictions" in figures and "models" in figures.lower()
    if models:
        pop.locator("table.models").wait_for()
        assert "loom-demo-sd1.safetensors#" in figures and "RAM" in figures
    ed.shot("cache_popover")

    pop.locator('[data-act="free"]').click()
    freed = wait_readout(ed, "+d.entries === 0 && +d.bytes === 0")
    assert freed["models"] == 0 and "cache 0 · 0 B/4 GB" in freed["text"]
    ed.page.wait_for_function("() => document.querySelector('#cache-popover .msg').textContent.startsWith('Freed')")
    assert "Freed" in pop.locator(".msg").inner_text()
    stats = packs_server.get_json("/api/loom/stats")
    assert sum(w["cache"]["entries"] for w in stats["workers"].values()) == 0
    ed.shot("cache_freed")
    # Opening the History panel reads the figures again.
    ed.page.mouse.click(700, 500)
    ed.page.click("#btn-panel-queue")
    assert pop.is_hidden()
    assert not ed.errors


def test_missing_node_banner_offers_the_provider_pack(make_editor, packs_server):
    ed = make_editor(packs_server)
    url = packs_server.get_json("/api/nodes/providers?class_type=VHS_VideoCombine")["providers"]["VHS_VideoCombine"][0]["url"]
    wf = {"nodes": [{"id": 1, "type": "VHS_VideoCombine", "pos": [100, 100], "size": [300, 120], "flags": {}, "order": 0,
                     "mode": 0, "inputs": [], "outputs": [], "properties": {}, "widgets_values": []}],
          "links": [], "groups": [], "version": 0.4, "last_node_id": 1, "last_link_id": 0}
    ed.js("(w) => loomApp.loadWorkflow(w)", wf)
    button = ed.page.locator("#banner button.install")
    button.wait_for()
    assert "VideoHelperSuite" in button.inner_text()
    ed.shot("missing_node_banner_install")
    button.click()
    ed.page.locator(".packs-panel").wait_for()
    assert ed.page.input_value(".pack-source") == url
    ed.shot("packs_panel_prefilled")
    assert not ed.errors


def non_loopback_address() -> str | None:
    """This machine's address on its outward interface (no packet is sent), or None."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            address = s.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


class NetworkServe(ServeProcess):
    def __init__(self, host: str, *args: str, env: dict):
        self.host = host
        super().__init__([sys.executable, "-m", "server.cli"], "--host", host, *args, env=env)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def test_changes_are_refused_off_loopback_without_a_token(browser, make_editor, packs_env, tmp_path):
    host = non_loopback_address()
    if host is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    server = NetworkServe(host, "--insecure", "--data-dir", str(tmp_path / "data"), "--models-dir", str(tmp_path / "m"),
                          env=packs_env["env"])
    try:
        server.wait_ready(60)
        with urllib.request.urlopen(f"{server.url}/api/nodes", timeout=10) as r:
            assert r.status == 200
        ed = make_editor(server)
        src = write_pack(tmp_path / "src", "refused_demo", textwrap.dedent(SWATCH_PACK))
        kind, text = install(ed, str(src))
        assert kind == "error"
        assert "refuses to change node packs" in text and "--auth-token" in text
        assert not (Path(packs_env["env"]["LOOM_CUSTOM_NODES_DIR"]) / "refused_demo").exists()
        ed.shot("packs_refused_off_loopback")
        assert not ed.errors
    finally:
        server.stop()

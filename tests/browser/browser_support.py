"""Helpers for the editor's browser tests: the server subprocess, the editor page driver, the converter.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.shared_helpers import CHROMIUM, CHROMIUM_ARGS, REPO, free_port  # noqa: F401 - the browser tests use them

HERE = Path(__file__).resolve().parent


VIEWPORT = {"width": 1400, "height": 860}


class Server:
    def __init__(self, cmd: list[str], data_dir: Path, port: int):
        self.port = port
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
        self.log_path = data_dir / "server.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"loom serve exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/object_info", timeout=2) as r:
                    self.object_info = json.load(r)
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"loom serve did not answer in 60 s:\n{self.log_path.read_text()}")

    def get_json(self, route: str):
        with urllib.request.urlopen(f"{self.url}{route}", timeout=10) as r:
            return json.load(r)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def _start(tmp_path_factory, name: str, extra: list[str], cache: bool = False) -> Server:
    data = tmp_path_factory.mktemp(name)
    port = free_port()
    return Server([*extra, "serve", "--port", str(port), "--data-dir", str(data), *([] if cache else ["--cache-none"])],
                  data, port)


class Editor:
    """One page of the editor, with helpers to drive the canvas like a user."""

    def __init__(self, page, server: Server, shots: Path):
        self.page = page
        self.server = server
        self.shots = shots
        self.errors: list[str] = []
        self._n = 0
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, query: str = "fresh") -> Editor:
        self.page.goto(f"{self.server.url}/?{query}")
        self.page.wait_for_function("document.body.dataset.ready", timeout=15000)
        assert self.page.evaluate("document.body.dataset.ready") == "1", self.errors
        return self

    def shot(self, name: str) -> Path:
        self._n += 1
        path = self.shots / f"{self._n:02d}_{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def js(self, expr: str, arg=None):
        return self.page.evaluate(expr, arg)

    def screen_pos(self, graph_xy) -> tuple[float, float]:
        """Page coordinates of a point in graph space."""
        return tuple(self.js("""([x, y]) => {
            const c = loomApp.canvas, r = c.canvas.getBoundingClientRect();
            const [cx, cy] = c.ds.convertOffsetToCanvas([x, y]);
            return [r.left + cx, r.top + cy];
        }""", list(graph_xy)))

    def node_ids(self, type_: str | None = None) -> list[int]:
        return self.js("(t) => loomApp.graph._nodes.filter(n => !t || n.type === t).map(n => n.id)", type_)

    def slot_pos(self, node_id: int, slot: int, is_input: bool) -> tuple[float, float]:
        xy = self.js("([id, s, inp]) => { const n = loomApp.graph.getNodeById(id); return inp ? n.getInputPos(s) : n.getOutputPos(s); }",
                     [node_id, slot, is_input])
        return self.screen_pos(xy)

    def open_search_at(self, at: tuple[float, float], attempts: int = 3) -> None:
        """Double-click the canvas and wait for the node search. On a loaded machine the two clicks are
        sometimes too far apart to count as a double-click (the canvas times them), so it tries again."""
        box = self.page.locator(".loom-search input")
        for attempt in range(attempts):
            self.page.mouse.dblclick(*at)
            try:
                box.wait_for(state="visible", timeout=5000)
                return
            except Exception:
                self.shot(f"search_did_not_open_{attempt}")
                if attempt == attempts - 1:
                    raise

    def pick_in_search(self, query: str, expect_type: str) -> int:
        """Type into the open node search, check the first hit is `expect_type`, take it; the new node's id."""
        before = set(self.node_ids())
        self.page.locator(".loom-search input").wait_for(state="visible", timeout=5000)
        self.page.keyboard.type(query)
        first = self.page.locator(".loom-search li").first
        assert first.get_attribute("data-type") == expect_type, self.page.locator(".loom-search li").all_inner_texts()
        self.page.keyboard.press("Enter")
        new = set(self.node_ids()) - before
        assert len(new) == 1, new
        return new.pop()

    def add_by_search(self, at: tuple[float, float], query: str, expect_type: str) -> int:
        """Add a node as a user does: double-click the canvas, type, Enter."""
        self.open_search_at(at)
        return self.pick_in_search(query, expect_type)

    def wait_idle(self, timeout: float = 20000) -> None:
        self.page.wait_for_function("!loomApp.execution.isRunning", timeout=timeout)

    def queue(self) -> list:
        return self.js("() => loomApp.queue()")

    def wait_images(self, node_id: int, timeout: float = 20000) -> None:
        self.page.wait_for_function(
            """(id) => { const e = loomApp.execution.images.get(String(id));
                       return e && !e.preview && e.images.length && e.images.every(i => i.complete && i.naturalWidth); }""",
            arg=node_id, timeout=timeout)


def python_convert(workflow: dict, object_info: dict) -> dict:
    from engine.workflow.ui_to_api import convert_ui_to_api

    return convert_ui_to_api(workflow, object_info).prompt


def saved_image(ed: Editor, node_id: int):
    """The image shown on a node, fetched from /view as the page did: float32 [H,W,3] in 0..1."""
    import io

    import numpy as np
    from PIL import Image

    url = ed.js("(id) => loomApp.execution.images.get(String(id)).images[0].src", node_id)
    body = ed.page.request.get(url).body()
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"), dtype=np.float32) / 255.0


def overlapping_nodes(ed: Editor) -> list:
    """Pairs of node titles whose boxes (title bar included) overlap on the canvas."""
    return ed.js("""() => { const ns = loomApp.graph._nodes, out = [];
        const box = n => { const b = new Float32Array(4); n.getBounding(b); return b; };
        for (let i = 0; i < ns.length; i++) for (let j = i + 1; j < ns.length; j++) {
            const a = box(ns[i]), b = box(ns[j]);
            if (a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3])
                out.push([ns[i].title, ns[j].title]); }
        return out; }""")

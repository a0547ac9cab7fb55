"""Real servers for the tests: in a thread of this process (LiveServer) or as `loom serve` in a
subprocess (ServeProcess), and a WebSocket client that records what it receives (WSClient)."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from pathlib import Path

import aiohttp
import requests

from tests import shared_helpers
from tests.shared_helpers import REPO

HERE = Path(__file__).resolve().parent


# -- graphs -----------------------------------------------------------------------------------------
def image_graph(color: int = 0xFF0000, size: int = 32, prefix: str = "loomtest") -> dict:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": 1, "color": color}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


def sleep_graph(seconds: float = 1.0, steps: int = 10, preview_size: int = 0, seed: int = 0) -> dict:
    return {
        "1": {"class_type": "LoomTestSleep",
              "inputs": {"seconds": seconds, "steps": steps, "preview_size": preview_size, "seed": seed}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }


# -- in-process server --------------------------------------------------------------------------------
class LiveServer:
    """`create_app` on a free port, served by its own event loop in a thread."""

    def __init__(self, config, registry, web_root=None, workers=None):
        self.config = config
        self.registry = registry
        self.web_root = web_root
        self.workers = workers
        self.ctx = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.config.port}/ws"

    def start(self) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("server did not start")
        if self._error:
            raise self._error
        return self

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        from aiohttp import web

        from server.app import create_app
        from server.context import build_context

        try:
            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self.ctx = build_context(self.config, self.registry, workers=self.workers)
            app = create_app(self.ctx, self.web_root)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.config.port).start()
        except BaseException as e:
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)

    # -- conveniences ---------------------------------------------------------------------------
    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        return requests.post(self.url + path, timeout=30, **kw)

    def queue_prompt(self, prompt: dict, **fields) -> dict:
        r = self.post("/api/prompt", json={"prompt": prompt, **fields})
        assert r.status_code == 200, r.text
        return r.json()

    def wait_history(self, prompt_id: str, timeout: float = 30) -> dict:
        return wait_history(self.url, prompt_id, timeout)


def wait_history(url: str, prompt_id: str, timeout: float = 30, headers: dict | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = requests.get(f"{url}/api/history/{prompt_id}", timeout=10, headers=headers)
        if r.status_code == 200 and r.json():
            return r.json()[prompt_id]
        time.sleep(0.05)
    raise AssertionError(f"prompt {prompt_id} did not finish within {timeout}s")


# -- WebSocket client ---------------------------------------------------------------------------------
class WSClient:
    """Connects in a background thread and records every message: ("json", dict) or ("bytes", bytes)."""

    def __init__(self, url: str, client_id: str | None = None, headers: dict | None = None,
                 feature_flags: dict | None = None, token: str | None = None):
        q = []
        if client_id:
            q.append(f"clientId={client_id}")
        if token:
            q.append(f"token={token}")
        self.url = url + ("?" + "&".join(q) if q else "")
        self.headers = headers or {}
        self.feature_flags = feature_flags
        self.messages: list[tuple[str, object]] = []
        self.sid: str | None = None
        self.error: BaseException | None = None
        self.closed = threading.Event()
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ws = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        if not self._connected.wait(15):
            raise RuntimeError("websocket did not connect")
        if self.error is None:
            self.sid = self.wait_for(lambda m: m.get("type") == "status" and "sid" in m["data"])["data"]["sid"]

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            async with aiohttp.ClientSession() as session, session.ws_connect(self.url, headers=self.headers) as ws:
                self._ws = ws
                if self.feature_flags is not None:
                    await ws.send_str(json.dumps({"type": "feature_flags", "data": self.feature_flags}))
                self._connected.set()
                async for msg in ws:
                    with self._cond:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            self.messages.append(("json", json.loads(msg.data)))
                        elif msg.type == aiohttp.WSMsgType.BINARY:
                            self.messages.append(("bytes", msg.data))
                        self._cond.notify_all()
        except BaseException as e:
            self.error = e
        finally:
            self._connected.set()
            self.closed.set()
            with self._cond:
                self._cond.notify_all()

    def json_messages(self) -> list[dict]:
        with self._cond:
            return [m for kind, m in self.messages if kind == "json"]

    def binary_messages(self) -> list[bytes]:
        with self._cond:
            return [m for kind, m in self.messages if kind == "bytes"]

    def wait_for(self, pred, timeout: float = 30) -> dict:
        """The first JSON message matching pred (already received or arriving within timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for kind, m in self.messages:
                    if kind == "json" and pred(m):
                        return m
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closed.is_set():
                    raise AssertionError(f"no matching message; got {[m for k, m in self.messages if k == 'json']}")
                self._cond.wait(remaining)

    def wait_done(self, prompt_id: str, timeout: float = 30) -> dict:
        return self.wait_for(lambda m: m["type"] == "executing" and m["data"].get("node") is None
                             and m["data"].get("prompt_id") == prompt_id, timeout)

    def events_for(self, prompt_id: str) -> list[dict]:
        return [m for m in self.json_messages() if isinstance(m.get("data"), dict)
                and m["data"].get("prompt_id") == prompt_id]

    def close(self) -> None:
        if self._loop is not None and self._ws is not None and not self.closed.is_set():
            asyncio.run_coroutine_threadsafe(self._ws.close(), self._loop)
        self._thread.join(10)


# -- `loom serve` in a subprocess -------------------------------------------------------------------
class ServeProcess(shared_helpers.ServeProcess):
    """`python tests/serve_with_test_nodes.py srv_test_nodes.py serve ...`: the real CLI, plus the test nodes."""

    def __init__(self, *args: str, port: int | None = None, env: dict | None = None):
        super().__init__([sys.executable, str(REPO / "tests" / "serve_with_test_nodes.py"),
                          str(HERE / "srv_test_nodes.py")], *args, port=port, env=env)

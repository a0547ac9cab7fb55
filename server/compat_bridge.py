"""`server.PromptServer.instance` for ComfyUI node packs, bound to Loom's server or the CLI.

Packs touch the instance at import time (`@PromptServer.instance.routes.get(...)`), before any
server exists, so an unbound instance always exists: it collects routes and `app` calls, and its
`send_sync` goes to the log. Then exactly one of these binds it:

- the server: `bind(app_state)` once its app exists, then `mount_routes(app)` before the app
  starts (aiohttp freezes the router at start; routes a pack adds later are not served);
  `trigger_on_prompt(json)` on each POST /prompt runs the handlers packs added.
- the CLI (`loom run`): `bind_headless(sink)`; `send_sync` then calls `sink(event, data, sid)`.

`app_state` is duck-typed; what it may have:
  send_sync(event, data, sid)  required; thread-safe (nodes call it from the executing thread);
                               sid None means every client
  loop                         the server's asyncio loop
  app                          the aiohttp Application (pack `app` calls recorded earlier are replayed)
  client_id, last_node_id,     read live when present (else the values the engine hook sets here)
  last_prompt_id, prompt_queue
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

log = logging.getLogger("loom.packs.server")

EventSink = Callable[[str, Any, "str | None"], None]


class _RecordingRouter:
    def __init__(self, calls: list):
        self._calls = calls

    def __getattr__(self, name: str) -> Callable[..., None]:
        if not name.startswith("add_"):
            raise AttributeError(f"Loom does not implement PromptServer.instance.app.router.{name} before the "
                                 f"server starts")

        def record(*args: Any, **kwargs: Any) -> None:
            self._calls.append(("router", name, args, kwargs))

        return record


class _RecordingApp:
    """Stands in for the aiohttp app until the server binds: app calls are replayed on mount."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, tuple, dict]] = []
        self.router = _RecordingRouter(self.calls)

    def add_routes(self, routes: Any) -> None:
        self.calls.append(("app", "add_routes", (routes,), {}))

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"Loom does not implement PromptServer.instance.app.{name} before the server starts")


class PromptServer:
    """The subset of ComfyUI's PromptServer that packs use; other attributes raise naming themselves."""

    instance: PromptServer

    def __init__(self) -> None:
        self.routes = web.RouteTableDef()
        self.supports = ["custom_nodes_from_web"]  # tells packs the server serves their WEB_DIRECTORY
        self.on_prompt_handlers: list[Callable[[dict], dict]] = []
        self.number = 0
        self.sockets: dict = {}
        self._app_state: Any = None
        self._sink: EventSink | None = None
        self._recording_app = _RecordingApp()
        self._mounted = False
        self._local = {"client_id": None, "last_node_id": None, "last_prompt_id": None}

    # -- live state ---------------------------------------------------------------------------
    def _live(self, name: str) -> Any:
        if self._app_state is not None and hasattr(self._app_state, name):
            return getattr(self._app_state, name)
        return self._local[name]

    @property
    def client_id(self) -> str | None:
        return self._live("client_id")

    @client_id.setter
    def client_id(self, value: str | None) -> None:
        self._local["client_id"] = value

    @property
    def last_node_id(self) -> str | None:
        return self._live("last_node_id")

    @last_node_id.setter
    def last_node_id(self, value: str | None) -> None:
        self._local["last_node_id"] = value

    @property
    def last_prompt_id(self) -> str | None:
        return self._live("last_prompt_id")

    @last_prompt_id.setter
    def last_prompt_id(self, value: str | None) -> None:
        self._local["last_prompt_id"] = value

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return getattr(self._app_state, "loop", None)

    @property
    def app(self) -> Any:
        app = getattr(self._app_state, "app", None)
        return app if app is not None else self._recording_app

    @property
    def prompt_queue(self) -> Any:
        queue = getattr(self._app_state, "prompt_queue", None)
        if queue is None:
            raise AttributeError("Loom does not implement PromptServer.instance.prompt_queue here "
                                 "(no server is running)")
        return queue

    # -- messages -----------------------------------------------------------------------------
    def send_sync(self, event: Any, data: Any, sid: str | None = None) -> None:
        if self._app_state is not None:
            self._app_state.send_sync(event, data, sid)
        elif self._sink is not None:
            self._sink(event, data, sid)
        else:
            log.debug("send_sync(%s) with no server bound: %s", event, data)

    async def send(self, event: Any, data: Any, sid: str | None = None) -> None:
        self.send_sync(event, data, sid)

    async def send_json(self, event: Any, data: Any, sid: str | None = None) -> None:
        self.send_sync(event, data, sid)

    def queue_updated(self) -> None:
        hook = getattr(self._app_state, "queue_updated", None)
        if hook is not None:
            hook()

    # -- prompt handlers ------------------------------------------------------------------------
    def add_on_prompt_handler(self, handler: Callable[[dict], dict]) -> None:
        self.on_prompt_handlers.append(handler)

    def trigger_on_prompt(self, json_data: dict) -> dict:
        for handler in self.on_prompt_handlers:
            try:
                json_data = handler(json_data)
            except Exception:
                log.exception("an on_prompt handler from a node pack failed; the prompt goes on without it")
        return json_data

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"Loom does not implement PromptServer.instance.{name} (ComfyUI compatibility layer)")


PromptServer.instance = PromptServer()


def bind(app_state: Any) -> PromptServer:
    """Route the instance's messages and live state to the running server."""
    if not callable(getattr(app_state, "send_sync", None)):
        raise TypeError("compat_bridge.bind: app_state needs a thread-safe send_sync(event, data, sid)")
    inst = PromptServer.instance
    inst._app_state = app_state
    inst._sink = None
    return inst


def bind_headless(sink: EventSink | None) -> PromptServer:
    """For `loom run`: messages go to `sink(event, data, sid)` (the CLI's event log)."""
    inst = PromptServer.instance
    inst._app_state = None
    inst._sink = sink
    return inst


def unbind() -> None:
    inst = PromptServer.instance
    inst._app_state = None
    inst._sink = None


def mount_routes(app: web.Application) -> int:
    """Add the packs' routes (and replay their recorded `app` calls) to `app`; returns how many."""
    inst = PromptServer.instance
    count = 0
    for route in inst.routes:  # RouteDef and StaticDef both register themselves
        try:
            route.register(app.router)
            count += 1
        except Exception:
            log.exception("a node pack's route %r could not be added", route)
    for target, method, args, kwargs in inst._recording_app.calls:
        try:
            getattr(app.router if target == "router" else app, method)(*args, **kwargs)
            count += 1
        except Exception:
            log.exception("a node pack's app.%s call could not be replayed", method)
    inst._mounted = True
    return count


def trigger_on_prompt(json_data: dict) -> dict:
    return PromptServer.instance.trigger_on_prompt(json_data)

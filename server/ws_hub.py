"""WebSocket clients and the routing of messages to them.

Each client has an outbox drained by its own sender task, so a slow or dead socket only ever costs
its own messages: progress and previews are dropped once its outbox is half full, and a client that
is behind and has not finished a send for a while is disconnected (it reconnects and gets the current
state). Worker threads hand messages over with `post*` (thread-safe, never blocking); JSON is
encoded once per message, whatever the number of clients.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from server import previews

log = logging.getLogger("loom.server")

# Who gets an engine event (dialect 2.5): the submitting client, and nobody when there is none...
CLIENT_ONLY = {"execution_start", "execution_cached", "executing", "executed", "execution_success",
               "execution_error"}
# ...or the submitting client, and everyone when there is none.
CLIENT_OR_BROADCAST = {"execution_interrupted", "progress", "progress_state"}
# Messages a client can miss without losing track of a run.
DROPPABLE = {"progress", "progress_state"}


@dataclass(eq=False)
class Client:
    sid: str
    ws: web.WebSocketResponse
    flags: dict = field(default_factory=dict)
    outbox: deque = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    sender: asyncio.Task | None = None
    dropped: int = 0
    last_progress: float = field(default_factory=time.monotonic)  # last send done, or queue became busy

    @property
    def wants_metadata(self) -> bool:
        return bool(self.flags.get("supports_preview_metadata"))


class Hub:
    """`outbox_size`: messages a client may have waiting before it counts as behind; a client that is
    behind and has not finished a send for `stall_seconds` is disconnected, and so is one with
    `HARD_FACTOR` times that many waiting (bursts from a healthy client stay within that)."""

    HARD_FACTOR = 16

    def __init__(self, outbox_size: int = 256, stall_seconds: float = 10.0):
        self.outbox_size = outbox_size
        self.stall_seconds = stall_seconds
        self.clients: dict[str, Client] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.queue_remaining: Callable[[], int] = lambda: 0
        # Status coalescing: a status request right behind a queued, unsent status is dropped, since
        # that one will carry the latest count. Anything queued in between keeps both (order matters:
        # clients expect `status` after `execution_success` and before `executing null`).
        self._post_lock = threading.Lock()
        self._posted = 0
        self._status_at = -1

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    # -- clients -----------------------------------------------------------------------------------
    def add(self, sid: str, ws: web.WebSocketResponse) -> Client:
        old = self.clients.pop(sid, None)
        if old is not None:  # the same clientId reconnected: the new socket replaces the old one
            self._disconnect(old, code=1000, reason="replaced by a new connection")
        client = Client(sid, ws)
        client.sender = asyncio.ensure_future(self._drain(client))
        self.clients[sid] = client
        return client

    def remove(self, client: Client) -> None:
        if self.clients.get(client.sid) is client:
            del self.clients[client.sid]
        if client.sender is not None and not client.sender.done():
            client.sender.cancel()

    async def _drain(self, client: Client) -> None:
        try:
            while True:
                if not client.outbox:
                    client.wake.clear()
                    await client.wake.wait()
                    continue
                msg = client.outbox.popleft()
                if isinstance(msg, bytes):
                    await client.ws.send_bytes(msg)
                else:
                    await client.ws.send_str(msg)
                client.last_progress = time.monotonic()
        except asyncio.CancelledError:
            pass
        except Exception as e:  # the socket went away; its handler cleans up
            log.debug("websocket %s send failed: %s", client.sid, e)

    def _disconnect(self, client: Client, code: int, reason: str) -> None:
        self.remove(client)

        async def close():
            try:
                await asyncio.wait_for(client.ws.close(code=code, message=reason.encode()), 5)
            except Exception:
                pass

        asyncio.ensure_future(close())

    def _enqueue(self, client: Client, msg: str | bytes, droppable: bool) -> None:
        waiting = len(client.outbox)
        if waiting == 0:
            client.last_progress = time.monotonic()
        elif waiting >= self.outbox_size // 2 and droppable:
            client.dropped += 1
            return
        if waiting >= self.outbox_size and (waiting >= self.outbox_size * self.HARD_FACTOR
                                            or time.monotonic() - client.last_progress > self.stall_seconds):
            log.warning("websocket client %s is not reading; disconnecting it", client.sid)
            self._disconnect(client, code=1013, reason="client too slow")
            return
        client.outbox.append(msg)
        client.wake.set()

    # -- sending (event loop) ------------------------------------------------------------------------
    def send(self, event: str, data: dict, sid: str | None = None, droppable: bool = False) -> None:
        self.send_text(encode(event, data), sid, droppable)

    def send_text(self, text: str, sid: str | None, droppable: bool = False) -> None:
        if sid is None:
            for client in list(self.clients.values()):
                self._enqueue(client, text, droppable)
        elif (client := self.clients.get(sid)) is not None:
            self._enqueue(client, text, droppable)

    def send_preview(self, fmt: str, data: bytes, meta: dict, sid: str | None) -> None:
        targets = list(self.clients.values()) if sid is None else [c for c in [self.clients.get(sid)] if c]
        plain = with_meta = None
        for client in targets:
            if client.wants_metadata:
                with_meta = with_meta or previews.frame_with_metadata(fmt, data, meta)
                self._enqueue(client, with_meta, droppable=True)
            else:
                plain = plain or previews.frame_plain(fmt, data)
                self._enqueue(client, plain, droppable=True)

    def send_status(self, position: int | None = None) -> None:
        if position is not None:
            with self._post_lock:
                if self._status_at == position:
                    self._status_at = -1
        self.send("status", {"status": {"exec_info": {"queue_remaining": self.queue_remaining()}}})

    # -- from any thread -----------------------------------------------------------------------------
    def _call(self, fn, *args, status: bool = False) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        with self._post_lock:
            if status:
                if self._status_at == self._posted:
                    return
                self._status_at = self._posted + 1
                args = (self._status_at,)
            self._posted += 1
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:  # loop shutting down
                pass

    def post(self, event: str, data: dict, sid: str | None = None, droppable: bool = False) -> None:
        self._call(self.send_text, encode(event, data), sid, droppable)

    def post_status(self) -> None:
        """Broadcast the queue size; a burst of changes with nothing in between sends it once."""
        self._call(self.send_status, status=True)

    def post_engine_event(self, event: str, data: dict, client_id: str | None) -> None:
        if event in CLIENT_ONLY:
            if client_id is not None:
                self.post(event, data, client_id)
        elif event in CLIENT_OR_BROADCAST:
            self.post(event, data, client_id, droppable=event in DROPPABLE)
        else:  # custom events from packs follow the dialect's send_sync: to the client, else everyone
            self.post(event, data, client_id)

    def post_preview(self, preview, meta: dict, client_id: str | None) -> None:
        if not self.clients:
            return
        encoded = previews.encode_image(preview)
        if encoded is not None:
            self._call(self.send_preview, encoded[0], encoded[1], meta, client_id)


def encode(event: str, data: dict) -> str:
    return json.dumps({"type": event, "data": data}, default=str)

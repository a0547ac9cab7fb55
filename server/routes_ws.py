"""The WebSocket: `status` with the sid on connect, the `feature_flags` handshake, state on reconnect."""

from __future__ import annotations

import json
import logging
import re
import uuid

import aiohttp
from aiohttp import web

from server.context import ServerContext
from server.routes_info import server_features

log = logging.getLogger("loom.server")

CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def add_routes(app: web.Application, ctx: ServerContext) -> None:
    hub = ctx.hub

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=1024 * 1024)
        await ws.prepare(request)
        sid = request.query.get("clientId") or ""
        if not CLIENT_ID.match(sid):
            sid = uuid.uuid4().hex
        client = hub.add(sid, ws)
        hub.send("status", {"status": {"exec_info": {"queue_remaining": ctx.queue.remaining()}}, "sid": sid}, sid)
        running = ctx.dispatcher.running_for_client(sid)
        if running is not None and running.last_node is not None:
            hub.send("executing", {"node": running.last_node, "display_node": running.last_node,
                                   "prompt_id": running.item.prompt_id}, sid)
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    handle_text(client, msg.data)
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    log.warning("websocket %s closed with %s", sid, ws.exception())
        finally:
            hub.remove(client)
        return ws

    def handle_text(client, text: str) -> None:
        try:
            msg = json.loads(text)
        except json.JSONDecodeError:
            return
        if isinstance(msg, dict) and msg.get("type") == "feature_flags":
            flags = msg.get("data")
            client.flags = flags if isinstance(flags, dict) else {}
            hub.send("feature_flags", server_features(ctx), client.sid)

    app.router.add_get("/ws", websocket)
    app.router.add_get("/api/ws", websocket)

"""The aiohttp application: middlewares, every route group, and the worker lifecycle."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web

from server import routes_files, routes_frontend, routes_info, routes_prompt, routes_user, routes_ws
from server.context import ServerContext
from server.http_util import Routes
from server.security import create_guard_middleware, error_middleware, headers_middleware

log = logging.getLogger("loom.server")

CTX_KEY: web.AppKey = web.AppKey("loom", object)


def create_app(ctx: ServerContext, web_root: Path | None = None) -> web.Application:
    """Build the app; the workers start with it and stop when it is cleaned up."""
    app = web.Application(
        client_max_size=ctx.config.max_upload_bytes,
        middlewares=[error_middleware, create_guard_middleware(ctx.config), headers_middleware],
    )
    app[CTX_KEY] = ctx

    api, internal = Routes(), Routes()
    routes_prompt.add_routes(api, ctx)
    routes_files.add_routes(api, ctx)
    routes_user.add_routes(api, ctx)
    routes_info.add_routes(api, internal, ctx, web_root)
    api.apply(app)
    internal.apply(app, api_alias=False)
    routes_ws.add_routes(app, ctx)
    mount_pack_routes(app, ctx)
    bridge_node_packs(app, ctx)
    routes_frontend.add_routes(app, ctx, web_root)  # last: its catch-all serves static files

    app.on_startup.append(_start)
    app.on_shutdown.append(_close_sockets)
    app.on_cleanup.append(_stop)
    return app


def mount_pack_routes(app: web.Application, ctx: ServerContext) -> None:
    """Pack management (`/api/nodes...`), from server/packs_api.py."""
    from server import packs_api

    packs_api.add_routes(app, ctx)


def bridge_node_packs(app: web.Application, ctx: ServerContext) -> None:
    """Bind `server.PromptServer.instance` (what ComfyUI packs use) to this server and add pack routes."""
    try:
        from server import compat_bridge
    except ImportError:
        return
    ctx.app = app
    compat_bridge.bind(ctx)
    count = compat_bridge.mount_routes(app)
    if count:
        log.info("added %d route(s) from node packs", count)


async def _start(app: web.Application) -> None:
    ctx: ServerContext = app[CTX_KEY]
    ctx.hub.bind(asyncio.get_running_loop())
    ctx.start_workers()


async def _close_sockets(app: web.Application) -> None:
    ctx: ServerContext = app[CTX_KEY]
    for client in list(ctx.hub.clients.values()):
        ctx.hub.remove(client)
        try:
            await asyncio.wait_for(client.ws.close(code=1001, message=b"server shutting down"), 2)
        except Exception:
            pass


async def _stop(app: web.Application) -> None:
    ctx: ServerContext = app[CTX_KEY]
    await asyncio.to_thread(ctx.close)
    try:
        from server import compat_bridge
    except ImportError:
        return
    if compat_bridge.PromptServer.instance._app_state is ctx:
        compat_bridge.unbind()

"""`/api/nodes`: list and manage node packs from the editor.

    GET  /api/nodes                      {"packs": [...], "restart_required": bool}
    GET  /api/nodes/providers?class_type=A&class_type=B   known packs providing node types
    POST /api/nodes/install  {"source", "name"?, "isolated"?, "allow_scripts"?}
    POST /api/nodes/enable|disable|update|remove  {"name"}

Installing runs code that was downloaded, so the mutating routes need a server that is either on
loopback or protected by `--auth-token` (the guard middleware checks the token on every route);
a server opened with `--insecure` to the network lists packs but refuses to change them.
Operations run one at a time in a worker thread. An installed or enabled pack is loaded into the
running server at once (its nodes appear in /object_info); disabling, removing or updating a pack
takes full effect at the next start, since modules cannot be unloaded.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from server.http_util import ApiError, read_json

log = logging.getLogger("loom.packs.api")

_LOCK_KEY: web.AppKey = web.AppKey("loom_packs_lock", asyncio.Lock)


def _may_change(ctx: Any) -> None:
    config = ctx.config
    if not config.bound_to_loopback and not config.auth_token:
        raise ApiError(403, "node packs can only be changed on a server bound to loopback or started with "
                            "--auth-token (installing a pack runs its code)", "forbidden")


def _name(body: dict) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "the request needs a 'name' (the pack's folder name)", "invalid_request")
    return name.strip()


def _result(result: Any, live_loaded: list[str] | None = None) -> dict:
    return {"name": result.name, "entry": result.entry, "notes": result.notes,
            "restart_required": result.restart_required and not live_loaded, "loaded_nodes": live_loaded or []}


def _load_live(ctx: Any, name: str) -> list[str]:
    """Load a newly installed or enabled pack into the running server's registry."""
    from nodes.custom_loader import load_custom_nodes
    from server.packs.install import custom_nodes_dir

    infos = load_custom_nodes(ctx.registry, dirs=[custom_nodes_dir()], allow=[name])
    return [n for info in infos for n in info.node_names]


def add_routes(app: web.Application, ctx: Any) -> None:
    from server.packs import deps, install, manifest, sources
    from server.packs.status import list_packs

    app[_LOCK_KEY] = asyncio.Lock()
    state = {"restart_required": False}

    async def run_op(fn: Any, *args: Any, **kwargs: Any) -> Any:
        async with app[_LOCK_KEY]:
            try:
                return await asyncio.to_thread(fn, *args, **kwargs)
            except deps.DependencyConflict as e:
                raise ApiError(409, str(e), "dependency_conflict", extra_info={"packages": e.packages}) from None
            except (install.PackError, sources.SourceError) as e:
                raise ApiError(400, str(e), "pack_error") from None
            except deps.PipError as e:
                raise ApiError(502, str(e), "pip_failed") from None
            except manifest.ManifestError as e:
                raise ApiError(500, str(e), "manifest_error") from None

    async def get_list(request: web.Request) -> web.Response:
        rows = await asyncio.to_thread(list_packs, ctx.registry)
        return web.json_response({"packs": rows, "restart_required": state["restart_required"]})

    async def get_providers(request: web.Request) -> web.Response:
        from nodes.pack_index import providers_for

        class_types = request.query.getall("class_type", [])
        if not class_types:
            raise ApiError(400, "give one or more ?class_type=...", "invalid_request")
        return web.json_response({"providers": providers_for(class_types)})

    async def post_install(request: web.Request) -> web.Response:
        _may_change(ctx)
        body = await read_json(request, default={})
        source = body.get("source")
        if not isinstance(source, str) or not source.strip():
            raise ApiError(400, "the request needs a 'source' (git URL, folder or .zip path)", "invalid_request")
        name = body.get("name")
        if name is not None and not isinstance(name, str):
            raise ApiError(400, "'name' must be a string", "invalid_request")
        result = await run_op(install.install_pack, source.strip(), name=name, isolated=bool(body.get("isolated")),
                              allow_scripts=bool(body.get("allow_scripts")))
        loaded = await run_op(_load_live, ctx, result.name)
        return web.json_response(_result(result, loaded))

    def action(kind: str):
        async def handler(request: web.Request) -> web.Response:
            _may_change(ctx)
            name = _name(await read_json(request, default={}))
            loaded: list[str] = []
            if kind == "update":
                result = await run_op(install.update_pack, name)
            elif kind == "remove":
                result = await run_op(install.remove_pack, name)
            else:
                result = await run_op(install.set_enabled, name, kind == "enable")
                if kind == "enable" and result.restart_required:
                    loaded = await run_op(_load_live, ctx, name)
            if result.restart_required and not loaded:
                state["restart_required"] = True
            return web.json_response(_result(result, loaded))
        return handler

    app.router.add_get("/api/nodes", get_list)
    app.router.add_get("/api/nodes/providers", get_providers)
    app.router.add_post("/api/nodes/install", post_install)
    for kind in ("enable", "disable", "update", "remove"):
        app.router.add_post(f"/api/nodes/{kind}", action(kind))

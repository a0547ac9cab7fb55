"""Per-user state: /settings, /users, /userdata (saved workflows, templates, user.css), /v2/userdata.

Loom is single-user: every request is user "default", whose files live in `<data>/user/default/`
(ComfyUI's layout, so a ComfyUI user folder can be copied over). Settings live in the SQLite store with
the queue and history; a ComfyUI `comfy.settings.json` in that folder is taken in on first use.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import re
import uuid
from pathlib import Path

from aiohttp import web

from nodes import paths
from nodes.paths import atomic_write
from server.context import ServerContext
from server.http_util import ApiError, Routes, query_bool, read_json
from server.routes_files import DANGEROUS_TYPES
from server.store import Store

DEFAULT_USER = "default"
SETTINGS_FILE = "comfy.settings.json"
USER_FOLDERS = ("workflows", "subgraphs")


def file_info(path: Path, root: Path) -> dict:
    st = path.stat()
    return {"path": path.relative_to(root).as_posix(), "size": st.st_size,
            "modified": int(st.st_mtime * 1000), "created": int(st.st_ctime * 1000)}


class UserFiles:
    def __init__(self, user_root: Path, store: Store):
        self.users_root = user_root
        self.store = store
        self.root = (user_root / DEFAULT_USER)
        for sub in USER_FOLDERS:  # listed by the frontend at load; absent folders only log 404s there
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.root = self.root.resolve()
        self.settings_lock = asyncio.Lock()

    def path(self, rel: str) -> Path:
        if not rel:
            raise ApiError(400, "no file given", "missing_filename")
        try:
            return paths.safe_join(self.root, rel)
        except paths.UnsafePath as e:
            raise ApiError(403, f"refused: {e}", "forbidden_path") from None

    # -- settings (in the SQLite store; a ComfyUI comfy.settings.json found here is taken in once) ------
    def read_settings(self) -> dict:
        if not self.store.has_settings(DEFAULT_USER):
            self._import_comfy_settings()
        return self.store.settings_get(DEFAULT_USER)

    def update_settings(self, values: dict) -> None:
        if not self.store.has_settings(DEFAULT_USER):
            self._import_comfy_settings()
        self.store.settings_update(DEFAULT_USER, values)

    def _import_comfy_settings(self) -> None:
        try:
            data = json.loads((self.root / SETTINGS_FILE).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return
        if isinstance(data, dict) and data:
            self.store.settings_update(DEFAULT_USER, data)

    # -- users (kept for API compatibility; Loom does not switch users) ----------------------------
    def users_file(self) -> Path:
        return self.users_root / "users.json"

    def add_user(self, name: str) -> str:
        users = {}
        if self.users_file().exists():
            users = json.loads(self.users_file().read_text())
        if name in users.values():
            raise ApiError(400, "Duplicate username.", "duplicate_user")
        user_id = re.sub(r"[^a-zA-Z0-9_-]+", "-", name) + "_" + uuid.uuid4().hex
        users[user_id] = name
        atomic_write(self.users_file(), json.dumps(users).encode())
        return user_id

    # -- listing -------------------------------------------------------------------------------------
    def inside(self, p: Path) -> bool:
        try:
            resolved = p.resolve()
        except OSError:
            return False
        return resolved == self.root or self.root in resolved.parents

    def list_dir(self, directory: Path, recurse: bool) -> list[Path]:
        files = []
        if recurse:
            for dirpath, dirnames, filenames in os.walk(directory):
                dirnames.sort()
                files += [Path(dirpath) / f for f in sorted(filenames)]
        else:
            files = sorted(p for p in directory.iterdir())
        return [f for f in files if f.is_file() and self.inside(f)]


def add_routes(r: Routes, ctx: ServerContext) -> None:
    uf = UserFiles(ctx.user_root, ctx.store)

    @r.get("/settings")
    async def get_settings(request: web.Request) -> web.Response:
        return web.json_response(uf.read_settings())

    @r.get("/settings/{id}")
    async def get_setting(request: web.Request) -> web.Response:
        return web.json_response(uf.read_settings().get(request.match_info["id"]))

    @r.post("/settings")
    async def post_settings(request: web.Request) -> web.Response:
        body = await read_json(request, default={})
        async with uf.settings_lock:
            uf.update_settings(body)
        return web.json_response({})

    @r.post("/settings/{id}")
    async def post_setting(request: web.Request) -> web.Response:
        value = await read_json(request, default=None, expect=None)
        async with uf.settings_lock:
            uf.update_settings({request.match_info["id"]: value})
        return web.json_response({})

    @r.get("/users")
    async def get_users(request: web.Request) -> web.Response:
        # Without a "users" key the frontend skips its multi-user login screen.
        return web.json_response({"storage": "server", "migrated": True})

    @r.post("/users")
    async def post_users(request: web.Request) -> web.Response:
        body = await read_json(request)
        name = body.get("username") if body else None
        if not isinstance(name, str) or not name.strip():
            raise ApiError(400, "username not provided", "missing_username")
        return web.json_response(uf.add_user(name.strip()))

    @r.get("/userdata")
    async def list_userdata(request: web.Request) -> web.Response:
        directory = request.query.get("dir", "")
        if not directory:
            raise ApiError(400, "give the folder as ?dir=", "missing_dir")
        path = uf.path(directory)
        if not path.is_dir():
            raise ApiError(404, f"no folder {directory!r}", "not_found")
        full_info, split = query_bool(request, "full_info"), query_bool(request, "split")
        files = await asyncio.to_thread(uf.list_dir, path, query_bool(request, "recurse"))
        out = []
        for f in files:
            if full_info:
                out.append(file_info(f, path))
            else:
                rel = f.relative_to(path).as_posix()
                out.append([rel, *rel.split("/")] if split else rel)
        return web.json_response(out)

    @r.get("/v2/userdata")
    async def list_userdata_v2(request: web.Request) -> web.Response:
        rel = request.query.get("path", "")
        target = uf.path(rel) if rel else uf.root
        if not target.exists():
            raise ApiError(404, f"no folder {rel!r}", "not_found")
        if not target.is_dir():
            raise ApiError(400, f"{rel!r} is not a folder", "not_a_directory")

        def scan() -> list[dict]:
            results = []
            for dirpath, dirnames, filenames in os.walk(target):
                for name in dirnames:
                    p = Path(dirpath) / name
                    if uf.inside(p):
                        results.append({"name": name, "path": p.relative_to(uf.root).as_posix(), "type": "directory"})
                for name in filenames:
                    p = Path(dirpath) / name
                    if uf.inside(p):
                        st = p.stat()
                        results.append({"name": name, "path": p.relative_to(uf.root).as_posix(), "type": "file",
                                        "size": st.st_size, "modified": st.st_mtime})
            results.sort(key=lambda e: (e["type"] != "directory", e["name"].lower()))
            return results

        return web.json_response(await asyncio.to_thread(scan))

    @r.get("/userdata/{file}")
    async def get_userdata(request: web.Request) -> web.StreamResponse:
        path = uf.path(request.match_info["file"])
        if not path.is_file():
            raise ApiError(404, f"no file {request.match_info['file']!r}", "not_found")
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path == uf.root / "user.css":
            mime, disposition = "text/css", "inline"
        else:
            if mime in DANGEROUS_TYPES:
                mime = "application/octet-stream"
            disposition = "attachment"
        return web.FileResponse(path, headers={"Content-Type": mime, "Content-Disposition": disposition,
                                               "X-Content-Type-Options": "nosniff"})

    @r.post("/userdata/{file}")
    async def post_userdata(request: web.Request) -> web.Response:
        path = uf.path(request.match_info["file"])
        if path.is_dir():
            raise ApiError(400, f"{request.match_info['file']!r} is a folder", "is_a_directory")
        if not query_bool(request, "overwrite", True) and path.exists():
            raise ApiError(409, f"{request.match_info['file']!r} already exists", "conflict")
        body = await request.read()
        await asyncio.to_thread(atomic_write, path, body)
        if query_bool(request, "full_info"):
            return web.json_response(file_info(path, uf.root))
        return web.json_response(path.relative_to(uf.root).as_posix())

    @r.delete("/userdata/{file}")
    async def delete_userdata(request: web.Request) -> web.Response:
        path = uf.path(request.match_info["file"])
        if not path.is_file():
            raise ApiError(404, f"no file {request.match_info['file']!r}", "not_found")
        path.unlink()
        return web.Response(status=204)

    @r.post("/userdata/{file}/move/{dest}")
    async def move_userdata(request: web.Request) -> web.Response:
        source = uf.path(request.match_info["file"])
        dest = uf.path(request.match_info["dest"])
        if not source.is_file():
            raise ApiError(404, f"no file {request.match_info['file']!r}", "not_found")
        if dest.exists() and not query_bool(request, "overwrite", True):
            raise ApiError(409, f"{request.match_info['dest']!r} already exists", "conflict")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, dest)
        if query_bool(request, "full_info"):
            return web.json_response(file_info(dest, uf.root))
        return web.json_response(dest.relative_to(uf.root).as_posix())

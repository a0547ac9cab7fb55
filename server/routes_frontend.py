"""The editor page and static files: Loom's own `frontend/`, or the official ComfyUI frontend.

Pack web directories are served at `/extensions/<pack>/`; everything else falls through to the web
root. A missing Loom frontend gives a small placeholder page instead of an error.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from nodes import paths
from server.context import ServerContext
from server.http_util import ApiError
from server.static_files import serve_from

LOOM_FRONTEND = paths.REPO_ROOT / "frontend"

PLACEHOLDER = """<!doctype html>
<html><head><meta charset="utf-8"><title>Loom</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;color:#ddd;background:#202020}
code{background:#333;padding:0 .3em}</style></head>
<body><h1>Loom is running</h1>
<p>Loom's editor is not installed in <code>frontend/</code> yet. The API is up: try
<a href="/api/system_stats">/api/system_stats</a> or <a href="/api/object_info">/api/object_info</a>,
or start the server with <code>--frontend comfy</code> to use the official ComfyUI frontend.</p>
</body></html>
"""


class FrontendMissing(RuntimeError):
    pass


def resolve_web_root(kind: str) -> Path | None:
    """The static folder for `--frontend loom|comfy`; None means Loom's placeholder page."""
    if kind == "comfy":
        try:
            import comfyui_frontend_package
        except ImportError:
            raise FrontendMissing(
                "--frontend comfy needs the official ComfyUI frontend: "
                "pip install 'comfyui-frontend-package==1.58.1' (or: pip install 'loom[comfy-frontend]')") from None
        root = Path(comfyui_frontend_package.__file__).parent / "static"
        if not (root / "index.html").is_file():
            raise FrontendMissing(f"comfyui_frontend_package is installed but has no static/index.html ({root})")
        return root
    if kind != "loom":
        raise FrontendMissing(f"unknown frontend {kind!r} (expected loom or comfy)")
    return LOOM_FRONTEND if (LOOM_FRONTEND / "index.html").is_file() else None


def add_routes(app: web.Application, ctx: ServerContext, web_root: Path | None) -> None:
    web_dirs = getattr(ctx.registry, "web_dirs", {})

    async def index(request: web.Request) -> web.StreamResponse:
        if web_root is None:
            response = web.Response(text=PLACEHOLDER, content_type="text/html")
        else:
            response = serve_from(web_root, "index.html")
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def extension_file(request: web.Request) -> web.StreamResponse:
        pack, rel = request.match_info["pack"], request.match_info["path"]
        if pack in web_dirs:
            return serve_from(Path(web_dirs[pack]), rel)
        if web_root is None:
            raise ApiError(404, f"no extension {pack!r}", "not_found")
        return serve_from(web_root, f"extensions/{pack}/{rel}")

    async def static(request: web.Request) -> web.StreamResponse:
        rel = request.match_info["path"]
        if web_root is None or rel.startswith(("api/", "internal/")):
            raise ApiError(404, f"not found: {request.path}", "not_found")
        return serve_from(web_root, rel, index="index.html")

    async def core_templates(request: web.Request) -> web.Response:
        # The official frontend asks for ComfyUI's template package; Loom's templates come from
        # /api/workflow_templates instead, so the core index is empty (not a 404 in the console).
        name = request.match_info["name"]
        return web.json_response({} if name.startswith("index_logo") else [])

    app.router.add_get("/", index)
    app.router.add_get(r"/templates/{name:index[^/]*\.json}", core_templates)
    app.router.add_get("/extensions/{pack}/{path:.+}", extension_file)
    app.router.add_get("/{path:.*}", static)  # last: everything no other route claimed

"""What the server knows: nodes, models, system, features, extensions, translations, templates,
and the `/internal` routes the official frontend calls."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import urllib.parse
from importlib import metadata
from pathlib import Path

from aiohttp import web

from nodes import paths
from server.context import ServerContext
from server.http_util import ApiError, Routes, read_json
from server.routes_files import data_root
from server.static_files import serve_from

LOOM_WORKFLOWS_MODULE = "loom"
PREVIEW_EXTENSIONS = (".webp", ".png", ".jpg", ".jpeg", ".preview.png", ".preview.webp")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def loom_version() -> str:
    return _version("loom") or "0.1.0"


def model_folder_names(folders) -> list[str]:
    return sorted(set(paths.MODEL_FOLDERS) | set(folders.extra))


def devices(cpu_only: bool) -> list[dict]:
    import psutil

    vm = psutil.virtual_memory()
    torch = sys.modules.get("torch")  # never import torch just to answer this
    if torch is not None and not cpu_only:
        try:
            if torch.cuda.is_available():
                out = []
                for i in range(torch.cuda.device_count()):
                    free, total = torch.cuda.mem_get_info(i)
                    out.append({"name": f"cuda:{i} {torch.cuda.get_device_name(i)}", "type": "cuda", "index": i,
                                "vram_total": total, "vram_free": free,
                                "torch_vram_total": torch.cuda.memory_reserved(i),
                                "torch_vram_free": torch.cuda.memory_reserved(i) - torch.cuda.memory_allocated(i)})
                return out
        except Exception:
            pass
    return [{"name": "cpu", "type": "cpu", "index": None, "vram_total": vm.total, "vram_free": vm.available,
             "torch_vram_total": 0, "torch_vram_free": 0}]


def pack_dirs(registry) -> dict[str, Path]:
    return {p.name: Path(p.path) for p in getattr(registry, "packs", []) if getattr(p, "path", None) and not p.error}


def build_translations(registry) -> dict:
    """Each pack's locales/<lang>/main.json merged at the top, nodeDefs/commands/settings.json under their key."""
    out: dict[str, dict] = {}
    for pack_path in pack_dirs(registry).values():
        locales = pack_path / "locales"
        if not locales.is_dir():
            continue
        for lang_dir in sorted(p for p in locales.iterdir() if p.is_dir()):
            lang = out.setdefault(lang_dir.name, {})
            for file in sorted(lang_dir.glob("*.json")):
                try:
                    data = json.loads(file.read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError):
                    continue
                if not isinstance(data, dict):
                    continue
                target = lang if file.stem == "main" else lang.setdefault(file.stem, {})
                _deep_merge(target, data)
    return out


def _deep_merge(into: dict, new: dict) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _deep_merge(into[k], v)
        else:
            into[k] = v


def template_dirs(registry) -> dict[str, Path]:
    dirs = {LOOM_WORKFLOWS_MODULE: paths.REPO_ROOT / "workflows"}
    for name, pack_path in pack_dirs(registry).items():
        for sub in ("example_workflows", "example", "examples", "workflow", "workflows"):
            if (pack_path / sub).is_dir():
                dirs.setdefault(name, pack_path / sub)
                break
    return {k: v for k, v in dirs.items() if v.is_dir()}


def add_routes(r: Routes, internal: Routes, ctx: ServerContext, web_root: Path | None) -> None:
    registry = ctx.registry
    folders = ctx.folders
    config = ctx.config

    @r.get("/object_info")
    async def object_info(request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(registry.object_info))

    @r.get("/object_info/{node_class}")
    async def object_info_one(request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(registry.object_info, request.match_info["node_class"]))

    @r.get("/system_stats")
    async def system_stats(request: web.Request) -> web.Response:
        import psutil

        vm = psutil.virtual_memory()
        frontend_version = _version("comfyui-frontend-package")
        return web.json_response({
            "system": {"os": os.name, "ram_total": vm.total, "ram_free": vm.available,
                       "comfyui_version": loom_version(), "loom_version": loom_version(),
                       "required_frontend_version": frontend_version or "", "python_version": sys.version,
                       "pytorch_version": _version("torch") or "", "embedded_python": False,
                       "platform": platform.platform(), "argv": sys.argv},
            "devices": devices(config.cpu), "loom": loom_stats()})

    def loom_stats() -> dict:
        """Loom's own state: each worker's output cache and the loaded models (an extra key; ComfyUI
        clients ignore it)."""
        states = ctx.dispatcher.worker_states()
        stats: dict = {"workers": {w.name: {**w.stats(), **states.get(w.name, {})} for w in ctx.dispatcher.workers}}
        if ctx.pool is not None:
            stats["cluster"] = ctx.pool.stats()
        management = sys.modules.get("nodes.diffusion.management")
        manager = management.existing_model_manager() if management is not None else None
        if manager is not None:   # only once models were used
            stats["models"] = manager.stats()
        return stats

    @r.get("/loom/stats")
    async def stats(request: web.Request) -> web.Response:
        """The output cache (hits, misses, entries, bytes held, budget) and the loaded models."""
        return web.json_response(loom_stats())

    @r.get("/features")
    async def features(request: web.Request) -> web.Response:
        return web.json_response(server_features(ctx))

    @r.get("/embeddings")
    async def embeddings(request: web.Request) -> web.Response:
        names = await asyncio.to_thread(paths.get_filename_list, "embeddings")
        return web.json_response([os.path.splitext(n)[0] for n in names])

    @r.get("/models")
    async def models(request: web.Request) -> web.Response:
        return web.json_response(model_folder_names(folders))

    def known_folder(name: str) -> str:
        if not folders.is_model_folder(name):
            raise ApiError(404, f"unknown model folder {name!r}", "not_found")
        return name

    @r.get("/models/{folder}")
    async def models_in(request: web.Request) -> web.Response:
        folder = known_folder(request.match_info["folder"])
        return web.json_response(await asyncio.to_thread(paths.get_filename_list, folder))

    @r.get("/experiment/models")
    async def experiment_models(request: web.Request) -> web.Response:
        return web.json_response([{"name": n, "folders": [str(p) for p in folders.model_folder_paths(n)]}
                                  for n in model_folder_names(folders)])

    @r.get("/experiment/models/{folder}")
    async def experiment_models_in(request: web.Request) -> web.Response:
        folder = known_folder(request.match_info["folder"])

        def scan() -> list[dict]:
            dirs = folders.model_folder_paths(folder)
            out = []
            for name in paths.get_filename_list(folder):
                for i, d in enumerate(dirs):
                    p = d / name
                    if p.exists():
                        st = p.stat()
                        out.append({"name": name, "pathIndex": i, "modified": st.st_mtime, "size": st.st_size})
                        break
            return out

        return web.json_response(await asyncio.to_thread(scan))

    @r.get("/experiment/models/preview/{folder}/{path_index}/{filename:.+}")
    async def experiment_model_preview(request: web.Request) -> web.StreamResponse:
        folder = known_folder(request.match_info["folder"])
        dirs = folders.model_folder_paths(folder)
        try:
            d = dirs[int(request.match_info["path_index"])]
        except (ValueError, IndexError):
            raise ApiError(404, "no such model folder index", "not_found") from None
        stem = os.path.splitext(request.match_info["filename"])[0]
        for ext in PREVIEW_EXTENSIONS:
            try:
                return serve_from(d, stem + ext)
            except ApiError as e:
                if e.status != 404:
                    raise
        raise ApiError(404, "this model has no preview image", "not_found")

    @r.get("/extensions")
    async def extensions(request: web.Request) -> web.Response:
        def scan() -> list[str]:
            urls = []
            if web_root is not None and (web_root / "extensions").is_dir():
                urls += ["/" + p.relative_to(web_root).as_posix()
                         for p in sorted((web_root / "extensions").rglob("*.js"))]
            for name, d in getattr(registry, "web_dirs", {}).items():
                d = Path(d)
                if d.is_dir():
                    urls += [f"/extensions/{urllib.parse.quote(name)}/{p.relative_to(d).as_posix()}"
                             for p in sorted(d.rglob("*.js"))]
            return urls

        return web.json_response(await asyncio.to_thread(scan))

    @r.get("/i18n")
    async def i18n(request: web.Request) -> web.Response:
        # Not cached: packs can be installed while the server runs (server/packs_api.py).
        return web.json_response(await asyncio.to_thread(build_translations, registry))

    @r.get("/workflow_templates")
    async def workflow_templates(request: web.Request) -> web.Response:
        def scan() -> dict:
            return {name: sorted(p.stem for p in d.glob("*.json"))
                    for name, d in template_dirs(registry).items()}

        return web.json_response(await asyncio.to_thread(scan))

    @r.get("/workflow_templates/{module}/{path:.+}")
    async def workflow_template_file(request: web.Request) -> web.StreamResponse:
        d = template_dirs(registry).get(request.match_info["module"])
        if d is None:
            raise ApiError(404, f"no templates for {request.match_info['module']!r}", "not_found")
        return serve_from(d, request.match_info["path"])

    # The official frontend asks for these; Loom has nothing to put in them yet.
    @r.get("/global_subgraphs")
    async def global_subgraphs(request: web.Request) -> web.Response:
        return web.json_response({})

    @r.get("/node_replacements")
    async def node_replacements(request: web.Request) -> web.Response:
        return web.json_response({})

    # -- /internal (not under /api, like the dialect) ------------------------------------------------
    @internal.get("/internal/logs")
    async def logs(request: web.Request) -> web.Response:
        return web.json_response("".join(f"{e['t']} - {e['m']}" for e in ctx.logs.snapshot()))

    @internal.get("/internal/logs/raw")
    async def logs_raw(request: web.Request) -> web.Response:
        return web.json_response({"entries": ctx.logs.snapshot(), "size": {"cols": 120, "rows": 40}})

    @internal.patch("/internal/logs/subscribe")
    async def logs_subscribe(request: web.Request) -> web.Response:
        await read_json(request, default={})
        return web.json_response({})  # Loom does not stream logs over the socket; /internal/logs has them

    @internal.get("/internal/folder_paths")
    async def folder_paths(request: web.Request) -> web.Response:
        return web.json_response({n: [str(p) for p in folders.model_folder_paths(n)]
                                  for n in model_folder_names(folders)})

    @internal.get("/internal/files/{directory_type}")
    async def internal_files(request: web.Request) -> web.Response:
        root = data_root(request.match_info["directory_type"])

        def scan() -> list[str]:
            if not root.is_dir():
                return []
            entries = [e for e in os.scandir(root) if e.is_file() and not e.name.startswith(".")]
            entries.sort(key=lambda e: e.stat().st_mtime, reverse=True)
            return [e.name for e in entries]

        return web.json_response(await asyncio.to_thread(scan))


def server_features(ctx: ServerContext) -> dict:
    return {"supports_preview_metadata": True, "max_upload_size": ctx.config.max_upload_bytes}

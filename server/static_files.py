"""Serving a file from a folder by a request path, without ever leaving the folder."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from nodes import paths
from server.http_util import ApiError


def serve_from(root: Path, rel: str, index: str | None = None) -> web.FileResponse:
    """The file `rel` under `root` (symlinks resolved); 403 when it would leave root, 404 when absent."""
    try:
        path = paths.safe_join(root, rel) if rel else Path(root).resolve()
    except paths.UnsafePath as e:
        raise ApiError(403, f"refused: {e}", "forbidden_path") from None
    if path.is_dir() and index:
        path = path / index
    if not path.is_file():
        raise ApiError(404, f"not found: {rel or '/'}", "not_found")
    return web.FileResponse(path)

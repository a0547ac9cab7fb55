"""Small helpers every route module uses: JSON errors, JSON bodies, query parsing, /api aliases."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """Raised by a handler to answer with a JSON error; the middleware turns it into a response."""

    def __init__(self, status: int, message: str, type: str = "bad_request", details: str = "",
                 extra_info: dict | None = None, body: dict | None = None):
        super().__init__(message)
        self.body = body or {}
        self.status = status
        self.message = message
        self.type = type
        self.details = details
        self.extra_info = extra_info or {}

    def response(self) -> web.Response:
        return json_error(self.status, self.message, self.type, self.details, self.extra_info, **self.body)


def error_body(message: str, type: str, details: str = "", extra_info: dict | None = None) -> dict:
    return {"type": type, "message": message, "details": details, "extra_info": extra_info or {}}


def json_error(status: int, message: str, type: str = "bad_request", details: str = "",
               extra_info: dict | None = None, **extra) -> web.Response:
    """Every error the server answers has this shape: `{"error": {type, message, details, extra_info}}`."""
    return web.json_response({"error": error_body(message, type, details, extra_info), **extra}, status=status)


async def read_json(request: web.Request, default=None, expect: type | tuple | None = dict):
    """The request's JSON body; an empty body gives `default`; bad JSON or a wrong top type is a 400."""
    raw = await request.read()
    if not raw.strip():
        return default
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the request body is not valid JSON: {e}", "invalid_json") from None
    if expect is not None and not isinstance(value, expect):
        name = expect.__name__ if isinstance(expect, type) else " or ".join(t.__name__ for t in expect)
        raise ApiError(400, f"the request body must be a JSON {'object' if expect is dict else name}",
                       "invalid_json")
    return value


def query_int(request: web.Request, name: str, default: int | None = None, minimum: int | None = None,
              maximum: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"query parameter {name!r} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ApiError(400, f"query parameter {name!r} must be at least {minimum}")
    if maximum is not None and value > maximum:
        value = maximum
    return value


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    return raw.lower() in ("1", "true", "yes", "on")


class Routes:
    """Collects routes; each is registered as-is and again under `/api` (the dialect's delegation rule)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, Handler]] = []

    def route(self, method: str, path: str):
        def deco(handler: Handler) -> Handler:
            self.entries.append((method, path, handler))
            return handler
        return deco

    def get(self, path: str):
        return self.route("GET", path)

    def post(self, path: str):
        return self.route("POST", path)

    def delete(self, path: str):
        return self.route("DELETE", path)

    def patch(self, path: str):
        return self.route("PATCH", path)

    def apply(self, app: web.Application, api_alias: bool = True) -> None:
        for method, path, handler in self.entries:
            app.router.add_route(method, path, handler)
            if api_alias and not path.startswith("/api/"):
                app.router.add_route(method, "/api" + path, handler)


def content_disposition(filename: str, attachment: bool = False) -> str:
    """A Content-Disposition value that is safe whatever characters the file name has."""
    from urllib.parse import quote

    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    value = f'filename="{ascii_name}"'
    if ascii_name != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return ("attachment; " if attachment else "") + value

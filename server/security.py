"""Middlewares: JSON errors, the Host/Origin guard, CORS, the bearer token, cache headers.

Safe by default: a loopback server answers only to loopback Host names (so a DNS-rebinding page
cannot reach it) and refuses requests whose Origin is another site (so a page cannot queue prompts
or read files through the browser). With `--auth-token` every route and the WebSocket need the
token: `Authorization: Bearer T`, or a cookie the browser gets by opening `/?token=T` once.
"""

from __future__ import annotations

import hmac
import logging
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from server.config import ServeConfig, is_loopback_host
from server.http_util import ApiError, json_error

log = logging.getLogger("loom.server")

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def cookie_name(config: ServeConfig) -> str:
    # Cookies ignore ports: two servers on one host must not overwrite each other's token.
    return f"loom_token_{config.port}"


def _split_host(value: str, scheme: str) -> tuple[str, int | None]:
    parts = urlsplit("//" + value)
    try:
        port = parts.port
    except ValueError:
        port = None
    return (parts.hostname or "").lower(), port if port is not None else DEFAULT_PORTS.get(scheme)


def _ctx(request: web.Request):
    from server.app import CTX_KEY

    return request.app[CTX_KEY]


@web.middleware
async def error_middleware(request: web.Request, handler):
    """Every error is JSON: the official frontend feeds error bodies to JSON.parse."""
    try:
        return await handler(request)
    except ApiError as e:
        return e.response()
    except web.HTTPException as e:
        if e.status < 400:
            raise
        if e.status == 413:
            limit_mb = _ctx(request).config.max_upload_mb
            return json_error(413, f"the request body is larger than the upload limit ({limit_mb:g} MB)",
                              "too_large", extra_info={"max_upload_size": _ctx(request).config.max_upload_bytes})
        if e.status == 404:
            return json_error(404, f"not found: {request.method} {request.path}", "not_found")
        if e.status == 405:
            return json_error(405, f"method {request.method} is not allowed on {request.path}", "method_not_allowed")
        return json_error(e.status, e.reason or "request failed", "http_error")
    except Exception as e:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return json_error(500, f"internal server error: {type(e).__name__}: {e}", "internal_error")


def create_guard_middleware(config: ServeConfig):
    cors = config.cors_origin
    token = config.auth_token
    cookie = cookie_name(config)

    def origin_allowed(request: web.Request, origin: str) -> bool:
        if cors == "*" or (cors and origin.rstrip("/") == cors.rstrip("/")):
            return True
        parts = urlsplit(origin)
        if not parts.scheme or not parts.hostname:
            return False  # "null" (sandboxed frames, file://) and garbage
        try:
            origin_port = parts.port or DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            return False
        host = request.headers.get("Host", "")
        host_name, host_port = _split_host(host, request.scheme)
        return parts.hostname.lower() == host_name and origin_port == host_port

    def token_ok(request: web.Request) -> bool:
        offered = None
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            offered = auth[7:].strip()
        elif cookie in request.cookies:
            offered = request.cookies[cookie]
        elif "token" in request.query and request.path in ("/ws", "/api/ws"):
            offered = request.query["token"]
        return offered is not None and hmac.compare_digest(offered.encode(), token.encode())

    @web.middleware
    async def guard(request: web.Request, handler):
        if config.bound_to_loopback and "Host" in request.headers:
            host_name, _ = _split_host(request.headers["Host"], request.scheme)
            if not is_loopback_host(host_name):
                log.warning("refused a request for Host %r (this server answers only to localhost)",
                            request.headers["Host"])
                return json_error(403, "this server only answers to localhost names (DNS-rebinding protection)",
                                  "forbidden_host")
        origin = request.headers.get("Origin")
        if origin is not None and not origin_allowed(request, origin):
            log.warning("refused a cross-origin %s %s from %r", request.method, request.path, origin)
            return json_error(403, f"cross-origin request from {origin!r} refused "
                                   "(start the server with --enable-cors-header to allow it)", "forbidden_origin")
        if request.method == "OPTIONS" and cors:
            response = web.Response()
        else:
            if token is not None and not token_ok(request):
                landing = _token_landing(request, token, cookie)
                if landing is not None:
                    return landing
                return _unauthorized(request)
            response = await handler(request)
        if cors and not response.prepared:
            response.headers["Access-Control-Allow-Origin"] = cors
            response.headers["Access-Control-Allow-Methods"] = "POST, GET, DELETE, PUT, PATCH, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization, Comfy-User"
            response.headers["Access-Control-Allow-Credentials"] = "true"
        return response

    return guard


def _token_landing(request: web.Request, token: str, cookie: str) -> web.StreamResponse | None:
    """`GET /any/page?token=T`: remember the token in a cookie and drop it from the address bar."""
    offered = request.query.get("token")
    if request.method != "GET" or offered is None or request.path.startswith(("/api/", "/internal/", "/ws")):
        return None  # API clients send the header; the query token is for pages (and /ws, checked before)
    if not hmac.compare_digest(offered.encode(), token.encode()):
        return None
    rest = [(k, v) for k, v in request.query.items() if k != "token"]
    location = request.path + ("?" + urlencode(rest) if rest else "")
    response = web.HTTPFound(location)
    response.set_cookie(cookie, token, httponly=True, samesite="Strict", path="/", max_age=30 * 24 * 3600)
    return response


def _unauthorized(request: web.Request) -> web.Response:
    if request.path == "/" and "text/html" in request.headers.get("Accept", ""):
        return web.Response(status=401, content_type="text/html", text=(
            "<!doctype html><title>Loom: token needed</title><h1>This Loom server needs its token</h1>"
            "<p>Open <code>/?token=YOUR_TOKEN</code> once in this browser (the token given to "
            "<code>loom serve --auth-token</code>).</p>"))
    response = json_error(401, "missing or wrong token: send 'Authorization: Bearer <token>' "
                               "(browsers: open /?token=<token> once)", "unauthorized")
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


@web.middleware
async def headers_middleware(request: web.Request, handler):
    response = await handler(request)
    if not response.prepared:
        path = request.path
        if path.endswith((".js", ".css")) or path.endswith("index.json") or path == "/":
            response.headers.setdefault("Cache-Control", "no-cache")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response

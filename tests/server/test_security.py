"""Files and safety: /view, uploads, path traversal, size limits, the token, Origin/Host checks, CORS."""

from __future__ import annotations

import io
import json
import os

import aiohttp
import pytest
import requests
from PIL import Image, PngImagePlugin
from srv_helpers import WSClient, image_graph

SECRET = b"TOP SECRET CONTENT"


def png_bytes(color=(255, 0, 0, 255), size=(8, 8), text: dict | None = None) -> bytes:
    buf = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, v)
    Image.new("RGBA", size, color).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def upload(server, data: bytes, name: str = "pic.png", path: str = "/api/upload/image", **fields) -> requests.Response:
    return requests.post(server.url + path, files={"image": (name, data, "image/png")},
                         data={k: v for k, v in fields.items()}, timeout=30)


@pytest.fixture
def secret(tmp_path):
    """A file outside every root, and symlinks to it from inside the roots."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    return outside


def no_secret(r: requests.Response) -> None:
    assert SECRET not in r.content
    assert r.status_code in (400, 403, 404), (r.status_code, r.text)
    assert "error" in r.json()


# -- /view -----------------------------------------------------------------------------------------
def test_view_serves_outputs_with_previews_and_channels(server):
    pid = server.queue_prompt(image_graph(prefix="viewme"))["prompt_id"]
    image = server.wait_history(pid)["outputs"]["3"]["images"][0]
    q = f"filename={image['filename']}&type=output&subfolder="
    r = server.get(f"/api/view?{q}")
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (32, 32)
    assert server.get(f"/view?filename={image['filename']} [output]").content == r.content
    webp = server.get(f"/api/view?{q}&preview=webp;50")
    assert webp.headers["Content-Type"] == "image/webp" and Image.open(io.BytesIO(webp.content)).format == "WEBP"
    jpeg = server.get(f"/api/view?{q}&preview=jpeg;80")
    assert Image.open(io.BytesIO(jpeg.content)).format == "JPEG"
    (server.ctx.folders.input_dir / "rgba.png").write_bytes(png_bytes((10, 20, 30, 128)))
    rgb = Image.open(io.BytesIO(server.get("/api/view?filename=rgba.png&type=input&channel=rgb").content))
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (10, 20, 30)
    alpha = Image.open(io.BytesIO(server.get("/api/view?filename=rgba.png&type=input&channel=a").content))
    assert alpha.mode == "RGBA" and alpha.getpixel((0, 0))[3] == 128
    assert server.get("/api/view?filename=rgba.png&type=input&channel=x").status_code == 400
    assert server.get(f"/api/view?{q}&preview=gif;5").status_code == 400
    assert server.get("/api/view?filename=missing.png").status_code == 404
    assert server.get("/api/view").json()["error"]["type"] == "missing_filename"
    assert server.get("/api/view?filename=rgba.png&type=models").json()["error"]["type"] == "invalid_type"


def test_view_never_serves_active_content(server):
    out = server.ctx.folders.output_dir
    for name, body in {"x.html": b"<script>alert(1)</script>", "x.js": b"alert(1)", "x.css": b"*{}",
                       "x.svg": b"<svg onload='alert(1)'/>"}.items():
        (out / name).write_bytes(body)
        r = server.get(f"/api/view?filename={name}")
        assert r.status_code == 200 and r.content == body
        assert r.headers["Content-Type"] == "application/octet-stream", name
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Content-Disposition"].startswith("attachment")
    weird = 'odd"\r\nSet-Cookie: a=b é.png'
    (out / weird).write_bytes(png_bytes())
    r = requests.get(server.url + "/api/view", params={"filename": weird}, timeout=10)
    assert r.status_code == 200 and "Set-Cookie" not in r.headers
    assert "filename*=UTF-8''odd%22%0D%0ASet-Cookie" in r.headers["Content-Disposition"]
    (out / "x.txt").write_text("hello")
    assert server.get("/api/view?filename=x.txt&preview=webp").json()["error"]["type"] == "not_an_image"


def test_view_path_traversal(server, secret):
    out = server.ctx.folders.output_dir
    os.symlink(secret / "secret.txt", out / "link.txt")
    os.symlink(secret, out / "linkdir")
    rel = os.path.relpath(secret / "secret.txt", out)
    for query in [
        f"filename={rel}",
        "filename=../../outside/secret.txt",
        f"filename={secret / 'secret.txt'}",
        "filename=secret.txt&subfolder=../../outside",
        f"filename=secret.txt&subfolder={secret}",
        "filename=link.txt",
        "filename=secret.txt&subfolder=linkdir",
        "filename=..%2F..%2Foutside%2Fsecret.txt",
        "filename=%2e%2e/%2e%2e/outside/secret.txt",
        "filename=%252e%252e%252f%252e%252e%252foutside%252fsecret.txt",
        "filename=..%252f..%252foutside%252fsecret.txt",
        "filename=../../outside/secret.txt [output]",
        "filename=secret.txt&type=../outside",
        "filename=secret.txt%00.png",
    ]:
        no_secret(requests.get(f"{server.url}/api/view?{query}", timeout=10))
    assert requests.get(f"{server.url}/api/view?filename=link.txt").status_code == 403


# -- uploads ------------------------------------------------------------------------------------------
def test_upload_dedup_rename_overwrite_subfolder(server):
    red, blue = png_bytes((255, 0, 0, 255)), png_bytes((0, 0, 255, 255))
    r = upload(server, red)
    assert r.status_code == 200 and r.json() == {"name": "pic.png", "subfolder": "", "type": "input"}
    assert upload(server, red).json()["name"] == "pic.png"  # same bytes, same name: the same file
    assert upload(server, blue).json()["name"] == "pic (1).png"
    assert upload(server, blue).json()["name"] == "pic (1).png"
    green = png_bytes((0, 255, 0, 255))
    assert upload(server, green).json()["name"] == "pic (2).png"
    assert upload(server, green, overwrite="true").json()["name"] == "pic.png"
    inp = server.ctx.folders.input_dir
    assert (inp / "pic.png").read_bytes() == green and (inp / "pic (1).png").read_bytes() == blue
    r = upload(server, red, subfolder="pasted", type="temp")
    assert r.json() == {"name": "pic.png", "subfolder": "pasted", "type": "temp"}
    assert (server.ctx.folders.temp_dir / "pasted" / "pic.png").read_bytes() == red
    assert not list((server.ctx.folders.temp_dir / ".uploads").iterdir())  # no staging files left


def test_upload_errors_and_traversal(server, secret):
    inp = server.ctx.folders.input_dir
    os.symlink(secret, inp / "linkdir")
    before = sorted(p.name for p in secret.iterdir())
    for fields, name, status in [
        ({"subfolder": "../../outside"}, "pic.png", 403),
        ({"subfolder": str(secret)}, "pic.png", 403),
        ({"subfolder": "linkdir"}, "pic.png", 403),
        ({"subfolder": "%2e%2e/%2e%2e/outside"}, "pic.png", 201),
        ({}, "../evil.png", 400),
        ({}, "..", 400),
        ({"type": "models"}, "pic.png", 400),
        ({"type": "../outside"}, "pic.png", 400),
    ]:
        r = upload(server, png_bytes(), name=name, **fields)
        if status == 201:  # an encoded name is a literal folder name, inside the root
            assert r.status_code == 200 and (inp / "%2e%2e" / "%2e%2e" / "outside" / "pic.png").exists()
            continue
        assert r.status_code == status, (fields, name, r.text)
        assert "error" in r.json()
    assert sorted(p.name for p in secret.iterdir()) == before
    r = requests.post(server.url + "/api/upload/image", data={"type": "input"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_upload"
    r = requests.post(server.url + "/api/upload/image", files={"other": ("a.png", b"x")})
    assert r.status_code == 400 and "image" in r.json()["error"]["message"]


def test_upload_size_limit(make_server):
    server = make_server(max_upload_mb=1)
    big = os.urandom(int(1.5 * 1024 * 1024))
    r = upload(server, big, name="big.png")
    assert r.status_code == 413
    body = r.json()
    assert body["error"]["type"] == "too_large" and body["error"]["extra_info"]["max_upload_size"] == 1024 * 1024
    assert not (server.ctx.folders.input_dir / "big.png").exists()
    staging = server.ctx.folders.temp_dir / ".uploads"
    assert not staging.exists() or not list(staging.iterdir())
    # A chunked upload (no Content-Length) is cut off while streaming.
    def chunks():
        boundary = b"--XyZ\r\n"
        yield boundary + b'Content-Disposition: form-data; name="image"; filename="big2.png"\r\n\r\n'
        for _ in range(24):
            yield os.urandom(64 * 1024)
        yield b"\r\n--XyZ--\r\n"
    r = requests.post(server.url + "/api/upload/image", data=chunks(),
                      headers={"Content-Type": "multipart/form-data; boundary=XyZ"})
    assert r.status_code == 413 and r.json()["error"]["type"] == "too_large"
    assert not (server.ctx.folders.input_dir / "big2.png").exists()
    # Other bodies have the same limit.
    r = server.post("/api/userdata/big.json", data=big)
    assert r.status_code == 413 and r.json()["error"]["type"] == "too_large"
    assert upload(server, png_bytes(), name="small.png").status_code == 200


def test_upload_mask_keeps_pixels_and_text(server):
    original = png_bytes((200, 100, 50, 255), size=(16, 16), text={"workflow": '{"nodes": []}'})
    upload(server, original, name="photo.png")
    mask = io.BytesIO()
    m = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    m.putpixel((0, 0), (0, 0, 0, 255))
    m.save(mask, format="PNG")
    ref = json.dumps({"filename": "photo.png", "subfolder": "", "type": "input"})
    r = upload(server, mask.getvalue(), name="clipspace-mask.png", path="/api/upload/mask", original_ref=ref,
               subfolder="clipspace")
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "clipspace-mask.png", "subfolder": "clipspace", "type": "input"}
    merged = Image.open(server.ctx.folders.input_dir / "clipspace" / "clipspace-mask.png")
    assert merged.getpixel((0, 0)) == (200, 100, 50, 255) and merged.getpixel((5, 5)) == (200, 100, 50, 0)
    assert merged.text["workflow"] == '{"nodes": []}'
    for bad_ref, status in [("not json", 400), (json.dumps({"filename": "nope.png", "type": "input"}), 404),
                            (json.dumps({"filename": "../../outside/secret.txt", "type": "input"}), 403),
                            (json.dumps({"filename": "photo.png", "type": "input", "subfolder": "../.."}), 403)]:
        r = upload(server, mask.getvalue(), name="m.png", path="/api/upload/mask", original_ref=bad_ref)
        assert r.status_code == status, (bad_ref, r.text)


# -- /userdata ---------------------------------------------------------------------------------------
def test_userdata_traversal(server, secret):
    user = server.ctx.user_root / "default"
    user.mkdir(parents=True, exist_ok=True)
    os.symlink(secret / "secret.txt", user / "link.txt")
    os.symlink(secret, user / "linkdir")
    (user / "workflows").mkdir(exist_ok=True)
    for path in ["/api/userdata/..%2F..%2F..%2Foutside%2Fsecret.txt", "/api/userdata/%2e%2e%2f%2e%2e%2fsecret",
                 "/api/userdata/%2Fetc%2Fpasswd", f"/api/userdata/{str(secret / 'secret.txt').replace('/', '%2F')}",
                 "/api/userdata/link.txt", "/api/userdata/linkdir%2Fsecret.txt",
                 "/api/userdata/%252e%252e%252f%252e%252e%252f%252e%252e%252foutside%252fsecret.txt",
                 "/api/userdata?dir=..%2F..", "/api/userdata?dir=linkdir", f"/api/userdata?dir={secret}",
                 "/api/v2/userdata?path=..%2F..", "/api/v2/userdata?path=linkdir"]:
        no_secret(requests.get(server.url + path, timeout=10))
    listing = server.get("/api/userdata?dir=.&recurse=true").json()
    assert "link.txt" not in listing and not any("secret" in p for p in listing)
    assert "secret.txt" not in json.dumps(server.get("/api/v2/userdata").json())
    for path in ["/api/userdata/..%2Fescape.json", "/api/userdata/linkdir%2Fplanted.json"]:
        r = requests.post(server.url + path, data=b"{}")
        assert r.status_code == 403, path
    server.post("/api/userdata/workflows%2Fa.json", data=b"{}")
    r = server.post("/api/userdata/workflows%2Fa.json/move/..%2F..%2F..%2Foutside%2Fmoved.json")
    assert r.status_code == 403
    assert requests.delete(server.url + "/api/userdata/link.txt").status_code == 403
    assert (secret / "secret.txt").read_bytes() == SECRET
    assert sorted(p.name for p in secret.iterdir()) == ["secret.txt"]


# -- the token ----------------------------------------------------------------------------------------
def test_token_http_cookie_and_websocket(make_server):
    server = make_server(auth_token="s3cret-token")
    r = server.get("/api/prompt")
    assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert server.get("/api/prompt", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = {"Authorization": "Bearer s3cret-token"}
    assert server.get("/api/prompt", headers=ok).status_code == 200
    assert server.post("/api/prompt", json={"prompt": image_graph()}).status_code == 401
    assert server.post("/api/prompt", json={"prompt": image_graph()}, headers=ok).status_code == 200
    assert server.get("/api/view?filename=x.png").status_code == 401
    assert server.get("/api/prompt?token=s3cret-token").status_code == 401  # query tokens only for pages and /ws
    page = server.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 401 and "token" in page.text
    # A browser opens /?token=... once: it gets a cookie and the token leaves the address bar.
    browser = requests.Session()
    r = browser.get(server.url + "/?token=s3cret-token&x=1", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/?x=1"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert browser.get(server.url + "/api/object_info/EmptyImage").status_code == 200
    assert requests.get(server.url + "/?token=wrong", allow_redirects=False).status_code == 401
    # The WebSocket: refused without, accepted with the query token, the header or the cookie.
    refused = WSClient(server.ws_url)
    assert isinstance(refused.error, aiohttp.WSServerHandshakeError) and refused.error.status == 401
    for ws in (WSClient(server.ws_url, token="s3cret-token"), WSClient(server.ws_url, headers=ok),
               WSClient(server.ws_url, headers={"Cookie": cookie.split(";")[0]})):
        assert ws.error is None and ws.sid
        ws.close()
    wrong = WSClient(server.ws_url, token="nope")
    assert wrong.error is not None and wrong.error.status == 401


# -- Origin / Host / CORS -------------------------------------------------------------------------
def test_cross_origin_requests_are_refused(server):
    evil = {"Origin": "http://evil.example"}
    r = server.post("/api/prompt", json={"prompt": image_graph()}, headers=evil)
    assert r.status_code == 403 and r.json()["error"]["type"] == "forbidden_origin"
    assert server.get("/api/queue").json()["queue_pending"] == []
    for origin in ("null", "http://127.0.0.1:1", f"http://localhost.evil.example:{server.config.port}",
                   "garbage"):
        assert server.get("/api/object_info/EmptyImage", headers={"Origin": origin}).status_code == 403, origin
    same = {"Origin": f"http://127.0.0.1:{server.config.port}"}
    assert server.get("/api/object_info/EmptyImage", headers=same).status_code == 200
    localhost = {"Origin": f"http://localhost:{server.config.port}", "Host": f"localhost:{server.config.port}"}
    assert server.get("/api/object_info/EmptyImage", headers=localhost).status_code == 200
    ws = WSClient(server.ws_url, headers=evil)
    assert isinstance(ws.error, aiohttp.WSServerHandshakeError) and ws.error.status == 403
    # DNS rebinding: a loopback server answers only to loopback Host names.
    r = server.get("/api/object_info/EmptyImage", headers={"Host": f"evil.example:{server.config.port}"})
    assert r.status_code == 403 and r.json()["error"]["type"] == "forbidden_host"
    assert "Access-Control-Allow-Origin" not in server.get("/api/prompt").headers


def test_cors_when_enabled(make_server):
    server = make_server(cors_origin="https://app.example")
    allowed = {"Origin": "https://app.example"}
    r = server.get("/api/prompt", headers=allowed)
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    pre = requests.options(server.url + "/api/prompt", headers={**allowed, "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 200 and "POST" in pre.headers["Access-Control-Allow-Methods"]
    assert server.get("/api/prompt", headers={"Origin": "https://other.example"}).status_code == 403

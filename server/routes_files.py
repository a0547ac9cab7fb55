"""Files in and out: /view, /upload/image, /upload/mask, /view_metadata/{folder}.

Every path from a request goes through `nodes.paths.safe_join` (symlinks resolved) and must stay in
its root. Uploads stream to a temp file with a size limit, then land without clobbering anything:
the same bytes under the same name are the same file, another file under that name gets `name (1).ext`.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import mimetypes
import os
import struct
import uuid
from pathlib import Path

from aiohttp import web

from nodes import paths
from server.context import ServerContext
from server.http_util import ApiError, Routes, content_disposition

# Types a browser would render or run as part of our origin: always served as a download.
DANGEROUS_TYPES = {"text/html", "application/xhtml+xml", "text/javascript", "application/javascript",
                   "application/ecmascript", "text/css", "image/svg+xml", "text/xml", "application/xml",
                   "application/x-javascript", "text/ecmascript", "application/wasm"}
MAX_FIELD_BYTES = 64 * 1024
CHUNK = 256 * 1024


def data_root(kind: str) -> Path:
    """The input, output or temp folder a request names; 400 for any other name."""
    try:
        return paths.directory_for_type(kind)
    except paths.UnsafePath as e:
        raise ApiError(400, str(e), "invalid_type") from None


def resolve(kind: str, subfolder: str, filename: str) -> Path:
    """A data file from request parts; 400 for an unknown folder type, 403 for a path that leaves it."""
    root = data_root(kind)
    try:
        return paths.safe_join(root, subfolder or "", filename)
    except paths.UnsafePath as e:
        raise ApiError(403, f"refused: {e}", "forbidden_path") from None


def place_file(tmp: Path, root_kind: str, subfolder: str, filename: str, digest: str, overwrite: bool) -> str:
    """Move an uploaded temp file into place; returns the name it ended up with."""
    target = resolve(root_kind, subfolder, filename)
    target.parent.mkdir(parents=True, exist_ok=True)
    if overwrite:
        os.replace(tmp, target)
        return filename
    stem, ext = os.path.splitext(filename)
    size = tmp.stat().st_size
    name, i = filename, 1
    try:
        while True:
            if target.exists():
                if target.is_file() and target.stat().st_size == size and paths.file_sha256(target) == digest:
                    return name  # this very file is already here
            else:
                try:
                    os.link(tmp, target)  # atomic and never replaces a file that appeared meanwhile
                    return name
                except FileExistsError:
                    continue
            name = f"{stem} ({i}){ext}"
            target = resolve(root_kind, subfolder, name)
            i += 1
    finally:
        tmp.unlink(missing_ok=True)


def _check_name(filename: str) -> str:
    if not filename or filename in (".", "..") or "/" in filename or "\\" in filename or "\x00" in filename:
        raise ApiError(400, f"invalid file name {filename!r}", "invalid_filename")
    return filename


class Upload:
    """The multipart fields of an upload, with the file part already on disk."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.tmp: Path | None = None
        self.filename: str | None = None
        self.digest = ""

    def discard(self) -> None:
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)


async def read_upload(request: web.Request, file_field: str, limit: int) -> Upload:
    if not request.content_type.startswith("multipart/"):
        raise ApiError(400, "uploads must be multipart/form-data", "invalid_upload")
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise ApiError(413, f"the upload is larger than the limit ({limit / 1024**2:g} MB)", "too_large",
                       extra_info={"max_upload_size": limit})
    upload = Upload()
    staging = paths.folders().temp_dir / ".uploads"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if part.name == file_field and part.filename is not None and upload.tmp is None:
                upload.filename = part.filename
                upload.tmp = staging / uuid.uuid4().hex
                h, size = hashlib.sha256(), 0
                with open(upload.tmp, "wb") as f:
                    while chunk := await part.read_chunk(CHUNK):
                        size += len(chunk)
                        if size > limit:
                            raise ApiError(413, f"the upload is larger than the limit ({limit / 1024**2:g} MB)",
                                           "too_large", extra_info={"max_upload_size": limit})
                        h.update(chunk)
                        f.write(chunk)
                upload.digest = h.hexdigest()
            elif part.name:
                data = await part.read(decode=True)
                if len(data) > MAX_FIELD_BYTES:
                    raise ApiError(400, f"form field {part.name!r} is too long", "invalid_upload")
                upload.fields[part.name] = data.decode("utf-8", "replace")
    except ApiError:
        upload.discard()
        raise
    except (ValueError, AssertionError) as e:
        upload.discard()
        raise ApiError(400, f"malformed multipart body: {e}", "invalid_upload") from None
    if upload.tmp is None:
        raise ApiError(400, f"no file in form field {file_field!r}", "invalid_upload")
    return upload


def _merge_mask(original: Path, mask_file: Path, out: Path) -> None:
    from PIL import Image

    from nodes.image_files import save_png

    with Image.open(original) as orig:
        text = dict(getattr(orig, "text", {}))
        merged = orig.convert("RGBA")
    with Image.open(mask_file) as mask:
        alpha = mask.convert("RGBA").getchannel("A")
    if alpha.size != merged.size:
        alpha = alpha.resize(merged.size)
    merged.putalpha(alpha)
    save_png(merged, out, text)


def _render_view(path: Path, channel: str | None, preview: str | None) -> tuple[bytes, str]:
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError) as e:
        raise ApiError(400, f"{path.name} is not an image this server can convert: {e}", "not_an_image") from None
    if channel == "rgb":
        img = img.convert("RGB")
    elif channel == "a":
        alpha = img.convert("RGBA").getchannel("A")
        img = Image.new("RGBA", img.size)
        img.putalpha(alpha)
    buf = io.BytesIO()
    if preview:
        fmt, _, quality = preview.partition(";")
        fmt = fmt.strip().lower()
        if fmt not in ("webp", "jpeg", "jpg", "png"):
            raise ApiError(400, f"preview format must be webp, jpeg or png, got {fmt!r}")
        try:
            q = int(quality) if quality else 90
        except ValueError:
            raise ApiError(400, f"preview quality must be an integer, got {quality!r}") from None
        q = max(1, min(q, 100))
        if fmt in ("jpeg", "jpg"):
            img.convert("RGB").save(buf, format="JPEG", quality=q)
            return buf.getvalue(), "image/jpeg"
        if fmt == "webp":
            img.save(buf, format="WEBP", quality=q)
            return buf.getvalue(), "image/webp"
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue(), "image/png"


def add_routes(r: Routes, ctx: ServerContext) -> None:
    limit = ctx.config.max_upload_bytes

    @r.get("/view")
    async def view(request: web.Request) -> web.StreamResponse:
        q = request.query
        filename = q.get("filename")
        if not filename:
            raise ApiError(400, "give the file as ?filename=", "missing_filename")
        filename, kind = paths.split_annotation(filename, q.get("type") or "output")
        path = resolve(kind, q.get("subfolder", ""), filename)
        if not path.is_file():
            raise ApiError(404, f"no file {filename!r} in {kind}", "not_found")
        channel, preview = q.get("channel"), q.get("preview")
        if channel not in (None, "", "rgba", "rgb", "a"):
            raise ApiError(400, f"channel must be rgba, rgb or a, got {channel!r}")
        headers = {"Content-Disposition": content_disposition(path.name), "X-Content-Type-Options": "nosniff"}
        if channel in ("rgb", "a") or preview:
            data, mime = await asyncio.to_thread(_render_view, path, channel, preview)
            return web.Response(body=data, content_type=mime, headers=headers)
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if mime in DANGEROUS_TYPES or mime.startswith("text/"):
            mime = "application/octet-stream"
            headers["Content-Disposition"] = content_disposition(path.name, attachment=True)
        headers["Content-Type"] = mime
        return web.FileResponse(path, headers=headers)

    async def upload(request: web.Request, mask: bool) -> web.Response:
        up = await read_upload(request, "image", limit)
        try:
            filename = _check_name(up.filename or "")
            kind = up.fields.get("type") or "input"
            subfolder = up.fields.get("subfolder", "")
            overwrite = up.fields.get("overwrite", "").lower() in ("true", "1")
            resolve(kind, subfolder, filename)  # refuse before touching anything
            if mask:
                try:
                    ref = json.loads(up.fields.get("original_ref") or "")
                except json.JSONDecodeError:
                    raise ApiError(400, "original_ref must be JSON {filename, subfolder, type}", "invalid_upload") \
                        from None
                if not isinstance(ref, dict) or not isinstance(ref.get("filename"), str):
                    raise ApiError(400, "original_ref must be JSON {filename, subfolder, type}", "invalid_upload")
                ref_name, ref_kind = paths.split_annotation(ref["filename"], ref.get("type") or "output")
                original = resolve(ref_kind, str(ref.get("subfolder") or ""), ref_name)
                if not original.is_file():
                    raise ApiError(404, f"the original image {ref_name!r} was not found", "not_found")
                merged = up.tmp.with_suffix(".png")
                try:
                    await asyncio.to_thread(_merge_mask, original, up.tmp, merged)
                except OSError as e:
                    merged.unlink(missing_ok=True)
                    raise ApiError(400, f"could not apply the mask: {e}", "invalid_upload") from None
                up.tmp.unlink(missing_ok=True)
                up.tmp, up.digest = merged, await asyncio.to_thread(paths.file_sha256, merged)
            name = await asyncio.to_thread(place_file, up.tmp, kind, subfolder, filename, up.digest, overwrite)
        finally:
            up.discard()
        return web.json_response({"name": name, "subfolder": subfolder, "type": kind})

    @r.post("/upload/image")
    async def upload_image(request: web.Request) -> web.Response:
        return await upload(request, mask=False)

    @r.post("/upload/mask")
    async def upload_mask(request: web.Request) -> web.Response:
        return await upload(request, mask=True)

    @r.get("/view_metadata/{folder_name}")
    async def view_metadata(request: web.Request) -> web.Response:
        folder = request.match_info["folder_name"]
        filename = request.query.get("filename")
        if not filename:
            raise ApiError(400, "give the model as ?filename=", "missing_filename")
        if not ctx.folders.is_model_folder(folder):
            raise ApiError(404, f"unknown model folder {folder!r}", "not_found")
        if not filename.endswith(".safetensors"):
            raise ApiError(400, "metadata is only read from .safetensors files", "unsupported")
        path = paths.get_full_path(folder, filename)
        if path is None:
            raise ApiError(404, f"no model {filename!r} in {folder}", "not_found")
        meta = await asyncio.to_thread(read_safetensors_metadata, path)
        if meta is None:
            raise ApiError(404, f"{filename} has no metadata", "not_found")
        return web.json_response(meta)


def read_safetensors_metadata(path: Path) -> dict | None:
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            return None
        n = struct.unpack("<Q", head)[0]
        if n > 100 * 1024 * 1024:
            return None
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else None

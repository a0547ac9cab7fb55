"""Binary WebSocket frames for live previews (dialect 2.5): type 1 and type 4 with metadata.

Every frame starts with a big-endian uint32 event type. Type 1 is `[1][image type: 1=JPEG, 2=PNG][bytes]`;
type 4 is `[4][len(meta json)][meta json][bytes]` for clients that negotiated supports_preview_metadata.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4
IMAGE_TYPES = {"JPEG": 1, "PNG": 2}
MIME = {"JPEG": "image/jpeg", "PNG": "image/png"}
DEFAULT_MAX_SIZE = 512


def encode_image(preview: Any, max_size: int = DEFAULT_MAX_SIZE) -> tuple[str, bytes] | None:
    """A PIL image, or `(format, image or its encoded bytes, max_size)`, as (format, encoded bytes); None if it
    is neither."""
    from PIL import Image, ImageOps

    fmt = "JPEG"
    image = preview
    if isinstance(preview, (tuple, list)) and len(preview) >= 2:
        fmt = str(preview[0]).upper()
        image = preview[1]
        if len(preview) > 2 and preview[2]:
            max_size = int(preview[2])
    if fmt in IMAGE_TYPES and isinstance(image, bytes):  # encoded already (by a remote worker)
        return fmt, image
    if fmt not in IMAGE_TYPES or not isinstance(image, Image.Image):
        return None
    if image.width > max_size or image.height > max_size:
        image = ImageOps.contain(image, (max_size, max_size))
    buf = io.BytesIO()
    if fmt == "JPEG":
        if image.mode != "RGB":
            image = image.convert("RGB")
        image.save(buf, format="JPEG", quality=90)
    else:
        image.save(buf, format="PNG", compress_level=1)
    return fmt, buf.getvalue()


def frame_plain(fmt: str, data: bytes) -> bytes:
    return struct.pack(">II", PREVIEW_IMAGE, IMAGE_TYPES[fmt]) + data


def frame_with_metadata(fmt: str, data: bytes, meta: dict) -> bytes:
    meta_bytes = json.dumps({**meta, "image_type": MIME[fmt]}).encode()
    return struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(meta_bytes)) + meta_bytes + data


def parse_frame(frame: bytes) -> tuple[int, dict | None, bytes]:
    """(event type, metadata or None, image bytes); the inverse of the two builders (tests, bench)."""
    event_type = struct.unpack(">I", frame[:4])[0]
    if event_type == PREVIEW_IMAGE_WITH_METADATA:
        n = struct.unpack(">I", frame[4:8])[0]
        return event_type, json.loads(frame[8:8 + n]), frame[8 + n:]
    return event_type, None, frame[8:]

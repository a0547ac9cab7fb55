"""Image files <-> the IMAGE/MASK tensors nodes pass around, and PNG text metadata.

IMAGE is float32 [B,H,W,C] in 0..1 and MASK float32 [B,H,W]; a mask read from a file is
`1 - alpha` (ComfyUI's convention: 1 marks what to repaint). PNG text chunks carry the workflow
(`prompt`, `workflow`), so `read_png_text` reads every form a tool may write: tEXt, zTXt, iTXt
(compressed or not) and ComfyUI's own `comf` chunk.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

log = logging.getLogger("loom.nodes.image_files")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_CHUNKS = {b"tEXt", b"zTXt", b"iTXt", b"comf"}
# Formats whose extra frames are not an animation (MPO: the second eye of a stereo JPEG).
SINGLE_FRAME_FORMATS = {"MPO"}
EMPTY_MASK_SIZE = 64


class ImageFileError(ValueError):
    """A file that cannot be read as an image, with the file named in the message."""


# -- tensors <-> PIL ----------------------------------------------------------------------------------
def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """One image, [H,W,C] or [1,H,W,C] with C in (1, 3, 4), to an 8-bit PIL image (L, RGB or RGBA)."""
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(f"expected a single image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"an image must be [H,W,C] with 1, 3 or 4 channels, got shape {list(image.shape)}")
    array = np.clip(image.detach().to("cpu", torch.float32).numpy() * 255.0, 0, 255).astype(np.uint8)
    if array.shape[-1] == 1:
        return Image.fromarray(array[..., 0], mode="L")
    return Image.fromarray(array, mode="RGB" if array.shape[-1] == 3 else "RGBA")


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """A PIL image to IMAGE [1,H,W,3] (alpha, if any, is dropped: see `frame_to_tensors`)."""
    rgb, _alpha = frame_to_tensors(img)
    return rgb[None]


def _high_bit_depth_gray(frame: Image.Image) -> np.ndarray | None:
    """16/32-bit grayscale as float 0..1, keeping the precision an 8-bit convert would lose."""
    if frame.mode.startswith("I;16"):
        return np.asarray(frame, dtype=np.float32) / 65535.0
    if frame.mode == "I":
        array = np.asarray(frame, dtype=np.float64)
        scale = 65535.0 if array.max(initial=0) > 255 else 255.0
        return np.clip(array / scale, 0, 1).astype(np.float32)
    if frame.mode == "F":
        array = np.asarray(frame, dtype=np.float32)
        return np.clip(array / 255.0 if array.max(initial=0) > 1 else array, 0, 1)
    return None


def frame_to_tensors(frame: Image.Image) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One PIL frame to (RGB [H,W,3] float32 0..1, alpha [H,W] float32 0..1 or None)."""
    gray = _high_bit_depth_gray(frame)
    if gray is not None:
        return torch.from_numpy(np.repeat(gray[..., None], 3, axis=-1)), None
    alpha = None
    if "A" in frame.getbands():
        alpha = frame.getchannel("A")
    elif "transparency" in frame.info:  # paletted / tRNS transparency
        alpha = frame.convert("RGBA").getchannel("A")
    rgb = np.asarray(frame.convert("RGB"), dtype=np.float32) / 255.0
    alpha_t = torch.from_numpy(np.asarray(alpha, dtype=np.float32) / 255.0) if alpha is not None else None
    return torch.from_numpy(rgb.copy()), alpha_t


def _open(path: str | os.PathLike) -> Image.Image:
    try:
        return Image.open(path)
    except FileNotFoundError:
        raise ImageFileError(f"image file not found: {path}") from None
    except (UnidentifiedImageError, OSError) as e:
        raise ImageFileError(f"cannot read {Path(path).name} as an image: {e}") from e


def load_image_file(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Read every frame of an image file: (IMAGE [B,H,W,3], MASK [B,H,W] = 1 - alpha).

    EXIF orientation is applied. Frames whose size differs from the first are skipped (as ComfyUI
    does). Without any alpha the mask is 64x64 zeros per frame, ComfyUI's placeholder.
    """
    img = _open(path)
    images: list[torch.Tensor] = []
    alphas: list[torch.Tensor | None] = []
    try:
        for frame in ImageSequence.Iterator(img):
            frame = ImageOps.exif_transpose(frame)
            rgb, alpha = frame_to_tensors(frame)
            if images and rgb.shape != images[0].shape:
                continue
            images.append(rgb)
            alphas.append(alpha)
            if img.format in SINGLE_FRAME_FORMATS:
                break
    except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt data inside the file
        if not images:
            raise ImageFileError(f"cannot decode {Path(path).name}: {e}") from e
        log.warning("%s: stopped after %d frame(s): %s", path, len(images), e)
    finally:
        img.close()
    image = torch.stack(images)
    if all(a is None for a in alphas):
        mask = torch.zeros((len(images), EMPTY_MASK_SIZE, EMPTY_MASK_SIZE), dtype=torch.float32)
    else:
        h, w = image.shape[1:3]
        mask = torch.stack([1.0 - a if a is not None else torch.zeros((h, w)) for a in alphas])
    return image, mask


def load_image_channel(path: str | os.PathLike, channel: str) -> torch.Tensor:
    """One channel of the first frame as MASK [1,H,W]: R/G/B as stored, A as 1 - alpha.

    A file without alpha counts as opaque (mask of zeros at full size), as ComfyUI's LoadImageMask.
    """
    img = _open(path)
    try:
        frame = ImageOps.exif_transpose(img)
        rgb, alpha = frame_to_tensors(frame)
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageFileError(f"cannot decode {Path(path).name}: {e}") from e
    finally:
        img.close()
    c = channel[:1].upper()
    if c == "A":
        return (1.0 - alpha if alpha is not None else torch.zeros(rgb.shape[:2]))[None]
    index = {"R": 0, "G": 1, "B": 2}.get(c)
    if index is None:
        raise ValueError(f"unknown channel {channel!r} (expected alpha, red, green or blue)")
    return rgb[..., index].clone()[None]


# -- PNG writing -------------------------------------------------------------------------------------
def save_png(image: torch.Tensor | Image.Image, path: str | os.PathLike, text_chunks: dict[str, str] | None = None,
             compress_level: int = 4) -> Path:
    """Write a PNG with text chunks (tEXt, or iTXt where the text is not latin-1).

    The file appears atomically: it is written under a hidden name and renamed, so a reader
    polling the folder never sees half a file.
    """
    pil = image if isinstance(image, Image.Image) else tensor_to_pil(image)
    info = PngInfo()
    for key, value in (text_chunks or {}).items():
        info.add_text(str(key), str(value))
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        pil.save(tmp, format="PNG", pnginfo=info, compress_level=compress_level)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# -- PNG text reading --------------------------------------------------------------------------------
def _decode_text(data: bytes) -> str:
    # tEXt is latin-1 by the spec, but many tools (and ComfyUI's frontend) use UTF-8.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _parse_text_chunk(kind: bytes, data: bytes) -> tuple[str, str]:
    keyword, sep, rest = data.partition(b"\x00")
    if not sep:
        raise ValueError("no NUL after the keyword")
    key = keyword.decode("latin-1")
    if kind in (b"tEXt", b"comf"):
        return key, _decode_text(rest)
    if kind == b"zTXt":
        return key, _decode_text(zlib.decompress(rest[1:]))  # rest[0] is the method, always 0 (zlib)
    # iTXt: flag, method, language\0, translated keyword\0, text (UTF-8)
    compressed = rest[0] == 1
    _language, _, rest = rest[2:].partition(b"\x00")
    _translated, _, text = rest.partition(b"\x00")
    return key, (zlib.decompress(text) if compressed else text).decode("utf-8", errors="replace")


def _read_chunks(stream: BinaryIO, name: str) -> dict[str, str]:
    if stream.read(8) != PNG_SIGNATURE:
        raise ValueError(f"{name} is not a PNG file (bad signature)")
    texts: dict[str, str] = {}
    while True:
        header = stream.read(8)
        if len(header) < 8:
            break  # truncated file: keep what was read
        length, kind = struct.unpack(">I4s", header)
        if kind in TEXT_CHUNKS:
            data = stream.read(length)
            if len(data) < length:
                break
            try:
                key, value = _parse_text_chunk(kind, data)
                texts[key] = value  # a later chunk with the same key wins, as in ComfyUI's frontend
            except (ValueError, IndexError, zlib.error) as e:
                log.warning("%s: skipped a corrupt %s chunk: %s", name, kind.decode("latin-1"), e)
            stream.seek(4, io.SEEK_CUR)  # CRC
        elif kind == b"IEND":
            break
        else:
            stream.seek(length + 4, io.SEEK_CUR)
    return texts


def read_png_text(path_or_bytes: str | os.PathLike | bytes | bytearray) -> dict[str, str]:
    """All text chunks of a PNG as {keyword: text}: tEXt, zTXt, iTXt (compressed too) and `comf`.

    Raises ValueError when the data is not a PNG; a truncated file yields the chunks before the cut.
    """
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return _read_chunks(io.BytesIO(bytes(path_or_bytes)), "data")
    with open(path_or_bytes, "rb") as f:
        return _read_chunks(f, Path(path_or_bytes).name)

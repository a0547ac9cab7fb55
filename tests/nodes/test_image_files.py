"""nodes.image_files: decoding every kind of image file and PNG text chunks both ways."""

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from nodes.image_files import (
    ImageFileError,
    load_image_channel,
    load_image_file,
    pil_to_tensor,
    read_png_text,
    save_png,
    tensor_to_pil,
)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# -- tensors <-> PIL ------------------------------------------------------------------------------------
def test_tensor_pil_round_trip_keeps_8bit_values():
    values = torch.tensor([[[0.0, 0.5, 1.0], [1.0, 0.25, 0.0]]])  # [1,2,3]
    pil = tensor_to_pil(values)
    assert pil.mode == "RGB" and pil.size == (2, 1)
    assert np.asarray(pil).tolist() == [[[0, 127, 255], [255, 63, 0]]]
    back = pil_to_tensor(pil)
    assert back.shape == (1, 1, 2, 3) and back.dtype == torch.float32
    assert torch.allclose(back, values, atol=1 / 255)


def test_tensor_to_pil_modes_and_clipping():
    assert tensor_to_pil(torch.full((2, 2, 1), 2.0)).mode == "L"
    assert np.asarray(tensor_to_pil(torch.full((2, 2, 1), 2.0))).max() == 255  # clipped, not wrapped
    assert tensor_to_pil(torch.zeros((2, 2, 4))).mode == "RGBA"
    with pytest.raises(ValueError, match="1, 3 or 4 channels"):
        tensor_to_pil(torch.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="batch of 2"):
        tensor_to_pil(torch.zeros((2, 2, 2, 3)))


# -- loading ----------------------------------------------------------------------------------------------
def test_load_rgba_gives_mask_one_minus_alpha(tmp_path):
    rgba = np.zeros((3, 5, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 0      # fully transparent pixel -> mask 1
    rgba[1, 1, 3] = 51     # 20% opaque -> mask 0.8
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    image, mask = load_image_file(tmp_path / "a.png")
    assert image.shape == (1, 3, 5, 3) and mask.shape == (1, 3, 5)
    assert torch.all(image[..., 0] == 1.0) and torch.all(image[..., 1:] == 0.0)
    assert mask[0, 0, 0] == 1.0 and mask[0, 2, 4] == 0.0
    assert mask[0, 1, 1].item() == pytest.approx(0.8)


def test_load_rgb_without_alpha_gives_64x64_zero_mask(tmp_path):
    Image.new("RGB", (7, 3), (10, 20, 30)).save(tmp_path / "c.jpg", quality=100)
    image, mask = load_image_file(tmp_path / "c.jpg")
    assert image.shape == (1, 3, 7, 3)
    assert mask.shape == (1, 64, 64) and torch.all(mask == 0)
    assert image[0, 1, 3].tolist() == pytest.approx([10 / 255, 20 / 255, 30 / 255], abs=3 / 255)


def test_load_grayscale_and_la(tmp_path):
    Image.new("L", (4, 4), 128).save(tmp_path / "l.png")
    image, mask = load_image_file(tmp_path / "l.png")
    assert image.shape == (1, 4, 4, 3) and torch.allclose(image, torch.full_like(image, 128 / 255))
    assert mask.shape == (1, 64, 64)
    Image.new("LA", (4, 4), (200, 0)).save(tmp_path / "la.png")
    image, mask = load_image_file(tmp_path / "la.png")
    assert torch.allclose(image, torch.full_like(image, 200 / 255))
    assert mask.shape == (1, 4, 4) and torch.all(mask == 1.0)


def test_load_paletted_with_transparency(tmp_path):
    img = Image.new("P", (4, 2), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putpixel((3, 1), 1)
    img.save(tmp_path / "p.png", transparency=0)  # palette index 0 (red) is transparent
    image, mask = load_image_file(tmp_path / "p.png")
    assert image.shape == (1, 2, 4, 3)
    assert image[0, 1, 3].tolist() == [0.0, 0.0, 1.0]
    assert mask[0, 0, 0] == 1.0 and mask[0, 1, 3] == 0.0


def test_load_16bit_grayscale_keeps_precision(tmp_path):
    values = np.array([[0, 257, 1000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    image, _ = load_image_file(tmp_path / "g16.png")
    assert image.shape == (1, 1, 4, 3)
    assert image[0, 0, :, 0].tolist() == pytest.approx((values[0] / 65535).tolist(), abs=1e-6)
    assert image[0, 0, 2, 0] != image[0, 0, 1, 0]  # 8-bit conversion would have merged these


def test_load_applies_exif_rotation(tmp_path):
    img = Image.new("RGB", (4, 2), (0, 0, 0))
    img.putpixel((0, 0), (255, 255, 255))
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "r.png", exif=exif)
    image, _ = load_image_file(tmp_path / "r.png")
    assert image.shape == (1, 4, 2, 3)  # portrait after rotation
    assert image[0, 0, 1].tolist() == [1.0, 1.0, 1.0]  # top-left went to top-right


def test_load_multiframe_gif_and_skips_other_sizes(tmp_path):
    frames = [Image.new("RGB", (6, 4), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, disposal=2)
    image, mask = load_image_file(tmp_path / "anim.gif")
    assert image.shape == (3, 4, 6, 3) and mask.shape[0] == 3
    assert image[1, 0, 0].tolist() == [0.0, 1.0, 0.0]
    # A TIFF with pages of different sizes keeps only pages of the first size.
    pages = [Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (8, 8)), Image.new("RGB", (4, 4), (0, 0, 255))]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    image, _ = load_image_file(tmp_path / "pages.tif")
    assert image.shape == (2, 4, 4, 3) and image[1, 0, 0].tolist() == [0.0, 0.0, 1.0]


def test_load_bad_files_name_the_problem(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"this is not an image")
    with pytest.raises(ImageFileError, match="junk.png"):
        load_image_file(tmp_path / "junk.png")
    with pytest.raises(ImageFileError, match="not found"):
        load_image_file(tmp_path / "missing.png")


def test_load_image_channel(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 1] = 255
    rgba[..., 3] = 64
    Image.fromarray(rgba, "RGBA").save(tmp_path / "m.png")
    assert torch.all(load_image_channel(tmp_path / "m.png", "green") == 1.0)
    assert torch.all(load_image_channel(tmp_path / "m.png", "red") == 0.0)
    alpha = load_image_channel(tmp_path / "m.png", "alpha")
    assert alpha.shape == (1, 2, 2) and alpha[0, 0, 0].item() == pytest.approx(1 - 64 / 255)
    Image.new("RGB", (3, 2)).save(tmp_path / "rgb.png")
    opaque = load_image_channel(tmp_path / "rgb.png", "alpha")
    assert opaque.shape == (1, 2, 3) and torch.all(opaque == 0)  # no alpha = opaque = nothing masked
    with pytest.raises(ValueError, match="unknown channel"):
        load_image_channel(tmp_path / "rgb.png", "purple")


# -- PNG text -----------------------------------------------------------------------------------------------
def test_save_png_text_chunks_round_trip(tmp_path):
    chunks = {"prompt": '{"1": {"class_type": "X"}}', "workflow": '{"nodes": []}', "note": "héllo 日本"}
    path = save_png(torch.rand(4, 5, 3), tmp_path / "out.png", chunks, compress_level=1)
    assert read_png_text(path) == chunks
    assert read_png_text(path.read_bytes()) == chunks
    with Image.open(path) as img:  # other readers see them too
        assert img.text == chunks
    assert not list(tmp_path.glob(".*"))  # the temporary file was renamed away


def test_read_png_text_all_chunk_kinds(tmp_path):
    info = PngInfo()
    info.add_text("plain", "latin é")
    info.add_text("zipped", "compressed text " * 20, zip=True)           # zTXt
    info.add_itxt("intl", "ünïcode ✓", lang="de", tkey="Intl")           # iTXt
    info.add_itxt("intlzip", "ünïcode zipped ✓" * 10, zip=True)          # compressed iTXt
    Image.new("RGB", (2, 2)).save(tmp_path / "k.png", pnginfo=info)
    data = (tmp_path / "k.png").read_bytes()
    # ComfyUI's frontend also reads a custom "comf" chunk; put one before IEND.
    data = data[:-12] + _chunk(b"comf", b"workflow\x00" + '{"nodes": ["ü"]}'.encode()) + data[-12:]
    texts = read_png_text(data)
    assert texts == {"plain": "latin é", "zipped": "compressed text " * 20, "intl": "ünïcode ✓",
                     "intlzip": "ünïcode zipped ✓" * 10, "workflow": '{"nodes": ["ü"]}'}


def test_read_png_text_errors_and_truncation(tmp_path):
    with pytest.raises(ValueError, match="not a PNG"):
        read_png_text(b"GIF89a....")
    with pytest.raises(FileNotFoundError):
        read_png_text(tmp_path / "missing.png")
    path = save_png(torch.zeros(2, 2, 3), tmp_path / "t.png", {"prompt": "{}"})
    data = path.read_bytes()
    assert read_png_text(data[: len(data) // 2 + 40]) == {"prompt": "{}"}  # cut inside IDAT
    assert read_png_text(b"\x89PNG\r\n\x1a\n") == {}
    broken = data[:-12] + _chunk(b"zTXt", b"bad\x00\x00not zlib") + data[-12:]
    assert read_png_text(broken) == {"prompt": "{}"}  # the corrupt chunk is skipped, the rest kept

"""Image nodes: LoadImage / SaveImage / PreviewImage with real files, and the image operations."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from nodes.image_files import read_png_text


def _gradient(b=1, h=4, w=6, c=3):
    return torch.linspace(0, 1, b * h * w * c).reshape(b, h, w, c)


# -- LoadImage -------------------------------------------------------------------------------------------
def test_load_image_combo_lists_uploaded_files(data_dirs, registry):
    Image.new("RGB", (2, 2)).save(data_dirs.input_dir / "b.png")
    Image.new("RGB", (2, 2)).save(data_dirs.input_dir / "A.jpg")
    (data_dirs.input_dir / "sub").mkdir()
    Image.new("RGB", (2, 2)).save(data_dirs.input_dir / "sub" / "c.webp")
    (data_dirs.input_dir / "notes.txt").write_text("not an image")
    for name in ("LoadImage", "LoadImageMask"):
        combo, options = registry.get(name).inputs()["image"].type, registry.get(name).inputs()["image"].options
        assert combo == ["A.jpg", "b.png", "sub/c.webp"]
        assert options == {"image_upload": True}
        info = registry.object_info(name)[name]
        assert info["input"]["required"]["image"] == [["A.jpg", "b.png", "sub/c.webp"], {"image_upload": True}]


def test_load_image_reads_file_and_annotations(data_dirs, run_node):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 2] = 255
    rgba[:2, :, 3] = 255  # top half opaque, bottom half transparent
    Image.fromarray(rgba, "RGBA").save(data_dirs.input_dir / "half.png")
    Image.new("RGB", (3, 3), (255, 255, 255)).save(data_dirs.output_dir / "made.png")
    image, mask = run_node("LoadImage", image="half.png")
    assert image.shape == (1, 4, 4, 3) and torch.all(image[..., 2] == 1.0)
    assert mask.shape == (1, 4, 4) and mask[0, :2].sum() == 0 and torch.all(mask[0, 2:] == 1.0)
    image, mask = run_node("LoadImage", image="made.png [output]")
    assert image.shape == (1, 3, 3, 3) and torch.all(image == 1.0) and mask.shape == (1, 64, 64)


def test_load_image_validate_and_is_changed(data_dirs, registry, run_node):
    cls = registry.get("LoadImage").cls
    assert cls.VALIDATE_INPUTS(image="nope.png") == "Invalid image file: nope.png (no such file in the input folder)"
    assert "output folder" in cls.VALIDATE_INPUTS(image="nope.png [output]")
    assert "leaves its folder" in cls.VALIDATE_INPUTS(image="../../etc/passwd")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        run_node("LoadImage", image="nope.png")
    path = data_dirs.input_dir / "x.png"
    Image.new("RGB", (2, 2), (0, 0, 0)).save(path)
    assert cls.VALIDATE_INPUTS(image="x.png") is True
    first = cls.IS_CHANGED(image="x.png")
    assert first == cls.IS_CHANGED(image="x.png") and len(first) == 64
    Image.new("RGB", (2, 2), (9, 9, 9)).save(path)
    assert cls.IS_CHANGED(image="x.png") != first
    assert cls.IS_CHANGED(image="gone.png") == "missing:gone.png"


def test_load_image_mask_channels(data_dirs, run_node, registry):
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 0
    Image.fromarray(rgba, "RGBA").save(data_dirs.input_dir / "m.png")
    (red,) = run_node("LoadImageMask", image="m.png", channel="red")
    (alpha,) = run_node("LoadImageMask", image="m.png", channel="alpha")
    assert red.shape == (1, 2, 3) and torch.all(red == 1.0)
    assert torch.all(alpha == 1.0)  # transparent = masked
    cls = registry.get("LoadImageMask").cls
    assert cls.VALIDATE_INPUTS(image="m.png") is True
    assert cls.IS_CHANGED(image="m.png", channel="red") == registry.get("LoadImage").cls.IS_CHANGED(image="m.png")


# -- SaveImage / PreviewImage --------------------------------------------------------------------------
def test_save_image_files_counter_and_metadata(data_dirs, run_node):
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 4}}}
    extra = {"workflow": {"nodes": [], "links": [], "version": 0.4}}
    images = _gradient(b=2)
    result = run_node("SaveImage", images=images, filename_prefix="ComfyUI", prompt=prompt, extra_pnginfo=extra)
    assert result == {"ui": {"images": [
        {"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"},
        {"filename": "ComfyUI_00002_.png", "subfolder": "", "type": "output"}]}}
    path = data_dirs.output_dir / "ComfyUI_00002_.png"
    texts = read_png_text(path)
    assert json.loads(texts["prompt"]) == prompt and json.loads(texts["workflow"]) == extra["workflow"]
    saved = np.asarray(Image.open(path), dtype=np.float32) / 255
    assert np.allclose(saved, images[1].numpy(), atol=1 / 255)
    again = run_node("SaveImage", images=images[:1], filename_prefix="ComfyUI")
    assert again["ui"]["images"][0]["filename"] == "ComfyUI_00003_.png"
    assert read_png_text(data_dirs.output_dir / "ComfyUI_00003_.png") == {}  # no prompt, no chunks
    odd = run_node("SaveImage", images=images[:1], filename_prefix="ComfyUI", prompt=prompt, extra_pnginfo=["x"])
    assert read_png_text(data_dirs.output_dir / odd["ui"]["images"][0]["filename"]).keys() == {"prompt"}


def test_save_image_subfolder_substitutions_and_bad_prefix(data_dirs, run_node):
    out = run_node("SaveImage", images=_gradient(h=4, w=6), filename_prefix="runs/img_%width%x%height%")
    assert out["ui"]["images"] == [{"filename": "img_6x4_00001_.png", "subfolder": "runs", "type": "output"}]
    assert (data_dirs.output_dir / "runs" / "img_6x4_00001_.png").is_file()
    with pytest.raises(ValueError, match="filename_prefix"):
        run_node("SaveImage", images=_gradient(), filename_prefix="../../escape")
    with pytest.raises(ValueError, match="IMAGE"):
        run_node("SaveImage", images=torch.zeros(0, 4, 4, 3), filename_prefix="x")


def test_preview_image_goes_to_temp(data_dirs, run_node, registry):
    result = run_node("PreviewImage", images=_gradient(c=4), prompt={"1": {}})
    (entry,) = result["ui"]["images"]
    assert entry["type"] == "temp" and entry["subfolder"] == ""
    assert entry["filename"].startswith("ComfyUI_temp_") and entry["filename"].endswith("_00001_.png")
    path = data_dirs.temp_dir / entry["filename"]
    assert Image.open(path).mode == "RGBA" and "prompt" in read_png_text(path)
    assert registry.get("PreviewImage").output_node and registry.get("SaveImage").output_node


# -- operations ---------------------------------------------------------------------------------------------
def test_empty_image_and_invert(run_node):
    (img,) = run_node("EmptyImage", width=3, height=2, batch_size=2, color=0xFF8000)
    assert img.shape == (2, 2, 3, 3) and img[1, 1, 2].tolist() == pytest.approx([1.0, 128 / 255, 0.0])
    (inv,) = run_node("ImageInvert", image=img)
    assert inv[0, 0, 0].tolist() == pytest.approx([0.0, 127 / 255, 1.0])
    rgba = torch.cat([img, torch.full((2, 2, 3, 1), 0.25)], dim=-1)
    (inv,) = run_node("ImageInvert", image=rgba)
    assert torch.all(inv[..., 3] == 0.25)  # alpha untouched


@pytest.mark.parametrize("method", ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"])
def test_image_scale_methods(run_node, method):
    img = torch.full((1, 4, 8, 3), 0.5)
    (out,) = run_node("ImageScale", image=img, upscale_method=method, width=16, height=8, crop="disabled")
    assert out.shape == (1, 8, 16, 3) and torch.allclose(out, torch.full_like(out, 0.5), atol=1e-5)


def test_image_scale_aspect_crop_and_scale_by(run_node):
    img = _gradient(h=4, w=8)
    assert run_node("ImageScale", image=img, upscale_method="bilinear", width=0, height=0, crop="disabled")[0] is img
    (out,) = run_node("ImageScale", image=img, upscale_method="area", width=0, height=2, crop="disabled")
    assert out.shape == (1, 2, 4, 3)
    (out,) = run_node("ImageScale", image=img, upscale_method="nearest-exact", width=16, height=0, crop="disabled")
    assert out.shape == (1, 8, 16, 3)
    # centre crop to a square keeps the middle 4 columns of 8
    (out,) = run_node("ImageScale", image=img, upscale_method="nearest-exact", width=4, height=4, crop="center")
    assert torch.equal(out, img[:, :, 2:6])
    (out,) = run_node("ImageScaleBy", image=img, upscale_method="bicubic", scale_by=1.5)
    assert out.shape == (1, 6, 12, 3)
    with pytest.raises(ValueError, match="unknown upscale method"):
        run_node("ImageScale", image=img, upscale_method="magic", width=2, height=2, crop="disabled")


def test_image_blend_modes(run_node):
    a, b = torch.full((1, 2, 2, 3), 0.6), torch.full((1, 2, 2, 3), 0.2)
    expected = {"normal": 0.2, "multiply": 0.12, "screen": 1 - 0.4 * 0.8, "overlay": 1 - 2 * 0.4 * 0.8,
                "soft_light": 0.6 - 0.6 * 0.6 * 0.4, "difference": 0.4}
    for mode, value in expected.items():
        (out,) = run_node("ImageBlend", image1=a, image2=b, blend_factor=1.0, blend_mode=mode)
        assert out[0, 0, 0, 0].item() == pytest.approx(value, abs=1e-6), mode
    (half,) = run_node("ImageBlend", image1=a, image2=b, blend_factor=0.5, blend_mode="multiply")
    assert half[0, 0, 0, 0].item() == pytest.approx(0.5 * 0.6 + 0.5 * 0.12)
    (out,) = run_node("ImageBlend", image1=b, image2=a, blend_factor=1.0, blend_mode="difference")
    assert out.max() == 0  # signed difference, clamped
    (out,) = run_node("ImageBlend", image1=a, image2=torch.full((1, 5, 3, 4), 0.2), blend_factor=1.0, blend_mode="normal")
    assert out.shape == a.shape and torch.allclose(out, b, atol=1e-5)  # image2 fitted to image1


def test_image_composite_masked(run_node):
    dest, src = torch.zeros(1, 4, 4, 3), torch.ones(1, 2, 2, 3)
    (out,) = run_node("ImageCompositeMasked", destination=dest, source=src, x=1, y=2, resize_source=False)
    assert out[0, :, :, 0].tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0]]
    assert dest.sum() == 0  # the input is not modified
    (out,) = run_node("ImageCompositeMasked", destination=dest, source=src, x=3, y=3, resize_source=False)
    assert out[0, :, :, 0].sum() == 1 and out[0, 3, 3, 0] == 1  # clipped at the edge
    mask = torch.tensor([[[1.0, 0.5], [0.0, 1.0]]])
    (out,) = run_node("ImageCompositeMasked", destination=dest, source=src, x=0, y=0, resize_source=False, mask=mask)
    assert out[0, :2, :2, 0].tolist() == [[1.0, 0.5], [0.0, 1.0]]
    (out,) = run_node("ImageCompositeMasked", destination=torch.zeros(2, 4, 4, 3), source=torch.ones(1, 2, 2, 4),
                      x=0, y=0, resize_source=True)
    assert out.shape == (2, 4, 4, 3) and torch.all(out == 1)


def test_image_batch_crop_and_pad(run_node):
    (out,) = run_node("ImageBatch", image1=torch.zeros(1, 4, 4, 3), image2=torch.ones(2, 8, 6, 3))
    assert out.shape == (3, 4, 4, 3) and torch.all(out[1:] == 1)
    (out,) = run_node("ImageBatch", image1=torch.zeros(1, 2, 2, 4), image2=torch.zeros(1, 2, 2, 3))
    assert out.shape == (2, 2, 2, 4) and torch.all(out[1, ..., 3] == 1)  # missing alpha = opaque
    img = _gradient(h=4, w=6)
    (out,) = run_node("ImageCrop", image=img, width=3, height=2, x=2, y=1)
    assert torch.equal(out, img[:, 1:3, 2:5])
    (out,) = run_node("ImageCrop", image=img, width=512, height=512, x=100, y=100)
    assert torch.equal(out, img[:, 3:, 5:])  # clipped to the last pixel, never empty

    padded, mask = run_node("ImagePadForOutpaint", image=torch.ones(1, 10, 10, 3), left=2, top=0, right=0, bottom=1,
                            feathering=2)
    assert padded.shape == (1, 11, 12, 3) and mask.shape == (1, 11, 12)
    assert torch.all(padded[0, :, :2] == 0.5) and torch.all(padded[0, 10] == 0.5) and torch.all(padded[0, :10, 2:] == 1)
    assert torch.all(mask[0, :, :2] == 1) and torch.all(mask[0, 10] == 1)
    assert mask[0, 5, 2].item() == 1.0 and mask[0, 5, 3].item() == 0.25 and mask[0, 5, 4].item() == 0.0
    assert mask[0, 0, 8].item() == 0.0  # the unpadded top edge is not feathered
    assert mask[0, 9, 8].item() == 0.25  # one pixel from the padded bottom edge
    _, mask = run_node("ImagePadForOutpaint", image=torch.ones(1, 10, 10, 3), left=8, top=0, right=0, bottom=0,
                       feathering=0)
    assert torch.all(mask[0, :, 8:] == 0)


def test_image_nodes_reject_bad_tensors(run_node):
    with pytest.raises(ValueError, match=r"ImageScale: image must be IMAGE \[B,H,W,C\]"):
        run_node("ImageScale", image=torch.zeros(4, 4), upscale_method="area", width=2, height=2, crop="disabled")
    with pytest.raises(TypeError, match="ImageInvert: image must be an IMAGE tensor, got dict"):
        run_node("ImageInvert", image={"samples": 1})
    with pytest.raises(ValueError, match="unknown blend_mode"):
        run_node("ImageBlend", image1=torch.zeros(1, 2, 2, 3), image2=torch.zeros(1, 2, 2, 3), blend_factor=1,
                 blend_mode="dodge")

"""Mask nodes: values checked pixel by pixel on small masks."""

import pytest
import torch


def test_solid_invert_threshold(run_node):
    (solid,) = run_node("SolidMask", value=0.25, width=3, height=2)
    assert solid.shape == (1, 2, 3) and solid.dtype == torch.float32 and torch.all(solid == 0.25)
    (inv,) = run_node("InvertMask", mask=solid)
    assert torch.all(inv == 0.75)
    mask = torch.tensor([[0.1, 0.5, 0.9]])  # [H,W] is accepted
    (th,) = run_node("ThresholdMask", mask=mask, value=0.5)
    assert th.shape == (1, 1, 3) and th.tolist() == [[[0.0, 0.0, 1.0]]]


def test_mask_composite_operations(run_node):
    dest = torch.tensor([[[0.2, 0.8, 0.6, 1.0]]])
    src = torch.tensor([[[0.5, 0.5]]])
    expected = {
        "multiply": [0.2, 0.4, 0.3, 1.0],
        "add": [0.2, 1.0, 1.0, 1.0],            # clamped
        "subtract": [0.2, 0.3, 0.1, 1.0],
        "and": [0.2, 0.0, 0.0, 1.0],             # round(0.5) = 0 in torch (banker's rounding)
        "or": [0.2, 1.0, 1.0, 1.0],
        "xor": [0.2, 1.0, 1.0, 1.0],
    }
    for op, values in expected.items():
        (out,) = run_node("MaskComposite", destination=dest, source=src, x=1, y=0, operation=op)
        assert out[0, 0].tolist() == pytest.approx(values), op
    (out,) = run_node("MaskComposite", destination=dest, source=torch.ones(1, 1, 1), x=0, y=0, operation="and")
    assert out[0, 0].tolist() == pytest.approx([0.0, 0.8, 0.6, 1.0])
    (out,) = run_node("MaskComposite", destination=dest, source=src, x=10, y=10, operation="add")
    assert torch.equal(out, dest)  # placed outside: unchanged
    (out,) = run_node("MaskComposite", destination=torch.zeros(1, 2, 2), source=torch.ones(3, 2, 2), x=0, y=0,
                      operation="add")
    assert out.shape == (3, 2, 2) and torch.all(out == 1)
    with pytest.raises(ValueError, match="unknown operation"):
        run_node("MaskComposite", destination=dest, source=src, x=0, y=0, operation="nand")


def test_feather_mask(run_node):
    (out,) = run_node("FeatherMask", mask=torch.ones(1, 3, 6), left=3, top=0, right=2, bottom=1)
    assert out[0, 0].tolist() == pytest.approx([1 / 3, 2 / 3, 1, 1, 1, 0.5])
    assert out[0, 2].tolist() == pytest.approx([1 / 3 * 1, 2 / 3, 1, 1, 1, 0.5])  # bottom=1: last row * 1/1
    (out,) = run_node("FeatherMask", mask=torch.ones(1, 2, 2), left=100, top=0, right=0, bottom=0)
    assert out[0, 0].tolist() == pytest.approx([0.5, 1.0])  # feather wider than the mask is clipped to it


def test_image_mask_conversions(run_node):
    img = torch.rand(2, 3, 4, 4)
    for i, channel in enumerate(["red", "green", "blue", "alpha"]):
        (m,) = run_node("ImageToMask", image=img, channel=channel)
        assert m.shape == (2, 3, 4) and torch.equal(m, img[..., i])
    with pytest.raises(ValueError, match="has 3 channels, so it has no alpha channel"):
        run_node("ImageToMask", image=img[..., :3], channel="alpha")
    mask = torch.rand(2, 3, 4)
    (back,) = run_node("MaskToImage", mask=mask)
    assert back.shape == (2, 3, 4, 3) and all(torch.equal(back[..., c], mask) for c in range(3))
    (back,) = run_node("MaskToImage", mask=mask[:, None])  # [B,1,H,W] is accepted
    assert back.shape == (2, 3, 4, 3)


def test_grow_mask(run_node):
    mask = torch.zeros(1, 5, 5)
    mask[0, 2, 2] = 1
    (cross,) = run_node("GrowMask", mask=mask, expand=1, tapered_corners=True)
    assert cross[0].tolist() == [[0, 0, 0, 0, 0], [0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]]
    (square,) = run_node("GrowMask", mask=mask, expand=1, tapered_corners=False)
    assert square[0, 1:4, 1:4].sum() == 9 and square.sum() == 9
    (big,) = run_node("GrowMask", mask=mask, expand=2, tapered_corners=True)
    assert big.sum() == 13  # a diamond of radius 2
    (shrunk,) = run_node("GrowMask", mask=square, expand=-1, tapered_corners=False)
    assert torch.equal(shrunk, mask)
    (full,) = run_node("GrowMask", mask=torch.ones(1, 3, 3), expand=-1, tapered_corners=True)
    assert torch.all(full == 1)  # edges replicate: a full mask does not erode from the border
    (huge,) = run_node("GrowMask", mask=mask, expand=16384, tapered_corners=True)
    assert torch.all(huge == 1)
    (same,) = run_node("GrowMask", mask=mask, expand=0, tapered_corners=True)
    assert torch.equal(same, mask)


def test_crop_mask_and_errors(run_node):
    mask = torch.arange(20, dtype=torch.float32).reshape(1, 4, 5)
    (out,) = run_node("CropMask", mask=mask, x=1, y=2, width=2, height=5)
    assert out.tolist() == [[[11.0, 12.0], [16.0, 17.0]]]
    with pytest.raises(ValueError, match=r"CropMask: mask must be MASK \[B,H,W\]"):
        run_node("CropMask", mask=torch.zeros(5), x=0, y=0, width=1, height=1)
    with pytest.raises(TypeError, match="InvertMask: mask must be a MASK tensor"):
        run_node("InvertMask", mask=[[0.0]])

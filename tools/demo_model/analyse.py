"""Say which colour and which shape a demo image shows, and whether its fill is striped.

No learned model: the background is whatever colours the image border holds; the object is the
largest connected region of pixels far from all of them. Its colour is named from the median HSV
of its inner pixels; its shape from a few geometric features of the mask:
- extent: area over bounding-box area (square 1.0, circle 0.79, triangle/diamond 0.5, star ~0.4);
- radial variation: the coefficient of variation of the boundary's distance from the centroid,
  binned by angle (circle ~0), and the number of peaks of that signature (the corner count);
- the centroid's height in the bounding box (an upright triangle's sits low, at 2/3).
The stripe statistic compares luminance changes along and across the stripes' diagonal.

Usage: python -m tools.demo_model.analyse image.png [...]
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

BG_DISTANCE = 0.22        # RGB distance under which a pixel counts as background
STRIPE_THRESHOLD = 0.035  # diagonal-stripe statistic above which a fill counts as striped
MIN_AREA = 30             # pixels; smaller objects are "none"


@dataclass
class Analysis:
    color: str                      # a colour name, or "none" when no object was found
    shape: str                      # circle | square | triangle | star | diamond | none
    stripe: float                   # luminance contrast inside the object
    striped: bool
    mask: np.ndarray                # bool [H,W]
    features: dict = field(default_factory=dict)


def to_array(image) -> np.ndarray:
    """float32 [H,W,3] in 0..1 from a PIL image, a [H,W,3] or [1,H,W,3] array/tensor, or 0..255 ints."""
    if hasattr(image, "convert"):
        image = np.asarray(image.convert("RGB"))
    if hasattr(image, "detach"):
        image = image.detach().cpu().float().numpy()
    a = np.asarray(image)
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {a.shape[0]}")
        a = a[0]
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"expected an RGB image [H,W,3], got shape {a.shape}")
    a = a.astype(np.float32)
    if a.max() > 1.5:
        a = a / 255.0
    return np.clip(a, 0.0, 1.0)


def rgb_to_hsv(rgb: np.ndarray) -> tuple[float, float, float]:
    """Hue in degrees, saturation and value of one RGB colour."""
    r, g, b = (float(x) for x in rgb)
    mx, mn = max(r, g, b), min(r, g, b)
    d = mx - mn
    if d < 1e-6:
        h = 0.0
    elif mx == r:
        h = 60.0 * (((g - b) / d) % 6)
    elif mx == g:
        h = 60.0 * ((b - r) / d + 2)
    else:
        h = 60.0 * ((r - g) / d + 4)
    return h, (d / mx if mx > 1e-6 else 0.0), mx


def color_name(rgb: np.ndarray) -> str:
    h, s, v = rgb_to_hsv(rgb)
    if v < 0.25:
        return "black"
    if s < 0.25:
        return "white" if v > 0.7 else "gray"
    if h < 15 or h >= 330:
        return "red"
    if h < 42:
        return "orange"
    if h < 80:
        return "yellow"
    if h < 170:
        return "green"
    if h < 260:
        return "blue"
    return "purple"


def striped_color(pixels: np.ndarray) -> str:
    """The fill colour of a striped object. The median of both tones names it, except where the
    mix reads dark or gray: then a clearly coloured tone (green with dark green stripes), or else
    black or white (black with gray stripes), is the fill and the other tone the stripe."""
    name = color_name(np.median(pixels, axis=0))
    if name not in ("black", "gray"):
        return name
    lum = pixels @ np.array([0.299, 0.587, 0.114], np.float32)
    cut = (np.percentile(lum, 10) + np.percentile(lum, 90)) / 2
    tones = [np.median(h, axis=0) for h in (pixels[lum <= cut], pixels[lum > cut]) if len(h)]
    for tone in tones:
        if color_name(tone) not in ("black", "white", "gray") and rgb_to_hsv(tone)[1] >= 0.5:
            return color_name(tone)
    plain = [color_name(t) for t in tones if color_name(t) in ("black", "white")]
    return plain[0] if len(plain) == 1 else name


def object_mask(img: np.ndarray) -> np.ndarray:
    """The largest connected region of non-background pixels, holes filled."""
    border = np.concatenate([img[:2].reshape(-1, 3), img[-2:].reshape(-1, 3),
                             img[:, :2].reshape(-1, 3), img[:, -2:].reshape(-1, 3)])
    palette = np.unique(np.round(border / 0.04).astype(np.int32), axis=0) * 0.04
    if len(palette) > 256:   # a very busy border: keep a spread-out subset
        palette = palette[np.random.default_rng(0).choice(len(palette), 256, replace=False)]
    d2 = ((img[:, :, None, :] - palette[None, None]) ** 2).sum(-1).min(-1)
    fg = d2 > BG_DISTANCE ** 2
    fg = ndimage.binary_opening(fg, iterations=1)
    # bridge stripes whose second tone is close to the background
    fg = ndimage.binary_closing(fg, iterations=3)
    lab, n = ndimage.label(fg)
    if n == 0:
        return np.zeros(fg.shape, bool)
    sizes = ndimage.sum(fg, lab, index=np.arange(1, n + 1))
    return ndimage.binary_fill_holes(lab == (1 + int(np.argmax(sizes))))


def _radial_signature(mask: np.ndarray, bins: int = 72) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean(), xs.mean()
    edge = mask & ~ndimage.binary_erosion(mask)
    ey, ex = np.nonzero(edge)
    ang = np.arctan2(ey - cy, ex - cx)
    rad = np.hypot(ey - cy, ex - cx) + 0.5
    idx = ((ang + np.pi) / (2 * np.pi) * bins).astype(int) % bins
    sig = np.zeros(bins)
    np.maximum.at(sig, idx, rad)
    empty = sig == 0
    if empty.any() and (~empty).any():   # small shapes leave gaps between angle bins
        good = np.nonzero(~empty)[0]
        sig[empty] = np.interp(np.nonzero(empty)[0], good, sig[good], period=bins)
    return sum(np.roll(sig, k) for k in range(-2, 3)) / 5


def shape_features(mask: np.ndarray) -> dict:
    ys, xs = np.nonzero(mask)
    area = float(len(ys))
    h = ys.max() - ys.min() + 1
    w = xs.max() - xs.min() + 1
    sig = _radial_signature(mask)
    mean = sig.mean()
    # corners: angle-bin maxima over a +-20 degree window that stand out from the mean radius
    win = np.stack([np.roll(sig, k) for k in range(-4, 5)])
    peaks = int(((sig >= win.max(0)) & (sig > 1.06 * mean)).sum())
    return {
        "area": area,
        "extent": area / float(h * w),
        "aspect": float(w) / float(h),
        "radial_cv": float(sig.std() / mean),
        "corners": peaks,
        "centroid_y": float((ys.mean() - ys.min() + 0.5) / h),
        "bbox": (int(xs.min()), int(ys.min()), int(w), int(h)),
        "center": (float(xs.mean()), float(ys.mean())),
    }


def classify_shape(f: dict) -> str:
    if f["radial_cv"] < 0.045 and f["extent"] > 0.65:
        return "circle"
    if f["extent"] > 0.86:
        return "square"
    if f["extent"] > 0.68:
        return "circle" if f["radial_cv"] < 0.08 else "square"
    if f["centroid_y"] > 0.6:
        return "triangle"
    return "star" if f["radial_cv"] > 0.13 else "diamond"


def stripe_score(img: np.ndarray, mask: np.ndarray) -> float:
    """Diagonal stripes: luminance changes along (1,1) but not along (1,-1). The difference of the
    two mean absolute differences, over the mean luminance, inside the mask; shading, noise and
    blotches change both alike and score near 0."""
    # erode past the anti-aliased edge and whatever the closing added in a star's notches
    inner = ndimage.binary_erosion(mask, iterations=3)
    if inner.sum() < 10:
        inner = mask
    lum = img @ np.array([0.299, 0.587, 0.114], np.float32)
    along = np.abs(lum[1:, 1:] - lum[:-1, :-1])
    across = np.abs(lum[1:, :-1] - lum[:-1, 1:])
    both = inner[1:, 1:] & inner[:-1, :-1] & inner[1:, :-1] & inner[:-1, 1:]
    if both.sum() < 10:
        return 0.0
    return float((along[both].mean() - across[both].mean()) / max(lum[inner].mean(), 0.05))


def analyse(image) -> Analysis:
    img = to_array(image)
    mask = object_mask(img)
    if mask.sum() < MIN_AREA:
        return Analysis("none", "none", 0.0, False, mask)
    inner = ndimage.binary_erosion(mask, iterations=2)
    if inner.sum() < 10:
        inner = mask
    feats = shape_features(mask)
    stripe = stripe_score(img, mask)
    striped = stripe > STRIPE_THRESHOLD
    color = striped_color(img[inner]) if striped else color_name(np.median(img[inner], axis=0))
    return Analysis(color, classify_shape(feats), stripe, striped, mask, feats)


def main(argv: list[str]) -> int:
    from PIL import Image

    if not argv:
        print(__doc__)
        return 2
    for path in argv:
        a = analyse(Image.open(path))
        print(f"{path}: colour={a.color} shape={a.shape} striped={a.striped} (stripe={a.stripe:.3f}) "
              f"extent={a.features.get('extent', 0):.2f} corners={a.features.get('corners', 0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

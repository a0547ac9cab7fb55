"""Procedural captioned scenes for the demo model: one coloured shape on a coloured background.

Everything is drawn with torch from signed distance functions, so a batch of thousands of
128x128 scenes takes milliseconds on a GPU and needs no dataset on disk. A scene is a handful of
categorical attributes (colour, shape, size, position, background colour and texture); the caption
names some of them in one of several phrasings, and the attributes it leaves out stay random.

Variants of the same scene: `striped=True` fills the shape with diagonal stripes (what the LoRA
learns), and `render` also returns the shape mask and its outline (the ControlNet's hint images).

A fixed set of full attribute tuples is held out of training (`HELD_OUT`, `is_held_out`), and
`eval_prompts()` phrases them for the evaluation.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

RESOLUTION = 128

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.10, 0.10),
    "orange": (1.00, 0.55, 0.05),
    "yellow": (0.96, 0.88, 0.10),
    "green": (0.12, 0.68, 0.20),
    "blue": (0.12, 0.30, 0.90),
    "purple": (0.55, 0.15, 0.75),
    "white": (0.96, 0.96, 0.96),
    "black": (0.06, 0.06, 0.06),
}
COLOR_NAMES = list(COLORS)
# Backgrounds use the object palette plus gray.
BG_COLORS: dict[str, tuple[float, float, float]] = {**COLORS, "gray": (0.50, 0.50, 0.50)}
BG_NAMES = list(BG_COLORS)
# Object/background pairs too close to tell apart at a glance (and for the analyser).
CLASHES = {("red", "orange"), ("orange", "red"), ("orange", "yellow"), ("yellow", "orange"),
           ("blue", "purple"), ("purple", "blue")}

SHAPES = ["circle", "square", "triangle", "star", "diamond"]
# Radius (fraction of the image width) of each size class.
SIZES: dict[str, tuple[float, float]] = {"small": (0.085, 0.12), "medium": (0.14, 0.19), "large": (0.22, 0.27)}
SIZE_NAMES = list(SIZES)
# Grid cell of each position, (column, row) in -1..1.
POSITIONS: dict[str, tuple[int, int]] = {
    "top left": (-1, -1), "top": (0, -1), "top right": (1, -1),
    "left": (-1, 0), "center": (0, 0), "right": (1, 0),
    "bottom left": (-1, 1), "bottom": (0, 1), "bottom right": (1, 1),
}
POSITION_NAMES = list(POSITIONS)
POSITION_PHRASES: dict[str, list[str]] = {
    "top left": ["in the top left", "in the top left corner", "at the top left"],
    "top": ["at the top", "at the top center"],
    "top right": ["in the top right", "in the top right corner", "at the top right"],
    "left": ["on the left", "at the left"],
    "center": ["in the center", "in the middle"],
    "right": ["on the right", "at the right"],
    "bottom left": ["in the bottom left", "in the bottom left corner", "at the bottom left"],
    "bottom": ["at the bottom", "at the bottom center"],
    "bottom right": ["in the bottom right", "in the bottom right corner", "at the bottom right"],
}
TEXTURES = ["plain", "gradient", "striped", "checkered", "noisy"]
TEXTURE_WEIGHTS = [0.6, 0.1, 0.1, 0.1, 0.1]

STRIPE_PERIOD = 12.0   # pixels, diagonal stripes (object fill variant and striped backgrounds)
# Half-extent of each shape relative to its radius; keeps large shapes inside the frame.
_EXTENT = {"circle": 1.0, "square": 0.88, "triangle": 1.15, "star": 1.3, "diamond": 1.2}
_MARGIN = 0.03


@dataclass
class Scenes:
    """A batch of scene attributes (index tensors on one device) and their geometry."""

    color: torch.Tensor     # [B] index into COLOR_NAMES
    shape: torch.Tensor     # [B] index into SHAPES
    size: torch.Tensor      # [B] index into SIZE_NAMES
    pos: torch.Tensor       # [B] index into POSITION_NAMES
    bg: torch.Tensor        # [B] index into BG_NAMES
    texture: torch.Tensor   # [B] index into TEXTURES
    radius: torch.Tensor    # [B] fraction of the width
    cx: torch.Tensor        # [B] centre of the shape's bounding box, 0..1
    cy: torch.Tensor
    color_rgb: torch.Tensor  # [B,3] jittered
    bg_rgb: torch.Tensor     # [B,3] jittered

    def __len__(self) -> int:
        return self.color.shape[0]

    def tuple_at(self, i: int) -> tuple[str, str, str, str, str]:
        return (COLOR_NAMES[self.color[i]], SHAPES[self.shape[i]], SIZE_NAMES[self.size[i]],
                POSITION_NAMES[self.pos[i]], BG_NAMES[self.bg[i]])


# ---------------------------------------------------------------------------------------------
# Held-out attribute tuples (colour, shape, size, position, background): never drawn in training.

def _make_held_out(n: int = 48, seed: int = 1234) -> list[tuple[str, str, str, str, str]]:
    rng = random.Random(seed)
    out: list[tuple[str, str, str, str, str]] = []
    combos = [(c, s) for c in COLOR_NAMES for s in SHAPES]
    rng.shuffle(combos)
    while len(out) < n:
        c, s = combos[len(out) % len(combos)]
        bg = rng.choice([b for b in BG_NAMES if b != c and (c, b) not in CLASHES])
        t = (c, s, rng.choice(SIZE_NAMES), rng.choice(POSITION_NAMES), bg)
        if t not in out:
            out.append(t)
    return out


HELD_OUT: list[tuple[str, str, str, str, str]] = _make_held_out()


def _tuple_code(color, shape, size, pos, bg):
    return (((color * len(SHAPES) + shape) * len(SIZE_NAMES) + size) * len(POSITION_NAMES) + pos) * len(BG_NAMES) + bg


_HELD_OUT_CODES = torch.tensor([
    _tuple_code(COLOR_NAMES.index(c), SHAPES.index(s), SIZE_NAMES.index(z), POSITION_NAMES.index(p), BG_NAMES.index(b))
    for c, s, z, p, b in HELD_OUT])


def is_held_out(sc: Scenes) -> torch.Tensor:
    code = _tuple_code(sc.color, sc.shape, sc.size, sc.pos, sc.bg)
    return torch.isin(code, _HELD_OUT_CODES.to(code.device))


# ---------------------------------------------------------------------------------------------
# Sampling attributes

def _valid_bg(color: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
    ok = torch.ones_like(color, dtype=torch.bool)
    for ci, c in enumerate(COLOR_NAMES):
        for bi, b in enumerate(BG_NAMES):
            if c == b or (c, b) in CLASHES:
                ok &= ~((color == ci) & (bg == bi))
    return ok


def sample_scenes(n: int, generator: torch.Generator | None = None, device: str | torch.device = "cpu",
                  exclude_held_out: bool = True, jitter: float = 0.04) -> Scenes:
    """Draw `n` random scenes. Attributes are drawn on the CPU generator, then moved to `device`."""
    g = generator

    def ri(k):
        return torch.randint(0, k, (n,), generator=g)

    color, shape, size, pos = ri(len(COLOR_NAMES)), ri(len(SHAPES)), ri(len(SIZE_NAMES)), ri(len(POSITION_NAMES))
    bg = ri(len(BG_NAMES))
    for _ in range(100):   # redraw clashing backgrounds and held-out tuples
        bad = ~_valid_bg(color, bg)
        if exclude_held_out:
            bad |= torch.isin(_tuple_code(color, shape, size, pos, bg), _HELD_OUT_CODES)
        if not bad.any():
            break
        bg[bad] = torch.randint(0, len(BG_NAMES), (int(bad.sum()),), generator=g)
    texture = torch.multinomial(torch.tensor(TEXTURE_WEIGHTS), n, replacement=True, generator=g)
    return _geometry(color, shape, size, pos, bg, texture, g, jitter, device)


def scenes_from_tuples(tuples: list[tuple[str, str, str, str, str]], texture: str = "plain",
                       generator: torch.Generator | None = None, device="cpu", jitter: float = 0.0) -> Scenes:
    """Scenes with the given (colour, shape, size, position, background) tuples."""
    t = list(zip(*tuples))
    color = torch.tensor([COLOR_NAMES.index(x) for x in t[0]])
    shape = torch.tensor([SHAPES.index(x) for x in t[1]])
    size = torch.tensor([SIZE_NAMES.index(x) for x in t[2]])
    pos = torch.tensor([POSITION_NAMES.index(x) for x in t[3]])
    bg = torch.tensor([BG_NAMES.index(x) for x in t[4]])
    tex = torch.full_like(color, TEXTURES.index(texture))
    return _geometry(color, shape, size, pos, bg, tex, generator, jitter, device)


def _geometry(color, shape, size, pos, bg, texture, g, jitter, device) -> Scenes:
    n = color.shape[0]

    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=g)

    lo = torch.tensor([v[0] for v in SIZES.values()])[size]
    hi = torch.tensor([v[1] for v in SIZES.values()])[size]
    radius = lo + (hi - lo) * torch.rand(n, generator=g)
    ext = torch.tensor([_EXTENT[s] for s in SHAPES])[shape] * radius
    grid = torch.tensor(list(POSITIONS.values()), dtype=torch.float32)[pos]
    # Cell centres at 0.5 +- (0.5 - extent - margin); jitter within a small window that stays inside.
    reach = (0.5 - ext - _MARGIN).clamp(min=0.0)
    cx = 0.5 + grid[:, 0] * reach * u(0.85, 1.0) + u(-0.03, 0.03) * (grid[:, 0] == 0)
    cy = 0.5 + grid[:, 1] * reach * u(0.85, 1.0) + u(-0.03, 0.03) * (grid[:, 1] == 0)
    crgb = torch.tensor(list(COLORS.values()))[color]
    brgb = torch.tensor(list(BG_COLORS.values()))[bg]
    crgb = (crgb + jitter * (2 * torch.rand(n, 3, generator=g) - 1)).clamp(0, 1)
    brgb = (brgb + jitter * (2 * torch.rand(n, 3, generator=g) - 1)).clamp(0, 1)
    d = torch.device(device)
    return Scenes(*(x.to(d) for x in (color, shape, size, pos, bg, texture, radius, cx, cy, crgb, brgb)))


# ---------------------------------------------------------------------------------------------
# Rendering

def _polygon_sdf(p: torch.Tensor, verts: torch.Tensor) -> torch.Tensor:
    """Signed distance (negative inside) from points p [B,P,2] to polygons verts [B,N,2]."""
    vj = verts.roll(1, dims=1)
    e = (vj - verts)[:, :, None, :]                        # [B,N,1,2]
    w = p[:, None, :, :] - verts[:, :, None, :]            # [B,N,P,2]
    h = ((w * e).sum(-1) / (e * e).sum(-1)).clamp(0, 1)
    b = w - e * h[..., None]
    d2 = (b * b).sum(-1).amin(1)                           # [B,P]
    py = p[:, None, :, 1]
    c1 = py >= verts[:, :, None, 1]
    c2 = py < vj[:, :, None, 1]
    c3 = e[..., 0] * w[..., 1] > e[..., 1] * w[..., 0]
    flip = (c1 & c2 & c3) | (~c1 & ~c2 & ~c3)
    sign = 1 - 2 * (flip.sum(1) % 2)                       # odd crossings: inside
    return sign * d2.sqrt()


def _regular_vertices(n_points: int, r_out: torch.Tensor, r_in: torch.Tensor | None) -> torch.Tensor:
    """Vertices of an upright regular polygon (r_in None) or star, centred on the origin, [B,N,2]."""
    k = n_points * (2 if r_in is not None else 1)
    ang = -math.pi / 2 + torch.arange(k, device=r_out.device) * (2 * math.pi / k)
    rad = r_out[:, None].expand(-1, k)
    if r_in is not None:
        rad = torch.where(torch.arange(k, device=r_out.device) % 2 == 1, r_in[:, None], rad)
    return torch.stack([rad * ang.cos(), rad * ang.sin()], -1)


def shape_sdf(sc: Scenes, res: int = RESOLUTION) -> torch.Tensor:
    """Signed distance in pixels to each scene's shape, [B,res,res]."""
    dev = sc.color.device
    n = len(sc)
    ys, xs = torch.meshgrid(torch.arange(res, device=dev, dtype=torch.float32) + 0.5,
                            torch.arange(res, device=dev, dtype=torch.float32) + 0.5, indexing="ij")
    x = xs[None] - (sc.cx * res)[:, None, None]
    y = ys[None] - (sc.cy * res)[:, None, None]
    r = (sc.radius * res)[:, None, None]
    out = torch.empty(n, res, res, device=dev)
    for si, name in enumerate(SHAPES):
        idx = (sc.shape == si).nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        xi, yi, ri = x[idx], y[idx], r[idx]
        if name == "circle":
            d = (xi * xi + yi * yi).sqrt() - ri
        elif name == "square":
            h = 0.88 * ri
            qx, qy = xi.abs() - h, yi.abs() - h
            d = torch.stack([qx.clamp(min=0), qy.clamp(min=0)]).norm(dim=0) + torch.maximum(qx, qy).clamp(max=0)
        elif name == "diamond":
            d = (xi.abs() + 0.85 * yi.abs() - 1.02 * ri) / math.sqrt(1 + 0.85 ** 2)
        else:
            if name == "triangle":
                rout = 1.33 * ri[:, 0, 0]
                verts = _regular_vertices(3, rout, None)
                shift = 0.25 * rout        # circumcentre sits below the bounding-box centre
            else:
                rout = 1.3 * ri[:, 0, 0]
                verts = _regular_vertices(5, rout, 0.48 * rout)
                shift = 0.0955 * rout
            pts = torch.stack([xi, yi - shift[:, None, None]], -1).reshape(idx.numel(), -1, 2)
            d = _polygon_sdf(pts, verts).reshape(idx.numel(), res, res)
        out[idx] = d
    return out


def _shade(rgb: torch.Tensor) -> torch.Tensor:
    """The second tone of a texture or stripe: darker, or lighter for very dark colours."""
    dark = rgb.max(-1, keepdim=True).values < 0.2
    return torch.where(dark, rgb + 0.3, rgb * 0.5)


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    return rgb @ torch.tensor([0.299, 0.587, 0.114], device=rgb.device)


def _stripe_tone(rgb: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
    """The second tone of a striped fill: the candidate that differs from the fill in brightness and
    from the background in colour, so the stripes show and the shape stays one piece."""
    cands = torch.stack([rgb * k for k in (0.3, 0.45, 0.6, 0.75)] + [rgb + (1 - rgb) * k for k in (0.3, 0.6)], 1)
    contrast = 2 * (_luma(cands) - _luma(rgb)[:, None]).abs()
    apart = (cands - bg[:, None]).norm(dim=-1)
    best = torch.minimum(contrast, apart).argmax(1)
    return cands[torch.arange(len(rgb)), best]


def render(sc: Scenes, res: int = RESOLUTION, striped: bool | torch.Tensor = False,
           generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Draw scenes. Returns image [B,3,H,W] in 0..1, mask [B,1,H,W] (coverage) and edge [B,1,H,W]."""
    dev = sc.color.device
    n = len(sc)
    sd = shape_sdf(sc, res)
    cov = (0.5 - sd).clamp(0, 1)[:, None]
    edge = (1.5 - sd.abs()).clamp(0, 1)[:, None]
    ys, xs = torch.meshgrid(torch.arange(res, device=dev, dtype=torch.float32),
                            torch.arange(res, device=dev, dtype=torch.float32), indexing="ij")
    diag = ((xs + ys) / STRIPE_PERIOD) % 1.0 < 0.5            # [H,W]

    bg = sc.bg_rgb[:, :, None, None].expand(n, 3, res, res)
    shade = _shade(sc.bg_rgb)[:, :, None, None]
    tex = sc.texture[:, None, None, None]
    grad = bg + (shade - bg) * (ys / (res - 1))[None, None]
    checker = (((xs // 16) + (ys // 16)) % 2 == 1)[None, None]
    stripes = diag[None, None]
    noise = torch.randn(n, 1, 8, 8, generator=generator).to(dev)
    noise = torch.nn.functional.interpolate(noise, size=(res, res), mode="bicubic", align_corners=False)
    back = bg
    back = torch.where(tex == TEXTURES.index("gradient"), grad, back)
    back = torch.where((tex == TEXTURES.index("checkered")) & checker, shade.expand_as(bg), back)
    back = torch.where((tex == TEXTURES.index("striped")) & stripes, shade.expand_as(bg), back)
    back = torch.where(tex == TEXTURES.index("noisy"), bg + 0.06 * noise, back)

    fill = sc.color_rgb[:, :, None, None].expand(n, 3, res, res)
    if isinstance(striped, bool):
        striped = torch.full((n,), striped, device=dev)
    striped = striped.to(dev)
    if striped.any():
        alt = _stripe_tone(sc.color_rgb, sc.bg_rgb)[:, :, None, None].expand_as(fill)
        fill = torch.where(striped[:, None, None, None] & diag[None, None], alt, fill)
    img = (back * (1 - cov) + fill * cov).clamp(0, 1)
    return {"image": img, "mask": cov, "edge": edge}


# ---------------------------------------------------------------------------------------------
# Captions

def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(t: tuple[str, str, str, str, str], texture: str = "plain", rng: random.Random | None = None,
            shape_word_p: float = 0.9, striped: bool = False) -> str:
    """A caption for one scene; names some attributes in one of several phrasings."""
    rng = rng or random
    color, shape, size, pos, bg = t
    say_size = rng.random() < (0.45 if size != "medium" else 0.15)
    say_pos = rng.random() < 0.45
    say_bg = rng.random() < 0.5
    say_color = rng.random() < 0.97
    noun = shape if rng.random() < shape_word_p else rng.choice(["shape", "object"])
    words = []
    if say_size:
        words.append(size)
    if striped and rng.random() < 0.5:
        words.append("striped")
    if say_color:
        words.append(color)
    words.append(noun)
    obj = " ".join(words)
    obj = f"{_article(obj)} {obj}"
    bg_phrase = f"{bg} background"
    if texture != "plain" and rng.random() < 0.7:
        bg_phrase = f"{bg} gradient background" if texture == "gradient" else f"{texture} {bg} background"
    pos_phrase = rng.choice(POSITION_PHRASES[pos])
    form = rng.random()
    if say_bg and say_pos:
        if form < 0.5:
            return f"{obj} {pos_phrase} on {_article(bg_phrase)} {bg_phrase}"
        return f"{obj} on {_article(bg_phrase)} {bg_phrase}, {pos_phrase}"
    if say_bg:
        if form < 0.6:
            return f"{obj} on {_article(bg_phrase)} {bg_phrase}"
        if form < 0.8:
            return f"{bg_phrase} with {obj}"
        return f"{obj}, {bg_phrase}"
    if say_pos:
        return f"{obj} {pos_phrase}"
    if form < 0.6:
        return obj
    if form < 0.8:
        return obj.split(" ", 1)[1]           # bare: "red circle"
    return f"a picture of {obj}"


def captions(sc: Scenes, rng: random.Random | None = None, **kw) -> list[str]:
    rng = rng or random
    cols, shs, szs, pss, bgs, txs = (x.tolist() for x in (sc.color, sc.shape, sc.size, sc.pos, sc.bg, sc.texture))
    return [caption((COLOR_NAMES[c], SHAPES[s], SIZE_NAMES[z], POSITION_NAMES[p], BG_NAMES[b]), TEXTURES[t], rng, **kw)
            for c, s, z, p, b, t in zip(cols, shs, szs, pss, bgs, txs)]


def full_caption(t: tuple[str, str, str, str, str], form: int = 0) -> str:
    """A caption that names every attribute, in one of three fixed phrasings (for evaluation)."""
    color, shape, size, pos, bg = t
    obj = f"{size} {color} {shape}"
    obj = f"{_article(obj)} {obj}"
    pos_phrase = POSITION_PHRASES[pos][0]
    if form % 3 == 0:
        return f"{obj} {pos_phrase} on {_article(bg)} {bg} background"
    if form % 3 == 1:
        return f"{obj} on {_article(bg)} {bg} background, {pos_phrase}"
    return f"{bg} background with {obj} {pos_phrase}"


def eval_prompts() -> list[tuple[str, tuple[str, str, str, str, str]]]:
    """The held-out evaluation prompts: (prompt, attribute tuple)."""
    return [(full_caption(t, i), t) for i, t in enumerate(HELD_OUT)]


def bare_prompts() -> list[tuple[str, str, str]]:
    """'a red circle' for every colour and shape: (prompt, colour, shape)."""
    return [(f"{_article(c)} {c} {s}", c, s) for c in COLOR_NAMES for s in SHAPES]

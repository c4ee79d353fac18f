"""The scene renderer of the built-in dataset ``synthetic_streets`` (:mod:`kdlib.data.synthetic`).

:func:`render` draws sample ``index`` of a split from its own random stream, seeded by ``(seed, split, index,
GENERATOR_VERSION)``; :func:`render_scene` draws one scene from a given stream: a pinhole camera above a
straight street, objects placed in metres and projected, a z-buffer for occlusion, then lighting, haze, blur
and sensor noise (see :mod:`kdlib.data.synthetic` for why and what). It returns ``(image, label)`` arrays and
writes nothing; :mod:`kdlib.data.synthetic` writes the files in CamVid's layout and registers the dataset.
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["BICYCLIST", "BUILDING", "CAR", "CLASS_NAMES", "FENCE", "GENERATOR_VERSION", "NUM_CLASSES", "PALETTE",
           "PEDESTRIAN", "POLE", "ROAD", "SIDEWALK", "SIGN", "SKY", "SPLITS", "TREE", "VOID", "render",
           "render_scene"]

# --------------------------------------------------------------------------------------------------------------
# Classes and palette
# --------------------------------------------------------------------------------------------------------------

#: CamVid's 11 classes in CamVid (SegNet) order; the label value is the index.
CLASS_NAMES: Tuple[str, ...] = ("Sky", "Building", "Pole", "Road", "Sidewalk", "Tree", "SignSymbol", "Fence",
                                "Car", "Pedestrian", "Bicyclist")
#: The usual CamVid colours (SegNet tutorial), one RGB triple per class.
PALETTE: Tuple[Tuple[int, int, int], ...] = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192))
NUM_CLASSES = len(CLASS_NAMES)
#: Label value written for void / unlabelled pixels (CamVid's "Unlabelled"); the loader maps it to −1.
VOID = 11

SKY, BUILDING, POLE, ROAD, SIDEWALK, TREE, SIGN, FENCE, CAR, PEDESTRIAN, BICYCLIST = range(NUM_CLASSES)

#: Bump whenever the drawing code changes what is generated; stored in ``synthetic_streets.json``.
GENERATOR_VERSION = 1
SPLITS: Tuple[str, ...] = ("train", "val", "test")
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}


# --------------------------------------------------------------------------------------------------------------
# Small numeric helpers (all vectorised)
# --------------------------------------------------------------------------------------------------------------

def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)), np.float32)


def _choice(rng: np.random.Generator, p: Sequence[float]) -> int:
    """Index drawn with probabilities ``p`` (need not be normalised); cheaper than ``rng.choice`` for small p."""
    r = rng.uniform() * sum(p)
    acc = 0.0
    for i, q in enumerate(p):
        acc += q
        if r < acc:
            return i
    return len(p) - 1


def _value_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth noise with unit standard deviation and feature size ``cell`` pixels (bilinear value noise)."""
    gh, gw = int(h / cell) + 3, int(w / cell) + 3
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    oy, ox = rng.uniform(0, 1, 2)
    fy = (np.arange(h, dtype=np.float32) + 0.5) / cell + oy
    fx = (np.arange(w, dtype=np.float32) + 0.5) / cell + ox
    iy, ix = fy.astype(np.int64), fx.astype(np.int64)
    ty, tx = fy - iy, fx - ix
    ty, tx = ty * ty * (3 - 2 * ty), tx * tx * (3 - 2 * tx)          # smoothstep
    rows = grid[iy] * (1 - ty)[:, None] + grid[iy + 1] * ty[:, None]
    out = rows[:, ix] * (1 - tx)[None, :] + rows[:, ix + 1] * tx[None, :]
    return (out / max(float(out.std()), 1e-6)).astype(np.float32)


def _stripes(u: np.ndarray, du: np.ndarray, period: float, on0: float, on1: float) -> np.ndarray:
    """Box-filtered periodic pattern: fraction of ``[u - du/2, u + du/2]`` inside ``[k*period + on0, k*period + on1)``.

    ``du`` is the footprint of one pixel in the same units, so far-away (small) patterns average out to their
    duty cycle instead of aliasing into moiré.
    """
    duty = on1 - on0

    def measure(t: np.ndarray) -> np.ndarray:
        q = np.floor((t - on0) / period)
        return q * duty + np.minimum(t - on0 - q * period, duty)

    du = np.maximum(du, 1e-4)
    return np.clip((measure(u + du / 2) - measure(u - du / 2)) / du, 0.0, 1.0)


def _box_blur_gauss(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an (H, W, C) float image, edge-padded; radius 2*sigma rounded up."""
    if sigma < 0.15:
        return img
    r = max(1, int(math.ceil(2 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1, dtype=np.float32) / sigma) ** 2)
    k /= k.sum()
    h, w = img.shape[:2]
    p = np.pad(img, ((r, r), (0, 0), (0, 0)), mode="edge")
    out = sum(k[i] * p[i:i + h] for i in range(2 * r + 1))
    p = np.pad(out, ((0, 0), (r, r), (0, 0)), mode="edge")
    return sum(k[i] * p[:, i:i + w] for i in range(2 * r + 1)).astype(np.float32)


def _capsule(X: np.ndarray, Y: np.ndarray, a: Tuple[float, float], b: Tuple[float, float], r: float) -> np.ndarray:
    """Points within distance ``r`` of segment a-b (metric coordinates; X is (1, w), Y is (h, 1))."""
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    ll = dx * dx + dy * dy
    if ll < 1e-12:
        return (X - ax) ** 2 + (Y - ay) ** 2 <= r * r
    t = np.clip(((X - ax) * dx + (Y - ay) * dy) / ll, 0.0, 1.0)
    return (X - ax - t * dx) ** 2 + (Y - ay - t * dy) ** 2 <= r * r


def _polygon(X: np.ndarray, Y: np.ndarray, pts: Sequence[Tuple[float, float]]) -> np.ndarray:
    """Inside a convex polygon given counter-clockwise in (X, Y) with Y up."""
    inside = np.ones(np.broadcast_shapes(X.shape, Y.shape), bool)
    n = len(pts)
    for i in range(n):
        (x0, y0), (x1, y1) = pts[i], pts[(i + 1) % n]
        inside &= (x1 - x0) * (Y - y0) - (y1 - y0) * (X - x0) >= 0
    return inside


def _ellipse(X: np.ndarray, Y: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    return ((X - cx) / rx) ** 2 + ((Y - cy) / ry) ** 2 <= 1.0


# --------------------------------------------------------------------------------------------------------------
# Camera and canvas
# --------------------------------------------------------------------------------------------------------------

Z_NEAR = 1.0  # metres; faces nearer than this are clipped


@dataclass
class _Camera:
    """Pinhole camera looking along +Z, level, ``cam_h`` metres above the ground; Y is up, X to the right."""

    height: int
    width: int
    horizon: float       # image row of the horizon (pixel units, rows grow downwards)
    vp_x: float          # image column of the vanishing point
    focal: float         # focal length in pixels
    cam_h: float         # camera height in metres

    def x_of(self, X: float, Z: float) -> float:
        return self.vp_x + self.focal * X / Z

    def y_of(self, Y: float, Z: float) -> float:
        return self.horizon + self.focal * (self.cam_h - Y) / Z

    def z_of_row(self, y: float) -> float:
        """Depth of the ground point seen at image row ``y`` (below the horizon)."""
        return self.focal * self.cam_h / max(y - self.horizon, 1e-3)

    def half_width_at(self, Z: float) -> float:
        """Half the visible ground width (metres) at depth Z."""
        return (self.width / 2 + abs(self.vp_x - self.width / 2)) * Z / self.focal


Window = Tuple[slice, slice]


class _Canvas:
    """RGB float image, label map and z-buffer, plus per-image noise fields used as texture."""

    def __init__(self, rng: np.random.Generator, cam: _Camera, haze_rgb: np.ndarray, haze_dist: float) -> None:
        h, w = cam.height, cam.width
        self.cam = cam
        self.h, self.w = h, w
        self.img = np.zeros((h, w, 3), np.float32)
        self.lab = np.full((h, w), VOID, np.uint8)
        self.zbuf = np.full((h, w), np.inf, np.float32)
        self.xs = np.arange(w, dtype=np.float32) + 0.5
        self.ys = np.arange(h, dtype=np.float32) + 0.5
        scale = w / 256.0
        self.n_fine = rng.standard_normal((h, w), dtype=np.float32)
        self.n_med = _value_noise(rng, h, w, 3.0 * scale)
        self.n_coarse = _value_noise(rng, h, w, 14.0 * scale)
        self.haze_rgb = haze_rgb
        self.haze_dist = haze_dist

    # windows onto the image --------------------------------------------------------------------------------
    def _clip(self, x0: float, x1: float, y0: float, y1: float) -> Optional[Window]:
        c0, c1 = max(int(math.floor(x0)), 0), min(int(math.ceil(x1)) + 1, self.w)
        r0, r1 = max(int(math.floor(y0)), 0), min(int(math.ceil(y1)) + 1, self.h)
        if c0 >= c1 or r0 >= r1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def front(self, Z: float, X0: float, X1: float, Y0: float, Y1: float
              ) -> Optional[Tuple[Window, np.ndarray, np.ndarray, float]]:
        """Pixels of the frontal plane at depth Z covering metric box [X0, X1] x [Y0, Y1].

        Returns the window, X (1, w) and Y (h, 1) metric coordinates of the pixel centres and the size of one
        pixel in metres (for minimum widths and anti-aliased patterns).
        """
        if Z < Z_NEAR:
            return None
        cam = self.cam
        s = cam.focal / Z
        win = self._clip(cam.vp_x + X0 * s - 1, cam.vp_x + X1 * s + 1, cam.y_of(Y1, Z) - 1, cam.y_of(Y0, Z) + 1)
        if win is None:
            return None
        ys, xs = win
        X = ((self.xs[xs] - cam.vp_x) / s)[None, :]
        Y = (cam.cam_h - (self.ys[ys] - cam.horizon) / s)[:, None]
        return win, X, Y, 1.0 / s

    def side(self, Xs: float, z0: float, z1: float, Y0: float, Y1: float
             ) -> Optional[Tuple[Window, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Pixels of the street-parallel plane X = Xs for Z in [z0, z1], Y in [Y0, Y1].

        Returns the window, validity mask, per-pixel Z and Y (both (h, w)), and per-pixel footprints dZ, dY.
        """
        cam = self.cam
        if abs(Xs) < 0.05:
            return None
        z0 = max(z0, Z_NEAR)
        if z1 <= z0:
            return None
        xa, xb = cam.x_of(Xs, z0), cam.x_of(Xs, z1)
        ya = [cam.y_of(Y, z) for Y in (Y0, Y1) for z in (z0, z1)]
        win = self._clip(min(xa, xb) - 1, max(xa, xb) + 1, min(ya) - 1, max(ya) + 1)
        if win is None:
            return None
        ys, xs = win
        dx = self.xs[xs] - cam.vp_x
        dx = np.where(np.sign(dx) == np.sign(Xs), dx, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            Z = (cam.focal * Xs / dx)[None, :]
        Y = cam.cam_h - (self.ys[ys] - cam.horizon)[:, None] * Z / cam.focal
        Z = np.broadcast_to(Z, Y.shape)
        with np.errstate(invalid="ignore"):
            valid = (Z >= z0) & (Z <= z1) & (Y >= Y0) & (Y <= Y1)
        dZ = Z * Z / (cam.focal * abs(Xs))
        dY = Z / cam.focal
        return win, valid, Z, Y, dZ, dY

    # texture ---------------------------------------------------------------------------------------------
    def surface(self, win: Window, rgb: np.ndarray, fine: float = 0.04, coarse: float = 0.06,
                med: float = 0.0) -> np.ndarray:
        """Base colour modulated by the canvas noise fields (multiplicative texture)."""
        ys, xs = win
        t = 1.0 + fine * self.n_fine[ys, xs] + coarse * self.n_coarse[ys, xs]
        if med:
            t = t + med * self.n_med[ys, xs]
        return rgb[None, None, :] * t[..., None]

    def surface_at(self, win: Window, idx: Tuple[np.ndarray, np.ndarray], rgb: np.ndarray, fine: float = 0.04,
                   coarse: float = 0.06, med: float = 0.0) -> np.ndarray:
        """Like :meth:`surface` but only for the pixels ``idx`` of the window: returns (n, 3)."""
        ys, xs = win
        t = 1.0 + fine * self.n_fine[ys, xs][idx] + coarse * self.n_coarse[ys, xs][idx]
        if med:
            t = t + med * self.n_med[ys, xs][idx]
        return rgb[None, :] * t[:, None]

    # painting --------------------------------------------------------------------------------------------
    def visible(self, win: Window, mask: np.ndarray, depth: Union[float, np.ndarray]
                ) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """Indices (within the window) of the ``mask`` pixels nearer than what is there, or None."""
        with np.errstate(invalid="ignore"):
            m = mask & (self.zbuf[win] > depth)
        idx = np.nonzero(m)
        return idx if idx[0].size else None

    def put(self, win: Window, idx: Tuple[np.ndarray, np.ndarray], depth: Union[float, np.ndarray],
            rgb: np.ndarray, cls: int) -> None:
        """Write colours (n, 3), class and depth at indices from :meth:`visible` (no further z-test)."""
        self.img[win][idx] = rgb
        self.lab[win][idx] = cls
        self.zbuf[win][idx] = depth

    def paint(self, win: Window, mask: np.ndarray, depth: Union[float, np.ndarray], rgb: np.ndarray,
              cls: int) -> None:
        """Opaque paint with z-test: where ``mask`` and nearer than what is there, write colour, class, depth.

        ``rgb`` is one colour (3,) or a window-sized field (h, w, 3); ``depth`` a scalar or an (h, w) field.
        """
        zb = self.zbuf[win]
        with np.errstate(invalid="ignore"):
            m = mask & (zb > depth)
        if not m.any():
            return
        self.img[win][m] = rgb if rgb.ndim == 1 else np.broadcast_to(rgb, zb.shape + (3,))[m]
        self.lab[win][m] = cls
        zb[m] = depth if np.ndim(depth) == 0 else np.broadcast_to(depth, zb.shape)[m]

    def blend(self, win: Window, alpha: np.ndarray, label_mask: np.ndarray, depth: np.ndarray,
              rgb: np.ndarray, cls: int) -> None:
        """Semi-transparent paint (fences): blends colour by ``alpha`` and labels ``label_mask``, z-tested.

        Depth is written where the fence is mostly opaque (alpha >= 0.5), so haze treats it as the fence.
        """
        zb = self.zbuf[win]
        with np.errstate(invalid="ignore"):
            vis = zb > depth
        a = np.where(vis, alpha, 0.0).astype(np.float32)
        region = self.img[win]
        region[...] = region * (1 - a[..., None]) + np.broadcast_to(rgb, zb.shape + (3,)) * a[..., None]
        self.lab[win][label_mask & vis] = cls
        solid = vis & (a >= 0.5)
        zb[solid] = depth[solid]

    def apply_haze(self) -> None:
        """Aerial perspective: blend every painted pixel towards the horizon colour by its depth."""
        finite = np.isfinite(self.zbuf)
        fog = np.where(finite, 1.0 - np.exp(-np.where(finite, self.zbuf, 0.0) / self.haze_dist), 0.0)
        self.img += (self.haze_rgb[None, None, :] - self.img) * fog[..., None].astype(np.float32)


# --------------------------------------------------------------------------------------------------------------
# Colour styles (where the classes' colours overlap on purpose)
# --------------------------------------------------------------------------------------------------------------

#: (hue, saturation, value) ranges of the colour families; shared greys are where classes overlap.
_WALLS = (((0, 1), (0.0, 0.08), (0.3, 0.8)),          # concrete (grey like road / car / overcast sky)
          ((0.07, 0.13), (0.15, 0.4), (0.5, 0.85)),  # sandstone
          ((0.0, 0.05), (0.35, 0.7), (0.3, 0.6)),    # brick
          ((0, 1), (0.0, 0.05), (0.78, 0.95)),       # white plaster (like clouds)
          ((0, 1), (0.0, 0.2), (0.12, 0.32)))        # dark
_CARS = (((0, 1), (0, 0.04), (0.82, 0.95)),           # white
         ((0, 1), (0, 0.05), (0.55, 0.78)),           # silver
         ((0, 1), (0, 0.06), (0.3, 0.52)),            # grey (= road)
         ((0, 1), (0, 0.1), (0.05, 0.18)),            # black
         ((0.97, 1.02), (0.6, 0.9), (0.4, 0.8)),      # red
         ((0.55, 0.68), (0.4, 0.8), (0.25, 0.65)),    # blue
         ((0.25, 0.45), (0.3, 0.7), (0.2, 0.5)),      # green (= trees)
         ((0.08, 0.16), (0.4, 0.8), (0.5, 0.9)))      # yellow / beige
_METALS = (((0, 1), (0, 0.06), (0.3, 0.75)), ((0, 1), (0, 0.1), (0.05, 0.2)), ((0.3, 0.45), (0.3, 0.6), (0.15, 0.4)),
           ((0.04, 0.09), (0.4, 0.7), (0.25, 0.45)), ((0, 1), (0, 0.05), (0.8, 0.95)))


class _Style:
    """Per-image colour choices. ``d`` (difficulty) widens the palettes so that classes share colours."""

    def __init__(self, rng: np.random.Generator, d: float) -> None:
        self.rng, self.d = rng, d
        u = rng.uniform
        mode = _choice(rng, (0.5 - 0.2 * d, 0.3 + 0.15 * d, 0.15 + 0.05 * d, 0.05))
        self.sky_mode = int(mode)
        if mode == 0:    # clear blue
            top = _hsv(u(0.55, 0.62), u(0.35, 0.65), u(0.7, 0.95))
            hor = top * 0.4 + _hsv(u(0.5, 0.6), u(0.0, 0.12), u(0.85, 1.0)) * 0.6
            self.sun = u(0.6, 1.0)
        elif mode == 1:  # overcast grey (shares its colour with roads, buildings, cars)
            top = _hsv(u(0.5, 0.65), u(0.0, 0.1), u(0.55, 0.85))
            hor = top * u(1.0, 1.15)
            self.sun = u(0.0, 0.3)
        elif mode == 2:  # hazy / pale
            top = _hsv(u(0.1, 0.6), u(0.05, 0.2), u(0.7, 0.9))
            hor = top * 0.5 + _hsv(u(0.08, 0.15), u(0.05, 0.2), u(0.85, 0.98)) * 0.5
            self.sun = u(0.3, 0.6)
        else:            # dusk
            top = _hsv(u(0.6, 0.72), u(0.3, 0.6), u(0.35, 0.6))
            hor = _hsv(u(0.03, 0.1), u(0.4, 0.7), u(0.75, 0.95))
            self.sun = u(0.4, 0.8)
        self.sky_top, self.sky_hor = np.clip(top, 0, 1), np.clip(hor, 0, 1)
        self.sun_side = -1.0 if rng.uniform() < 0.5 else 1.0
        self.haze_dist = u(180.0, 900.0) / (0.5 + d)
        # road and sidewalk: greys that may coincide
        self.road = _hsv(u(0.0, 1.0), u(0.0, 0.08), u(0.22, 0.5 + 0.1 * d))
        k = rng.uniform()
        if k < 0.35 * d:
            self.sidewalk = self.road * u(0.9, 1.15)
        elif k < 0.6:
            self.sidewalk = _hsv(u(0.0, 1.0), u(0.0, 0.08), u(0.4, 0.72))
        elif k < 0.85:
            self.sidewalk = _hsv(u(0.0, 0.07), u(0.2, 0.45), u(0.4, 0.65))
        else:
            self.sidewalk = _hsv(u(0.08, 0.14), u(0.15, 0.35), u(0.55, 0.8))
        self.marking = _hsv(u(0.1, 0.15), u(0.0, 0.7) * float(rng.uniform() < 0.3), u(0.75, 0.95))

    def light(self, side: float) -> float:
        """Brightness factor of a wall facing ``side`` (−1 faces left, +1 right, 0 faces the camera)."""
        if side == 0:
            return 1.0 - 0.2 * self.sun
        return 1.0 if side == self.sun_side else 1.0 - 0.45 * self.sun

    def _pick(self, table: Sequence[Tuple[Tuple[float, float], ...]], p: Sequence[float]) -> np.ndarray:
        """Draw one colour from a table of (hue, saturation, value) ranges chosen with probabilities ``p``."""
        (h0, h1), (s0, s1), (v0, v1) = table[_choice(self.rng, p)]
        u = self.rng.uniform
        return _hsv(u(h0, h1), u(s0, s1), u(v0, v1))

    def wall(self) -> np.ndarray:
        if self.rng.uniform() < 0.08 + 0.3 * self.d:                # painted: any hue (incl. green / blue)
            return self._pick(((( 0, 1), (0.15, 0.5), (0.4, 0.85)),), (1.0,))
        return self._pick(_WALLS, (0.35, 0.2, 0.2, 0.13, 0.12))

    def glass(self) -> np.ndarray:
        if self.rng.uniform() < 0.4:                              # reflects the sky
            return self.sky_hor * self.rng.uniform(0.45, 0.9)
        return _hsv(self.rng.uniform(0.5, 0.65), self.rng.uniform(0.05, 0.35), self.rng.uniform(0.08, 0.3))

    def foliage(self) -> np.ndarray:
        r, u = self.rng, self.rng.uniform
        k = r.uniform()
        if k < 0.12 + 0.2 * self.d:                               # autumn: yellow / brown (like brick, signs)
            return _hsv(u(0.05, 0.15), u(0.35, 0.7), u(0.3, 0.6))
        if k < 0.2 + 0.3 * self.d:                                 # dark, nearly grey
            return _hsv(u(0.15, 0.4), u(0.05, 0.3), u(0.12, 0.35))
        return _hsv(u(0.2, 0.36), u(0.3, 0.7), u(0.18, 0.5))

    def trunk(self) -> np.ndarray:
        return _hsv(self.rng.uniform(0.05, 0.12), self.rng.uniform(0.1, 0.45), self.rng.uniform(0.15, 0.4))

    def car(self) -> np.ndarray:
        return self._pick(_CARS, (0.2, 0.2, 0.15, 0.15, 0.1, 0.08, 0.06, 0.06))

    def cloth(self) -> np.ndarray:
        u = self.rng.uniform
        if self.rng.uniform() < 0.5:
            return _hsv(u(0, 1), u(0.0, 0.15), u(0.08, 0.7))      # neutral
        return _hsv(u(0, 1), u(0.2, 0.8), u(0.2, 0.85))

    def skin(self) -> np.ndarray:
        return _hsv(self.rng.uniform(0.04, 0.1), self.rng.uniform(0.25, 0.6), self.rng.uniform(0.3, 0.9))

    def metal(self) -> np.ndarray:
        """Poles and fences: greys, black, dark green, rust, white."""
        return self._pick(_METALS, (0.45, 0.2, 0.15, 0.1, 0.1))

    def sign(self) -> Tuple[np.ndarray, np.ndarray]:
        """(face, border) colours of a traffic sign."""
        r, u = self.rng, self.rng.uniform
        white = _hsv(0, 0, u(0.8, 0.95))
        k = _choice(r, (0.3, 0.2, 0.15, 0.15, 0.1, 0.1))
        red, blue = _hsv(u(0.98, 1.01), u(0.7, 0.9), u(0.55, 0.85)), _hsv(u(0.57, 0.63), u(0.7, 0.9), u(0.4, 0.7))
        green, yellow = _hsv(u(0.3, 0.4), u(0.5, 0.8), u(0.3, 0.55)), _hsv(u(0.12, 0.16), u(0.7, 0.9), u(0.7, 0.9))
        brown, grey = _hsv(u(0.05, 0.09), u(0.5, 0.7), u(0.3, 0.45)), _hsv(0, 0, u(0.4, 0.65))
        return [(white, red), (blue, white), (green, white), (yellow, _hsv(0, 0, 0.1)), (brown, white),
                (grey, grey)][k]


# --------------------------------------------------------------------------------------------------------------
# Scene pieces
# --------------------------------------------------------------------------------------------------------------

@dataclass
class _Block:
    """A building: box from Z = z0 to z1, street-facing wall at X = xb, extending ``depth`` m away from the street."""

    side: float
    xb: float
    z0: float
    z1: float
    height: float
    depth: float


@dataclass
class _Street:
    road_l: float       # X of the left road edge (negative)
    road_r: float       # X of the right road edge (positive)
    walk_l: float       # X of the left sidewalk's outer edge
    walk_r: float
    crossings: List[Tuple[float, float, float]]   # (side, z0, z1) cross streets
    zebra: Optional[Tuple[float, float]]


def _draw_sky(cv: _Canvas, st: _Style, rng: np.random.Generator) -> None:
    cam = cv.cam
    t = np.clip((cv.ys - 0) / max(cam.horizon, 1.0), 0, 1)[:, None, None]
    col = st.sky_top[None, None, :] * (1 - t) + st.sky_hor[None, None, :] * t
    col = np.broadcast_to(col, (cv.h, cv.w, 3)).copy()
    # clouds: thresholded smooth noise, brighter (clear sky) or darker patches (overcast)
    cover = rng.uniform(-0.3, 1.2)
    cl = np.clip((cv.n_coarse + 0.6 * cv.n_med - cover) * 0.8, 0, 1)[..., None]
    cloud = _hsv(0, 0, rng.uniform(0.85, 1.0)) if st.sky_mode != 1 else st.sky_top * rng.uniform(0.75, 1.1)
    col = col * (1 - cl) + cloud * cl
    cv.img[...] = col * (1 + 0.01 * cv.n_fine[..., None])
    cv.lab[...] = SKY


def _draw_ground(cv: _Canvas, st: _Style, street: _Street, shadows: List[Tuple[float, float, float, float, float]],
                 blocks: List[_Block]) -> None:
    """Road, sidewalks, markings and cast shadows on every pixel below the horizon."""
    cam = cv.cam
    r0 = int(math.floor(cam.horizon + 0.5))
    if r0 >= cv.h:
        return
    win = (slice(max(r0, 0), cv.h), slice(0, cv.w))
    t = (cv.ys[win[0]] - cam.horizon)[:, None]
    t = np.maximum(t, 0.25)
    Z = np.broadcast_to(cam.focal * cam.cam_h / t, (t.shape[0], cv.w))
    X = (cv.xs[None, :] - cam.vp_x) * cam.cam_h / t
    dX = np.broadcast_to(Z / cam.focal, X.shape)
    dZ = Z * Z / (cam.focal * cam.cam_h)
    on_road = (X >= street.road_l) & (X <= street.road_r)
    left = X < street.road_l
    right = X > street.road_r
    cls = np.where(on_road, ROAD, SIDEWALK).astype(np.uint8)
    zrow = Z[:, 0]                                    # decreasing down the image

    def rows(z0: float, z1: float) -> slice:
        """Rows of the ground window whose depth lies in [z0, z1]."""
        return slice(int(np.searchsorted(-zrow, -z1, "left")), int(np.searchsorted(-zrow, -z0, "right")))

    for side, z0, z1 in street.crossings:
        rs = rows(z0, z1)
        beyond = left[rs] if side < 0 else right[rs]
        cls[rs][beyond] = ROAD
    road_col = cv.surface(win, st.road, fine=0.05 + 0.06 * st.d, coarse=0.08)
    walk_col = cv.surface(win, st.sidewalk, fine=0.05 + 0.05 * st.d, coarse=0.08)
    # sidewalk paving joints and the kerb
    tile = st.rng.uniform(0.4, 1.2)
    joints = np.maximum(_stripes(X, dX, tile, 0, 0.06), _stripes(Z, dZ, tile, 0, 0.06))
    walk_col = walk_col * (1 - 0.25 * joints[..., None])
    kerb = (np.abs(X - street.road_l) < 0.2) | (np.abs(X - street.road_r) < 0.2)
    walk_col = np.where(kerb[..., None], walk_col * st.rng.uniform(0.8, 1.3), walk_col)
    col = np.where((cls == ROAD)[..., None], road_col, walk_col)
    # repaired patches and wet spots on the asphalt
    patch = np.clip(cv.n_coarse[win] - 1.3, 0, 1)[..., None] * st.rng.uniform(0.0, 0.4)
    col = np.where((cls == ROAD)[..., None], col * (1 - patch), col)
    # lane markings (box-filtered so they fade into grey far away instead of aliasing)
    mk = np.zeros(X.shape, np.float32)
    centre = street.road_l + (street.road_r - street.road_l) * st.rng.uniform(0.4, 0.6)
    dash = _stripes(Z, dZ, st.rng.uniform(6, 12), 0, st.rng.uniform(2, 4))
    mk = np.maximum(mk, _stripes(X - centre + 0.07, dX, 1e6, 0, 0.14) * dash)
    for edge in (street.road_l + 0.3, street.road_r - 0.45):
        if st.rng.uniform() < 0.6:
            mk = np.maximum(mk, _stripes(X - edge, dX, 1e6, 0, 0.12))
    if street.zebra is not None:
        zz0, zz1 = street.zebra
        mk = np.maximum(mk, _stripes(X, dX, 1.0, 0, 0.5) * _stripes(Z - zz0, dZ, 1e6, 0, zz1 - zz0))
    mk *= (cls == ROAD) * st.rng.uniform(0.5, 1.0)
    col = col * (1 - mk[..., None]) + st.marking * mk[..., None]
    # cast shadows: buildings on the sunny side shade the street; objects shade the ground under them
    shade = np.zeros(X.shape, np.float32)
    reach = st.rng.uniform(0.1, 0.6)
    for b in blocks:
        if b.side == st.sun_side and b.z1 > Z_NEAR:
            rs = rows(b.z0, b.z1)
            shade[rs][b.side * (X[rs] - b.xb) > -reach * b.height] = 1.0
    for x0, x1, z0, z1, strength in shadows:
        rs = rows(z0 - 1.0, z1 + 1.0)
        inside = _stripes(X[rs] - x0, dX[rs], 1e6, 0, x1 - x0) * _stripes(Z[rs] - z0, dZ[rs], 1e6, 0, z1 - z0)
        np.maximum(shade[rs], inside * strength, out=shade[rs])
    col = col * (1 - (0.55 * st.sun) * shade[..., None])
    cv.paint(win, np.ones(X.shape, bool), Z, col, 0)
    cv.lab[win] = cls


def _draw_block(cv: _Canvas, st: _Style, b: _Block) -> None:
    """Street-facing wall and camera-facing wall of one building, with windows and a shop front."""
    rng = st.rng
    wall = st.wall()
    glass = st.glass()
    floor_h = rng.uniform(2.8, 3.6)
    bay = rng.uniform(2.0, 4.0)
    win_w = bay * rng.uniform(0.3, 0.65)
    win_h = floor_h * rng.uniform(0.35, 0.6)
    ground_h = floor_h * rng.uniform(1.0, 1.4)
    shop = _hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.6), rng.uniform(0.1, 0.7))
    has_windows = rng.uniform() < 0.9
    cornice = rng.uniform(0.3, 1.0)

    def facade(win: Window, idx: Tuple[np.ndarray, np.ndarray], u: np.ndarray, du: np.ndarray, Y: np.ndarray,
               dY: np.ndarray, light: float) -> np.ndarray:
        """Wall colour of the visible pixels ``idx`` (1-D arrays of wall coordinates u along, Y up, in metres)."""
        col = cv.surface_at(win, idx, wall * light, fine=0.04 + 0.05 * st.d, coarse=0.1, med=0.03)
        if has_windows:
            wv = _stripes(u, du, bay, (bay - win_w) / 2, (bay + win_w) / 2)
            wh = _stripes(Y - ground_h, dY, floor_h, 0.9, 0.9 + win_h) * (Y > ground_h) * (Y < b.height - cornice)
            cov = (wv * wh)[:, None]
            col = col * (1 - cov) + (glass * light)[None, :] * cov
        shopfront = ((Y > 0.2) & (Y < ground_h - 0.5)) * _stripes(u, du, 6.0, 0.5, 5.0)
        col = col * (1 - shopfront[:, None]) + (shop * light) * shopfront[:, None]
        return np.where((Y > b.height - cornice)[:, None], col * 0.8, col)

    side_face = cv.side(b.xb, b.z0, b.z1, 0.0, b.height)
    if side_face is not None:
        win, valid, Z, Y, dZ, dY = side_face
        idx = cv.visible(win, valid, Z)
        if idx is not None:
            z = Z[idx]
            col = facade(win, idx, z - b.z0, dZ[idx], Y[idx], dY[idx], st.light(-b.side))
            cv.put(win, idx, z, col, BUILDING)
    xa, xc = sorted((b.xb, b.xb + b.side * b.depth))
    fr = cv.front(b.z0, xa, xc, 0.0, b.height)
    if fr is not None:
        win, X, Y, px = fr
        idx = cv.visible(win, (X >= xa) & (X <= xc) & (Y >= 0) & (Y <= b.height), b.z0)
        if idx is not None:
            u = b.side * (X[0, idx[1]] - b.xb)
            pxs = np.full(u.shape, px, np.float32)
            col = facade(win, idx, u, pxs, Y[idx[0], 0], pxs, st.light(0))
            cv.put(win, idx, b.z0, col, BUILDING)


def _draw_far_building(cv: _Canvas, st: _Style, Z: float, x0: float, x1: float, height: float) -> None:
    fr = cv.front(Z, x0, x1, 0.0, height)
    if fr is None:
        return
    win, X, Y, px = fr
    idx = cv.visible(win, (X >= x0) & (X <= x1) & (Y >= 0) & (Y <= height), Z)
    if idx is None:
        return
    rng = st.rng
    col = cv.surface_at(win, idx, st.wall() * st.light(0), fine=0.03, coarse=0.05)
    floor_h, bay = rng.uniform(2.8, 3.6), rng.uniform(2.0, 4.0)
    pxs = np.full(idx[0].shape, px, np.float32)
    cov = (_stripes(X[0, idx[1]] - x0, pxs, bay, 0.6, bay - 0.6)
           * _stripes(Y[idx[0], 0], pxs, floor_h, 1.0, 2.2))[:, None]
    col = col * (1 - cov) + st.glass()[None, :] * cov
    cv.put(win, idx, Z, col, BUILDING)


def _draw_tree(cv: _Canvas, st: _Style, X: float, Z: float) -> None:
    rng = st.rng
    height = rng.uniform(4.0, 11.0)
    crown_r = height * rng.uniform(0.22, 0.38)
    trunk_w = rng.uniform(0.2, 0.45)
    fr = cv.front(Z, X - crown_r * 1.6, X + crown_r * 1.6, 0.0, height + crown_r * 0.3)
    if fr is None:
        return
    win, Xg, Yg, px = fr
    cy = height - crown_r
    trunk = _capsule(Xg, Yg, (X, 0.0), (X + rng.uniform(-0.3, 0.3), cy), max(trunk_w / 2, 0.55 * px))
    cv.paint(win, trunk, Z - crown_r * 0.2, cv.surface(win, st.trunk(), fine=0.08, coarse=0.1), TREE)
    # crown: union of a few ellipses with a noisy outline
    field = np.full(np.broadcast_shapes(Xg.shape, Yg.shape), np.inf, np.float32)
    for _ in range(int(rng.integers(2, 6))):
        cx, cyy = X + rng.uniform(-0.6, 0.6) * crown_r, cy + rng.uniform(-0.4, 0.3) * crown_r
        rx, ry = crown_r * rng.uniform(0.55, 1.0), crown_r * rng.uniform(0.5, 0.9)
        field = np.minimum(field, ((Xg - cx) / rx) ** 2 + ((Yg - cyy) / ry) ** 2)
    ys, xs = win
    field = field + 0.25 * cv.n_med[ys, xs]
    crown = field <= 1.0
    leaf = st.foliage()
    col = cv.surface(win, leaf, fine=0.12 + 0.1 * st.d, coarse=0.08, med=0.22)
    light = 1.0 + 0.25 * st.sun * np.clip((Yg - cy) / crown_r, -1, 1)
    cv.paint(win, crown, Z - crown_r, col * light[..., None], TREE)


def _draw_pole(cv: _Canvas, st: _Style, X: float, Z: float, towards: float, kind: int) -> None:
    """A pole; kind 0 plain, 1 street lamp (arm over the road), 2 sign post, 3 traffic light."""
    rng = st.rng
    height = {0: rng.uniform(2.5, 5.0), 1: rng.uniform(6.0, 9.0), 2: rng.uniform(2.2, 3.5),
              3: rng.uniform(3.0, 4.5)}[kind]
    width = rng.uniform(0.08, 0.2)
    arm = rng.uniform(1.0, 2.5) if kind == 1 else 0.0
    pad = 1.2 + arm
    fr = cv.front(Z, X - pad, X + pad, 0.0, height + 1.2)
    if fr is None:
        return
    win, Xg, Yg, px = fr
    metal = cv.surface(win, st.metal(), fine=0.05, coarse=0.05)
    half = max(width / 2, 0.55 * px)
    pole = (np.abs(Xg - X) <= half) & (Yg >= 0) & (Yg <= height)
    if kind == 1:
        tip = (X + towards * arm, height + 0.3)
        pole |= _capsule(Xg, Yg, (X, height - 0.2), tip, max(0.05, 0.55 * px))
        pole |= _ellipse(Xg, Yg, tip[0], tip[1] - 0.1, max(0.35, px), max(0.12, 0.6 * px))
    cv.paint(win, pole, Z, metal, POLE)
    if kind == 2:
        _draw_sign(cv, st, win, Xg, Yg, px, X, height - rng.uniform(0.2, 0.6), Z - 0.05)
        if rng.uniform() < 0.35:
            _draw_sign(cv, st, win, Xg, Yg, px, X, height - rng.uniform(0.9, 1.3), Z - 0.05)
    elif kind == 3:
        w2, h2 = rng.uniform(0.15, 0.22), rng.uniform(0.45, 0.6)
        cy = height - h2 * 0.6
        box = (np.abs(Xg - X) <= max(w2, px)) & (np.abs(Yg - cy) <= h2)
        housing = _hsv(0, 0, rng.uniform(0.05, 0.2)) if rng.uniform() < 0.7 else st.metal()
        col = cv.surface(win, housing, fine=0.05, coarse=0.0)
        lamp = int(rng.integers(0, 3))
        lamp_col = [_hsv(0.0, 0.9, 0.95), _hsv(0.1, 0.9, 0.95), _hsv(0.4, 0.8, 0.9)][lamp]
        ly = cy + h2 * 0.62 * (1 - lamp)
        lit = _ellipse(Xg, Yg, X, ly, max(w2 * 0.7, 0.5 * px), max(w2 * 0.7, 0.5 * px))
        col = np.where(lit[..., None], lamp_col, col)
        cv.paint(win, box, Z - 0.05, col, SIGN)


def _draw_sign(cv: _Canvas, st: _Style, win: Window, Xg: np.ndarray, Yg: np.ndarray, px: float, cx: float,
               cy: float, Z: float) -> None:
    rng = st.rng
    face, border = st.sign()
    size = max(rng.uniform(0.3, 0.45), 1.2 * px)
    shape = int(rng.integers(0, 4))
    if shape == 0:
        outer = _ellipse(Xg, Yg, cx, cy, size, size)
        inner = _ellipse(Xg, Yg, cx, cy, size * 0.75, size * 0.75)
    elif shape == 1:
        pts = [(cx - size, cy - size * 0.8), (cx + size, cy - size * 0.8), (cx, cy + size)]
        outer = _polygon(Xg, Yg, pts)
        inner = _polygon(Xg, Yg, [(cx - size * 0.6, cy - size * 0.5), (cx + size * 0.6, cy - size * 0.5),
                                  (cx, cy + size * 0.55)])
    elif shape == 2:
        wx = size * rng.uniform(1.0, 2.2)
        outer = (np.abs(Xg - cx) <= wx) & (np.abs(Yg - cy) <= size * 0.8)
        inner = (np.abs(Xg - cx) <= wx - size * 0.15) & (np.abs(Yg - cy) <= size * 0.65)
    else:
        outer = np.abs(Xg - cx) + np.abs(Yg - cy) <= size * 1.1
        inner = np.abs(Xg - cx) + np.abs(Yg - cy) <= size * 0.8
    col = np.where(inner[..., None], face, border)
    col = cv.surface(win, np.ones(3, np.float32), fine=0.04, coarse=0.03) * col
    cv.paint(win, outer, Z, col, SIGN)


def _draw_car(cv: _Canvas, st: _Style, X: float, Z: float) -> None:
    """A car as a box: the camera-facing end (rear or front) plus the side that faces the camera."""
    rng = st.rng
    kind = rng.uniform()
    width = rng.uniform(1.65, 1.9)
    length = rng.uniform(3.8, 4.8) if kind < 0.8 else rng.uniform(4.5, 6.0)
    height = rng.uniform(1.35, 1.55) if kind < 0.8 else rng.uniform(1.8, 2.4)
    belt = height * rng.uniform(0.5, 0.62)
    inset = rng.uniform(0.08, 0.2)
    body = st.car()
    glass = st.glass() * 0.7
    tyre = _hsv(0, 0, rng.uniform(0.04, 0.12))
    front_end = rng.uniform() < 0.3          # oncoming: we see the headlights
    x0, x1 = X - width / 2, X + width / 2
    # the visible side (the one facing the camera's X = 0)
    xs_ = x1 if x1 < 0 else (x0 if x0 > 0 else None)
    if xs_ is not None:
        sd = cv.side(xs_, Z, Z + length, 0.0, height)
        if sd is not None:
            win, valid, Zs, Ys, dZ, dY = sd
            u = Zs - Z
            light = st.light(-np.sign(xs_))
            col = cv.surface(win, body * light, fine=0.03, coarse=0.04)
            cabin = (Ys > belt) & (u > length * 0.22) & (u < length * (0.8 if kind < 0.8 else 0.95))
            m = valid & ((Ys <= belt) | cabin)
            col = np.where((cabin & (Ys > belt + 0.06) & (Ys < height - 0.06))[..., None], glass, col)
            wheel = np.zeros(m.shape, bool)
            for wz in (0.75, length - 0.8):
                with np.errstate(invalid="ignore"):
                    wheel |= ((u - wz) / 0.34) ** 2 + ((Ys - 0.32) / 0.32) ** 2 <= 1.0
            col = np.where(wheel[..., None], tyre, col)
            cv.paint(win, m | (wheel & np.isfinite(Zs) & (Zs >= Z) & (Zs <= Z + length)), Zs, col, CAR)
    fr = cv.front(Z, x0, x1, 0.0, height)
    if fr is None:
        return
    win, Xg, Yg, px = fr
    lower = (Xg >= x0) & (Xg <= x1) & (Yg >= 0.18) & (Yg <= belt)
    upper = (Xg >= x0 + inset) & (Xg <= x1 - inset) & (Yg > belt) & (Yg <= height)
    tyres = (((Xg >= x0 + 0.05) & (Xg <= x0 + 0.3)) | ((Xg >= x1 - 0.3) & (Xg <= x1 - 0.05))) & (Yg >= 0) & (Yg < 0.3)
    col = cv.surface(win, body * st.light(0), fine=0.03, coarse=0.04)
    shape = np.broadcast_shapes(Xg.shape, Yg.shape)
    col = np.broadcast_to(col, shape + (3,)).copy()
    wind = upper & (Xg >= x0 + inset + 0.08) & (Xg <= x1 - inset - 0.08) & (Yg > belt + 0.06) & (Yg < height - 0.08)
    col[wind] = glass
    bumper = lower & (Yg < 0.45)
    col[bumper] = col[bumper] * 0.55
    lamp_col = _hsv(0.12, 0.2, 0.95) if front_end else _hsv(0.0, 0.85, rng.uniform(0.6, 0.95))
    lamps = lower & (Yg > belt - 0.3) & (Yg < belt - 0.08) & ((Xg < x0 + 0.3) | (Xg > x1 - 0.3))
    col[lamps] = lamp_col
    plate = lower & (np.abs(Xg - X) < 0.26) & (Yg > 0.5) & (Yg < 0.62)
    col[plate] = _hsv(0.14, 0.8 * float(rng.uniform() < 0.5), 0.9)
    col[tyres] = tyre
    cv.paint(win, lower | upper | tyres, Z, col, CAR)


def _draw_person(cv: _Canvas, st: _Style, X: float, Z: float) -> None:
    rng = st.rng
    h = rng.normal(1.72, 0.1) * (0.65 if rng.uniform() < 0.1 else 1.0)    # some children
    fr = cv.front(Z, X - 0.6, X + 0.6, 0.0, h + 0.1)
    if fr is None:
        return
    win, Xg, Yg, px = fr
    r = lambda m: max(m, 0.55 * px)                                   # at least one pixel wide
    stride = rng.uniform(-0.18, 0.18)
    trousers, shirt, skin = st.cloth(), st.cloth(), st.skin()
    hip, shoulder = 0.5 * h, 0.81 * h
    legs = _capsule(Xg, Yg, (X - 0.08, hip), (X - 0.08 + stride, 0.05), r(0.07))
    legs |= _capsule(Xg, Yg, (X + 0.08, hip), (X + 0.08 - stride, 0.05), r(0.07))
    torso = _polygon(Xg, Yg, [(X - 0.16, hip - 0.05), (X + 0.16, hip - 0.05), (X + 0.21, shoulder),
                              (X - 0.21, shoulder)])
    if rng.uniform() < 0.3:                                           # coat / dress down to the knees
        torso |= _polygon(Xg, Yg, [(X - 0.2, 0.3 * h), (X + 0.2, 0.3 * h), (X + 0.17, hip), (X - 0.17, hip)])
    swing = rng.uniform(-0.12, 0.12)
    arms = _capsule(Xg, Yg, (X - 0.22, shoulder - 0.04), (X - 0.26 + swing, hip - 0.02), r(0.05))
    arms |= _capsule(Xg, Yg, (X + 0.22, shoulder - 0.04), (X + 0.26 - swing, hip - 0.02), r(0.05))
    head = _ellipse(Xg, Yg, X, 0.91 * h, r(0.095), r(0.115))
    hair = head & (Yg > 0.93 * h)
    cv.paint(win, legs, Z, cv.surface(win, trousers, fine=0.05, coarse=0.03), PEDESTRIAN)
    cv.paint(win, torso | arms, Z - 0.01, cv.surface(win, shirt, fine=0.05, coarse=0.03), PEDESTRIAN)
    col = np.where(hair[..., None], _hsv(0.07, 0.5, rng.uniform(0.05, 0.5)), skin)
    cv.paint(win, head, Z - 0.02, cv.surface(win, np.ones(3, np.float32), fine=0.03) * col, PEDESTRIAN)
    if rng.uniform() < 0.25:                                          # a bag (still the pedestrian)
        bag = (np.abs(Xg - X - 0.3) < 0.12) & (Yg > hip - 0.35) & (Yg < hip)
        cv.paint(win, bag, Z - 0.03, cv.surface(win, st.cloth(), fine=0.04), PEDESTRIAN)


def _draw_bicyclist(cv: _Canvas, st: _Style, X: float, Z: float) -> None:
    """A cyclist with bicycle: side view (wheels as rings, frame) or seen from behind / ahead."""
    rng = st.rng
    side_view = rng.uniform() < 0.55
    facing = -1.0 if rng.uniform() < 0.5 else 1.0
    fr = cv.front(Z, X - 1.1, X + 1.1, 0.0, 1.95)
    if fr is None:
        return
    win, Xg, Yg, px = fr
    r = lambda m: max(m, 0.55 * px)
    frame_col, shirt, trousers, skin = st.metal(), st.cloth(), st.cloth(), st.skin()
    dark = _hsv(0, 0, rng.uniform(0.05, 0.15))
    rw = 0.34
    if side_view:
        back, front = (X - 0.52 * facing, rw), (X + 0.52 * facing, rw)
        rings = np.zeros(np.broadcast_shapes(Xg.shape, Yg.shape), bool)
        for cx, cy in (back, front):
            d2 = (Xg - cx) ** 2 + (Yg - cy) ** 2
            rings |= (d2 <= rw ** 2) & (d2 >= (rw - r(0.06)) ** 2)
            rings |= d2 <= r(0.04) ** 2
        seat, bar = (X - 0.2 * facing, 0.95), (X + 0.42 * facing, 1.0)
        crank = (X, 0.32)
        frame = (_capsule(Xg, Yg, back, seat, r(0.025)) | _capsule(Xg, Yg, seat, crank, r(0.025))
                 | _capsule(Xg, Yg, crank, back, r(0.025)) | _capsule(Xg, Yg, seat, (X + 0.35 * facing, 0.9), r(0.03))
                 | _capsule(Xg, Yg, (X + 0.35 * facing, 0.9), crank, r(0.03))
                 | _capsule(Xg, Yg, bar, front, r(0.025)))
        hip, sh = (X - 0.18 * facing, 1.05), (X + 0.12 * facing, 1.5)
        body = _capsule(Xg, Yg, hip, sh, r(0.16))
        legs = (_capsule(Xg, Yg, hip, (X + 0.1 * facing, 0.62), r(0.075))
                | _capsule(Xg, Yg, (X + 0.1 * facing, 0.62), (X + rng.uniform(-0.15, 0.15), 0.3), r(0.065)))
        arms = _capsule(Xg, Yg, (sh[0], sh[1] - 0.05), bar, r(0.05))
        head = _ellipse(Xg, Yg, sh[0] + 0.1 * facing, 1.72, r(0.11), r(0.12))
    else:
        rings = (np.abs(Xg - X) <= r(0.035)) & (Yg >= 0) & (Yg <= 2 * rw)
        frame = ((np.abs(Xg - X) <= r(0.03)) & (Yg >= 0.3) & (Yg <= 0.95)) | (
            (np.abs(Xg - X) <= 0.28) & (np.abs(Yg - 1.02) <= r(0.025)))
        hip, sh = (X, 1.0), (X, 1.48)
        body = _polygon(Xg, Yg, [(X - 0.16, 0.95), (X + 0.16, 0.95), (X + 0.21, 1.55), (X - 0.21, 1.55)])
        legs = (_capsule(Xg, Yg, (X - 0.09, 0.98), (X - 0.1, 0.35), r(0.07))
                | _capsule(Xg, Yg, (X + 0.09, 0.98), (X + 0.1, 0.5), r(0.07)))
        arms = (_capsule(Xg, Yg, (X - 0.2, 1.5), (X - 0.28, 1.02), r(0.05))
                | _capsule(Xg, Yg, (X + 0.2, 1.5), (X + 0.28, 1.02), r(0.05)))
        head = _ellipse(Xg, Yg, X, 1.7, r(0.1), r(0.12))
    cv.paint(win, rings, Z, cv.surface(win, dark, fine=0.04), BICYCLIST)
    cv.paint(win, frame, Z - 0.01, cv.surface(win, frame_col, fine=0.04), BICYCLIST)
    cv.paint(win, legs, Z - 0.02, cv.surface(win, trousers, fine=0.05), BICYCLIST)
    cv.paint(win, body | arms, Z - 0.03, cv.surface(win, shirt, fine=0.05), BICYCLIST)
    helmet = rng.uniform() < 0.5
    col = np.where((Yg > 1.72)[..., None], st.cloth() if helmet else _hsv(0.07, 0.5, 0.2), skin)
    cv.paint(win, head, Z - 0.04, cv.surface(win, np.ones(3, np.float32), fine=0.03) * col, BICYCLIST)


def _draw_clutter(cv: _Canvas, st: _Style, X: float, Z: float) -> None:
    """Unlabelled street furniture (bins, boxes, bollards): void, ignored by training and evaluation."""
    rng = st.rng
    w, h = rng.uniform(0.3, 1.0), rng.uniform(0.4, 1.3)
    fr = cv.front(Z, X - w, X + w, 0.0, h)
    if fr is None:
        return
    win, Xg, Yg, px = fr
    m = (np.abs(Xg - X) <= max(w / 2, px)) & (Yg >= 0) & (Yg <= h)
    col = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.7), rng.uniform(0.1, 0.8))
    cv.paint(win, m, Z, cv.surface(win, col, fine=0.05, coarse=0.05), VOID)


def _draw_fence(cv: _Canvas, st: _Style, xf: float, z0: float, z1: float) -> None:
    """A street-parallel fence (railings, planks or chain link): partly transparent, labelled as a whole."""
    rng = st.rng
    height = rng.uniform(0.9, 1.9)
    sd = cv.side(xf, z0, z1, 0.0, height)
    if sd is None:
        return
    win, valid, Z, Y, dZ, dY = sd
    kind = int(rng.integers(0, 3))
    col = cv.surface(win, st.metal() * st.light(-np.sign(xf)), fine=0.05, coarse=0.05)
    with np.errstate(invalid="ignore"):
        posts = _stripes(np.nan_to_num(Z), np.nan_to_num(dZ, nan=1.0), rng.uniform(2.0, 3.5), 0, 0.12)
        rails = np.maximum((Y > height - 0.1), (np.abs(Y - 0.15) < 0.06)).astype(np.float32)
        if kind == 0:       # railings
            bars = _stripes(np.nan_to_num(Z), np.nan_to_num(dZ, nan=1.0), rng.uniform(0.12, 0.25), 0, 0.045)
        elif kind == 1:     # planks with gaps
            bars = 1.0 - _stripes(np.nan_to_num(Z), np.nan_to_num(dZ, nan=1.0), rng.uniform(0.15, 0.3), 0, 0.03)
            col = cv.surface(win, _hsv(rng.uniform(0.05, 0.1), rng.uniform(0.3, 0.6), rng.uniform(0.25, 0.6)),
                             fine=0.08, coarse=0.08, med=0.05)
        else:               # chain link
            bars = np.full(Z.shape, rng.uniform(0.35, 0.55), np.float32)
    alpha = np.clip(np.maximum(np.maximum(bars, posts), rails), 0, 1) * valid
    cv.blend(win, alpha, valid, np.nan_to_num(Z, nan=np.inf), col, FENCE)


# --------------------------------------------------------------------------------------------------------------
# Whole scene
# --------------------------------------------------------------------------------------------------------------

def _layout_blocks(rng: np.random.Generator, side: float, xb: float, z_end: float, crossings: List,
                   fences: List, trees: List) -> List[_Block]:
    """Buildings along one side of the street, with cross streets and open gaps (trees, fences) between them."""
    blocks: List[_Block] = []
    z = rng.uniform(-15.0, 3.0)
    while z < z_end:
        k = rng.uniform()
        if k < 0.12 and z > 8:                                    # cross street
            length = rng.uniform(8.0, 16.0)
            crossings.append((side, z, z + length))
            blocks.append(_Block(side, xb + side * rng.uniform(25, 60), z - 20, z + length + 20,
                                 rng.uniform(8, 25), 15.0))
        elif k < 0.32:                                            # open gap: fence, trees, buildings set back
            length = rng.uniform(6.0, 25.0)
            if rng.uniform() < 0.7:
                fences.append((xb, z, z + length))
            for _ in range(int(rng.integers(0, 4))):
                trees.append((xb + side * rng.uniform(1.5, 8.0), rng.uniform(z, z + length)))
            blocks.append(_Block(side, xb + side * rng.uniform(10, 30), z - 5, z + length + 5,
                                 rng.uniform(6, 20), 15.0))
        else:
            length = rng.uniform(8.0, 35.0)
            tall = rng.uniform() < 0.1
            blocks.append(_Block(side, xb, z, z + length, rng.uniform(16, 35) if tall else rng.uniform(5, 16),
                                 rng.uniform(8, 20)))
        z += length
    return blocks


def render_scene(rng: np.random.Generator, height: int, width: int, difficulty: float
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """Draw one street scene. Returns ``(image uint8 (H, W, 3), label uint8 (H, W))``; labels 0..10, 11 void."""
    d = float(difficulty)
    st = _Style(rng, d)
    u = rng.uniform
    cam = _Camera(height, width, horizon=height * u(0.36, 0.52), vp_x=width * (0.5 + u(-0.12, 0.12)),
                  focal=width * u(0.75, 1.0), cam_h=u(1.3, 1.8))
    cv = _Canvas(rng, cam, st.sky_hor * 0.9 + 0.05, st.haze_dist)

    # --- the street, in metres (camera at X = 0) ---
    road_l, road_r = -u(1.5, 6.0), u(2.5, 8.0)
    walk_l, walk_r = road_l - u(1.5, 4.5), road_r + u(1.5, 4.5)
    z_end = u(60.0, 250.0)
    crossings: List[Tuple[float, float, float]] = []
    fences: List[Tuple[float, float, float]] = []
    trees: List[Tuple[float, float]] = []
    blocks: List[_Block] = []
    for side, xb in ((-1.0, walk_l), (1.0, walk_r)):
        if u() < 0.92:
            blocks += _layout_blocks(rng, side, xb, z_end, crossings, fences, trees)
        else:                                                    # no buildings: a park or a wall of trees
            for _ in range(int(rng.integers(4, 12))):
                trees.append((xb + side * u(0.5, 10.0), u(5.0, z_end)))
            fences.append((xb, u(0.0, 10.0), z_end))
    zebra = None
    if u() < 0.3:
        zz = u(8.0, 30.0)
        zebra = (zz, zz + u(2.5, 4.0))
    street = _Street(road_l, road_r, walk_l, walk_r, crossings, zebra)

    # --- objects on the street ---
    shadows: List[Tuple[float, float, float, float, float]] = []
    z_min = cam.z_of_row(height - 0.5) * 0.85
    objects: List[Tuple[str, float, float]] = []

    def z_visible(x: float, zmax: float, zmin: float = 0.0) -> Optional[float]:
        lo = max(z_min, zmin, abs(x) * cam.focal / (width * 0.55 + abs(cam.vp_x - width / 2)))
        if lo >= zmax:
            return None
        return float(math.exp(u(math.log(lo), math.log(zmax))))

    clutter = 0.5 + d
    for side, edge, outer in ((-1.0, road_l, walk_l), (1.0, road_r, walk_r)):
        kerb = edge + side * u(0.3, 0.6)
        for _ in range(int(rng.poisson(1.2 * clutter)) + 1):        # poles along the kerb
            z = z_visible(kerb, 70.0)
            if z is not None:
                kind = _choice(rng, (0.2, 0.3, 0.35, 0.15))
                objects.append((f"pole{kind}", kerb + side * u(0.0, 0.3), z))
        for _ in range(int(rng.poisson(2.2 * clutter))):            # street trees
            x = edge + side * u(0.6, max(0.7, abs(outer - edge) - 0.3))
            z = z_visible(x, 90.0)
            if z is not None:
                trees.append((x, z))
        for _ in range(int(rng.poisson(1.8 * clutter))):            # pedestrians, sometimes in groups
            x = edge + side * u(0.4, abs(outer - edge) - 0.2)
            z = z_visible(x, 45.0)
            if z is None:
                continue
            for _ in range(1 if u() < 0.7 else int(rng.integers(2, 4))):
                objects.append(("person", x + u(-0.5, 0.5), z + u(-0.8, 0.8)))
        for _ in range(int(rng.poisson(0.4 * clutter))):            # unlabelled street furniture
            x = edge + side * u(0.3, abs(outer - edge))
            z = z_visible(x, 50.0)
            if z is not None:
                objects.append(("clutter", x, z))
        if u() < 0.15 * clutter:                                    # fence along the kerb
            z0 = u(z_min, 30.0)
            fences.append((edge + side * 0.25, z0, z0 + u(5.0, 40.0)))
    # cars: parked along both kerbs and driving in lanes
    lanes = [road_l + 1.0, road_r - 1.0] + list(np.arange(road_l + 2.6, road_r - 1.8, 3.2))
    for x in lanes:
        zs: List[float] = []
        for _ in range(int(rng.poisson(0.8 * clutter))):
            z = z_visible(x, 80.0, 5.0)
            if z is not None and all(abs(z - o) > 6.0 for o in zs):
                zs.append(z)
                objects.append(("car", x + u(-0.3, 0.3), z))
    for _ in range(int(rng.poisson(0.6 * clutter))):                 # cyclists near the kerbs
        x = (road_l + u(0.5, 1.3)) if u() < 0.5 else (road_r - u(0.5, 1.3))
        z = z_visible(x, 40.0)
        if z is not None:
            objects.append(("bicyclist", x, z))
    if zebra is not None:                                            # people on the zebra crossing
        for _ in range(int(rng.integers(0, 4))):
            objects.append(("person", u(road_l, road_r), u(*zebra)))

    # --- draw: sky, ground, buildings, far skyline, objects, then fences (transparent) far to near ---
    _draw_sky(cv, st, rng)
    # object shadows are known from the positions alone, so the ground is drawn with them
    for name, x, z in objects:
        if name == "car":
            shadows.append((x - 1.0, x + 1.0, z - 0.3, z + 4.5, 0.7))
        elif name in ("person", "bicyclist"):
            shadows.append((x - 0.35, x + 0.35, z - 0.2, z + 0.5, 0.45))
    _draw_ground(cv, st, street, shadows, blocks)
    for b in blocks:
        _draw_block(cv, st, b)
    far = z_end + u(10.0, 150.0)
    if u() < 0.5:                                                    # the street ends at a wall of buildings
        x, x_stop = -cam.half_width_at(far) * 1.1, cam.half_width_at(far) * 1.1
        while x < x_stop:
            w = u(10.0, 50.0)
            _draw_far_building(cv, st, far + u(0, 20), x, x + w, u(6.0, 30.0))
            x += w
    for _ in range(int(rng.integers(2, 8))):                         # distant skyline
        zf = u(far, far + 400.0)
        xc = u(-1.0, 1.0) * cam.half_width_at(zf)
        _draw_far_building(cv, st, zf, xc, xc + u(15.0, 80.0), u(15.0, 90.0))
    for x, z in trees:
        _draw_tree(cv, st, x, z)
    for name, x, z in objects:
        if name.startswith("pole"):
            _draw_pole(cv, st, x, z, 1.0 if x < 0 else -1.0, int(name[4:]))
        elif name == "car":
            _draw_car(cv, st, x, z)
        elif name == "person":
            _draw_person(cv, st, x, z)
        elif name == "bicyclist":
            _draw_bicyclist(cv, st, x, z)
        elif name == "clutter":
            _draw_clutter(cv, st, x, z)
    for xf, z0, z1 in sorted(fences, key=lambda f: -f[1]):
        _draw_fence(cv, st, xf, z0, z1)
    cv.apply_haze()
    return _finish(cv, st, rng), cv.lab


def _finish(cv: _Canvas, st: _Style, rng: np.random.Generator) -> np.ndarray:
    """Camera effects: exposure, colour cast, contrast, vignetting, blur, sensor noise; returns uint8 RGB."""
    d = st.d
    img = cv.img
    gain = rng.uniform(1 - 0.2 * d, 1 + 0.2 * d, 3).astype(np.float32) * rng.uniform(0.75 - 0.2 * d, 1.15 + 0.15 * d)
    img = img * gain
    mean = img.mean()
    img = (img - mean) * rng.uniform(0.8 - 0.2 * d, 1.15) + mean
    yy = (cv.ys[:, None] / cv.h - 0.5) * 2
    xx = (cv.xs[None, :] / cv.w - 0.5) * 2
    img = img * (1 - rng.uniform(0, 0.3) * (xx ** 2 + yy ** 2) / 2)[..., None]
    img = _box_blur_gauss(img, rng.uniform(0.2, 0.45 + 0.5 * d) * cv.w / 256 * 1.5)
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(0.006, 0.01 + 0.03 * d))
    img = np.clip(img, 0, 1) ** rng.uniform(0.85, 1.15)
    return (img * 255 + 0.5).astype(np.uint8)


def render(seed: int, split: str, index: int, height: int, width: int, difficulty: float
           ) -> Tuple[np.ndarray, np.ndarray]:
    """Render sample ``index`` of ``split``: its random stream depends only on (seed, split, index, version)."""
    rng = np.random.default_rng([int(seed), _SPLIT_CODE[split], int(index), GENERATOR_VERSION])
    return render_scene(rng, height, width, difficulty)

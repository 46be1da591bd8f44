"""Synthetic colour fundus photographs with ICDR-graded diabetic retinopathy lesions.

Real fundus data cannot ship with drgrader, so demos and tests use images made here. They are
not medically accurate; they are made to exercise the real pipeline: a circular retina on a
black surround in frames of several aspect ratios (sometimes clipped top and bottom), uneven
illumination, an optic disc on the nasal side (mirrored between eyes), a darker macula, a
branching vessel tree, and lesions whose kind and number follow the ICDR grade:

* 1 mild: a few microaneurysms.
* 2 moderate: more microaneurysms, dot/blot/flame haemorrhages, hard exudates, cotton-wool spots.
* 3 severe NPDR: many haemorrhages in all four quadrants and venous beading.
* 4 proliferative: neovascularisation at the disc or elsewhere and/or a preretinal haemorrhage.

Lesion sizes scale with the fundus radius so that the grade stays visible after cropping the
fundus and shrinking it to 128 px (a microaneurysm is still about 2 px across there).

``make_dataset`` writes the Kaggle EyePACS layout (``images/<patient>_<eye>.jpeg`` and
``trainLabels.csv`` with columns ``image,level``).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from drgrader.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from drgrader.progress import progress as progress_bar

GENERATOR_VERSION = 1  # bump when the images change, so old outputs are not reused
MARKER_NAME = ".drgrader-synth.json"
LABELS_NAME = "trainLabels.csv"
EYES = ("left", "right")
DEFAULT_GRADE_PROBS = (0.73, 0.07, 0.15, 0.025, 0.025)  # EyePACS-like class frequencies
SAME_GRADE_PROB = 0.7  # chance that a patient's second eye has the first eye's grade
ASPECTS = {"3:2": 1.5, "4:3": 4 / 3, "1:1": 1.0}
JPEG_QUALITY = 90
IMAGE_NAME = re.compile(r"^\d+_(left|right)\.jpeg$")

# Photometric settings of a few made-up cameras (``make_fundus(camera=...)``):
# gain = RGB white balance, exposure = overall brightness, gamma = output exponent,
# vignette = brightness lost at the rim, blur = Gaussian sigma in px at fundus radius 240 px,
# noise = sensor noise standard deviation in 8-bit levels.
DEFAULT_CAMERA: dict = {
    "gain": (1.0, 1.0, 1.0),
    "exposure": 1.0,
    "gamma": 1.0,
    "vignette": 0.35,
    "blur": 0.6,
    "noise": 2.0,
}
CAMERAS: dict[str, dict] = {
    "cam1": DEFAULT_CAMERA,
    "cam2": {"gain": (1.06, 0.94, 0.80), "exposure": 1.08, "gamma": 0.92, "vignette": 0.30,
             "blur": 0.5, "noise": 1.5},
    "cam3": {"gain": (0.94, 1.04, 1.12), "exposure": 0.95, "gamma": 1.05, "vignette": 0.40,
             "blur": 0.8, "noise": 2.5},
    "cam4": {"gain": (1.00, 0.88, 0.78), "exposure": 0.82, "gamma": 1.10, "vignette": 0.50,
             "blur": 1.1, "noise": 3.5},
    "cam5": {"gain": (1.10, 1.00, 0.92), "exposure": 0.92, "gamma": 0.95, "vignette": 0.45,
             "blur": 1.3, "noise": 4.0},
}
# Frame of each camera: aspect ratio and whether the fundus circle is clipped top and bottom.
CAMERA_FRAMES: dict[str, tuple[str, bool]] = {
    "cam1": ("3:2", False),
    "cam2": ("3:2", True),
    "cam3": ("4:3", True),
    "cam4": ("4:3", False),
    "cam5": ("1:1", False),
}

# Colours. "Absorbing" layers multiply the fundus colour by (1 - alpha * (1 - factor)):
# blood absorbs green and blue much more than red.
VEIN_FACTOR = np.array([0.50, 0.28, 0.30], np.float32)
ARTERY_FACTOR = np.array([0.76, 0.52, 0.52], np.float32)
BLOOD_FACTOR = np.array([0.48, 0.20, 0.22], np.float32)  # microaneurysms, haemorrhages
NEW_VESSEL_FACTOR = np.array([0.62, 0.32, 0.36], np.float32)
# "Covering" layers replace the colour by a fixed one.
EXUDATE_RGB = np.array([1.00, 0.86, 0.42], np.float32)
COTTON_WOOL_RGB = np.array([0.95, 0.82, 0.70], np.float32)
DISC_RGB = np.array([1.00, 0.76, 0.48], np.float32)
CUP_RGB = np.array([1.00, 0.90, 0.72], np.float32)

STEP = 0.015  # vessel growth step, in units of the fundus radius
MIN_VESSEL_WIDTH = 0.0035  # thinner vessels end


# --------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class _Frame:
    height: int
    width: int
    cx: float  # fundus centre and radius in pixels
    cy: float
    radius: float
    side: int  # +1 right eye, -1 left eye: x of the right-eye model is mirrored for the left

    def to_px(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Model coordinates (fundus radius 1, right eye, y down) to pixel coordinates."""
        return self.cx + self.side * u * self.radius, self.cy + v * self.radius

    def visible(self, u: np.ndarray, v: np.ndarray, margin: float = 0.0) -> np.ndarray:
        x, y = self.to_px(u, v)
        m = margin * self.radius
        return (x >= m) & (x < self.width - m) & (y >= m) & (y < self.height - m)


def _parse_aspect(aspect: str) -> float:
    if aspect not in ASPECTS:
        raise ValueError(f"unknown aspect {aspect!r}; use one of {sorted(ASPECTS)}")
    return ASPECTS[aspect]


def _make_frame(rng: np.random.Generator, height: int, aspect: str, clipped: bool, eye: str) -> _Frame:
    width = int(round(height * _parse_aspect(aspect)))
    if clipped:
        # Circle taller than the frame: cameras cut it at the top and bottom.
        radius = 0.5 * height * rng.uniform(1.08, 1.18)
    else:
        radius = 0.5 * min(height, width) * rng.uniform(0.86, 0.95)
    cx = width / 2 + rng.uniform(-0.015, 0.015) * width
    cy = height / 2 + rng.uniform(-0.01, 0.01) * height
    return _Frame(height, width, cx, cy, radius, 1 if eye == "right" else -1)


# ------------------------------------------------------------------------ vessel tree
@dataclass
class _Vessel:
    kind: str  # "artery" or "vein"
    points: np.ndarray  # (n, 2) model coordinates
    widths: np.ndarray  # (n,) width in units of the fundus radius
    depth: int  # 0 = trunk leaving the disc


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def _grow_vessel(
    rng: np.random.Generator,
    start: tuple[float, float],
    angle: float,
    width: float,
    curvature: float,
    kind: str,
    disc: tuple[float, float],
    fovea: tuple[float, float],
    depth: int,
    vessels: list[_Vessel],
) -> None:
    """Grow one vessel as a smoothly curving random walk; branches recurse."""
    x, y = start
    points = [(x, y)]
    widths = [width]
    length = 0.0
    max_length = rng.uniform(1.1, 1.7) if depth == 0 else rng.uniform(0.25, 0.8) / depth**0.5
    next_branch = rng.uniform(0.12, 0.25)
    wiggle = 0.03 + 0.015 * depth
    while True:
        angle += curvature * STEP + rng.normal(0.0, wiggle)
        curvature *= 0.985  # arcs straighten out away from the disc
        if depth:  # branches run outwards, away from the disc
            angle += 0.04 * _wrap(math.atan2(y - disc[1], x - disc[0]) - angle)
        fx, fy = x - fovea[0], y - fovea[1]
        to_fovea = math.hypot(fx, fy)
        if to_fovea < 0.3:  # vessels bend around the avascular fovea
            away = math.atan2(fy, fx)
            angle += 0.3 * _wrap(away - angle) * (0.3 - to_fovea) / 0.3
        x += STEP * math.cos(angle)
        y += STEP * math.sin(angle)
        length += STEP
        width *= 1.0 - 0.25 * STEP
        points.append((x, y))
        widths.append(width)
        if x * x + y * y > 1.0 or width < MIN_VESSEL_WIDTH or length > max_length or to_fovea < 0.07:
            break
        if length >= next_branch and depth < 3:
            side = 1 if rng.random() < 0.5 else -1
            child_width = width * rng.uniform(0.45, 0.75)
            if child_width >= MIN_VESSEL_WIDTH:
                _grow_vessel(
                    rng, (x, y), angle + side * rng.uniform(0.4, 1.1), child_width,
                    side * rng.uniform(0.0, 0.8), kind, disc, fovea, depth + 1, vessels,
                )
            width *= rng.uniform(0.82, 0.94)
            next_branch = length + rng.uniform(0.12, 0.3) * (1 + 0.5 * depth)
    vessels.append(_Vessel(kind, np.array(points, np.float32), np.array(widths, np.float32), depth))


def _vessel_tree(rng: np.random.Generator, disc: tuple[float, float], disc_radius: float,
                 fovea: tuple[float, float]) -> list[_Vessel]:
    """Trunks leave the disc: temporal arcades curving around the macula, nasal vessels,
    and small macular branches. Model coordinates are for a right eye (temporal = -x)."""
    up, down = -math.pi / 2, math.pi / 2
    trunks = []  # (kind, angle, curvature, width)
    for sign, base in ((-1, up), (1, down)):  # superior, inferior
        for kind, width in (("vein", 0.024), ("artery", 0.017)):
            # Temporal arcades: leave the disc vertically, tilted temporally, then bend temporally.
            trunks.append((kind, base + sign * rng.uniform(0.0, 0.25), sign * rng.uniform(1.3, 1.8),
                           width * rng.uniform(0.9, 1.1)))
            # Nasal vessels: thinner, tilted and bent nasally.
            trunks.append((kind, base - sign * rng.uniform(0.35, 0.8), -sign * rng.uniform(0.2, 0.8),
                           width * rng.uniform(0.6, 0.75)))
    for kind in ("vein", "artery"):
        nasal, macular = rng.uniform(-0.35, 0.35), math.pi + rng.uniform(-0.3, 0.3)
        trunks.append((kind, nasal, rng.uniform(-0.5, 0.5), rng.uniform(0.007, 0.011)))
        trunks.append((kind, macular, rng.uniform(-0.5, 0.5), rng.uniform(0.006, 0.009)))
    vessels: list[_Vessel] = []
    for kind, angle, curvature, width in trunks:
        # Trunks emerge around the cup, not all from one point.
        start = (disc[0] + 0.3 * disc_radius * math.cos(angle) + rng.normal(0, 0.01),
                 disc[1] + 0.3 * disc_radius * math.sin(angle) + rng.normal(0, 0.01))
        _grow_vessel(rng, start, angle, width, curvature, kind, disc, fovea, 0, vessels)
    return vessels


# ---------------------------------------------------------------------------- drawing
def _draw_polyline(mask: np.ndarray, frame: _Frame, points: np.ndarray, widths: np.ndarray,
                   scale: float = 1.0) -> None:
    """Draw a variable-width curve into a uint8 mask; sub-pixel widths draw fainter."""
    x, y = frame.to_px(points[:, 0], points[:, 1])
    xy = np.round(np.stack([x, y], axis=1) * 16).astype(np.int32)  # shift=4 sub-pixel precision
    width_px = widths * frame.radius * scale
    thickness = np.maximum(1, np.round(width_px)).astype(int)
    intensity = np.clip(width_px, 0.25, 1.0)
    start = 0
    n = len(xy)
    while start < n - 1:
        end = start + 1
        while end < n - 1 and thickness[end] == thickness[start]:
            end += 1
        value = int(255 * intensity[start])
        cv2.polylines(mask, [xy[start:end + 1]], False, value, int(thickness[start]), cv2.LINE_AA, 4)
        start = end


def _ellipse(mask: np.ndarray, center: tuple[float, float], axes: tuple[float, float], angle_deg: float,
             value: float) -> None:
    c = (int(round(center[0] * 16)), int(round(center[1] * 16)))
    a = (max(1, int(round(axes[0] * 16))), max(1, int(round(axes[1] * 16))))
    cv2.ellipse(mask, c, a, angle_deg, 0, 360, int(255 * value), -1, cv2.LINE_AA, 4)


def _smooth_noise(rng: np.random.Generator, frame: _Frame, cell: float) -> np.ndarray:
    """Roughly unit-variance noise with features of about ``cell`` fundus radii."""
    cell_px = max(2.0, cell * frame.radius)
    gh = int(frame.height / cell_px) + 3
    gw = int(frame.width / cell_px) + 3
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    big = cv2.resize(grid, (int(gw * cell_px), int(gh * cell_px)), interpolation=cv2.INTER_CUBIC)
    return big[: frame.height, : frame.width] * 1.4  # cubic interpolation lowers the variance


def _gaussian(xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, sigma: float) -> np.ndarray:
    return np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma * sigma)).astype(np.float32)


def _absorb(img: np.ndarray, mask: np.ndarray, factor: np.ndarray, strength: float = 1.0) -> None:
    alpha = mask.astype(np.float32) * (strength / 255.0)
    img *= 1.0 - alpha[..., None] * (1.0 - factor)


def _cover(img: np.ndarray, alpha: np.ndarray, rgb: np.ndarray) -> None:
    a = alpha[..., None]
    img *= 1.0 - a
    img += a * rgb


# ---------------------------------------------------------------------------- lesions
def _sample_points(rng: np.random.Generator, frame: _Frame, n: int, *, rmax: float = 0.92,
                   avoid: tuple[float, float, float] | None = None,
                   quadrant: tuple[int, int] | None = None,
                   around: tuple[float, float, float] | None = None) -> np.ndarray:
    """n visible points in the fundus (model coordinates), optionally in one quadrant,
    away from a circle ``avoid=(u, v, r)``, or clustered ``around=(u, v, sd)``."""
    out = np.zeros((0, 2), np.float32)
    for _ in range(50):
        if len(out) >= n:
            break
        m = 4 * n + 8
        if around is None:
            p = rng.uniform(-rmax, rmax, size=(m, 2))
        else:
            p = np.array(around[:2]) + rng.normal(0, around[2], size=(m, 2))
        ok = (p ** 2).sum(1) < rmax ** 2
        ok &= frame.visible(p[:, 0], p[:, 1], margin=0.02)
        if avoid is not None:
            ok &= ((p[:, 0] - avoid[0]) ** 2 + (p[:, 1] - avoid[1]) ** 2) > avoid[2] ** 2
        if quadrant is not None:
            ok &= (np.sign(p[:, 0]) == quadrant[0]) & (np.sign(p[:, 1]) == quadrant[1])
        out = np.concatenate([out, p[ok].astype(np.float32)])
    return out[:n]


@dataclass
class _Layers:
    """uint8 masks of everything drawn on the fundus, in pixel space."""

    vein: np.ndarray
    artery: np.ndarray
    reflex: np.ndarray
    blood: np.ndarray
    new_vessels: np.ndarray
    exudate: np.ndarray
    cotton_wool: np.ndarray

    @classmethod
    def empty(cls, frame: _Frame) -> "_Layers":
        shape = (frame.height, frame.width)
        return cls(*(np.zeros(shape, np.uint8) for _ in range(7)))


def _lesion_counts(grade: int, rng: np.random.Generator) -> dict[str, int]:
    """How many lesions of each kind an eye of this ICDR grade gets."""
    r = rng.integers
    if grade == 0:
        return {}
    if grade == 1:
        return {"microaneurysms": int(r(4, 13))}
    counts = {
        "microaneurysms": int(r(10, 26)),
        "haemorrhages": int(r(5, 14)),
        "exudate_clusters": int(r(1, 4)) if rng.random() < 0.65 else 0,
        "cotton_wool": int(r(1, 4)) if rng.random() < 0.35 else 0,
    }
    if grade == 3:
        counts.update(microaneurysms=int(r(15, 36)), haemorrhages_per_quadrant=int(r(6, 12)),
                      haemorrhages=0, beads=int(r(2, 5)),
                      cotton_wool=int(r(1, 6)) if rng.random() < 0.5 else 0)
    if grade == 4:
        # Proliferative: new vessels and/or a preretinal haemorrhage, never neither.
        preretinal = rng.random() < 0.6
        new_vessels = 0 if preretinal and rng.random() < 0.3 else int(r(1, 3))
        # PDR eyes usually also have haemorrhages in every quadrant.
        counts.update(microaneurysms=int(r(10, 30)), haemorrhages=0,
                      haemorrhages_per_quadrant=int(r(3, 8)),
                      beads=int(r(1, 4)) if rng.random() < 0.4 else 0,
                      new_vessel_patches=new_vessels, preretinal=int(preretinal))
    return counts


def _draw_haemorrhage(rng: np.random.Generator, mask: np.ndarray, frame: _Frame, p: np.ndarray,
                      disc: tuple[float, float]) -> None:
    R = frame.radius
    x, y = frame.to_px(p[0], p[1])
    kind = rng.choice(["dot", "blot", "flame"], p=[0.4, 0.4, 0.2])
    size = R * rng.uniform(1 / 36, 1 / 18)
    value = rng.uniform(0.7, 1.0)
    if kind == "dot":
        _ellipse(mask, (x, y), (size, size * rng.uniform(0.8, 1.0)), rng.uniform(0, 180), value)
    elif kind == "blot":
        for _ in range(int(rng.integers(2, 5))):
            off = rng.normal(0, size * 0.5, 2)
            a = size * rng.uniform(0.6, 1.2)
            _ellipse(mask, (x + off[0], y + off[1]), (a, a * rng.uniform(0.5, 1.0)), rng.uniform(0, 180),
                     value)
    else:
        # Flame haemorrhages lie in the nerve fibre layer, which radiates from the disc.
        dx, dy = frame.to_px(np.array(disc[0]), np.array(disc[1]))
        angle = math.degrees(math.atan2(y - float(dy), x - float(dx)))
        _ellipse(mask, (x, y), (size * rng.uniform(1.8, 2.8), size * rng.uniform(0.4, 0.7)), angle,
                 value * 0.85)


def _draw_lesions(rng: np.random.Generator, layers: _Layers, frame: _Frame, grade: int,
                  disc: tuple[float, float], disc_radius: float, fovea: tuple[float, float],
                  vessels: list[_Vessel]) -> None:
    counts = _lesion_counts(grade, rng)
    R = frame.radius
    avoid_disc = (disc[0], disc[1], disc_radius * 1.3)

    # Microaneurysms: tiny dark-red dots, mostly around the macula (posterior pole).
    n = counts.get("microaneurysms", 0)
    near = _sample_points(rng, frame, n - n // 3, avoid=avoid_disc, around=(fovea[0], fovea[1], 0.35))
    far = _sample_points(rng, frame, n // 3, avoid=avoid_disc)
    for u, v in np.concatenate([near, far]):
        x, y = frame.to_px(u, v)
        r = R * rng.uniform(1 / 60, 1 / 42)
        _ellipse(layers.blood, (x, y), (r, r), 0, rng.uniform(0.8, 1.0))

    # Dot, blot and flame haemorrhages; at grade 3 in every quadrant.
    points = [_sample_points(rng, frame, counts.get("haemorrhages", 0), avoid=avoid_disc)]
    per_quadrant = counts.get("haemorrhages_per_quadrant", 0)
    if per_quadrant:
        for q in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
            points.append(_sample_points(rng, frame, per_quadrant, avoid=avoid_disc, quadrant=q))
    for p in np.concatenate(points):
        _draw_haemorrhage(rng, layers.blood, frame, p, disc)

    # Hard exudates: clusters of small waxy yellow spots, often near the macula.
    for _ in range(counts.get("exudate_clusters", 0)):
        centre = _sample_points(rng, frame, 1, rmax=0.75, avoid=(fovea[0], fovea[1], 0.06),
                                around=(fovea[0], fovea[1], 0.3))
        if len(centre) == 0:
            continue
        spread = rng.uniform(0.04, 0.1)
        for u, v in _sample_points(rng, frame, int(rng.integers(8, 30)), around=(*centre[0], spread)):
            x, y = frame.to_px(u, v)
            value = rng.uniform(0.7, 1.0)
            for _ in range(int(rng.integers(1, 4))):  # overlapping specks make irregular plaques
                r = R * rng.uniform(1 / 110, 1 / 50)
                off = rng.normal(0, r, 2)
                _ellipse(layers.exudate, (x + off[0], y + off[1]), (r, r * rng.uniform(0.5, 1.0)),
                         rng.uniform(0, 180), value)

    # Cotton-wool spots: soft pale patches along the arcades.
    for u, v in _sample_points(rng, frame, counts.get("cotton_wool", 0), rmax=0.7, avoid=avoid_disc):
        x, y = frame.to_px(u, v)
        r = R * rng.uniform(1 / 28, 1 / 16)
        _ellipse(layers.cotton_wool, (x, y), (r, r * rng.uniform(0.5, 0.8)), rng.uniform(0, 180),
                 rng.uniform(0.5, 0.8))

    # Venous beading: sausage-like swellings along a stretch of a large vein.
    big_veins = [v for v in vessels if v.kind == "vein" and v.depth <= 1 and len(v.points) > 20]
    for _ in range(counts.get("beads", 0)):
        if not big_veins:
            break
        vein = big_veins[int(rng.integers(len(big_veins)))]
        i0 = int(rng.integers(3, len(vein.points) - 15))
        for i in range(i0, min(i0 + int(rng.integers(10, 20)), len(vein.points)), 2):
            x, y = frame.to_px(vein.points[i, 0], vein.points[i, 1])
            r = max(1.0, vein.widths[i] * R * rng.uniform(0.8, 1.2))
            _ellipse(layers.vein, (x, y), (r, r), 0, 1.0)

    # Neovascularisation: fine tangled new vessels at the disc (NVD) or elsewhere (NVE).
    for k in range(counts.get("new_vessel_patches", 0)):
        at_disc = k == 0 and rng.random() < 0.6
        if at_disc:
            centre = np.array([disc[0] + rng.normal(0, 0.05), disc[1] + rng.normal(0, 0.05)])
        else:
            pts = _sample_points(rng, frame, 1, rmax=0.8, avoid=avoid_disc)
            if len(pts) == 0:
                continue
            centre = pts[0]
        _draw_new_vessels(rng, layers, frame, centre, rng.uniform(0.09, 0.16))

    # Preretinal haemorrhage: a large dark-red patch with a flat top (the blood level).
    if counts.get("preretinal", 0):
        p = _sample_points(rng, frame, 1, rmax=0.7, avoid=avoid_disc)
        if len(p):
            x, y = frame.to_px(p[0, 0], p[0, 1])
            a = R * rng.uniform(0.12, 0.22)
            b = a * rng.uniform(0.55, 0.85)
            patch = np.zeros_like(layers.blood)
            _ellipse(patch, (x, y), (a, b), rng.uniform(-10, 10), 1.0)
            level = int(round(y - b * rng.uniform(0.0, 0.35)))
            patch[: max(level, 0)] = 0
            np.maximum(layers.blood, patch, out=layers.blood)


def _draw_new_vessels(rng: np.random.Generator, layers: _Layers, frame: _Frame, centre: np.ndarray,
                      radius: float) -> None:
    """A "sea fan" of thin wiggly loops radiating from ``centre`` plus a faint membrane."""
    thickness = max(1, int(round(frame.radius / 120)))
    t = np.linspace(0.0, 1.0, 40)
    for _ in range(int(rng.integers(10, 20))):
        theta = rng.uniform(0, 2 * math.pi)
        length = radius * rng.uniform(0.5, 1.0)
        width = length * rng.uniform(0.2, 0.6)
        along = np.array([math.cos(theta), math.sin(theta)])
        across = np.array([-along[1], along[0]])
        # A petal-shaped loop out and back, with a wiggle so it looks tortuous.
        wiggle = np.cumsum(rng.normal(0, 0.01, (len(t), 2)), axis=0) * radius / 0.1
        pts = (centre + rng.normal(0, 0.2 * radius, 2) + np.outer(np.sin(np.pi * t) * length, along)
               + np.outer(np.sin(2 * np.pi * t) * width, across) + wiggle * np.sin(np.pi * t)[:, None])
        x, y = frame.to_px(pts[:, 0], pts[:, 1])
        xy = np.round(np.stack([x, y], 1) * 16).astype(np.int32)
        cv2.polylines(layers.new_vessels, [xy], False, int(255 * rng.uniform(0.7, 1.0)), thickness,
                      cv2.LINE_AA, 4)
    x, y = frame.to_px(centre[0], centre[1])
    r = radius * frame.radius
    _ellipse(layers.cotton_wool, (float(x), float(y)), (r, r * 0.8), rng.uniform(0, 180), 0.12)


# ------------------------------------------------------------------------ the picture
def make_fundus(
    grade: int,
    rng: np.random.Generator,
    *,
    height: int = 512,
    aspect: str = "3:2",
    clipped: bool = False,
    camera: dict | None = None,
    eye: str = "right",
) -> np.ndarray:
    """Render one synthetic colour fundus photograph of ICDR ``grade`` (0-4).

    Returns an RGB uint8 array of shape (height, width, 3), width = height * aspect
    (``"3:2"``, ``"4:3"`` or ``"1:1"``). ``clipped`` makes the fundus circle taller than the
    frame so it is cut at the top and bottom. ``camera`` overrides keys of DEFAULT_CAMERA
    (see CAMERAS). ``eye`` ("left"/"right") puts the optic disc on the matching nasal side.
    Pure: the result depends only on the arguments and the state of ``rng``.

    Anatomy, lesions and camera noise draw from separate child generators, so the same rng
    state rendered at two grades gives the same eye with and without the lesions.
    """
    if not isinstance(grade, (int, np.integer)) or not 0 <= int(grade) <= 4:
        raise ValueError(f"grade must be an integer 0-4, got {grade!r}")
    if height < 64:
        raise ValueError(f"height must be at least 64 px, got {height}")
    if eye not in EYES:
        raise ValueError(f"eye must be 'left' or 'right', got {eye!r}")
    cam = dict(DEFAULT_CAMERA)
    if camera:
        unknown = set(camera) - set(DEFAULT_CAMERA)
        if unknown:
            raise ValueError(f"unknown camera settings {sorted(unknown)}; known: {sorted(DEFAULT_CAMERA)}")
        cam.update(camera)
    arng, lesion_rng, crng = (np.random.default_rng(s) for s in rng.integers(0, 2**63, 3))

    full = _make_frame(arng, height, aspect, clipped, eye)
    # Everything is drawn on the part of the frame that holds the circle ("canvas").
    x0, y0 = max(0, int(full.cx - full.radius - 2)), max(0, int(full.cy - full.radius - 2))
    x1 = min(full.width, int(math.ceil(full.cx + full.radius + 2)))
    y1 = min(full.height, int(math.ceil(full.cy + full.radius + 2)))
    frame = _Frame(y1 - y0, x1 - x0, full.cx - x0, full.cy - y0, full.radius, full.side)
    R = frame.radius
    H, W = frame.height, frame.width
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    # Model coordinates of every pixel (right-eye orientation), fundus radius 1.
    u = (xx - frame.cx) * (frame.side / R)
    v = (yy - frame.cy) / R
    r = np.sqrt(u * u + v * v)

    # Background: orange-red, varying pigmentation, smooth blotches and a choroidal pattern.
    base = np.array([arng.uniform(0.78, 0.95), arng.uniform(0.30, 0.44), arng.uniform(0.10, 0.20)],
                    np.float32)
    blotch = _smooth_noise(arng, frame, 0.25)
    choroid = _smooth_noise(arng, frame, 0.07)
    grain = _smooth_noise(arng, frame, 0.012)
    shade = (1.0 + 0.06 * blotch) * (1.0 + 0.025 * grain)
    ridges = np.exp(-(choroid / 0.4) ** 2) * np.clip(r - 0.2, 0, 1) * arng.uniform(0.05, 0.22)
    img = shade[..., None] * base * (1.0 - ridges[..., None] * np.array([0.15, 0.7, 0.6], np.float32))

    # Optic disc (nasal) and fovea (temporal, slightly below the disc).
    disc = (arng.uniform(0.34, 0.46), arng.uniform(-0.06, 0.05))
    disc_radius = arng.uniform(0.14, 0.17)
    fovea = (disc[0] - arng.uniform(0.78, 0.88), disc[1] + arng.uniform(0.0, 0.08))
    fx, fy = (float(c) for c in frame.to_px(np.array(fovea[0]), np.array(fovea[1])))
    dx, dy = (float(c) for c in frame.to_px(np.array(disc[0]), np.array(disc[1])))

    # Macula: darker and browner (macular pigment absorbs blue/green); a darker fovea.
    macula = _gaussian(xx, yy, fx, fy, 0.18 * R) * arng.uniform(0.2, 0.4)
    macula += _gaussian(xx, yy, fx, fy, 0.04 * R) * 0.2
    img *= 1.0 - macula[..., None] * np.array([0.35, 0.8, 0.7], np.float32)
    # Slightly brighter nerve fibre layer around the disc.
    img *= (1.0 + 0.06 * _gaussian(xx, yy, dx, dy, 0.25 * R))[..., None]

    # Disc: a pale yellow-orange vertical oval with a soft rim and a paler cup.
    disc_mask = np.zeros((H, W), np.uint8)
    _ellipse(disc_mask, (dx, dy), (disc_radius * R * arng.uniform(0.85, 0.95), disc_radius * R),
             arng.uniform(-10, 10), 1.0)
    cup_mask = np.zeros((H, W), np.uint8)
    cup = disc_radius * R * arng.uniform(0.3, 0.5)
    _ellipse(cup_mask, (dx + frame.side * arng.normal(0, 0.01) * R, dy), (cup * 0.9, cup), 0, 1.0)
    disc_alpha = cv2.GaussianBlur(disc_mask, (0, 0), max(0.8, 0.012 * R)).astype(np.float32)
    cup_alpha = cv2.GaussianBlur(cup_mask, (0, 0), max(1.0, 0.03 * R)).astype(np.float32)
    _cover(img, disc_alpha * (arng.uniform(0.75, 0.92) / 255), DISC_RGB * arng.uniform(0.92, 1.0))
    _cover(img, cup_alpha * (arng.uniform(0.6, 0.9) / 255), CUP_RGB)

    # Vessel tree, then lesions on top.
    vessels = _vessel_tree(arng, disc, disc_radius, fovea)
    layers = _Layers.empty(frame)
    for vessel in vessels:
        mask = layers.vein if vessel.kind == "vein" else layers.artery
        _draw_polyline(mask, frame, vessel.points, vessel.widths)
        if vessel.kind == "artery" and vessel.widths[0] * R > 3:
            _draw_polyline(layers.reflex, frame, vessel.points, vessel.widths, scale=0.3)
    _draw_lesions(lesion_rng, layers, frame, int(grade), disc, disc_radius, fovea, vessels)

    edge = max(0.7, 0.004 * R)  # vessels and lesions have soft, not pixel-sharp, edges
    # Vessels fade where they dive into the cup.
    in_cup = 1.0 - 0.7 * cup_alpha / 255
    _absorb(img, cv2.GaussianBlur(layers.artery, (0, 0), edge) * in_cup, ARTERY_FACTOR, 0.9)
    _absorb(img, cv2.GaussianBlur(layers.vein, (0, 0), edge) * in_cup, VEIN_FACTOR, 0.95)
    if layers.reflex.any():
        img *= (1.0 + 0.2 * cv2.GaussianBlur(layers.reflex, (0, 0), edge).astype(np.float32) / 255)[..., None]
    # Lesion layers are sparse; skip the empty ones (always so at grade 0).
    if layers.new_vessels.any():
        _absorb(img, cv2.GaussianBlur(layers.new_vessels, (0, 0), edge * 0.7), NEW_VESSEL_FACTOR)
    if layers.blood.any():
        # The anatomy's grain makes haemorrhages mottled instead of flat.
        blood = cv2.GaussianBlur(layers.blood, (0, 0), edge) * np.clip(0.9 + 0.1 * grain, 0.7, 1.0)
        _absorb(img, blood, BLOOD_FACTOR)
    if layers.cotton_wool.any():
        _cover(img, cv2.GaussianBlur(layers.cotton_wool, (0, 0), 0.02 * R).astype(np.float32) / 255,
               COTTON_WOOL_RGB)
    if layers.exudate.any():
        _cover(img, cv2.GaussianBlur(layers.exudate, (0, 0), edge * 0.6).astype(np.float32) * (0.9 / 255),
               EXUDATE_RGB)

    # Camera: vignetting, uneven illumination, exposure, white balance, blur, noise.
    illum = 1.0 - cam["vignette"] * crng.uniform(0.8, 1.2) * np.minimum(r, 1.0) ** 2.5
    tilt = crng.uniform(-math.pi, math.pi)
    illum *= 1.0 + crng.uniform(0.0, 0.2) * (u * math.cos(tilt) + v * math.sin(tilt))
    illum *= 1.0 + 0.06 * _smooth_noise(crng, frame, 0.5)
    gain = np.asarray(cam["gain"], np.float32) * crng.uniform(0.95, 1.05, 3).astype(np.float32)
    img *= (illum * (cam["exposure"] * crng.uniform(0.85, 1.15)))[..., None]
    img *= gain
    np.clip(img, 0.0, 1.0, out=img)
    if cam["gamma"] != 1.0:
        cv2.pow(img, cam["gamma"], img)
    sigma = cam["blur"] * R / 240 * crng.uniform(0.8, 1.3)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    # The field stop: black outside the circle, with a soft one-pixel edge, and sensor noise.
    inside = np.clip((1.0 - r) * R / max(1.0, 0.004 * R) + 0.5, 0.0, 1.0)
    img += crng.standard_normal((H, W, 3), dtype=np.float32) * (cam["noise"] / 255)
    img *= inside[..., None]
    canvas = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    out = np.zeros((full.height, full.width, 3), np.uint8)
    out[y0:y1, x0:x1] = canvas
    return out


# --------------------------------------------------------------------------- data set
@dataclass(frozen=True)
class _Task:
    path: str
    seed: int
    patient: int
    eye: str
    grade: int
    camera: str
    height: int


def _eye_rng(seed: int, patient: int, eye: str) -> np.random.Generator:
    # A 3-word entropy for every stream (tags 0 ids, 1 patient, 2/3 eyes) so none collide.
    return np.random.default_rng([seed, patient, 2 + EYES.index(eye)])


def _patient_ids(seed: int, patients: int) -> list[int]:
    """Increasing integer ids with small gaps, like Kaggle's (10, 13, 15, 16, ...)."""
    gaps = np.random.default_rng([seed, 0, 0]).integers(1, 4, size=patients)
    return (10 + np.cumsum(gaps) - gaps[0]).tolist()


def _patient_plan(seed: int, patient: int, probs: np.ndarray) -> tuple[dict[str, int], str]:
    """Grades of both eyes (correlated) and the camera of one patient."""
    rng = np.random.default_rng([seed, patient, 1])
    first = int(rng.choice(5, p=probs))
    second = first
    if rng.random() >= SAME_GRADE_PROB:
        second = int(np.clip(first + (1 if rng.random() < 0.5 else -1), 0, 4))
    first_eye = EYES[int(rng.integers(2))]
    grades = {first_eye: first, EYES[1 - EYES.index(first_eye)]: second}
    camera = sorted(CAMERAS)[int(rng.integers(len(CAMERAS)))]
    return grades, camera


def render_image_file(task: _Task) -> str:
    """Render one image of the data set and write it atomically as JPEG (worker entry point)."""
    aspect, clipped = CAMERA_FRAMES[task.camera]
    rgb = make_fundus(task.grade, _eye_rng(task.seed, task.patient, task.eye), height=task.height,
                      aspect=aspect, clipped=clipped, camera=CAMERAS[task.camera], eye=task.eye)
    ok, jpeg = cv2.imencode(".jpeg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {task.path}")
    atomic_write_bytes(task.path, jpeg.tobytes())
    return task.path


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core already


def _claim_output(out: Path, settings: dict) -> bool:
    """Make ``out`` ready for a run; return True when existing images may be reused.

    Refuses a non-empty folder that is not an earlier synth output. An earlier output made
    with other settings loses its labels and images first, so files never mix.
    """
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"synth output {out} exists and is not a folder")
    marker = out / MARKER_NAME
    reuse = False
    if out.exists() and any(out.iterdir()):
        if not marker.is_file():
            raise FileExistsError(
                f"refusing to write synthetic data into {out}: the folder is not empty and has no "
                f"{MARKER_NAME}, so it is not an earlier 'drgrader synth' output; "
                "choose a new or empty folder"
            )
        try:
            reuse = json.loads(marker.read_text()) == settings
        except (OSError, ValueError):
            reuse = False
        # Labels go first, so an interrupted run never leaves labels without their images.
        (out / LABELS_NAME).unlink(missing_ok=True)
        images = out / "images"
        if images.is_dir():
            for f in images.iterdir():
                stale = not reuse and IMAGE_NAME.match(f.name)
                if stale or (f.name.startswith(".") and f.name.endswith(".tmp")):
                    f.unlink()
    (out / "images").mkdir(parents=True, exist_ok=True)
    atomic_write_json(marker, settings)
    return reuse


def make_dataset(
    out: str | Path,
    patients: int,
    *,
    seed: int = 0,
    height: int = 512,
    workers: int = 1,
    grade_probs: Sequence[float] | None = None,
    progress: bool = True,
) -> Path:
    """Write a synthetic EyePACS-style data set and return the path of its trainLabels.csv.

    Layout: ``out/images/<patient>_<left|right>.jpeg`` (two eyes per patient, correlated
    grades) and ``out/trainLabels.csv`` with columns ``image,level``, written last.
    ``grade_probs`` are the per-patient grade probabilities (default EyePACS-like). The bytes
    depend only on (seed, patients, height, grade_probs), not on ``workers``. ``out`` must be
    new, empty or an earlier synth output; an earlier output with the same settings has its
    finished images reused.
    """
    if patients < 1:
        raise ValueError(f"patients must be at least 1, got {patients}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if height < 64:
        raise ValueError(f"height must be at least 64 px, got {height}")
    probs = np.asarray(DEFAULT_GRADE_PROBS if grade_probs is None else grade_probs, np.float64)
    if probs.shape != (5,) or (probs < 0).any() or not math.isclose(probs.sum(), 1.0, abs_tol=1e-6):
        raise ValueError(f"grade_probs must be 5 non-negative numbers summing to 1, got {list(probs)}")
    probs = probs / probs.sum()

    out = Path(out)
    settings = {"generator": "drgrader.synth", "version": GENERATOR_VERSION, "seed": seed,
                "patients": patients, "height": height, "grade_probs": probs.tolist()}
    reuse = _claim_output(out, settings)

    rows: list[tuple[str, int]] = []
    tasks: list[_Task] = []
    for patient in _patient_ids(seed, patients):
        grades, camera = _patient_plan(seed, patient, probs)
        for eye in EYES:
            name = f"{patient}_{eye}"
            rows.append((name, grades[eye]))
            path = out / "images" / f"{name}.jpeg"
            if not (reuse and path.is_file()):
                tasks.append(_Task(str(path), seed, patient, eye, grades[eye], camera, height))

    bar = progress_bar(total=len(tasks), desc="synth", unit="img", disable=not progress)
    if workers == 1 or len(tasks) < 2:
        for task in tasks:
            render_image_file(task)
            bar.update()
    else:
        # spawn, not fork: the caller may hold threads (PyTorch, OpenMP) that fork would break.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init) as pool:
            for _ in pool.map(render_image_file, tasks, chunksize=4):
                bar.update()
    bar.close()

    labels = out / LABELS_NAME
    atomic_write_text(labels, "image,level\n" + "".join(f"{n},{g}\n" for n, g in rows))
    return labels

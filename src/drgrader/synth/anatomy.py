"""The geometry of a synthetic fundus photograph: the frame, the branching vessel tree, and the
drawing primitives (polylines, ellipses, smooth noise, light absorption) the lesions use too."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

EYES = ("left", "right")
ASPECTS = {"3:2": 1.5, "4:3": 4 / 3, "1:1": 1.0}  # frame width / height

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



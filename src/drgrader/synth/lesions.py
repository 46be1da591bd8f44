"""ICDR lesions of each grade: how many of each kind, where, and how they are drawn."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from drgrader.synth.anatomy import (
    _ellipse,
    _Frame,
    _Vessel,
)


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



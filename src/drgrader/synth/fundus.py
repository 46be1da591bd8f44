"""One synthetic fundus photograph (``make_fundus``): anatomy, lesions of a grade, and the
photometry of one of a few made-up cameras."""

from __future__ import annotations

import math

import cv2
import numpy as np

from drgrader.synth.anatomy import (
    ARTERY_FACTOR,
    BLOOD_FACTOR,
    COTTON_WOOL_RGB,
    CUP_RGB,
    DISC_RGB,
    EXUDATE_RGB,
    EYES,
    NEW_VESSEL_FACTOR,
    VEIN_FACTOR,
    _absorb,
    _cover,
    _draw_polyline,
    _ellipse,
    _Frame,
    _gaussian,
    _make_frame,
    _smooth_noise,
    _vessel_tree,
)
from drgrader.synth.lesions import (
    _draw_lesions,
    _Layers,
)

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



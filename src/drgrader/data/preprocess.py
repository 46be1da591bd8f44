"""Fundus preprocessing: pure functions, RGB uint8 array in, array out.

:func:`preprocess_image` is the one entry point used both when building the training cache
and at inference (the model bundle calls it with its stored settings), so a model always sees
images prepared exactly as in training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from drgrader.config import PreprocessConfig

# find_fundus and assess_quality work on a small copy: the circle boundary and the image
# statistics need no more, and it makes them independent of the decode size.
_WORK_SIDE = 384
_QUALITY_DIAMETER = 256  # fixed scale for the sharpness measure

# Quality thresholds, calibrated on the real photos in shared/data (rahim-originals,
# eyepacs-256), on drgrader.synth images and on degraded copies (tests/data/test_preprocess.py).
DARK_THRESHOLD = 25.0  # mean luma inside the fundus, 0..255
BRIGHT_THRESHOLD = 225.0
SHARPNESS_THRESHOLD = 4.0  # normalised Laplacian measure, see _sharpness


@dataclass(frozen=True)
class FundusCircle:
    """The circular field of view, in pixels of the image it was found in (pixel centres at
    integer coordinates). For an elliptical field of view (a photo squashed to a square), the
    circle on the ellipse's centre through the ends of its long axis."""

    cx: float
    cy: float
    r: float
    found: bool
    clipped: bool  # the circle extends beyond the image (cut off top/bottom or sides)

    def scaled(self, factor: float, dx: float = 0.0, dy: float = 0.0) -> "FundusCircle":
        """The same circle after scaling the image by ``factor`` and shifting it by (dx, dy)."""
        return FundusCircle(self.cx * factor + dx, self.cy * factor + dy, self.r * factor, self.found, self.clipped)


@dataclass(frozen=True)
class Quality:
    gradable: bool
    score: float  # 0..1, 0.5 at the nearest threshold
    reason: str  # "" when gradable


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        shape = getattr(rgb, "shape", None)
        dtype = getattr(rgb, "dtype", type(rgb).__name__)
        raise ValueError(f"expected an RGB uint8 array of shape (H, W, 3), got {dtype} {shape}")


def _shrink_by_integer(image: np.ndarray, max_side: int) -> tuple[np.ndarray, int]:
    """Shrink by the smallest integer factor k that brings the long side to <= max_side.

    An exact integer INTER_AREA (box filter) is OpenCV's fast path, several times faster than
    an arbitrary factor; the < k leftover rows/columns at the bottom/right are dropped. Pixel
    centres map as ``c_small = (c + 0.5) / k - 0.5``.
    """
    h, w = image.shape[:2]
    k = max(1, -(-max(h, w) // max_side))
    if k == 1:
        return image, 1
    trimmed = image[: h - h % k, : w - w % k]
    return cv2.resize(trimmed, (w // k, h // k), interpolation=cv2.INTER_AREA), k


def _max_channel(rgb: np.ndarray) -> np.ndarray:
    # cv2.max on channel views: ~40x faster than rgb.max(axis=2).
    return cv2.max(cv2.max(rgb[:, :, 0], rgb[:, :, 1]), rgb[:, :, 2])


def _fit_circle(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares (Kasa) circle through points: x^2 + y^2 + D x + E y + F = 0."""
    a = np.column_stack([x, y, np.ones_like(x)])
    b = -(x * x + y * y)
    (d, e, f), *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = -d / 2, -e / 2
    r2 = cx * cx + cy * cy - f
    return float(cx), float(cy), float(np.sqrt(max(r2, 0.0)))


def _not_found(h: int, w: int) -> FundusCircle:
    return FundusCircle(w / 2 - 0.5, h / 2 - 0.5, min(h, w) / 2, found=False, clipped=False)


def _bright_region(small: np.ndarray) -> np.ndarray | None:
    """The field of view as a filled convex uint8 mask on the work copy, or None."""
    sh, sw = small.shape[:2]
    gray = _max_channel(small)  # brightest channel: works for any colour cast
    # Surround level from the four corners (a circular field of view leaves them dark);
    # fundus level from what is clearly brighter than that (median: robust to artefacts).
    c = max(2, round(0.06 * min(sh, sw)))
    corners = np.concatenate([gray[:c, :c], gray[:c, -c:], gray[-c:, :c], gray[-c:, -c:]], axis=None)
    background = float(np.median(corners))
    brighter = gray[gray > background + 10]
    if brighter.size < 0.05 * gray.size:
        return None
    foreground = float(np.median(brighter))
    # A low threshold keeps a dim rim (vignetting) inside the field of view.
    threshold = background + max(8.0, 0.15 * (foreground - background))
    bright = (gray > threshold).astype(np.uint8)

    # Noisy or dithered surrounds are bright in places but rough: keep smooth bright pixels
    # (local std < half the local mean), then grow back the rim that roughness cut off.
    values = gray.astype(np.float32)
    mean = cv2.blur(values, (7, 7))
    std = np.sqrt(np.maximum(cv2.blur(values * values, (7, 7)) - mean * mean, 0.0))
    core = bright & (std < 0.5 * mean).astype(np.uint8)
    # Opening removes what is left: thin streaks, text, small reflections.
    k = max(5, round(0.03 * max(sh, sw)) | 1)
    core = cv2.morphologyEx(core, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
    if count < 2:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[largest, cv2.CC_STAT_AREA] < 0.05 * sh * sw:
        return None
    core = (labels == largest).astype(np.uint8)
    grown = cv2.dilate(core, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))) & bright
    contours, _ = cv2.findContours(grown, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    # The field of view is convex: the hull bridges dark lesions, a dark macula or a dim rim
    # that reach the edge and would otherwise dent the outline.
    hull = cv2.convexHull(max(contours, key=len))
    region = np.zeros((sh, sw), np.uint8)
    cv2.fillConvexPoly(region, hull, 1)
    return region


def _rim_points(region: np.ndarray) -> np.ndarray:
    """Outline points of the region that lie on the circle: not on the image border and not on
    the straight top/bottom/side chords where the camera's frame cuts the circle."""
    sh, sw = region.shape
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    points = max(contours, key=len)[:, 0, :].astype(np.float64)
    x, y = points[:, 0], points[:, 1]
    keep = (x > x.min() + 1) & (x < x.max() - 1) & (y > y.min() + 1) & (y < y.max() - 1)
    keep &= (x > 1) & (x < sw - 2) & (y > 1) & (y < sh - 2)
    return points[keep]


def _robust_fit(x: np.ndarray, y: np.ndarray, fit, residuals) -> tuple[tuple, np.ndarray, np.ndarray]:
    """Fit, drop points far from the fit (a notch, an artefact on the rim), refit."""
    keep = np.ones(len(x), dtype=bool)
    for _ in range(4):
        params = fit(x[keep], y[keep])
        residual = residuals(x, y, params)
        new_keep = residual <= max(1.0, 3.0 * float(np.median(residual[keep])))
        if new_keep.sum() < 20 or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return params, residual, keep


def _circle_residuals(x, y, params):
    cx, cy, r = params
    return np.abs(np.hypot(x - cx, y - cy) - r)


def _fit_ellipse(x, y):
    (cx, cy), (width, height), angle = cv2.fitEllipse(np.column_stack([x, y]).astype(np.float32))
    return cx, cy, width / 2, height / 2, angle


def _ellipse_residuals(x, y, params):
    cx, cy, a, b, angle = params
    t = np.deg2rad(angle)
    dx, dy = x - cx, y - cy
    u = dx * np.cos(t) + dy * np.sin(t)
    v = -dx * np.sin(t) + dy * np.cos(t)
    # Radial distance from the ellipse, approximately in pixels.
    return np.abs(np.sqrt((u / max(a, 1e-6)) ** 2 + (v / max(b, 1e-6)) ** 2) - 1.0) * (a + b) / 2


def find_fundus(rgb: np.ndarray) -> FundusCircle:
    """Locate the circular field of view on its dark surround.

    Threshold the brightest channel between the surround level (from the image corners) and
    the fundus level, keep the largest smooth bright region (its convex hull), and fit a
    circle by least squares to its outline points that are neither on the image border nor on
    the straight chords where the frame cuts the circle. Circles cut off at the top and bottom
    are thus fitted from their remaining arcs; outliers (a notch, a bright artefact on the rim)
    are dropped and the circle refitted. An elliptical field of view (images squashed to a
    square) gets the circle through its long axis, so the circle still holds the whole fundus.
    Returns ``found=False`` (with a centred circle) when nothing round is found: black, white,
    noise, no surround. Works on a copy shrunk by an integer factor to <= 384 px (~5 ms).
    """
    _check_rgb(rgb)
    h, w = rgb.shape[:2]
    small, k = _shrink_by_integer(rgb, _WORK_SIDE)
    sh, sw = small.shape[:2]
    region = _bright_region(small)
    if region is None:
        return _not_found(h, w)
    points = _rim_points(region)
    if len(points) < 30:
        return _not_found(h, w)
    x, y = points[:, 0], points[:, 1]

    (cx, cy, r), residual, keep = _robust_fit(x, y, _fit_circle, _circle_residuals)
    tolerance = max(1.0, 0.03 * r)
    shape = np.zeros_like(region)
    if keep.mean() >= 0.6 and float(np.median(residual)) <= tolerance:
        cv2.circle(shape, (round(cx * 16), round(cy * 16)), round(r * 16), 1, -1, shift=4)
    else:
        (cx, cy, a, b, angle), residual, keep = _robust_fit(x, y, _fit_ellipse, _ellipse_residuals)
        if not (keep.mean() >= 0.6 and float(np.median(residual)) <= tolerance and max(a, b) <= 1.5 * min(a, b)):
            return _not_found(h, w)
        cv2.ellipse(shape, ((cx, cy), (2 * a, 2 * b), angle), 1, -1)
        r = max(a, b)

    # Plausibility: a round shape of sensible size that the bright region fills and hardly
    # exceeds, within the region's bounding box (the frame's chords cut the shape legitimately).
    bx, by, bw, bh = cv2.boundingRect(region)
    shape[:by], shape[by + bh :], shape[:, :bx], shape[:, bx + bw :] = 0, 0, 0, 0
    shape_area = int(shape.sum())
    overlap = int((shape & region).sum())
    plausible = (
        0.15 * min(sh, sw) <= r <= 0.75 * max(sh, sw)
        and 0 <= cx < sw and 0 <= cy < sh
        and shape_area > 0
        and overlap >= 0.9 * shape_area
        and overlap >= 0.9 * int(region.sum())
    )
    if not plausible:
        return _not_found(h, w)

    # From work-copy pixel centres to image pixel centres. (Outline pixels are the region's
    # outermost pixels; with the low threshold on the shrunk, softened rim they sit about on
    # the true edge: measured bias +0.3 work-copy px.)
    cx, cy, r = (cx + 0.5) * k - 0.5, (cy + 0.5) * k - 0.5, r * k
    margin = 0.01 * r
    clipped = cx - r < -margin or cy - r < -margin or cx + r > w + margin or cy + r > h + margin
    return FundusCircle(float(cx), float(cy), float(r), found=True, clipped=bool(clipped))


def circle_mask(shape: tuple[int, ...], circle: FundusCircle) -> np.ndarray:
    """Boolean HxW mask of the pixels whose centre (at integer coordinates) lies inside
    ``circle``, to within half a pixel. Drawn by OpenCV at 1/16 px: ~40x faster than
    evaluating distances."""
    mask = np.zeros(shape[:2], np.uint8)
    centre = (round(circle.cx * 16), round(circle.cy * 16))
    # OpenCV's filled circle reaches ~0.4 px beyond its radius; r - 0.4 makes the area exact.
    radius = max(0, round((circle.r - 0.4) * 16))
    cv2.circle(mask, centre, radius, 1, thickness=-1, lineType=cv2.LINE_8, shift=4)
    return mask.view(bool)


def _crop_box(circle: FundusCircle) -> tuple[int, int, int]:
    """(x0, y0, side) of the square of side 2r centred on the circle, in image pixels."""
    side = max(1, round(2 * circle.r))
    # Pixel centres are at integer coordinates: pixel x0 spans x0 - 0.5 .. x0 + 0.5, so the
    # square's left edge x0 - 0.5 = cx - side / 2, rounded half up (not to even).
    return math.floor(circle.cx + 1 - side / 2), math.floor(circle.cy + 1 - side / 2), side


def crop_to_fundus(rgb: np.ndarray, circle: FundusCircle, mask: bool = True) -> np.ndarray:
    """Square crop of side 2r centred on the circle; black padding where the circle is cut off.

    With ``mask``, everything outside the circle is black.
    """
    _check_rgb(rgb)
    h, w = rgb.shape[:2]
    x0, y0, side = _crop_box(circle)
    out = np.zeros((side, side, 3), dtype=np.uint8)
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(w, x0 + side), min(h, y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    if mask:
        inside = circle_mask(out.shape, circle.scaled(1.0, -x0, -y0))
        out = _apply_mask(out, inside)
    return out


def _apply_mask(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Black outside ``mask`` (HxW bool)."""
    return cv2.bitwise_and(rgb, rgb, mask=mask.astype(np.uint8, copy=False))


def centre_square_crop(rgb: np.ndarray) -> np.ndarray:
    """The central square of side min(H, W): the fallback when no fundus is found."""
    _check_rgb(rgb)
    h, w = rgb.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    return rgb[y0 : y0 + side, x0 : x0 + side].copy()


def pad_to_square(rgb: np.ndarray) -> np.ndarray:
    """Centre the image on a black square of side max(H, W) (aspect ratio kept)."""
    _check_rgb(rgb)
    h, w = rgb.shape[:2]
    if h == w:
        return rgb
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    return cv2.copyMakeBorder(rgb, top, side - h - top, left, side - w - left, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def resize_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize to size x size: INTER_AREA when shrinking, INTER_CUBIC when enlarging.

    A non-square input is first padded to a square with black (aspect ratio kept).
    """
    square = pad_to_square(rgb)
    if square.shape[0] == size:
        return square.copy() if square is rgb else square
    interpolation = cv2.INTER_AREA if square.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(square, (size, size), interpolation=interpolation)


def ben_graham(
    rgb: np.ndarray,
    sigma_at_300: float = 10.0,
    radius: float | None = None,
    fundus_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Graham's Kaggle 2015 normalisation: 4*img - 4*GaussianBlur(img) + 128, clipped to 0..255.

    The blur sigma is ``sigma_at_300 * radius / 300`` (Graham used sigma 10 at a 300 px
    fundus radius); ``radius`` defaults to half the short side. With ``fundus_mask`` (HxW
    bool) the local average is taken over fundus pixels only (normalised convolution), which
    avoids the bright ring at the rim that Graham hid by shrinking the circle to 90%, and
    everything outside the mask stays black.
    """
    _check_rgb(rgb)
    if radius is None:
        radius = min(rgb.shape[:2]) / 2
    sigma = max(sigma_at_300 * radius / 300.0, 0.3)
    if fundus_mask is None:
        blurred = cv2.GaussianBlur(rgb, (0, 0), sigma)
        return cv2.addWeighted(rgb, 4, blurred, -4, 128)
    weight = fundus_mask.astype(np.float32)
    image = rgb.astype(np.float32) * weight[:, :, None]
    local_sum = cv2.GaussianBlur(image, (0, 0), sigma)
    local_weight = cv2.GaussianBlur(weight, (0, 0), sigma)
    local_mean = local_sum / np.maximum(local_weight, 1e-6)[:, :, None]
    out = np.clip(4.0 * (rgb.astype(np.float32) - local_mean) + 128.0 + 0.5, 0, 255).astype(np.uint8)
    return _apply_mask(out, fundus_mask)


def clahe_lab(rgb: np.ndarray, clip: float = 2.0, tiles: int = 8) -> np.ndarray:
    """CLAHE on the L channel of LAB (seed 001's code path), back to RGB."""
    _check_rgb(rgb)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    lightness, a, b = cv2.split(lab)
    clahe = cv2.createCLAHE(clipLimit=clip, tileGridSize=(tiles, tiles))
    return cv2.cvtColor(cv2.merge((clahe.apply(lightness), a, b)), cv2.COLOR_LAB2RGB)


def preprocess_image(
    rgb: np.ndarray, cfg: PreprocessConfig, size: int, circle: FundusCircle | None = None
) -> np.ndarray:
    """The one preprocessing entry point (cache and inference): RGB uint8 -> size x size x 3.

    Order: find the fundus -> crop -> resize -> mask -> Ben Graham -> CLAHE. Masking and the
    contrast steps run at the target size: cheaper, a crisp mask edge, and as Graham's sigma
    scales with the fundus radius, the result does not depend on the input resolution.
    Without a fundus, a centre square crop is used (and no mask). ``circle`` skips the search
    when the caller already has it (from this same array).
    """
    _check_rgb(rgb)
    if circle is None:
        circle = find_fundus(rgb)
    if cfg.crop and circle.found:
        image = crop_to_fundus(rgb, circle, mask=False)
        x0, y0, side = _crop_box(circle)
        out_circle = circle.scaled(1.0, -x0, -y0)
    elif cfg.crop:
        image = centre_square_crop(rgb)
        side = image.shape[0]
        out_circle = FundusCircle(side / 2 - 0.5, side / 2 - 0.5, side / 2, found=False, clipped=False)
    else:
        h, w = rgb.shape[:2]
        image, side = rgb, max(h, w)
        out_circle = circle.scaled(1.0, (side - w) // 2, (side - h) // 2)  # pad_to_square offsets
    image = resize_square(image, size)
    # Pixel centres: scaling by s maps pixel centre c to (c + 0.5) * s - 0.5.
    factor = size / side
    out_circle = out_circle.scaled(factor, 0.5 * factor - 0.5, 0.5 * factor - 0.5)
    # The mask is applied at the output size: cheaper than at full size, and a crisp edge.
    inside = circle_mask(image.shape, out_circle) if cfg.mask and circle.found else None
    if inside is not None:
        image = _apply_mask(image, inside)
    if cfg.ben_graham:
        image = ben_graham(image, cfg.ben_graham_sigma, radius=out_circle.r, fundus_mask=inside)
    if cfg.clahe:
        image = clahe_lab(image, cfg.clahe_clip, cfg.clahe_tiles)
        if inside is not None:
            image = _apply_mask(image, inside)  # CLAHE lifts black a little: keep the surround black
    return image


def _resize_to(image: np.ndarray, n: int) -> np.ndarray:
    interpolation = cv2.INTER_AREA if image.shape[0] > n else cv2.INTER_LINEAR
    return cv2.resize(image, (n, n), interpolation=interpolation)


def _sharpness(green: np.ndarray, inside: np.ndarray) -> float:
    """Fine detail relative to brightness: std of the Laplacian / mean, inside the fundus.

    Computed at a fixed fundus diameter, so it does not depend on the photo's resolution;
    dividing by the mean makes it independent of exposure.
    """
    lap = cv2.Laplacian(green, cv2.CV_32F, ksize=3)
    mean = float(green[inside].mean())
    return float(lap[inside].std() / max(mean, 1.0) * 100.0)


def assess_quality(rgb: np.ndarray, circle: FundusCircle | None = None) -> Quality:
    """Is the photo gradable? Fundus found, neither too dark nor too bright, not blurred.

    Brightness is the mean luma inside the fundus; sharpness a normalised Laplacian measure on
    the green channel (where vessels and lesions have most contrast) at a fixed scale. The
    score is the minimum over the three checks of ``x / (x + threshold)``-style ramps: 0.5
    at a threshold, towards 1 when clearly fine. Thresholds: module constants, calibrated so
    that all real photos in shared/data with a detected fundus and the synthetic ones pass,
    and photos blurred with a Gaussian of sigma >= 2-3% of the fundus diameter fail.
    """
    _check_rgb(rgb)
    if circle is None:
        circle = find_fundus(rgb)
    if not circle.found:
        return Quality(False, 0.0, "no fundus detected")
    h, w = rgb.shape[:2]
    n = _QUALITY_DIAMETER
    x0, y0, side = _crop_box(circle)
    crop = crop_to_fundus(rgb, circle, mask=False)
    # Green in float (rounding to 8 bits would leave a Laplacian floor that hides blur); the
    # colour crop for brightness via a fast exact integer shrink first.
    green = _resize_to(_shrink_by_integer(cv2.extractChannel(crop, 1).astype(np.float32), 2 * n)[0], n)
    small = _resize_to(_shrink_by_integer(crop, 2 * n)[0], n)
    # Measure inside 0.85 r (the rim's edge is not detail) and away from the black padding
    # where the frame cut the circle (its edge is not detail either).
    centre = (n - 1) / 2
    inside = circle_mask(small.shape, FundusCircle(centre, centre, 0.85 * n / 2, True, False))
    coords = (np.arange(n) + 0.5) * side / n - 0.5  # quality-patch pixel centre -> image offset
    margin = 3 * side / n
    rows_ok = (y0 + coords >= margin) & (y0 + coords <= h - 1 - margin)
    cols_ok = (x0 + coords >= margin) & (x0 + coords <= w - 1 - margin)
    inside &= rows_ok[:, None] & cols_ok[None, :]
    if inside.sum() < 0.1 * n * n:
        return Quality(False, 0.0, "no fundus detected")
    luma = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    brightness = float(luma[inside].mean())
    # Sharpness also skips black bars inside the frame (squashed or letterboxed photos) and
    # their edges: a step from black to fundus would look like sharp detail.
    lit = cv2.erode((_max_channel(small) > 10).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    detail = inside & lit
    sharpness = _sharpness(green, detail) if detail.sum() >= 0.05 * n * n else 0.0

    score = min(
        brightness / (brightness + DARK_THRESHOLD),
        (255 - brightness) / ((255 - brightness) + (255 - BRIGHT_THRESHOLD)),
        sharpness / (sharpness + SHARPNESS_THRESHOLD),
    )
    if brightness < DARK_THRESHOLD:
        reason = "too dark"
    elif brightness > BRIGHT_THRESHOLD:
        reason = "too bright"
    elif sharpness < SHARPNESS_THRESHOLD:
        reason = "blurred"
    else:
        reason = ""
    return Quality(reason == "", float(score), reason)

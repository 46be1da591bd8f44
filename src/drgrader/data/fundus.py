"""Where the retina is in a photo: the circular field of view (``find_fundus``), found on a small
copy so it does not depend on the decode size, robust to clipped frames and squashed photos."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_WORK_SIDE = 384


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
    # other bright regions as large as a fundus apart from it: several photos in one picture
    # (both eyes side by side, a montage), of which this is only one
    others: int = 0

    def scaled(self, factor: float, dx: float = 0.0, dy: float = 0.0) -> "FundusCircle":
        """The same circle after scaling the image by ``factor`` and shifting it by (dx, dy)."""
        return FundusCircle(self.cx * factor + dx, self.cy * factor + dy, self.r * factor, self.found, self.clipped,
                            self.others)


def check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        shape = getattr(rgb, "shape", None)
        dtype = getattr(rgb, "dtype", type(rgb).__name__)
        raise ValueError(f"expected an RGB uint8 array of shape (H, W, 3), got {dtype} {shape}")


def shrink_by_integer(image: np.ndarray, max_side: int) -> tuple[np.ndarray, int]:
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


def max_channel(rgb: np.ndarray) -> np.ndarray:
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


# A second smooth bright region of at least this share of the largest one's area is another fundus.
OTHER_FUNDUS_SHARE = 0.4


def _bright_region(small: np.ndarray) -> tuple[np.ndarray, int] | None:
    """The field of view as a filled convex uint8 mask on the work copy, and how many other
    regions as large as a fundus lie apart from it; or None."""
    sh, sw = small.shape[:2]
    gray = max_channel(small)  # brightest channel: works for any colour cast
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
    core: np.ndarray = bright & (std < 0.5 * mean).astype(np.uint8)
    # Opening removes what is left: thin streaks, text, small reflections.
    k = max(5, round(0.03 * max(sh, sw)) | 1)
    core = cv2.morphologyEx(core, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
    if count < 2:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[largest, cv2.CC_STAT_AREA] < 0.05 * sh * sw:
        return None
    others = int((stats[1:, cv2.CC_STAT_AREA] >= OTHER_FUNDUS_SHARE * stats[largest, cv2.CC_STAT_AREA]).sum()) - 1
    core = (labels == largest).astype(np.uint8)
    grown: np.ndarray = np.bitwise_and(cv2.dilate(core, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))), bright)
    contours, _ = cv2.findContours(grown, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    # The field of view is convex: the hull bridges dark lesions, a dark macula or a dim rim
    # that reach the edge and would otherwise dent the outline.
    hull = cv2.convexHull(max(contours, key=len))
    region = np.zeros((sh, sw), np.uint8)
    cv2.fillConvexPoly(region, hull, 1)
    return region, others


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
    check_rgb(rgb)
    h, w = rgb.shape[:2]
    small, k = shrink_by_integer(rgb, _WORK_SIDE)
    sh, sw = small.shape[:2]
    found = _bright_region(small)
    if found is None:
        return _not_found(h, w)
    region, others = found
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
    return FundusCircle(float(cx), float(cy), float(r), found=True, clipped=bool(clipped), others=others)


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



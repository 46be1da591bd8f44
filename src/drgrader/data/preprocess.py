"""Fundus preprocessing: pure functions, RGB uint8 array in, array out (the field of view is
found by :mod:`.fundus`, gradability judged by :mod:`.quality`).

:func:`preprocess_image` is the one entry point used both when building the training cache
and at inference (the model bundle calls it with its stored settings), so a model always sees
images prepared exactly as in training.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from drgrader.config import PreprocessConfig
from drgrader.data.fundus import FundusCircle, check_rgb, circle_mask, find_fundus


def crop_box(circle: FundusCircle) -> tuple[int, int, int]:
    """(x0, y0, side) of the square of side 2r centred on the circle, in image pixels."""
    side = max(1, round(2 * circle.r))
    # Pixel centres are at integer coordinates: pixel x0 spans x0 - 0.5 .. x0 + 0.5, so the
    # square's left edge x0 - 0.5 = cx - side / 2, rounded half up (not to even).
    return math.floor(circle.cx + 1 - side / 2), math.floor(circle.cy + 1 - side / 2), side


def crop_to_fundus(rgb: np.ndarray, circle: FundusCircle, mask: bool = True) -> np.ndarray:
    """Square crop of side 2r centred on the circle; black padding where the circle is cut off.

    With ``mask``, everything outside the circle is black.
    """
    check_rgb(rgb)
    h, w = rgb.shape[:2]
    x0, y0, side = crop_box(circle)
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
    check_rgb(rgb)
    h, w = rgb.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    return rgb[y0 : y0 + side, x0 : x0 + side].copy()


def pad_to_square(rgb: np.ndarray) -> np.ndarray:
    """Centre the image on a black square of side max(H, W) (aspect ratio kept)."""
    check_rgb(rgb)
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
    check_rgb(rgb)
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
    check_rgb(rgb)
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
    check_rgb(rgb)
    if circle is None:
        circle = find_fundus(rgb)
    if cfg.crop and circle.found:
        image = crop_to_fundus(rgb, circle, mask=False)
        x0, y0, side = crop_box(circle)
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



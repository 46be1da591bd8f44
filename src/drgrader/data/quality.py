"""Is a photo gradable? Fundus found, neither too dark nor too bright, in colour, not
blurred (``assess_quality``): thresholds calibrated on real and synthetic photos."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from drgrader.data.fundus import FundusCircle, check_rgb, circle_mask, find_fundus, max_channel, shrink_by_integer
from drgrader.data.preprocess import crop_box, crop_to_fundus

_QUALITY_DIAMETER = 256  # fixed scale for the sharpness measure

# Quality thresholds, calibrated on the real photos in shared/data (rahim-originals,
# eyepacs-256), on drgrader.synth images and on degraded copies (tests/data/test_preprocess.py).
DARK_THRESHOLD = 25.0  # mean luma inside the fundus, 0..255
BRIGHT_THRESHOLD = 225.0
SHARPNESS_THRESHOLD = 4.0  # normalised Laplacian measure, see _sharpness
# Colour: mean spread between the colour channels / mean luma, inside the fundus (_colourfulness).
# A greyscale or red-free photo (mode L, LA, I;16, a MONOCHROME2 DICOM, R=G=B) measures 0, and
# grey copies re-saved as RGB JPEG or WebP under 0.0002; the least colourful of the 3,697
# eyepacs-256 photos measures 0.055 and of the 180 rahim-originals 0.48: a margin of 2.7x.
GREY_THRESHOLD = 0.02
# Red-free photos stored in colour and tinted monochrome ones, measured on the 3,877 real photos
# of shared/data and on green-only, red-removed and sepia copies of each, lossless and JPEG q90
# (benchmarks/bench_colour_check.py -> results/colour_check.json). A colour fundus is red (the
# choroid's blood): mean red / mean green is at least 0.81 in any real photo (1.32 in camera
# originals; eyepacs-256's channels were equalised), at most 0.046 in a red-free copy.
RED_THRESHOLD = 0.3
# A tinted monochrome (sepia) has the same red/green and green/blue in every pixel: its tint
# spread (_tint_spread) is at most 0.035 lossless; the least of any real photo is 0.13 (2x the
# bar). JPEG noise spreads a sepia copy's ratios (median 0.063, up to 0.175): about half of
# the q90 JPEG copies are caught.
TINT_THRESHOLD = 0.065
# A fundus far smaller than the grader's input is enlarged several times and fine lesions are
# gone: under half the input size it is ungradable. The smallest real fundus is 165 px across
# (eyepacs-256), 0.65 of the built-in grader's 256 px.
MIN_FUNDUS_SHARE = 0.5
# A fundus is red: mean red / mean blue inside it is at least 0.78 in every real photo of
# shared/data (1.62 in camera originals; eyepacs-256's channels were equalised) and 0.01-0.62 in
# a camera original saved in OpenCV's BGR order without conversion (results/colour_check.json,
# channel_order_*). Under 0.5 (1.6x below the least real photo) the colours are taken as reversed.
REVERSED_THRESHOLD = 0.5
REVERSED = ("colours look reversed (blue far above red: saved from OpenCV's BGR order?): the grader needs "
            "the photo in its true colours")
NOT_COLOUR = ("not a colour photograph (greyscale, red-free or tinted monochrome): the grader needs a "
              "colour fundus photo")


@dataclass(frozen=True)
class Quality:
    gradable: bool
    score: float  # 0..1, 0.5 at the nearest threshold
    reason: str  # "" when gradable


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


def _colourfulness(small: np.ndarray, luma: np.ndarray, inside: np.ndarray) -> float:
    """How far the photo is from grey: mean (max - min) over the colour channels divided by the
    mean luma, inside the fundus, so it does not depend on exposure."""
    lowest = cv2.min(cv2.min(small[:, :, 0], small[:, :, 1]), small[:, :, 2])
    spread = cv2.subtract(max_channel(small), lowest)
    return float(spread[inside].mean() / max(float(luma[inside].mean()), 1.0))


@dataclass(frozen=True)
class Measures:
    """What the quality check measures inside the fundus (``measure_photo``)."""

    brightness: float  # mean luma, 0..255
    sharpness: float
    colour: float  # _colourfulness
    red_to_green: float  # mean red / mean green
    tint_spread: float  # _tint_spread
    red_to_blue: float  # mean red / mean blue (channel order, see drgrader.api)
    diameter: float  # the fundus circle's diameter in the photo's pixels


def _tint_spread(small: np.ndarray, inside: np.ndarray) -> float:
    """How far the colours are from one hue: in a tinted monochrome photo (sepia, or the green
    channel shown in green) each channel is the same grey scaled by a fixed factor, so red/green
    and green/blue are the same in every pixel; in a colour photo they vary (vessels, disc,
    lesions). The larger over the two ratios of the 10-90% range of the log ratio, over pixels
    bright enough for 8-bit rounding not to matter."""
    pixels = small[inside].astype(np.float64) + 1.0
    spreads = []
    for a, b in ((0, 1), (1, 2)):
        bright = (pixels[:, a] >= 30) | (pixels[:, b] >= 30)
        if bright.sum() < 100:
            continue
        low, high = np.quantile(np.log(pixels[bright, a] / pixels[bright, b]), [0.1, 0.9])
        spreads.append(float(high - low))
    return max(spreads, default=0.0)


def measure_photo(rgb: np.ndarray, circle: FundusCircle | None = None) -> Measures | None:
    """The quality measures of a photo, or None when no fundus is found."""
    check_rgb(rgb)
    if circle is None:
        circle = find_fundus(rgb)
    if not circle.found:
        return None
    h, w = rgb.shape[:2]
    n = _QUALITY_DIAMETER
    x0, y0, side = crop_box(circle)
    crop = crop_to_fundus(rgb, circle, mask=False)
    # Green in float (rounding to 8 bits would leave a Laplacian floor that hides blur); the
    # colour crop for brightness via a fast exact integer shrink first.
    green = _resize_to(shrink_by_integer(cv2.extractChannel(crop, 1).astype(np.float32), 2 * n)[0], n)
    small = _resize_to(shrink_by_integer(crop, 2 * n)[0], n)
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
        return None
    luma = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    # Sharpness also skips black bars inside the frame (squashed or letterboxed photos) and
    # their edges: a step from black to fundus would look like sharp detail.
    lit = cv2.erode((max_channel(small) > 10).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    detail = inside & lit
    red, green_mean, blue = (float(small[:, :, c][inside].mean()) for c in range(3))
    return Measures(
        brightness=float(luma[inside].mean()),
        sharpness=_sharpness(green, detail) if detail.sum() >= 0.05 * n * n else 0.0,
        colour=_colourfulness(small, luma, inside),
        red_to_green=red / max(green_mean, 1.0),
        tint_spread=_tint_spread(small, inside),
        red_to_blue=red / max(blue, 1.0),
        diameter=2.0 * circle.r,
    )


def assess_quality(rgb: np.ndarray, circle: FundusCircle | None = None, input_size: int | None = None) -> Quality:
    """Is the photo gradable? Fundus found, neither too dark nor too bright, in colour, not
    blurred, and (given the grader's ``input_size``) not far smaller than what the grader sees.

    Brightness is the mean luma inside the fundus; sharpness a normalised Laplacian measure on
    the green channel (where vessels and lesions have most contrast) at a fixed scale; colour
    the channels' spread, red not far below green, and colours off one hue line (the grader
    was trained on colour photos: a red-free or tinted monochrome one loses the red lesions and
    is graded far too low). The score is the minimum over the checks of
    ``x / (x + threshold)``-style ramps: 0.5 at a threshold, towards 1 when clearly fine.
    Thresholds: module constants, calibrated so that all real photos in shared/data with a
    detected fundus and the synthetic ones pass, photos blurred with a Gaussian of sigma >= 2-3%
    of the fundus diameter fail, and so do greyscale, red-free and tinted copies.
    """
    m = measure_photo(rgb, circle)
    if m is None:
        return Quality(False, 0.0, "no fundus detected")
    brightness = m.brightness
    score = min(
        brightness / (brightness + DARK_THRESHOLD),
        (255 - brightness) / ((255 - brightness) + (255 - BRIGHT_THRESHOLD)),
        m.sharpness / (m.sharpness + SHARPNESS_THRESHOLD),
        m.colour / (m.colour + GREY_THRESHOLD),
        m.red_to_green / (m.red_to_green + RED_THRESHOLD),
        m.tint_spread / (m.tint_spread + TINT_THRESHOLD),
        m.red_to_blue / (m.red_to_blue + REVERSED_THRESHOLD),
    )
    min_diameter = MIN_FUNDUS_SHARE * input_size if input_size else 0.0
    if min_diameter:
        score = min(score, m.diameter / (m.diameter + min_diameter))
    if m.diameter < min_diameter:
        reason = (f"resolution too low: the fundus is {m.diameter:.0f} px across, under half of the "
                  f"grader's {input_size} px input")
    elif brightness < DARK_THRESHOLD:
        reason = "too dark"
    elif brightness > BRIGHT_THRESHOLD:
        reason = "too bright"
    elif m.colour < GREY_THRESHOLD or m.red_to_green < RED_THRESHOLD or m.tint_spread < TINT_THRESHOLD:
        reason = NOT_COLOUR
    elif m.red_to_blue < REVERSED_THRESHOLD:
        reason = REVERSED
    elif m.sharpness < SHARPNESS_THRESHOLD:
        reason = "blurred"
    else:
        reason = ""
    return Quality(reason == "", float(score), reason)

"""Is a photo gradable? Fundus found, neither too dark nor too bright, in colour, not
blurred, holding the detail the grader needs (``assess_quality``): thresholds calibrated on
real and synthetic photos."""

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
# Effective resolution: a thumbnail enlarged back to full size (what a viewer, a report or a
# screenshot gives back) has a fundus of many pixels but only the thumbnail's detail. For photo
# sizes from 32 px up to the bar (MIN_FUNDUS_SHARE x the grader's input), _fine_detail compares
# the fundus's detail in rings 0.75-1.25 x size / 2 cycles across it with that in 0.375-0.5 x, in
# decades of power; the fundus holds the detail of the sizes passed before the first under the
# threshold (_detail_held). At the built-in grader's 128 px bar, on the 3,877 real photos of
# shared/data and copies of each (benchmarks/bench_detail_check.py -> results/detail_check.json):
# the least detailed real photo measures -2.02 (rahim Patient103_L, nearly blurred: sharpness
# 5.8), the next -1.77, 0.1% under -1.71: the threshold is 0.28 decades (1.9x) below the least.
# Caught: a fundus enlarged from 64 px (bicubic or Lanczos, lossless or JPEG q90) 96-100%; from
# 96 px 99% with Lanczos (77% through JPEG q90) but 3-4% with bicubic, whose interpolation
# leaves detail-like energy (copies' max -1.68); from 128 px (half the input, not under) 0.1%.
# JPEG q50 copies: none (least -1.96); a Gaussian blur of sigma 0.25% of the fundus diameter:
# none, 0.35%: 0.4%, 0.5%: 87% (as little fine detail as a 96 px thumbnail; the blur check
# passes them). drgrader.synth photos at the 128 px bar: -1.5 and up at 384-512 px high, -2.14 at
# 192, -2.32 at 160 (some flagged); the demo's (512 px high, 64 px bar) -0.96 and up, the tests'
# (192 px high, bars of 32 px and less) -0.91 and up.
FINE_DETAIL_THRESHOLD = -2.3
# Compression: a camera photo reduced and saved as a coarse JPEG (an e-mail or messenger copy)
# has 8x8-block artefacts that the grader takes for lesions: its grades run high. Measured with
# the built-in grader on copies of the 180 rahim-originals (benchmarks/bench_compression_check.py
# -> results/compression_check.json): the mean shift of the expected grade grows with the JPEG's
# mean luma quantisation step and with how far the fundus is enlarged to the input; step x
# (input / fundus px) ** 1.5 orders the 28 JPEG copy kinds' shifts best (Spearman 0.94). The kinds
# over 18 (a long side of 256-400 px at quality 75 or under, 600 px at 50 or under, 900 px at 30)
# shift +0.16 to +1.0 grade and turn 23-80% of the non-referable eyes referable; those under it
# +0.14 or less (up to 13%); lossless copies of any size under 0.02 (2%). Real photos: camera
# originals (quality ~90, a 1,525 px fundus) 0.8, eyepacs-256 (quality ~95) median 5.8, at most
# 11.1 (a 165 px fundus): 1.6x below the bar. Conservative on photos like eyepacs-256 (the
# grader's own training data), which re-saved at quality 80 or under are flagged (62 of 62, every
# 60th photo; at 85 and 90: 2 of 62, those with the smallest fundus) although their grades move
# both ways, not up. Not caught: a copy re-saved as a better JPEG, re-saved losslessly (a PNG of
# the e-mail copy: a screenshot, a PACS export; probe 32 A6) or enlarged after compression: its
# quantisation tables no longer show it (a PNG has none). A pixel-domain blockiness measure (luma
# steps on the 8 px grid over those inside blocks, within the fundus) cannot tell them apart: such
# q40 copies re-saved at q95 measure 2.07 and up, real eyepacs-256 photos up to 2.22 (probe 30, F1;
# benchmarks/results/blockiness.json).
COMPRESSION_THRESHOLD = 18.0
# Colour-reduced copies: a photo saved as a palette image (a 256-colour PNG, GIF or BMP: web
# palette or adaptive, dithered or not) keeps at most 256 colours, and the grader grades its
# dithering, not the lesions (probe 32 A5: grade-4 eyes graded 0). Counted by distinct_colours
# on photos decoded as predict decodes them (benchmarks/bench_palette_check.py ->
# results/palette_check.json): real photos have 2,832 colours and up (rahim Patient064_L, a
# camera original decoded at 1/4 scale; eyepacs-256 12,197 and up; 463 + 180 photos), 11x the
# bar; palette copies of 54 of them (web palette dithered or not, adaptive 256 or 64 colours;
# PNG, GIF, BMP) 253 at most, all flagged. Not caught: a palette copy resized or re-saved as
# JPEG afterwards (interpolation and JPEG noise make new colours).
MAX_PALETTE_COLOURS = 256
_COMPRESSION_POWER = 1.5
# The start of the reason for a compressed copy: the patient decision advises asking for the
# original photo (inference/patient_decision.py), not photographing again.
COMPRESSED_COPY = "compressed copy"
REVERSED = ("colours look reversed (blue far above red: saved from OpenCV's BGR order?): the grader needs "
            "the photo in its true colours")
COLOUR_REDUCED_COPY = "colour-reduced copy"
SEVERAL_FUNDI = "several fundi in one picture"
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
    colours: int  # distinct_colours inside the fundus
    # mean log10 power of the fundus's fine detail per ring of 0..128 cycles across the fundus
    # (_detail_spectrum); empty when too little of the fundus is lit to measure it
    detail_spectrum: tuple[float, ...] = ()
    other_fundi: int = 0  # FundusCircle.others: more photos in the same picture


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


# The fine-detail spectrum (_detail_spectrum): the ring (whole cycles across the fundus, 0..n/2)
# of each bin of a real FFT of the quality patch, the bins per ring, and the high-pass's loss per
# ring in decades (undone, so that the rings keep the photo's own levels).
_HIGH_PASS = 6.0  # sigma, quality-patch px, of the blur subtracted before the FFT
_RINGS = np.floor(np.hypot(np.fft.fftfreq(_QUALITY_DIAMETER)[:, None] * _QUALITY_DIAMETER,
                           np.arange(_QUALITY_DIAMETER // 2 + 1)[None, :])).astype(np.intp).ravel()
_RING_BINS = np.bincount(_RINGS)[: _QUALITY_DIAMETER // 2 + 1]
_RING_LOSS = 2 * np.log10(1 - np.exp(-2 * (np.pi * _HIGH_PASS * (np.arange(_QUALITY_DIAMETER // 2 + 1) + 0.5)
                                                / _QUALITY_DIAMETER) ** 2))
_WINDOW_CORE = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (17, 17))
# The photo sizes _fine_detail tests, px (the fundus diameter of the photo whose finest detail it
# looks for): from 32 (coarser rings are mostly the high-pass's) to 204 (its top ring, 1.25 x 102
# cycles, is the quality patch's finest: graders of over 408 px are checked at 204 px).
_DETAIL_SIZES = (32, 204)


def _detail_spectrum(green: np.ndarray, detail: np.ndarray) -> tuple[float, ...]:
    """The fundus's fine detail by scale: mean log10 power per ring of 0..n/2 cycles across the
    fundus, of the green channel (float, quality patch) minus its blur, over ``detail`` with a
    smooth edge (the edge of the mask is not detail). Mean log power, not log mean power, so that
    the narrow peaks of a JPEG block grid do not count as detail."""
    core = cv2.erode(detail.astype(np.uint8), _WINDOW_CORE).astype(np.float32)
    window = cv2.GaussianBlur(core, (0, 0), 3) * detail
    fine = (green - cv2.GaussianBlur(green, (0, 0), _HIGH_PASS)) * window
    fine -= window * (float(fine.sum()) / max(float(window.sum()), 1e-6))
    power = np.abs(np.fft.rfft2(fine.astype(np.float64))) ** 2
    log_power = np.log10(power.ravel() + 1e-6)
    rings = len(_RING_BINS)
    profile = np.bincount(_RINGS, log_power, minlength=rings)[:rings] / _RING_BINS - _RING_LOSS
    return tuple(float(v) for v in profile)


def _fine_detail(spectrum: tuple[float, ...], size: float) -> float:
    """How much detail the fundus holds near the finest a photo whose fundus is ``size`` px across
    can hold, in decades against coarser detail: the mean log power over rings 0.75-1.25 x size / 2
    cycles across the fundus against 0.375-0.5 x size / 2. A real photo's detail falls off
    gradually through these rings; a thumbnail of under ``size`` px enlarged has next to none
    in the upper ones. 0.0 when not measured."""
    if not spectrum:
        return 0.0
    half = min(max(float(size), _DETAIL_SIZES[0]), _DETAIL_SIZES[1]) / 2
    levels = np.asarray(spectrum)

    def level(low: float, high: float) -> float:
        start = round(low * half)
        return float(levels[start : max(round(high * half), start + 1)].mean())

    return level(0.75, 1.25) - level(0.375, 0.5)


def _detail_held(spectrum: tuple[float, ...], bar: float) -> tuple[float, float]:
    """The fundus's effective resolution up to ``bar`` px, and the least fine detail on the way:
    the photo sizes from 32 px in steps of 4 up to ``bar`` (at most 204) are tried in turn, and
    the fundus holds the detail of the largest size before the first whose _fine_detail is under
    FINE_DETAIL_THRESHOLD (0 if 32 px fails), or ``bar`` if none is. In turn, because the test
    of a size far above an enlarged thumbnail compares two rings that both lost their detail."""
    if not spectrum:
        return float(bar), 0.0
    top = min(float(bar), _DETAIL_SIZES[1])
    sizes = [float(size) for size in range(_DETAIL_SIZES[0], int(np.ceil(top)), 4)] + [top]
    held, least = 0.0, np.inf
    for size in sizes:
        fine = _fine_detail(spectrum, size)
        least = min(least, fine)
        if fine < FINE_DETAIL_THRESHOLD:
            return held, least
        held = size
    return float(bar), least


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
    measurable = detail.sum() >= 0.05 * n * n
    red, green_mean, blue = (float(small[:, :, c][inside].mean()) for c in range(3))
    return Measures(
        brightness=float(luma[inside].mean()),
        sharpness=_sharpness(green, detail) if measurable else 0.0,
        colour=_colourfulness(small, luma, inside),
        red_to_green=red / max(green_mean, 1.0),
        tint_spread=_tint_spread(small, inside),
        red_to_blue=red / max(blue, 1.0),
        diameter=2.0 * circle.r,
        colours=distinct_colours(rgb, circle),
        detail_spectrum=_detail_spectrum(green, detail) if measurable else (),
        other_fundi=circle.others,
    )


_COLOUR_GRID = 256  # distinct_colours samples the fundus's box on a grid of at most this many px a side


def distinct_colours(rgb: np.ndarray, circle: FundusCircle) -> int:
    """How many distinct colours the photo has inside 0.9 of the fundus radius, counted on a
    grid of at most 256 x 256 of its own pixels (never resized: interpolation would mix a
    palette's colours into new ones)."""
    h, w = rgb.shape[:2]
    x0, y0 = max(0, int(circle.cx - 0.9 * circle.r)), max(0, int(circle.cy - 0.9 * circle.r))
    x1, y1 = min(w, int(circle.cx + 0.9 * circle.r) + 1), min(h, int(circle.cy + 0.9 * circle.r) + 1)
    step = max(1, -(-max(x1 - x0, y1 - y0) // _COLOUR_GRID))
    ys, xs = np.arange(y0, y1, step), np.arange(x0, x1, step)
    inside = (ys[:, None] - circle.cy) ** 2 + (xs[None, :] - circle.cx) ** 2 <= (0.9 * circle.r) ** 2
    pixels = rgb[y0:y1:step, x0:x1:step][inside].astype(np.uint32)
    return int(np.unique(pixels[:, 0] << 16 | pixels[:, 1] << 8 | pixels[:, 2]).size)


def compression_level(jpeg_step: float, fundus_px: float, input_size: int) -> float:
    """How strongly a JPEG's block artefacts reach the grader: the mean luma quantisation step
    (:func:`~drgrader.data.images.read_jpeg_step`) x (input size / fundus diameter in the file's
    pixels) ** 1.5 (see COMPRESSION_THRESHOLD)."""
    return jpeg_step * (input_size / fundus_px) ** _COMPRESSION_POWER


def jpeg_quality_of(jpeg_step: float) -> int:
    """The libjpeg quality whose scaled standard luma table has this mean step (about)."""
    scale = 100.0 * jpeg_step / 57.625  # 57.625: the standard table's mean, quality 50
    return int(round(5000.0 / scale if scale > 100.0 else (200.0 - scale) / 2.0))


def jpeg_step_at(quality: int) -> float:
    """The mean luma quantisation step of a libjpeg JPEG of this quality (the inverse of
    :func:`jpeg_quality_of`; 96 at quality 30)."""
    scale = 5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality
    return 57.625 * scale / 100.0


def assess_quality(rgb: np.ndarray, circle: FundusCircle | None = None, input_size: int | None = None, *,
                   jpeg_step: float | None = None, source_scale: float = 1.0) -> Quality:
    """Is the photo gradable? Fundus found, neither too dark nor too bright, in colour, not
    blurred, and (given the grader's ``input_size``) neither far smaller than what the grader sees
    nor holding no more detail than such a photo (a thumbnail enlarged back to full size), nor a
    small, coarsely compressed JPEG copy (``jpeg_step``: its file's, from
    :func:`~drgrader.data.images.read_jpeg_step`; ``source_scale``: the file's pixels per pixel
    of ``rgb``, which a JPEG decoded at reduced scale has fewer of), nor a colour-reduced copy
    (a palette image of at most 256 colours). Not caught: a compressed copy re-saved as a better
    JPEG or losslessly (PNG): no quantisation tables show it, and no pixel measure tells it from
    a real photo (see COMPRESSION_THRESHOLD).

    Brightness is the mean luma inside the fundus; sharpness a normalised Laplacian measure on
    the green channel (where vessels and lesions have most contrast) at a fixed scale; colour
    the channels' spread, red not far below green, and colours off one hue line (the grader
    was trained on colour photos: a red-free or tinted monochrome one loses the red lesions and
    is graded far too low). The score is the minimum over the checks of
    ``x / (x + threshold)``-style ramps: 0.5 at a threshold, towards 1 when clearly fine.
    Thresholds: module constants, calibrated so that all real photos in shared/data with a
    detected fundus and the synthetic ones pass, photos blurred with a Gaussian of sigma >= 2-3%
    of the fundus diameter fail, and so do greyscale, red-free and tinted copies. The effective
    resolution (_detail_held) is checked after the others: a blurred photo is "blurred".
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
    held, least_detail = _detail_held(m.detail_spectrum, min_diameter) if min_diameter else (0.0, 0.0)
    if min_diameter:
        score = min(score, m.diameter / (m.diameter + min_diameter))
        if m.detail_spectrum:
            detail = 10.0 ** (least_detail - FINE_DETAIL_THRESHOLD)
            score = min(score, detail / (detail + 1.0))
    compression = compression_level(jpeg_step, m.diameter * source_scale, input_size) if jpeg_step and input_size else 0.0
    score = min(score, COMPRESSION_THRESHOLD / (compression + COMPRESSION_THRESHOLD))
    if m.colours <= MAX_PALETTE_COLOURS:  # under 0.5 like the other failed checks; real photos' scores unchanged
        score = min(score, 0.5 * m.colours / (MAX_PALETTE_COLOURS + 1))
    if m.other_fundi:  # probe 34 AX4: the largest was graded, the others dropped without a word
        score = min(score, 0.25)
        reason = (f"{SEVERAL_FUNDI} ({m.other_fundi + 1}: both eyes side by side or a montage): only one would be graded; "
                  "grade each eye's photo on its own")
    elif m.diameter < min_diameter:
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
    elif m.colours <= MAX_PALETTE_COLOURS:
        reason = f"{COLOUR_REDUCED_COPY}: only {m.colours} colours (a palette image): grade the original photo"
    elif m.sharpness < SHARPNESS_THRESHOLD:
        reason = "blurred"
    elif held < min_diameter:
        photo = f"no more detail than a ~{held:.0f} px photo" if held else f"less detail than a {_DETAIL_SIZES[0]} px photo"
        reason = f"resolution too low: the fundus holds {photo} (enlarged?), under half of the grader's {input_size} px input"
    elif compression > COMPRESSION_THRESHOLD:
        reason = (f"{COMPRESSED_COPY}: a JPEG of quality ~{jpeg_quality_of(jpeg_step or 0.0)} with the fundus "
                  f"{m.diameter * source_scale:.0f} px across: its block artefacts look like lesions to the grader "
                  "(grades run high); grade the original photo")
    else:
        reason = ""
    return Quality(reason == "", float(score), reason)

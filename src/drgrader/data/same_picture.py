"""Photos that are one picture though their files differ: the same pixels (a PNG of a JPEG, a
JPEG re-saved, a resized copy) or one the mirror image of the other.

A misfiled photo seldom travels as a byte copy: a PACS export writes PNG or DICOM, a viewer
re-saves the JPEG. :func:`picture_print` gives each decoded photo a small fingerprint: the whole
frame in grey, shrunk to ``PRINT_SIDE`` x ``PRINT_SIDE`` (stretched to a square, so a resized
copy gives the same grid), band-passed (a Gaussian of ``_SMOOTH`` cells less one of
``_HIGH_PASS`` cells: the slow shading taken out, the vessels, disc, lesions and rim left),
normalised to zero mean and unit length. The distance of two photos is ``1 - a . b`` (1 - their
correlation); of a photo and the mirror image of another, the same with the other's grid
flipped left to right. :func:`same_pictures` groups the photos within :data:`SAME_PICTURE` of
each other; what is done about them (a note; never a patient's two eyes) is
:func:`drgrader.data.identity.note_same_pictures`'s to say. :func:`one_picture_with_any` tells
which photos are one picture with any of another set (evaluate's check against a model's
training photos).

The whole frame, not the fundus crop: the fundus circle found in an odd photo can move by a
twentieth of its size between the photo and its re-saved copy, or not be found in its half-size
copy (eyepacs-256 photos squashed or clipped by an earlier pipeline), while the frame stays. So
a copy cropped or padded (a border added) is not caught: only what keeps the frame
(re-encoding, another format, resizing, mirroring).

Calibrated on the real photos of ``../shared/data`` (``benchmarks/bench_pixel_copies.py`` ->
``benchmarks/results/pixel_copies.json``): see :data:`SAME_PICTURE`. Pure functions on arrays:
a photo is fingerprinted where it is decoded to be graded.
"""

from __future__ import annotations

import base64
from collections.abc import Hashable, Sequence

import cv2
import numpy as np

from drgrader.data.fundus import check_rgb

PRINT_SIDE = 32
_HIGH_PASS = 3.0  # sigma, in cells of the grid, of the shading taken out
_SMOOTH = 0.7  # and of the smoothing that makes the grid forgive how a copy was resampled
# A picture whose grid varies less than this (grey levels, standard deviation) has no
# fingerprint: a blank or black frame is like every other blank frame, not a copy of it.
MIN_CONTRAST = 0.5
# Two photos (or one and the other's mirror image) are one picture under this distance
# (1 - correlation of their fingerprints). Measured on the 3,897 real photos of shared/data
# decoded as predict decodes them (benchmarks/bench_pixel_copies.py -> results/pixel_copies.json):
# - a photo's copies are at most 0.00051 from it: PNG 0.00012, JPEG q90 0.00022, q75 0.00033,
#   half size 0.00038, 70% size 0.00051; mirrored JPEG q90 / q75 from its mirror image 0.00023
#   / 0.00033;
# - two photos of different patients at least 0.0151 (each photo's nearest other, either
#   orientation; 20,000 random pairs at least 0.024);
# - a patient's two eyes, one mirrored, at least 0.024; as they are, at least 0.0125 (eyepacs
#   10363: by the look two shots of one eye, not one picture; the next 0.020).
# The bar: 4.9x above the farthest copy, 5.0x below the nearest two eyes of a patient, 6.0x
# below the nearest photos of two patients. A second shot of one eye is not one picture here.
SAME_PICTURE = 0.0025
_SCALE = 20.0  # a stored value: round(z * _SCALE) in int8, z the cell in standard deviations (within +-6.35)
_POOL = 4  # the prefilter's cells: 4 x 4 of the grid's

SAME_PIXELS = "the same pixels"
MIRROR_IMAGES = "mirror images"


def picture_print(rgb: np.ndarray) -> str:
    """The fingerprint of a decoded photo (RGB uint8, any size), as text (what predict keeps
    and its resume file stores; :func:`print_grid` reads it): the ``PRINT_SIDE`` x
    ``PRINT_SIDE`` grid (module docstring) in standard deviations, int8, base64. '' for a
    picture without contrast (:data:`MIN_CONTRAST`)."""
    check_rgb(rgb)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    # One exact area resampling of the whole frame: a two-step shrink (an integer box filter
    # first) lands copies of other sizes on grids shifted by a fraction of a cell (a 70% copy of
    # a 576-px photo 0.013 away).
    grid = cv2.resize(grey, (PRINT_SIDE, PRINT_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
    grid = cv2.GaussianBlur(grid, (0, 0), _SMOOTH) - cv2.GaussianBlur(grid, (0, 0), _HIGH_PASS)
    grid -= grid.mean()
    spread = float(grid.std())
    if spread < MIN_CONTRAST:
        return ""
    values = np.clip(np.round(grid / spread * _SCALE), -127, 127).astype(np.int8)
    return base64.b64encode(values.tobytes()).decode("ascii")


def print_grid(text: object) -> np.ndarray | None:
    """A fingerprint's text -> its grid, float32, zero mean and unit length (so two grids'
    distance is ``1 - a . b``); None for '', a missing value or text that is not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        values = np.frombuffer(base64.b64decode(text, validate=True), dtype=np.int8)
    except ValueError:
        return None
    if values.size != PRINT_SIDE * PRINT_SIDE:
        return None
    grid = values.reshape(PRINT_SIDE, PRINT_SIDE).astype(np.float32)
    grid -= grid.mean()
    norm = float(np.linalg.norm(grid))
    return grid / norm if norm > 0 else None


def print_distances(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(distance of two grids, distance of ``a`` and ``b``'s mirror image), each 1 - a.b."""
    return 1.0 - float((a * b).sum()), 1.0 - float((a * b[:, ::-1]).sum())


def _pooled(grids: np.ndarray) -> np.ndarray:
    """Each grid's 4 x 4 cells summed and divided by 4: a map that never lengthens a difference
    (|P a - P b| <= |a - b|, by Cauchy-Schwarz), so a pair far apart pooled is far apart."""
    n = len(grids)
    cells = grids.reshape(n, PRINT_SIDE // _POOL, _POOL, PRINT_SIDE // _POOL, _POOL)
    return (cells.sum(axis=(2, 4)) / _POOL).reshape(n, -1)


def _near(rows: np.ndarray, columns: np.ndarray, threshold: float):
    """The prefilter: each ``(i, j)`` whose pooled grids (:func:`_pooled`) could be within
    ``threshold`` (exact: |a - b|^2 = 2 d, and pooling never lengthens it), in blocks of rows."""
    row_norms, column_norms = (rows**2).sum(1), (columns**2).sum(1)
    bound = 2 * threshold + 1e-4  # and float32's rounding of the expanded square
    block = max(1, 4_000_000 // max(1, len(columns)))
    for start in range(0, len(rows), block):
        squared = row_norms[start:start + block, None] + column_norms[None, :] - 2 * rows[start:start + block] @ columns.T
        for i, j in zip(*np.nonzero(squared <= bound)):
            yield start + int(i), int(j)


def close_pairs(grids: Sequence[np.ndarray | None], threshold: float = SAME_PICTURE) -> list[tuple[int, int, float, float]]:
    """Every pair ``(i, j, same, mirror)``, i < j, of grids (:func:`print_grid`; None: no
    fingerprint) within ``threshold`` of each other or of the other's mirror image: ``same`` and
    ``mirror`` their two distances. The pooled grids first (exact: |a - b|^2 = 2 d, and pooling
    never lengthens it), in blocks, so that a run of 100,000 photos is compared in seconds."""
    present = [(k, g) for k, g in enumerate(grids) if g is not None]
    if len(present) < 2:
        return []
    known = [k for k, _ in present]
    stack = np.stack([g for _, g in present]).astype(np.float32)
    flat, flat_mirror = stack.reshape(len(known), -1), stack[:, :, ::-1].reshape(len(known), -1)
    pooled = _pooled(stack)
    candidates: set[tuple[int, int]] = set()
    for other in (pooled, _pooled(stack[:, :, ::-1])):
        for a, b in _near(pooled, other, threshold):
            if a != b:
                candidates.add((min(a, b), max(a, b)))
    pairs = []
    for a, b in sorted(candidates):
        same, mirror = 1.0 - float(flat[a] @ flat[b]), 1.0 - float(flat[a] @ flat_mirror[b])
        if min(same, mirror) <= threshold:
            pairs.append((known[a], known[b], same, mirror))
    return pairs


def one_picture_with_any(prints: Sequence[str], known: Sequence[str], threshold: float = SAME_PICTURE) -> list[bool]:
    """For each fingerprint's text of ``prints``, whether it is one picture with one of ``known``
    (the same pixels, or the mirror image; '' matches nothing): :func:`close_pairs`' test and
    prefilter, one side against the other only (a few thousand photos against a training set
    of tens of thousands in seconds)."""
    found = [False] * len(prints)
    mine = [(k, g) for k, p in enumerate(prints) if (g := print_grid(p)) is not None]
    theirs = [g for p in known if (g := print_grid(p)) is not None]
    if not mine or not theirs:
        return found
    stack, others = np.stack([g for _, g in mine]).astype(np.float32), np.stack(theirs).astype(np.float32)
    flat, pooled = stack.reshape(len(mine), -1), _pooled(stack)
    for other in (others, others[:, :, ::-1]):
        other_flat = other.reshape(len(other), -1)
        for i, j in _near(pooled, _pooled(other), threshold):
            k = mine[i][0]
            if not found[k] and 1.0 - float(flat[i] @ other_flat[j]) <= threshold:
                found[k] = True
    return found


def same_pictures(prints: Sequence[str], units: Sequence[Hashable] | None = None,
                  threshold: float = SAME_PICTURE) -> list[tuple[list[int], list[bool]]]:
    """Groups of photos that are one picture, from their fingerprints' text
    (:func:`picture_print`; '' for none): ``(positions, mirrored)``, two or more positions each,
    sorted, and for each whether it is the mirror image of the first. A pair is mirror images
    when nearer so. Photos of one ``unit`` (the frames of one DICOM file: a stereo pair is two
    near-identical frames) are not paired with each other."""
    grids = [print_grid(p) for p in prints]
    links: dict[int, list[tuple[int, bool]]] = {}
    for a, b, same, mirror in close_pairs(grids, threshold):
        if units is not None and units[a] == units[b]:
            continue
        flipped = mirror < same
        links.setdefault(a, []).append((b, flipped))
        links.setdefault(b, []).append((a, flipped))
    groups, seen = [], set()
    for first in sorted(links):
        if first in seen:
            continue
        orientation, queue = {first: False}, [first]
        while queue:  # each member's side relative to the first, along the links
            k = queue.pop()
            for other, flipped in links[k]:
                if other not in orientation:
                    orientation[other] = orientation[k] != flipped
                    queue.append(other)
        seen |= set(orientation)
        members = sorted(orientation)
        groups.append((members, [orientation[k] != orientation[members[0]] for k in members]))
    return groups


def how_alike(ids: Sequence[str], mirrored: Sequence[bool]) -> str:
    """How photos (``ids``; ``mirrored``: as :func:`same_pictures` gives it) are one picture, in
    words: ``the same pixels``, ``mirror images`` (two), ``one picture ('b' mirrored)``."""
    flipped = [i for i, m in zip(ids, mirrored) if m]
    if not flipped:
        return SAME_PIXELS
    if len(ids) == 2:
        return MIRROR_IMAGES
    return f"one picture ({', '.join(map(repr, flipped))} mirrored)"

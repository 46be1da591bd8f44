"""Photos that are one picture though their files differ: the same pixels (a PNG of a JPEG, a
JPEG re-saved, a resized copy) or one the other flipped or turned (a mirror image, a copy
flipped top to bottom or turned by 90 or 180 degrees).

A misfiled photo seldom travels as a byte copy: a PACS export writes PNG or DICOM, a viewer
re-saves the JPEG. :func:`picture_print` gives each decoded photo a small fingerprint: the whole
frame in grey, shrunk to ``PRINT_SIDE`` x ``PRINT_SIDE`` (stretched to a square, so a resized
copy gives the same grid), band-passed (a Gaussian of ``_SMOOTH`` cells less one of
``_HIGH_PASS`` cells: the slow shading taken out, the vessels, disc, lesions and rim left),
normalised to zero mean and unit length. The distance of two photos is ``1 - a . b`` (1 - their
correlation), the nearest of the other's grid laid down each of the 8 ways a square can be
(:data:`ORIENTATIONS`: as it is, mirrored, flipped, turned): the frame is stretched to a square,
so the grid of a turned or flipped photo is the photo's grid turned or flipped.
:func:`same_pictures` groups the photos within :data:`SAME_PICTURE` of each other; what is done
about them (a note; never a patient's two eyes) is :func:`drgrader.data.identity.note_same_pictures`'s
to say. :func:`one_picture_with_any` tells
which photos are one picture with any of another set (evaluate's check against a model's
training photos).

The whole frame, not the fundus crop: the fundus circle found in an odd photo can move by a
twentieth of its size between the photo and its re-saved copy, or not be found in its half-size
copy (eyepacs-256 photos squashed or clipped by an earlier pipeline), while the frame stays. So
a copy cropped or padded (a border added) is not caught: only what keeps the frame
(re-encoding, another format, resizing, mirroring, flipping, turning by right angles).

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
# Two photos (one of them laid down any of the 8 ways) are one picture under this distance
# (1 - correlation of their fingerprints). Measured on the 3,897 real photos of shared/data
# decoded as predict decodes them (benchmarks/bench_pixel_copies.py -> results/pixel_copies.json):
# - a photo's copies are at most 0.00051 from it: PNG 0.00012, JPEG q90 0.00022, q75 0.00033,
#   half size 0.00038, 70% size 0.00051; mirrored JPEG q90 / q75 from its mirror image 0.00023
#   / 0.00033; flipped top to bottom, turned 90, 180 or 270 degrees (q90) 0.00023;
# - two photos of different patients at least 0.0151 (each photo's nearest other, the nearest
#   of the 8 ways; 20,000 random pairs at least 0.024): no nearer for the 6 ways added to the
#   mirror (probe 34 AX16);
# - a patient's two eyes, one mirrored, at least 0.024; as they are, at least 0.0125 (eyepacs
#   10363: by the look two shots of one eye, not one picture; the next 0.020); any of the 8
#   ways, the same.
# The bar: 4.9x above the farthest copy, 5.0x below the nearest two eyes of a patient, 6.0x
# below the nearest photos of two patients. A second shot of one eye is not one picture here.
SAME_PICTURE = 0.0025
# A patient's two eyes nearer than this are one picture edited (brightness, contrast, gamma: 0.004 to
# 0.008 from their photo; probe 42 BF3), not two eyes: the nearest two eyes of a patient measured are
# 0.0125 apart (eyepacs 10363, two shots of one eye by the look), the next 0.020.
FELLOW_EYES_APART = 0.010
EDITED_COPY = "nearly one picture (one perhaps an edited copy of the other: brightness, contrast)"
_SCALE = 20.0  # a stored value: round(z * _SCALE) in int8, z the cell in standard deviations (within +-6.35)
_POOL = 4  # the prefilter's cells: 4 x 4 of the grid's

SAME_PIXELS = "one picture re-saved, converted or resized"  # the same pixels but for the encoding (probe 47 BK11)
MIRROR_IMAGES = "mirror images"

# The 8 ways a square grid can be laid down again (the dihedral group of the square): what each
# does to grids (the last two axes), and how one of a group of photos is said to be laid down
# against the first. A photo turned 90 degrees one way is the other turned 90 degrees the other way.
ORIENTATIONS = (
    ("as is", lambda g: g),
    ("mirrored", lambda g: g[..., :, ::-1]),
    ("flipped top to bottom", lambda g: g[..., ::-1, :]),
    ("turned 180 degrees", lambda g: g[..., ::-1, ::-1]),
    ("turned 90 degrees", lambda g: np.rot90(g, 1, axes=(-2, -1))),
    ("turned 90 degrees", lambda g: np.rot90(g, -1, axes=(-2, -1))),
    ("turned 90 degrees and mirrored", lambda g: np.swapaxes(g, -1, -2)),
    ("turned 90 degrees and mirrored", lambda g: np.swapaxes(g, -1, -2)[..., ::-1, ::-1]),
)
AS_IS, MIRRORED = 0, 1


def oriented(grids: np.ndarray, orientation: int) -> np.ndarray:
    """A grid (or a stack of them) laid down as ``ORIENTATIONS[orientation]`` says (a view)."""
    return ORIENTATIONS[orientation][1](grids)


def _orientation_of(corners: np.ndarray) -> int:
    return next(k for k in range(len(ORIENTATIONS)) if np.array_equal(oriented(_CORNERS, k), corners))


_CORNERS = np.arange(4).reshape(2, 2)  # four distinct corners: each orientation moves them its own way
# _THEN[a][b]: the orientation of ``a`` after ``b`` (b applied first); _UNDO[a]: the one that undoes ``a``.
_THEN = [[_orientation_of(oriented(oriented(_CORNERS, b), a)) for b in range(8)] for a in range(8)]
_UNDO = [_THEN[a].index(AS_IS) for a in range(8)]
# Pair (a, b), b laid down one way, is pair (b, a), a laid down the undoing way: as every ordered
# pair is searched, of a way and its undoing (a turn by 90 degrees and by 270) one is enough.
_SEARCHED = [k for k in range(8) if _UNDO[k] >= k]


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


def nearest_orientation(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """(distance, orientation): how near grid ``a`` comes to grid ``b`` laid down each of the 8
    ways (1 - a.b), and the way it comes nearest (the first of equals)."""
    distances = [1.0 - float((a * oriented(b, k)).sum()) for k in range(len(ORIENTATIONS))]
    best = int(np.argmin(distances))
    return distances[best], best


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


def close_pairs(grids: Sequence[np.ndarray | None], threshold: float = SAME_PICTURE) -> list[tuple[int, int, float, int]]:
    """Every pair ``(i, j, distance, orientation)``, i < j, of grids (:func:`print_grid`; None: no
    fingerprint) within ``threshold`` of each other laid down one of the 8 ways: grid ``j`` laid
    down as ``ORIENTATIONS[orientation]`` says is ``distance`` from grid ``i`` (the nearest way).
    The pooled grids first, for each way (exact: |a - b|^2 = 2 d, and pooling never lengthens it;
    pooling and turning commute), in blocks, so that a run of 100,000 photos is compared in minutes."""
    present = [(k, g) for k, g in enumerate(grids) if g is not None]
    if len(present) < 2:
        return []
    known = [k for k, _ in present]
    stack = np.stack([g for _, g in present]).astype(np.float32)
    pooled = _pooled(stack)
    candidates: set[tuple[int, int]] = set()
    for orientation in _SEARCHED:
        for a, b in _near(pooled, _pooled(oriented(stack, orientation)), threshold):
            if a != b:
                candidates.add((min(a, b), max(a, b)))
    pairs = []
    for a, b in sorted(candidates):
        distance, orientation = nearest_orientation(stack[a], stack[b])
        if distance <= threshold:
            pairs.append((known[a], known[b], distance, orientation))
    return pairs


def one_picture_with_any(prints: Sequence[str], known: Sequence[str], threshold: float = SAME_PICTURE) -> list[bool]:
    """For each fingerprint's text of ``prints``, whether it is one picture with one of ``known``
    (the same pixels, or mirrored, flipped or turned; '' matches nothing): :func:`close_pairs`'
    test and prefilter, one side against the other only (a few thousand photos against a
    training set of tens of thousands in seconds)."""
    found = [False] * len(prints)
    mine = [(k, g) for k, p in enumerate(prints) if (g := print_grid(p)) is not None]
    theirs = [g for p in known if (g := print_grid(p)) is not None]
    if not mine or not theirs:
        return found
    stack, others = np.stack([g for _, g in mine]).astype(np.float32), np.stack(theirs).astype(np.float32)
    pooled = _pooled(stack)
    for orientation in range(len(ORIENTATIONS)):
        other = oriented(others, orientation)
        for i, j in _near(pooled, _pooled(other), threshold):
            k = mine[i][0]
            if not found[k] and 1.0 - float((stack[i] * other[j]).sum()) <= threshold:
                found[k] = True
    return found


def same_pictures(prints: Sequence[str], units: Sequence[Hashable] | None = None,
                  threshold: float = SAME_PICTURE) -> list[tuple[list[int], list[int]]]:
    """Groups of photos that are one picture, from their fingerprints' text
    (:func:`picture_print`; '' for none): ``(positions, orientations)``, two or more positions
    each, sorted, and for each how it is laid down against the first (an index of
    :data:`ORIENTATIONS`: ``AS_IS``, ``MIRRORED``...), by the nearest way of each pair. Photos of
    one ``unit`` (the frames of one DICOM file: a stereo pair is two near-identical frames) are
    not paired with each other."""
    grids = [print_grid(p) for p in prints]
    links: dict[int, list[tuple[int, int]]] = {}
    for a, b, _, orientation in close_pairs(grids, threshold):
        if units is not None and units[a] == units[b]:
            continue
        links.setdefault(a, []).append((b, _UNDO[orientation]))  # b is a laid down the undoing way
        links.setdefault(b, []).append((a, orientation))
    groups, seen = [], set()
    for first in sorted(links):
        if first in seen:
            continue
        laid, queue = {first: AS_IS}, [first]
        while queue:  # each member's way against the first, along the links
            k = queue.pop()
            for other, orientation in links[k]:
                if other not in laid:
                    laid[other] = _THEN[orientation][laid[k]]
                    queue.append(other)
        seen |= set(laid)
        members = sorted(laid)
        groups.append((members, against_first([laid[k] for k in members])))
    return groups


def alike_pairs(prints: Sequence[str], pairs: Sequence[tuple[int, int]], threshold: float = FELLOW_EYES_APART) -> list[tuple[int, int]]:
    """Of ``pairs`` of positions of ``prints`` (a patient's left and right photos), those nearer
    than ``threshold`` laid down any of the 8 ways: one picture edited, not two eyes."""
    grids = {k: print_grid(prints[k]) for pair in pairs for k in pair}
    alike = []
    for a, b in pairs:
        grid_a, grid_b = grids[a], grids[b]
        if grid_a is not None and grid_b is not None and nearest_orientation(grid_a, grid_b)[0] <= threshold:
            alike.append((a, b))
    return alike


def against_first(orientations: Sequence[int]) -> list[int]:
    """Each of a group's orientations (each against one same photo) taken against the first's."""
    undo_first = _UNDO[orientations[0]]
    return [_THEN[k][undo_first] for k in orientations]


def how_alike(ids: Sequence[str], orientations: Sequence[int]) -> str:
    """How photos (``ids``; ``orientations``: as :func:`same_pictures` gives them) are one
    picture, in words: ``the same pixels``, ``mirror images`` (two), ``the same picture turned 90
    degrees`` (two), ``one picture ('b' mirrored, 'c' turned 180 degrees)``."""
    ways = against_first(orientations)
    if not any(ways):
        return SAME_PIXELS
    if len(ids) == 2:
        return MIRROR_IMAGES if ways[1] == MIRRORED else f"the same picture {ORIENTATIONS[ways[1]][0]}"
    said: dict[str, list[str]] = {}
    for name, way in zip(ids, ways):
        if way != AS_IS:
            said.setdefault(ORIENTATIONS[way][0], []).append(repr(name))
    return f"one picture ({', '.join(', '.join(names) + ' ' + words for words, names in said.items())})"

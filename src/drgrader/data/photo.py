"""One photo -> the model's input: decode at the scale the model needs (libjpeg DCT scaling),
find the fundus, check its quality, preprocess. The one path the cache, ``predict`` and
``serve`` all take, so a photo graded in production is exactly what training saw."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drgrader.config import PreprocessConfig
from drgrader.data.dicom import DicomHeader
from drgrader.data.fundus import FundusCircle, find_fundus
from drgrader.data.images import read_image, read_image_size, read_jpeg_step
from drgrader.data.preprocess import preprocess_image
from drgrader.data.quality import Quality, assess_quality
from drgrader.data.same_picture import picture_print

# Decode JPEGs at a reduced DCT scale whose short side is at least this many times the model
# input size: the fundus circle is rarely under 80% of the short side. If it is, the image is
# decoded again at a larger scale (see preprocess_file), so the crop never needs upscaling.
DECODE_MARGIN = 1.25


def decode_min_side(image_size: int) -> int:
    """The short side to decode JPEGs at (libjpeg DCT scaling) for a model input size."""
    return math.ceil(DECODE_MARGIN * image_size)


@dataclass(frozen=True)
class PreprocessedImage:
    image: np.ndarray  # size x size x 3 RGB uint8: the model input
    quality: Quality
    circle: FundusCircle  # in the pixels of the decoded (possibly reduced) photo
    orig_height: int
    orig_width: int
    picture: str = ""  # its fingerprint (drgrader.data.same_picture), when asked for


def decode_photo(path: str | Path, size: int, orig_size: tuple[int, int] | None = None, *, max_pixels: int | None = None,
                 header: DicomHeader | None = None) -> tuple[np.ndarray, FundusCircle]:
    """Decode a photo at the scale a model of input ``size`` needs (scale-on-decode), and find
    its fundus. The one decoding used by the cache, ``predict`` and ``serve``. Any photo
    :func:`~drgrader.data.images.read_image` reads (a DICOM frame: ``<file>#frame<N>``; ``header``:
    its header, already read); only JPEGs decode at a reduced scale, the others at full size."""
    limits = {} if max_pixels is None else {"max_pixels": max_pixels}
    orig_height, orig_width = orig_size or read_image_size(path, **limits, header=header)
    rgb = read_image(path, min_side=decode_min_side(size), **limits, header=header)
    circle = find_fundus(rgb)
    decoded_short = min(rgb.shape[:2])
    if circle.found and 2 * circle.r < size and decoded_short < min(orig_height, orig_width):
        # A small fundus in a big frame: decode larger so the crop has >= size pixels.
        needed = math.ceil(decoded_short * size / (2 * circle.r))
        rgb = read_image(path, min_side=needed, **limits, header=header)
        circle = find_fundus(rgb)
    return rgb, circle


def photo_quality(path: str | Path, rgb: np.ndarray, circle: FundusCircle | None, size: int,
                  orig_size: tuple[int, int], *, header: DicomHeader | None = None) -> Quality:
    """:func:`~drgrader.data.quality.assess_quality` of a photo decoded from ``path`` (``orig_size``:
    the file's (height, width); ``header``: a DICOM file's, already read), with what only the file
    tells: how coarsely a JPEG was compressed."""
    scale = max(orig_size) / max(rgb.shape[:2])  # a JPEG decoded at 1/2, 1/4, 1/8 scale
    return assess_quality(rgb, circle, size, jpeg_step=read_jpeg_step(path, header), source_scale=scale)


def preprocess_file(path: str | Path, cfg: PreprocessConfig, size: int, *, fingerprint: bool = False) -> PreprocessedImage:
    """Decode a photo (scale-on-decode), check its quality and preprocess it: exactly what the
    cache stores; with ``fingerprint``, also its :func:`~drgrader.data.same_picture.picture_print`
    (``predict`` compares them). Raises :class:`ImageReadError` for unreadable files."""
    orig_height, orig_width = read_image_size(path)
    rgb, circle = decode_photo(path, size, (orig_height, orig_width))
    quality = photo_quality(path, rgb, circle, size, (orig_height, orig_width))
    image = preprocess_image(rgb, cfg, size, circle)
    picture = picture_print(rgb) if fingerprint else ""
    return PreprocessedImage(image, quality, circle, orig_height, orig_width, picture)

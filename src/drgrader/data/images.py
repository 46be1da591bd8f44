"""Decoding fundus photographs into RGB uint8 arrays, with clear errors for bad files.

One decoder (Pillow) for every image format (JPEG, PNG, TIFF, BMP, GIF, WebP; an animation or a multi-page TIFF is refused),
because it is strict where OpenCV is lax: a truncated JPEG is an error here, while
``cv2.imread`` silently returns a grey-filled image. For JPEGs, ``min_side`` turns on libjpeg's
DCT scaling (decode directly at 1/2, 1/4 or 1/8 size), which is 1.5-2x faster than a full decode
followed by a resize (see benchmarks/bench_preprocess.py).

Pillow does not report libjpeg's warnings, so a JPEG whose entropy-coded data is damaged (not cut
short) would decode into a plausible, wrong photo without a word; every JPEG is therefore also run
through libjpeg-turbo in strict mode (simplejpeg, at 1/8 scale: 1 ms for a 256-px photo, a few for
a camera original), and the damage it detects makes the file unreadable like a truncated one.
(Damage that still decodes as valid data is invisible to any decoder: JPEG has no checksum.)
Pillow does not check a PNG's chunk checksums when it decodes either: ``verify()`` does, for
every PNG.

DICOM files (``.dcm``, or any file with the DICM marker) go to :mod:`drgrader.data.dicom`; a
frame of a multi-frame DICOM file is named ``<file>#frame<N>``.
"""

from __future__ import annotations

import warnings
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
import simplejpeg
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from drgrader.data.dicom import DicomHeader, is_dicom, jpeg_codestream, read_frame, read_header, split_frame_ref
from drgrader.data.image_files import ImageReadError, check_regular_file

MAX_PIXELS = 100_000_000  # larger images are refused before decoding (decompression bombs)
MIN_SIDE = 64  # smaller images cannot hold a gradable fundus

# EXIF orientations 5-8 rotate by 90 degrees: height and width swap.
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION_TAG = 0x0112


def _check_size(path: str | Path, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageReadError(
            path, f"image too large: {width}x{height} = {width * height:,} pixels > limit {max_pixels:,}"
        )
    if min(width, height) < MIN_SIDE:
        raise ImageReadError(path, f"too small: {width}x{height} (need at least {MIN_SIDE} px per side)")


def _dicom_source(path: Path) -> tuple[Path, int | None] | None:
    """(file, frame) when ``path`` is a DICOM file or a frame of one (``<file>#frame<N>``)."""
    source, frame = split_frame_ref(path)
    if frame is not None:
        check_regular_file(source)
        if not is_dicom(source):
            raise ImageReadError(path, "frame numbers (#frame<N>) name frames of multi-frame DICOM files; this is not one")
        return source, frame
    return (path, None) if is_dicom(path) else None


def _dicom_header(path: Path, source: Path, frame: int | None, max_pixels: int, header: DicomHeader | None = None):
    header = header or read_header(source)
    if frame is not None and frame > header.frames:
        raise ImageReadError(path, f"no frame {frame}: this DICOM file has {header.frames}")
    _check_size(path, header.width, header.height, max_pixels)
    return header


_REDUCED_RESOLUTION = 1  # TIFF NewSubfileType (tag 254) bit: a thumbnail or preview of another page


def _tiff_pages(im: Image.Image) -> int:
    """Full-resolution pages of a TIFF (a camera's preview page is not a second photo)."""
    frames = getattr(im, "n_frames", 1)
    if frames == 1:
        return 1
    full = 0
    for k in range(frames):
        im.seek(k)
        full += not int(getattr(im, "tag_v2", {}).get(254, 0)) & _REDUCED_RESOLUTION
    im.seek(0)
    return full


# Photo formats drgrader does not read (an iPhone's HEIC, a camera's raw file), found in folders as
# photos are, each a row saying so (data.inputs).
UNREAD_PHOTO_FORMATS = (".heic", ".heif", ".avif", ".jp2", ".j2k", ".jpx", ".jxl", ".dng", ".cr2", ".nef", ".arw", ".raw",
                        ".psd")
# A browser's or a copy tool's photo not yet downloaded whole (``10_right.jpeg.crdownload``): a row
# too, so that its eye counts as not graded (probe 35 AY9).
PARTIAL_DOWNLOADS = (".crdownload", ".part", ".partial", ".download")


def _open(path: Path, max_pixels: int) -> Image.Image:
    """Open (header only) and refuse empty, non-image, too-small and too-large files."""
    check_regular_file(path)
    try:
        with warnings.catch_warnings():
            # We apply our own pixel limit below; Pillow's would only warn or use its own.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, f"image too large: {exc}") from None
    except UnidentifiedImageError:
        suffix = path.suffix.strip()
        if suffix.lower() in PARTIAL_DOWNLOADS:
            raise ImageReadError(path, f"a partial download ({suffix}): download the photo again") from None
        if suffix.lower() in UNREAD_PHOTO_FORMATS:
            raise ImageReadError(path, f"a {suffix[1:].upper()} photo, a format drgrader does not read: "
                                       "convert it to JPEG or PNG") from None
        raise ImageReadError(path, "not an image file Pillow can identify") from None
    except OSError as exc:
        raise ImageReadError(path, f"cannot open: {exc}") from None
    width, height = im.size
    try:
        _check_size(path, width, height, max_pixels)
        pages = _tiff_pages(im) if im.format == "TIFF" else 1
        if pages > 1:  # a stack (both eyes, colour and red-free): grading its first page would drop the rest
            raise ImageReadError(path, f"multi-page TIFF ({pages} pages) where one photo is expected: "
                                       "save each page as a file of its own")
        if im.format == "PNG" and DRAWING_KEY in im.info:
            raise ImageReadError(path, f"not a photo: a picture drgrader drew ({im.info[DRAWING_KEY]}): grade the original photo")
        if im.format != "TIFF" and getattr(im, "is_animated", False):  # GIF, APNG, WebP: likewise, which frame?
            raise ImageReadError(path, f"an animation ({getattr(im, 'n_frames', 2)} frames) where one photo is expected: "
                                       "save each frame as a file of its own")
    except ImageReadError:
        im.close()
        raise
    return im


# libjpeg's warnings that mean damaged image data (jerror.h), as opposed to metadata it ignores
# (a bad ICC marker, an unknown JFIF version): each of these changes pixels.
_JPEG_DAMAGE = ("Corrupt JPEG data", "Premature end of JPEG file", "Inconsistent progression sequence")


def _check_data(path: Path, kind: str | None) -> None:
    """Refuse a JPEG whose data libjpeg finds damaged, a PNG whose chunk checksums fail: Pillow
    decodes both without a word."""
    if kind == "JPEG":
        try:
            simplejpeg.decode_jpeg(path.read_bytes(), colorspace="GRAY", min_factor=8, strict=True)
        except ValueError as exc:
            message = str(exc)
            if any(damage in message for damage in _JPEG_DAMAGE) and "ICC" not in message:
                raise ImageReadError(path, f"corrupt or truncated image data: {message}") from None
            # Anything else (a colour space simplejpeg does not convert, ...) is Pillow's to judge.
    elif kind == "PNG":
        try:
            with Image.open(path) as png:
                png.verify()  # every chunk's CRC, which decoding skips
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageReadError(path, f"corrupt or truncated image data: {exc}") from None


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:  # a broken EXIF block must not make a readable photo unreadable
        return 1


def read_image_size(path: str | Path, max_pixels: int = MAX_PIXELS, *, header: DicomHeader | None = None) -> tuple[int, int]:
    """(height, width) of an image as :func:`read_image` returns it at full size (EXIF applied).

    Reads the header only (``header``: a DICOM file's, already read, is not read again).
    """
    path = Path(path)
    dicom = _dicom_source(path)
    if dicom is not None:
        header = _dicom_header(path, *dicom, max_pixels, header)
        return header.height, header.width
    with _open(path, max_pixels) as im:
        width, height = im.size
        if _orientation(im) in _TRANSPOSED_ORIENTATIONS:
            width, height = height, width
    return height, width


# The PNG text key drgrader marks its own drawings with (explain's panels, serve's heat maps): such
# a picture given back as a photo would be graded as one, its overlays and captions as lesions.
DRAWING_KEY = "drgrader-drawing"

# The PNG text key under which drgrader.grade's lossless copy of an in-memory JPEG (a Pillow
# image opened from one) keeps that JPEG's step: the copy is checked as the JPEG would be.
JPEG_STEP_KEY = "drgrader-jpeg-step"


def jpeg_step_of(im: Image.Image) -> float | None:
    """The mean quantisation step of a JPEG's luma table (1 at quality 100, 11.5 at 90, 58 at 50,
    96 at 30: libjpeg's tables), or None for any other image: how coarsely it was compressed. A
    Pillow image opened from a JPEG keeps its tables; a PNG written by :func:`save_lossless_copy`
    the step it was given."""
    if im.format == "PNG":
        try:
            step = float(im.info.get(JPEG_STEP_KEY, "nan"))
        except ValueError:
            return None
        return step if np.isfinite(step) and step > 0 else None
    tables = getattr(im, "quantization", None) if im.format in ("JPEG", "MPO") else None
    return float(np.mean(tables[0])) if tables and 0 in tables else None


def drawing_png(rgb: np.ndarray, what: str) -> bytes:
    """A picture drgrader drew (``what``: ``"explain's Grad-CAM panel"``) as PNG bytes, marked so
    that it is refused if it is ever given back as a photo (:data:`DRAWING_KEY`)."""
    info = PngInfo()
    info.add_text(DRAWING_KEY, what)
    buffer = BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", pnginfo=info, compress_level=1)
    return buffer.getvalue()


def is_drawing(path: str | Path) -> bool:
    """Whether the file is a picture drgrader drew (:func:`drawing_png`)."""
    try:
        with Image.open(path) as im:
            return im.format == "PNG" and DRAWING_KEY in im.info
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


def save_lossless_copy(path: str | Path, rgb: np.ndarray, jpeg_step: float | None = None) -> None:
    """An RGB array as a PNG (``drgrader.grade`` grades in-memory photos through files), with
    the step of the JPEG it was decoded from, if any (:func:`jpeg_step_of`)."""
    info = PngInfo()
    if jpeg_step:
        info.add_text(JPEG_STEP_KEY, repr(float(jpeg_step)))
    Image.fromarray(rgb).save(path, format="PNG", pnginfo=info, compress_level=1)


def read_jpeg_step(path: str | Path, header: DicomHeader | None = None) -> float | None:
    """:func:`jpeg_step_of` a JPEG file, or of a DICOM file or frame (``<file>#frame<N>``) stored
    as lossy JPEG (``header``: its header, already read); None for any other file. Reads the
    header (a DICOM frame's JPEG header) only."""
    path = Path(path)
    dicom = _dicom_source(path)
    if dicom is not None:
        codestream = jpeg_codestream(*dicom, header)
        if codestream is None:
            return None
        with Image.open(BytesIO(codestream)) as im:
            return jpeg_step_of(im)
    with _open(path, MAX_PIXELS) as im:
        return jpeg_step_of(im)


def _bit_depth(peak: float) -> int:
    """The bits a wide image's data uses, by its brightest value: 8, 10, 12, 14 or 16."""
    return next((bits for bits in (8, 10, 12, 14) if peak < 2**bits), 16)


def _wide_colour(path: Path, rgb: np.ndarray, kind: str | None) -> np.ndarray:
    """A 16-bit colour PNG or TIFF holding 10-, 12- or 14-bit data (a camera's raw export): Pillow
    keeps the top 8 of 16 bits, a nearly black photo ("no fundus detected", a needless recall).
    Read it whole and scale the range its data uses."""
    if kind not in ("PNG", "TIFF") or rgb.max() >= 64:  # 14-bit data keeps at most 63 in its top byte
        return rgb
    wide = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if wide is None or wide.dtype != np.uint16 or wide.ndim != 3 or wide.shape[2] not in (3, 4) or wide.shape[:2] != rgb.shape[:2]:
        return rgb
    scale = 255.0 / (2 ** _bit_depth(float(wide[..., :3].max())) - 1)
    return np.clip(cv2.cvtColor(wide[..., :3], cv2.COLOR_BGR2RGB).astype(np.float32) * scale + 0.5, 0, 255).astype(np.uint8)


def pil_to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow image to an upright RGB one, as a file is read (``read_image``) and a PIL image
    given to ``drgrader.grade`` is taken: EXIF orientation applied, alpha composited on black,
    16-bit scaled to 8-bit."""
    if _orientation(im) != 1:
        im = ImageOps.exif_transpose(im)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale PNGs (and 32-bit integer images): scale the range the data uses (10, 12,
        # 14 or 16 bits: a camera's raw export) to 8 bits.
        values = np.asarray(im, dtype=np.float32)
        scale = 255.0 / (2 ** _bit_depth(float(values.max())) - 1)
        im = Image.fromarray(np.clip(values * scale + 0.5, 0, 255).astype(np.uint8), mode="L")
    if im.mode == "F":
        values = np.asarray(im, dtype=np.float32)
        im = Image.fromarray(np.clip(values + 0.5, 0, 255).astype(np.uint8), mode="L")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    if im.mode != "RGB":
        im = im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, ...
    return im


def read_image(
    path: str | Path, min_side: int | None = None, *, max_pixels: int = MAX_PIXELS, header: DicomHeader | None = None
) -> np.ndarray:
    """Decode an image file to an RGB uint8 array of shape (H, W, 3).

    - EXIF orientation is applied; greyscale, palette, CMYK become RGB; alpha is composited
      on black (the fundus surround); 16-bit images are scaled to 8 bits by the range their data
      uses (10, 12, 14 or 16 bits).
    - ``min_side``: for JPEGs, decode at the strongest libjpeg DCT reduction (1/8, 1/4, 1/2)
      whose short side is still >= ``min_side``. Other formats are decoded at full size.
    - An animation (GIF, APNG, WebP) and a multi-page TIFF are refused (which frame?), a TIFF page
      marked as another's preview aside. DICOM: see :mod:`drgrader.data.dicom`
      (``<file>#frame<N>`` for a frame of a multi-frame file).
    - Raises :class:`ImageReadError` for missing, empty, non-image, truncated, too small
      (< 64 px) and too large (> ``max_pixels``, checked from the header before decoding) files.
    - ``header``: a DICOM file's header already read (:func:`~drgrader.data.dicom.read_header`),
      not read again.
    """
    path = Path(path)
    dicom = _dicom_source(path)
    if dicom is not None:
        source_path, frame = dicom
        return read_frame(source_path, frame, _dicom_header(path, source_path, frame, max_pixels, header))
    source = _open(path, max_pixels)
    try:
        if min_side is not None and source.format == "JPEG":
            width, height = source.size
            short = min(width, height)
            scale = next((s for s in (8, 4, 2) if -(-short // s) >= min_side), 1)
            if scale > 1:
                # draft() picks the largest DCT reduction whose size is >= the requested size;
                # asking for floor(size / scale) makes that exactly `scale`.
                source.draft(None, (width // scale, height // scale))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            source.load()
        rgb = np.array(pil_to_rgb(source))  # np.array, not asarray: a writable array
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow raises OSError("image file is truncated ...") and friends for broken data.
        raise ImageReadError(path, f"corrupt or truncated image data: {exc}") from None
    finally:
        source.close()
    _check_data(path, source.format)
    rgb = _wide_colour(path, rgb, source.format)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageReadError(path, f"unexpected decoded array {rgb.dtype} {rgb.shape}")
    return rgb

"""DICOM fundus photographs (Ophthalmic Photography image storage) -> RGB uint8 arrays.

Used through :mod:`drgrader.data.images` (``read_image`` / ``read_image_size``), so every
place that reads a photo reads DICOM too. Pixel data: RGB, YBR_FULL / YBR_FULL_422 (and the
JPEG 2000 YBR_ICT / YBR_RCT), MONOCHROME1 / MONOCHROME2 and PALETTE COLOR become RGB; more than
8 bits stored is scaled to 8 bits. Compressed transfer syntaxes decode with what is installed:
Pillow (JPEG baseline / extended, JPEG 2000), pydicom itself (RLE), python-gdcm (JPEG lossless,
JPEG-LS); anything else is an :class:`~drgrader.data.image_files.ImageReadError` naming the syntax.

Multi-frame files: one image per frame, named ``<file>#frame<N>`` (N from 1, as DICOM numbers
frames). A bare multi-frame file is an error where one photo is expected (``serve``, label
rows); ``drgrader predict`` lists one row per frame.

Privacy: only the tags this module needs are parsed (``specific_tags``). Only ``PatientID``, the
laterality and a digest of the tags that tell two people apart (name, birth date, sex, the
issuer of the id, the institution) leave this module: those values never reach an error message, a log or a CSV.
pydicom is imported on first use.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drgrader.data.eyes import eye_word, unaccented
from drgrader.data.image_files import ImageReadError, check_regular_file

DICOM_SUFFIX = ".dcm"
_MAGIC_OFFSET = 128  # the 128-byte preamble, then b"DICM"
_FRAME_REF = re.compile(r"^(?P<name>.+)#frame(?P<frame>[1-9][0-9]*)$")
_PILLOW_SUFFIXES = {".jpeg", ".jpg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp"}
# What a laterality tag says: L and R name an eye, and so do the words devices and PACS rewrites write in their
# place (OD, OS, LEFT, RIGHT: eyes.eye_word; probe 59 BW5); "B", both eyes, and "U", unpaired, do not.
_LATERALITY = {"B": "B (both eyes)", "U": "U (unpaired)"}
_LATERALITY_TAGS = ("ImageLaterality", "Laterality")  # the photo's own, then its series'

# Tags that tell two people under one PatientID apart (two sites' ids, a typing error): kept as
# digests only (probe 41 BE6).
_PERSON_TAGS = ("PatientName", "PatientBirthDate", "PatientSex", "IssuerOfPatientID", "InstitutionName",  # probe 42 BF2
                "InstitutionAddress", "OtherPatientIDs")  # probe 43 BG3
# And a visit's date (two exams years apart are no pair of eyes: probe 43 BG4), and the age at it:
# the birth year they give (StudyDate's year less PatientAge), a number compared with a margin.
VISIT_TAG, BIRTH_YEAR = "StudyDate", "birth year (StudyDate less PatientAge)"
# The only tags ever parsed: what the pixels need, PatientID, the person tags and laterality.
_TAGS = [
    "PatientID",
    *_PERSON_TAGS,
    VISIT_TAG,
    "PatientAge",
    "ImageLaterality",
    "Laterality",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "NumberOfFrames",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    *(f"{c}PaletteColorLookupTable{part}" for c in ("Red", "Green", "Blue") for part in ("Descriptor", "Data")),
    *(f"Segmented{c}PaletteColorLookupTableData" for c in ("Red", "Green", "Blue")),
]
# Lossy JPEG (DCT) transfer syntaxes: their frames are JPEG files, with quantisation tables.
_LOSSY_JPEG = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"}  # JPEG Baseline, JPEG Extended
_RGB_LIKE = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"}  # decoded to RGB by pydicom
_GREY = {"MONOCHROME1", "MONOCHROME2"}


@dataclass(frozen=True)
class DicomHeader:
    """What drgrader uses from a DICOM file's header."""

    height: int
    width: int
    frames: int
    patient_id: str  # "" when the tag is absent or empty
    eye: str  # "left", "right" or "" (none, or the laterality tags disagree)
    photometric: str
    samples: int
    bits_stored: int
    signed: bool
    transfer_syntax: str  # the UID
    # Each laterality tag present and what it says ("left", "right", "B (both eyes)", ...), for
    # the identity resolver to weigh and name: ImageLaterality L beside Laterality R is no eye.
    laterality: tuple[tuple[str, str], ...] = ()
    # Each person tag present and a digest of its value (case and spacing folded), never the value.
    person: tuple[tuple[str, str], ...] = ()


def frame_ref(path: str | Path, frame: int) -> str:
    """The name of frame ``frame`` (1-based) of a multi-frame file: ``<path>#frame<N>``."""
    return f"{path}#frame{frame}"


def split_frame_ref(path: str | Path) -> tuple[Path, int | None]:
    """``"a.dcm#frame2"`` -> ``(Path("a.dcm"), 2)``; a path that exists, or has no frame
    suffix, -> ``(path, None)``."""
    path = Path(path)
    match = _FRAME_REF.match(path.name)
    if match is None or path.exists():
        return path, None
    return path.with_name(match["name"]), int(match["frame"])


def is_dicom(path: str | Path) -> bool:
    """A ``.dcm`` name, or a regular file with the ``DICM`` marker after its preamble (camera
    exports often have no extension, or a UID as their name). Files named as another image
    format are not opened to look; nor is a FIFO or device."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == DICOM_SUFFIX:
        return True
    return suffix not in _PILLOW_SUFFIXES and _has_magic(path)


def _has_magic(path: Path) -> bool:
    try:
        if not path.is_file():
            return False
        with open(path, "rb") as fh:
            head = fh.read(_MAGIC_OFFSET + 4)
    except OSError:
        return False
    return head[_MAGIC_OFFSET:] == b"DICM"


def _syntax_name(uid: str) -> str:
    from pydicom.uid import UID

    name = UID(uid).name
    return f"{name} ({uid})" if name != uid else uid


def _transfer_syntax(ds) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid:
        return str(uid)
    # No file meta (an old file without the DICOM part 10 header): what the reader found.
    from pydicom import uid as uids

    implicit, little = ds.original_encoding
    if implicit:
        return uids.ImplicitVRLittleEndian
    return uids.ExplicitVRLittleEndian if little else uids.ExplicitVRBigEndian


def _blanked_to_empty(patient_id: str) -> str:
    """A PatientID of zeros is one an anonymiser blanked (probe 34 AX5: every such file was one
    patient): no patient, as a placeholder word is (``eyes.patient_id`` reads those)."""
    return "" if patient_id and set(patient_id) == {"0"} else patient_id


def _int(ds, keyword: str, default: int) -> int:
    value = ds.get(keyword)
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _dataset(path: Path):
    """The header (only ``_TAGS``), or ImageReadError. Structure errors are reported by type
    only: their text could quote header bytes."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    check_regular_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
            except InvalidDicomError:
                if path.suffix.lower() != DICOM_SUFFIX:
                    raise
                # A .dcm without the DICM marker: an old file without a preamble, or not DICOM.
                return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS, force=True)
    except InvalidDicomError:
        raise ImageReadError(path, "not a DICOM file (no 'DICM' marker after the 128-byte preamble)") from None
    except EOFError:
        raise ImageReadError(path, "truncated DICOM file (ends inside its header)") from None
    except Exception as exc:  # pydicom raises many types for garbage bytes
        raise ImageReadError(path, f"not a readable DICOM file ({type(exc).__name__} while reading its header)") from None


def read_header(path: str | Path) -> DicomHeader:
    """Header facts of a DICOM file (no pixel data read). Raises ImageReadError when the file
    is not DICOM or holds no image."""
    path = Path(path)
    ds = _dataset(path)
    rows, columns = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    if rows <= 0 or columns <= 0:
        if not _has_magic(path):
            raise ImageReadError(path, "not a DICOM file (no 'DICM' marker after the 128-byte preamble, no image header)")
        raise ImageReadError(path, "DICOM file without an image (no Rows/Columns: truncated, or a report, DICOMDIR or other non-image object)")
    values = {tag: str(ds.get(tag) or "").strip().upper() for tag in _LATERALITY_TAGS}
    laterality = tuple((tag, eye_word(v) or _LATERALITY.get(v, repr(v))) for tag, v in values.items() if v)
    eyes = {said for _, said in laterality if said in ("left", "right")}
    return DicomHeader(
        height=rows,
        width=columns,
        frames=max(_int(ds, "NumberOfFrames", 1), 1),
        patient_id=_blanked_to_empty(str(ds.get("PatientID") or "").strip()),
        eye=eyes.pop() if len(eyes) == 1 else "",
        photometric=str(ds.get("PhotometricInterpretation") or "").strip().upper(),
        samples=_int(ds, "SamplesPerPixel", 1),
        bits_stored=_int(ds, "BitsStored", _int(ds, "BitsAllocated", 8)),
        signed=_int(ds, "PixelRepresentation", 0) == 1,
        transfer_syntax=_transfer_syntax(ds),
        laterality=laterality,
        person=_person(ds),
    )


def _person(ds) -> tuple[tuple[str, str], ...]:  # noqa: ANN001 (a pydicom Dataset)
    """The person tags present and the study date, each with a digest of its folded value
    (``SMITH^JOHN``, ``Smith^John``: one; ``GARCÍA^MARÍA``, ``GARCIA^MARIA``: one, as a list's person
    columns take ``José``, ``Jose``: probe 58 BV9), and the birth year that StudyDate and PatientAge give
    (``BIRTH_YEAR``, a year: ``067Y`` on ``20230502`` -> ``1956``)."""
    folded = {tag: "".join(ch for ch in unaccented(str(ds.get(tag) or "").casefold()) if ch.isalnum())
              for tag in (*_PERSON_TAGS, VISIT_TAG)}
    said = [(tag, hashlib.sha256(value.encode()).hexdigest()[:16]) for tag, value in folded.items() if value]
    date, age = re.fullmatch(r"([0-9]{4})[0-9]{4}", folded[VISIT_TAG]), re.fullmatch(r"0*([0-9]{1,3})y", _folded_age(ds))
    return tuple(said + ([(BIRTH_YEAR, str(int(date[1]) - int(age[1])))] if date and age else []))


def _folded_age(ds) -> str:  # noqa: ANN001 (a pydicom Dataset)
    """PatientAge as ``067y`` (DICOM's AS: a number and D, W, M or Y), casefolded; '' when none."""
    return str(ds.get("PatientAge") or "").strip().casefold()


def header_or_none(path: str | Path) -> DicomHeader | None:
    """The header of a DICOM file (:func:`read_header`); None for any other file, and for a
    header that cannot be read (reading the photo says why)."""
    if not is_dicom(path):
        return None
    try:
        return read_header(path)
    except ImageReadError:
        return None


def _check_decodable(path: Path, header: DicomHeader) -> None:
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(header.transfer_syntax)
    except NotImplementedError:
        raise ImageReadError(
            path, f"DICOM transfer syntax {_syntax_name(header.transfer_syntax)} is not supported (no pixel data decoder exists for it)"
        ) from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "a decoder plugin"
        raise ImageReadError(
            path,
            f"DICOM transfer syntax {_syntax_name(header.transfer_syntax)} needs a decoder that is not installed ({missing})",
        )


def _to_uint8(values: np.ndarray, bits: int) -> np.ndarray:
    """Integer samples of ``bits`` bits (already unsigned) -> uint8, full range kept."""
    if values.dtype == np.uint8 and bits >= 8:
        return values
    top = float(2**bits - 1)
    scaled = values.astype(np.float32) * (255.0 / top)
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def _rgb(pixels: np.ndarray, header: DicomHeader, path: Path) -> np.ndarray:
    """A decoded frame -> RGB uint8 (H, W, 3)."""
    if pixels.dtype.kind == "f":
        raise ImageReadError(path, "DICOM float pixel data is not a photograph")
    pi, bits = header.photometric, min(max(header.bits_stored, 1), 16)
    if header.samples == 3 and (pi in _RGB_LIKE or pi == ""):
        return _to_uint8(np.asarray(pixels), bits)
    if header.samples == 1 and pi in _GREY | {""}:
        values = pixels.astype(np.int64)
        if header.signed:
            values = values + 2 ** (bits - 1)
        values = np.clip(values, 0, 2**bits - 1)
        if pi == "MONOCHROME1":  # 0 is white
            values = (2**bits - 1) - values
        grey = _to_uint8(values, bits)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if header.samples == 1 and pi == "PALETTE COLOR":
        return _palette(pixels, path)
    raise ImageReadError(path, f"DICOM photometric interpretation {pi or '(none)'} with {header.samples} samples per pixel is not supported")


def _palette(pixels: np.ndarray, path: Path) -> np.ndarray:
    from pydicom.pixels import apply_color_lut

    ds = _dataset(path)
    try:
        rgb = apply_color_lut(pixels, ds)
    except Exception as exc:
        raise ImageReadError(path, f"DICOM palette colour lookup table unusable ({type(exc).__name__})") from None
    return _to_uint8(rgb, 16 if rgb.dtype == np.uint16 else 8)


def read_frame(path: str | Path, frame: int | None = None, header: DicomHeader | None = None) -> np.ndarray:
    """Decode one frame (1-based; ``None`` for a single-frame file) to RGB uint8 (H, W, 3).

    Raises ImageReadError: not DICOM, no image, a frame out of range, a multi-frame file without
    a frame number, a transfer syntax without an installed decoder (named), corrupt or
    truncated pixel data, an unsupported photometric interpretation.
    """
    from pydicom.pixels import pixel_array

    path = Path(path)
    header = header or read_header(path)
    shown = path if frame is None else frame_ref(path, frame)
    if frame is None and header.frames > 1:
        raise ImageReadError(
            path, f"multi-frame DICOM ({header.frames} frames) where one photo is expected; `drgrader predict` grades each frame"
        )
    if frame is not None and not 1 <= frame <= header.frames:
        raise ImageReadError(shown, f"no frame {frame}: this DICOM file has {header.frames}")
    _check_decodable(path, header)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pixels = pixel_array(path, index=(frame or 1) - 1, transfer_syntax_uid=header.transfer_syntax)
    except (AttributeError, KeyError) as exc:
        raise ImageReadError(shown, f"DICOM file without usable pixel data ({type(exc).__name__})") from None
    except MemoryError:
        raise ImageReadError(shown, "DICOM pixel data too large to decode") from None
    except Exception as exc:  # decoders raise ValueError, RuntimeError, OSError, struct.error ...
        reason = str(exc).splitlines()[0][:200] if isinstance(exc, (ValueError, RuntimeError, OSError, EOFError)) else ""
        raise ImageReadError(shown, f"corrupt or truncated DICOM pixel data ({type(exc).__name__}{': ' + reason if reason else ''})") from None
    if pixels.ndim == 3 and header.samples == 1 and pixels.shape[0] == 1:
        pixels = pixels[0]
    expected = (header.height, header.width) if header.samples == 1 else (header.height, header.width, header.samples)
    if pixels.shape != expected:
        raise ImageReadError(shown, f"DICOM pixel data decoded to shape {pixels.shape}, expected {expected}")
    return np.ascontiguousarray(_rgb(pixels, header, path))


def jpeg_codestream(path: str | Path, frame: int | None = None, header: DicomHeader | None = None) -> bytes | None:
    """Frame ``frame`` (1-based; None: the only one) of a DICOM file stored as lossy JPEG
    (JPEG Baseline or Extended), as the JPEG file it is; None for other transfer syntaxes.
    Only the pixel data is parsed (see the module's privacy note)."""
    import pydicom
    from pydicom.encaps import get_frame

    path = Path(path)
    header = header or read_header(path)
    if header.transfer_syntax not in _LOSSY_JPEG:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, specific_tags=["PixelData"])
            return get_frame(ds.PixelData, (frame or 1) - 1, number_of_frames=header.frames)
    except Exception as exc:  # as read_frame: the decoders' and pydicom's many types
        raise ImageReadError(path, f"corrupt or truncated DICOM pixel data ({type(exc).__name__})") from None

"""Writing DICOM test files with pydicom (imported by the DICOM tests as ``dicom_files``)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import convert_color_space
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

OPHTHALMIC_PHOTOGRAPHY_8BIT = "1.2.840.10008.5.1.4.1.1.77.1.5.1"
PATIENT_NAME = "Doe^Jane Secretname"
BIRTH_DATE = "19470315"


def _dataset(patient_id: str, laterality: str, tag: str, transfer_syntax: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = OPHTHALMIC_PHOTOGRAPHY_8BIT
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = OPHTHALMIC_PHOTOGRAPHY_8BIT
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "OP"
    # Patient data that must never leave the reader: only PatientID and laterality are used.
    ds.PatientName = PATIENT_NAME
    ds.PatientBirthDate = BIRTH_DATE
    ds.InstitutionName = "Secret Eye Clinic"
    if patient_id:
        ds.PatientID = patient_id
    if laterality:
        setattr(ds, tag, laterality)
    return ds


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    photometric: str = "RGB",
    bits_stored: int | None = None,
    compress: str | None = None,
    patient_id: str = "",
    laterality: str = "",
    laterality_tag: str = "ImageLaterality",
) -> Path:
    """Uncompressed pixel data (``pixels`` as stored: (H, W[, 3]), or (N, H, W[, 3]) for N
    frames); ``compress``: a transfer syntax pydicom can encode (RLE Lossless)."""
    ds = _dataset(patient_id, laterality, laterality_tag, ExplicitVRLittleEndian)
    ds.set_pixel_data(pixels, photometric, bits_stored or (8 if pixels.dtype == np.uint8 else 16))
    if compress:
        ds.compress(compress)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_encapsulated(
    path: Path,
    fragments: list[bytes],
    *,
    height: int,
    width: int,
    transfer_syntax: str,
    photometric: str = "YBR_FULL_422",
    patient_id: str = "",
    laterality: str = "",
) -> Path:
    """Compressed frames (one codestream each) as they are, under ``transfer_syntax``."""
    ds = _dataset(patient_id, laterality, "ImageLaterality", transfer_syntax)
    ds.Rows, ds.Columns = height, width
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = photometric
    ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if len(fragments) > 1:
        ds.NumberOfFrames = len(fragments)
    ds.PixelData = encapsulate(fragments)
    ds["PixelData"].VR = "OB"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def jpeg_bytes(rgb: np.ndarray, quality: int = 95) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def write_jpeg_dicom(path: Path, frames: list[np.ndarray], quality: int = 95, **tags) -> Path:
    """JPEG baseline (lossy) DICOM, one JPEG per frame (saved at ``quality``), as fundus cameras export."""
    height, width = frames[0].shape[:2]
    return write_encapsulated(path, [jpeg_bytes(f, quality) for f in frames], height=height, width=width,
                              transfer_syntax=JPEGBaseline8Bit, **tags)


def ybr_full_422(rgb: np.ndarray) -> np.ndarray:
    """RGB (even width) -> YBR_FULL_422 bytes as stored: Y1 Y2 Cb Cr per pixel pair."""
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL").astype(np.float32)
    pairs = ybr.reshape(ybr.shape[0], ybr.shape[1] // 2, 2, 3)
    chroma = pairs[:, :, :, 1:].mean(axis=2)
    packed = np.concatenate([pairs[:, :, :, 0], chroma], axis=2)  # Y1 Y2 Cb Cr
    return np.clip(packed + 0.5, 0, 255).astype(np.uint8).tobytes()


def write_ybr422(path: Path, rgb: np.ndarray) -> Path:
    ds = _dataset("", "", "ImageLaterality", ExplicitVRLittleEndian)
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = ybr_full_422(rgb)
    ds["PixelData"].VR = "OB"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def transcode_with_gdcm(source: Path, path: Path, syntax: str = "JPEGLosslessProcess14_1") -> Path:
    """``source`` re-encoded by GDCM (pydicom cannot encode JPEG lossless or JPEG-LS)."""
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(source))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, syntax)))
    change.SetInput(reader.GetImage())
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    writer.SetFileName(str(path))
    assert writer.Write()
    return path

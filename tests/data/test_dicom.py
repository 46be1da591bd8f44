"""DICOM fundus photographs: photometric interpretations, bit depths, frames, compression, bad
files, and the header facts drgrader uses (PatientID, laterality)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from dicom_files import transcode_with_gdcm, write_dicom, write_encapsulated, write_jpeg_dicom, write_ybr422
from PIL import Image
from pydicom.pixels import convert_color_space, get_decoder
from pydicom.uid import UID, RLELossless

from drgrader.data.dicom import frame_ref, is_dicom, read_header
from drgrader.data.images import ImageReadError, read_image, read_image_size
from drgrader.synth import make_fundus

# Syntaxes a decoder plugin may or may not be installed for; the test takes the first without.
_MAYBE_UNDECODABLE = [
    "1.2.840.10008.1.2.4.201",  # HTJ2K Lossless (pylibjpeg-openjpeg)
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless (gdcm, pylibjpeg-libjpeg, pyjpegls)
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1 (gdcm, pylibjpeg-libjpeg)
]


def undecodable_syntax() -> UID:
    for uid in _MAYBE_UNDECODABLE:
        if not get_decoder(uid).is_available:
            return UID(uid)
    pytest.skip("every candidate transfer syntax has a decoder installed here")


@pytest.fixture(scope="module")
def rgb():
    return make_fundus(2, np.random.default_rng(7), height=96)  # 96 x 144


def test_rgb_is_read_exactly_with_size_from_the_header(tmp_path, rgb):
    path = write_dicom(tmp_path / "a.dcm", rgb, patient_id="P001", laterality="L")
    assert read_image_size(path) == rgb.shape[:2]
    np.testing.assert_array_equal(read_image(path), rgb)
    header = read_header(path)
    assert (header.patient_id, header.eye, header.frames) == ("P001", "left", 1)


def test_ybr_full_and_ybr_full_422_become_rgb(tmp_path, rgb):
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    full = read_image(write_dicom(tmp_path / "ybr.dcm", ybr, photometric="YBR_FULL"))
    assert np.abs(full.astype(int) - rgb).max() <= 2
    sub = read_image(write_ybr422(tmp_path / "ybr422.dcm", rgb))
    assert sub.shape == rgb.shape and sub.dtype == np.uint8
    assert np.abs(sub.astype(int) - rgb).mean() < 3  # chroma is shared by pixel pairs


def test_monochrome_2_and_1(tmp_path, rgb):
    grey = rgb[:, :, 1].copy()
    out = read_image(write_dicom(tmp_path / "m2.dcm", grey, photometric="MONOCHROME2"))
    assert out.shape == rgb.shape
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], grey)
    inverted = read_image(write_dicom(tmp_path / "m1.dcm", 255 - grey, photometric="MONOCHROME1"))
    np.testing.assert_array_equal(inverted, out)  # MONOCHROME1: 0 is white


@pytest.mark.parametrize("bits", [16, 12])
def test_more_than_8_bits_scaled_to_8(tmp_path, rgb, bits):
    top = 2**bits - 1
    wide = np.round(rgb.astype(np.float64) * top / 255).astype(np.uint16)
    np.testing.assert_array_equal(read_image(write_dicom(tmp_path / "rgb16.dcm", wide, bits_stored=bits)), rgb)
    grey = read_image(write_dicom(tmp_path / "m16.dcm", wide[:, :, 0], photometric="MONOCHROME2", bits_stored=bits))
    np.testing.assert_array_equal(grey[:, :, 0], rgb[:, :, 0])


def test_multi_frame_one_image_per_frame(tmp_path):
    frames = np.stack([make_fundus(g, np.random.default_rng(g), height=80) for g in (0, 3, 4)])
    path = write_dicom(tmp_path / "multi.dcm", frames, patient_id="P9", laterality="R")
    header = read_header(path)
    assert header.frames == 3 and header.eye == "right"
    for k in (1, 2, 3):
        np.testing.assert_array_equal(read_image(frame_ref(path, k)), frames[k - 1])
    assert read_image_size(frame_ref(path, 2)) == frames.shape[1:3]
    with pytest.raises(ImageReadError, match=r"multi-frame DICOM \(3 frames\)"):
        read_image(path)  # where one photo is expected (serve, a label row)
    with pytest.raises(ImageReadError, match="no frame 4: this DICOM file has 3"):
        read_image(frame_ref(path, 4))
    png = tmp_path / "a.png"
    Image.fromarray(frames[0]).save(png)
    with pytest.raises(ImageReadError, match="DICOM"):
        read_image(f"{png}#frame2")


def test_rle_lossless_is_exact(tmp_path, rgb):
    np.testing.assert_array_equal(read_image(write_dicom(tmp_path / "rle.dcm", rgb, compress=RLELossless)), rgb)


def test_jpeg_baseline_single_and_multi_frame(tmp_path, rgb):
    out = read_image(write_jpeg_dicom(tmp_path / "jpeg.dcm", [rgb]))
    assert out.shape == rgb.shape
    assert np.abs(out.astype(int) - rgb).mean() < 3  # lossy, but the same photo
    other = make_fundus(0, np.random.default_rng(1), height=96)
    path = write_jpeg_dicom(tmp_path / "jpeg2.dcm", [rgb, other])
    assert np.abs(read_image(frame_ref(path, 2)).astype(int) - other).mean() < 3


@pytest.mark.parametrize("syntax", ["JPEGLosslessProcess14_1", "JPEGLSLossless"])
def test_jpeg_lossless_and_jpeg_ls_with_gdcm(tmp_path, rgb, syntax):
    pytest.importorskip("gdcm")
    path = transcode_with_gdcm(write_dicom(tmp_path / "src.dcm", rgb), tmp_path / "lossless.dcm", syntax)
    assert read_header(path).transfer_syntax != "1.2.840.10008.1.2.1"
    np.testing.assert_array_equal(read_image(path), rgb)


def test_missing_decoder_error_names_the_transfer_syntax(tmp_path):
    uid = undecodable_syntax()
    path = write_encapsulated(tmp_path / "x.dcm", [b"\xff\x4f\xff\x51" + bytes(200)], height=96, width=144, transfer_syntax=uid)
    assert read_image_size(path) == (96, 144)  # the header is fine
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    assert uid in err.value.reason and uid.name in err.value.reason
    assert "decoder" in err.value.reason


def test_bad_dicom_files_fail_with_their_reason(tmp_path, rgb):
    good = write_dicom(tmp_path / "good.dcm", rgb).read_bytes()
    cut_pixels = tmp_path / "cut_pixels.dcm"
    cut_pixels.write_bytes(good[: len(good) - 5000])
    with pytest.raises(ImageReadError, match="corrupt or truncated DICOM pixel data"):
        read_image(cut_pixels)
    cut_header = tmp_path / "cut_header.dcm"
    cut_header.write_bytes(good[:200])
    with pytest.raises(ImageReadError, match="DICOM"):
        read_image(cut_header)
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(ImageReadError, match="DICOM"):
        read_image(garbage)
    (tmp_path / "empty.dcm").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty file"):
        read_image(tmp_path / "empty.dcm")
    small = write_dicom(tmp_path / "small.dcm", rgb[:40, :40].copy())
    with pytest.raises(ImageReadError, match="too small"):
        read_image_size(small)
    with pytest.raises(ImageReadError, match="image too large"):
        read_image(write_dicom(tmp_path / "big.dcm", rgb), max_pixels=1000)


def test_dicom_found_by_content_without_extension(tmp_path, rgb):
    path = write_dicom(tmp_path / "IM000001", rgb)
    assert is_dicom(path) and not is_dicom(tmp_path / "nothing")
    np.testing.assert_array_equal(read_image(path), rgb)


@pytest.mark.parametrize(
    ("tag", "value", "eye"),
    [("ImageLaterality", "R", "right"), ("Laterality", "L", "left"), ("ImageLaterality", "B", ""), ("Laterality", "U", ""),
     # probe 59 BW5: the words devices and PACS rewrites write for L and R; no eye stays no eye
     ("ImageLaterality", "OS", "left"), ("Laterality", "OD", "right"), ("ImageLaterality", "LEFT", "left"),
     ("ImageLaterality", "RIGHT", "right"), ("Laterality", "left", "left"), ("ImageLaterality", "OU", ""),
     ("ImageLaterality", "X", "")],
)
def test_laterality_tags(tmp_path, rgb, tag, value, eye):
    header = read_header(write_dicom(tmp_path / "e.dcm", rgb, laterality=value, laterality_tag=tag))
    assert header.eye == eye and header.patient_id == ""


def test_laterality_tags_that_disagree_give_no_eye(tmp_path, rgb):
    """ImageLaterality (the photo's) L beside Laterality (its series') R: no eye, both kept for the note."""
    path = write_dicom(tmp_path / "e.dcm", rgb, laterality="L")
    ds = pydicom.dcmread(path)
    for series, eye in (("R", ""), ("L", "left"), ("B", "left")):  # a series of both eyes may hold a left-eye photo
        ds.Laterality = series
        ds.save_as(path)
        header = read_header(path)
        assert header.eye == eye
    assert header.laterality == (("ImageLaterality", "left"), ("Laterality", "B (both eyes)"))

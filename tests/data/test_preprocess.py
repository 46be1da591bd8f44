"""Decoding (data.images) and fundus preprocessing (data.preprocess): known geometry in,
checked numbers out; real photos from ../shared/data when that folder exists."""

from __future__ import annotations

import io
import pickle
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from drgrader.config import PreprocessConfig
from drgrader.data.fundus import FundusCircle, circle_mask, find_fundus
from drgrader.data.images import ImageReadError, read_image, read_image_size
from drgrader.data.preprocess import ben_graham, clahe_lab, crop_to_fundus, preprocess_image, resize_square
from drgrader.data.quality import assess_quality
from drgrader.synth import make_fundus

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def disc_image(h: int, w: int, cx: float, cy: float, r: float, level: int = 180) -> np.ndarray:
    """A fundus-like disc on black: orange, darker towards the rim, with a few dark vessels."""
    img = np.zeros((h, w, 3), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    dist = np.hypot(xx - cx, yy - cy) / r
    shade = np.clip(1.0 - 0.3 * dist**2, 0, 1)
    colour = np.array([level, 0.55 * level, 0.25 * level])
    img[:] = (shade[..., None] * colour).astype(np.uint8)
    for angle in np.linspace(0, 2 * np.pi, 7, endpoint=False):
        end = (int(cx + 0.85 * r * np.cos(angle)), int(cy + 0.85 * r * np.sin(angle)))
        cv2.line(img, (int(cx), int(cy)), end, (level // 2, level // 5, level // 10), max(2, int(r / 60)))
    outside = ~circle_mask(img.shape, FundusCircle(cx, cy, r, True, False))
    img[outside] = 0
    return img


def encode(rgb: np.ndarray, ext: str = ".jpg") -> bytes:
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


# ------------------------------------------------------------------------- find_fundus
CIRCLES = {
    # name: (height, width, cx, cy, r, clipped)
    "3:2": (600, 900, 450, 300, 270, False),
    "4:3": (600, 800, 410, 290, 260, False),
    "square": (500, 500, 250, 250, 235, False),
    "small in big frame": (900, 1350, 700, 430, 250, False),
    "clipped top and bottom": (600, 900, 450, 300, 380, True),
    "clipped, off centre": (600, 900, 430, 320, 360, True),
}


@pytest.mark.parametrize("name", list(CIRCLES))
def test_find_fundus_recovers_known_circles(name):
    h, w, cx, cy, r, clipped = CIRCLES[name]
    found = find_fundus(disc_image(h, w, cx, cy, r))
    assert found.found
    assert found.clipped == clipped
    assert abs(found.cx - cx) <= 3 and abs(found.cy - cy) <= 3 and abs(found.r - r) <= 3, found


def test_find_fundus_dim_image_and_bright_artefacts():
    dim = disc_image(600, 900, 450, 300, 270, level=28)
    assert dim.max() < 30
    c = find_fundus(dim)
    assert c.found and abs(c.r - 270) <= 3 and abs(c.cx - 450) <= 3

    img = disc_image(600, 900, 450, 300, 270)
    cv2.circle(img, (520, 250), 40, (255, 255, 255), -1)  # bright reflection inside
    cv2.rectangle(img, (10, 10), (120, 40), (255, 255, 255), -1)  # label in the corner
    cv2.circle(img, (450 + 268, 300), 15, (255, 255, 255), -1)  # flare sitting on the rim
    c = find_fundus(img)
    assert c.found and abs(c.cx - 450) <= 3 and abs(c.cy - 300) <= 3 and abs(c.r - 270) <= 3, c


def test_find_fundus_ignores_the_frame_chords():
    # A camera mask cutting the circle with black bars inside the image (not at its border).
    img = disc_image(700, 900, 450, 350, 330)
    img[:80] = 0
    img[-80:] = 0
    c = find_fundus(img)
    assert c.found and abs(c.r - 330) <= 3 and abs(c.cy - 350) <= 3


@pytest.mark.parametrize("kind", ["black", "white", "grey", "noise"])
def test_find_fundus_reports_no_fundus(kind):
    rng = np.random.default_rng(0)
    images = {
        "black": np.zeros((300, 400, 3), np.uint8),
        "white": np.full((300, 400, 3), 255, np.uint8),
        "grey": np.full((300, 400, 3), 128, np.uint8),
        "noise": rng.integers(0, 256, (300, 400, 3), dtype=np.uint8),
    }
    assert not find_fundus(images[kind]).found


def test_find_fundus_rejects_bad_input():
    with pytest.raises(ValueError, match="RGB uint8"):
        find_fundus(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="RGB uint8"):
        find_fundus(np.zeros((10, 10, 3), np.float32))


# ---------------------------------------------------------------------------- crop
def test_crop_contains_the_whole_circle_and_little_else():
    img = disc_image(600, 900, 450, 300, 270)
    circle = find_fundus(img)
    crop = crop_to_fundus(img, circle, mask=False)
    assert crop.shape[0] == crop.shape[1] == round(2 * circle.r)
    assert abs(crop.shape[0] - 540) <= 4  # side 2r: the circle and nothing more
    bright = lambda a: int((a.max(axis=2) > 0).sum())  # noqa: E731
    assert bright(crop) == bright(img)  # every fundus pixel is in the crop


def test_crop_pads_a_clipped_circle_and_masks_outside():
    h, w, cx, cy, r = 600, 900, 450, 300, 380
    img = disc_image(h, w, cx, cy, r)
    img[img.max(axis=2) == 0] = 40  # a grey surround, to see the mask at work
    circle = FundusCircle(cx, cy, r, found=True, clipped=True)
    crop = crop_to_fundus(img, circle, mask=False)
    assert crop.shape == (760, 760, 3)
    # Rows above and below the frame are black padding; the frame is centred in the crop.
    assert not crop[:79].any() and not crop[-79:].any()
    assert crop[81:-81].max(axis=2).min() > 0
    masked = crop_to_fundus(img, circle, mask=True)
    assert crop[100, 100].tolist() == [40, 40, 40] and not masked[100, 100].any()  # 395 px out
    assert masked[380, 5].any()  # 375 px from the centre: inside
    # Inside the circle (to a pixel) the crop is untouched; outside it is black.
    yy, xx = np.mgrid[0:760, 0:760]
    dist = np.hypot(xx - 379.5, yy - 379.5)
    assert np.array_equal(masked[dist < 378.5], crop[dist < 378.5]) and not masked[dist > 381.5].any()


# ----------------------------------------------------------------------- contrast steps
def test_ben_graham_hand_computed_values():
    flat = np.full((60, 60, 3), 77, np.uint8)
    assert (ben_graham(flat, 10.0) == 128).all()  # 4*77 - 4*77 + 128
    # One pixel brighter than its surround by 10: 4 * (10 - its small blurred share) + 128.
    dot = flat.copy()
    dot[30, 30] = 87
    out = ben_graham(dot, 10.0, radius=30)  # sigma 1 px
    # The 8-bit blur keeps 0.159 of the step at the centre: round(77 + 1.59) = 79.
    assert round(77 + 10 * cv2.getGaussianKernel(7, 1.0)[3, 0] ** 2) == 79
    assert out[30, 30].tolist() == [128 + 4 * (87 - 79)] * 3


def test_ben_graham_mask_keeps_surround_black_and_rim_flat():
    img = disc_image(300, 300, 149.5, 149.5, 140)
    circle = FundusCircle(149.5, 149.5, 140, True, False)
    inside = circle_mask(img.shape, circle)
    out = ben_graham(img, 10.0, radius=140, fundus_mask=inside)
    assert not out[~inside].any()
    assert abs(out[inside].mean() - 128) < 8
    # The local average uses fundus pixels only: no bright ring along the rim.
    flat = np.where(inside[..., None], np.full((300, 300, 3), 120, np.uint8), np.uint8(0))
    ring = ben_graham(flat, 10.0, radius=140, fundus_mask=inside)
    assert np.abs(ring[inside].astype(int) - 128).max() <= 1
    plain = ben_graham(flat, 10.0, radius=140)  # Graham's unmasked formula: the ring is there
    assert plain[inside].max() == 255


def test_clahe_raises_contrast_and_keeps_shape():
    rng = np.random.default_rng(1)
    low = (100 + rng.normal(0, 3, (128, 160, 3))).clip(0, 255).astype(np.uint8)
    low[:, :80] += 8
    out = clahe_lab(low, clip=2.0, tiles=8)
    assert out.shape == low.shape and out.dtype == np.uint8
    lum = lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2LAB)[..., 0].astype(float)  # noqa: E731
    assert lum(out).std() > 1.5 * lum(low).std()


def test_resize_square_pads_and_averages():
    img = np.zeros((100, 200, 3), np.uint8)
    img[:] = 200
    out = resize_square(img, 50)
    assert out.shape == (50, 50, 3)
    assert not out[:12].any() and not out[-12:].any()  # 50 px black bands padded to square
    assert (out[13:37] == 200).all()
    block = np.array([[0, 40], [80, 120]], np.uint8).repeat(2, 0).repeat(2, 1)
    small = resize_square(np.dstack([block] * 3), 2)  # INTER_AREA: the 2x2 block means
    assert small[..., 0].tolist() == [[0, 40], [80, 120]]
    assert resize_square(np.dstack([block] * 3), 9).shape == (9, 9, 3)  # INTER_CUBIC up


# ----------------------------------------------------------------------- preprocess_image
@pytest.mark.parametrize(
    "settings",
    [{}, {"mask": False}, {"crop": False}, {"ben_graham": True}, {"clahe": True}, {"ben_graham": True, "clahe": True}],
)
def test_preprocess_image_shape_dtype_and_black_surround(settings):
    cfg = PreprocessConfig(**settings)
    img = disc_image(400, 600, 300, 200, 180)
    out = preprocess_image(img, cfg, 96)
    assert out.shape == (96, 96, 3) and out.dtype == np.uint8
    if cfg.mask:
        assert not out[0, 0].any() and not out[-1, -1].any() and not out[0, -1].any()
    if cfg.crop:
        assert out[48, 2].any() and out[48, 93].any()  # the fundus fills the crop edge to edge


def test_preprocess_image_falls_back_to_a_centre_crop():
    rng = np.random.default_rng(2)
    noise = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    out = preprocess_image(noise, PreprocessConfig(), 100)
    expected = cv2.resize(noise[:, 50:250], (100, 100), interpolation=cv2.INTER_AREA)
    assert np.array_equal(out, expected)


def test_preprocess_image_does_not_depend_on_resolution():
    # Same photo decoded at two sizes (as scale-on-decode does) -> nearly the same model input.
    img = make_fundus(2, np.random.default_rng(4), height=800, aspect="3:2")
    half = cv2.resize(img, (600, 400), interpolation=cv2.INTER_AREA)
    cfg = PreprocessConfig()
    a, b = preprocess_image(img, cfg, 128), preprocess_image(half, cfg, 128)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 3


# -------------------------------------------------------------------------- quality
def test_assess_quality_good_and_bad_images():
    rng = np.random.default_rng(5)
    good = make_fundus(0, rng, height=600, aspect="3:2")
    q = assess_quality(good)
    assert q.gradable and q.reason == "" and 0.5 <= q.score <= 1.0

    circle = find_fundus(good)
    blurred = cv2.GaussianBlur(good, (0, 0), 0.03 * 2 * circle.r)  # sigma 3% of the diameter
    assert assess_quality(blurred) == assess_quality(blurred)  # deterministic
    qb = assess_quality(blurred)
    assert not qb.gradable and qb.reason == "blurred" and qb.score < 0.5
    dark = (good * 0.12).astype(np.uint8)
    assert assess_quality(dark).reason == "too dark"
    washed = (good * 0.2 + 220).clip(0, 255).astype(np.uint8)
    washed[good.max(axis=2) == 0] = 0
    assert assess_quality(washed).reason == "too bright"
    for bad in (np.zeros_like(good), np.full_like(good, 255), rng.integers(0, 256, good.shape, dtype=np.uint8)):
        assert assess_quality(bad) == assess_quality(bad, find_fundus(bad))
        q = assess_quality(bad)
        assert not q.gradable and q.reason == "no fundus detected" and q.score == 0.0


@pytest.mark.parametrize("camera", ["cam1", "cam3", "cam4", "cam5"])
def test_synthetic_cameras_are_gradable(camera):
    from drgrader.synth import CAMERA_FRAMES, CAMERAS

    aspect, clipped = CAMERA_FRAMES[camera]
    img = make_fundus(3, np.random.default_rng(6), height=400, aspect=aspect, clipped=clipped, camera=CAMERAS[camera])
    img = cv2.imdecode(np.frombuffer(encode(img), np.uint8), cv2.IMREAD_COLOR)[..., ::-1].copy()
    c = find_fundus(img)
    assert c.found and c.clipped == clipped
    assert assess_quality(img, c).gradable


# ---------------------------------------------------------------------- real photos
def _real_images(folder: str, count: int) -> list[Path]:
    path = SHARED_DATA / folder / "images"
    if not path.is_dir():
        pytest.skip(f"real photos not available ({path})")
    files = sorted(path.iterdir())
    return files[:: max(1, len(files) // count)][:count]


@pytest.mark.parametrize("folder", ["rahim-originals", "eyepacs-256"])
def test_real_photos_circle_holds_the_fundus_and_little_else(folder):
    for path in _real_images(folder, 6):
        rgb = read_image(path, min_side=400)
        c = find_fundus(rgb)
        assert c.found, path.name
        # The fundus = the clearly lit region (smoothed brightest channel > 25).
        lit = cv2.medianBlur(rgb.max(axis=2), 5) > 25
        grown = circle_mask(rgb.shape, FundusCircle(c.cx, c.cy, c.r * 1.02 + 2, True, c.clipped))
        outside = (lit & ~grown).sum() / lit.sum()
        assert outside < 0.005, (path.name, outside)  # the circle holds the whole fundus
        # Within the rows the frame shows (some cameras cut the circle with black bars).
        rows = np.flatnonzero(lit.any(axis=1))
        inside = circle_mask(rgb.shape, c)
        inside[: rows[0]] = inside[rows[-1] + 1 :] = False
        fill = (lit & inside).sum() / inside.sum()
        assert fill > 0.9, (path.name, fill)  # ... and little else
        q = assess_quality(rgb, c)
        assert q.gradable, (path.name, q)


# ------------------------------------------------------------------------ read_image
@pytest.fixture
def photo() -> np.ndarray:
    return disc_image(400, 600, 300, 200, 190)


def test_read_image_jpeg_and_scale_on_decode(tmp_path, photo):
    path = tmp_path / "a.jpeg"
    path.write_bytes(encode(photo))
    full = read_image(path)
    assert full.shape == (400, 600, 3) and full.dtype == np.uint8 and full.flags.writeable
    assert np.abs(full.astype(int) - photo).mean() < 3
    assert read_image(path, min_side=150).shape == (200, 300, 3)  # 1/2: 1/4 would be 100 < 150
    assert read_image(path, min_side=100).shape == (100, 150, 3)  # 1/4
    assert read_image(path, min_side=50).shape == (50, 75, 3)  # 1/8 is the smallest
    assert read_image(path, min_side=400).shape == (400, 600, 3)
    png = tmp_path / "a.png"
    png.write_bytes(encode(photo, ".png"))
    assert np.array_equal(read_image(png, min_side=50), photo)  # not a JPEG: full size
    assert read_image_size(path) == (400, 600)


def test_read_image_errors_name_the_file_and_reason(tmp_path, photo):
    data = encode(photo)
    truncated = tmp_path / "truncated.jpeg"
    truncated.write_bytes(data[: len(data) // 2])
    empty = tmp_path / "empty.jpeg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpeg"
    text.write_text("this is not a photograph\n")
    tiny = tmp_path / "tiny.png"
    tiny.write_bytes(encode(photo[:40, :40], ".png"))
    cases = [
        (truncated, "truncated"),
        (empty, "empty"),
        (text, "not an image"),
        (tiny, "too small"),
        (tmp_path / "missing.jpeg", "not found"),
    ]
    for path, reason in cases:
        with pytest.raises(ImageReadError, match=reason) as err:
            read_image(path)
        assert str(path) in str(err.value) and err.value.path == str(path)
    copy = pickle.loads(pickle.dumps(err.value))  # crosses process boundaries intact
    assert (copy.path, copy.reason, str(copy)) == (err.value.path, err.value.reason, str(err.value))


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def test_read_image_refuses_huge_images_before_decoding(tmp_path):
    # A 60000 x 60000 PNG header (3.6 gigapixels) with almost no data: a decompression bomb.
    header = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + _png_chunk(b"IEND", b"")
    )
    with pytest.raises(ImageReadError, match="too large"):
        read_image(bomb)
    normal = tmp_path / "normal.png"
    normal.write_bytes(encode(np.zeros((300, 300, 3), np.uint8), ".png"))
    with pytest.raises(ImageReadError, match="too large.*90,000 pixels > limit 50,000"):
        read_image(normal, max_pixels=50_000)


def test_read_image_converts_odd_formats(tmp_path):
    # RGBA: transparent pixels (white underneath) become black, opaque ones keep their colour.
    rgba = np.zeros((100, 100, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[:, 50:] = (200, 100, 50, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    out = read_image(tmp_path / "alpha.png")
    assert not out[:, :50].any() and (out[:, 50:] == (200, 100, 50)).all()

    # 16-bit greyscale PNG: 65535 -> 255, 32896 (= 128 * 257) -> 128, 0 -> 0.
    grey16 = np.zeros((100, 100), np.uint16)
    grey16[:, 30:60] = 32896
    grey16[:, 60:] = 65535
    cv2.imwrite(str(tmp_path / "grey16.png"), grey16)
    out = read_image(tmp_path / "grey16.png")
    assert out[0, 0].tolist() == [0, 0, 0] and out[0, 40].tolist() == [128] * 3 and out[0, 80].tolist() == [255] * 3

    # 16-bit colour PNG.
    colour16 = np.zeros((100, 100, 3), np.uint16)
    colour16[:] = (10000, 40000, 65535)  # BGR for OpenCV
    cv2.imwrite(str(tmp_path / "colour16.png"), colour16)
    out = read_image(tmp_path / "colour16.png")
    assert np.abs(out[50, 50].astype(int) - [255, 156, 39]).max() <= 1

    # Greyscale JPEG -> three equal channels.
    Image.fromarray(np.full((100, 100), 90, np.uint8), "L").save(tmp_path / "grey.jpg")
    out = read_image(tmp_path / "grey.jpg")
    assert out.shape == (100, 100, 3) and (np.abs(out.astype(int) - 90) <= 1).all()

    # CMYK JPEG (as saved by print workflows): pure red.
    Image.new("CMYK", (100, 100), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    out = read_image(tmp_path / "cmyk.jpg")
    assert out[50, 50, 0] > 230 and out[50, 50, 1] < 30 and out[50, 50, 2] < 30


def test_read_image_applies_exif_orientation(tmp_path):
    img = np.zeros((100, 200, 3), np.uint8)  # wide: left half red, right half blue
    img[:, :100] = (255, 0, 0)
    img[:, 100:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buffer = io.BytesIO()
    Image.fromarray(img).save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    path = tmp_path / "rotated.jpg"
    path.write_bytes(buffer.getvalue())
    out = read_image(path)
    assert out.shape == (200, 100, 3) and read_image_size(path) == (200, 100)
    assert out[20, 50, 0] > 200 and out[20, 50, 2] < 50  # red on top after the rotation
    assert out[180, 50, 2] > 200 and out[180, 50, 0] < 50
    assert read_image(path, min_side=50).shape == (100, 50, 3)  # also when scaled on decode

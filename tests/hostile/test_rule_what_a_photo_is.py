"""Rules 1 and 5, what a photo is: a red-free or tinted monochrome photo stored in colour, a
thumbnail far smaller than the grader's input (or enlarged back to full size), an OpenCV BGR
array, and an in-memory PIL image with EXIF orientation are each taken for what they are, not
graded as a colour photograph."""

import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from dicom_files import write_jpeg_dicom
from PIL import Image

import drgrader
from drgrader.api import _check_channel_order
from drgrader.data.images import read_image, read_jpeg_step
from drgrader.data.photo import photo_quality
from drgrader.data.quality import (
    COLOUR_REDUCED_COPY,
    GREY_THRESHOLD,
    NOT_COLOUR,
    RED_THRESHOLD,
    REVERSED,
    SEVERAL_FUNDI,
    TINT_THRESHOLD,
    assess_quality,
    jpeg_quality_of,
    measure_photo,
)
from drgrader.synth import make_fundus

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
# The least colourful real photos of benchmarks/results/colour_check.json (colour, red/green, tint)
# and the least colourful camera original.
LEAST_COLOURFUL = ["eyepacs-256/images/16085_right.jpeg", "eyepacs-256/images/11048_left.jpeg",
                   "eyepacs-256/images/12938_right.jpeg",
                   "rahim-originals/images/Patient246_L.jpg"]
# The real photos holding the least fine detail (benchmarks/results/detail_check.json).
LEAST_DETAILED = ["rahim-originals/images/Patient103_L.jpg", "eyepacs-256/images/14597_right.jpeg"]


def _red_free_copies(rgb: np.ndarray) -> dict[str, np.ndarray]:
    green = rgb.copy()
    green[..., [0, 2]] = 0  # the green channel shown in green
    cyan = rgb.copy()
    cyan[..., 0] = 0  # red removed
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    sepia = np.clip(np.stack([luma, luma * 0.85, luma * 0.65], -1), 0, 255).round().astype(np.uint8)
    return {"green_only": green, "red_removed": cyan, "sepia": sepia}


def test_red_free_and_tinted_copies_of_a_colour_photo_are_not_colour():
    # Before: only R = G = B was caught; a green-only photo measured 1.7 on the grey check and was graded.
    rgb = make_fundus(3, np.random.default_rng(1), height=384)
    assert assess_quality(rgb).gradable
    for name, copy in _red_free_copies(rgb).items():
        quality = assess_quality(copy)
        assert (quality.gradable, quality.reason) == (False, NOT_COLOUR), name


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize("photo", LEAST_COLOURFUL)
def test_the_least_colourful_real_photos_stay_gradable_and_their_red_free_copies_do_not(photo):
    rgb = read_image(SHARED / photo)
    assert assess_quality(rgb, input_size=256).gradable
    m = measure_photo(rgb)  # each colour measure about 2x its bar or more
    assert m.colour > 2 * GREY_THRESHOLD and m.red_to_green > 2 * RED_THRESHOLD and m.tint_spread > 1.9 * TINT_THRESHOLD
    for name, copy in _red_free_copies(rgb).items():
        assert assess_quality(copy).reason == NOT_COLOUR, name


def test_a_thumbnail_far_smaller_than_the_graders_input_is_ungradable():
    # Before: a 96 px thumbnail of an urgent eye was graded 0, negative, gradable, by a 256 px grader.
    thumbnail = cv2.resize(make_fundus(3, np.random.default_rng(1), height=384), (96, 96), interpolation=cv2.INTER_AREA)
    quality = assess_quality(thumbnail, input_size=256)
    assert not quality.gradable and quality.reason.startswith("resolution too low: the fundus is")
    assert "256 px" in quality.reason
    assert assess_quality(thumbnail, input_size=64).reason != quality.reason  # a small grader's own scale


def _enlarged_thumbnail(rgb: np.ndarray, fundus: int, method: Image.Resampling) -> np.ndarray:
    """The photo reduced so that its fundus is ``fundus`` px across, enlarged back to its size."""
    h, w = rgb.shape[:2]
    factor = fundus / measure_photo(rgb).diameter
    small = Image.fromarray(rgb).resize((round(w * factor), round(h * factor)), Image.Resampling.LANCZOS)
    return np.asarray(small.resize((w, h), method))


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_a_thumbnail_enlarged_back_to_full_size_is_ungradable():
    # Before: a 72 px thumbnail of an urgent eye enlarged to 512 px (what a viewer, a report or a
    # screenshot gives back) was graded 0, negative, gradable: its fundus was 527 px across.
    rgb = make_fundus(3, np.random.default_rng(1), height=384)
    assert assess_quality(rgb, input_size=256).gradable  # the same photo at full detail
    for method in (Image.Resampling.BICUBIC, Image.Resampling.LANCZOS):
        enlarged = _enlarged_thumbnail(rgb, 72, method)
        for copy in (enlarged, _jpeg(enlarged, 90)):
            assert measure_photo(copy).diameter > 300  # the fundus measures full size
            quality = assess_quality(copy, input_size=256)
            assert not quality.gradable and quality.score < 0.5, method
            assert re.fullmatch(r"resolution too low: the fundus holds no more detail than a ~\d+ px photo \(enlarged\?\), "
                                r"under half of the grader's 256 px input", quality.reason), quality.reason
            assert int(re.search(r"~(\d+) px", quality.reason)[1]) < 128
        assert assess_quality(enlarged, input_size=64).gradable  # far more than a 64 px grader's 32 px bar


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data")
def test_the_probes_enlarged_thumbnail_of_an_urgent_eye_is_ungradable():
    rgb = read_image(SHARED / "eyepacs-256/images/10131_left.jpeg")
    assert assess_quality(rgb, input_size=256).gradable
    thumbnail = Image.fromarray(rgb).resize((72, 72), Image.Resampling.LANCZOS)
    enlarged = np.asarray(thumbnail.resize((512, 512), Image.Resampling.BICUBIC))
    quality = assess_quality(enlarged, input_size=256)
    assert not quality.gradable and quality.reason.startswith("resolution too low: the fundus holds no more detail")


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize("photo", LEAST_DETAILED)
def test_the_least_detailed_real_photos_stay_gradable(photo):
    rgb = read_image(SHARED / photo)
    for size in (128, 256):
        assert assess_quality(rgb, input_size=size).gradable, size
        assert assess_quality(_jpeg(rgb, 50), input_size=size).gradable, size


def test_grade_refuses_a_thumbnail_for_the_graders_input(tiny_bundle):
    # The tiny bundle's input is 64 px: a 24 px fundus is under half of it.
    small = cv2.resize(make_fundus(3, np.random.default_rng(1), height=384), (24, 24), interpolation=cv2.INTER_AREA)
    framed = np.zeros((80, 80, 3), np.uint8)
    framed[28:52, 28:52] = small
    photos, _ = drgrader.grade(tiny_bundle, [framed], names=["thumb_left"], channels="RGB")
    assert photos["quality_reason"].iloc[0].startswith("resolution too low") or \
        photos["quality_reason"].iloc[0] == "no fundus detected"
    assert not photos["gradable"].iloc[0]


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data")
def test_a_bgr_array_of_a_channel_equalised_photo_is_not_taken_silently(caplog):
    # Before: eyepacs-256's channels are equalised (red/blue 1.0), so blue > 1.5 x red never fired.
    rgb = read_image(SHARED / "eyepacs-256/images/10120_right.jpeg")
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        try:
            _check_channel_order(np.ascontiguousarray(rgb[..., ::-1]), "10120_right")
        except ValueError as exc:
            assert "looks like BGR" in str(exc)
        else:
            assert "channel order cannot be told" in caplog.text
    for path in sorted((SHARED / "rahim-originals" / "images").iterdir())[::30]:  # camera originals: refused
        original = read_image(path)
        _check_channel_order(original, path.name)
        with pytest.raises(ValueError, match="looks like BGR"):
            _check_channel_order(np.ascontiguousarray(original[..., ::-1]), path.name)


def test_channels_bgr_grades_a_cv2_array_as_its_rgb(tiny_bundle, synth_dir, caplog):
    path = sorted((synth_dir / "images").iterdir())[0]
    rgb = read_image(path)
    as_rgb, _ = drgrader.grade(tiny_bundle, [rgb], channels="RGB")
    as_bgr, _ = drgrader.grade(tiny_bundle, [cv2.imread(str(path))], channels="BGR")
    assert np.allclose(as_rgb["expected_grade"].to_numpy(float), as_bgr["expected_grade"].to_numpy(float), atol=1e-3)
    with pytest.raises(ValueError, match="channels: 'bgr' is not one of RGB, BGR"):
        drgrader.grade(tiny_bundle, [rgb], channels="bgr")


def test_grade_with_other_tta_views_warns_as_predict_does(tiny_bundle, synth_dir, caplog):
    # Before: drgrader.grade(tta=["vflip"]) changed decisions without the warning predict --tta prints.
    path = sorted((synth_dir / "images").iterdir())[0]
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        drgrader.grade(tiny_bundle, [path], tta=["vflip"])
    assert "--tta vflip: the bundle's thresholds" in caplog.text


def test_a_pil_image_with_exif_orientation_is_graded_upright(tiny_bundle, tmp_path):
    # Before: an in-memory PIL image with EXIF orientation 6 was graded sideways (its file upright).
    rgb = make_fundus(3, np.random.default_rng(2), height=160)
    rgb[:40, :] = 0  # not symmetric under rotation
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to view
    Image.fromarray(rgb).transpose(Image.Transpose.ROTATE_90).save(tmp_path / "side.jpeg", exif=exif, quality=95)
    opened = Image.open(tmp_path / "side.jpeg")
    in_memory, _ = drgrader.grade(tiny_bundle, [opened], names=["side"])
    from_file, _ = drgrader.grade(tiny_bundle, [tmp_path / "side.jpeg"])
    upright, _ = drgrader.grade(tiny_bundle, [np.asarray(Image.open(tmp_path / "side.jpeg").convert("RGB"))],
                                names=["raw"], channels="RGB")
    assert np.allclose(in_memory["expected_grade"].to_numpy(float), from_file["expected_grade"].to_numpy(float), atol=0.02)
    assert not np.allclose(in_memory["expected_grade"].to_numpy(float), upright["expected_grade"].to_numpy(float), atol=1e-4)


def test_a_photo_saved_with_its_channels_reversed_is_ungradable(tiny_bundle, tmp_path):
    # cv2.imwrite(path, rgb) writes a fundus blue: it was graded as a colour photo (an urgent eye
    # negative), though the same pixels as an array were refused. Files and PIL images too now.
    rgb = make_fundus(3, np.random.default_rng(4), height=256)
    assert measure_photo(rgb).red_to_blue > 1.5 and assess_quality(rgb).gradable
    assert cv2.imwrite(str(tmp_path / "7_left.png"), rgb)  # no cvtColor: channels reversed on disk
    photos, _ = drgrader.grade(tiny_bundle, [tmp_path / "7_left.png"])
    assert not photos["gradable"].iloc[0] and photos["quality_reason"].iloc[0] == REVERSED
    in_memory, _ = drgrader.grade(tiny_bundle, [Image.open(tmp_path / "7_left.png")], channels="RGB")
    assert in_memory["quality_reason"].iloc[0] == REVERSED


def _saved(rgb: np.ndarray, path: Path, **options) -> Path:
    Image.fromarray(rgb).save(path, **options)
    return path


@pytest.mark.parametrize("quality", [30, 50, 75, 90])
def test_a_jpegs_quantisation_step_gives_back_the_quality_it_was_saved_at(tmp_path, quality):
    path = _saved(make_fundus(2, np.random.default_rng(0), height=256), tmp_path / "a.jpg", quality=quality)
    step = read_jpeg_step(path)
    assert jpeg_quality_of(step) == quality
    if quality == 50:
        assert step == pytest.approx(57.625)  # libjpeg's standard luma table, unscaled
    assert read_jpeg_step(_saved(read_image(path), tmp_path / "a.png")) is None


def test_a_small_coarsely_compressed_copy_is_ungradable_and_its_lossless_copy_is_not(tmp_path):
    # Before: a camera photo reduced to 300 px and saved at JPEG quality 40 (an e-mail copy) was
    # graded as a full photo; its block artefacts turned 9 of 20 healthy eyes referable.
    rgb = make_fundus(0, np.random.default_rng(4), height=256)
    small_q30 = _saved(rgb, tmp_path / "q30.jpg", quality=30)
    verdicts = {}
    for path in (small_q30, _saved(rgb, tmp_path / "q95.jpg", quality=95), _saved(rgb, tmp_path / "lossless.png")):
        decoded = read_image(path)
        verdicts[path.name] = photo_quality(path, decoded, None, 256, decoded.shape[:2])
    assert verdicts["q95.jpg"].gradable and verdicts["lossless.png"].gradable
    q30 = verdicts["q30.jpg"]
    assert not q30.gradable and q30.score < 0.5
    assert re.fullmatch(r"compressed copy: a JPEG of quality ~30 with the fundus \d+ px across: its block artefacts "
                        r"look like lesions to the grader \(grades run high\); grade the original photo", q30.reason)
    # A quality 75 copy: too coarse for the 256 px grader, fine for a 64 px one (shrunk fourfold).
    q75 = _saved(rgb, tmp_path / "q75.jpg", quality=75)
    assert not photo_quality(q75, rgb, None, 256, rgb.shape[:2]).gradable
    assert photo_quality(q75, rgb, None, 64, rgb.shape[:2]).gradable
    photos, _ = drgrader.grade(None, [str(small_q30), str(tmp_path / "lossless.png")])  # the built-in grader
    assert photos["gradable"].tolist() == [False, True]
    assert photos["quality_reason"][0].startswith("compressed copy")


def test_a_pil_image_opened_from_a_coarse_jpeg_is_checked_as_its_file_is(tmp_path):
    # Before: drgrader.grade with Image.open(q30 file) graded it gradable (the in-memory photo
    # went through a lossless PNG that lost the JPEG's tables) while the file was flagged.
    rgb = make_fundus(0, np.random.default_rng(4), height=256)
    small_q30 = _saved(rgb, tmp_path / "q30.jpg", quality=30)
    photos, _ = drgrader.grade(None, [Image.open(small_q30), Image.open(_saved(rgb, tmp_path / "q95.jpg", quality=95)),
                                      read_image(small_q30)], names=["1_left", "1_right", "2_left"])
    assert photos["gradable"].tolist() == [False, True, True]  # an array carries no JPEG record (documented)
    file_reason = drgrader.grade(None, str(small_q30))[0]["quality_reason"][0]
    assert photos["quality_reason"][0] == file_reason and file_reason.startswith("compressed copy: a JPEG of quality ~30")

def test_in_memory_photos_that_lost_their_jpeg_origin_are_warned_about(tmp_path, caplog):
    # Before: Image.open(q30 copy).convert('RGB') (every PIL tutorial's idiom) was graded
    # gradable without a word, the compression check silently lost (probe 32 A11).
    small_q30 = _saved(make_fundus(0, np.random.default_rng(4), height=256), tmp_path / "q30.jpg", quality=30)
    opened = Image.open(small_q30)
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        photos, _ = drgrader.grade(None, [opened, opened.convert("RGB"), np.asarray(opened.resize((300, 300))),
                                          make_fundus(0, np.random.default_rng(4), height=1000)])
    assert photos["quality_reason"][0].startswith("compressed copy")  # opened from the file: checked
    warnings = [r.getMessage() for r in caplog.records if "pass the file paths" in r.getMessage()]
    assert len(warnings) == 1  # one per call, counting the two small photos (not the 1000 px one)
    assert warnings[0].startswith("2 of 4 photos are arrays or PIL images that no longer know the JPEG they came from")
    assert warnings[0].endswith("pass the file paths (or PIL images opened from the files) so that compressed copies "
                                "can be checked")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        drgrader.grade(None, [opened, Image.open(_saved(np.asarray(opened), tmp_path / "lossless.png"))])
    assert not [r for r in caplog.records if "pass the file paths" in r.getMessage()]  # files: nothing lost


def test_a_dicom_file_holding_a_coarse_jpeg_gets_the_jpeg_files_verdict(tmp_path):
    # Before: DICOM files were never checked (no JPEG step read), so a q30 copy wrapped as JPEG
    # Baseline DICOM (as PACS store lossy photos) was gradable where the same JPEG file was not.
    rgb = make_fundus(0, np.random.default_rng(4), height=256)
    jpeg = _saved(rgb, tmp_path / "q30.jpg", quality=30)
    single = write_jpeg_dicom(tmp_path / "q30.dcm", [rgb], quality=30)
    frames = write_jpeg_dicom(tmp_path / "two.dcm", [rgb, rgb], quality=30)
    good = write_jpeg_dicom(tmp_path / "q95.dcm", [rgb], quality=95)
    assert read_jpeg_step(single) == read_jpeg_step(jpeg) == read_jpeg_step(f"{frames}#frame2")
    verdicts = {}
    for path in (jpeg, single, f"{frames}#frame2", good):
        decoded = read_image(path)
        verdicts[str(path)] = photo_quality(path, decoded, None, 256, decoded.shape[:2])
    assert not verdicts[str(single)].gradable and not verdicts[f"{frames}#frame2"].gradable
    assert verdicts[str(single)].reason == verdicts[str(jpeg)].reason
    assert verdicts[str(good)].gradable
    photos, _ = drgrader.grade(None, [str(single), str(good)])  # the built-in grader, as predict reads them
    assert photos["gradable"].tolist() == [False, True]
    assert photos["quality_reason"][0].startswith("compressed copy: a JPEG of quality ~30")


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data")
def test_a_camera_photos_e_mail_copy_is_ungradable_and_the_originals_are_not(tmp_path):
    original = SHARED / "rahim-originals/images/Patient183_L.jpg"
    copy = Image.open(original).convert("RGB")
    copy = copy.resize((300, round(300 * copy.height / copy.width)), Image.Resampling.LANCZOS)
    copy.save(tmp_path / "Patient183_L.jpg", quality=40)
    photos, _ = drgrader.grade(None, [str(original), str(tmp_path / "Patient183_L.jpg"),
                                      str(SHARED / "eyepacs-256/images/10131_left.jpeg")])
    assert photos["gradable"].tolist() == [True, False, True]
    assert photos["quality_reason"][1].startswith("compressed copy: a JPEG of quality ~40")


def test_a_photo_saved_as_a_palette_image_is_a_colour_reduced_copy(tiny_bundle, tmp_path):
    # Before: a 256-colour PNG/GIF/BMP copy was graded as the photo, gradable (probe 32 A5: the
    # web palette's dithering turned grade-4 eyes into grade 0, patient negative).
    rgb = make_fundus(4, np.random.default_rng(0), height=256)
    photo = Image.fromarray(rgb)
    photo.save(tmp_path / "1_left.png")  # the lossless original
    photo.convert("P").save(tmp_path / "1_right.png")  # web palette, dithered
    photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(tmp_path / "2_left.gif")
    photo.convert("P", dither=Image.Dither.NONE).save(tmp_path / "2_right.bmp")
    photos, patients = drgrader.grade(tiny_bundle, [str(tmp_path)])
    photos = photos.set_index("image_id")
    assert photos.loc["1_left", "gradable"] and photos.loc["1_left", "quality_reason"] == ""
    for name in ("1_right", "2_left", "2_right"):
        assert not photos.loc[name, "gradable"]
        assert re.fullmatch(rf"{COLOUR_REDUCED_COPY}: only \d+ colours \(a palette image\): grade the original photo",
                            photos.loc[name, "quality_reason"]), photos.loc[name, "quality_reason"]
    patient = patients.set_index("patient_id").loc["2"]
    assert patient["decision"] == "ungradable"
    assert patient["reason"].endswith(": ask for the original photo (colour-reduced copy)")  # not "photograph again"
    # The same in memory: a PIL palette image, or an array of its colours.
    in_memory, _ = drgrader.grade(tiny_bundle, [photo.convert("P"), np.asarray(photo.convert("P").convert("RGB"))],
                                  channels="RGB")
    assert in_memory["quality_reason"].str.startswith(f"{COLOUR_REDUCED_COPY}: only ").all()


def test_a_picture_of_several_fundi_is_ungradable_not_graded_on_one(tiny_bundle, tmp_path):
    """Probe 34 AX4: both eyes side by side in one picture (a report, a camera's both-eyes export)
    were graded on the largest fundus, gradable: a grade-3 eye beside a healthy one graded 0.
    benchmarks/results/several_fundi.json: none of the 3,897 real photos is called so."""
    rng = np.random.default_rng(0)
    healthy, diseased = make_fundus(0, rng, height=240), make_fundus(4, rng, height=240)
    gap = np.zeros((240, 12, 3), np.uint8)
    Image.fromarray(np.hstack([healthy, gap, diseased])).save(tmp_path / "7_both.jpeg", quality=92)
    Image.fromarray(np.vstack([np.hstack([healthy, gap, diseased])] * 2)).save(tmp_path / "8_grid.png")
    Image.fromarray(healthy).save(tmp_path / "9_left.jpeg", quality=92)
    photos, patients = drgrader.grade(tiny_bundle, [str(tmp_path)])
    photos = photos.set_index("image_id")
    assert patients.set_index("patient_id").loc["7_both", "reason"].endswith(f": grade each eye's own photo ({SEVERAL_FUNDI})")
    for name, count in (("7_both", 2), ("8_grid", 4)):
        assert not photos.loc[name, "gradable"]
        assert photos.loc[name, "quality_reason"] == (f"{SEVERAL_FUNDI} ({count}: both eyes side by side or a montage): "
                                                      "only one would be graded; grade each eye's photo on its own")
    assert photos.loc["9_left", "gradable"], photos.loc["9_left", "quality_reason"]


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data")
def test_the_probes_palette_copy_of_an_urgent_patient_is_not_graded_negative(tmp_path):
    for eye in ("left", "right"):  # EyePACS grade 4 on both eyes
        Image.open(SHARED / f"eyepacs-256/images/10570_{eye}.jpeg").convert("P").save(tmp_path / f"10570_{eye}.png")
    photos, patients = drgrader.grade(None, [str(tmp_path)])  # the built-in grader
    assert not photos["gradable"].any()
    assert photos["quality_reason"].str.startswith(f"{COLOUR_REDUCED_COPY}: only ").all()
    assert patients["decision"].tolist() == ["ungradable"]


def test_explains_panels_given_back_to_predict_are_rows_saying_what_they_are(tiny_bundle, tmp_path):
    """Probe 31 W4: `explain`'s *_gradcam.png panels, found in a folder given to predict, were
    graded as photos (a caption bar and a heat map over a fundus: a grade, a decision). drgrader
    marks every picture it draws; such a file is a row with its reason, the photos beside it graded."""
    from drgrader.inference.explain import explain_command
    from drgrader.workflows.predict import predict_command

    images = tmp_path / "clinic"
    images.mkdir()
    Image.fromarray(make_fundus(2, np.random.default_rng(0), height=200)).save(images / "5_left.jpeg", quality=95)
    panels = explain_command(tiny_bundle, [images], tmp_path / "heatmaps")
    (images / "5_left_gradcam.png").write_bytes((panels / "5_left_gradcam.png").read_bytes())  # filed with the photos
    assert sorted(p.name for p in images.iterdir()) == ["5_left.jpeg", "5_left_gradcam.png"]
    table = pd.read_csv(predict_command(tiny_bundle, [images], out=tmp_path / "p.csv"), keep_default_na=False)
    table = table.set_index("image_id")
    assert table.loc["5_left_gradcam", "error"] == (
        "not a photo: a picture drgrader drew (explain's Grad-CAM panel): grade the original photo")
    assert table.loc["5_left_gradcam", "grade"] == ""
    assert table.loc["5_left", "error"] == "" and table.loc["5_left", "grade"] in {"0", "1", "2", "3", "4"}
    # A plain PNG of the same pixels, saved by someone else, stays a photo (its own checks apply).
    plain = tmp_path / "plain.png"
    Image.open(images / "5_left_gradcam.png").save(plain)
    assert read_image(plain).shape[2] == 3

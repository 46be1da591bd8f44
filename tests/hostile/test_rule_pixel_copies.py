"""Rule 2 of issue 22 for photos that are one picture though their files differ: a PNG of a JPEG,
a JPEG re-saved, a resized copy, a mirror image. Found by their pixels once decoded
(drgrader.data.same_picture) and noted as the resolver notes byte copies: under two patients
kept apart and noted on each; as a patient's two eyes noted, which eye unknown, and never paired
as fellow eyes. In ``predict`` (a resumed run too), ``drgrader.grade`` and ``serve`` (a 400)."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

import drgrader
from drgrader.cli import main
from drgrader.data.same_picture import (
    AS_IS,
    MIRRORED,
    SAME_PICTURE,
    close_pairs,
    how_alike,
    one_picture_with_any,
    picture_print,
    print_grid,
    same_pictures,
)
from drgrader.inference.bundle import load_bundle
from drgrader.inference.predict import PICTURE_COLUMN
from drgrader.synth import make_fundus
from drgrader.workflows import predict as predict_workflow
from drgrader.workflows.predict import partial_file, predict_command, resume_key_file

# Averages the two eyes' expected grades: whether an eye was paired shows in its fused grade.
PAIRED_STAGE = {
    "model": {"inputs": ["expected_grade"], "coef": [0.5, 0.5, 0.0, 0.0], "intercept": 0.0,
              "single_coef": [1.0], "single_intercept": 0.0},
    "thresholds": {"cutpoints": [0.5, 1.5, 2.5, 3.5], "any_dr": 0.5, "referable": 1.5},
}


def fundus(grade: int, seed: int, eye: str = "right") -> np.ndarray:
    return make_fundus(grade, np.random.default_rng(seed), height=128, eye=eye)


def save(path, rgb: np.ndarray, quality: int = 90):
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix in (".jpg", ".jpeg") else []
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    return path


def decoded(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def read(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture
def paired_bundle(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    bundle.manifest["paired_eyes"] = PAIRED_STAGE
    return bundle


COPIES = {
    "PNG of the JPEG": lambda rgb, folder: save(folder / "10007_left.png", rgb),
    "JPEG re-saved at q75": lambda rgb, folder: save(folder / "10007_left.jpeg", rgb, 75),
    "half-size copy": lambda rgb, folder: save(folder / "10007_left.jpg", cv2.resize(rgb, (64, 64), interpolation=cv2.INTER_AREA)),
}


@pytest.mark.parametrize("copy", list(COPIES))
def test_a_converted_or_resaved_copy_under_another_patient_is_noted_on_both(tiny_bundle, tmp_path, caplog, copy):
    """The probe's case: 10007_left is 10131_left's photo in another file; patient 10007 was
    judged on it without a word."""
    folder = tmp_path / "photos"
    folder.mkdir()
    original = save(folder / "10131_left.jpeg", fundus(3, 1, "left"))
    save(folder / "10131_right.jpeg", fundus(1, 2))
    save(folder / "10007_right.jpeg", fundus(0, 3))
    COPIES[copy](decoded(original), folder)
    out = tmp_path / "p.csv"
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        assert main(["predict", str(tiny_bundle), str(folder), "--out", str(out)]) == 0
    photos = read(out).set_index("image_id")
    assert PICTURE_COLUMN not in photos  # the fingerprints stay out of what users read
    note = ("same photo under two patients: '10007_left', '10131_left' are one picture re-saved, converted or resized, under patients '10007' and "
            "'10131'; kept apart as given, so each patient is judged on it (check that it is not filed under the wrong patient)")
    assert photos.loc["10007_left", "identity_note"] == photos.loc["10131_left", "identity_note"] == note
    assert photos.loc[["10131_right", "10007_right"], "identity_note"].tolist() == ["", ""]
    # Kept apart as given: each patient keeps its photos and eyes.
    assert photos.loc[["10007_left", "10131_left"], "patient_id"].tolist() == ["10007", "10131"]
    assert photos.loc[["10007_left", "10131_left"], "eye"].tolist() == ["left", "left"]
    patients = read(tmp_path / "p_patients.csv").set_index("patient_id")
    assert patients.loc["10007", "identity_note"] == patients.loc["10131", "identity_note"] == note
    [warning] = [r.getMessage() for r in caplog.records if "see identity_note" in r.getMessage()]
    assert "identity of 2 of 4 photos resolved with a note (same photo under two patients 2)" in warning


def test_a_mirrored_copy_as_the_fellow_eye_is_noted_and_not_paired(paired_bundle, tmp_path):
    """The probe's other case: 10131_right is 10131_left mirrored, and the paired-eye stage took it
    as the left eye's fellow."""
    folder = tmp_path / "photos"
    folder.mkdir()
    left = save(folder / "10131_left.jpeg", fundus(3, 1, "left"))
    save(folder / "10131_right.jpeg", np.ascontiguousarray(decoded(left)[:, ::-1]))
    save(folder / "20_left.jpeg", fundus(2, 5, "left"))  # a real pair beside it: still paired
    save(folder / "20_right.jpeg", fundus(1, 6, "right"))
    out = predict_command(paired_bundle, [folder], out=tmp_path / "p.csv")
    photos = read(out).set_index("image_id")
    assert (photos.loc["10131_left", "patient_id"], photos.loc["10131_left", "eye"]) == ("10131", "")
    assert (photos.loc["10131_right", "patient_id"], photos.loc["10131_right", "eye"]) == ("10131_right", "")
    assert photos.loc["10131_right", "identity_note"] == (
        "one photo as two eyes: '10131_left', '10131_right' of patient '10131' are mirror images, given as the left eye "
        "and right eye; which eye it shows is unknown, this copy a patient of its own, '10131_right'")
    assert photos.loc["10131_left", "identity_note"].endswith("which eye it shows is unknown, this one kept")
    # Not paired: each is graded alone (the stage's single-eye fallback: its own expected grade).
    assert photos.loc[["10131_left", "10131_right"], "paired"].tolist() == ["False", "False"]
    for image in ("10131_left", "10131_right"):
        assert float(photos.loc[image, "fused_grade"]) == pytest.approx(float(photos.loc[image, "expected_grade"]), abs=1e-6)
    assert photos.loc[["20_left", "20_right"], "paired"].tolist() == ["True", "True"]
    assert photos.loc[["20_left", "20_right"], "identity_note"].tolist() == ["", ""]
    patients = read(tmp_path / "p_patients.csv").set_index("patient_id")
    assert patients.loc["10131", "images"] == "1" and "one photo as two eyes" in patients.loc["10131", "identity_note"]


def test_an_edited_copy_as_the_fellow_eye_is_noted_and_not_paired(paired_bundle, tmp_path):
    """Probe 42 BF3: 10131_right was 10131_left with gamma 0.8 (or its contrast raised): 0.004-0.008
    from it, above the one-picture bar, and paired with itself as its own fellow eye."""
    from drgrader.inference.serve import create_app

    folder = tmp_path / "photos"
    folder.mkdir()
    left = decoded(save(folder / "10131_left.jpeg", fundus(3, 1, "left")))
    brighter = (255 * (left / 255) ** 0.8).astype(np.uint8)  # gamma 0.8: 0.004 from it (a brightness change alone is within the bar)
    save(folder / "10131_right.jpeg", brighter)
    save(folder / "20_left.jpeg", fundus(2, 5, "left"))  # a real pair beside it: still paired
    save(folder / "20_right.jpeg", fundus(1, 6, "right"))
    photos = read(predict_command(paired_bundle, [folder], out=tmp_path / "p.csv")).set_index("image_id")
    assert photos.loc["10131_right", "identity_note"].startswith(
        "one photo as two eyes: '10131_left', '10131_right' of patient '10131' are nearly one picture (one perhaps an "
        "edited copy of the other: brightness, contrast)")
    assert photos.loc[["10131_left", "10131_right"], "paired"].tolist() == ["False", "False"]
    assert photos.loc[["20_left", "20_right"], "paired"].tolist() == ["True", "True"]
    with TestClient(create_app(paired_bundle, max_upload_mb=1, max_pixels=1_000_000)) as client:
        res = serve_post(client, ("P1_right.jpg", encoded(left)), ("P1_left.jpg", encoded(brighter)))
        assert res.status_code == 400 and "are nearly one picture" in res.json()["error"], res.text


# Other ways one photo comes back laid down otherwise: a viewer's "Flip vertical", a photo turned on its side.
TURNED = {
    "flipped top to bottom": lambda rgb: rgb[::-1],
    "turned 180 degrees": lambda rgb: rgb[::-1, ::-1],
    "turned 90 degrees": lambda rgb: np.rot90(rgb),
}


@pytest.mark.parametrize("way", list(TURNED))
def test_a_flipped_or_turned_copy_as_the_fellow_eye_is_noted_and_not_paired(paired_bundle, tmp_path, way):
    """Probe 34 AX16: 1_right a copy of 1_left flipped top to bottom (or turned 90 or 180 degrees)
    was paired with it (grades 4/4, fused 3.78) without a note; only the left-right mirror was found."""
    folder = tmp_path / "photos"
    folder.mkdir()
    left = save(folder / "1_left.jpeg", fundus(3, 1, "left"))
    save(folder / "1_right.jpeg", np.ascontiguousarray(TURNED[way](decoded(left))), quality=95)
    save(folder / "20_left.jpeg", fundus(2, 5, "left"))  # a real pair beside it: still paired
    save(folder / "20_right.jpeg", fundus(1, 6, "right"))
    photos = read(predict_command(paired_bundle, [folder], out=tmp_path / "p.csv")).set_index("image_id")
    assert photos.loc["1_right", "identity_note"] == (
        f"one photo as two eyes: '1_left', '1_right' of patient '1' are the same picture {way}, given as the left eye "
        "and right eye; which eye it shows is unknown, this copy a patient of its own, '1_right'")
    assert photos.loc[["1_left", "1_right"], "paired"].tolist() == ["False", "False"]
    assert photos.loc[["1_left", "1_right"], "eye"].tolist() == ["", ""]
    assert photos.loc[["20_left", "20_right"], "paired"].tolist() == ["True", "True"]
    assert photos.loc[["20_left", "20_right"], "identity_note"].tolist() == ["", ""]


def test_a_turned_copy_under_another_patient_is_noted_on_both(tiny_bundle, tmp_path):
    """Probe 34 AX16's other case: 10007_left is 10131_left turned 90 degrees (and re-saved)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    original = save(folder / "10131_left.jpeg", fundus(3, 1, "left"))
    save(folder / "10007_left.png", np.ascontiguousarray(np.rot90(decoded(original), -1)))
    save(folder / "10007_right.jpeg", fundus(0, 3))
    photos = read(predict_command(tiny_bundle, [folder], out=tmp_path / "p.csv")).set_index("image_id")
    note = ("same photo under two patients: '10007_left', '10131_left' are the same picture turned 90 degrees, under "
            "patients '10007' and '10131'; kept apart as given, so each patient is judged on it (check that it is not "
            "filed under the wrong patient)")
    assert photos.loc["10007_left", "identity_note"] == photos.loc["10131_left", "identity_note"] == note
    assert photos.loc["10007_right", "identity_note"] == ""


def test_a_group_says_how_each_copy_is_laid_down_against_the_first():
    rgb = fundus(2, 4)
    prints = [picture_print(np.ascontiguousarray(copy)) for copy in
              (rgb, rgb[::-1, ::-1], rgb[:, ::-1], np.rot90(rgb), rgb[::-1], fundus(2, 5))]
    [(positions, ways)] = same_pictures(prints)
    assert positions == [0, 1, 2, 3, 4]
    assert how_alike(list("abcde"), ways) == ("one picture ('b' turned 180 degrees, 'c' mirrored, 'd' turned 90 degrees, "
                                              "'e' flipped top to bottom)")
    # Against the first given: 'c' (mirrored) and 'e' (flipped) are one another turned 180 degrees.
    assert how_alike(["c", "e"], [ways[2], ways[4]]) == "the same picture turned 180 degrees"
    assert how_alike(["b", "a"], [ways[1], ways[0]]) == "the same picture turned 180 degrees"
    assert how_alike(["a", "c"], [ways[0], ways[2]]) == "mirror images"
    assert one_picture_with_any([prints[3], prints[5]], prints[:1]) == [True, False]


def test_different_photos_and_a_patients_two_eyes_are_not_noted(paired_bundle, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for patient in range(1, 7):  # real-looking fellow eyes: one anatomy mirrored, its own vessels and lesions
        for eye in ("left", "right"):
            save(folder / f"{patient}_{eye}.jpeg", fundus(patient % 5, 10 * patient + (eye == "left"), eye))
    photos = read(predict_command(paired_bundle, [folder], out=tmp_path / "p.csv"))
    assert (photos["identity_note"] == "").all()
    assert (photos["paired"] == "True").all()


def test_drgrader_grade_notes_a_mirror_image_given_as_the_other_eye(tiny_bundle):
    rgb = fundus(2, 7, "left")
    preds, patients = drgrader.grade(tiny_bundle, [rgb, np.ascontiguousarray(rgb[:, ::-1]), fundus(0, 8)],
                                     names=["P1_left", "P1_right", "P2_left"])
    preds = preds.set_index("image_id")
    assert PICTURE_COLUMN not in preds
    assert preds.loc["P1_right", "identity_note"].startswith("one photo as two eyes: 'P1_left', 'P1_right' of patient 'P1' "
                                                             "are mirror images")
    assert preds.loc[["P1_left", "P1_right"], "eye"].tolist() == ["", ""]
    assert preds.loc["P2_left", "identity_note"] == ""
    assert sorted(patients["patient_id"]) == ["P1", "P1_right", "P2"]


def probe_folder(folder):
    """Patient 10131's left eye, a PNG copy of it as 10007_left, its mirror image as 10131_right."""
    folder.mkdir()
    left = save(folder / "10131_left.jpeg", fundus(3, 1, "left"))
    save(folder / "10007_left.png", decoded(left))
    save(folder / "10007_right.jpeg", fundus(0, 3))
    save(folder / "10131_right.jpeg", np.ascontiguousarray(decoded(left)[:, ::-1]))
    return folder


def expect_probe_notes(out):
    photos = read(out).set_index("image_id")
    group = ("same photo under two patients: '10007_left', '10131_left', '10131_right' are one picture ('10131_right' "
             "mirrored), under patients '10007' and '10131'")
    for image in ("10007_left", "10131_left", "10131_right"):
        assert photos.loc[image, "identity_note"].startswith(group)
    assert photos.loc["10131_right", "patient_id"] == "10131_right" and photos.loc["10131_right", "eye"] == ""
    assert photos.loc["10007_right", "identity_note"] == ""


def interrupt_after_first_batch(monkeypatch):
    """predict stopped after its first batch: the rest of the photos are graded by the next run."""
    real = predict_workflow.predict_images

    def first_batch_then_stop(bundle, todo, **kwargs):
        real(bundle, todo.iloc[:2], **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(predict_workflow, "predict_images", first_batch_then_stop)


def interrupted_run(bundle, tmp_path, monkeypatch):
    """The probe's folder, predicted into p.csv and interrupted after its first batch of two."""
    folder = probe_folder(tmp_path / "photos")
    out = tmp_path / "p.csv"
    with monkeypatch.context() as patch:
        interrupt_after_first_batch(patch)
        with pytest.raises(KeyboardInterrupt):
            predict_command(bundle, [folder], out=out, batch_size=2)
    return folder, out


def test_a_resumed_run_compares_the_finished_photos_too(tiny_bundle, tmp_path, monkeypatch, caplog):
    folder, out = interrupted_run(tiny_bundle, tmp_path, monkeypatch)
    finished = read(partial_file(out))
    assert len(finished) == 2 and (finished[PICTURE_COLUMN] != "").all()  # kept for the next run to compare
    with caplog.at_level(logging.INFO, logger="drgrader"):
        predict_command(tiny_bundle, [folder], out=out, batch_size=2)
    assert "resuming: 2 of 4 images already done" in caplog.text
    expect_probe_notes(out)
    assert PICTURE_COLUMN not in read(out)


def test_a_resume_file_of_an_earlier_drgrader_without_fingerprints_is_graded_again(tiny_bundle, tmp_path, monkeypatch, caplog):
    folder, out = interrupted_run(tiny_bundle, tmp_path, monkeypatch)
    # As drgrader wrote it before fingerprints: format 2, no fingerprint column.
    read(partial_file(out)).drop(columns=PICTURE_COLUMN).to_csv(partial_file(out), index=False)
    key = json.loads(resume_key_file(out).read_text())
    resume_key_file(out).write_text(json.dumps({**key, "partial_format": 2}))
    with caplog.at_level(logging.INFO, logger="drgrader"):
        predict_command(tiny_bundle, [folder], out=out, batch_size=2)
    assert "kept no picture fingerprints: its 2 finished rows are graded again" in caplog.text
    assert "resuming" not in caplog.text
    expect_probe_notes(out)


def test_only_photos_with_a_picture_are_compared():
    """A blank frame has no fingerprint (two blank frames are not one photo); the frames of one
    DICOM file are never one another's copies (a stereo pair); fingerprints survive their text."""
    rgb = fundus(2, 4)
    assert picture_print(np.zeros((96, 96, 3), np.uint8)) == picture_print(np.full((96, 96, 3), 128, np.uint8)) == ""
    prints = [picture_print(rgb), picture_print(np.ascontiguousarray(rgb[:, ::-1])), picture_print(fundus(2, 5)), "", ""]
    grid = print_grid(prints[0])
    assert grid is not None and abs(float((grid * grid).sum()) - 1) < 1e-5
    assert print_grid("not a fingerprint") is None and print_grid(float("nan")) is None
    assert same_pictures(prints) == [([0, 1], [AS_IS, MIRRORED])]
    assert same_pictures(prints, units=["a.dcm", "a.dcm", "b", "c", "d"]) == []
    [(i, j, distance, way)] = close_pairs([print_grid(p) for p in prints])
    assert (i, j, way) == (0, 1, MIRRORED) and distance < SAME_PICTURE
    # One side against the other (evaluate's training-overlap check): the same pairs, across only.
    assert one_picture_with_any(prints[1:], prints[:1]) == [True, False, False, False]
    assert one_picture_with_any(prints[2:], prints[:2]) == [False, False, False] and one_picture_with_any(prints, []) == [False] * 5


def serve_post(client, right: tuple[str, bytes], left: tuple[str, bytes]):
    return client.post("/api/predict", files={"right": (*right, "image/jpeg"), "left": (*left, "image/jpeg")})


def encoded(rgb: np.ndarray, suffix: str = ".jpg", quality: int = 90) -> bytes:
    ok, data = cv2.imencode(suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


@pytest.mark.parametrize(("left_name", "make_left", "how"), [
    ("P1_left.png", lambda rgb: encoded(rgb, ".png"), "one picture re-saved, converted or resized"),
    ("P1_left.jpg", lambda rgb: encoded(rgb, quality=75), "one picture re-saved, converted or resized"),
    ("P1_left.jpg", lambda rgb: encoded(np.ascontiguousarray(rgb[:, ::-1])), "mirror images"),
    ("P1_left.jpg", lambda rgb: encoded(np.ascontiguousarray(rgb[::-1])), "the same picture flipped top to bottom"),
])
def test_serve_refuses_one_picture_sent_as_both_eyes(tiny_bundle, left_name, make_left, how):
    from drgrader.inference.serve import create_app

    right = encoded(fundus(2, 9))
    with TestClient(create_app(tiny_bundle, max_upload_mb=1, max_pixels=1_000_000)) as client:
        res = serve_post(client, ("P1_right.jpg", right), (left_name, make_left(cv2.cvtColor(cv2.imdecode(
            np.frombuffer(right, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))))
        assert res.status_code == 400, res.text
        assert res.json()["error"] == (f"the 'right' and 'left' photos are one picture (P1_right.jpg, {left_name}: {how}): "
                                       "send a photo of each eye")
        # Two eyes that are two photos are graded.
        res = serve_post(client, ("P1_right.jpg", right), ("P1_left.jpg", encoded(fundus(2, 10, "left"))))
        assert res.status_code == 200, res.text


@pytest.mark.parametrize("method", ["patient", "kfold"])
def test_a_re_saved_copy_under_another_patient_keeps_both_on_one_side_of_the_split(synth_dir, tmp_path, method, caplog):
    # Before (probe 26): a split linked patients by byte-identical files only; patient 11's right eye, a
    # JPEG re-save of patient 10's left, was trained on in one fold and scored in another.
    import shutil

    from conftest import tiny_config

    from drgrader.data.prepare import prepare_data

    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    left = cv2.imread(str(data / "images" / "10_left.jpeg"))
    cv2.imwrite(str(data / "images" / "11_right.jpeg"), left, [cv2.IMWRITE_JPEG_QUALITY, 80])  # other bytes, one picture
    cfg = tiny_config(data, **{"data.cache_dir": str(tmp_path / "cache"), "data.split.method": method})
    folds = range(5) if method == "kfold" else [0]
    for fold in folds:
        cfg.data.split.fold = fold
        with caplog.at_level(logging.WARNING, logger="drgrader"):
            table = prepare_data(cfg.data, tmp_path / f"run-{fold}", progress=False).table
        sides = table.loc[table["patient_id"].isin(["10", "11"]), "split"]
        assert sides.nunique() == 1, (fold, sides.tolist())
        assert "are copies (the same bytes, or the same picture re-saved) under different patients (e.g. '10_left' = '11_right')" in caplog.text
        saved = pd.read_csv(tmp_path / f"run-{fold}" / "split.csv", dtype=str)
        assert saved.loc[saved["patient_id"].isin(["10", "11"]), "split"].nunique() == 1  # what the run records
        assert "picture" not in table  # the fingerprint stays in the cache


def test_evaluate_on_a_data_set_holding_one_picture_under_two_patients_warns_as_a_split_does(tiny_bundle, synth_dir, tmp_path, caplog):
    # Before (probe 31 W1): `evaluate --data D` said nothing of a photo in D twice, under two
    # patients with two grades (data summary and train warned); the figures counted it twice.
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    labels = pd.read_csv(data / "trainLabels.csv")
    grade = int(labels.set_index("image").at["10_left", "level"])
    shutil.copyfile(data / "images" / "10_left.jpeg", data / "images" / "900_left.jpeg")  # a byte copy
    cv2.imwrite(str(data / "images" / "901_left.png"), cv2.imread(str(data / "images" / "11_left.jpeg")))  # a re-save
    extra = pd.DataFrame({"image": ["900_left", "901_left"], "level": [(grade + 3) % 5, 0]})
    pd.concat([labels, extra]).to_csv(data / "trainLabels.csv", index=False)
    bundle = tmp_path / "tiny"
    shutil.copytree(tiny_bundle, bundle)  # evaluate records into the bundle's card: never the session's shared bundle
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        assert main(["evaluate", str(bundle), "--data", str(data), "--out", str(tmp_path / "ev"),
                     "--set", f"data.cache_dir={tmp_path / 'cache'}", "--set", "eval.bootstrap=5"]) == 0
    assert ("2 photo(s) are copies (the same bytes, or the same picture re-saved) under different patients "
            f"(e.g. '10_left' = '900_left'), grades {grade}, {(grade + 3) % 5}: the figures count that picture once per "
            "patient") in caplog.text
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["copies_across_patients"] == [
        {"image_ids": ["10_left", "900_left"], "grades": [grade, (grade + 3) % 5]},
        {"image_ids": ["11_left", "901_left"], "grades": [int(labels.set_index("image").at["11_left", "level"]), 0]},
    ]
    assert (f"2 picture(s) appear under more than one patient (e.g. '10_left' = '900_left', grades {grade}, "
            f"{(grade + 3) % 5})") in (tmp_path / "ev" / "report.md").read_text()  # the report's warnings, not only the log


def test_evaluate_on_a_patient_whose_two_eyes_are_one_picture_warns(tiny_bundle, synth_dir, tmp_path, caplog):
    """Probe 32 B17: 12_right a mirrored re-save of 12_left, graded apart: evaluate took them as two
    eyes, paired, with two grades, without a word (predict notes and never pairs the same files)."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    left = cv2.imread(str(data / "images" / "12_left.jpeg"))
    cv2.imwrite(str(data / "images" / "12_right.jpeg"), left[:, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    bundle = tmp_path / "tiny"
    shutil.copytree(tiny_bundle, bundle)
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        assert main(["evaluate", str(bundle), "--data", str(data), "--out", str(tmp_path / "ev"),
                     "--set", f"data.cache_dir={tmp_path / 'cache'}", "--set", "eval.bootstrap=5"]) == 0
    assert "1 patient(s) have one picture as both eyes (e.g. '12_left' = '12_right'" in caplog.text
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert [g["image_ids"] for g in metrics["one_picture_as_two_eyes"]] == [["12_left", "12_right"]]
    assert "1 patient(s) have one picture as both eyes" in (tmp_path / "ev" / "report.md").read_text()


def test_data_summary_and_a_split_say_when_a_patient_s_two_eyes_are_one_picture(synth_dir, tmp_path, caplog):
    """Probe 32 B17 (left by probe 33): evaluate warned of one picture as both eyes; data summary
    and train, whose paired-eye stage would be fitted on such a pair, said nothing."""
    import shutil

    from drgrader.config import ExperimentConfig
    from drgrader.data.split import make_split
    from drgrader.workflows.data import data_summary

    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    shutil.copy(data / "images" / "12_left.jpeg", data / "images" / "12_right.jpeg")  # the same bytes
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        data_summary(ExperimentConfig.model_validate({"data": {"root": str(data)}}))
    said = "1 patient(s) have one picture as both eyes (e.g. '12_left' = '12_right' of patient '12'"
    assert said in caplog.text
    # A re-saved copy (other bytes): known from the cache's fingerprints, which train passes to the split.
    from drgrader.config import SplitConfig
    from drgrader.data.manifest import read_dataset

    table = read_dataset(data)
    positions = [int(i) for i in table.index[table["image_id"].isin(["13_left", "13_right"])]]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        make_split(table, SplitConfig(), pictures=[positions])
    assert "2 patient(s) have one picture as both eyes" in caplog.text
    grades = table.set_index("image_id")["grade"]
    if grades["12_left"] != grades["12_right"]:  # probe 49 CM5: the two grades said
        assert f"the same bytes or picture, graded {min(grades['12_left'], grades['12_right'])} and" in caplog.text
    # Probe 49 CM4: two patients' copies found twice (by bytes, then by the fingerprint) are no patient's two eyes.
    shutil.copy(data / "images" / "14_left.jpeg", data / "images" / "17_right.jpeg")
    table = read_dataset(data)
    copied = [int(i) for i in table.index[table["image_id"].isin(["14_left", "17_right"])]]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        make_split(table, SplitConfig(), pictures=[copied])
    assert "copies (the same bytes, or the same picture re-saved) under different patients" in caplog.text
    assert "1 patient(s) have one picture as both eyes (e.g. '12_left' = '12_right'" in caplog.text  # 12 alone


def test_evaluate_run_refuses_another_runs_bundle_copied_into_it(tiny_bundle, synth_dir, tmp_path, capsys):
    """Probe 34 BX13: another run's bundle copied into a run folder: `evaluate RUN` reported that
    model's training photos as this run's held-out test split, exit 0."""
    import shutil

    from drgrader.config import ExperimentConfig, save_config
    from drgrader.data.prepare import prepare_data
    from drgrader.evaluation.training_overlap import TRAINING_DIGESTS, digest

    run = tmp_path / "run"
    shutil.copytree(tiny_bundle, run / "bundle")
    manifest = json.loads((run / "bundle" / "bundle.json").read_text())
    manifest["config"]["data"] = {**manifest["config"]["data"], "root": str(synth_dir), "format": "kaggle"}
    (run / "bundle" / "bundle.json").write_text(json.dumps(manifest))  # as if trained on this run's data set
    cfg = ExperimentConfig.model_validate({**manifest["config"], "name": "run"})
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"cache_dir": tmp_path / "cache"})})
    save_config(cfg, run / "config.yaml")
    prepare_data(cfg.data, run, progress=False)
    split = pd.read_csv(run / "manifest.csv", dtype=str).merge(pd.read_csv(run / "split.csv", dtype=str)[["image_id", "split"]])
    test_photos = split.loc[split["split"] == "test", "path"].tolist()
    assert test_photos
    # The bundle's own record says it trained on this run's test photos: it is another run's model.
    (run / "bundle" / TRAINING_DIGESTS).write_text("".join(digest(p) + "\n" for p in test_photos[:2]))
    assert main(["evaluate", str(run), "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert f"was trained or tuned on 2 of the {len(test_photos)} photos of {run}'s test split" in err, err
    assert "`evaluate RUN` would present another run's model's figures" in err and not (tmp_path / "ev").exists()
    # A run folder whose data settings are not the bundle's (another split): refused before any photo is read.
    (run / "bundle" / TRAINING_DIGESTS).unlink()
    other = cfg.data.split.model_copy(update={"seed": cfg.data.split.seed + 1})
    save_config(cfg.model_copy(update={"data": cfg.data.model_copy(update={"split": other})}), run / "config.yaml")
    assert main(["evaluate", str(run), "--out", str(tmp_path / "ev")]) == 2
    assert "is not the run" in (err := capsys.readouterr().err) and "data.split.seed" in err, err


def test_evaluate_on_the_training_photos_re_saved_is_not_external_when_the_run_folder_is_known(
        tiny_bundle, synth_dir, tmp_path, caplog):
    """Probe 32 B7: the training photos re-saved as PNG (any re-encode, a resized copy) were an
    "external" evaluation, filed on the card: the overlap check compared paths and bytes only,
    though the run folder's pictures.csv holds every training photo's fingerprint."""
    import shutil

    from conftest import tiny_config

    from drgrader.data.prepare import prepare_data
    from drgrader.evaluation.training_overlap import TRAINING_DIGESTS, write_training_digests

    run = tmp_path / "run"
    run.mkdir()
    cfg = tiny_config(synth_dir, **{"data.cache_dir": str(tmp_path / "cache")})
    prepare_data(cfg.data, run, progress=False)  # the run's manifest.csv, split.csv and pictures.csv, as train writes them
    (run / "config.yaml").write_text("name: run\n")
    shutil.copytree(tiny_bundle, run / "bundle")
    split = pd.read_csv(run / "split.csv", dtype=str)
    seen = int(split["split"].isin(["train", "val"]).sum())
    assert 0 < seen < len(split)
    resaved = tmp_path / "resaved"
    (resaved / "images").mkdir(parents=True)
    for photo in sorted((synth_dir / "images").iterdir()):
        picture = cv2.imread(str(photo))
        if photo.stem.startswith("1"):  # some resized, some mirrored: the same picture still
            picture = cv2.resize(picture, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
        if photo.stem.startswith("2"):
            picture = picture[:, ::-1]
        cv2.imwrite(str(resaved / "images" / f"{photo.stem}.png"), picture)
    shutil.copyfile(synth_dir / "trainLabels.csv", resaved / "trainLabels.csv")

    def evaluate(model, out):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="drgrader"):
            assert main(["evaluate", str(model), "--data", str(resaved), "--out", str(tmp_path / out),
                         "--set", f"data.cache_dir={tmp_path / 'cache'}", "--set", "eval.bootstrap=5"]) == 0
        return json.loads((tmp_path / out / "metrics.json").read_text())["training_overlap"]

    overlap = evaluate(run / "bundle", "ev")
    assert overlap["photos"] == seen and overlap["of"] == len(split), overlap
    assert (f"{seen} of {len(split)} evaluated photos were used to train or tune this model (found by path, bytes or "
            f"picture in its run folder {run} (train and validation splits)") in caplog.text
    card = run / "bundle" / "MODEL_CARD.md"
    assert not card.exists() or "<!-- drgrader:external" not in card.read_text(encoding="utf-8")
    # A cross-validation's folds saw every photo.
    cv = tmp_path / "cv"
    (cv / "fold-0").mkdir(parents=True)
    for name in ("manifest.csv", "split.csv", "pictures.csv"):
        shutil.copyfile(run / name, cv / "fold-0" / name)
    (cv / "cv.json").write_text('{"folds": 1}')
    (cv / "config.yaml").write_text("name: cv\n")
    shutil.copytree(tiny_bundle, cv / "bundle")
    assert evaluate(cv, "ev-cv")["photos"] == len(split)
    # Away from its run, with only the digests of its photos' bytes: a re-saved copy is not found (documented).
    bare = tmp_path / "bare"
    shutil.copytree(tiny_bundle, bare)
    write_training_digests(run, bare)
    assert (bare / TRAINING_DIGESTS).is_file() and evaluate(bare, "ev-bare")["photos"] == 0


def test_an_evaluations_report_describes_the_model_it_evaluated(tmp_path):
    """Probe 35 BY11: `evaluate RUN` with another run's bundle of the same data settings (another
    seed) showed the run's training settings in its report, not the model's."""
    from drgrader.config import ExperimentConfig, config_to_dict
    from drgrader.workflows.evaluate import _model_config

    run_cfg = ExperimentConfig.model_validate({"data": {"root": str(tmp_path)}, "train": {"seed": 42}})
    model_cfg = config_to_dict(ExperimentConfig.model_validate({"data": {"root": "elsewhere"}, "train": {"seed": 1},
                                                                "model": {"backbone": "resnet18"}}))
    shown = _model_config(run_cfg, {"config": model_cfg})
    assert shown.train.seed == 1 and shown.model.backbone == "resnet18" and shown.data.root == tmp_path
    assert _model_config(run_cfg, {}) is run_cfg  # a bundle without its config: the run's, as before


def test_a_split_file_putting_copies_on_two_sides_is_warned_and_carried_to_the_report_and_card(synth_dir, tmp_path, caplog, capsys):
    # Before (probe 58 CV1): a split file putting a byte copy of a training photo (filed under another
    # patient) in the test split: train said nothing, its held-out figures and card counted it, while
    # `data summary` counted it as crossing splits; `evaluate RUN` then blamed "a bundle copied in".
    import shutil

    from conftest import tiny_config

    from drgrader.config import save_config
    from drgrader.data.manifest import read_manifest

    root = tmp_path / "data"
    shutil.copytree(synth_dir, root)
    table = read_manifest(tiny_config(root).data).table
    patients = sorted(table["patient_id"].unique(), key=int)
    sides = {p: "train" if k < 24 else "val" if k < 32 else "test" for k, p in enumerate(patients)}
    trained = table.loc[table["patient_id"] == patients[0], "image_id"].iloc[0]
    shutil.copy(root / "images" / f"{trained}.jpeg", root / "images" / "999_left.jpeg")  # a byte copy, another patient
    labels = pd.read_csv(root / "trainLabels.csv")
    pd.concat([labels, pd.DataFrame({"image": ["999_left"], "level": [0]})]).to_csv(root / "trainLabels.csv", index=False)
    split = table[["image_id", "patient_id"]].assign(split=table["patient_id"].map(sides))
    split = pd.concat([split, pd.DataFrame({"image_id": ["999_left"], "patient_id": ["999"], "split": ["test"]})])
    split.to_csv(tmp_path / "split.csv", index=False)
    config = tmp_path / "tiny.yaml"
    save_config(tiny_config(root, **{"train.epochs": 1, "eval.bootstrap": 5, "data.cache_dir": tmp_path / "cache",
                                     "data.split.file": tmp_path / "split.csv"}), config)
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        assert main(["train", str(config), "--out", str(run), "--progress", "log"]) == 0
    said = (f"data.split.file {tmp_path / 'split.csv'} puts copies (the same bytes, or the same picture re-saved) on two "
            f"sides of the split: 1 photo(s) have a copy in another split (e.g. '{trained}' in train = '999_left' in test), "
            "so the test figures count a training photo; the split stands as given")
    assert said in caplog.text
    warnings = json.loads((run / "metrics.json").read_text())["data"]["warnings"]
    assert any(said in w for w in warnings)
    assert said in (run / "report.md").read_text() and said in (run / "bundle" / "MODEL_CARD.md").read_text()
    assert (pd.read_csv(run / "split.csv", dtype=str).set_index("image_id")["split"]["999_left"]) == "test"  # the split stands
    # evaluate RUN refuses it still, naming the copy rather than "a bundle copied in".
    capsys.readouterr()
    assert main(["evaluate", str(run), "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert (f"{run}'s test split holds 1 byte copies of its own training or validation photos (e.g. "
            f"{root / 'images' / '999_left.jpeg'} = {root / 'images' / f'{trained}.jpeg'}): its split (split.csv) put copies "
            "on two sides") in err, err
    assert "a bundle copied in" not in err


def test_a_split_file_putting_a_re_saved_copy_on_two_sides_is_warned(synth_dir, tmp_path, caplog):
    # Probe 58 CV1, the same picture re-saved (other bytes): found by the cache's fingerprints.
    import shutil

    from conftest import tiny_config

    from drgrader.data.prepare import prepare_data, say_copies_across_splits
    from drgrader.data.split import save_split

    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    left = cv2.imread(str(data / "images" / "10_left.jpeg"))
    cv2.imwrite(str(data / "images" / "11_right.jpeg"), left, [cv2.IMWRITE_JPEG_QUALITY, 80])  # other bytes, one picture
    cfg = tiny_config(data, **{"data.cache_dir": str(tmp_path / "cache")})
    manifest = prepare_data(cfg.data, progress=False).table
    save_split(tmp_path / "split.csv", manifest, manifest["patient_id"].map(lambda p: "val" if p == "11" else "train"))
    given = cfg.data.model_copy(update={"split": cfg.data.split.model_copy(update={"file": tmp_path / "split.csv"})})
    prepared = prepare_data(given, progress=False)
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        say_copies_across_splits(prepared, tmp_path / "split.csv")
    said = ("1 photo(s) have a copy in another split (e.g. '10_left' in train = '11_right' in val), so the validation "
            "figures that chose the checkpoint and thresholds count a training photo")
    assert said in caplog.text and any(said in w for w in prepared.warnings)

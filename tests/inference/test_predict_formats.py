"""`drgrader predict` on DICOM, GIF, WebP and BMP photos, bad DICOM files, and eyes paired from
DICOM tags and file names; patient data in DICOM headers never reaches the outputs."""

from __future__ import annotations

import io
import logging
import warnings
from contextlib import redirect_stderr

import numpy as np
import pandas as pd
import pytest
from dicom_files import BIRTH_DATE, PATIENT_NAME, transcode_with_gdcm, write_dicom, write_encapsulated, write_jpeg_dicom
from PIL import Image
from pydicom.pixels import get_decoder
from pydicom.uid import RLELossless

from drgrader.data.images import ImageReadError, read_image
from drgrader.data.inputs import collect_inputs
from drgrader.inference.bundle import load_bundle
from drgrader.synth import make_fundus
from drgrader.workflows.predict import predict_command

SCORES = ["p0", "p1", "p2", "p3", "p4", "expected_grade", "score_any", "score_referable"]
SECRETS = [*PATIENT_NAME.replace("^", " ").split(), BIRTH_DATE, "Secret Eye Clinic"]
NO_DECODER = next((uid for uid in ("1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.80") if not get_decoder(uid).is_available), None)


def fundus(grade: int, seed: int) -> np.ndarray:
    return make_fundus(grade, np.random.default_rng(seed), height=96)


def read_csv(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"patient_id": str, "image_id": str}, keep_default_na=False, na_values=[""])


@pytest.fixture(scope="module")
def dicom_run(tiny_bundle, tmp_path_factory):
    """One predict run over a folder of DICOM variants, bad DICOM files and GIF/WebP/BMP photos;
    everything it logs, warns and prints to stderr is kept."""
    root = tmp_path_factory.mktemp("formats")
    folder = root / "photos"
    folder.mkdir()
    source = fundus(3, 1)
    Image.fromarray(source).save(folder / "source.png")
    exam_a = write_dicom(folder / "exam_a.dcm", source, patient_id="P001", laterality="L")  # from source.png
    write_dicom(folder / "exam_b.dcm", fundus(1, 2), compress=RLELossless, patient_id="P001", laterality="R")
    write_dicom(folder / "multi.dcm", np.stack([fundus(g, 10 + g) for g in (0, 2, 4)]), patient_id="P002", laterality="L")
    write_jpeg_dicom(folder / "jpeg.dcm", [fundus(2, 3)], patient_id="P003")
    write_dicom(folder / "export" / "IM000001", fundus(0, 4), patient_id="P004", laterality="R")  # no extension
    write_dicom(folder / "grey.dcm", fundus(2, 5)[:, :, 1].copy(), photometric="MONOCHROME2")
    if NO_DECODER:
        write_encapsulated(folder / "nodecoder.dcm", [bytes(300)], height=96, width=144, transfer_syntax=NO_DECODER)
    good = exam_a.read_bytes()
    (folder / "truncated.dcm").write_bytes(good[: len(good) // 2])
    (folder / "garbage.dcm").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    lossless = None
    try:  # JPEG lossless (GDCM), without tags: its own patient-less row
        lossless = transcode_with_gdcm(write_dicom(root / "untagged.dcm", source), folder / "lossless.dcm")
    except ImportError:
        pass
    Image.fromarray(fundus(1, 6)).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.gif")
    frames = [Image.fromarray(fundus(g, 20 + g)) for g in (2, 0)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
    Image.fromarray(fundus(2, 7)).save(folder / "lossless.webp", lossless=True)
    Image.fromarray(fundus(2, 8)).save(folder / "photo.bmp")
    (folder / "notes.txt").write_text("not a photo")

    log_text, stderr = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(log_text)
    root_logger = logging.getLogger()
    old_level = root_logger.level
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.DEBUG)
    try:
        with warnings.catch_warnings(record=True) as caught, redirect_stderr(stderr):
            warnings.simplefilter("always")
            out = predict_command(tiny_bundle, [folder], out=root / "pred.csv", batch_size=4)
    finally:
        root_logger.removeHandler(handler)
        root_logger.setLevel(old_level)
    said = log_text.getvalue() + stderr.getvalue() + "\n".join(str(w.message) for w in caught)
    return {"folder": folder, "out": out, "said": said, "lossless": lossless}


def test_every_format_graded_and_bad_dicom_files_are_error_rows(dicom_run):
    rows = read_csv(dicom_run["out"]).set_index("image_id")
    errors = rows["error"].fillna("")
    assert "not a DICOM file" in errors["garbage"]
    assert "truncated" in errors["truncated"]
    assert "an animation (2 frames) where one photo is expected" in errors["animated"]
    expected_bad = {"garbage", "truncated", "animated"}
    if NO_DECODER:
        assert NO_DECODER in errors["nodecoder"] and "decoder" in errors["nodecoder"]
        expected_bad.add("nodecoder")
    assert set(errors[errors != ""].index) == expected_bad  # nothing else lost
    graded = rows[errors == ""]
    assert graded["grade"].between(0, 4).all() and graded[SCORES].notna().all().all()
    # lossless.webp and lossless.dcm: two files, two image ids (named by their extension when both are there)
    expected = {"source", "exam_a", "exam_b", "jpeg", "IM000001", "grey", "palette", "photo",
                "multi#frame1", "multi#frame2", "multi#frame3"}
    expected |= {"lossless.webp", "lossless.dcm"} if dicom_run["lossless"] else {"lossless"}
    assert expected <= set(graded.index)
    assert "notes" not in rows.index


def test_dicom_and_the_png_it_came_from_give_the_same_prediction(dicom_run):
    rows = read_csv(dicom_run["out"]).set_index("path")
    folder = dicom_run["folder"]
    copies = [folder / "exam_a.dcm"] + ([dicom_run["lossless"]] if dicom_run["lossless"] else [])
    png = rows.loc[str(folder / "source.png")]
    for copy in copies:
        dicom = rows.loc[str(copy)]
        assert dicom["grade"] == png["grade"]
        np.testing.assert_allclose(dicom[SCORES].to_numpy(float), png[SCORES].to_numpy(float), rtol=0, atol=1e-6)


def test_multi_frame_rows_and_an_animation_refused(dicom_run):
    rows = read_csv(dicom_run["out"]).set_index("image_id")
    folder = dicom_run["folder"]
    for k in (1, 2, 3):
        assert rows.loc[f"multi#frame{k}", "path"] == f"{folder / 'multi.dcm'}#frame{k}"
        assert (rows.loc[f"multi#frame{k}", "patient_id"], rows.loc[f"multi#frame{k}", "eye"]) == ("P002", "left")
    assert rows.loc["multi#frame1", "p0"] != rows.loc["multi#frame3", "p0"]  # different photos
    # An animation is refused, as a multi-page TIFF is: which frame is the photo? (Before: its first frame
    # was graded, the rest dropped without a word; probe 25.)
    with Image.open(folder / "animated.gif") as gif:
        first = np.array(gif.convert("RGB"))
        gif.seek(1)
        assert not np.array_equal(first, np.array(gif.convert("RGB")))
    with pytest.raises(ImageReadError, match="an animation"):
        read_image(folder / "animated.gif")


def test_dicom_tags_pair_the_eyes(dicom_run):
    rows = read_csv(dicom_run["out"]).set_index("image_id")
    assert rows.loc[["exam_a", "exam_b"], "patient_id"].tolist() == ["P001", "P001"]
    assert rows.loc[["exam_a", "exam_b"], "eye"].tolist() == ["left", "right"]
    assert rows.loc["IM000001", "patient_id"] == "P004" and rows.loc["IM000001", "eye"] == "right"
    # No PatientID, no pattern in the name: a patient of its own, said so.
    assert rows.loc["grey", "patient_id"] == "grey" and rows.loc["grey", "identity_note"].startswith("no patient:")
    patients = read_csv(dicom_run["out"].with_name("pred_patients.csv")).set_index("patient_id")
    # P001: exam_a, exam_b and truncated.dcm (half of exam_a, whose header still names P001): every photo counted
    assert patients.loc["P001", "images"] == 3 and not patients.loc["P001", "all_gradable"]
    assert patients.loc["P002", "images"] == 3
    assert {"P001", "P002", "P003", "P004"} <= set(patients.index)


def test_patient_data_in_dicom_headers_never_reaches_outputs(dicom_run):
    texts = [dicom_run["out"].read_text(), dicom_run["out"].with_name("pred_patients.csv").read_text(), dicom_run["said"]]
    for text in texts:
        for secret in SECRETS:
            assert secret not in text
    assert "P001" in texts[0]  # the patient id is what pairs the eyes
    assert "predicted" in dicom_run["said"] and "skipped 1 files" in dicom_run["said"]  # the log was captured


def test_file_name_patterns_pair_the_eyes(tiny_bundle, tmp_path):
    folder = tmp_path / "clinic"
    folder.mkdir()
    names = {"Patient001_L.jpg": 2, "Patient001_R.jpg": 0, "Patient002-OD.png": 1, "Patient002 os.webp": 3, "lone.jpg": 1}
    for seed, (name, grade) in enumerate(names.items()):
        Image.fromarray(fundus(grade, 30 + seed)).save(folder / name, quality=95)  # good photos (q75 of a 57 px fundus: a compressed copy)
    table = collect_inputs([folder]).set_index("image_id")
    assert table.loc["Patient001_L", ["patient_id", "eye"]].tolist() == ["Patient001", "left"]
    assert table.loc["Patient002 os", ["patient_id", "eye"]].tolist() == ["Patient002", "left"]
    assert table.loc["Patient002-OD", ["patient_id", "eye"]].tolist() == ["Patient002", "right"]
    assert table.loc["lone", ["patient_id", "eye"]].tolist() == ["lone", ""]  # a patient of its own (identity_note)

    bundle = load_bundle(tiny_bundle)
    # A paired-eye stage (issue 9) that averages the two eyes' expected grades.
    bundle.manifest["paired_eyes"] = {
        "model": {"inputs": ["expected_grade"], "coef": [0.5, 0.5, 0.0, 0.0], "intercept": 0.0,
                  "single_coef": [1.0], "single_intercept": 0.0},
        "thresholds": {"cutpoints": [0.5, 1.5, 2.5, 3.5], "any_dr": 0.5, "referable": 1.5},
    }
    out = predict_command(bundle, [folder], out=tmp_path / "p.csv")
    rows = read_csv(out).set_index("image_id")
    assert rows.loc[["Patient001_L", "Patient001_R", "Patient002-OD", "Patient002 os"], "paired"].all()
    assert not rows.loc["lone", "paired"]
    assert rows.loc["Patient001_L", "fused_grade"] == pytest.approx(rows.loc[["Patient001_L", "Patient001_R"], "expected_grade"].mean())
    patients = read_csv(tmp_path / "p_patients.csv").set_index("patient_id")
    assert sorted(patients.index) == ["Patient001", "Patient002", "lone"]
    assert patients["images"].tolist() == [2, 2, 1]
    # The patients file shows the fused grade its decision stood on beside each eye's own scores.
    for patient, photos in rows.groupby("patient_id"):
        assert patients.loc[patient, "fused_grade"] == pytest.approx(photos["fused_grade"].max())
        assert patients.loc[patient, "expected_grade"] == pytest.approx(photos["expected_grade"].max())


def test_serve_grades_a_dicom_upload_as_predict_does(tiny_bundle, tmp_path):
    from fastapi.testclient import TestClient

    from drgrader.inference.serve import create_app

    path = write_dicom(tmp_path / "eye.dcm", fundus(3, 40), patient_id="P001", laterality="L")
    multi = write_dicom(tmp_path / "multi.dcm", np.stack([fundus(0, 41), fundus(1, 42)]))
    with TestClient(create_app(tiny_bundle)) as client:
        res = client.post("/api/predict", files={"file": ("eye.dcm", path.read_bytes(), "application/dicom")})
        assert res.status_code == 200, res.text
        body = res.json()
        bad = client.post("/api/predict", files={"file": ("multi.dcm", multi.read_bytes(), "application/dicom")})
    row = read_csv(predict_command(tiny_bundle, [path], out=tmp_path / "p.csv")).iloc[0]
    assert body["grade"] == row["grade"] and (body["height"], body["width"]) == (96, 144)
    assert body["score_referable"] == pytest.approx(row["score_referable"], abs=1e-6)
    assert not any(secret in res.text for secret in SECRETS)
    assert bad.status_code == 400 and "multi-frame DICOM (2 frames)" in bad.json()["error"]


def test_data_readers_list_dicom_gif_and_webp(tmp_path):
    from drgrader.data.manifest import read_dataset

    root = tmp_path / "graded"
    write_dicom(root / "0" / "a.dcm", fundus(0, 50))
    (root / "2").mkdir()
    Image.fromarray(fundus(2, 51)).save(root / "2" / "b.gif")
    Image.fromarray(fundus(2, 52)).save(root / "2" / "c.webp")
    manifest = read_dataset(root, "folders")
    assert sorted(manifest["image_id"]) == ["a", "b", "c"]
    assert all(read_image(path).shape == (96, 144, 3) for path in manifest["path"])

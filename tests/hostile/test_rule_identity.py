"""Rule 2 of issue 22: identity is never merged or guessed silently. Patient and eye come from one
resolver (drgrader.data.identity) for `predict` and `drgrader.api.grade`; every conflict it
resolves is a note in the photos CSV and the patients file and one console warning, and no photo
is ever left out of the patients file."""

from __future__ import annotations

import io
import logging
import os
import re
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from dicom_files import write_dicom
from PIL import Image

import drgrader
from drgrader.cli import main
from drgrader.data.eyes import patient_id
from drgrader.data.identity_notes import camera_counter, warn_identity
from drgrader.data.inputs import collect_inputs
from drgrader.data.manifest import DataError, read_dataset
from drgrader.synth import make_fundus

from .corpus import photo_bytes


def read(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def identity_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "see identity_note" in r.getMessage()]


def test_the_same_name_in_two_folders_is_two_patients_not_one_with_three_eyes(tiny_bundle, tmp_path, caplog):
    for folder, names in (("clinic_a", ["10_left", "10_right", "11_left"]), ("clinic_b", ["10_left"])):
        (tmp_path / folder).mkdir()
        for k, name in enumerate(names):
            (tmp_path / folder / f"{name}.jpeg").write_bytes(photo_bytes(k % 5, k + 10 * len(folder)))
    out = tmp_path / "p.csv"
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        assert main(["predict", str(tiny_bundle), str(tmp_path / "clinic_a"), str(tmp_path / "clinic_b"), "--out", str(out)]) == 0
    photos = read(out).set_index("path")
    patients = read(tmp_path / "p_patients.csv").set_index("patient_id")
    assert sorted(patients.index) == ["11", "clinic_a/10", "clinic_b/10"]  # no patient "10" with three photos
    assert patients.loc["clinic_a/10", "images"] == "2" and patients.loc["clinic_b/10", "images"] == "1"
    b = photos.loc[str(tmp_path / "clinic_b" / "10_left.jpeg")]
    assert b["image_id"] == "clinic_b/10_left" and photos.loc[str(tmp_path / "clinic_a" / "10_left.jpeg"), "image_id"] == "clinic_a/10_left"
    assert b["patient_id"] == "clinic_b/10" and b["identity_note"].startswith("same eye in two folders: the left eye of patient '10'")
    assert "taken as a patient per folder" in patients.loc["clinic_a/10", "identity_note"]
    assert photos.loc[str(tmp_path / "clinic_a" / "11_left.jpeg"), "identity_note"] == ""  # nothing to say
    [warning] = identity_warnings(caplog)
    assert "3 of 4 photos" in warning and "same eye in two folders 3" in warning


def test_eyes_kept_in_folders_of_their_own_stay_one_patient(tmp_path):
    # left/10_left.jpeg and right/10_right.jpeg: no eye is named twice, so nothing to split.
    for k, eye in enumerate(("left", "right")):
        (tmp_path / eye).mkdir()
        (tmp_path / eye / f"10_{eye}.jpeg").write_bytes(photo_bytes(1, k))
    table = collect_inputs([tmp_path])
    assert table["patient_id"].tolist() == ["10", "10"] and table["identity_note"].tolist() == ["", ""]


def test_one_patients_eyes_in_two_clinics_folders_are_noted(tmp_path):
    """clinicA/10131_left and clinicB/10131_right were one patient without a word, while one eye
    in two folders is split per folder (probe 23, W8)."""
    for k, (folder, name) in enumerate((("clinicA", "10131_left"), ("clinicB", "10131_right"), ("clinicA", "7_left"),
                                        ("clinicA", "7_right"))):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / f"{name}.jpeg").write_bytes(photo_bytes(k % 3, k))
    table = collect_inputs([tmp_path / "clinicA", tmp_path / "clinicB"]).set_index("image_id")
    assert table.loc[["10131_left", "10131_right"], "patient_id"].tolist() == ["10131", "10131"]
    note = ("one patient in two folders: the eyes of patient '10131' are in 2 folders (clinicA/10131_left, clinicB/10131_right); "
            "taken as one patient's eyes (if the folders number patients alike, give the patients in a CSV)")
    assert table.loc["10131_left", "identity_note"] == table.loc["10131_right", "identity_note"] == note
    assert table.loc[["7_left", "7_right"], "identity_note"].tolist() == ["", ""]
    # Probe 30 C5: from a CSV (whose image ids keep the folder) the note said clinicA/clinicA/10131_left.
    (tmp_path / "list.csv").write_text("image\nclinicA/10131_left.jpeg\nclinicB/10131_right.jpeg\n")
    listed = collect_inputs([tmp_path / "list.csv"])
    assert listed["identity_note"].tolist() == [note, note]


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    """One folder of every conflict: two photos of one eye, three of one eye, a name with both
    eyes, a name without a patient, a DICOM file whose laterality contradicts its name, and a
    CSV whose eye contradicts the name and whose patient contradicts the DICOM PatientID."""
    folder = tmp_path_factory.mktemp("identity") / "clinic"
    folder.mkdir()
    names = ["7_left.jpeg", "7_L.png", "7_right.jpeg", "8_right.jpeg", "8_R.png", "8_OD.jpeg", "P9_OD_OS.jpeg",
             "scan.jpeg", "12_right.jpeg"]
    for k, name in enumerate(names):
        Image.fromarray(make_fundus(k % 5, np.random.default_rng(k), height=96)).save(folder / name, quality=95)  # q75: a compressed copy at this size
    write_dicom(folder / "P5_left.dcm", make_fundus(2, np.random.default_rng(50), height=96), patient_id="P5", laterality="R")
    write_dicom(folder / "exam.dcm", make_fundus(1, np.random.default_rng(51), height=96), patient_id="D1", laterality="L")
    pd.DataFrame({"image": ["clinic/12_right.jpeg", "clinic/exam.dcm"], "patient_id": ["", "C1"], "eye": ["left", ""]}).to_csv(
        folder.parent / "list.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def graded(clinic, tiny_bundle, tmp_path_factory):
    """predict over the folder (its photos) and the CSV (two of them again, with their cells)."""
    out = tmp_path_factory.mktemp("identity-out") / "p.csv"
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("drgrader").addHandler(handler)
    try:
        assert main(["predict", str(tiny_bundle), str(clinic), str(clinic.parent / "list.csv"), "--out", str(out)]) == 0
    finally:
        logging.getLogger("drgrader").removeHandler(handler)
    photos = read(out)
    photos["name"] = photos["path"].map(lambda p: p.rsplit("/", 1)[-1])
    return photos.set_index("name"), read(out.with_name("p_patients.csv")).set_index("patient_id"), records


def test_every_photo_is_in_the_patients_file(graded):
    photos, patients, _ = graded
    assert len(photos) == 11  # each path once, though the CSV lists two of the folder's photos again
    assert set(photos["patient_id"]) == set(patients.index)
    assert patients["images"].astype(int).sum() == len(photos)


def test_several_photos_of_one_eye_are_all_kept_and_the_worst_decides(graded):
    photos, patients, _ = graded
    sevens = photos.loc[["7_left.jpeg", "7_L.png"]]
    assert (sevens["identity_note"].str.startswith("several photos of one eye: 2 photos of the left eye of patient '7'")).all()
    eights = photos.loc[["8_right.jpeg", "8_R.png", "8_OD.jpeg"]]
    assert eights["identity_note"].str.contains("3 photos of the right eye of patient '8'; all kept, the worst decides").all()
    for patient, eye, rows in (("7", "left", sevens), ("8", "right", eights)):
        everyone = photos[photos["patient_id"] == patient]
        assert patients.loc[patient, "images"] == str(len(everyone)) == str(len(rows) + (patient == "7"))  # all kept
        scores = everyone["score_referable"].astype(float)
        assert float(patients.loc[patient, "score_referable"]) == pytest.approx(scores.max())
        assert "several photos of one eye" in patients.loc[patient, "identity_note"]
        reason = patients.loc[patient, "reason"]
        assert "photo " not in reason  # the photos of one eye are one eye, not an eye each
        worst = rows["score_referable"].astype(float).max()  # the eye is judged by its worst photo
        if worst >= 0.5:  # the tiny bundle's referable threshold: a second, milder photo never outvotes it
            assert patients.loc[patient, "decision"] != "negative"
        elif patients.loc[patient, "decision"] == "negative":
            assert f"{eye} eye {worst:.2f}" in reason
    assert photos.loc["7_right.jpeg", "identity_note"] == ""  # the fellow eye: one photo, nothing to say


def test_names_it_cannot_read_are_patients_of_their_own_said_so(graded):
    photos, patients, _ = graded
    both = photos.loc["P9_OD_OS.jpeg"]
    assert (both["patient_id"], both["eye"]) == ("P9_OD_OS", "")  # not patient "P9_OD", right... nor "left"
    assert both["identity_note"].startswith("both eyes in the name: 'P9_OD_OS' names the left and the right eye")
    scan = photos.loc["scan.jpeg"]
    assert scan["patient_id"] == "scan" and scan["identity_note"].startswith("no patient: 'scan' has no CSV patient")
    assert "no patient" in patients.loc["scan", "identity_note"]


def test_contradictory_csv_dicom_and_name_evidence_is_not_guessed(graded):
    photos, patients, _ = graded
    dicom = photos.loc["P5_left.dcm"]  # laterality R, name says left
    assert (dicom["patient_id"], dicom["eye"]) == ("P5", "")
    assert dicom["identity_note"] == ("contradictory eye: for 'P5_left' the DICOM laterality says right, the file name "
                                      "says left; the eye is left unknown")
    listed = photos.loc["12_right.jpeg"]  # the CSV says left
    assert (listed["patient_id"], listed["eye"]) == ("12", "")
    assert "the CSV says left, the file name says right" in listed["identity_note"]
    exam = photos.loc["exam.dcm"]  # CSV patient C1, DICOM PatientID D1
    assert exam["patient_id"] == "C1" and exam["eye"] == "left"
    assert "contradictory patient: for 'exam' the CSV says 'C1', the DICOM PatientID 'D1'; the CSV's is taken" in exam["identity_note"]
    assert "contradictory eye" in patients.loc["P5", "identity_note"]


def test_one_summary_warning_counts_every_kind(graded):
    *_, records = graded
    [warning] = [r.getMessage() for r in records if "see identity_note" in r.getMessage()]
    for kind in ("several photos of one eye 5", "both eyes in the name 1", "no patient 2", "contradictory eye 2",
                 "contradictory patient 1"):
        assert kind in warning


def test_the_python_api_resolves_and_notes_the_same(graded, clinic, tiny_bundle, caplog):
    photos, patients, _ = graded
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        api_photos, api_patients = drgrader.grade(tiny_bundle, [clinic, clinic.parent / "list.csv"])
    assert api_photos["identity_note"].tolist() == photos["identity_note"].tolist()
    assert api_patients["identity_note"].tolist() == patients["identity_note"].tolist()
    assert len(identity_warnings(caplog)) == 1
    # In-memory photos: a repeated name would have replaced a photo; refused instead.
    rgb = make_fundus(1, np.random.default_rng(0), height=96)
    with pytest.raises(ValueError, match=r"the name '10_left' is given to two photos"):
        drgrader.grade(tiny_bundle, [rgb, rgb], names=["10_left", "10_left"])


def test_grade_refuses_names_in_no_order_and_says_when_no_photo_is_given(tiny_bundle):
    # Probe 29: names={'P1_left', 'P2_left'} named the photos in hash order, so which patient was
    # urgent changed from one Python process to the next; a dict was taken by its keys.
    rgb = make_fundus(1, np.random.default_rng(0), height=96)
    for unordered in ({"P1_left", "P2_left"}, frozenset({"P1_left", "P2_left"}), {"P1_left": 1, "P2_left": 2}):
        with pytest.raises(ValueError, match=r"^names: give a list of names, one per photo in the order of the photos, not a "):
            drgrader.grade(tiny_bundle, [rgb, rgb[:, ::-1]], names=unordered)
    photos, _ = drgrader.grade(tiny_bundle, [rgb, rgb[:, ::-1]], names=(n for n in ("P1_left", "P2_left")))
    assert photos["image_id"].tolist() == ["P1_left", "P2_left"]  # a generator: in its order (before: TypeError len())
    with pytest.raises(ValueError, match=r"^no photos given: "):  # before: "no photos found in " (ending on nothing)
        drgrader.grade(tiny_bundle, [])


def test_two_csv_rows_that_disagree_on_one_photo_are_noted_not_the_first_taken_silently(tmp_path):
    (tmp_path / "x1.jpeg").write_bytes(photo_bytes(1, 1))
    (tmp_path / "x2.jpeg").write_bytes(photo_bytes(2, 2))
    (tmp_path / "a.csv").write_text("image,patient_id,eye\nx1.jpeg,P1,left\nx1.jpeg,P2,right\nx2.jpeg,P1,right\n")
    (tmp_path / "b.csv").write_text("image,patient_id,eye\nx2.jpeg,P3,right\n")
    table = collect_inputs([tmp_path / "a.csv", tmp_path / "b.csv"]).set_index("image_id")
    assert len(table) == 2  # each photo once
    x1, x2 = table.loc["x1"], table.loc["x2"]
    assert (x1["patient_id"], x1["eye"]) == ("P1", "")  # the eye is not guessed
    assert "contradictory patient: for 'x1' the CSV says 'P1' and 'P2'; the first is taken" in x1["identity_note"]
    assert "contradictory eye: for 'x1' the CSV says left, the CSV again says right; the eye is left unknown" in x1["identity_note"]
    assert x2["eye"] == "right" and "the CSV says 'P1' and 'P3'" in x2["identity_note"]  # two CSVs alike


def test_a_photo_named_only_by_its_eye_listed_as_the_other_eye_is_noted(tmp_path):
    # Probe 36 AZ2: OD.jpg listed as the left eye (a patient-per-folder camera export) was graded as
    # the left eye and paired; the referral then named the wrong eye.
    for k, name in enumerate(("OD.jpg", "OS.jpg", "5001_right_20240101.jpeg", "5001_left_20240101.jpeg")):
        (tmp_path / name).write_bytes(photo_bytes(k % 3, k))
    (tmp_path / "l.csv").write_text("image,patient_id,eye\nOD.jpg,P1,left\nOS.jpg,P1,right\n"
                                    "5001_right_20240101.jpeg,P2,left\n5001_left_20240101.jpeg,P2,right\n")
    table = collect_inputs([tmp_path / "l.csv"]).set_index("image_id")
    assert table["eye"].tolist() == ["", "", "", ""]  # none paired as the fellow eye
    assert table.loc["OD", "identity_note"] == ("contradictory eye: for 'OD' the CSV says left, the file name says right; "
                                                 "the eye is left unknown")
    # Probe 37 BA1: the eye alone in other spellings: a letter, RE/LE, a numbered shot, another language.
    for right, left in (("R", "L"), ("RE", "LE"), ("OD1", "OS1"), ("rechts", "links"),
                        ("5001_R_20240101", "5001_L_20240101"), ("5002_R1", "5002_L1"), ("r (1)", "l (1)"),  # probe 38 BB1
                        ("5001_rechts", "5001_links"), ("5002_droit", "5002_gauche"), ("5003_RE", "5003_LE"),
                        ("5001-R-2024-01-01", "5001-L-2024-01-01"), ("5019_R_1_20240101", "5019_L_1_20240101"),
                        ("5012_R_eye", "5012_L_eye"), ("5016_R_disc", "5016_L_disc"), ("5013_rightEye", "5013_leftEye"),
                        ("5007_right(1)", "5007_left(1)"), ("R_5020", "L_5020"),  # probe 39 BC1
                        ("5119_RE_1", "5119_LE_1"), ("5103 (R)", "5103 (L)"), ("5104[R]", "5104[L]"),
                        ("5109_R.2024-01-01", "5109_L.2024-01-01"), ("5116_Right.Eye", "5116_Left.Eye")):  # probe 40 BD1
        (tmp_path / f"{right}.jpg").write_bytes(photo_bytes(1, 1))
        (tmp_path / f"{left}.jpg").write_bytes(photo_bytes(2, 2))
        (tmp_path / "swap.csv").write_text(f"image,patient_id,eye\n{right}.jpg,P3,left\n{left}.jpg,P3,right\n")
        swapped = collect_inputs([tmp_path / "swap.csv"])
        assert swapped["eye"].tolist() == ["", ""] and all("contradictory eye" in n for n in swapped["identity_note"]), right
    # Probe 37 BA7: an eye-per-folder layout (OD/10193.jpg, OS/10193.jpg) listed with the eyes swapped.
    for folder, k in (("OD", 1), ("OS", 2)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "10193.jpg").write_bytes(photo_bytes(k, k))
    (tmp_path / "fe.csv").write_text("image,patient_id,eye\nOD/10193.jpg,10193,left\nOS/10193.jpg,10193,right\n")
    by_folder = collect_inputs([tmp_path / "fe.csv"])
    assert by_folder["eye"].tolist() == ["", ""]
    assert "contradictory eye: for 'OD/10193' the CSV says left, the folder 'OD' says right" in by_folder["identity_note"][0]
    # Probe 38 BB4: a folder named by a grade or a round (NHS R0..R3, EyePACS levels L0..L4, round R1) names no eye.
    for folder in ("R3", "L2", "R1", "od4"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "IMG_0001.jpg").write_bytes(photo_bytes(1, 5))
        assert collect_inputs([tmp_path / folder / "IMG_0001.jpg"])["eye"].tolist() == [""], folder
    # Probe 39 BC9: a camera's letter and counter (DSC_L0042, IMG_R1234) names no eye.
    for name in ("DSC_L0042", "IMG_R1234", "Scan-R2"):
        (tmp_path / f"{name}.jpg").write_bytes(photo_bytes(1, 6))
        assert collect_inputs([tmp_path / f"{name}.jpg"])["eye"].tolist() == [""], name
    (tmp_path / "ok.csv").write_text("image,patient_id,eye\nOD.jpg,P1,right\nOS.jpg,P1,left\n")
    agreed = collect_inputs([tmp_path / "ok.csv"]).set_index("image_id")
    assert agreed["eye"].tolist() == ["right", "left"] and agreed["identity_note"].tolist() == ["", ""]


def test_the_eye_in_other_languages_abbreviations_and_glued_to_the_number_pairs_the_patient(tmp_path):
    """Probe 58 BV2: 10193_OD + 10193_OG (French), 10007_OD + 10007_OE (Portuguese), OI (Spanish),
    RT/LT, 10606_derecho / 10606_izquierdo, 10193left: each eye a patient of its own, the fellow
    eye's row "the only photo" without a note. Now one patient, its eyes paired."""
    pairs = [("10193_OD", "10193_OG"), ("10007_OD", "10007_OE"), ("10008_OD", "10008_OI"), ("10009_Rt", "10009_Lt"),
             ("10606_derecho", "10606_izquierdo"), ("10607_direito", "10607_esquerdo"), ("10489right", "10489left")]
    for k, (right, left) in enumerate(pairs):
        (tmp_path / "lang").mkdir(exist_ok=True)
        (tmp_path / "lang" / f"{right}.jpg").write_bytes(photo_bytes(k % 3, 2 * k))
        (tmp_path / "lang" / f"{left}.jpg").write_bytes(photo_bytes(k % 3, 2 * k + 1))
    table = collect_inputs([tmp_path / "lang"]).set_index("image_id")
    for right, left in pairs:
        patient = re.match(r"[0-9]+", right)[0]
        assert table.loc[[right, left], "patient_id"].tolist() == [patient, patient], right
        assert table.loc[[right, left], "eye"].tolist() == ["right", "left"], right
        assert table.loc[[right, left], "identity_note"].tolist() == ["", ""], right
    # A patient-per-folder export (fr/P10/OD.jpg + fr/P10/OG.jpg): the folder is the patient.
    (tmp_path / "fr" / "P10").mkdir(parents=True)
    for name, k in (("OD", 1), ("OG", 2)):
        (tmp_path / "fr" / "P10" / f"{name}.jpg").write_bytes(photo_bytes(k, k))
    folders = collect_inputs([tmp_path / "fr"])
    assert folders["patient_id"].tolist() == ["P10", "P10"] and sorted(folders["eye"]) == ["left", "right"]
    # A list's eye cell reads the same words (OG is the left eye, as in the name 10193_OG); a list giving
    # 10193_OG the right eye is a contradiction, noted.
    (tmp_path / "l.csv").write_text("image,patient_id,eye\nlang/10193_OD.jpg,10193,OD\nlang/10193_OG.jpg,10193,OG\n")
    assert collect_inputs([tmp_path / "l.csv"])["eye"].tolist() == ["right", "left"]
    (tmp_path / "l3.csv").write_text("image,patient_id,eye\nlang/10193_OD.jpg,10193,left\nlang/10193_OG.jpg,10193,right\n")
    swapped = collect_inputs([tmp_path / "l3.csv"]).set_index("image_id")
    assert swapped["eye"].tolist() == ["", ""]
    assert swapped.loc["lang/10193_OG", "identity_note"].startswith(
        "contradictory eye: for 'lang/10193_OG' the CSV says right, the file name says left"), swapped.loc["lang/10193_OG", "identity_note"]
    # Left out: LA/RA (also a place, initials), and a letter glued to the number; a name of both eyes still reads neither.
    for name in ("10193_LA", "10193_RA", "10193L", "10193left_OD"):
        (tmp_path / f"{name}.jpg").write_bytes(photo_bytes(1, 7))
        assert collect_inputs([tmp_path / f"{name}.jpg"])["eye"].tolist() == [""], name


def test_a_patient_per_folder_export_is_read_by_its_folders(tmp_path):
    """Probe 42 CF3: `P10/OD.jpeg`, `P10/OS.jpeg` (a camera's or PACS's patient-per-folder export):
    each eye was a patient of its own, decided as 'the only photo'. A name that is its eye alone
    takes its folder as the patient; the same folder name at two sites stays two patients."""
    for folder, name, k in (("P10", "OD.jpeg", 1), ("P10", "OS.jpeg", 2), ("P11", "Right Eye.jpeg", 3),
                            ("P11", "left (1).jpeg", 4), ("siteB/P10", "OS.jpeg", 5), ("day", "OD_1.jpeg", 6)):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / name).write_bytes(photo_bytes(k % 5, k))
    table = collect_inputs([tmp_path])
    table.index = [Path(p).relative_to(tmp_path).with_suffix("").as_posix() for p in table["path"]]
    assert table.loc[["P10/OD", "P10/OS", "P11/Right Eye", "P11/left (1)", "siteB/P10/OS"], "patient_id"].tolist() == [
        "P10", "P10", "P11", "P11", "siteB/P10"]
    assert table.loc[["P10/OD", "P10/OS", "P11/Right Eye", "P11/left (1)"], "eye"].tolist() == ["right", "left", "right", "left"]
    assert table.loc["P11/Right Eye", "identity_note"] == ""
    assert "same eye in two folders: the left eye of patient 'P10' is named in P10, siteB/P10" in table.loc["P10/OS", "identity_note"]
    # A number after the eye may be the patient's (OD_1 of patient 1): no patient read from the folder.
    assert table.loc["day/OD_1", "patient_id"] != "day" and "no patient" in table.loc["day/OD_1", "identity_note"]
    # The same layout in a label file (a folders or csv data set): one patient per folder.
    root = tmp_path / "set"
    for name in ("P10/OD.jpeg", "P10/OS.jpeg", "P11/Right Eye.jpeg"):
        (root / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "images" / name).write_bytes(photo_bytes(1, 1))
    (root / "labels.csv").write_text("image,level\nP10/OD.jpeg,0\nP10/OS.jpeg,2\nP11/Right Eye.jpeg,1\n")
    manifest = read_dataset(root, "csv")
    assert manifest[["patient_id", "eye"]].values.tolist() == [["P10", "right"], ["P10", "left"], ["P11", "right"]]


def test_a_follow_up_export_of_patient_and_visit_folders_takes_the_patient_folder(tmp_path):
    """Probe 48 BL5: in `<patient>/<visit>/<eye>.jpg` the visit folder (`2015`, `baseline`) was the
    patient: two patients' eyes paired as patient `2015`. Where the layout shows visits (every folder
    beside it named like a visit, a name under two patients' folders) the folder above is the patient;
    one patient's eyes from two visits are noted as two visits. Probe 49 BM2: patient folders named
    like years (`clinic/2001/OD.jpg`) stay the patients."""
    for k, name in enumerate(("1001/2015/left.jpg", "1002/2015/right.jpg", "1003/baseline/OS.jpg", "1003/baseline/OD.jpg",
                              "1002/baseline/OS.jpg", "1004/2015/OS.jpg", "1004/2023-05-02/OD.jpg", "1005/M12/OS.jpg",
                              "1006/M12/OD.jpg")):
        (tmp_path / "fu" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "fu" / name).write_bytes(photo_bytes(k % 5, k + 200))
    table = collect_inputs([tmp_path / "fu"])
    table.index = [Path(p).relative_to(tmp_path / "fu").as_posix() for p in table["path"]]
    assert table["patient_id"].to_dict() == {
        "1001/2015/left.jpg": "1001", "1002/2015/right.jpg": "1002", "1003/baseline/OS.jpg": "1003",
        "1003/baseline/OD.jpg": "1003", "1002/baseline/OS.jpg": "1002", "1004/2015/OS.jpg": "1004",
        "1004/2023-05-02/OD.jpg": "1004", "1005/M12/OS.jpg": "1005", "1006/M12/OD.jpg": "1006"}  # M12: probe 49 BM6
    # the reading said on each photo (probe 52 BP1: `site2/2001` was read so without a word)
    assert table.loc["1003/baseline/OD.jpg", "identity_note"] == (
        "a visit's folder: patient '1003' is the folder above 'baseline', read as a visit's folder (a follow-up export); "
        "if 'baseline' is the patient, give the patients in a CSV")
    assert ("two visits under one id: the photos of patient '1004' are in folders of two visits"
            in table.loc["1004/2015/OS.jpg", "identity_note"])
    for k, name in enumerate(("named/clinic/2015/10_left.jpeg", "named/clinic/2023/10_right.jpeg",  # named photos
                              "years/clinic/2001/OS.jpg", "years/clinic/2001/OD.jpg", "years/clinic/2002/OS.jpg",
                              "years/clinic/2003/OD.jpg", "one/2001/OS.jpg", "one/2001/OD.jpg",
                              "mixed/1001/OS.jpg", "mixed/2001/OD.jpg",
                              "sites/siteA/2001/OS.jpg", "sites/siteA/2002/OD.jpg", "sites/siteB/2001/OD.jpg")):  # BO6
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(photo_bytes(k % 5, k + 210))
    named = collect_inputs([tmp_path / "named"])
    assert named["patient_id"].tolist() == ["10", "10"]
    assert named["identity_note"].str.startswith("two visits under one id: the photos of patient '10' are in folders of "
                                                 "two visits").all()
    for folder, patients in (("years", ["2001", "2001", "2002", "2003"]), ("one", ["2001", "2001"]),
                             ("mixed", ["1001", "2001"]), ("sites", ["2001", "2001", "2002"])):
        read = collect_inputs([tmp_path / folder])
        assert sorted(read["patient_id"]) == patients, folder
        assert not read["identity_note"].str.contains("two visits").any()
    # A label file's image column, by the same rule (probe 50 CN2: a person's visits were patients of their own,
    # on both sides of a split); year-like patient folders alone stay patients.
    root = tmp_path / "set"
    names = ("P10/2015/OD.jpeg", "P10/2016/OS.jpeg", "P11/2015/OD.jpeg", "P12/baseline/OD.jpeg", "c/2001/OD.jpeg",
             "c/2002/OS.jpeg")
    for k, name in enumerate(names):
        (root / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "images" / name).write_bytes(photo_bytes(1, k))
    (root / "labels.csv").write_text("image,level\n" + "".join(f"{name},{k % 3}\n" for k, name in enumerate(names)))
    assert read_dataset(root, "csv").set_index("image_id")["patient_id"].to_dict() == {
        "P10/2015/OD": "P10", "P10/2016/OS": "P10", "P11/2015/OD": "P11", "P12/baseline/OD": "P12",  # a visit's word alone too (probe 54 BR11)
        "c/2001/OD": "c/2001", "c/2002/OS": "c/2002"}
    # Probe 51 CO7: names that carry the patient inside visit folders: one person, not a patient per visit.
    (root / "images" / "P13" / "2015").mkdir(parents=True)
    (root / "images" / "P13" / "2016").mkdir(parents=True)
    (root / "images" / "P13" / "2015" / "13_left.jpeg").write_bytes(photo_bytes(2, 40))
    (root / "images" / "P13" / "2016" / "13_left.jpeg").write_bytes(photo_bytes(2, 41))
    (root / "labels.csv").write_text("image,level\nP13/2015/13_left.jpeg,0\nP13/2016/13_left.jpeg,2\n")
    assert read_dataset(root, "csv")["patient_id"].tolist() == ["P13/13", "P13/13"]


def test_a_patient_id_that_is_a_date_is_noted(tmp_path):
    """Probe 47 BK10, probe 46 BJ7: a camera's photos named by day (`20230502_L.jpg`, `20230502_R.jpg`)
    were paired as one patient, `20230502`, without a word; one day's left and right photos may be
    two people's. Kept (it may be an id), noted on each photo."""
    for k, name in enumerate(("20230502_L.jpg", "20230502_R.jpg", "2023-05-03_OD.jpg", "20230502101530_L.jpg",
                              "10007_left.jpeg", "20231399_L.jpg", "12345678_R.jpg", "Baseline_L.jpg", "visit1_OS.jpg",
                              "FU1_R.jpg")):  # the last three: probe 49 BM7, photos named by visit
        (tmp_path / name).write_bytes(photo_bytes(k % 5, k))
    table = collect_inputs([tmp_path]).set_index("patient_id")
    noted = {p for p, note in table["identity_note"].items() if "a date or visit as the patient: patient" in note}
    assert noted == {"20230502", "2023-05-03", "20230502101530", "Baseline", "visit1", "FU1"}
    assert "photos of one day or visit are taken as one patient's" in table.loc["2023-05-03", "identity_note"]
    assert table.loc["20230502", "eye"].tolist() == ["left", "right"]  # kept as read
    # Probe 50 BN1: a year or a visit's code read from the name, in a numbered folder that may be the patient.
    for k, name in enumerate(("fu/1001/2015_L.jpg", "fu/1001/2015_R.jpg", "fu/P7/V2_L.jpg", "flat/photos/2016_L.jpg")):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(photo_bytes(k % 5, k + 30))
    # Probe 51 BO1, BO3: a date in another form, a shot number.
    for k, name in enumerate(("fu/1002/Mar2015_L.jpg", "fu/1003/1_L.jpg", "fu/1003/2_R.jpg", "flat/photos/20_left.jpg",
                              "day/batch1/21_left.jpg", "day/batch1/22_left.jpg", "day/batch1/23_left.jpg")):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(photo_bytes(k % 5, k + 50))
    named = collect_inputs([tmp_path / "fu", tmp_path / "flat", tmp_path / "day"]).set_index("patient_id")
    folder_note = "a patient's folder?: patient {!r} is read from the photo's name, but its folder {!r} is named like a patient"
    assert named.loc["2015", "identity_note"].iat[0].startswith(folder_note.format("2015", "1001"))
    assert folder_note.format("V2", "P7") in named.loc["V2", "identity_note"]
    assert named.loc["Mar2015", "identity_note"].startswith(folder_note.format("Mar2015", "1002"))
    assert named.loc["1", "identity_note"].startswith(folder_note.format("1", "1003"))
    for patient in ("2016", "20", "21", "22", "23"):  # a folder of photos, a batch of three patients: no word
        assert named.loc[patient, "identity_note"] == "", patient
    # Probe 52 BP2: other spellings of a patient's folder, three shots, a visit's folder between, a camera's counter.
    for k, name in enumerate(("Patient1004/1_L.jpg", "1005 Smith/1_L.jpg", "1006/1_L.jpg", "1006/2_R.jpg", "1006/3_L.jpg",
                              "1007/V1/5_L.jpg", "clinic/IMG_0042_L.jpg", "cam2/30_left.jpg")):
        (tmp_path / "shots" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "shots" / name).write_bytes(photo_bytes(k % 5, k + 70))
    shots = collect_inputs([tmp_path / "shots"])
    shots.index = [Path(p).relative_to(tmp_path / "shots").as_posix() for p in shots["path"]]
    for name in ("Patient1004/1_L.jpg", "1005 Smith/1_L.jpg", "1006/3_L.jpg", "1007/V1/5_L.jpg", "clinic/IMG_0042_L.jpg"):
        assert "a patient's folder?: patient " in shots.loc[name, "identity_note"], name
    assert shots.loc["cam2/30_left.jpg", "identity_note"] == ""  # a camera's folder: no patient's name (probe 52 BP3)


def test_shots_in_a_folder_named_by_a_name_and_visit_codes_as_patients_are_noted(tmp_path):
    """Probe 53 BQ2: ``Smith_John/1_L.jpg`` + ``2_R.jpg`` were patients 1 and 2, silently (the
    folder rule wanted a number in the folder's name); BQ1: ``V1_L.jpg``, ``BL``, ``M12``, ``T0`` as
    the patient, silently (the note knew only the long visit words); BQ3: a scratch folder ``n2``
    or ``ab12`` holding ``10570_left.jpeg`` was noted as a patient's folder."""
    for k, name in enumerate(("Smith_John/1_L.jpg", "Smith_John/2_R.jpg", "Jones/1_L.jpg", "Jones/2_R.jpg", "Jones/3_L.jpg",
                              "Lee/5_L.jpg", "Lee/6_R.jpg",  # probe 54 BR1: shots not numbered from 1, zero-padded, a retake
                              "Kim/0001_L.jpg", "Kim/0002_R.jpg", "Park/1_L.jpg", "Park/2_R.jpg", "Park/2_R (1).jpg",
                              "Cho/12_L.jpg", "Cho/13_R.jpg", "Cho/14_R.jpg", "Lim/0123_L.jpg", "Lim/0124_R.jpg",  # probe 55 BS1
                              "export/V1_L.jpg", "export/BL_R.jpg", "export/M12_L.jpg", "export/T0_R.jpg",
                              "n2/10570_left.jpg", "n2/10570_right.jpg", "ab12/10007_left.jpg", "ab12/10131_right.jpg",
                              "clinic/10_left.jpg", "clinic/10_right.jpg", "clinic/1_left.jpg", "clinic/1_right.jpg")):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(photo_bytes(k % 5, k + 90))
    table = collect_inputs([tmp_path])
    table.index = [Path(p).relative_to(tmp_path).as_posix() for p in table["path"]]
    for name in ("Smith_John/1_L.jpg", "Smith_John/2_R.jpg", "Jones/3_L.jpg", "Lee/6_R.jpg", "Kim/0001_L.jpg", "Park/2_R (1).jpg",
                 "Cho/14_R.jpg", "Lim/0123_L.jpg"):
        assert "a patient's folder?: patient " in table.loc[name, "identity_note"], name
        assert "a shot's number" in table.loc[name, "identity_note"], name
    for name in ("export/V1_L.jpg", "export/BL_R.jpg", "export/M12_L.jpg", "export/T0_R.jpg"):
        assert table.loc[name, "identity_note"].startswith("a date or visit as the patient: "), name
    for name in ("n2/10570_left.jpg", "ab12/10007_left.jpg", "ab12/10131_right.jpg", "clinic/10_left.jpg", "clinic/1_right.jpg"):
        assert "a patient's folder?" not in table.loc[name, "identity_note"], name  # a scratch folder; a numbered export


def test_a_patients_folder_holding_photos_of_another_patient_is_noted(tmp_path):
    """Probe 54 BR10, BR12: ``1001/OD.dcm`` whose PatientID is 2002 beside ``1001/OS.jpg``, and
    ``Smith_John/OD.jpg`` beside ``Smith_John/10570_left.jpeg``: one folder, two patients, silently."""
    rng = np.random.default_rng(60)
    write_dicom(tmp_path / "1001" / "OD.dcm", make_fundus(1, rng, height=96), patient_id="2002", laterality="R")
    (tmp_path / "1001" / "OS.jpg").write_bytes(photo_bytes(1, 61))
    for k, name in enumerate(("Smith_John/OD.jpg", "Smith_John/10570_left.jpeg", "Doe_Jane/OD.jpg", "Doe_Jane/OS.jpg")):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(photo_bytes(k % 3, 62 + k))
    table = collect_inputs([tmp_path])
    table.index = [Path(p).relative_to(tmp_path).as_posix() for p in table["path"]]
    assert table.loc["1001/OD.dcm", "patient_id"] == "2002" and table.loc["1001/OS.jpg", "patient_id"] == "1001"  # as read
    for name in ("1001/OD.dcm", "1001/OS.jpg", "Smith_John/OD.jpg", "Smith_John/10570_left.jpeg"):
        assert "one folder, two patients: folder " in table.loc[name, "identity_note"], name
    assert ("folder 'Smith_John' is patient 'Smith_John' for its photos named by the eye alone, but holds photos taken as "
            "patient '10570' too") in table.loc["Smith_John/OD.jpg", "identity_note"]
    assert (table.loc[["Doe_Jane/OD.jpg", "Doe_Jane/OS.jpg"], "identity_note"] == "").all()  # one patient's folder


def test_a_patients_folder_inside_another_or_linked_under_another_name_is_noted(tmp_path):
    """Probe 55 BS12: ``1001/OS.jpg`` + ``1001/retake/OD.jpg`` made a patient 'retake', silently; BS14: a
    patient's folder linked under another patient's name (``byname/Smith_John -> ids/1001``) dropped one
    patient's rows; BS6: ``Copy of 10007_left.jpeg`` beside ``10007_right.jpeg`` was patient 'Copy of 10007'."""
    (tmp_path / "rt" / "1001" / "retake").mkdir(parents=True)
    for k, name in enumerate(("rt/1001/OS.jpg", "rt/1001/retake/OD.jpg", "ids/1001/OD.jpg", "ids/1001/OS.jpg",
                              "cp/Copy of 10007_left.jpeg", "cp/10007_right.jpeg")):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(photo_bytes(k % 3, 80 + k))
    (tmp_path / "byname").mkdir()
    (tmp_path / "byname" / "Smith_John").symlink_to(tmp_path / "ids" / "1001", target_is_directory=True)
    table = collect_inputs([tmp_path / "rt"])
    assert sorted(table["patient_id"]) == ["1001", "retake"]  # as read, noted
    assert all("folder 'retake' (patient 'retake') is inside folder '1001' (patient '1001')" in n for n in table["identity_note"])
    for given in ([tmp_path / "ids", tmp_path / "byname"], [tmp_path / "byname", tmp_path / "ids"]):
        table = collect_inputs(given)
        assert sorted(table["patient_id"]) == ["1001", "1001", "Smith_John", "Smith_John"]  # none dropped
        assert all("same photo under two patients" in n for n in table["identity_note"])
    # probe 56 BT1: both under one folder given (the alias folder was walked once, as its target)
    (tmp_path / "al" / "byname").mkdir(parents=True)
    (tmp_path / "al" / "ids").symlink_to(tmp_path / "ids", target_is_directory=True)
    (tmp_path / "al" / "byname" / "Smith_John").symlink_to(tmp_path / "ids" / "1001", target_is_directory=True)
    table = collect_inputs([tmp_path / "al"])
    assert sorted(table["patient_id"]) == ["1001", "1001", "Smith_John", "Smith_John"]
    table = collect_inputs([tmp_path / "cp"])
    assert set(table["patient_id"]) == {"10007"} and sorted(table["eye"]) == ["left", "right"]
    # probe 56 BT2: another mark before or after the number: kept apart, noted
    for k, name in enumerate(("mk/new_10193_left.jpeg", "mk/10193_right.jpeg", "mk/10131a_left.jpeg", "mk/10131_right.jpeg",
                              "mk/10570_left.jpeg", "mk/10570_right.jpeg")):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(photo_bytes(k % 3, 110 + k))
    table = collect_inputs([tmp_path / "mk"]).set_index("image_id")
    assert table.loc["new_10193_left", "patient_id"] == "new_10193"
    for name in ("new_10193_left", "10193_right", "10131a_left", "10131_right"):
        assert "holds the number of patient" in table.loc[name, "identity_note"], name
    assert table.loc["10570_left", "identity_note"] == ""
    # BS11: a patient's folder copied or downloaded twice is that patient's
    for k, name in enumerate(("cf/1002 - Copy/OD.jpg", "cf/1002/OS.jpg", "cf/Copy of 1001/OD.jpg", "cf/1001/OS.jpg",
                              "cf/1003 (2)/OD.jpg", "cf/1003/OS.jpg", "cf/1004 (copy)/OD.jpg", "cf/1004/OS.jpg")):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(photo_bytes(k % 3, 90 + k))
    # probe 56 BT15: a year in parentheses is no copy's number: two people
    for k, name in enumerate(("cf/Smith, John (1965)/OD.jpg", "cf/Smith, John (1972)/OS.jpg")):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(photo_bytes(k % 3, 98 + k))
    table = collect_inputs([tmp_path / "cf"])
    assert {"Smith, John (1965)", "Smith, John (1972)"} <= set(table["patient_id"])
    table = table[~table["patient_id"].str.startswith("Smith")]
    assert sorted(table["patient_id"]) == ["1001", "1001", "1002", "1002", "1003", "1003", "1004", "1004"]
    assert all(sorted(eyes) == ["left", "right"] for _, eyes in table.groupby("patient_id")["eye"])


def test_one_patients_follow_up_export_alone_takes_the_patients_folder(tmp_path):
    # Probe 54 BR11: `1001/V1/OD.jpg` + `OS.jpg` alone was patient 'V1' (with a second patient, 1001 and 1002)
    for k, name in enumerate(("1001/V1/OD.jpg", "1001/V1/OS.jpg")):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(photo_bytes(k, 70 + k))
    table = collect_inputs([tmp_path])
    assert set(table["patient_id"]) == {"1001"} and sorted(table["eye"]) == ["left", "right"]
    assert all(note.startswith("a visit's folder: patient '1001' is the folder above 'V1'") for note in table["identity_note"])


def test_a_run_says_once_where_its_patients_were_read_from(tmp_path, caplog):
    # One line per run, so that a layout read another way than meant is seen at a glance (probes 48-56: each
    # round found another layout whose reading was right for one export and wrong for the next).
    for k, name in enumerate(("10_left.jpeg", "10_right.jpeg", "P10/OD.jpg", "P10/OS.jpg", "scan.jpeg", "l/a.jpeg")):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(photo_bytes(k % 3, 120 + k))
    (tmp_path / "list.csv").write_text("image,patient_id,eye\nl/a.jpeg,A1,left\n")
    with caplog.at_level(logging.INFO, logger="drgrader"):
        collect_inputs([tmp_path / "10_left.jpeg", tmp_path / "10_right.jpeg", tmp_path / "P10", tmp_path / "scan.jpeg",
                        tmp_path / "list.csv"])
    assert ("patients of 6 photo(s) read from a list: 1, file names: 2, folders (photos named by the eye alone): 2, "
            "nothing (each photo a patient of its own): 1") in caplog.text
    # probe 58 BV10: a link named for another patient was counted as "DICOM headers" in a run without one
    (tmp_path / "farm").mkdir()
    (tmp_path / "farm" / "20_left.jpeg").symlink_to(tmp_path / "10_left.jpeg")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="drgrader"):
        collect_inputs([tmp_path / "farm" / "20_left.jpeg", tmp_path / "10_right.jpeg"])
    assert "patients of 2 photo(s) read from link names or a list's image ids: 1, file names: 1" in caplog.text


def test_drgraders_own_temporary_folder_is_never_read_as_a_patients_folder():
    # probe 53 BQ4: drgrader.grade's temporary folder, named at random, was sometimes "named like a patient"
    from drgrader.data.identity import resolve_identity
    from drgrader.data.identity_claims import evidence
    from drgrader.data.identity_notes import TEMP_FOLDER_PREFIX

    for folder in (f"/tmp/{TEMP_FOLDER_PREFIX}grade-k9_012q5", "/tmp/1001"):
        rows = [evidence(f"{folder}/{name}.png", name, f"{folder}/{name}.png") for name in ("10570_left", "10570_right")]
        notes = resolve_identity(rows)["identity_note"]
        assert (notes == "").all() == folder.startswith(f"/tmp/{TEMP_FOLDER_PREFIX}"), (folder, list(notes))


def test_photos_named_by_their_eye_alone_from_python_are_not_the_patient_of_a_temporary_folder(tiny_bundle):
    rgb = make_fundus(1, np.random.default_rng(3), height=96)
    photos, patients = drgrader.grade(tiny_bundle, [rgb, rgb[::-1]], names=["OD", "OS"])
    assert not photos["patient_id"].str.contains("drgrader-").any()
    assert len(patients) == 2  # as before: no patient, each photo its own


def test_a_photo_two_lists_give_to_two_patients_is_noted_on_both(tmp_path):
    """Probe 42 BF7: the photo went to the first list's patient; the other patient's decision said
    'the only photo' with no note, as if made with every photo listed for it."""
    (tmp_path / "L1").mkdir()
    (tmp_path / "L2").mkdir()
    for k, name in enumerate(("a", "b", "e")):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(k + 2, k + 70))
    (tmp_path / "L1" / "l.csv").write_text("image,patient_id,eye\n../a.jpeg,1001,left\n../b.jpeg,1001,right\n")
    (tmp_path / "L2" / "l.csv").write_text("image,patient_id,eye\n../a.jpeg,2001,left\n../e.jpeg,2001,right\n")
    table = collect_inputs([tmp_path / "L1" / "l.csv", tmp_path / "L2" / "l.csv"]).set_index("patient_id")
    assert table.loc["2001", "identity_note"].startswith(
        "contradictory patient: '../a' is listed as a photo of patient '2001' too, but taken as one of patient '1001'; "
        "this patient is judged without it")


def test_one_patient_id_given_by_two_lists_is_noted(tmp_path):
    # Probe 36 AZ12: two sites' day lists, each with its own patient 1001 (one eye each), given in
    # one run: one patient, two people's eyes paired, no note (two folders were noted).
    for site, name, eye in (("A", "a.jpeg", "left"), ("B", "b.jpeg", "right")):
        (tmp_path / site).mkdir()
        (tmp_path / site / name).write_bytes(photo_bytes(1 if site == "A" else 2, 0))
        (tmp_path / site / "list.csv").write_text(f"image,patient_id,eye\n{name},1001,{eye}\n")
    (tmp_path / "C").mkdir()
    (tmp_path / "C" / "1001_left.jpeg").write_bytes(photo_bytes(3, 0))
    table = collect_inputs([tmp_path / "A" / "list.csv", tmp_path / "B" / "list.csv"])
    assert table["patient_id"].tolist() == ["1001", "1001"] and table["eye"].tolist() == ["left", "right"]  # as given
    assert table["identity_note"].tolist() == [
        f"one patient from two sources: patient '1001' is given by {tmp_path / 'A' / 'list.csv'}, {tmp_path / 'B' / 'list.csv'}; "
        "taken as one patient's eyes (if they number patients alike, give each site's patients their own ids, e.g. A-1001)"] * 2
    # Probe 37 BA12: two sites' DICOM exports, each with its own PatientID 1001; a DICOM folder beside named photos.
    rng = np.random.default_rng(7)
    for site, laterality in (("dA", "L"), ("dB", "R")):
        write_dicom(tmp_path / site / "img0001.dcm", make_fundus(1, rng, height=96), patient_id="1001", laterality=laterality)
    dicoms = collect_inputs([tmp_path / "dA", tmp_path / "dB"])
    assert all(f"one patient from two sources: patient '1001' is given by the DICOM headers in {tmp_path / 'dA'}, the DICOM "
               f"headers in {tmp_path / 'dB'};" in n for n in dicoms["identity_note"]), dicoms["identity_note"].tolist()
    assert all("is given by the DICOM headers in" in n for n in collect_inputs([tmp_path / "dA", tmp_path / "C"])["identity_note"])
    assert collect_inputs([tmp_path / "dA"])["identity_note"].tolist() == [""]
    # Probe 38 BB2: the same two sites reached through their parent folder, or a list naming their files.
    for site, laterality in (("sA", "L"), ("sB", "R")):
        write_dicom(tmp_path / "sites" / site / "img0001.dcm", make_fundus(1, rng, height=96), patient_id="1001",
                    laterality=laterality)
    (tmp_path / "dl.csv").write_text("image\nsites/sA/img0001.dcm\nsites/sB/img0001.dcm\n")
    for inputs in ([tmp_path / "sites"], [tmp_path / "dl.csv"]):
        assert all(f"is given by the DICOM headers in {tmp_path / 'sites' / 'sA'}, the DICOM headers in "
                   f"{tmp_path / 'sites' / 'sB'};" in n for n in collect_inputs(inputs)["identity_note"]), inputs
    for series, laterality in (("s1", "L"), ("s2", "R")):  # one export's patient/series folders: one source
        write_dicom(tmp_path / "export" / "1001" / series / "i.dcm", make_fundus(1, rng, height=96), patient_id="1001",
                    laterality=laterality)
    assert collect_inputs([tmp_path / "export"])["identity_note"].tolist() == ["", ""]
    beside = collect_inputs([tmp_path / "B" / "list.csv", tmp_path / "C"])  # a list beside a folder naming 1001
    assert all(f"is given by {tmp_path / 'B' / 'list.csv'}, the photos in {tmp_path / 'C'};" in n for n in beside["identity_note"])
    (tmp_path / "A" / "both.csv").write_text("image,patient_id,eye\na.jpeg,1001,left\n../B/b.jpeg,1001,right\n")
    (tmp_path / "A" / "list.csv").unlink()
    for inputs in ([tmp_path / "A" / "both.csv"], [tmp_path / "A", tmp_path / "A" / "both.csv"]):  # one list; a folder and its list
        assert collect_inputs(inputs)["identity_note"].tolist() == ["", ""], inputs


def test_a_list_path_that_the_working_folder_also_holds_is_warned_of(tmp_path, monkeypatch, caplog):
    # Probe 36 AZ7: a list in lists/ naming img/x_left.jpeg read lists/img/x_left.jpeg, while the
    # working folder's img/x_left.jpeg (another photo) was what the researcher meant; nothing said.
    (tmp_path / "lists" / "img").mkdir(parents=True)
    (tmp_path / "img").mkdir()
    (tmp_path / "lists" / "img" / "x_left.jpeg").write_bytes(photo_bytes(0, 0))
    (tmp_path / "img" / "x_left.jpeg").write_bytes(photo_bytes(3, 1))
    (tmp_path / "lists" / "l.csv").write_text("image,patient_id,eye\nimg/x_left.jpeg,Q1,left\n")
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        table = collect_inputs([Path("lists/l.csv")])
    assert table["path"].tolist() == [str(Path("lists/img/x_left.jpeg"))]  # the list's folder, as documented
    assert (f"lists/l.csv: 1 image path(s) are read relative to the list's folder, and the working folder holds a file of that "
            f"path too (e.g. img/x_left.jpeg (read from lists/img/x_left.jpeg, not {tmp_path / 'img' / 'x_left.jpeg'}))") in caplog.text
    (tmp_path / "lists" / "img" / "x_left.jpeg").unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        collect_inputs([Path("lists/l.csv")])
    assert "(e.g. img/x_left.jpeg (not found as lists/img/x_left.jpeg))" in caplog.text
    (tmp_path / "img" / "x_left.jpeg").unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        collect_inputs([Path("lists/l.csv")])
    assert "working folder holds" not in caplog.text


def test_patients_that_differ_only_in_case_are_kept_apart_and_noted(tmp_path):
    for k, name in enumerate(("P7_left", "p7_right", "Q1_left", "Q1_right")):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(k % 3, k))
    table = collect_inputs([tmp_path]).set_index("image_id")
    assert table.loc["P7_left", "patient_id"] == "P7" and table.loc["p7_right", "patient_id"] == "p7"  # not merged
    for image in ("P7_left", "p7_right"):
        assert "lookalike patients: patients 'P7' and 'p7' differ only in case, spacing, separators, leading zeros" in table.loc[image, "identity_note"]
    assert table.loc["Q1_left", "identity_note"] == ""
    # A spreadsheet drops a number's leading zeros: patient 7 in a CSV beside 007_right by name.
    (tmp_path / "list.csv").write_text("image,patient_id\nQ1_left.jpeg,7\n")
    (tmp_path / "007_right.jpeg").write_bytes(photo_bytes(1, 9))
    (tmp_path / "0_left.jpeg").write_bytes(photo_bytes(1, 8))  # '0' is a number too: no lookalike of its own
    table = collect_inputs([tmp_path / "list.csv", tmp_path / "007_right.jpeg", tmp_path / "0_left.jpeg"]).set_index("image_id")
    assert (table.loc["Q1_left", "patient_id"], table.loc["007_right", "patient_id"]) == ("7", "007")
    assert "patients '007' and '7' differ only in case, spacing, separators, leading zeros" in table.loc["007_right", "identity_note"]
    assert table.loc["0_left", "identity_note"] == ""


def test_one_patients_name_in_two_text_encodings_is_noted(tmp_path):
    # Before (probe 26): Müller_left (UTF-8) and M\xfcller_right (Latin-1 bytes) were two patients, each
    # "the only photo", without a word.
    (tmp_path / "Müller_left.jpeg").write_bytes(photo_bytes(1, 1))
    with open(os.fsencode(tmp_path) + b"/M\xfcller_right.jpeg", "wb") as fh:
        fh.write(photo_bytes(2, 2))
    table = collect_inputs([tmp_path])
    assert table["patient_id"].nunique() == 2  # kept apart as given
    assert all("patients 'Müller' and 'M\\xfcller' differ only in case, spacing, separators, leading zeros, look-alike letters, accents or text encoding" in note
               for note in table["identity_note"])  # spelled as the CSVs spell the Latin-1 name


def test_patients_that_differ_only_by_an_inner_space_an_invisible_or_a_full_width_letter_are_noted(tmp_path, caplog):
    """Probe 33 AV11: 'P 1' and 'P1', 'R<zero-width space>1' and 'R1', full-width 'Ｓ1' and 'S1' were
    two patients each without a note: S1's left eye graded alone, 'negative', beside another 'S1'."""
    # Probe 34 AX1: a Cyrillic 'Р' for a Latin 'P', an en dash for a hyphen.
    pairs = [("P 1", "P1"), ("R\u200b1", "R1"), ("\uff331", "S1"), ("\ufeffT1", "T1"), ("\u04202", "P2"), ("C\u20131", "C-1"),
             ("AB-123", "AB123"),  # probe 34 AX13: a separator one system writes and another leaves out
             ("10.0", "10"),  # probe 34 BX6: a number column pandas or Excel wrote as float
             ("12,345", "12345"), ("\u0661\u0662\u0663", "123"),  # probe 35 AY6: thousands separator, Arabic-Indic digits
             ("12\u2019346", "12346"), ("12\u066c347", "12347"),  # probe 36 AZ4: de-CH Excel's and the Arabic separator
             ('="00124"', "00124"), ('"P8"', "P8")]  # probe 37 BA8: Excel's ="00124", an id in quotes
    for k in range(2 * len(pairs)):
        (tmp_path / f"{k}.jpeg").write_bytes(photo_bytes(k % 3, k))
    quoted = [(a.replace('"', '""'), b.replace('"', '""')) for a, b in pairs]  # as a CSV writes a quote in a cell
    rows = "".join(f"{2 * k}.jpeg,\"{a}\",left\n{2 * k + 1}.jpeg,\"{b}\",right\n" for k, (a, b) in enumerate(quoted))
    (tmp_path / "list.csv").write_text("image,patient_id,eye\n" + rows, encoding="utf-8")
    table = collect_inputs([tmp_path / "list.csv"]).set_index("image_id")
    assert table["patient_id"].tolist() == [p for pair in pairs for p in pair]  # kept as given
    for k, shown in enumerate(["'P 1' and 'P1'", "'R1' and 'R\\u200b1'", "'S1' and 'Ｓ1'", "'T1' and '\\ufeffT1'",
                               "'P2' and '\\u04202'", "'C-1' and 'C\\u20131'", "'AB-123' and 'AB123'",
                               "'10' and '10.0'", "'12,345' and '12345'", "'123' and '١٢٣'", "'12346' and '12’346'",
                               "'12347' and '12٬347'", "'00124' and '=\"00124\"'", "'\"P8\"' and 'P8'"]):
        for image in (str(2 * k), str(2 * k + 1)):
            assert (f"lookalike patients: patients {shown} differ only in case, spacing, separators, leading zeros, look-alike letters, accents or text encoding"
                    in table.loc[image, "identity_note"])
    # A label file: the same warning as for 'P7' and 'p7'.
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    for name in ("a", "b"):
        (root / "images" / f"{name}.jpeg").write_bytes(name.encode())  # the manifest does not read pixels
    (root / "labels.csv").write_text("image,level,patient_id\na,0,\uff331\nb,2,S1\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        read_dataset(root)
    assert [r.getMessage() for r in caplog.records if "differ only in" in r.getMessage()] == [
        f"{root}: patients 'S1' and 'Ｓ1' differ only in case, spacing, separators, leading zeros, look-alike letters or accents; kept apart as "
        "given (one spelling in the label file makes them one patient)"]


def test_one_persons_id_with_and_without_accents_or_in_dicom_name_form_is_noted(tiny_bundle, tmp_path):
    """Probe 58 BV4: García/Garcia, Müller/Mueller, Zoë/Zoe, Søren/Soren, SMITH^JOHN/Smith John were two
    one-eyed patients without a note (the clean eye's row "the only photo"). Kept apart, noted on both."""
    pairs = [("García_left", "Garcia_right"), ("Müller_left", "Mueller_right"), ("Zoë_OS", "Zoe_OD"), ("Søren_L", "Soren_R"),
             ("SMITH^JOHN_left", "Smith John_right"), ("Öztürk_left", "Oeztuerk_right"), ("Doe_Jane_left", "Jane_Doe_right")]
    (tmp_path / "ic").mkdir()
    for k, (a, b) in enumerate(pairs):
        (tmp_path / "ic" / f"{a}.jpeg").write_bytes(photo_bytes(k % 3, 2 * k))
        (tmp_path / "ic" / f"{b}.jpeg").write_bytes(photo_bytes(k % 3, 2 * k + 1))
    out = tmp_path / "ic.csv"
    assert main(["predict", str(tiny_bundle), str(tmp_path / "ic"), "--out", str(out)]) == 0
    patients = read(tmp_path / "ic_patients.csv").set_index("patient_id")
    for a, b in pairs:
        first, second = (a.rpartition("_")[0], b.rpartition("_")[0])
        assert patients.loc[[first, second], "images"].tolist() == ["1", "1"]  # never merged
        said = " and ".join(f"'{p}'" for p in sorted({first, second}))
        order = "word order, " if first == "Doe_Jane" else ""  # a name's words in another order: said so
        for patient in (first, second):
            assert (f"lookalike patients: patients {said} differ only in {order}case, spacing, separators, leading zeros, "
                    "look-alike letters, accents or text encoding" in patients.loc[patient, "identity_note"]), patient
    # Patient folders (García, María/OD.jpg + Garcia, Maria/OS.jpg) alike; different names are not noted.
    for folder, name, k in (("García, María", "OD", 1), ("Garcia, Maria", "OS", 2), ("Garcia, Marta", "OS", 3)):
        (tmp_path / "id" / folder).mkdir(parents=True)
        (tmp_path / "id" / folder / f"{name}.jpg").write_bytes(photo_bytes(k, k))
    table = collect_inputs([tmp_path / "id"]).set_index("patient_id")
    assert "lookalike patients: patients 'Garcia, Maria' and 'García, María'" in table.loc["García, María", "identity_note"]
    assert "lookalike" not in table.loc["Garcia, Marta", "identity_note"]


def test_one_file_given_as_both_eyes_is_never_its_own_fellow_eye(tmp_path):
    folder = tmp_path / "clinic"
    folder.mkdir()
    for name, (grade, seed) in {"P2_left": (2, 1), "P2_right": (2, 1), "P3_left": (1, 3), "P3_L": (1, 3), "P3_right": (0, 4),
                                "P6_left": (0, 6)}.items():
        (folder / f"{name}.jpeg").write_bytes(photo_bytes(grade, seed))
    (folder / "list.csv").write_text("image,patient_id\nP6_left.jpeg,P6\nP2_left.jpeg,P6\n")  # P2_left is P6's here
    table = collect_inputs([folder / "P2_left.jpeg", folder / "P2_right.jpeg", folder / "P3_left.jpeg", folder / "P3_L.jpeg",
                            folder / "P3_right.jpeg"]).set_index("image_id")
    assert (table.loc["P2_left", "patient_id"], table.loc["P2_left", "eye"]) == ("P2", "")
    assert (table.loc["P2_right", "patient_id"], table.loc["P2_right", "eye"]) == ("P2_right", "")  # not paired with itself
    assert table.loc["P2_right", "identity_note"] == ("one photo as two eyes: 'P2_left', 'P2_right' of patient 'P2' are one "
                                                      "file's bytes, given as the left eye and right eye; which eye it shows "
                                                      "is unknown, this copy a patient of its own, 'P2_right'")
    # Two copies of one known eye are two photos of that eye, as before.
    assert table.loc[["P3_left", "P3_L"], "eye"].tolist() == ["left", "left"]
    assert table.loc["P3_left", "identity_note"].startswith("several photos of one eye")
    listed = collect_inputs([folder / "list.csv"]).set_index("image_id")  # sides not known, one patient
    assert listed["patient_id"].tolist() == ["P6", "P6"]
    listed = collect_inputs([folder / "list.csv", folder / "P2_right.jpeg"]).set_index("image_id")
    assert listed.loc["P2_right", "patient_id"] == "P2" and listed.loc["P2_left", "patient_id"] == "P6"  # other patients: untouched


def test_a_given_patient_that_its_name_contradicts_is_noted_on_both_photos(tmp_path):
    for k, name in enumerate(("10_left", "10_right", "11_left", "11_right")):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(k % 3, k))
    (tmp_path / "list.csv").write_text("image,patient_id\n10_left.jpeg,P1\n11_left.jpeg,11\n")
    table = collect_inputs([tmp_path / "list.csv", tmp_path / "10_right.jpeg", tmp_path / "11_right.jpeg"]).set_index("image_id")
    assert table.loc["10_left", "patient_id"] == "P1" and table.loc["10_right", "patient_id"] == "10"  # the CSV's, as given
    note = ("contradictory patient: '10_left' is patient 'P1' by its CSV row, DICOM header or link name, but its name says patient "
            "'10', the patient of '10_right'; the given patient is taken, its eye (left) left unknown, so it is not paired "
            "as any patient's fellow eye")
    assert table.loc["10_left", "identity_note"] == note and table.loc["10_right", "identity_note"] == note
    assert table.loc["11_left", "identity_note"] == table.loc["11_right", "identity_note"] == ""  # CSV and name agree


def test_a_given_patient_is_checked_against_names_when_every_patient_is_given(tmp_path):
    """Every patient given (a full CSV, DICOM files): a shifted cell put 10007_left under 10131,
    paired with 10131_right, and one PatientID for an export's every file made strangers one
    patient, both without a note (probe 23, finding 2)."""
    for k, name in enumerate(("10131_right", "10007_left", "10007_right", "20_left", "20_right")):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(k % 3, k))
    (tmp_path / "list.csv").write_text("image,patient_id\n10131_right.jpeg,10131\n10007_left.jpeg,10131\n"
                                       "10007_right.jpeg,10007\n20_left.jpeg,P2\n20_right.jpeg,P2\n")
    table = collect_inputs([tmp_path / "list.csv"]).set_index("image_id")
    assert table.loc["10007_left", ["patient_id", "eye"]].tolist() == ["10131", ""]  # as given, never 10131_right's fellow
    assert table.loc["10131_right", "eye"] == "right"
    for image in ("10007_left", "10131_right", "10007_right"):
        assert table.loc[image, "identity_note"].startswith(
            "contradictory patient: '10007_left' is patient '10131' by its CSV row, DICOM header or link name, but its name says patient "
            "'10007', the patient of '10007_right'; the given patient is taken, its eye (left) left unknown")
    assert table.loc[["20_left", "20_right"], "eye"].tolist() == ["left", "right"]  # a CSV that renames 20 to P2: no conflict
    assert table.loc[["20_left", "20_right"], "identity_note"].tolist() == ["", ""]
    # One PatientID on two files named for two patients: one patient as given, neither a fellow eye.
    for seed, name in enumerate(("10131_right", "10007_left")):
        write_dicom(tmp_path / f"{name}.dcm", make_fundus(1, np.random.default_rng(seed), height=96), patient_id="P9")
    dicoms = collect_inputs([tmp_path / "10131_right.dcm", tmp_path / "10007_left.dcm"]).set_index("image_id")
    assert dicoms["patient_id"].tolist() == ["P9", "P9"] and dicoms["eye"].tolist() == ["", ""]
    assert dicoms.loc["10131_right", "identity_note"].startswith(
        "contradictory patient: '10131_right' is patient 'P9' by its CSV row, DICOM header or link name, but its name says patient "
        "'10131', while '10007_left', also patient 'P9', is named for another patient; the given patient is taken, its eye "
        "(right) left unknown")
    assert "no eye" not in dicoms.loc["10131_right", "identity_note"]  # the note says why the eye is unknown


def test_the_eye_in_other_scripts_pairs_the_patient(tmp_path):
    """Probe 59 BW1: 10048_右 + 10048_左, 10050_правый + 10050_левый, ..., and the folders Правый/10048.jpg +
    Левый/10048.jpg, were each a patient of its own (or an eye unknown), "the only photo". Now one patient, its eyes paired."""
    pairs = [("10048_右", "10048_左"), ("10049_右眼", "10049_左眼"), ("10050_правый", "10050_левый"), ("10051_δεξί", "10051_αριστερό"),
             ("10052_høyre", "10052_venstre"), ("10053_höger", "10053_vänster"), ("10054_prawe", "10054_lewe"),
             ("10055_oikea", "10055_vasen"), ("10056_오른쪽", "10056_왼쪽"), ("10057_rechtes_Auge", "10057_linkes_Auge"),
             ("10058_O.D.", "10058_O.S."), ("10059右", "10059左")]
    (tmp_path / "ml").mkdir()
    for k, (right, left) in enumerate(pairs):
        (tmp_path / "ml" / f"{right}.jpg").write_bytes(photo_bytes(k % 3, 2 * k))
        (tmp_path / "ml" / f"{left}.jpg").write_bytes(photo_bytes(k % 3, 2 * k + 1))
    table = collect_inputs([tmp_path / "ml"]).set_index("image_id")
    for right, left in pairs:
        patient = re.match(r"[0-9]+", right)[0]
        assert table.loc[[right, left], "patient_id"].tolist() == [patient, patient], right
        assert table.loc[[right, left], "eye"].tolist() == ["right", "left"], right
        assert table.loc[[right, left], "identity_note"].tolist() == ["", ""], right
    for folder, k in (("Правый", 1), ("Левый", 2)):
        (tmp_path / "fo" / folder).mkdir(parents=True)
        (tmp_path / "fo" / folder / "10048.jpg").write_bytes(photo_bytes(k, k))
    # An eye-per-folder layout, as OD/10048.jpg + OS/10048.jpg: each folder its eye (a list gives the patient).
    folders = collect_inputs([tmp_path / "fo"]).set_index("image_id")
    assert folders.loc[["Правый/10048", "Левый/10048"], "eye"].tolist() == ["right", "left"]
    (tmp_path / "fo" / "l.csv").write_text("image,patient_id\nПравый/10048.jpg,10048\nЛевый/10048.jpg,10048\n")
    listed = collect_inputs([tmp_path / "fo" / "l.csv"])
    assert listed[["patient_id", "eye", "identity_note"]].values.tolist() == [["10048", "right", ""], ["10048", "left", ""]]


def test_a_dicom_laterality_spelt_as_a_word_is_weighed_against_the_name_and_the_list(tmp_path):
    """Probe 59 BW5: 3002_OD.dcm whose ImageLaterality is OS was the right eye with no note; a list's right
    over a header LEFT likewise."""
    rng = np.random.default_rng(59)
    write_dicom(tmp_path / "3002_OD.dcm", make_fundus(1, rng, height=96), patient_id="3002", laterality="OS")
    write_dicom(tmp_path / "d" / "IM1.dcm", make_fundus(1, rng, height=96), patient_id="3001", laterality="LEFT")
    write_dicom(tmp_path / "d" / "IM2.dcm", make_fundus(1, rng, height=96), patient_id="3001", laterality="OD")
    named = collect_inputs([tmp_path / "3002_OD.dcm"]).set_index("image_id").loc["3002_OD"]
    assert (named["patient_id"], named["eye"]) == ("3002", "")
    assert named["identity_note"] == ("contradictory eye: for '3002_OD' the DICOM laterality says left, the file name "
                                      "says right; the eye is left unknown")
    (tmp_path / "l.csv").write_text("image,patient_id,eye\nd/IM1.dcm,3001,right\nd/IM2.dcm,3001,right\n")
    listed = collect_inputs([tmp_path / "l.csv"]).set_index("image_id")
    assert listed.loc["d/IM2", "eye"] == "right" and listed.loc["d/IM1", "eye"] == ""
    assert listed.loc["d/IM1", "identity_note"] == ("contradictory eye: for 'd/IM1' the CSV says right, the DICOM laterality says "
                                                  "left; the eye is left unknown")


def test_the_patients_file_agrees_with_its_decision():
    """Its figures are those of the photos the decision stands on: an ungradable photo's grade 3
    never sits beside 'negative', and the worst eye is the one the reason names."""
    from drgrader.inference.patient_decision import decision_points
    from drgrader.inference.predict import OUTPUT_COLUMNS, patient_table, typed_predictions

    rows = []
    for image, eye, grade, fused, gradable in (("P4_left", "left", 0, 0.18, True), ("P4_L", "left", 3, 2.1, False),
                                               ("P4_right", "right", 0, 0.17, True),
                                               ("P3_left", "left", 2, 1.23, True), ("P3_right", "right", 2, 1.19, True)):
        score = {"P3_right": 1.79, "P3_left": 0.28, "P4_L": 1.9}.get(image, 0.1)  # first-stage scores
        rows.append({"path": f"{image}.jpeg", "image_id": image, "patient_id": image.split("_")[0], "eye": eye,
                     "identity_note": "", "grade": grade, "expected_grade": score, "score_any": score,
                     "score_referable": score, "any_dr": int(grade >= 1), "referable": int(grade >= 2),
                     "gradable": gradable, "quality_score": 0.8, "quality_reason": "" if gradable else "too dark",
                     "error": "", "fused_grade": fused})
    preds = typed_predictions(pd.DataFrame(rows).reindex(columns=[*OUTPUT_COLUMNS, "fused_grade"]))
    points = decision_points({"referable": 0.58, "cutpoints": [0.3, 0.58, 1.44, 2.5]}, None, table=preds, fused=True)
    patients = patient_table(preds, points).set_index("patient_id")
    p4 = patients.loc["P4"]
    assert p4["decision"] == "negative" and p4["images"] == 3 and not p4["all_gradable"]
    assert (p4["grade"], p4["referable"], p4["worst_image"]) == (0, 0, "P4_left")  # not the ungradable P4_L's 3 and 1
    p3 = patients.loc["P3"]
    assert p3["reason"].startswith("left eye fused grade 1.23") and (p3["worst_image"], p3["worst_eye"]) == ("P3_left", "left")


def test_every_missing_value_pandas_writes_is_no_patient():
    """pandas' own NA list (``#N/A`` from Excel's VLOOKUP, ``<NA>`` from ``astype(str)``): each made
    strangers one patient (probe 23, finding 3)."""
    from pandas._libs.parsers import STR_NA_VALUES

    assert [word for word in sorted(STR_NA_VALUES) if patient_id(word) or patient_id(word.lower())] == []


def test_a_patient_id_without_a_digit_among_numbers_is_no_patient(tmp_path, caplog):
    """Probe 35 AY3's second net: a missing-value word of a language the lists lack (`nieznany`)
    on two rows of a list whose ids are numbers paired two strangers' eyes as one patient."""
    names = ["IMG_A", "IMG_B", "c", "d", "e", "f", "g", "h", "i", "j"]
    for k, name in enumerate(names):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(k % 5, k))
    cells = ["nieznany", "nieznany", "101", "101", "102", "103", "104", "105", "106", "107"]
    eyes = ["left", "right", "left", "right"] + ["left"] * 6
    (tmp_path / "list.csv").write_text("image,patient_id,eye\n" + "".join(
        f"{n}.jpeg,{c},{e}\n" for n, c, e in zip(names, cells, eyes)))
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        table = collect_inputs([tmp_path / "list.csv"]).set_index("image_id")
    assert table.loc["IMG_A", "patient_id"] != table.loc["IMG_B", "patient_id"]  # never one patient
    assert table.loc["c", "patient_id"] == table.loc["d", "patient_id"] == "101"
    assert "1 patient id(s) stand for none where the others are ids (no digit among numbers, or a negative number among " \
           "positive ones: e.g. 'nieznany'): read as no patient" in caplog.text
    # Probe 36 AZ3: a negative number (what fillna(-1) writes) among positive ones, however few rows.
    for cells in (["-1", "-1", "10131", "10489", "10193"], ["-999", "-999", "7"], ["-1.0", "-1.0", "7"]):
        (tmp_path / "neg.csv").write_text("image,patient_id,eye\n" + "".join(
            f"{n}.jpeg,{c},{e}\n" for n, c, e in zip(names, cells, eyes)))
        table = collect_inputs([tmp_path / "neg.csv"]).set_index("image_id")
        assert table.loc["IMG_A", "patient_id"] != table.loc["IMG_B", "patient_id"], cells
    (tmp_path / "neg.csv").write_text("image,patient_id,eye\nIMG_A.jpeg,-1,left\nIMG_B.jpeg,-1,right\nc.jpeg,P7,left\n")
    table = collect_inputs([tmp_path / "neg.csv"]).set_index("image_id")  # among ids not all numbers: an id
    assert table.loc["IMG_A", "patient_id"] == table.loc["IMG_B", "patient_id"] == "-1"


def test_a_dicom_patient_id_of_zeros_is_no_patient_but_a_name_s_patient_0_is_one(tmp_path):
    """Probe 34 AX5: an anonymiser's PatientID '0' made every file one patient. Zeros in a name or
    a CSV are an id (ODIR-5K numbers its patients from 0: '0_left.jpg')."""
    rng = np.random.default_rng(5)
    for name, laterality in (("a", "L"), ("b", "R")):
        write_dicom(tmp_path / f"{name}.dcm", make_fundus(1, rng, height=96), patient_id="0", laterality=laterality)
    for k, eye in enumerate(("left", "right")):
        (tmp_path / f"0_{eye}.jpeg").write_bytes(photo_bytes(1, 3 + k))
    table = collect_inputs([tmp_path]).set_index("image_id")
    assert table.loc[["a", "b"], "patient_id"].tolist() == ["a", "b"]  # each its own, not one patient '0'
    assert table.loc[["0_left", "0_right"], "patient_id"].tolist() == ["0", "0"]


def test_initials_that_are_also_missing_value_words_are_a_patient(tmp_path):
    # Probe 36 AZ8: a research set named by initials (KA_left, KA_right) lost its patients and its
    # paired eyes: 'ka' (k.A.), 'sn' (S/N), 'nd' (N.D.) were matched as whole ids.
    from drgrader.data.eyes import patient_id

    for initials in ("KA", "SN", "ND", "OA", "NV", "Sin", "No"):
        assert patient_id(initials) == initials
    for dotted in ("k.A.", "S/N", "N.D.", "K A"):
        assert patient_id(dotted) == "", dotted
    for k, name in enumerate(("KA_left", "KA_right")):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(k, k))
    table = collect_inputs([tmp_path])
    assert table["patient_id"].tolist() == ["KA", "KA"] and table["identity_note"].tolist() == ["", ""]


@pytest.mark.parametrize("placeholder", ["NA", " n/a ", "Unknown", "null", "-", "?", "#N/A", "<NA>", "#NA", "-nan",
                                         "ANONYMOUS", ".", "N/K", "nk", "TBC", "Tba",
                                         # probe 34 AX3: spelt out, dotted, other fillers
                                         "not known", "N.K.", "missing", "TBD", "pending", "xxx", "*", "--", "to be confirmed",
                                         # probe 34 AX5: what anonymisers write
                                         "Anonymized", "Anonymised", "REMOVED", "DEIDENTIFIED", "ANONYMOUS^PATIENT",
                                         "XXXXXXXX",
                                         # probe 35 AY3, AY4: a pivot's empty cell, other languages, name values
                                         "(blank)", "<blank>", "(empty)", "NaT", "undefined", "missing id",
                                         "no patient id", "NO NAME", "unbekannt", "k.A.", "inconnu", "N/D",
                                         "ANONYMIZED_ID", "NONE^NONE", "PAT^ANON"])
def test_a_placeholder_patient_is_no_patient_not_one_patient_of_strangers(tmp_path, placeholder):
    """R and pandas write NA for a missing value, an anonymising export ANONYMOUS, SAS and Stata '.',
    NHS records 'N/K' (probe 33 AV18: '.', 'N/K', 'TBC' paired two people's eyes): two strangers'
    photos are not one patient 'NA'."""
    for k, name in enumerate(("a", "b", "c")):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(k, k))
    (tmp_path / "list.csv").write_text(f"image,patient_id,eye\na.jpeg,{placeholder},left\nb.jpeg,{placeholder},right\n"
                                       "c.jpeg,,left\n")
    write_dicom(tmp_path / "d.dcm", make_fundus(1, np.random.default_rng(4), height=96), patient_id=placeholder.strip(),
                laterality="R")
    table = collect_inputs([tmp_path / "list.csv", tmp_path / "d.dcm"]).set_index("image_id")
    assert table["patient_id"].tolist() == ["a", "b", "c", "d"]  # each a patient of its own, as the empty cell
    for image in "abcd":
        assert table.loc[image, "identity_note"].startswith(f"no patient: '{image}' has no CSV patient, DICOM PatientID")
    # A label file: a placeholder is refused as an empty cell is, naming the row.
    (tmp_path / "images").mkdir()
    for name in ("a", "b"):
        (tmp_path / "images" / f"{name}.jpeg").write_bytes(photo_bytes(1, 7))
    (tmp_path / "labels.csv").write_text(f"image,level,patient_id\na,0,P1\nb,2,{placeholder}\n")
    with pytest.raises(ValueError, match=r"^labels.csv row 2 \(image 'b'\): patient id \(column 'patient_id'\) is "
                                         f"{re.escape(repr(placeholder.strip()))}, a placeholder for a missing value$"):
        read_dataset(tmp_path, "csv")


AS_TEXT = ": format the column as text and export again"
FORMULA = "is an error value a spreadsheet shows for a formula that failed (the id is lost): fix the column, paste it as " \
          "values and export again"


@pytest.mark.parametrize(("cell", "why"), [
    ("1.23457E+11", "is a number a spreadsheet shortened (its digits are lost)" + AS_TEXT),
    ("1.2E+11", "is a number a spreadsheet shortened (its digits are lost)" + AS_TEXT),
    ("1,23457E+11", "is a number a spreadsheet shortened (its digits are lost)" + AS_TEXT),
    ("#######", "is what a spreadsheet shows in a column too narrow (the id is lost)" + AS_TEXT),
    ("#REF!", FORMULA), ("#VALUE!", FORMULA), ("#DIV/0!", FORMULA), ("#NAME?", FORMULA),  # probe 34 AX2
    # probe 35 AY1: other languages' and programs' error values; AY2: a long id rounded to 15 digits
    ("#NV", FORMULA), ("#N/D", FORMULA), ("#WERT!", FORMULA), ("#NOM?", FORMULA), ("Err:502", FORMULA),
    ("#ERROR!", FORMULA),
    ("440106199001011000", "is a number a spreadsheet rounded to 15 digits (the last ones are zeros, the id is lost): "
                           "format the column as text and export again"),
])
def test_a_patient_id_a_spreadsheet_mangled_is_refused_naming_the_row(tmp_path, cell, why):
    """Probe 33 AV17: Excel saves a 12-digit id as '1.23457E+11' (and a column too narrow as
    '#######'): every such row was one patient, two strangers' eyes paired, without a note."""
    for k, name in enumerate(("IMG_A", "IMG_B")):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(k, k))
    (tmp_path / "list.csv").write_text(f'image,patient_id,eye\nIMG_A.jpeg,123456789012,left\nIMG_B.jpeg,"{cell}",right\n')
    with pytest.raises(ValueError, match=f"^{re.escape(str(tmp_path / 'list.csv'))} row 2 \\(image 'IMG_B.jpeg'\\): patient "
                                         f"{re.escape(repr(cell) + ' ' + why)}$"):
        collect_inputs([tmp_path / "list.csv"])
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    for name in ("a", "b"):
        (root / "images" / f"{name}.jpeg").write_bytes(name.encode())  # the manifest does not read pixels
    (root / "labels.csv").write_text(f'image,level,patient_id\na,0,P1\nb,2,"{cell}"\n')
    with pytest.raises(ValueError, match=f"^labels.csv row 2 \\(image 'b'\\): patient {re.escape(repr(cell) + ' ' + why)}$"):
        read_dataset(root, "csv")
    # An id that merely holds an E, a '+' or a '#' is an id.
    (root / "labels.csv").write_text('image,level,patient_id\na,0,1E11\nb,2,"#12"\n')
    assert read_dataset(root, "csv")["patient_id"].tolist() == ["1E11", "#12"]


def test_a_long_id_ending_in_zero_is_an_id_where_its_column_kept_long_ids_whole(tmp_path):
    # Probe 36 AZ9: a real 16-digit id ending in 0 (one in ten of them) was refused as rounded, though
    # its neighbour's 16th digit showed the column was not.
    for k, name in enumerate(("IMG_A", "IMG_B", "IMG_C")):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(k, k))
    (tmp_path / "nik.csv").write_text("image,patient_id,eye\nIMG_A.jpeg,3171012345678910,left\n"
                                      "IMG_B.jpeg,3171012345678910,right\nIMG_C.jpeg,3171012345678911,left\n")
    assert collect_inputs([tmp_path / "nik.csv"])["patient_id"].tolist() == ["3171012345678910"] * 2 + ["3171012345678911"]
    # Probe 37 BA2: 18-digit ids Excel rounded (three zeros) stay refused beside a long id kept whole.
    (tmp_path / "nik4.csv").write_text("image,patient_id,eye\nIMG_A.jpeg,440106199001011000,left\n"
                                       "IMG_B.jpeg,440106199001011000,right\nIMG_C.jpeg,440106199001015678,left\n")
    with pytest.raises(ValueError, match="row 1 \\(image 'IMG_A.jpeg'\\): patient '440106199001011000' is a number a spreadsheet rounded"):
        collect_inputs([tmp_path / "nik4.csv"])
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    for name in ("a", "b"):
        (root / "images" / f"{name}.jpeg").write_bytes(name.encode())
    (root / "labels.csv").write_text("image,level,patient_id\na,0,3171012345678910\nb,2,3171012345678911\n")
    assert read_dataset(root, "csv")["patient_id"].tolist() == ["3171012345678910", "3171012345678911"]


def test_two_sites_with_eye_folders_are_noted_as_two_folders_are(tmp_path):
    # Probe 38 BB6: siteA/left/1001_left.jpeg and siteB/right/1001_right.jpeg were one patient, paired, no note:
    # the two-folders note was skipped whenever the last folder named the eye.
    for site, eye, k in (("siteA", "left", 1), ("siteB", "right", 2)):
        (tmp_path / site / eye).mkdir(parents=True)
        (tmp_path / site / eye / f"1001_{eye}.jpeg").write_bytes(photo_bytes(k, k))
    table = collect_inputs([tmp_path])
    assert all(n.startswith("one patient in two folders: the eyes of patient '1001' are in 2 folders") for n in table["identity_note"])
    (tmp_path / "one" / "left").mkdir(parents=True)  # one site's left/ and right/: nothing to say
    (tmp_path / "one" / "right").mkdir()
    for eye, k in (("left", 3), ("right", 4)):
        (tmp_path / "one" / eye / f"2002_{eye}.jpeg").write_bytes(photo_bytes(k, k))
    assert collect_inputs([tmp_path / "one"])["identity_note"].tolist() == ["", ""]


def test_a_number_after_the_eye_read_as_a_second_photo_says_so(tmp_path):
    # Probe 37 BA9: S1_left_10 and S1_left_11 (patients 10 and 11 of series S1) were one patient 'S1',
    # noted as "several photos of one eye" as if they were repeat shots.
    for k, name in enumerate(("S1_left_10", "S1_right_10", "S1_left_11", "S1_right_11")):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(k % 3, k))
    table = collect_inputs([tmp_path]).set_index("image_id")
    assert ("several photos of one eye: 2 photos of the left eye of patient 'S1'; all kept, the worst decides ('S1_left_10' is "
            "read as photo 10 of it: if 10 numbers the patient, give the patients in a CSV)") in table.loc["S1_left_10", "identity_note"]


def test_a_list_row_with_more_fields_than_its_header_is_refused_naming_the_row(tmp_path):
    # Probe 37 BA11: "12,345" unquoted in a list's first column: pandas made "12" a row index, every
    # column shifted, and 12,345 and 13,345 were one patient '345'.
    for name in ("IMG_A", "IMG_B"):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(1, 1))
    (tmp_path / "tc.csv").write_text("patient_id,image,eye\n12,345,IMG_A.jpeg,left\n13,345,IMG_B.jpeg,right\n")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'tc.csv'} row 1: 4 fields, but the header has 3 (patient_id, "
                                                   "image, eye): '12,345,IMG_A.jpeg,left'; a cell holding a comma "
                                                   "('12,345') must be quoted")):
        collect_inputs([tmp_path / "tc.csv"])
    # Probe 38 BB9: a semicolon list with a comma in a cell is told so, not to quote a cell.
    (tmp_path / "sc.csv").write_text("image;patient_id;eye\nIMG_A.jpeg;12,345;left\n")
    with pytest.raises(ValueError, match=re.escape("row 1: 2 fields, but the header has 1 (image;patient_id;eye): "
                                                   "'IMG_A.jpeg;12,345;left'; its columns look separated by semicolons")):
        collect_inputs([tmp_path / "sc.csv"])
    (tmp_path / "tc.csv").write_text('patient_id,image,eye\n"12,345",IMG_A.jpeg,left\n"13,345",IMG_B.jpeg,right\n')
    assert collect_inputs([tmp_path / "tc.csv"])["patient_id"].tolist() == ["12,345", "13,345"]


def test_one_name_in_nfc_and_nfd_is_one_patient(tmp_path):
    """macOS writes file names decomposed (NFD): 'Müller' typed and 'Müller' from a Mac are one patient."""
    nfc, nfd = unicodedata.normalize("NFC", "Müller"), unicodedata.normalize("NFD", "Müller")
    (tmp_path / f"{nfc}_right.jpeg").write_bytes(photo_bytes(1, 1))
    (tmp_path / f"{nfd}_left.jpeg").write_bytes(photo_bytes(2, 2))
    table = collect_inputs([tmp_path])
    assert table["patient_id"].tolist() == [nfc, nfc] and sorted(table["eye"]) == ["left", "right"]
    assert table["identity_note"].tolist() == ["", ""]
    assert patient_id(nfd) == patient_id(nfc)  # as serve compares two uploads' patients


def test_the_same_photo_under_two_patients_is_noted_on_both(tmp_path, caplog):
    """10007_left.jpeg is a byte copy of 10131_left.jpeg: patient 10007 would be judged on 10131's eye."""
    for k, name in enumerate(("10131_left", "10131_right", "10007_right")):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(k + 1, k))
    (tmp_path / "10007_left.jpeg").write_bytes((tmp_path / "10131_left.jpeg").read_bytes())
    table = collect_inputs([tmp_path]).set_index("image_id")
    assert table["patient_id"].tolist() == ["10007", "10007", "10131", "10131"]  # kept as given
    note = ("same photo under two patients: '10007_left', '10131_left' are one file's bytes, under patients '10007' and "
            "'10131'; kept apart as given, so each patient is judged on it (check that it is not filed under the wrong patient)")
    assert table.loc["10007_left", "identity_note"] == table.loc["10131_left", "identity_note"] == note
    assert table.loc["10131_right", "identity_note"] == ""
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        warn_identity(table)
    [warning] = identity_warnings(caplog)
    assert "identity of 2 of 4 photos resolved with a note (same photo under two patients 2)" in warning


def test_dicom_laterality_tags_that_disagree_or_say_both_eyes_are_noted(tmp_path):
    rgb = make_fundus(1, np.random.default_rng(3), height=96)
    mixed = write_dicom(tmp_path / "scan2.dcm", rgb, patient_id="10120", laterality="L")
    ds = pydicom.dcmread(mixed)
    ds.Laterality = "R"  # the series says right, the photo left
    ds.save_as(mixed)
    write_dicom(tmp_path / "scan4.dcm", rgb[:, ::-1].copy(), patient_id="10489", laterality="B")
    table = collect_inputs([tmp_path]).set_index("image_id")
    assert table.loc["scan2", "eye"] == "" and table.loc["scan2", "identity_note"] == (
        "contradictory eye: for 'scan2' the DICOM ImageLaterality says left, the DICOM Laterality says right; the eye is left unknown")
    assert table.loc["scan4", "eye"] == "" and table.loc["scan4", "identity_note"] == (
        "no eye: 'scan4' has no CSV eye or name like 10_left, and DICOM laterality B (both eyes); which eye is unknown, "
        "it is judged as an eye of its own")


@pytest.mark.parametrize(("files", "labels", "clash"), [
    (["0/10007_right.jpeg", "0/10131_left.jpeg", "3/10131_right.jpeg", "3/10131_RIGHT.jpeg"], None,
     "'10131_RIGHT.jpeg' and '10131_right.jpeg'"),
    (["images/10007_left.jpeg", "images/10007_right.jpeg", "images/10007_left.png"], "image,level\n10007_left,0\n10007_right,1\n",
     "'10007_left.jpeg' and '10007_left.png'"),
], ids=["case-in-grade-folder", "extension-in-kaggle"])
def test_two_files_under_one_name_in_a_data_set_are_refused_naming_both(tmp_path, capsys, files, labels, clash):
    """10131_right.jpeg and 10131_RIGHT.jpeg, 10007_left.jpeg and 10007_left.png: one of them used
    (the other not even counted), as before, is a photo dropped or mixed up without a word."""
    root = tmp_path / "data"
    for k, name in enumerate(files):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(photo_bytes(k % 5, k))
    if labels:
        (root / "trainLabels.csv").write_text(labels)
    (tmp_path / "exp.yaml").write_text(f"data:\n  root: {root}\n  cache_dir: {tmp_path / 'cache'}\n")
    assert main(["data", "summary", str(tmp_path / "exp.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"{clash} differ only in case or extension: two photos under one name" in err and err.count("\n") == 1


def test_two_files_are_never_one_image_id(tmp_path):
    # x.jpeg and x.png of one folder were both image "x": the patients file's worst_image could not say which.
    (tmp_path / "10007_left.jpeg").write_bytes(photo_bytes(0, 1))
    Image.open(io.BytesIO(photo_bytes(3, 2))).save(tmp_path / "10007_left.png")
    (tmp_path / "scan.jpeg").write_bytes(photo_bytes(1, 3))
    table = collect_inputs([tmp_path]).set_index("path")
    ids = table["image_id"].to_dict()
    assert ids == {str(tmp_path / "10007_left.jpeg"): "10007_left.jpeg", str(tmp_path / "10007_left.png"): "10007_left.png",
                   str(tmp_path / "scan.jpeg"): "scan"}  # a name that is not shared is left alone
    assert set(table["patient_id"]) == {"10007", "scan"}
    assert all(n.startswith("several photos of one eye") for n in table.loc[table["patient_id"] == "10007", "identity_note"])


def test_the_patients_file_counts_every_photo_read_or_not(tiny_bundle, tmp_path):
    # An unreadable photo was left out of `images` and `all_gradable`: 1 image, all gradable, for two photos.
    (tmp_path / "10007_left.jpeg").write_bytes(photo_bytes(2, 5))
    (tmp_path / "10007_right.jpeg").write_bytes(b"\xff\xd8\xff not the rest of a JPEG")
    out = tmp_path / "p.csv"
    assert main(["predict", str(tiny_bundle), str(tmp_path / "10007_left.jpeg"), str(tmp_path / "10007_right.jpeg"),
                 "--out", str(out)]) == 0
    [patient] = read(tmp_path / "p_patients.csv").to_dict("records")
    assert patient["images"] == "2" and patient["all_gradable"] == "False"
    assert patient["worst_image"] == "10007_left"


def test_one_legacy_line_in_a_label_file_leaves_the_other_names_as_written(tmp_path):
    # Before: one line that was not UTF-8 made the whole label file Latin-1: José (UTF-8) became
    # JosÃ©, a patient of its own, and Excel's O’Brien (Windows-1252) O\x92Brien, with an invisible
    # control character. Now only that line is read as Windows-1252; the warning names it (a quoted
    # note over two lines counts as two lines, as an editor shows them).
    (tmp_path / "images").mkdir()
    for name in ("x1", "x2", "x3", "x4"):
        (tmp_path / "images" / f"{name}.jpg").write_bytes(photo_bytes(1, 1))
    (tmp_path / "labels.csv").write_bytes('image,level,patient_id,note\nx1,1,José,"two\nlines"\n'.encode()
                                          + "x2,2,O’Brien,\n".encode("cp1252")
                                          + "x3,0,José,\nx4,0,Zoë,\n".encode())
    with pytest.warns(UserWarning) as caught:
        table = read_dataset(tmp_path, format="csv").set_index("image_id")
    assert table["patient_id"].to_dict() == {"x1": "José", "x2": "O’Brien", "x3": "José", "x4": "Zoë"}
    assert "labels.csv: 1 line(s) are not valid UTF-8 (line 4): read as Windows-1252 / Latin-1" in [
        str(w.message) for w in caught]


def _label_set(root, labels: str, names: list[str]):
    (root / "images").mkdir(parents=True)
    for name in names:
        (root / "images" / f"{name}.jpeg").write_bytes(name.encode())  # the manifest does not read pixels
    (root / "labels.csv").write_text(labels)
    return root


def test_a_label_file_s_patient_cell_that_a_name_contradicts_is_noted_as_predict_notes_it(tmp_path, caplog):
    """Probe 29 Z9: 10_left given patient 12 (a shifted cell) beside 10_right, patient 10, was taken
    without a word; its eye still paired it as patient 12's fellow eye."""
    root = _label_set(tmp_path, "image,level,patient_id,eye\n10_left,0,12,left\n10_right,1,10,right\n12_right,2,12,right\n",
                      ["10_left", "10_right", "12_right"])
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        table = read_dataset(root).set_index("image_id")
    assert table.loc["10_left", "patient_id"] == "12" and table.loc["10_left", "eye"] == ""  # never a fellow eye
    assert [r.message for r in caplog.records if "contradicts" in r.message] == [
        f"{root}: 1 label row(s) give a patient their image's name contradicts; e.g. contradictory patient: '10_left' is "
        "patient '12' by its CSV row, DICOM header or link name, but its name says patient '10', the patient of '10_right'; the given "
        "patient is taken, its eye (left) left unknown, so it is not paired as any patient's fellow eye (correct the label "
        "file's patient cell if it is shifted)"]
    caplog.clear()
    (root / "labels.csv").write_text("image,level,patient_id\n10_left,0,P1\n10_right,1,P1\n12_right,2,P2\n")
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        read_dataset(root)  # a label file that renames patients: nothing contradicts it
    assert not [r for r in caplog.records if "contradicts" in r.message]
    assert not [r for r in caplog.records if "given two patients" in r.message]
    # Probe 51 CO3: one name's two eyes given two patients (predict notes it): said here too.
    (root / "labels.csv").write_text("image,level,patient_id\n10_left,0,A\n10_right,1,B\n12_right,2,C\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        read_dataset(root)
    assert [r.message for r in caplog.records if "given two patients" in r.message] == [
        f"{root}: 2 label row(s) of one name's patient are given two patients; e.g. contradictory patient: '10_left', "
        "'10_right' are named for one patient ('10') but given 'A', 'B'; kept apart as given (one patient given to both "
        "makes them one); a patient-level split may put that patient's eyes on both sides"]


def test_a_label_file_s_eye_cell_against_the_name_is_refused_with_a_patient_column_too(tmp_path):
    """Probe 29 Z9: with a patient column, '10_left' labelled the right eye was taken as given."""
    root = _label_set(tmp_path, "image,level,patient_id,eye\n10_left,0,10,right\n10_right,1,10,left\n", ["10_left", "10_right"])
    with pytest.raises(ValueError, match=r"^labels.csv row 1 \(image '10_left'\): eye 'right' \(column 'eye'\) but the name says left$"):
        read_dataset(root)


def test_a_label_file_reads_patients_and_eyes_from_names_as_predict_does(tmp_path):
    """Probe 32 B6: a label file read only `_left`/`_right` names: `10_L`, `Patient002_R`, `P7_OS`
    were a patient per photo, so a patient-level split put a patient's two eyes on both sides,
    while predict read the same names as one patient. One rule for names now."""
    from drgrader.config import SplitConfig
    from drgrader.data.split import make_split

    names = ["10_L", "10_R", "Patient002_L", "Patient002_R", "P7_OS", "P7_OD", "IDRiD_001"]
    root = _label_set(tmp_path, "image,level\n" + "".join(f"{n},{k % 5}\n" for k, n in enumerate(names)), names)
    table = read_dataset(root).set_index("image_id").loc[names]
    assert table["patient_id"].tolist() == ["10", "10", "Patient002", "Patient002", "P7", "P7", "IDRiD_001"]
    assert table["eye"].tolist() == ["left", "right", "left", "right", "left", "right", ""]
    split = make_split(table.reset_index(), SplitConfig(val=0.3, test=0.3, seed=0))
    sides = pd.DataFrame({"patient": table["patient_id"].to_numpy(), "split": split.to_numpy()})
    assert sides.groupby("patient")["split"].nunique().max() == 1  # both eyes on one side
    root = _label_set(tmp_path / "b", "image,level,patient_id,eye\nPatient002_L,0,Patient002,right\n", ["Patient002_L"])
    with pytest.raises(ValueError, match=r"eye 'right' \(column 'eye'\) but the name says left$"):
        read_dataset(root)


def test_two_photos_of_one_eye_graded_apart_are_kept_with_a_warning(tmp_path, caplog):
    """Probe 33 BV10: ``10_left`` grade 0 and ``10_left_2`` grade 4 (a second photo of that eye)
    were taken without a note: a reference that contradicts itself for one eye."""
    names = ["10_left", "10_left_2", "10_right", "12_left", "12_left_2"]
    root = _label_set(tmp_path, "image,level\n10_left,0\n10_left_2,4\n10_right,0\n12_left,2\n12_left_2,2\n", names)
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        table = read_dataset(root)
    assert len(table) == 5 and sorted(table["grade"]) == [0, 0, 2, 2, 4]
    assert ("1 eye(s) have photos graded apart (e.g. patient '10' left eye: '10_left' grade 0, '10_left_2' grade 4)"
            in caplog.text), caplog.text


def test_a_photo_of_the_image_folder_named_by_any_path_is_known_by_its_name_there(tmp_path):
    """Probe 32 B19: one patient's eyes named by an absolute path and by a path through ``../``
    were two patients (the folder part of each spelling stayed in the patient)."""
    names = ["10_left", "10_right", "12_left", "12_right"]
    images = (tmp_path / "images").resolve()
    labels = (f"image,level\n{images}/10_left.jpeg,2\n../images/10_right.jpeg,2\n"
              "12_left,0\n./12_right.jpeg,0\n")
    root = _label_set(tmp_path, labels, names)
    table = read_dataset(root).set_index("image_id").loc[names]
    assert table["patient_id"].tolist() == ["10", "10", "12", "12"]
    assert table["eye"].tolist() == ["left", "right", "left", "right"]


def test_an_image_id_cell_that_the_file_s_name_contradicts_is_noted_as_a_patient_or_eye_cell_is(tmp_path):
    """A list's image id cell said the eye and patient, taking over what the file's own name says
    without a note: 10131_left.jpeg listed as 10131_right graded as the right eye, as 10007_right
    as patient 10007's (probe 31 S1). It is a CSV claim, checked against the name as the patient
    and eye cells are: the eye left unknown, a contested patient never paired, both noted."""
    for k, name in enumerate(("10131_left", "10131_right", "10007_left", "IMG_0001")):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(k % 3, k))
    (tmp_path / "swap.csv").write_text("image,image_id\n10131_left.jpeg,10131_right\n10131_right.jpeg,10131_left\n")
    swapped = collect_inputs([tmp_path / "swap.csv"]).set_index("image_id")
    assert swapped["patient_id"].tolist() == ["10131", "10131"] and swapped["eye"].tolist() == ["", ""]  # before: right, left
    assert swapped.loc["10131_right", "identity_note"] == ("contradictory eye: for '10131_right' the CSV's image id says "
                                                           "right, the file name '10131_left' says left; the eye is left unknown")
    (tmp_path / "other.csv").write_text("image,image_id\n10131_left.jpeg,10007_right\n10131_right.jpeg,10131_right\n"
                                        "10007_left.jpeg,10007_left\nIMG_0001.jpeg,20_left\n")
    other = collect_inputs([tmp_path / "other.csv"]).set_index("image_id")
    assert other.loc["10007_right", "patient_id"] == "10007" and other.loc["10007_right", "eye"] == ""  # never paired
    assert "the patient of '10131_right'" in other.loc["10131_right", "identity_note"]  # 10131's own photo: noted too
    assert other.loc["10007_left", "eye"] == "left" and other.loc["20_left", "identity_note"] == ""  # a name that says nothing: the id's
    assert (other.loc["20_left", "patient_id"], other.loc["20_left", "eye"]) == ("20", "left")
    (tmp_path / "same.csv").write_text("image,image_id\n10131_left.jpeg,10131_left\n10131_right.jpeg,IMG_7\n")
    same = collect_inputs([tmp_path / "same.csv"]).set_index("image_id")  # an id that agrees, or says nothing: the name's
    assert same["patient_id"].tolist() == ["10131", "10131"] and same["eye"].tolist() == ["left", "right"]
    assert same["identity_note"].tolist() == ["", ""]


def test_an_image_id_cell_written_with_its_extension_is_checked_as_one_without(tmp_path):
    """Probe 32 A1: `10007_left.jpeg` in the image id cell of 10131_left.jpeg's row side-stepped
    the check (the cell read as no claim): the worst image named patient 10007's photo, no note."""
    for k, name in enumerate(("10131_left", "10131_right", "10007_right")):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(k % 3, k))
    (tmp_path / "l.csv").write_text("image,image_id\n10131_left.jpeg,10007_left.jpeg\n10007_right.jpeg,10007_right\n"
                                    "10131_right.jpeg,10131_left.JPG\n")
    table = collect_inputs([tmp_path / "l.csv"]).set_index("image_id")
    assert "contradictory patient" in table.loc["10007_left.jpeg", "identity_note"]
    assert table.loc["10007_left.jpeg", "eye"] == ""  # never paired with 10007_right
    assert table.loc["10131_left.JPG", "identity_note"].startswith(
        "contradictory eye: for '10131_left.JPG' the CSV's image id says left, the file name '10131_right' says right; "
        "the eye is left unknown")


def test_one_patients_named_photos_given_two_patients_are_noted(tmp_path):
    """Probe 35 AY8: `10131_left.jpeg,P7` / `10131_right.jpeg,P8` (a typo, a row off by one) were two
    one-eyed patients without a note."""
    for k, eye in enumerate(("left", "right")):
        (tmp_path / f"10131_{eye}.jpeg").write_bytes(photo_bytes(k + 1, k))
    (tmp_path / "list.csv").write_text("image,patient_id\n10131_left.jpeg,P7\n10131_right.jpeg,P8\n")
    table = collect_inputs([tmp_path / "list.csv"]).set_index("image_id")
    assert table["patient_id"].tolist() == ["P7", "P8"]  # kept as given
    note = ("contradictory patient: '10131_left', '10131_right' are named for one patient ('10131') but given 'P7', 'P8'; "
            "kept apart as given (one patient given to both makes them one)")
    assert all(note in n for n in table["identity_note"]), table["identity_note"].tolist()
    # Probe 36 AZ10: the names differ as a retyped id does (leading zeros).
    (tmp_path / "10131_left.jpeg").rename(tmp_path / "0010131_left.jpeg")
    (tmp_path / "list.csv").write_text("image,patient_id\n0010131_left.jpeg,P7\n10131_right.jpeg,P8\n")
    table = collect_inputs([tmp_path / "list.csv"])
    assert all("contradictory patient: '0010131_left', '10131_right' are named for one patient ('0010131')" in n
               for n in table["identity_note"]), table["identity_note"].tolist()


def test_a_link_named_for_one_patient_to_another_patients_photo_is_noted(tmp_path):
    """Probe 34 AX15: a symbolic link 10007_left.jpeg -> 10570_left.jpeg (a link farm off by one)
    was graded as patient 10007's left eye without a note."""
    store, farm = tmp_path / "store", tmp_path / "farm"
    store.mkdir(), farm.mkdir()
    for k, name in enumerate(("10570_left", "10007_right")):
        (store / f"{name}.jpeg").write_bytes(photo_bytes(k + 1, k))
    (farm / "10007_left.jpeg").symlink_to(store / "10570_left.jpeg")
    (farm / "10007_right.jpeg").symlink_to(store / "10007_right.jpeg")  # a link that agrees: nothing to say
    table = collect_inputs([farm]).set_index("image_id")
    assert table.loc["10007_left", "identity_note"].startswith(
        "contradictory patient: '10007_left' is patient '10007' by its CSV row, DICOM header or link name, but its name "
        "says patient '10570'"), table.loc["10007_left", "identity_note"]
    assert table.loc["10007_left", "eye"] == ""  # never paired as 10007's fellow eye


def test_a_photo_in_a_format_drgrader_does_not_read_is_a_row_and_its_patient_is_not_negative(tiny_bundle, tmp_path):
    """Probe 34 AX17: 10193_right.heic (an iPhone export) beside 10193_left.jpeg was skipped with a
    console line; the patient was 'negative ... the only photo' though its right eye was never seen.
    A stray space after an extension ('10_right.jpeg ') was skipped likewise."""
    import drgrader

    (tmp_path / "10193_left.jpeg").write_bytes(photo_bytes(1, 1))
    (tmp_path / "10193_right.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(200))
    (tmp_path / "10_left.jpeg").write_bytes(photo_bytes(1, 2))
    (tmp_path / "10_right.jpeg ").write_bytes(photo_bytes(2, 3))
    photos, patients = drgrader.grade(tiny_bundle, [str(tmp_path)])
    photos, patients = photos.set_index("image_id"), patients.set_index("patient_id")
    assert photos.loc["10193_right", "error"] == ("a HEIC photo, a format drgrader does not read: convert it to JPEG "
                                                  "or PNG"), photos.loc["10193_right", "error"]
    assert patients.loc["10193", "decision"] != "negative" and "the only photo" not in patients.loc["10193", "reason"]
    assert photos.loc["10_right", "error"] == "" and patients.loc["10", "reason"].count("eye") >= 1
    # Probe 35 AY9: a photo not yet downloaded whole is a row too, its eye not graded.
    (tmp_path / "10193_right.heic").unlink()
    (tmp_path / "10193_right.jpeg.crdownload").write_bytes(b"\x00" * 300)
    photos, patients = drgrader.grade(tiny_bundle, [str(tmp_path)])
    photos, patients = photos.set_index("image_id"), patients.set_index("patient_id")
    assert photos.loc["10193_right.jpeg", "error"] == "a partial download (.crdownload): download the photo again"
    assert patients.loc["10193", "decision"] != "negative"


def test_a_file_with_a_hidden_second_extension_keeps_its_patient_and_eye(tmp_path):
    """Probe 34 AX12: `10570_left.jpeg.jpg` (Windows hides the last extension, a user adds one)
    was patient '10570_left.jpeg' of its own beside 10570's right eye."""
    (tmp_path / "10570_left.jpeg.jpg").write_bytes(photo_bytes(1, 1))
    (tmp_path / "10570_right.jpg").write_bytes(photo_bytes(2, 2))
    table = collect_inputs([tmp_path]).set_index("image_id")
    assert table.loc[["10570_left.jpeg", "10570_right"], ["patient_id", "eye"]].values.tolist() == [
        ["10570", "left"], ["10570", "right"]]


def test_an_image_id_cell_given_to_two_files_is_noted_on_both(tmp_path):
    """Probe 34 AX7: `image,image_id` rows `a.jpeg,P1` and `b.jpeg,P1` (a patient number put in the
    id column, or one id pasted twice) were named `a` and `b` without a word of the cells."""
    for k, name in enumerate(("a", "b", "c")):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(k, k))
    (tmp_path / "list.csv").write_text("image,image_id\na.jpeg,P1\nb.jpeg,P1\nc.jpeg,P2\n")
    table = collect_inputs([tmp_path / "list.csv"]).set_index("image_id")
    assert sorted(table.index) == ["P2", "a", "b"]
    for image in ("a", "b"):
        assert ("image id repeated: image id 'P1' is given to 2 files (a.jpeg, b.jpeg); each is named by its file "
                "instead") in table.loc[image, "identity_note"]
    assert "image id repeated" not in table.loc["P2", "identity_note"]


def test_a_second_photo_of_an_eye_joins_its_patient_as_another_photo_of_that_eye(tmp_path):
    """Probe 32 A13: `5_left_2.jpeg` (a camera's second shot) and `6_left_disc.jpeg` (the disc-centred
    field beside the macula one) were patients of their own, patient 5 cleared beside them."""
    for k, name in enumerate(("5_left", "5_left_2", "5_right", "6_left_macula", "6_left_disc", "6_right_macula")):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(k % 3, k))
    table = collect_inputs([tmp_path]).set_index("image_id")
    assert table["patient_id"].tolist() == ["5", "5", "5", "6", "6", "6"]
    assert table["eye"].tolist() == ["left", "left", "right", "left", "left", "right"]
    assert "photos of one eye" in table.loc["5_left_2", "identity_note"]


def test_explain_over_a_list_with_a_contested_image_id_says_so(tiny_bundle, tmp_path, caplog):
    """Probe 32 A18: explain filed and titled 10131_left's heat map as '10007_left' (a shifted id
    cell) without the note predict gives for the same list."""
    from drgrader.inference.explain import explain_command

    for k, name in enumerate(("10131_left", "10007_right")):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(k % 3, k))
    (tmp_path / "l.csv").write_text("image,image_id\n10131_left.jpeg,10007_left\n10007_right.jpeg,10007_right\n")
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        explain_command(tiny_bundle, [tmp_path / "l.csv"], tmp_path / "heat")
    assert "identity of 2 of 2 photos resolved with a note (contradictory patient 2" in caplog.text
    assert "a panel is titled by its image id as given: e.g. 10007_left: contradictory patient" in caplog.text


def test_a_label_file_whose_names_give_no_patient_says_so(tmp_path, caplog):
    """Probe 33 BV5: `10_left_eye`, `left_10`, `10L`: each a patient of its own, a patient's eyes
    on both sides of the split, without the note predict gives the same files. (``10_left_eye`` is read as
    patient 10's left eye since probe 59 BW1: ``10_left_scan`` here.)"""
    names = ["10_left_scan", "10_right_scan", "left_12", "right_12"]
    root = _label_set(tmp_path, "image,level\n" + "".join(f"{n},0\n" for n in names), names)
    with caplog.at_level(logging.INFO, logger="drgrader"):
        read_dataset(root, "csv", labels="labels.csv", images="images")
    assert ("labels.csv: no patient column, and no name gives a patient and eye (e.g. '10_left_scan'): each of the 4 "
            "photos is a patient of its own") in caplog.text  # when some do, the info line names the rest


def test_two_sites_or_two_people_under_one_patient_id_in_one_list_are_refused(tmp_path):
    """Probe 39 BC4: a pooled multi-site list (or one whose names or dates of birth show two
    people) with one id for two patients: the site column was not read and the two paired."""
    for k, name in enumerate(("a1", "b1", "a2", "a3")):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(k % 5, k))
    rows = "a1.jpeg,{},1001,left\nb1.jpeg,{},1001,right\na2.jpeg,A,1002,left\na3.jpeg,A,1002,right\n"
    for column, first, second, what in (("site", "A", "B", "sites"), ("Clinic", "North", "South", "sites"),
                                        ("patient_name", "SMITH^JOHN", "JONES^MARY", "people"),
                                        ("DOB", "1950-01-01", "1988-07-30", "people")):
        (tmp_path / "l.csv").write_text(f"image,{column},patient_id,eye\n" + rows.format(first, second))
        with pytest.raises(DataError, match=re.escape(f"patient '1001' has rows of two {what} in {column!r} ({first!r} and "
                                                      f"{second!r}): two patients under one id")):
            collect_inputs([tmp_path / "l.csv"])
    # Probe 40 BD2: by a word of the name, not a list of names.
    for column, first, second in (("hospital_id", "H1", "H2"), ("screening_centre", "N", "S"), ("facility", "X", "Y"),
                                  ("first_name", "JOHN", "MARY"), ("Patient's Name", "A B", "C D"), ("sex", "M", "F"),
                                  ("Standort", "Nord", "Sued"),  # probe 41 CE9
                                  ("Forename", "JOHN", "MARY"), ("YOB", "1950", "1988"), ("Vorname", "Hans", "Eva"),
                                  ("sexo", "M", "F"), ("MRN", "H001", "H002")):  # probe 42 BF1, BF5
        (tmp_path / "l.csv").write_text(f"image,{column},patient_id,eye\n" + rows.format(first, second).replace(",A,", f",{first},"))
        with pytest.raises(DataError, match="patient '1001' has rows of two (sites|people) in"):
            collect_inputs([tmp_path / "l.csv"])
    # Probe 41 BE1: a site's or person's name (not a bare 'name') with no other patient to compare with.
    for column in ("Site Name", "hospital_name", "first_name", "Patient's Name"):
        (tmp_path / "l.csv").write_text(f"image,{column},patient_id,eye\na1.jpeg,North,1001,left\nb1.jpeg,South,1001,right\n")
        with pytest.raises(DataError, match="patient '1001' has rows of two (sites|people) in"):
            collect_inputs([tmp_path / "l.csv"])
    # A bare 'name' that is each photo's own (a camera's file name) says nothing of people.
    (tmp_path / "l.csv").write_text("image,name,patient_id,eye\na1.jpeg,IMG1,1001,left\nb1.jpeg,IMG2,1001,right\n"
                                    "a2.jpeg,IMG3,1002,left\na3.jpeg,IMG4,1002,right\n")
    assert len(collect_inputs([tmp_path / "l.csv"])) == 4
    # Probe 40 BD5: the patients from the photos' names (no patient column, or a blank cell): alike.
    for k, name in enumerate(("1001_left", "1001_right")):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(k + 1, k + 20))
    for header, cells in (("image,site", ("", "")), ("image,site,patient_id", (",", ",")),
                          ("image,site,patient_id", (",#N/A", ",N/K"))):  # probe 41 BE2: missing-value marks
        (tmp_path / "l.csv").write_text(f"{header}\n1001_left.jpeg,A{cells[0]}\n1001_right.jpeg,B{cells[1]}\n")
        with pytest.raises(DataError, match="patient '1001' has rows of two sites in 'site'"):
            collect_inputs([tmp_path / "l.csv"])
    (tmp_path / "l.csv").write_text("image,site,patient_id,eye\n" + rows.format("A", "A"))  # one site: read
    assert collect_inputs([tmp_path / "l.csv"])["patient_id"].tolist() == ["1001", "1001", "1002", "1002"]


def _two_patient_list(folder: Path, column: str, first: str, second: str) -> Path:
    """Patient 1001's eyes with two values of ``column``, patient 1002's with one."""
    for k, name in enumerate("abcd"):
        if not (folder / f"{name}.jpeg").exists():
            (folder / f"{name}.jpeg").write_bytes(photo_bytes(k % 5, k + 40))
    listing = folder / "l.csv"
    listing.write_text(f"image,patient_id,eye,{column}\na.jpeg,1001,left,{first}\nb.jpeg,1001,right,{second}\n"
                       f"c.jpeg,1002,left,{first}\nd.jpeg,1002,right,{first}\n", encoding="utf-8")
    return listing


@pytest.mark.parametrize("column", [
    "voornaam", "geslacht", "sobrenome", "Age",  # probe 43 BG1: Dutch, Portuguese, an age
    "National ID", "SSN", "Medical Record No.", "UHID", "CHI number", "Passport No", "Chart #",  # BG2
    "DoB", "D.O.B.", "dateofbirth", "fname", "Ptname", "M/F", "Geb_Datum",  # BG5: run together or dotted
    "氏名", "患者氏名", "ＤＯＢ", "Имя", "病院", "Hôpital", "Género", "Établissement"])  # BG8: other scripts, accents
def test_person_and_site_columns_in_any_spelling_are_refused_with_two_values_under_one_id(tmp_path, column):
    with pytest.raises(DataError, match=f"patient '1001' has rows of two (people|sites) in {re.escape(repr(column))}"):
        collect_inputs([_two_patient_list(tmp_path, column, "X1 Nord", "Y2 Sued")])


def test_a_bare_name_column_shared_by_rows_of_two_people_under_one_id_is_refused(tmp_path):
    """Probe 43 CG4: ids 1, 2 reused for two people each, `Name` naming them: a bare name was taken
    for each photo's own and the two people's eyes pooled."""
    for k, name in enumerate("abcdefgh"):
        (tmp_path / f"{name}.jpeg").write_bytes(photo_bytes(k % 5, k + 60))
    rows = [("a", "1", "left", "Ann"), ("b", "1", "right", "Ann"), ("c", "1", "left", "Bea"), ("d", "1", "right", "Bea"),
            ("e", "2", "left", "Cid"), ("f", "2", "right", "Cid"), ("g", "2", "left", "Dan"), ("h", "2", "right", "Dan")]
    (tmp_path / "l.csv").write_text("image,patient_id,eye,Name\n" + "".join(f"{i}.jpeg,{p},{e},{n}\n" for i, p, e, n in rows))
    with pytest.raises(DataError, match="patient '1' has rows of two people in 'Name' \\('Ann' and 'Bea'\\)"):
        collect_inputs([tmp_path / "l.csv"])


def test_two_people_in_formats_or_names_that_look_alike_are_two(tmp_path):
    """Probe 47 BK3: `1/12/1950` (US: 12 January) and `1950-12-01` folded to one day; BK8: a surname `Na`
    taken for a missing-value mark; BK5: every patient with two photos two people, each name on one row."""
    for column, first, second in (("DOB", "1/12/1950", "1950-12-01"), ("Surname", "Na", "Lee")):
        with pytest.raises(DataError, match=f"patient '1001' has rows of two people in '{column}'"):
            collect_inputs([_two_patient_list(tmp_path, column, first, second)])
    listing = tmp_path / "every.csv"
    listing.write_text("image,patient_id,eye,Patient name\na.jpeg,1,left,Ann\nb.jpeg,1,right,Bea\n"
                       "c.jpeg,2,left,Cid\nd.jpeg,2,right,Dan\n")
    with pytest.raises(DataError, match="patient '1' has rows of two people in 'Patient name'"):
        collect_inputs([listing])
    for header in ("Name", "Nom", "Naam"):  # probe 48 BL6: a bare name of people's names, not photos' ones
        listing.write_text(listing.read_text().replace("Patient name", header))
        with pytest.raises(DataError, match=f"patient '1' has rows of two people in '{header}'"):
            collect_inputs([listing])
        listing.write_text(listing.read_text().replace(header, "Patient name"))
    listing.write_text("image,patient_id,eye,Pt\na.jpeg,1,left,J. Smith\nb.jpeg,1,right,M. Jones\n"
                       "c.jpeg,2,left,A. Brown\nd.jpeg,2,right,A. Khan\n")
    with pytest.raises(DataError, match="patient '1' has rows of two people in 'Pt'"):  # 'Pt', a patient's (probe 56 BT5)
        collect_inputs([listing])


def test_two_sites_whose_names_hold_a_field_word_are_two_sites(tmp_path):
    """Probe 46 BJ4: `Central London` / `Central Manchester` were taken for a photo's field (central);
    probe 47 BK2: `Central` / `Peripheral` alike."""
    for first, second in (("Central London", "Central Manchester"), ("Central", "Peripheral")):
        with pytest.raises(DataError, match="patient '1001' has rows of two sites in 'Site'"):
            collect_inputs([_two_patient_list(tmp_path, "Site", first, second)])


def test_a_site_column_that_names_each_photos_eye_is_no_site(tmp_path, caplog):
    """Probe 47 BK9: `Scan site` Left eye / Right eye was refused as two sites (advice `Left eye-1001`)."""
    listing = _two_patient_list(tmp_path, "Scan site", "Left eye", "Right eye")
    listing.write_text("image,patient_id,eye,Scan site\na.jpeg,1001,left,Left eye\nb.jpeg,1001,right,Right eye\n"
                       "c.jpeg,1002,left,OS\nd.jpeg,1002,right,OD\n")
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        table = collect_inputs([listing])
    assert table["patient_id"].tolist() == ["1001", "1001", "1002", "1002"]
    assert not any("Scan site" in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    listing.write_text("image,patient_id,eye,Scan site\na.jpeg,1001,left,Left eye\nb.jpeg,1001,right,Leeds\n")
    with pytest.raises(DataError, match="patient '1001' has rows of two sites in 'Scan site'"):
        collect_inputs([listing])


def test_dates_of_birth_that_fold_alike_are_two_people(tmp_path):
    """Probe 43 BG6: `1/12/1950` and `11/2/1950` both folded to `1121950`: one person. Probe 49 BM5: a
    name's family and given parts swapped (`LEE^JAMES`, `JAMES^LEE`) are two people."""
    with pytest.raises(DataError, match="two people in 'DOB' \\('1/12/1950' and '11/2/1950'\\)"):
        collect_inputs([_two_patient_list(tmp_path, "DOB", "1/12/1950", "11/2/1950")])
    for first, second in (("LEE^JAMES", "JAMES^LEE"), ("Lee James", "James Lee")):
        with pytest.raises(DataError, match="two people in 'Patient name'"):
            collect_inputs([_two_patient_list(tmp_path, "Patient name", first, second)])


@pytest.mark.parametrize(("column", "first", "second"), [
    ("exam_date", "2015-03-01", "2023-05-02"), ("visit", "1", "2"),  # probe 43 BG4: one eye per visit
    ("Mitarbeiterin", "Anna Weber", "Eva Roth"), ("unit", "Ward 3", "Ward 9")])  # a header no list holds
def test_an_unread_column_with_two_values_under_one_patient_is_warned_of(tmp_path, caplog, column, first, second):
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        table = collect_inputs([_two_patient_list(tmp_path, column, first, second)])
    assert table["patient_id"].tolist() == ["1001", "1001", "1002", "1002"]  # read as given
    assert (f"1 patient(s) have photos of two values of column {column!r}, which is not read (e.g. patient '1001': "
            f"{first!r} (left eye) and {second!r} (right eye)): two people, sites or visits under one id?") in caplog.text


def _four_patient_list(folder: Path, column: str, cells: list[str]) -> Path:
    """Patients P1..P4, both eyes each, ``cells`` the column's 8 values in that order."""
    for k in range(8):
        if not (folder / f"p{k}.jpeg").exists():
            (folder / f"p{k}.jpeg").write_bytes(photo_bytes(k % 5, k + 80))
    listing = folder / "l4.csv"
    listing.write_text(f"image,patient_id,eye,{column}\n" + "".join(
        f"p{k}.jpeg,P{k // 2 + 1},{('left', 'right')[k % 2]},{cell}\n" for k, cell in enumerate(cells)), encoding="utf-8")
    return listing


@pytest.mark.parametrize(("column", "first", "second"), [
    ("Ort", "N", "S"), ("Unit", "01", "02"), ("Geschl.", "M", "F"),  # probe 44 BH5: short codes
    ("Besuch", "1", "2"), ("FU", "0", "1"),  # visits under other words
    ("exam_date", "2015-03-01 09:30:00", "2023-05-02 10:00:00"),  # probe 44 BH7: a date with its time
    ("Image date", "2015-03-01", "2023-05-02"), ("Sex (image header)", "M", "F"),  # probe 45 BI1, BI2: beside a photo word
    ("Aufnahmedatum", "2015-03-01 11:00:02", "2023-05-02 11:30:20"),  # BI3: a date by its cells, under any name
    ("Patient name (camera)", "Ann Lee", "Bea Roe"), ("Name on image", "Ann Lee", "Bea Roe"), ("DR screening number", "11", "22"),
    ("Hosp No", "4821100001", "4821100002"), ("Exam number", "20230502017", "20230502018"),  # probe 46 BJ1, BJ3: not dates
    ("Study UID", "1.2.840.1.1", "1.2.840.1.2"), ("MRN (photo)", "A1", "B2"), ("Subject ID (image)", "S1", "S2"),  # BJ2
    ("Accession", "20230502000017", "20230502000018"),  # probe 47 BK1: a day and a counter, no date-time
    ("Exam date", "11:00 01/03/2015", "11:30 02/05/2023"),  # BK6: the time first
    ("Exam ID", "20230502017001", "20230502017002"), ("Visit number", "20230502000017", "20230502000031"),  # probe 48 BL2
    ("Initials", "NA", "JS"), ("Site", "NA", "EU"), ("Region", "NA", "EMEA"), ("Patient name", "NA", "KIM^MINJI"),  # BL1
    ("Site", "na", "eu"), ("Initials", "na", "js"), ("Exam", "20230502000017", "20230502000031"),  # probe 49 BM1, BM4
    ("First name", "NA", "Mary"), ("Site", "NA", "Eu")])  # BM3
def test_a_short_code_or_a_timed_visit_that_splits_one_patient_only_is_warned_and_noted(tmp_path, caplog, column, first, second):
    """Every other patient keeps one value; patient P4's two eyes have two: warned, and noted in
    identity_note (probe 44 BH9: the console only)."""
    listing = _four_patient_list(tmp_path, column, [first] * 6 + [first, second])
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        table = collect_inputs([listing]).set_index("image_id")
    assert f"1 patient(s) have photos of two values of column {column!r}" in caplog.text
    assert table.loc[["p6", "p7"], "identity_note"].tolist() == [
        f"two values under one id: column {column!r} gives patient 'P4' {first!r} and {second!r}; taken as one patient's "
        "photos (two people, sites or visits? give each its own id)"] * 2
    assert (table.loc[["p0", "p1"], "identity_note"] == "").all()


@pytest.mark.parametrize(("column", "cells"), [
    ("IOP", ["14", "15", "16", "16", "17", "17", "15", "15"]), ("Lens status", ["phakic", "pseudophakic"] + ["phakic"] * 6),
    ("Image quality", ["good", "adequate"] + ["good"] * 6), ("Comments", ["cataract", "laser scars"] + [""] * 6),  # BH4
    ("exam_date", ["2024-03-01 09:30:00", "2024-03-01 09:31:10"] + ["2024-01-01"] * 6),  # one visit, two times
    ("Centre", ["macula-centred", "disc-centred"] * 4), ("Fixation", ["macula", "disc"] * 4),  # probe 45 BI8: each photo's field
    ("Acquisition Time", [f"09:{m:02d}:00" for m in range(8)])])  # BI11: times of day
def test_columns_of_each_eye_in_a_clinic_list_are_not_warned_of(tmp_path, caplog, column, cells):
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        table = collect_inputs([_four_patient_list(tmp_path, column, cells)])
    assert "two values of column" not in caplog.text and (table["identity_note"] == "").all()


@pytest.mark.parametrize(("column", "first", "second"), [("Name", "José Pérez", "Jose Perez"), ("Age", "67", "67.0"),
                                                     ("DOB", "1950-01-12", "unknown"), ("Sex", "M", "NA"),
                                                     ("DOB", "1950-01-12", "1950-01-12 00:00:00"),  # probe 46 BJ5
                                                     ("DOB", "12/01/1950", "12/1/1950"),
                                                     # probe 47 BK7: a time zone, a month's name, a year of two digits,
                                                     # an age's unit, a site's leading zero, sex in other languages
                                                     ("DOB", "1950-01-12", "1950-01-12T00:00:00.000Z"),
                                                     ("DOB", "1950-01-12", "1950-01-12 00:00:00+00:00"),
                                                     ("DOB", "1950-01-12", "12-Jan-1950"), ("DOB", "12/01/50", "12/01/1950"),
                                                     ("Age", "67", "67 y"), ("Site", "Site 01", "Site 1"),
                                                     ("Sexe", "F", "Femme"), ("Geslacht", "V", "Vrouw"),
                                                     ("Sexo", "M", "Masculino"),
                                                     # probe 48 BL3: a date with one reading; BL4: an id's digit groups
                                                     # and leading zeros, an apostrophe, a name's order
                                                     ("DOB", "1950-01-12", "19500112"), ("DOB", "1950-01-12", "12.01.1950"),
                                                     ("DOB", "1950-01-31", "31/01/1950"),
                                                     ("Date of birth", "12 Jan 1950", "1950-01-12"),
                                                     ("NHS number", "485 777 3456", "4857773456"), ("MRN", "00123", "123"),
                                                     ("Surname", "O'Brien", "OBrien"), ("Patient name", "SMITH^JOHN", "John Smith"),
                                                     ("Patient name", "\"Smith, John\"", "John Smith"),  # quoted in the CSV
                                                     ("Patient name", "SMITH^JOHN", "SMITH^JOHN^^MR"),  # a PN's prefix
                                                     ("DOB", "1950-1-12", "1950-01-12")])  # probe 49 BM8: no zeros
def test_one_person_written_two_ways_is_not_refused_as_two(tmp_path, column, first, second):
    """Probe 44 BH8: accents, Excel's `67.0`, a missing-value mark were two people."""
    assert len(collect_inputs([_four_patient_list(tmp_path, column, ["A", "A", "B", "B", "C", "C", first, second])])) == 8


@pytest.mark.parametrize(("column", "cells"), [
    ("ID", ("1", "2", "3", "4")), ("Accession", ("A1", "A2", "A3", "A4")),  # probe 43 BG7: each photo's own
    ("grader_initials", ("JS", "MB", "JS", "MB")), ("Camera", ("Topcon", "Canon", "Canon", "Topcon")),
    ("maculopathy", ("0", "1", "1", "0")), ("VA", ("6/6", "6/12", "6/9", "6/18"))])  # each eye's own
def test_columns_of_each_photo_or_eye_are_neither_refused_nor_warned_of(tmp_path, caplog, column, cells):
    listing = _two_patient_list(tmp_path, column, "x", "y")
    listing.write_text(f"image,patient_id,eye,{column}\n" + "".join(
        f"{n}.jpeg,{p},{e},{c}\n" for n, p, e, c in zip("abcd", ("1001", "1001", "1002", "1002"), ("left", "right") * 2, cells)))
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        assert len(collect_inputs([listing])) == 4
    assert "two values of column" not in caplog.text


@pytest.mark.parametrize(("column", "first", "second"), [("Ort", "Nord", "Sued"), ("unit", "Ward 3", "Ward 9"),
                                                     ("visit_date", "2020-03-01", "2022-05-10"), ("timepoint", "0", "24")])
def test_an_unread_column_that_splits_one_eye_s_photos_is_warned_of(tmp_path, caplog, column, first, second):
    """Probe 42 CF1, CF5: a site column under a word no list holds, or a visit column, with one id's
    eye photographed at both: pooled as one eye's photos without a word (a label file: INFO only)."""
    from drgrader.data.manifest import read_dataset

    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    lines = []
    for k, (patient, eye, value) in enumerate((("1", "left", first), ("1", "right", first), ("1", "left", second),
                                               ("1", "right", second), ("2", "left", first), ("2", "right", first))):
        (root / "images" / f"IMG{k}.jpeg").write_bytes(photo_bytes(k % 3, k))
        lines.append(f"IMG{k}.jpeg,{k % 3},{patient},{eye},{value}")
    (root / "labels.csv").write_text(f"image,level,patient_id,eye,{column}\n" + "\n".join(lines) + "\n")
    said = (f"1 patient(s) have photos of two values of column {column!r}, which is not read (e.g. patient '1': "
            f"{first!r} (left eye) and {second!r} (left eye)): two people, sites or visits under one id?")
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        assert len(read_dataset(root, "csv")) == 6
    assert f"labels.csv: {said}" in caplog.text
    caplog.clear()
    (root / "labels.csv").rename(root / "images" / "list.csv")  # the same list given to predict
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        assert len(collect_inputs([root / "images" / "list.csv"])) == 6
    assert f"list.csv: {said}" in caplog.text
    caplog.clear()
    # One value per eye (each eye photographed once, at either site or visit): nothing to say.
    (root / "images" / "list.csv").write_text(f"image,level,patient_id,eye,{column}\n" + "\n".join(lines[:2] + lines[4:]) + "\n")
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        collect_inputs([root / "images" / "list.csv"])
    assert "two values of column" not in caplog.text


def test_a_predictions_file_with_identity_notes_is_refused_as_a_list(tiny_bundle, tmp_path):
    """Probe 39 BC8: given back to predict, its notes were dropped as 'not read' and its resolved
    patients taken as given: two sites' patient 1001 paired without a word."""
    for k, (site, name) in enumerate((("siteA", "1001_left"), ("siteB", "1001_right"))):
        (tmp_path / site).mkdir()
        (tmp_path / site / f"{name}.jpeg").write_bytes(photo_bytes(k + 1, k))
    out = tmp_path / "p.csv"
    assert main(["predict", str(tiny_bundle), str(tmp_path / "siteA"), str(tmp_path / "siteB"), "--out", str(out)]) == 0
    with pytest.raises(DataError, match=r"p.csv carries the identity notes of a drgrader run on 2 of its rows "
                                        r"\(row 1: \"one patient in two folders"):
        collect_inputs([out])
    # Probe 40 BD4: a copy with its path column renamed alike.
    pd.read_csv(out, dtype=str, keep_default_na=False).rename(columns={"path": "image"}).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(DataError, match="r.csv carries the identity notes of a drgrader run on 2 of its rows"):
        collect_inputs([tmp_path / "r.csv"])
    # Probe 41 BE4: its notes column renamed too: known by its words.
    pd.read_csv(out, dtype=str, keep_default_na=False).rename(columns={"path": "image", "identity_note": "notes"}).to_csv(
        tmp_path / "n.csv", index=False)
    with pytest.raises(DataError, match="n.csv carries the identity notes of a drgrader run on 2 of its rows"):
        collect_inputs([tmp_path / "n.csv"])
    (tmp_path / "siteB" / "1001_right.jpeg").rename(tmp_path / "siteA" / "1002_right.jpeg")  # nothing to note: read
    assert main(["predict", str(tiny_bundle), str(tmp_path / "siteA"), "--out", str(tmp_path / "q.csv"), "--overwrite"]) == 0
    assert collect_inputs([tmp_path / "q.csv"])["patient_id"].tolist() == ["1001", "1002"]


def test_two_sites_single_letter_eye_folders_are_noted_as_two_folders(tmp_path):
    # Probe 39 BC2: siteA/L/ and siteB/R/ were eye folders to one rule and not to the other: paired, silent.
    for k, (site, eye, name) in enumerate((("siteA", "L", "1001_left"), ("siteB", "R", "1001_right"))):
        (tmp_path / site / eye).mkdir(parents=True)
        (tmp_path / site / eye / f"{name}.jpeg").write_bytes(photo_bytes(k + 1, k))
    table = collect_inputs([tmp_path])
    assert all(n.startswith("one patient in two folders") for n in table["identity_note"])
    one = tmp_path / "one"  # one clinic's L/ and R/: nothing to say
    for k, (eye, name) in enumerate((("L", "7_left"), ("R", "7_right"))):
        (one / eye).mkdir(parents=True)
        (one / eye / f"{name}.jpeg").write_bytes(photo_bytes(k + 3, k + 5))
    assert collect_inputs([one])["identity_note"].tolist() == ["", ""]


def test_dicom_photos_of_one_patient_id_whose_headers_name_two_people_are_noted(tmp_path):
    """Probe 41 BE6: one PatientID, another PatientName (or birth date, sex, issuer): two sites'
    patients paired without a word. Noted by the tags that differ, never their values."""
    def dicom(name, laterality, **tags):
        path = write_dicom(tmp_path / "d" / f"{name}.dcm", make_fundus(1, np.random.default_rng(len(name)), height=96),
                           patient_id="1001", laterality=laterality)
        ds = pydicom.dcmread(path)
        for tag, value in tags.items():
            setattr(ds, tag, value)
        ds.save_as(path)
        return path

    dicom("a", "L", PatientName="SMITH^JOHN", PatientSex="M")
    dicom("b", "R", PatientName="JONES^MARY", PatientSex="M")
    table = collect_inputs([tmp_path / "d"])
    assert table["patient_id"].tolist() == ["1001", "1001"]
    note = ("two people under one id: the DICOM headers of patient '1001' differ in PatientName; taken as one patient's "
            "photos (if two sites or people share the id, give each its own)")
    assert table["identity_note"].tolist() == [note, note] and "SMITH" not in note
    dicom("b", "R", PatientName="Smith^John", PatientSex="M")  # the same person, spelt in another case: nothing to say
    assert collect_inputs([tmp_path / "d"])["identity_note"].tolist() == ["", ""]
    # Probe 58 BV9: with and without accents (a PACS that strips them), one person, as a list's José and Jose;
    # another name (María, Marta) still two.
    dicom("a", "L", PatientName="GARCÍA^MARÍA", PatientSex="F")
    dicom("b", "R", PatientName="GARCIA^MARIA", PatientSex="F")
    assert collect_inputs([tmp_path / "d"])["identity_note"].tolist() == ["", ""]
    dicom("b", "R", PatientName="GARCIA^MARTA", PatientSex="F")
    assert collect_inputs([tmp_path / "d"])["identity_note"][0].startswith("two people under one id"), "María/Marta"
    dicom("b", "R", PatientName="Smith^John", InstitutionName="South Clinic")  # probe 42 BF2: two sites
    dicom("a", "L", PatientName="SMITH^JOHN", InstitutionName="North Clinic")
    assert "differ in InstitutionName" in collect_inputs([tmp_path / "d"])["identity_note"][0]
    # Probe 43 BG3: two addresses of the institution; ages 33 years apart on one study date.
    for tags in ({"InstitutionAddress": "1 North Rd"}, {"StudyDate": "20230502", "PatientAge": "067Y"}):
        dicom("a", "L", **tags)
        dicom("b", "R", **{t: ("9 South St" if t == "InstitutionAddress" else "034Y" if t == "PatientAge" else v)
                          for t, v in tags.items()})
        said = collect_inputs([tmp_path / "d"])["identity_note"][0]
        assert said.startswith("two people under one id") and ("InstitutionAddress" in said or "birth year" in said), said
        for path in (tmp_path / "d").iterdir():
            path.unlink()
    # An age a year apart (a birthday between the two photos' dates) is one person's.
    dicom("a", "L", StudyDate="20230101", PatientAge="066Y")
    dicom("b", "R", StudyDate="20230101", PatientAge="067Y")
    assert collect_inputs([tmp_path / "d"])["identity_note"].tolist() == ["", ""]
    # Probe 43 BG4: two study dates (the left eye from 2015, the right from 2023): two visits, noted.
    dicom("a", "L", StudyDate="20150301", PatientAge="059Y")
    dicom("b", "R", StudyDate="20230502", PatientAge="067Y")
    assert collect_inputs([tmp_path / "d"])["identity_note"].tolist() == [
        "two visits under one id: the DICOM headers of patient '1001' are of two study dates; taken as one exam's photos, "
        "its eyes paired (grade one visit at a time, or give each its own id)"] * 2


def test_serve_takes_dicom_names_with_and_without_accents_as_one_person(tiny_bundle, tmp_path):
    """Probe 58 BV9: GARCÍA^MARÍA and GARCIA^MARIA under one PatientID were refused (400) as two people."""
    from fastapi.testclient import TestClient

    from drgrader.inference.serve import create_app

    def named(side, name):
        path = write_dicom(tmp_path / f"{side}.dcm", make_fundus(1, np.random.default_rng(len(side)), height=96),
                           patient_id="1001", laterality=side[0].upper())
        ds = pydicom.dcmread(path)
        ds.PatientName = name
        ds.save_as(path)
        return (f"{side}.dcm", path.read_bytes(), "application/dicom")

    with TestClient(create_app(tiny_bundle, max_upload_mb=1, max_pixels=1_000_000)) as client:
        res = client.post("/api/predict", files={"right": named("right", "GARCÍA^MARÍA"), "left": named("left", "GARCIA^MARIA")})
        assert res.status_code == 200, res.text
        res = client.post("/api/predict", files={"right": named("right", "GARCÍA^MARÍA"), "left": named("left", "GARCIA^MARTA")})
        assert res.status_code == 400 and "their headers name two people" in res.json()["error"]


def test_a_data_set_whose_patients_have_one_photo_each_is_warned_of(tmp_path, caplog):
    """Probe 45 CI5: ids per photo (an exam id, an anonymiser's per-file id): 80 patients of one photo, no word."""
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    for k in range(20):
        (root / "images" / f"IMG_{k}.jpeg").write_bytes(photo_bytes(k % 5, k))
    (root / "labels.csv").write_text("image,level,patient_id\n" + "".join(f"IMG_{k}.jpeg,{k % 5},A{k}\n" for k in range(20)))
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        read_dataset(root, "csv")
    assert "20 of the 20 patients have one photo: are the patient ids per photo" in caplog.text
    # Probe 47 CK8: 16 of 18 (89%, two patients with two photos) said too.
    (root / "labels.csv").write_text("image,level,patient_id\n" + "".join(f"IMG_{k}.jpeg,{k % 5},A{min(k, 16 + k % 2)}\n"
                                                                          for k in range(20)))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        read_dataset(root, "csv")
    assert "16 of the 18 patients have one photo" in caplog.text
    (root / "labels.csv").write_text("image,level,patient_id\n" + "".join(f"IMG_{k}.jpeg,{k % 5},A{k // 2}\n" for k in range(20)))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        read_dataset(root, "csv")
    assert "has one photo" not in caplog.text


@pytest.mark.parametrize(("name", "counter"), [
    *((n, True) for n in ("IMG_0001", "_MG_0001", "DSC_0042", "DSCN0042", "DSCF0042", "IMGP0001", "CIMG0001", "SAM_0001",
                          "Smith_John/PICT0001")),  # probe 56 CT2: Canon's Adobe RGB, Fujifilm, Pentax, Casio, Samsung
    *((n, False) for n in ("P7", "P1000123", "Patient0001", "Sam", "10007", "IMG")),  # a record number is no counter
])
def test_a_cameras_counter_is_known_by_the_prefixes_cameras_write(name, counter):
    assert camera_counter(name) is counter


@pytest.mark.parametrize(("names", "warned"), [
    ([f"{person}/{shot}" for person in ("Smith_John", "Doe_Jane", "Lee_Ann") for shot in ("1_L", "2_R")], True),
    ([f"site/{p}_{e}" for p in (1, 2, 3) for e in ("L", "R")], False),  # a numbered export, two eyes each
    ([f"{person}/IMG_000{k}_{e}" for k, person in enumerate(("Smith_John", "Doe_Jane", "Lee_Ann")) for e in ("L", "R")],
     "camera"),  # probe 54 CR1: a camera's counter
])
def test_a_data_set_of_folders_holding_one_patients_numbered_shots_is_warned_of(tmp_path, caplog, names, warned):
    """Probe 53 BQ2: ``Smith_John/1_L``, ``Smith_John/2_R`` in a label file: patients ``Smith_John/1``
    and ``Smith_John/2``, so one person's eyes may land in train and test, without a word."""
    root = tmp_path / "set"
    for k, name in enumerate(names):
        (root / "images" / f"{name}.jpeg").parent.mkdir(parents=True, exist_ok=True)
        (root / "images" / f"{name}.jpeg").write_bytes(photo_bytes(k % 5, k))
    (root / "labels.csv").write_text("image,level\n" + "".join(f"{name},{k % 5}\n" for k, name in enumerate(names)))
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        df = read_dataset(root, "csv")
    assert df["patient_id"].nunique() == (6 if warned is True else 3)  # kept as read, but said
    said = "3 folder(s) hold photos numbered like one patient's shots (e.g. 'Doe_Jane': Doe_Jane/1_L, Doe_Jane/2_R)"
    assert (said in caplog.text) == (warned is True), caplog.text
    counters = "6 photo(s) are named by a camera's counter (e.g. Doe_Jane/IMG_0001_L, Doe_Jane/IMG_0001_R), each counter read"
    assert (counters in caplog.text) == (warned == "camera"), caplog.text


def test_a_label_file_with_a_patient_column_and_no_eye_column_reads_the_eyes_from_the_names(tmp_path):
    """Probe 54 CR2: ``image,level,patient_id`` (``10007_left``, patient A): every eye unknown, never paired,
    where predict reads left and right; a name another row's patient contradicts still leaves it unknown."""
    root = tmp_path / "set"
    names = ["10007_left", "10007_right", "10009_left", "10009_right", "10_left", "10_right"]
    for k, name in enumerate(names):
        (root / "images" / f"{name}.jpeg").parent.mkdir(parents=True, exist_ok=True)
        (root / "images" / f"{name}.jpeg").write_bytes(photo_bytes(k % 5, k))
    patients = ["A", "A", "B", "B", "12", "10"]  # 10_left given 12 while 10_right is 10: a shifted cell
    (root / "labels.csv").write_text("image,level,patient_id\n" + "".join(
        f"{name},{k % 5},{p}\n" for k, (name, p) in enumerate(zip(names, patients))))
    df = read_dataset(root, "csv").set_index("image_id")
    assert df.loc[names[:4], "eye"].tolist() == ["left", "right", "left", "right"]
    assert df.loc["10_left", "eye"] == "" and df.loc["10_left", "patient_id"] == "12"


@pytest.mark.parametrize("names", [
    ["OD_Smith", "OS_Smith", "Jones_RE", "Jones_LE"],  # probe 56 CT5: an eye word first, or RE/LE, read as predict reads it
    ["Smith_John/1_L", "Smith_John/2_R", "Jones_Ann/1_L", "Jones_Ann/2_R"],  # CT1: the shots a patient column groups
    # probe 55 CS1: the column the camera-counter warning asks for made every eye unknown, 'its name says patient IMG_0001'
    ["IMG_0001_L", "IMG_0002_R", "IMG_0003_L", "IMG_0004_R"],
])
def test_a_label_file_with_a_patient_column_keeps_the_eyes_predict_reads(tmp_path, caplog, names):
    root = tmp_path / "set"
    for k, name in enumerate(names):
        (root / "images" / f"{name}.jpeg").parent.mkdir(parents=True, exist_ok=True)
        (root / "images" / f"{name}.jpeg").write_bytes(photo_bytes(k % 5, k))
    (root / "labels.csv").write_text("image,level,patient_id\n" + "".join(
        f"{name},{k % 5},{'SJ' if k < 2 else 'JA'}\n" for k, name in enumerate(names)))
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        df = read_dataset(root, "csv").set_index("image_id")
    expected = ["right", "left", "right", "left"] if names[0] == "OD_Smith" else ["left", "right", "left", "right"]
    assert df.loc[names, "eye"].tolist() == expected and df.loc[names, "patient_id"].tolist() == ["SJ", "SJ", "JA", "JA"]
    assert "contradict" not in caplog.text and "camera's counter" not in caplog.text


def test_a_data_set_with_several_photos_of_one_eye_says_its_figures_count_photos(tmp_path, caplog):
    """Probe 47 CK2: retakes (two photos of some eyes) were counted as eyes in every figure, unsaid."""
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    rows = [("1", "left"), ("1", "right"), ("1", "right"), ("2", "left"), ("2", "right")]
    for k in range(len(rows)):
        (root / "images" / f"IMG_{k}.jpeg").write_bytes(photo_bytes(1, k))
    (root / "labels.csv").write_text("image,level,patient_id,eye\n" + "".join(
        f"IMG_{k}.jpeg,1,{p},{e}\n" for k, (p, e) in enumerate(rows)))
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        read_dataset(root, "csv")
    assert ("1 eye(s) have several photos (e.g. patient '1' right eye: 2): every eye-level figure counts each photo as an "
            "eye (5 photos of 4 eyes)") in caplog.text


def test_a_data_set_of_dicom_photos_reads_their_headers_as_predict_does(tmp_path, caplog):
    """Probe 43 CG5: train, evaluate and data summary took the label file's patients and eyes
    without a look at the headers: an exam id per photo split one patient's eyes across the split
    (the report said no patient was in two), and a label file without patients made each photo its own."""
    root = tmp_path / "set"
    for k, (patient, laterality) in enumerate((("PID1", "L"), ("PID1", "R"), ("PID2", "L"), ("PID2", "R"))):
        write_dicom(root / "images" / f"IMG_{k}.dcm", make_fundus(k % 3, np.random.default_rng(k), height=96),
                    patient_id=patient, laterality=laterality)
    (root / "labels.csv").write_text("image,level\n" + "".join(f"IMG_{k}.dcm,{k % 3}\n" for k in range(4)))
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        table = read_dataset(root, "csv")
    assert table[["patient_id", "eye"]].values.tolist() == [["PID1", "left"], ["PID1", "right"], ["PID2", "left"], ["PID2", "right"]]
    assert "a patient of its own" not in caplog.text
    from drgrader.data.summary import summarize

    sizes = summarize(table)["image_sizes"]  # probe 44 CH3: every DICOM photo was "unreadable"
    assert sizes["unreadable"] == [] and sizes["most_common"]
    (root / "labels.csv").write_text("image,level,patient_id,eye\n" + "".join(
        f"IMG_{k}.dcm,{k % 3},V{k},{'right' if k == 0 else 'left' if k % 2 == 0 else 'right'}\n" for k in range(4)))
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        table = read_dataset(root, "csv")
    assert table["patient_id"].tolist() == ["V0", "V1", "V2", "V3"]  # the label file's, as given, and said
    assert ("2 patient(s) where the label file and the DICOM headers disagree (e.g. DICOM PatientID 'PID1' is the label "
            "file's patients 'V0', 'V1')") in caplog.text
    assert "1 DICOM photo(s) whose header's laterality is not the label file's eye (e.g. 'IMG_0': right by the label file, " \
           "left by its header)" in caplog.text
    (root / "labels.csv").write_text("image,level\n" + "".join(f"IMG_{k}.dcm,{k % 3}\n" for k in range(4)))
    # Probe 44 CH1: anonymised headers and no patient column: each photo its own patient, said.
    for k in range(4):
        write_dicom(root / "images" / f"IMG_{k}.dcm", make_fundus(k % 3, np.random.default_rng(k), height=96),
                    patient_id="ANONYMOUS", laterality="LR"[k % 2])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        assert read_dataset(root, "csv")["patient_id"].nunique() == 4
    assert "4 DICOM photo(s) have no patient in the label file, their names or their headers" in caplog.text
    # Probe 44 CH11: one PatientID, two PatientNames, no patient column: pooled without a word.
    for k, name in enumerate(("SMITH^JOHN", "JONES^MARY", "LEE^ANN", "LEE^ANN")):
        path = write_dicom(root / "images" / f"IMG_{k}.dcm", make_fundus(k % 3, np.random.default_rng(k), height=96),
                           patient_id=f"PID{1 + k // 2}", laterality="LR"[k % 2])
        ds = pydicom.dcmread(path)
        ds.PatientName = name
        ds.save_as(path)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        read_dataset(root, "csv")
    assert ("1 patient(s) whose DICOM headers disagree (e.g. two people under one id: the DICOM headers of patient 'PID1' "
            "differ in PatientName;") in caplog.text


def test_a_list_of_dicom_photos_with_two_sites_under_one_patient_id_is_refused(tmp_path):
    # Probe 41 BE9: the patients from the DICOM headers (no patient column): two sites' 1001 paired.
    for k, name in enumerate(("a", "b")):
        write_dicom(tmp_path / f"{name}.dcm", make_fundus(k, np.random.default_rng(k), height=96), patient_id="1001",
                    laterality="LR"[k])
    (tmp_path / "l.csv").write_text("image,site\na.dcm,A\nb.dcm,B\n")
    with pytest.raises(DataError, match="patient '1001' has rows of two sites in 'site' \\('A' and 'B'\\)"):
        collect_inputs([tmp_path / "l.csv"])
    # Probe 41 BE10: one site spelt two ways, one sex written two ways: one patient.
    (tmp_path / "l.csv").write_text("image,site,sex\na.dcm,North Clinic,M\nb.dcm,north clinic ,Male\n")
    assert collect_inputs([tmp_path / "l.csv"])["patient_id"].tolist() == ["1001", "1001"]

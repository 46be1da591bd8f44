"""Rule 1: every input is used or refused. A photo under a form field the web demo does not read,
a CSV column that looks like one predict reads, an input that gives nothing to grade, a photo
given twice as two different eyes: a clear error naming it (HTTP 400 / exit 2), never an answer
made without it. A file that cannot be read, even a link loop, is a row with its reason."""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from drgrader.cli import main
from drgrader.data.inputs import collect_inputs
from drgrader.data.label_files import read_label_csv
from drgrader.data.manifest import DataError
from drgrader.synth import make_fundus


def jpeg(grade: int, seed: int) -> bytes:
    rgb = make_fundus(grade, np.random.default_rng(seed), height=128)
    ok, data = cv2.imencode(".jpeg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, seed in (("7_left", 1), ("7_right", 2)):
        (folder / f"{name}.jpeg").write_bytes(jpeg(seed, seed))
    return folder


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: ") and "Traceback" not in "\n".join(err), err
    return err[-1]


# ---------------------------------------------------------------------------- web demo
@pytest.mark.parametrize("fields", [["photo"], ["Left"], ["left", "right_eye"], ["right", "left", "extra"], ["file", "image"]])
def test_serve_refuses_a_photo_under_a_field_it_does_not_read(client, fields):
    files = [(field, (f"{field}.jpeg", jpeg(2, k), "image/jpeg")) for k, field in enumerate(fields)]
    res = client.post("/api/predict", files=files)
    assert res.status_code == 400, res.text
    unknown = [f for f in fields if f not in ("left", "right", "file")]
    assert all(repr(f) in res.json()["error"] for f in unknown), res.json()
    assert "'right' and/or 'left'" in res.json()["error"]


def test_serve_refuses_a_form_value_and_a_misspelt_query_parameter(client):
    photo = ("left.jpeg", jpeg(2, 0), "image/jpeg")
    res = client.post("/api/predict", files={"left": photo}, data={"patient": "P7"})
    assert res.status_code == 400 and "'patient'" in res.json()["error"]
    res = client.post("/api/predict", params={"explian": 1}, files={"left": photo})
    assert res.status_code == 400 and "'explian'" in res.json()["error"]
    # A value it cannot read, or two values: the app's own error, naming the parameter.
    res = client.post("/api/predict", params={"explain": "maybe"}, files={"left": photo})
    assert res.status_code == 400 and res.json()["error"].startswith("explain='maybe': ")
    res = client.post("/api/predict", params=[("explain", 0), ("explain", 1)], files={"left": photo})
    assert res.status_code == 400 and "more than once" in res.json()["error"]
    # The known fields and parameter still give a two-eye answer.
    res = client.post("/api/predict", params={"explain": 0}, files={"left": photo, "right": ("r.jpeg", jpeg(1, 1), "image/jpeg")})
    assert res.status_code == 200 and res.json()["patient"]["eyes"] == ["right", "left"]


def test_serve_refuses_one_file_as_both_eyes_and_a_photo_named_for_the_other_eye(client):
    photo, other = jpeg(2, 0), jpeg(1, 1)
    res = client.post("/api/predict", files={"right": ("a.jpeg", photo, "image/jpeg"), "left": ("b.jpeg", photo, "image/jpeg")})
    assert res.status_code == 400 and "are one file (a.jpeg, b.jpeg: the same bytes)" in res.json()["error"]
    res = client.post("/api/predict", files={"left": ("10_right.jpeg", photo, "image/jpeg")})
    assert res.status_code == 400 and res.json()["error"] == ("left eye: 10_right.jpeg: its file name says the right eye; "
                                                              "send it as 'right' (or rename it)")
    res = client.post("/api/predict", files={"right": ("P7_OS.jpeg", photo, "image/jpeg"), "left": ("P7_OD.jpeg", other, "image/jpeg")})
    assert res.status_code == 400 and res.json()["error"].startswith("right eye: P7_OS.jpeg: its file name says the left eye")
    # Probe 36 AZ2 / probe 37 BA1: a name of the eye alone (a patient-per-folder camera export's OD.jpg) sent as the other eye.
    for name in ("OD.jpg", "Right.JPG", "OD_1.jpg", "5001_right_20240101.jpeg", "R.jpg", "RE.jpg", "OD1.jpg", "rechts.jpg"):
        res = client.post("/api/predict", files={"left": (name, photo, "image/jpeg")})
        assert res.status_code == 400 and res.json()["error"] == (f"left eye: {name}: its file name says the right eye; "
                                                                  "send it as 'right' (or rename it)"), name
    # Probe 58 BV2: other languages' abbreviations (French OG, Portuguese OE, Spanish OI, English LT) and an eye
    # word glued to the number were graded as the eye they were sent as.
    for name in ("10193_OG.jpg", "10193_OE.jpg", "10193_OI.jpg", "10193_LT.jpg", "10193_Lt.jpg", "10193left.jpg", "OG.jpg",
                 "10193_esquerdo.jpg"):
        res = client.post("/api/predict", files={"right": (name, photo, "image/jpeg")})
        assert res.status_code == 400 and res.json()["error"] == (f"right eye: {name}: its file name says the left eye; "
                                                                  "send it as 'left' (or rename it)"), name
    assert client.post("/api/predict", files={"right": ("10193_OD.jpg", photo, "image/jpeg"),
                                              "left": ("10193_OG.jpg", other, "image/jpeg")}).status_code == 200
    # Probe 59 BW1: other languages' and scripts' words were graded as the eye they were sent as.
    for name, eye, sent in (("10193_左.jpg", "left", "right"), ("10048_左眼.jpg", "left", "right"), ("10048_левый.jpg", "left", "right"),
                            ("10048_αριστερό.jpg", "left", "right"), ("10048_vänster.jpg", "left", "right"),
                            ("10193_linkes_Auge.jpg", "left", "right"), ("左眼.jpg", "left", "right"), ("10193_右.jpg", "right", "left"),
                            ("10048_høyre.jpg", "right", "left"), ("10193_O.D..jpg", "right", "left"), ("10048_prawe.jpg", "right", "left")):
        res = client.post("/api/predict", files={sent: (name, photo, "image/jpeg")})
        assert res.status_code == 400 and res.json()["error"] == (f"{sent} eye: {name}: its file name says the {eye} eye; "
                                                                  f"send it as '{eye}' (or rename it)"), name
    assert client.post("/api/predict", files={"right": ("10193_右.jpg", photo, "image/jpeg"),
                                              "left": ("10193_左.jpg", other, "image/jpeg")}).status_code == 200
    # Names that agree, say nothing or name both eyes, and a photo of unknown side: graded.
    for files in ({"right": ("P7_OD.jpeg", photo, "image/jpeg"), "left": ("P7_left.jpeg", other, "image/jpeg")},
                  {"left": ("scan.jpeg", photo, "image/jpeg")}, {"left": ("P9_OD_OS.jpeg", photo, "image/jpeg")},
                  {"file": ("10_right.jpeg", photo, "image/jpeg")}):
        assert client.post("/api/predict", files=files).status_code == 200, files


# ---------------------------------------------------------------------- predict's CSV
@pytest.mark.parametrize("column", ["right_eye_image", "photo_right", "right", "OD"])
def test_a_second_column_of_photo_names_is_refused_by_its_cells(photos, tmp_path, column):
    # Probe 40 BD3: a wide list (one row per patient) under a name no rule knew: the right eyes dropped at INFO.
    (tmp_path / "w.csv").write_text(f"patient_id,image,{column}\n1003,{photos / '7_left.jpeg'},{photos / '7_right.jpeg'}\n")
    with pytest.raises(DataError, match=rf"w.csv: column {column!r} names photos too \('.*7_right.jpeg'\), but predict "
                                        r"reads one photo per row, from 'image'"):
        collect_inputs([tmp_path / "w.csv"])
    # Probe 41 BE3: its cells without an extension, as the image column may give them.
    (photos / "w.csv").write_text(f"patient_id,image,{column}\n1003,7_left,7_right\n")
    with pytest.raises(DataError, match=rf"w.csv: column {column!r} names photos too \('7_right'\)"):
        collect_inputs([photos / "w.csv"])
    (photos / "w.csv").write_text(f"patient_id,image,{column}\n1003,7_left,7_left\n")  # the row's own photo again: no second one
    assert len(collect_inputs([photos / "w.csv"])) == 1
    (photos / "w.csv").unlink()


@pytest.mark.parametrize(("header", "named"), [
    ("image,Image_Path", "'Image_Path' looks like the image column"),
    ("image,image_path ", "'image_path ' looks like the image column"),
    ("image,filename", "'filename' looks like the image column"),
    ("image,imgae", "'imgae' looks like the image column"),
    ("image,image_right", "'image_right' looks like the image column"),  # probe 39 BC6: a wide list's second photo
    ("image,second_image", "'second_image' looks like the image column"),
    ("image,pateint_id", "'pateint_id' looks like the patient column"),
    ("image,patient_no", "'patient_no' looks like the patient column"),
    ("image,Eyes", "'Eyes' looks like the eye column"),
    ("image,laterality", "'laterality' looks like the eye column"),
    ("image,path", "columns 'image' and 'path' both give the image"),
    ("image,Image", "column 'image' appears twice \\(as 'image' and 'Image'\\); keep one"),  # as label files say it
    ("image,patient_id,Patient", "columns 'patient_id' and 'Patient' both give the patient"),
    ("image,image", "column 'image' appears twice"),
    # Probe 30 W6: a clinic's patient identifiers were ignored, each photo graded as a patient of its own.
    ("image,MRN,eye", "'MRN' looks like the patient column"),
    ("image,case_id", "'case_id' looks like the patient column"),
    ("image,Patient Name", "'Patient Name' looks like the patient column"),
    ("image,Medical Record Number", "'Medical Record Number' looks like the patient column"),
    # Probe 56 BT5: the medical abbreviation, German, French: the list's pairing was lost with an INFO line only.
    ("image,pt_id", "'pt_id' looks like the patient column"),
    ("image,Pt #", "'Pt #' looks like the patient column"),
    ("image,Patientennummer", "'Patientennummer' looks like the patient column"),
    ("image,dossier", "'dossier' looks like the patient column"),
])
def test_a_column_that_looks_like_a_known_one_is_refused_by_name(photos, tmp_path, header, named):
    listing = tmp_path / "list.csv"
    listing.write_text(f"{header}\n" + "".join(f"{p.name},{'x,' * header.count(',')}"[:-1] + "\n" for p in sorted(photos.iterdir())))
    with pytest.raises(DataError, match=f"{listing}: .*{named}"):
        collect_inputs([listing])


def test_a_list_s_columns_not_read_are_named(photos, caplog):
    """Probe 30 W6: columns predict does not read were passed over without a word."""
    listing = photos / "list.csv"
    listing.write_text("image,patient_id,notes,visit date\n7_left.jpeg,P1,ok,2024-01-02\n")
    with caplog.at_level(logging.INFO, logger="drgrader"):
        collect_inputs([listing])
    said = [r.getMessage() for r in caplog.records if "not read" in r.getMessage()]
    assert said == [f"{listing}: column(s) not read: notes, visit date (predict reads image/path, image_id, "
                    "patient_id/patient, eye)"]


@pytest.mark.parametrize("column", ["ID paciente", "Fallnummer", "Kunde"])
def test_a_column_not_read_that_pairs_the_photos_as_eyes_is_warned_of(tmp_path, caplog, column):
    # Probe 57 BU1: a patient column under a name no word list holds was dropped with an INFO line only,
    # each exposure-numbered photo (55012_L, 55013_R) a patient of its own.
    for k, name in enumerate(("55012_L.jpg", "55013_R.jpg", "55014_L.jpg", "55015_R.jpg")):
        (tmp_path / name).write_bytes(jpeg(k % 3, k))
    listing = tmp_path / "l.csv"
    listing.write_text(f"image,{column}\n55012_L.jpg,A1\n55013_R.jpg,A1\n55014_L.jpg,B2\n55015_R.jpg,B2\n")
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        collect_inputs([listing])
    assert (f"column {column!r} is not read, but its values pair the photos as patients' two eyes (e.g. 'A1': "
            "patients '55012' and '55013' as read, one eye each)") in caplog.text
    caplog.clear()
    listing.write_text(f"image,{column}\n55012_L.jpg,A1\n55013_R.jpg,A2\n55014_L.jpg,B1\n55015_R.jpg,B2\n")
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        collect_inputs([listing])
    assert "pair the photos" not in caplog.text



def _exposure_list(folder: Path, header: str, rows: str) -> Path:
    """Photos named by exposure (``55012_R.jpg``: each a patient of its own as read), listed with ``rows``."""
    for k, name in enumerate(("55012_R", "55013_L", "55014_R", "55015_L", "55016_L", "55017_R", "10489_right", "10489_left",
                              "55020", "55021")):
        (folder / f"{name}.jpg").write_bytes(jpeg(k % 3, k))
    listing = folder / "l.csv"
    listing.write_text(f"{header}\n{rows}")
    return listing


@pytest.mark.parametrize("rows", [
    "55012_R.jpg,A1\n55013_L.jpg,A1\n",  # one patient's list
    "55012_R.jpg,A1\n55013_L.jpg,A1\n55016_L.jpg,A1\n55014_R.jpg,A2\n55015_L.jpg,A2\n55017_R.jpg,A3\n",  # a retake
    "55012_R.jpg,A1\n55013_L.jpg,A1\n55014_R.jpg,A2\n55015_L.jpg,A2\n55017_R.jpg,\n",  # an empty cell
    "55012_R.jpg,A1\n55013_L.jpg,A1\n10489_right.jpg,A3\n10489_left.jpg,A3\n"])  # one patient named alike
def test_a_column_pairing_the_photos_is_warned_of_in_ordinary_lists(tmp_path, caplog, rows):
    # Probe 58 BV3: the BU1 warning needed every value on two photos, two pairs at least, no empty cell.
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        collect_inputs([_exposure_list(tmp_path, "image,Kunde", rows)])
    assert ("column 'Kunde' is not read, but its values pair the photos as patients' two eyes (e.g. 'A1': patients "
            "'55012' and '55013' as read, one eye each): if it is the patient's id, name it patient_id") in caplog.text


@pytest.mark.parametrize(("header", "rows"), [
    ("image,Kunde", "10489_right.jpg,A1\n10489_left.jpg,A1\n"),  # one patient as read already
    ("image,Kunde", "55012_R.jpg,A1\n55013_L.jpg,A2\n10489_right.jpg,A3\n10489_left.jpg,A3\n"),  # no value pairs
    ("image,level", "55012_R.jpg,0\n55013_L.jpg,0\n"), ("image,Image quality", "55012_R.jpg,good\n55013_L.jpg,good\n"),
    ("image,Aufnahme", "55012_R.jpg,2024-01-02\n55013_L.jpg,2024-01-02\n"), ("image,Geschlecht", "55012_R.jpg,M\n55013_L.jpg,M\n"),
    ("image,Einheit", "".join(f"{n}.jpg,W3\n" for n in ("55012_R", "55013_L", "55014_R", "55015_L", "55016_L", "55017_R",
                                                         "10489_right", "10489_left")))])  # a ward's many photos
def test_a_column_that_pairs_no_photos_is_not_warned_of(tmp_path, caplog, header, rows):
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        collect_inputs([_exposure_list(tmp_path, header, rows)])
    assert "pair the photos" not in caplog.text


@pytest.mark.parametrize(("column", "right", "left"), [("Côté", "R", "L"), ("Lato_occhio", "OD", "os"), ("Kant", "Right", "left")])
def test_an_eye_column_not_read_is_said_to_look_like_the_eye_column(tmp_path, caplog, column, right, left):
    # Probe 58 BV8: R and L under a name no list holds were "two people, sites or visits under one id? ... its eyes
    # paired" (their eyes unknown, not paired).
    listing = _exposure_list(tmp_path, f"image,patient_id,{column}", f"55020.jpg,1001,{right}\n55021.jpg,1001,{left}\n")
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        table = collect_inputs([listing])
    assert table["eye"].tolist() == ["", ""]  # not read: said, not guessed
    assert (f"column {column!r} is not read, but its values are eyes: it looks like the eye column, and 2 photo(s) have no "
            f"eye or another one as read (e.g. '55020.jpg': {right!r} there, no eye as read): rename it 'eye' if it is "
            "each photo's eye") in caplog.text
    assert "two people" not in caplog.text and "eyes paired" not in caplog.text
    caplog.clear()  # the patient not read either: both pointed at
    listing.write_text(f"image,Fallnummer,{column}\n55020.jpg,A1,{right}\n55021.jpg,A1,{left}\n")
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        collect_inputs([listing])
    assert f"column {column!r} is not read, but its values are eyes" in caplog.text
    assert ("column 'Fallnummer' is not read, but its values pair the photos as patients' two eyes (e.g. 'A1': patients "
            f"'55020.jpg' (no patient) and '55021.jpg' (no patient) as read, one eye each by column {column!r}, not read "
            "either)") in caplog.text
    caplog.clear()  # names that give the same eyes: nothing lost, nothing said
    listing.write_text(f"image,{column}\n10489_right.jpg,{right}\n10489_left.jpg,{left}\n")
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        collect_inputs([listing])
    assert "values are eyes" not in caplog.text
    caplog.clear()  # two values under one patient whose eyes are unknown: pooled, not "its eyes paired"
    listing.write_text("image,patient_id,Station\n55020.jpg,1001,W3\n55021.jpg,1001,W9\n")
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        collect_inputs([listing])
    assert "They are taken as one patient's photos (its photos pooled, its decision from all of them)" in caplog.text

def test_a_name_without_extension_that_two_files_match_is_refused_by_row(photos):
    listing = photos / "list.csv"
    listing.write_text("image\n7_right\n7_left\n")
    assert [Path(p).name for p in collect_inputs([listing])["path"]] == ["7_right.jpeg", "7_left.jpeg"]
    (photos / "7_left.png").write_bytes(b"another photo")  # which one was meant?
    with pytest.raises(DataError, match=f"{listing} row 2: '7_left' could be 7_left.jpeg or 7_left.png"):
        collect_inputs([listing])


@pytest.mark.parametrize("url", ["https://example.org/a/7_left.jpeg", "s3://bucket/7_left.jpeg", "file:///tmp/7_left.jpeg"])
def test_a_url_in_a_list_is_refused_naming_the_row(photos, url):
    """Probe 30 C5: a URL was a 'file not found' row under a mangled path (https:/example.org/...)."""
    listing = photos / "list.csv"
    listing.write_text(f"image\n7_right.jpeg\n{url}\n")
    with pytest.raises(DataError, match=rf"^{listing} row 2 \(image '{re.escape(url)}'\): a URL, not a file path: "
                                        "download the photos first$"):
        collect_inputs([listing])


def test_a_list_s_row_numbers_count_data_rows_as_label_files_do(photos):
    """Probe 30 C1: 'row N' was the line number in predict lists (header = row 1) and the data
    row in label files (header not counted): the first photo's row is row 1 in both."""
    listing = photos / "list.csv"
    listing.write_text("image,eye\n7_left.jpeg,Right Eye\n")
    with pytest.raises(DataError, match=rf"^{listing} row 1 \(image '7_left.jpeg'\): eye 'Right Eye' is not one of"):
        collect_inputs([listing])


def test_predict_exits_2_naming_the_column_and_writes_nothing(tiny_bundle, photos, tmp_path, capsys):
    listing = photos / "list.csv"
    listing.write_text("image,notes,Patient_ID,eye_side\n7_left.jpeg,Ann,P1,left\n")
    out = tmp_path / "p.csv"
    assert main(["predict", str(tiny_bundle), str(listing), "--out", str(out)]) == 2
    assert "'eye_side' looks like the eye column" in error_line(capsys)
    assert not out.exists()
    # A European spreadsheet's "CSV": one column, its name holding the others.
    listing.write_text("image;patient_id;eye\n7_left.jpeg;P1;left\n")
    assert main(["predict", str(tiny_bundle), str(listing), "--out", str(out)]) == 2
    assert "look separated by semicolons or tabs: save it comma-separated" in error_line(capsys)
    assert not out.exists()


def test_known_columns_are_read_whatever_their_case_and_separators(photos, tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("Image ,Patient ID,EYE,Image-ID,level,notes,quality\n"
                       f"{photos}/7_right.jpeg,P9,R,a1,2,n,good\n{photos}/7_left.jpeg,P9,L,a2,0,,\n")  # cells and names agree
    table = collect_inputs([listing])
    assert table[["image_id", "patient_id", "eye"]].values.tolist() == [["a1", "P9", "right"], ["a2", "P9", "left"]]


def test_predict_reads_its_own_output_back_with_the_same_identities(tiny_bundle, photos, tmp_path):
    first = tmp_path / "first.csv"
    assert main(["predict", str(tiny_bundle), str(photos), "--out", str(first)]) == 0
    again = tmp_path / "again.csv"
    assert main(["predict", str(tiny_bundle), str(first), "--out", str(again)]) == 0  # its columns look like nothing else
    keys = ["path", "image_id", "patient_id", "eye", "grade"]
    assert pd.read_csv(again, dtype=str)[keys].equals(pd.read_csv(first, dtype=str)[keys])


# ------------------------------------------------------------------ inputs left unused
def test_an_input_that_gives_nothing_to_grade_is_refused(tiny_bundle, photos, tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("not a photo")
    header_only = tmp_path / "header.csv"
    header_only.write_text("image,patient_id\n")
    out = tmp_path / "p.csv"
    for extra in (empty, header_only):
        assert main(["predict", str(tiny_bundle), str(photos / "7_left.jpeg"), str(extra), "--out", str(out)]) == 2
        assert f"no photos in {extra}" in error_line(capsys)
        assert not out.exists()


def test_hidden_files_and_folders_are_left_out_and_counted(photos, caplog):
    (photos / ".thumbnails").mkdir()
    (photos / ".thumbnails" / "7_left.jpeg").write_bytes(jpeg(4, 9))  # would be a second, different left eye
    (photos / "._7_right.jpeg").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    table = collect_inputs([photos])
    assert sorted(Path(p).name for p in table["path"]) == ["7_left.jpeg", "7_right.jpeg"]
    assert (table["identity_note"] == "").all()
    assert f"skipped 2 hidden files in {photos} (a name, or a folder's, beginning with '.': e.g. ._7_right.jpeg)" in caplog.text


def test_a_list_of_the_photos_inside_the_folder_given_is_named_as_one(photos, caplog):
    # probe 53 BQ9: skipped as "not an image" only, its patients not read, no word that it is a list
    (photos / "patients.csv").write_text("image,patient_id,eye\n7_left.jpeg,A1,left\n7_right.jpeg,A1,right\n")
    (photos / "notes.csv").write_text("when,who\n2015,me\n")
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        collect_inputs([photos])
    assert (f"skipped 2 files in {photos} that are not " in caplog.text
            and "(.csv: 2); patients.csv looks like a list of photos: to read the patients and eyes it gives, give predict "
                "the list instead of the folder" in caplog.text)


def test_a_photo_given_twice_as_different_eyes_is_one_photo_with_the_conflict_noted(photos, tmp_path, monkeypatch):
    # Rule 2's resolver combines the two mentions (the CSV's patient wins) and says what it did.
    listing = tmp_path / "list.csv"
    listing.write_text(f"image,patient_id,eye\n{photos}/7_left.jpeg,P1,right\n")
    table = collect_inputs([photos, listing]).set_index("image_id")
    assert len(table) == 2 and table.loc["7_left", "patient_id"] == "P1" and table.loc["7_left", "eye"] == ""
    assert table.loc["7_left", "identity_note"].startswith("contradictory eye: for '7_left' the CSV says right, the file name says left")
    listing.write_text(f"image,patient_id,eye\n{photos}/7_left.jpeg,7,left\n")  # the same identity: graded once
    assert len(collect_inputs([photos, listing])) == 2
    monkeypatch.chdir(tmp_path)  # one photo written two ways (relative, absolute) is one photo
    assert len(collect_inputs([Path("photos/7_left.jpeg"), photos / "7_left.jpeg", photos])) == 2


def test_a_link_loop_is_a_row_with_its_reason_not_the_refusal_of_the_batch(tiny_bundle, photos, tmp_path):
    loop = tmp_path / "loop.jpeg"
    loop.symlink_to(loop)
    out = tmp_path / "p.csv"
    assert main(["predict", str(tiny_bundle), str(photos / "7_left.jpeg"), str(loop), "--out", str(out)]) == 0
    rows = pd.read_csv(out, dtype=str, keep_default_na=False).set_index("image_id")
    assert rows.loc["loop", "error"] == "symbolic link loop" and rows.loc["7_left", "error"] == ""


def test_photos_in_a_linked_folder_inside_a_folder_given_are_read(photos, tmp_path):
    """Probe 51 BO7: `rglob` does not enter linked folders: a clinic's photo store linked into the
    folder given was left out without a word. A link back up the tree is read once, no loop."""
    clinic = tmp_path / "clinic"
    (clinic / "own").mkdir(parents=True)
    (clinic / "own" / "9_left.jpeg").write_bytes((photos / "7_left.jpeg").read_bytes()[:-1] + b"\xd9")
    (clinic / "store").symlink_to(photos)  # photos/ holds 7_left, 7_right, ...
    (clinic / "own" / "up").symlink_to(clinic)  # a link back up the tree
    table = collect_inputs([clinic])
    names = sorted(Path(p).relative_to(clinic).as_posix() for p in table["path"])
    assert "store/7_left.jpeg" in names and "own/9_left.jpeg" in names
    assert not any(name.startswith("own/up/") for name in names)


def test_grade_refuses_two_in_memory_photos_of_one_name(tiny_bundle):
    import drgrader

    rgb = make_fundus(1, np.random.default_rng(0), height=128)
    with pytest.raises(ValueError, match="'p1_left' is given to two photos"):
        drgrader.grade(tiny_bundle, [rgb, rgb], names=["p1_left", "p1_left"])


def test_options_that_would_be_ignored_are_refused(tiny_bundle, photos, tmp_path, capsys):
    out = tmp_path / "p.csv"
    assert main(["predict", str(tiny_bundle), str(photos), "--tta", "--out", str(out)]) == 2  # --tta with no view
    assert "--tta: give at least one view" in error_line(capsys) and not out.exists()
    for key in ("data.image_size=512", "data.preprocess.ben_graham=true", "eval.tta=[hflip]", "data.split.test=0.5",
                "data.normalize=unit"):  # probe 34 BX1: data.normalize was dropped
        assert main(["evaluate", str(tiny_bundle), "--data", str(photos), "--set", key, "--out", str(tmp_path / "e")]) == 2
        assert f"--set {key.split('=')[0]}: evaluate --data takes it from the bundle" in error_line(capsys)
        assert not (tmp_path / "e").exists()
    # Probe 32 B8: eval.threshold_objective was dropped (evaluate --data fits no thresholds).
    assert main(["evaluate", str(tiny_bundle), "--data", str(photos), "--set", "eval.threshold_objective=sensitivity",
                 "--out", str(tmp_path / "e")]) == 2
    assert "--set eval.threshold_objective: evaluate --data fits no thresholds" in error_line(capsys)
    # Probe 35 BY5: a model or training field was dropped without a word.
    for key in ("model.backbone=resnet18", "train.epochs=3"):
        assert main(["evaluate", str(tiny_bundle), "--data", str(photos), "--set", key, "--out", str(tmp_path / "e")]) == 2
        assert f"--set {key.split('=')[0]}: evaluate --data grades with the bundle's own model" in error_line(capsys)
    # Probe 34 BX5: the data set's ungradable photos were left out of every figure.
    assert main(["evaluate", str(tiny_bundle), "--data", str(photos), "--set", "data.exclude_ungradable=true",
                 "--out", str(tmp_path / "e")]) == 2
    assert "--set data.exclude_ungradable: evaluate grades every photo of the data set and counts the ungradable" in \
        error_line(capsys)
    for key in ("eval.refer_share=0.3", "eval.urgent_sensitivity=0.8", "eval.fit_cutpoints=false",
                "eval.target_sensitivity=0.95"):  # probe 34 BX1: dropped without a word
        assert main(["evaluate", str(tiny_bundle), "--data", str(photos), "--set", key, "--out", str(tmp_path / "e")]) == 2
        assert f"--set {key.split('=')[0]}: evaluate --data fits no thresholds" in error_line(capsys)


def test_fields_of_an_evaluate_yaml_that_the_bundle_decides_are_refused_as_their_set_is(tiny_bundle, photos, tmp_path,
                                                                                      capsys):
    """Probe 32 B8: ``evaluate BUNDLE --data EXP.yaml`` dropped the YAML's data.image_size,
    data.preprocess.*, data.split.*, eval.tta and eval.threshold_objective without a word (the
    bundle's are used), though the same by ``--set`` were refused."""
    from drgrader.inference.bundle_spec import read_manifest
    from drgrader.workflows.external_config import external_config

    manifest = read_manifest(tiny_bundle)
    size = manifest["input_size"]
    for section, field in (("data", f"image_size: {size + 16}"), ("data", "preprocess: {ben_graham: true}"),
                           ("data", "split: {test: 0.5}"), ("eval", "tta: [orig, vflip]"),
                           ("eval", "threshold_objective: sensitivity"), ("data", "normalize: unit"),
                           ("eval", "refer_share: 0.3"), ("eval", "threshold_range: [0.1, 0.9]")):
        config = tmp_path / "ev.yaml"
        config.write_text(f"data:\n  root: {photos}\n" + (f"{section}:\n" if section != "data" else "") + f"  {field}\n")
        assert main(["evaluate", str(tiny_bundle), "--data", str(config), "--out", str(tmp_path / "e")]) == 2, field
        key = f"{section}.{field.split(':')[0]}"
        line = error_line(capsys)
        assert line.startswith(f"error: {config} sets {key}") and "drop it from the file" in line, line
        assert not (tmp_path / "e").exists()
    # The default, or the bundle's own value (the experiment it was trained with), is not dropped: it is what is used.
    config.write_text(f"data:\n  root: {photos}\n  image_size: {size}\n  split: {{method: patient}}\n"
                      f"eval:\n  tta: {manifest['tta']}\n  threshold_objective: youden\n"
                      f"  refer_share: {manifest['config']['eval']['refer_share']}\n  threshold_range: [0.0, 1.0]\n")
    assert external_config(str(config), manifest, []).data.image_size == size
    # A training YAML's exclude_ungradable is not applied (probe 34 BX5): every photo is evaluated.
    config.write_text(f"data:\n  root: {photos}\n  exclude_ungradable: true\n")
    assert external_config(str(config), manifest, []).data.exclude_ungradable is False
    # Probe 33 BV6: a default written out is a setting too (eval.tta: [orig], to evaluate without TTA).
    if manifest["tta"] != ["orig"]:
        config.write_text(f"data:\n  root: {photos}\neval:\n  tta: [orig]\n")
        assert main(["evaluate", str(tiny_bundle), "--data", str(config), "--out", str(tmp_path / "e")]) == 2
        assert "sets eval.tta to ['orig']" in error_line(capsys)
    config.write_text(f"data:\n  root: {photos}\n  image_size: 224\n")  # the default, not the bundle's {size}
    assert main(["evaluate", str(tiny_bundle), "--data", str(config), "--out", str(tmp_path / "e")]) == 2
    assert "sets data.image_size to 224" in error_line(capsys)


# ---------------------------------------------------------------------------- label files
def label_set(root: Path, labels_name: str, labels: str, images: list[str], image_dir: str = "images") -> Path:
    """A data set of placeholder photos (the manifest does not read pixels) and one label file."""
    for name in images:
        (root / image_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (root / image_dir / name).write_bytes(name.encode())
    (root / labels_name).write_text(labels, encoding="utf-8")
    return root


def test_a_referral_label_pointed_at_as_the_grade_is_refused(tmp_path):
    # Probe 36 BZ6: data.columns.grade=referable (0/1) trained every referable eye as "mild".
    from drgrader.data.manifest import read_dataset

    root = label_set(tmp_path, "labels.csv", "image,referable,level\n10_left,0,0\n10_right,1,3\n11_left,1,2\n",
                     ["10_left.jpeg", "10_right.jpeg", "11_left.jpeg"])
    with pytest.raises(DataError, match=r"^labels.csv: column 'referable' \(data.columns.grade\) holds only 0 and 1 and its "
                                        r"name says a referral or any-DR label, not an ICDR grade 0-4"):
        read_dataset(root, "csv", columns={"grade": "referable"})
    assert read_dataset(root, "csv", columns={"grade": "level"})["grade"].tolist() == [0, 3, 2]
    (root / "labels.csv").write_text("image,any_dr\n10_left,0\n10_right,1\n11_left,1\n")  # probe 37 CA3
    with pytest.raises(DataError, match=r"column 'any_dr' \(data.columns.grade\) holds only 0 and 1 and its name says a referral "
                                        r"or any-DR label"):
        read_dataset(root, "csv", columns={"grade": "any_dr"})


def test_a_macular_edema_column_pointed_at_as_the_grade_is_warned_of(tmp_path, caplog):
    # Probe 47 CK3: IDRiD's 'Risk of macular edema' (0-2) as data.columns.grade was read as ICDR
    # 0-2 without a word: every DME risk 2 eye a moderate NPDR, referable.
    from drgrader.data.manifest import read_dataset

    root = label_set(tmp_path, "labels.csv", "image,Risk of macular edema,Image quality\n10_left,2,1\n10_right,0,3\n"
                                             "11_left,1,2\n", ["10_left.jpeg", "10_right.jpeg", "11_left.jpeg"])
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        assert read_dataset(root, "csv", columns={"grade": "Risk of macular edema"})["grade"].tolist() == [2, 0, 1]
    said = [r.getMessage() for r in caplog.records if "data.columns.grade" in r.getMessage()]
    assert len(said) == 1 and "'Risk of macular edema' (data.columns.grade) is read as the ICDR DR grade 0-4, but its " \
                              "name says macular edema, image quality or a date" in said[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        read_dataset(root, "csv", columns={"grade": "Image quality"})
    assert any("'Image quality' (data.columns.grade) is read as the ICDR DR grade" in r.getMessage() for r in caplog.records)
    (root / "labels.csv").write_text("image,DR grade\n10_left,2\n10_right,0\n11_left,1\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        read_dataset(root, "csv", columns={"grade": "DR grade"})
    assert not any("data.columns.grade" in r.getMessage() for r in caplog.records)


def test_a_messidor1_sheet_is_refused_for_its_own_grade_scale(tmp_path, caplog):
    # Probe 37 CA7: Messidor-1's 0-3 "Retinopathy grade" (3: severe NPDR and PDR) was read as ICDR.
    from drgrader.data.manifest import read_dataset

    root = label_set(tmp_path, "labels.csv", "Image name,Ophthalmologic department,Retinopathy grade,Risk of macular edema\n"
                                             "a.tif,Service 1,3,0\nb.tif,Service 1,0,0\n", ["a.tif", "b.tif"])
    with pytest.raises(DataError, match="this is Messidor-1's sheet, whose 'Retinopathy grade' is 0-3 on its own scale"):
        read_dataset(root, "csv", columns={"image": "Image name", "grade": "Retinopathy grade"})
    # Probe 38 CB6: the grade column alone (the department column dropped): warned, no grade 4 in it.
    (root / "labels.csv").write_text("Image name,Retinopathy grade\na.tif,3\nb.tif,0\n")
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        assert len(read_dataset(root, "csv", columns={"image": "Image name", "grade": "Retinopathy grade"})) == 2
    assert "'Retinopathy grade' is Messidor-1's header, whose grades are 0-3 on its own scale" in caplog.text
    # Probe 39: its headers in another case or spelling alike.
    (root / "labels.csv").write_text("Image name,ophthalmologic_department,retinopathy grade\na.tif,S1,3\nb.tif,S1,0\n")
    with pytest.raises(DataError, match="this is Messidor-1's sheet, whose 'retinopathy grade' is 0-3"):
        read_dataset(root, "csv", columns={"image": "Image name", "grade": "retinopathy grade"})
    (root / "labels.csv").write_text("Image name,Retinopathy_Grade\na.tif,3\nb.tif,0\n")
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        read_dataset(root, "csv", columns={"image": "Image name", "grade": "Retinopathy_Grade"})
    assert "'Retinopathy_Grade' is Messidor-1's header" in caplog.text
    # Probe 40 CD1: the full sheet with its grade column renamed: its department column tells it.
    (root / "labels.csv").write_text("Image name,Ophthalmologic department,DR grade\na.tif,S1,3\nb.tif,S1,0\n")
    with pytest.raises(DataError, match="this is Messidor-1's sheet, whose 'DR grade' is 0-3"):
        read_dataset(root, "csv", columns={"image": "Image name", "grade": "DR grade"})


def test_grades_all_0_or_1_are_warned_of_whatever_the_columns_name(tmp_path, caplog):
    # Probe 38 CB4: a 0/1 label under a name no rule knows (dr_any, DR, a binarised level) read as none/mild.
    from drgrader.data.manifest import read_dataset

    names = [f"{p}_{e}" for p in range(10, 20) for e in ("left", "right")]
    root = label_set(tmp_path, "trainLabels.csv", "image,level\n", [f"{n}.jpeg" for n in names])

    def warnings_for(grades) -> str:
        caplog.clear()
        (root / "trainLabels.csv").write_text("image,level\n" + "".join(f"{n},{g}\n" for n, g in zip(names, grades)))
        with caplog.at_level(logging.WARNING, logger="drgrader"):
            assert len(read_dataset(root)) == 20
        return caplog.text

    assert "every grade read is 0 or 1 (20 photos, 50% of them 1): a yes/no label (any DR, referable) read as" in warnings_for(
        [k % 2 for k in range(20)])
    # Probe 41 CE8: a referable label of 10% is as likely as a day of real grades without a moderate eye
    # (probe 39 CC9): said, with what to do in either case.
    said = warnings_for([int(k % 10 == 0) for k in range(20)])
    assert "every grade read is 0 or 1 (20 photos, 10% of them 1)" in said
    assert "if these are ICDR grades (no eye moderate or worse), nothing is wrong" in said
    # Probe 40 CD3: no grade 0 among 20 photos: a scale from 1, every eye a step too high?
    assert "no grade 0 among 20 photos: a grade scale that starts at 1 read as the ICDR grades 0-4" in warnings_for(
        [1 + k % 4 for k in range(20)])


def test_two_label_rows_naming_one_file_are_refused(tmp_path):
    from drgrader.data.manifest import read_dataset

    root = label_set(tmp_path, "trainLabels.csv", "image,level\n10131_left,3\n10131_right,0\n10131_LEFT,0\n",
                     ["10131_left.jpeg", "10131_right.jpeg"])
    with pytest.raises(DataError, match=r"^trainLabels.csv row 3 \(image '10131_LEFT'\): names the same file as "
                                        r"trainLabels.csv row 1 \(image '10131_left'\) \(images/10131_left.jpeg\)"):
        read_dataset(root)


PATIENT_IMAGES = ["IMG1.jpeg", "IMG2.jpeg", "IMG3.jpeg", "IMG4.jpeg"]


def test_a_label_files_other_columns_are_named_as_not_read(tmp_path, caplog):
    """Probe 32 B14: a label file's image_id (or notes) column was dropped without the 'column(s)
    not read' line predict gives; the identifier beside the patient column is named once."""
    from drgrader.data.manifest import read_dataset

    # Probe 34 BX10: a column without a header but with a value (a grade typed beside) was not named; an empty one is not.
    labels = "image,level,patient_id,MRN,image_id,notes,,\nIMG1,0,A,1,12_left,x,,\nIMG2,1,A,1,12_right,,3,\n"
    with caplog.at_level(logging.INFO, logger="drgrader"):
        read_dataset(label_set(tmp_path, "labels.csv", labels, PATIENT_IMAGES[:2]))
    said = [r.getMessage() for r in caplog.records if "not read" in r.getMessage()]
    assert said == ["labels.csv: column(s) not read: MRN (the patient is read from 'patient_id')",
                    "labels.csv: column(s) not read: image_id, notes, Unnamed: 6 (a label file gives each photo's grade, "
                    "patient and eye)"]


@pytest.mark.parametrize(("patient", "eye"), [("patient", "eye"), ("Patient ID", "Eye"), ("PATIENT-ID", "EYE")])
def test_a_label_file_s_patient_and_eye_columns_are_read_by_predict_s_names(tmp_path, patient, eye):
    from drgrader.data.manifest import read_dataset

    labels = f"image,level,{patient},{eye}\nIMG1,0,A,L\nIMG2,1,A,R\nIMG3,2,B,left\nIMG4,0,B,right\n"
    table = read_dataset(label_set(tmp_path, "labels.csv", labels, PATIENT_IMAGES)).set_index("image_id")
    assert list(table["patient_id"]) == ["A", "A", "B", "B"]  # before: four patients of their own
    assert list(table["eye"]) == ["left", "right", "left", "right"]


@pytest.mark.parametrize("column", ["patient_no", "Pateint", "subject", "laterality", "eye_side",
                                    "study_id", "Pat_No", "NHS number", "UR", "eid",  # probe 36 BZ5
                                    "ID", "HN", "IC", "which_eye", "OD/OS", "Auge",  # probe 37 BA5, CA2
                                    "Full Name", "family_id", "Accession", "Accession Number",  # probe 38 BB5
                                    "Seite", "oculus", "Lado", "Lateralidad"])  # probe 57 CU4
def test_a_label_column_that_looks_like_patient_or_eye_is_refused_by_name(tmp_path, column):
    from drgrader.data.manifest import read_dataset

    labels = f"image,level,{column}\nIMG1,0,A\nIMG2,1,A\nIMG3,2,B\nIMG4,0,B\n"
    with pytest.raises(DataError, match=rf"^labels.csv: column {column!r} looks like the (patient|eye) column but is "
                                        r"not one the label reader reads .*data\.columns\."):
        read_dataset(label_set(tmp_path, "labels.csv", labels, PATIENT_IMAGES))


def test_an_identifier_beside_the_patient_column_is_named_as_not_read_not_refused(photos, tmp_path, caplog):
    """Probe 31 W3: a list or label file with ``patient_id`` and ``MRN`` (a clinic's hospital number
    beside its screening id) was refused as a look-alike, though its patient column is there."""
    from drgrader.data.manifest import read_dataset

    listing = photos / "list.csv"
    listing.write_text("image,patient_id,MRN,Patient Name\n7_left.jpeg,P1,M-1,Ann\n")
    with caplog.at_level(logging.INFO, logger="drgrader"):
        assert collect_inputs([listing])["patient_id"].tolist() == ["P1"]
        labels = "image,level,patient_id,MRN\nIMG1,0,A,1\nIMG2,1,A,1\nIMG3,2,B,2\nIMG4,0,B,2\n"
        table = read_dataset(label_set(tmp_path / "lab", "labels.csv", labels, PATIENT_IMAGES))
    assert list(table["patient_id"]) == ["A", "A", "B", "B"]
    said = [r.getMessage() for r in caplog.records if "not read" in r.getMessage()]
    assert said[0].startswith(f"{listing}: column(s) not read: MRN, Patient Name (predict reads ")
    assert said[1] == "labels.csv: column(s) not read: MRN (the patient is read from 'patient_id')"
    listing.write_text("image,MRN\n7_left.jpeg,M-1\n")  # the only patient evidence: still refused
    with pytest.raises(DataError, match="'MRN' looks like the patient column"):
        collect_inputs([listing])
    # Probe 32 A4: the patient column there but empty on a row: the MRN was again the only evidence.
    listing.write_text("image,patient_id,MRN\n7_left.jpeg,P1,M-1\n7_right.jpeg,,M-1\n")
    with pytest.raises(DataError, match=rf"^{listing} row 2 \(image '7_right.jpeg'\): no patient in 'patient_id', but 'MRN' "
                                        "says 'M-1', which is not read: fill 'patient_id'$"):
        collect_inputs([listing])


def test_a_patient_column_in_a_published_layout_is_read_or_refused(tmp_path):
    from drgrader.data.manifest import read_dataset

    aptos = label_set(tmp_path / "aptos", "train.csv", "id_code,diagnosis,patient_id\nIMG1,0,A\nIMG2,1,A\nIMG3,2,B\n",
                      ["IMG1.png", "IMG2.png", "IMG3.png"], image_dir="train_images")
    assert list(read_dataset(aptos)["patient_id"]) == ["A", "A", "B"]  # before: three patients
    kaggle = label_set(tmp_path / "kaggle", "trainLabels.csv", "image,level,Patient\n10_left,0,10\n10_right,1,10\n",
                       ["10_left.jpeg", "10_right.jpeg"])
    with pytest.raises(DataError, match=r"^trainLabels.csv: column 'Patient' is not read by the kaggle format"):
        read_dataset(kaggle)


def test_grade_folders_are_read_with_their_subfolders_and_other_folders_are_counted_by_name(tmp_path):
    from drgrader.config import DataConfig
    from drgrader.data.manifest import read_manifest

    photos = ["0/10007_left.jpeg", "0/clinicB/10009_left.jpeg", "3/clinicB/10009_right.jpeg",
              "4 proliferative/10489_right.jpeg", "0_No_DR/10010_left.jpeg", "extra/a.jpeg", "extra/more/b.jpeg",
              "0/.thumbs/10007_left.jpeg", ".trash/c.jpeg"]
    root = label_set(tmp_path, "notes.txt", "", photos, image_dir="")
    with pytest.warns(UserWarning, match=r"2 photos in .* are not in a grade folder 0..4 .* left out \(in extra/: 2; e.g. extra/a.jpeg\)"):
        manifest = read_manifest(DataConfig(root=root))
    table = manifest.table.set_index("image_id")
    assert dict(table["grade"]) == {"10007_left": 0, "clinicB/10009_left": 0, "clinicB/10009_right": 3,
                                    "10489_right": 4, "10010_left": 0}
    assert table.loc["clinicB/10009_right", "patient_id"] == "clinicB/10009"  # one patient per clinic's numbering
    assert manifest.skipped.unlabelled_files == 2
    (root / "7 maybe").mkdir()
    (root / "7 maybe" / "d.jpeg").write_bytes(b"d")
    with pytest.raises(DataError, match="folder name '7 maybe' is not a grade in 0..4"):
        read_manifest(DataConfig(root=root))


def test_photos_the_label_file_does_not_list_are_counted_and_named_wherever_they_are_under_the_root(tmp_path):
    """Probe 27 X3: trainLabels.csv with grade folders 3/ and 4/ beside it; the grade-folder photos
    were left out of evaluate and data summary without a word. Hidden folders, the cache folder and
    drgrader's own output folders (a run's figures are PNGs) are not photos of the data set."""
    from drgrader.config import DataConfig
    from drgrader.data.manifest import read_manifest

    root = label_set(tmp_path / "both", "trainLabels.csv", "image,level\n10_left,0\n10_right,1\n",
                     ["10_left.jpeg", "10_right.jpeg", "11_left.jpeg"])
    for name in ["3/500_left.jpeg", "3/501_left.jpeg", "4/500_right.jpeg", ".drgrader-cache/x.png", ".hidden/y.jpeg",
                 "runs/r1/bundle/.keep", "runs/r1/figures/roc.png", "evout/metrics.json", "evout/gallery/e.png"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b'{"evaluated_on": "test"}' if name.endswith("metrics.json") else b"x")
    with pytest.warns(UserWarning, match=r"^4 photos in .*both are not in trainLabels.csv and are left out "
                                         r"\(in 3/: 2, 4/: 1, images/: 1; e.g. 3/500_left.jpeg\)$"):
        manifest = read_manifest(DataConfig(root=root))
    assert len(manifest.table) == 2
    assert manifest.skipped.unlabelled_files == 4


def test_a_list_ending_in_a_dos_end_of_file_byte_has_no_phantom_row(photos):
    # Probe 29: the Ctrl-Z (0x1A) old DOS and Windows tools end a text file with became a third
    # row, a phantom 'file not found' photo and an ungradable patient ("find the missing photo").
    (photos / "list.csv").write_bytes(b"image\r\n7_left.jpeg\r\n7_right.jpeg\r\n\x1a")
    table = collect_inputs([photos / "list.csv"])
    assert sorted(table["image_id"]) == ["7_left", "7_right"]
    (photos / "list.csv").write_bytes(b"image\n7_left.jpeg\n\x1a\n7_right.jpeg\n")  # inside the file: refused by row
    with pytest.raises(DataError, match=r"list.csv row 2: a DOS end-of-file byte \(Ctrl-Z, 0x1A\) in the 'image' cell"):
        collect_inputs([photos / "list.csv"])


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_a_list_saved_as_utf16_or_utf32_is_read(photos, encoding):
    # Probe 29: Excel's "Unicode Text" (UTF-16 with a byte-order mark) was read as Latin-1 and
    # refused for "a NUL byte in the 'ÿþi\x00m\x00...' cell". Read in its encoding (with or without the mark).
    text = "image,patient_id,eye\r\n7_left.jpeg,Mü,left\r\n7_right.jpeg,Mü,right\r\n"
    (photos / "list.csv").write_bytes(text.encode(encoding))
    table = collect_inputs([photos / "list.csv"])
    assert sorted(table["image_id"]) == ["7_left", "7_right"] and set(table["patient_id"]) == {"Mü"}


def test_a_photo_given_again_through_a_link_is_graded_once(photos, tmp_path):
    # Probe 29: `predict ph/10131_left.jpeg phl/10131_left.jpeg` (phl -> ph) graded the photo twice,
    # as patients ph/10131 and phl/10131, where the same photo given twice alike is graded once.
    (tmp_path / "linked").symlink_to(photos)
    (tmp_path / "hard").mkdir()
    os.link(photos / "7_left.jpeg", tmp_path / "hard" / "7_left.jpeg")
    for again in (tmp_path / "linked" / "7_left.jpeg", tmp_path / "hard" / "7_left.jpeg", tmp_path / "linked"):
        table = collect_inputs([photos / "7_left.jpeg", photos / "7_right.jpeg", again])
        assert sorted(table["image_id"]) == ["7_left", "7_right"], again
        assert set(table["patient_id"]) == {"7"} and (table["identity_note"] == "").all()
        assert str(photos / "7_left.jpeg") in set(table["path"])  # under its first spelling
    # A true copy (its own file), or a link under another name (which may claim another eye): kept, noted.
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "7_left.jpeg").write_bytes((photos / "7_left.jpeg").read_bytes())
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "8_left.jpeg").symlink_to(photos / "7_left.jpeg")
    for again, kind in ((tmp_path / "copy" / "7_left.jpeg", "same photo under two patients"),
                        (tmp_path / "other" / "8_left.jpeg", "contradictory patient")):  # the link's name against the photo's
        table = collect_inputs([photos / "7_left.jpeg", again])
        assert len(table) == 2 and table["identity_note"].str.contains(kind).all(), again
@pytest.mark.parametrize(("labels_name", "header", "named"), [
    ("labels.csv", "image,level,level", r"column 'level' appears twice; keep one"),
    ("labels.csv", "image,image,level", r"column 'image' appears twice; keep one"),
    ("labels.csv", "image,level,level ", r"column 'level' appears twice \(as 'level' and 'level '\); keep one"),
    ("trainLabels.csv", "image,level,level ", r"column 'level' appears twice \(as 'level' and 'level '\); keep one"),
    # Probe 30 F3: another case was read as another column, one of the two dropped unsaid.
    ("labels.csv", "image,level,Level", r"column 'level' appears twice \(as 'level' and 'Level'\); keep one"),
    ("labels.csv", "image,Level,level", r"column 'Level' appears twice \(as 'Level' and 'level'\); keep one"),
    ("trainLabels.csv", "image,level,LEVEL", r"column 'level' appears twice \(as 'level' and 'LEVEL'\); keep one"),
])
def test_a_label_column_named_twice_is_refused_by_name(tmp_path, labels_name, header, named):
    """Probe 29 Z3, Z7: the csv format took the first of two 'level' columns and dropped the
    other unsaid; 'level' and 'level ' (equal once stripped) ended in a traceback."""
    from drgrader.data.manifest import read_dataset

    root = label_set(tmp_path, labels_name, f"{header}\n10_left,0,4\n10_right,1,1\n", ["10_left.jpeg", "10_right.jpeg"])
    with pytest.raises(DataError, match=rf"^{labels_name}: {named}$"):
        read_dataset(root)


@pytest.mark.parametrize(("labels_name", "header", "named"), [
    ("labels.csv", "image,level,grade", "'grade' looks like a grade column but is not the one read ('level'); "
                                        "remove it, or point data.columns.grade at it"),
    ("labels.csv", "image,level,level_corrected", "'level_corrected' looks like a grade column but is not the one read"),
    ("labels.csv", "image,DR grade,level", "'DR grade' looks like a grade column but is not the one read ('level')"),
    ("labels.csv", "image,diagnosis,level", "'diagnosis' looks like a grade column"),
    ("trainLabels.csv", "image,level,Grade", "'Grade' looks like a grade column but is not the one read ('level'); "
                                             "keep one (the kaggle format reads 'level')"),
    # Probe 32 B1: a word holding 'date' (upDATEd, valiDATEd, consoliDATEd) or 'grader' hid them.
    ("trainLabels.csv", "image,level,level_updated", "'level_updated' looks like a grade column"),
    ("trainLabels.csv", "image,level,LevelValidated", "'LevelValidated' looks like a grade column"),
    ("labels.csv", "image,level,consolidated_grade", "'consolidated_grade' looks like a grade column"),
    ("labels.csv", "image,level,level_grader2", "'level_grader2' looks like a grade column"),
    ("labels.csv", "image,level,icdr_stage", "'icdr_stage' looks like a grade column"),
    ("labels.csv", "image,label,level", "'label' looks like a grade column"),
    ("labels.csv", "image,level,DR", "'DR' looks like a grade column"),
    ("labels.csv", "image,level,icdr", "'icdr' looks like a grade column"),
    ("labels.csv", "image,level,consensus", "'consensus' looks like a grade column"),
    ("labels.csv", "image,level,rdr", "'rdr' looks like a grade column"),
    # Probe 33 AV2: the ML and screening-programme names of a grade column.
    ("labels.csv", "image,level,target", "'target' looks like a grade column"),
    ("labels.csv", "image,level,ground_truth", "'ground_truth' looks like a grade column"),
    ("labels.csv", "image,level,ETDRS", "'ETDRS' looks like a grade column"),
    ("labels.csv", "image,level,R", "'R' looks like a grade column"),
    ("labels.csv", "image,level,y", "'y' looks like a grade column"),
])
def test_a_second_grade_column_under_another_name_is_refused_by_name(tmp_path, labels_name, header, named):
    """Probe 31 S2: ``level`` was read and ``grade`` (``level_corrected``, ``DR grade``) beside it
    dropped unsaid, though rows disagreed."""
    from drgrader.data.manifest import read_dataset

    root = label_set(tmp_path, labels_name, f"{header}\n10_left,0,4\n10_right,1,1\n", ["10_left.jpeg", "10_right.jpeg"])
    with pytest.raises(DataError, match=rf"^{labels_name}: column {re.escape(named)}"):
        read_dataset(root)


def test_a_second_grading_under_any_name_is_refused_by_its_values(tmp_path):
    """Probe 33 AV2: a second grade column under a name no list holds (`reference`, `score`) was
    dropped unsaid; a column of grades agreeing with the one read on most rows is a second grading.
    A visit or camera number (agreeing by chance) and a 0/1 flag are kept."""
    from drgrader.data.manifest import read_dataset

    names = [f"{p}_{e}" for p in (10, 11, 12, 13) for e in ("left", "right")]
    level = [0, 1, 2, 3, 4, 0, 1, 2]
    second = [0, 1, 2, 3, 3, 0, 1, 2]  # one correction
    visit = [1, 2, 3, 1, 2, 3, 1, 2]
    rows = "".join(f"{n},{a},{b},{c},{k % 2}\n" for n, a, b, c, k in zip(names, level, second, visit, range(8)))
    root = label_set(tmp_path / "a", "labels.csv", "image,level,reference,visit,flag\n" + rows, [f"{n}.jpeg" for n in names])
    with pytest.raises(DataError, match=r"^labels.csv: column 'reference' holds grades 0-4 that differ from the ones read "
                                        r"\('level'\) on 1 row\(s\); remove it, or point data.columns.grade at it$"):
        read_dataset(root)
    (root / "labels.csv").write_text("image,level,visit,flag\n" + "".join(
        f"{n},{a},{c},{k % 2}\n" for n, a, c, k in zip(names, level, visit, range(8))))
    assert len(read_dataset(root)) == 8


@pytest.mark.parametrize(("labels_name", "mark"), [("trainLabels.csv", "gradable"), ("labels.csv", "gradable"),
                                                 ("trainLabels.csv", "usable"), ("trainLabels.csv", "image_ok"),  # probe 36 BZ2
                                                 ("labels.csv", "include"), ("labels.csv", "in_study"),  # probe 42 CF4
                                                 ("labels.csv", "drop"), ("labels.csv", "QA"), ("labels.csv", "Bildqualitaet")])
def test_a_gradability_column_beside_the_grade_is_warned_of_in_every_format(tmp_path, caplog, labels_name, mark):
    """Probe 35 BY9: a `gradable` column (0: the graders found the photo ungradable) beside `level`
    was dropped without a word in the kaggle format: the ungradable photos counted with their grade."""
    from drgrader.data.manifest import read_dataset

    root = label_set(tmp_path, labels_name, f"image,level,{mark},notes\n10_left,0,1,x\n10_right,3,0,\n",
                     ["10_left.jpeg", "10_right.jpeg"])
    with caplog.at_level(logging.INFO, logger="drgrader"):
        assert len(read_dataset(root)) == 2
    said = [r.getMessage() for r in caplog.records]
    assert f"{labels_name}: column(s) not read: {mark}, notes (a label file gives each photo's grade, patient and eye)" in said
    assert (f"{labels_name}: column {mark!r} looks like a gradability mark or a row selection, which this format does "
            "not read: every photo counts with its grade; remove the rows of the photos to leave out") in said


def test_a_maculopathy_column_not_read_is_warned_of(tmp_path, caplog):
    """Probe 44 CH8: Rahim's `maculopathy` was INFO only; an eye referred for maculopathy alone counts as not referable."""
    from drgrader.data.manifest import read_dataset

    root = label_set(tmp_path, "labels.csv", "image,level,maculopathy\n10_left,1,1\n10_right,0,0\n", ["10_left.jpeg", "10_right.jpeg"])
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        read_dataset(root, "csv")
    assert ("labels.csv: column 'maculopathy' (maculopathy, DME) is not read: referable DR here is grade 2 or worse only"
            in caplog.text)


@pytest.mark.parametrize(("column", "cells"), [("cohort", ("development", "validation")), ("role", ("held_out", "train")),  # CH2
                                               ("Cohort", ("Derivation", "Validation")), ("dataset", ("Training set", "Test set")),  # CI2
                                               ("Sample", ("hold-out", "development")), ("Kohorte", ("Validierung", "Training")),  # CJ3
                                               ("Ensemble", ("test", "apprentissage")), ("Gruppe", ("Testdaten", "Trainingsdaten")),  # CK7
                                               ("split", ("train", "test")), ("Usage", ("Public", "Private")),
                                               ("is_test", ("0", "1")), ("fold", ("1", "2")), ("subset", ("dev", "holdout"))])
def test_a_split_column_beside_the_grade_is_warned_of(tmp_path, caplog, column, cells):
    """Probe 43 CG3: the data set's own split was named as not read (INFO), and train drew its own:
    the user's test rows were trained on."""
    from drgrader.data.manifest import read_dataset

    root = label_set(tmp_path, "labels.csv", f"image,level,{column}\n10_left,0,{cells[0]}\n10_right,3,{cells[1]}\n",
                     ["10_left.jpeg", "10_right.jpeg"])
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        assert len(read_dataset(root, "csv")) == 2
    assert (f"labels.csv: column {column!r} looks like the data set's own split, which is not read: train and cv draw "
            "their own by patient, so its test rows may be trained on") in caplog.text


@pytest.mark.parametrize("fmt", ["aptos", "messidor2"])
def test_a_gradability_column_is_warned_of_in_the_published_formats_too(tmp_path, caplog, fmt):
    """Probe 36 BZ9: a `gradable` column (a re-upload's name for Messidor-2's adjudicated_gradable)
    in the messidor2 or aptos format was dropped without a word: its ungradable photos graded."""
    from drgrader.data.manifest import read_dataset

    folder, labels = ("train_images", "train.csv") if fmt == "aptos" else ("IMAGES", "messidor_data.csv")
    (tmp_path / folder).mkdir()
    for name in ("a", "b"):
        cv2.imwrite(str(tmp_path / folder / f"{name}.png"), np.full((8, 8, 3), 60, np.uint8))
    (tmp_path / labels).write_text("id_code,diagnosis,gradable\na.png,0,1\nb.png,3,0\n")
    with caplog.at_level(logging.INFO, logger="drgrader"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # messidor2 without its exam pairs: each photo its own patient
        assert len(read_dataset(tmp_path, fmt)) == 2
    assert (f"{labels}: column 'gradable' looks like a gradability mark or a row selection, which this format does "
            "not read: every photo counts with its grade; remove the rows of the photos to leave out") in caplog.text


def test_an_adjudication_column_filled_only_where_the_graders_disagreed_is_refused(tmp_path):
    """Probe 35 BY1: `adjudicated`, empty on most rows and differing from `level` wherever filled (the
    adjudicator's grade where two graders disagreed), passed the values rule, which wants agreement."""
    from drgrader.data.manifest import read_dataset

    names = [f"{p}_{e}" for p in range(10, 20) for e in ("left", "right")]
    level = [k % 5 for k in range(20)]
    adjudicated = [str((g + 1) % 5) if k % 4 == 0 else "" for k, g in enumerate(level)]
    rows = "".join(f"{n},{a},{b}\n" for n, a, b in zip(names, level, adjudicated))
    root = label_set(tmp_path, "trainLabels.csv", "image,level,adjudicated\n" + rows, [f"{n}.jpeg" for n in names])
    with pytest.raises(DataError, match=r"column 'adjudicated' holds grades 0-4 that differ from the ones read "
                                        r"\('level'\) on 5 row\(s\)"):
        read_dataset(root)
    # Probe 36 BZ1: the commonest adjudication settles the referral line only: grades 1 and 2, nothing else.
    referral = ["" if k % 4 else ("1" if g >= 2 else "2") for k, g in enumerate(level)]
    (root / "trainLabels.csv").write_text("image,level,adjudicated\n" + "".join(
        f"{n},{a},{b}\n" for n, a, b in zip(names, level, referral)))
    with pytest.raises(DataError, match=r"column 'adjudicated' holds grades 0-4 that differ from the ones read"):
        read_dataset(root)
    flag = ["" if k % 4 else str(k % 8 // 4) for k in range(20)]  # a sparse 0/1 flag is no grading
    (root / "trainLabels.csv").write_text("image,level,dme\n" + "".join(f"{n},{a},{b}\n" for n, a, b in zip(names, level, flag)))
    assert len(read_dataset(root)) == 20


@pytest.mark.parametrize("kind", ["an ungradable mark", "many ungradable marks", "words", "formal words", "digit and label",
                                  "label and digit", "words and digit"])
def test_a_second_grading_with_an_ungradable_mark_or_in_words_is_refused_by_its_values(tmp_path, kind):
    """Probe 34 BX4 / AX9: one cell 'U' (an adjudicator's ungradable) side-stepped the values rule;
    a second grading in words ('Moderate NPDR') was only named as not read."""
    from drgrader.data.manifest import read_dataset

    names = [f"{p}_{e}" for p in range(10, 20) for e in ("left", "right")]
    level = [k % 5 for k in range(20)]
    words = {"words": ["No DR", "Mild NPDR", "Moderate NPDR", "Severe NPDR", "PDR"],
             "formal words": ["No apparent retinopathy", "Mild non-proliferative DR", "Moderate non-proliferative DR",
                              "Severe non-proliferative DR", "Proliferative DR"],  # probe 35 AY14
             "digit and label": ["0 - No DR", "1 - Mild", "2 - Moderate", "3 - Severe", "4 - Proliferative DR"],
             "label and digit": [f"Grade {g}" for g in range(5)],  # probe 36 AZ6
             "words and digit": ["None (0)", "Mild (1)", "Moderate (2)", "Severe (3)", "Proliferative (4)"]}.get(kind)
    second = [words[g] if words else str(g) for g in level]
    second[3] = words[4] if words else "4"  # one correction
    if kind == "an ungradable mark":
        second[7] = "U"
    if kind == "many ungradable marks":  # probe 35 BY1: over a tenth of the cells
        second[5] = second[9] = second[15] = "U"
    rows = "".join(f"{n},{a},{b}\n" for n, a, b in zip(names, level, second))
    root = label_set(tmp_path, "labels.csv", "image,level,adjudicated\n" + rows, [f"{n}.jpeg" for n in names])
    with pytest.raises(DataError, match=r"^labels.csv: column 'adjudicated' holds grades 0-4 that differ from the ones read "
                                        r"\('level'\) on 1 row\(s\)"):
        read_dataset(root)


@pytest.mark.parametrize("name", ["grader_2", "final", "second_reader", "ophthalmologist", "retina_specialist",
                                  "G2", "R2", "MD", "nurse"])  # the last four: probe 39 CC5
def test_a_full_grading_named_so_is_refused_however_much_it_differs(tmp_path, name):
    # Probe 37 CA13: grader_2 differing from level on 48 of 80 rows passed at INFO: a full column had
    # to agree on most rows (else a visit or camera number), whatever its name said.
    from drgrader.data.manifest import read_dataset

    names = [f"{p}_{e}" for p in range(10, 20) for e in ("left", "right")]
    level = [k % 5 for k in range(20)]
    other = [(g + 2) % 5 if k % 5 < 3 else g for k, g in enumerate(level)]
    rows = "".join(f"{n},{a},{b}\n" for n, a, b in zip(names, level, other))
    root = label_set(tmp_path, "labels.csv", f"image,level,{name}\n" + rows, [f"{n}.jpeg" for n in names])
    with pytest.raises(DataError, match=f"column '{name}' holds grades 0-4 that differ from the ones read \\('level'\\) on 12 row"):
        read_dataset(root)
    (root / "labels.csv").write_text("image,level,visit\n" + rows)  # another name: a visit number, kept
    assert len(read_dataset(root)) == 20


@pytest.mark.parametrize("other", ["grader", "maculopathy", "Risk of macular edema", "adjudicated_dme", "image_quality_grade",
                                   "grade_date", "gradedAt date", "adjudicated_gradable", "candidate"])
def test_a_column_beside_the_grade_that_is_not_a_dr_grade_is_kept(tmp_path, other):
    from drgrader.data.manifest import read_dataset

    root = label_set(tmp_path, "labels.csv", f"image,level,{other}\n10_left,0,4\n10_right,1,1\n", ["10_left.jpeg", "10_right.jpeg"])
    assert len(read_dataset(root)) == 2


@pytest.mark.parametrize(("fmt", "option", "value"), [
    ("kaggle", "labels", "corrected.csv"),
    ("kaggle", "columns", {"grade": "severity"}),
    ("auto", "images", "train"),
    ("auto", "columns", {"patient": "pid"}),
])
def test_label_file_options_a_published_format_does_not_read_are_refused(tmp_path, fmt, option, value):
    """Probe 29 Z2: data.labels (a corrected label file), data.images and data.columns were
    ignored without a word under the kaggle format: the old trainLabels.csv was read."""
    from drgrader.config import DataConfig
    from drgrader.data.manifest import read_manifest

    root = label_set(tmp_path, "trainLabels.csv", "image,level\n10_left,0\n10_right,1\n", ["10_left.jpeg", "10_right.jpeg"])
    (root / "corrected.csv").write_text("image,level\n10_left,4\n10_right,4\n")
    shown = f"{option}.{next(iter(value))}={next(iter(value.values()))}" if isinstance(value, dict) else f"{option}={value}"
    with pytest.raises(DataError, match=rf"^data\.{shown} is not read by the kaggle format .*use data\.format=csv"):
        read_manifest(DataConfig.model_validate({"root": root, "format": fmt, option: value}))
    corrected = read_manifest(DataConfig(root=root, format="csv", labels="corrected.csv", images="images"))
    assert list(corrected.table["grade"]) == [4, 4]


@pytest.mark.parametrize(("folder", "grade"), [("3.0", 3), ("02", None), ("-0", None), ("+3", None), ("3.5 severe", None)])
def test_a_grade_folder_s_name_is_read_by_the_label_grades_rule(tmp_path, folder, grade):
    """Probe 29: grade folder '02' was refused but '-0', '+3' and '3.0' were left out as 'not in a
    grade folder': two rules for one spelling problem. Now one: a label grade's."""
    from drgrader.config import DataConfig
    from drgrader.data.manifest import read_manifest

    root = label_set(tmp_path, "notes.txt", "", ["0/10_left.jpeg", f"{folder}/10_right.jpeg"], image_dir="")
    if grade is None:
        with pytest.raises(DataError, match=rf"folder name {re.escape(repr(folder))} is not a grade in 0..4 \(grade '.*' is not one of 0, 1, 2, 3, 4\)$"):
            read_manifest(DataConfig(root=root))
    else:
        table = read_manifest(DataConfig(root=root)).table.set_index("image_id")
        assert dict(table["grade"]) == {"10_left": 0, "10_right": grade}


def test_a_second_label_file_beside_the_one_read_is_named(tmp_path):
    """Probe 29 Z8: labels.csv (other grades) beside trainLabels.csv was left out without a word."""
    from drgrader.config import DataConfig
    from drgrader.data.manifest import read_manifest

    root = label_set(tmp_path, "trainLabels.csv", "image,level\n10_left,0\n10_right,1\n", ["10_left.jpeg", "10_right.jpeg"])
    (root / "labels.csv").write_text("image,level\n10_left,4\n10_right,4\n")
    (root / "sampleSubmission.csv").write_text("image,level\n")  # not a label file: not named
    with pytest.warns(UserWarning, match=r"holds trainLabels.csv and labels.csv: read trainLabels.csv \(kaggle\); "
                                         r"labels.csv is not read \(data.format=csv and data.labels=labels.csv read it instead\)$"):
        assert list(read_manifest(DataConfig(root=root)).table["grade"]) == [0, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # naming the file to read says which one is meant: no warning
        assert list(read_manifest(DataConfig(root=root, labels="labels.csv")).table["grade"]) == [4, 4]



@pytest.mark.parametrize(("other", "header"), [("grades.csv", "image,Grade"), ("labels/trainLabels.csv", "image,Grade"),
                                               ("corrected/severity.csv", "image,Grade"),
                                               ("corrected_labels.csv", "image,label"),  # probe 32 B20
                                               ("v2.csv", "image,level_updated"),
                                               ("Labels.CSV", "image,Grade"), ("grades.tsv", "image\tGrade")])  # probe 53 CQ1
def test_a_label_file_under_any_name_beside_the_one_read_is_named(tmp_path, other, header):
    """Probe 30 W7: a second label file was named only when its name held 'label' and it lay in the
    root (grades.csv, labels/trainLabels.csv were left out without a word); Kaggle's template
    sampleSubmission.csv (every level 0) and CSVs without an image and a grade column are not named."""
    from drgrader.config import DataConfig
    from drgrader.data.manifest import read_manifest

    root = label_set(tmp_path, "trainLabels.csv", "image,level\n10_left,0\n10_right,1\n", ["10_left.jpeg", "10_right.jpeg"])
    (root / "sampleSubmission.csv").write_text("image,level\n10_left,0\n10_right,0\n")
    (root / "visits.csv").write_text("patient,date\n10,2015-01-01\n")
    (root / other).parent.mkdir(exist_ok=True)
    sep = "\t" if other.endswith(".tsv") else ","
    (root / other).write_text(f"{header}\n10_left{sep}4\n10_right{sep}4\n")
    with pytest.warns(UserWarning, match=rf"holds trainLabels.csv and {other}: read trainLabels.csv \(kaggle\); "
                                         rf"{other} is not read \(data.format=csv and data.labels={other} read it instead"
                                         rf"{', saved as comma-separated' if sep == chr(9) else ''}\)$"):
        read_manifest(DataConfig(root=root))


def test_a_label_row_naming_another_extension_is_not_matched_to_the_photo(tmp_path):
    """Probe 29: a label row '10_left.png' was matched to 10_left.jpeg without a word (a predict
    list says 'file not found'); the name without extension, or in another case, still finds it."""
    from drgrader.data.manifest import read_dataset

    root = label_set(tmp_path, "labels.csv", "image,level\n10_left.png,3\n10_right,1\n", ["10_left.jpeg", "10_right.jpeg"])
    with pytest.raises(DataError, match=r"^labels.csv row 1 \(image '10_left'\): image file not found: no file '10_left.png' "
                                        r"in .*images \(10_left.jpeg has another extension: name it so if it is that photo\)"):
        read_dataset(root)
    (root / "labels.csv").write_text("image,level\n10_LEFT.JPEG,3\n10_right,1\n")
    assert list(read_dataset(root)["grade"]) == [3, 1]


def test_a_label_file_saved_as_utf16_is_read_as_a_predict_list_is(tmp_path):
    # Before: refused as "not a text CSV file (it contains binary data)", while a UTF-16 predict list was read.
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    for name in ("10_left", "10_right"):
        (root / "images" / f"{name}.jpeg").write_bytes(b"")
    (root / "labels.csv").write_bytes("image,level\n10_left,3\n10_right,1\n".encode("utf-16"))
    table = read_label_csv(root / "labels.csv", root, ["image", "level"])
    assert table["image"].tolist() == ["10_left", "10_right"] and table["level"].tolist() == ["3", "1"]
    (root / "bin.csv").write_bytes(b"image,level\n10_left,3\x00\x01\n")
    with pytest.raises(DataError, match=r"bin.csv is not a text CSV file \(it contains binary data\)"):
        read_label_csv(root / "bin.csv", root, ["image", "level"])
    # Probe 43 CG7: an Excel workbook named as the label file showed its zip header as the columns found.
    (root / "real.xlsx").write_bytes(b"PK\x03\x04junkjunk")
    with pytest.raises(DataError, match=r"real.xlsx is a spreadsheet workbook \(Excel .xlsx or .xls\), not a text CSV file: save it as CSV"):
        read_label_csv(root / "real.xlsx", root, ["image", "level"])



@pytest.mark.parametrize("sep", ["\t", ";"])
def test_a_tab_or_semicolon_separated_label_file_gets_the_predict_list_s_hint(tmp_path, sep):
    """Probe 30 C2: Excel's "Unicode Text" (UTF-16, tab-separated) label file was refused as missing
    its columns, without the 'save it comma-separated' a predict list gets."""
    (tmp_path / "labels.csv").write_bytes(f"image{sep}level\n10_left{sep}3\n".encode("utf-16"))
    with pytest.raises(DataError, match=r"^labels.csv: missing column\(s\) \['image', 'level'\]; .*; its columns look "
                                        r"separated by semicolons or tabs: save it comma-separated$"):
        read_label_csv(tmp_path / "labels.csv", tmp_path, ["image", "level"])


def test_jfif_and_jpe_photos_are_one_patient_however_they_are_listed(tiny_bundle, photos, tmp_path):
    # Probe 30 W5: a .jfif was skipped in a folder, graded as an argument, and a patient of its
    # own (its eye lost) in a list. One list of extensions (outputs.IMAGE_EXTENSIONS) reads it alike.
    (photos / "7_left.jpeg").rename(photos / "7_left.jfif")
    (photos / "7_right.jpeg").rename(photos / "7_right.jpe")
    listing = tmp_path / "list.csv"
    listing.write_text(f"image\n{photos / '7_left.jfif'}\n{photos / '7_right.jpe'}\n")
    by_input = {}
    for name, given in (("folder", [photos]), ("arguments", sorted(photos.iterdir())), ("list", [listing])):
        out = tmp_path / f"by_{name}.csv"
        assert main(["predict", str(tiny_bundle), *map(str, given), "--out", str(out)]) == 0
        table = pd.read_csv(out, dtype=str).sort_values("eye")
        by_input[name] = table[["patient_id", "eye"]].values.tolist()
        assert pd.read_csv(tmp_path / f"by_{name}_patients.csv", dtype=str)["patient_id"].tolist() == ["7"]
    assert by_input["folder"] == by_input["arguments"] == by_input["list"] == [["7", "left"], ["7", "right"]]


def test_a_folder_in_a_list_or_an_archive_given_is_refused_not_a_patient_to_photograph_again(tiny_bundle, photos, tmp_path,
                                                                                           capsys):
    """Probe 31 W5: a folder named in a list, or a .zip given, was graded as an unreadable photo:
    exit 0, the patient 'ungradable ... photograph again'. An unreadable photo stays a row."""
    import zipfile

    listing = tmp_path / "list.csv"
    listing.write_text(f"image,patient_id,eye\n{photos},P1,left\n")
    with pytest.raises(DataError, match=rf"^{listing} row 1 \(image '{photos}'\): a folder, not a photo: give the folder "
                                        "as an argument, or list its photos$"):
        collect_inputs([listing])
    archive = tmp_path / "ph.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(next(photos.iterdir()), "7_left.jpeg")
    with pytest.raises(DataError, match=rf"^{archive}: not a photo \(a ZIP archive\): unpack it first$"):
        collect_inputs([archive])
    (tmp_path / "notes.txt").write_text("seen 2024\n")
    with pytest.raises(DataError, match=r"notes.txt: not a photo \(a .txt file\): give photos \(.jpeg"):
        collect_inputs([tmp_path / "notes.txt"])
    assert main(["predict", str(tiny_bundle), str(archive), "--out", str(tmp_path / "o.csv")]) == 2  # before: 0
    assert "ph.zip: not a photo (a ZIP archive): unpack it first" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()
    # Probe 32 A3: listed in a CSV, the same archive (or a text file) was a photo to take again.
    listing.write_text("image,patient_id,eye\nph.zip,P1,right\nnotes.txt,P1,left\n")
    with pytest.raises(DataError, match=rf"^{listing} row 1 \(image 'ph.zip'\): not a photo \(a ZIP archive\): unpack it first$"):
        collect_inputs([listing])
    damaged = tmp_path / "10_left.jpeg"
    damaged.write_bytes(archive.read_bytes())  # named like a photo: a row saying why, as before
    assert collect_inputs([damaged])["path"].tolist() == [str(damaged)]


def test_a_label_file_with_two_sites_under_one_patient_id_is_refused(tmp_path):
    # Probe 40 BD6: a csv data set's site column was named as not read, the two people's eyes paired in the figures.
    from drgrader.data.manifest import read_dataset

    root = label_set(tmp_path, "labels.csv", "image,level,patient_id,eye,site\nIMG1.jpeg,0,1001,left,A\n"
                     "IMG2.jpeg,2,1001,right,B\nIMG3.jpeg,1,1002,left,A\nIMG4.jpeg,0,1002,right,A\n",
                     ["IMG1.jpeg", "IMG2.jpeg", "IMG3.jpeg", "IMG4.jpeg"])
    with pytest.raises(DataError, match="labels.csv: patient '1001' has rows of two sites in 'site' \\('A' and 'B'\\)"):
        read_dataset(root, "csv")
    (root / "labels.csv").write_text((root / "labels.csv").read_text().replace("right,B", "right,A"))
    assert len(read_dataset(root, "csv")) == 4

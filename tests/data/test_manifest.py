"""Manifest readers: each public layout built in tmp_path with tiny real images."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from drgrader.config import DataConfig
from drgrader.data.manifest import DataError, detect_format, read_dataset, read_manifest

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
_seed = itertools.count()


def write_image(path: Path) -> Path:
    """An 8x8 noise image; every call gives different bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(next(_seed)).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), pixels)
    return path


def write_text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


# ------------------------------------------------------------------ fixture trees
def make_kaggle(root: Path, image_dir: str = "images", labels: str | None = None) -> Path:
    grades = {"10_left": 0, "10_right": 1, "13_left": 2, "13_right": 2, "7_left": 4, "7_right": 3}
    for name in grades:
        write_image(root / image_dir / f"{name}.jpeg")
    text = labels or "image,level\n" + "".join(f"{k},{v}\n" for k, v in grades.items())
    write_text(root / "trainLabels.csv", text)
    return root


def make_aptos(root: Path) -> Path:
    for name in ("000c1434d8d7", "001639a390f0", "0024cdab0c1e"):
        write_image(root / "train_images" / f"{name}.png")
    write_text(root / "train.csv", "id_code,diagnosis\n000c1434d8d7,2\n001639a390f0,4\n0024cdab0c1e,1\n")
    return root


def make_idrid(root: Path) -> Path:
    base = root / "B. Disease Grading"
    header = "Image name,Retinopathy grade,Risk of macular edema ,,,\n"  # as published: padded
    write_text(base / "2. Groundtruths" / "a. IDRiD_Disease Grading_Training Labels.csv",
               header + "IDRiD_001,3,2,,,\nIDRiD_002,0,0,,,\n,,,,,\n")
    write_text(base / "2. Groundtruths" / "b. IDRiD_Disease Grading_Testing Labels.csv",
               header + "IDRiD_001,4,1,,,\n")
    for name in ("IDRiD_001", "IDRiD_002"):
        write_image(base / "1. Original Images" / "a. Training Set" / f"{name}.jpg")
    write_image(base / "1. Original Images" / "b. Testing Set" / "IDRiD_001.jpg")
    return root


def make_messidor2(root: Path, pairs: bool = True) -> Path:
    write_text(root / "messidor_data.csv",
               "image_id,adjudicated_dr_grade,adjudicated_dme,adjudicated_gradable\n"
               "20051020_43808_0100_PP.png,0,0,1\n20051020_43832_0100_PP.png,1,0,1\n"
               "IM000001.jpg,3,1,1\nIM000002.jpg,,,0\n")
    write_image(root / "IMAGES" / "20051020_43808_0100_PP.png")
    write_image(root / "IMAGES" / "20051020_43832_0100_PP.png")
    write_image(root / "IMAGES" / "IM000001.JPG")  # the CSV says .jpg: case differs, as in the release
    write_image(root / "IMAGES" / "IM000002.JPG")
    if pairs:
        write_text(root / "messidor-2.csv", "left;right\n20051020_43808_0100_PP.png;20051020_43832_0100_PP.png\n"
                                            "IM000001.JPG;IM000002.JPG\n")
    return root


def make_deepdrid(root: Path) -> Path:
    base = root / "regular_fundus_images"
    header = ("patient_id,image_id,image_path,Overall quality,left_eye_DR_Level,right_eye_DR_Level,"
              "patient_DR_Level,Clarity,Field definition,Artifact\n")
    train = (header + "1,1_l1,\\regular-fundus-training\\1\\1_l1.jpg,0,2,,3,8,8,4\n"
             "1,1_r1,\\regular-fundus-training\\1\\1_r1.jpg,0,,3,3,8,8,4\n"
             # as in the release: a right-eye image whose grade sits in the left column
             "56,56_r3,\\regular-fundus-training\\56\\56_r3.jpg,0,1,,1,10,8,1\n")
    write_text(base / "regular-fundus-training" / "regular-fundus-training.csv", train)
    for pid, iid in [(1, "1_l1"), (1, "1_r1"), (56, "56_r3")]:
        write_image(base / "regular-fundus-training" / "Images" / str(pid) / f"{iid}.jpg")
    val = header + "300,300_l1,\\regular-fundus-validation\\300\\300_l1.jpg,1,0,,0,10,10,0\n"
    write_text(base / "regular-fundus-validation" / "regular-fundus-validation.csv", val)
    write_image(base / "regular-fundus-validation" / "Images" / "300" / "300_l1.jpg")
    return root


def make_ddr(root: Path) -> Path:
    base = root / "DDR-dataset" / "DR_grading"
    parts = {"train": [("007-0004-000.jpg", 0), ("007-0005-000.jpg", 5)],
             "valid": [("007-0100-000.jpg", 2)], "test": [("20170413102628830.jpg", 4)]}
    for part, items in parts.items():
        write_text(base / f"{part}.txt", "".join(f"{n} {g}\n" for n, g in items))
        for name, _ in items:
            write_image(base / part / name)
    return root


def make_csv(root: Path) -> Path:
    write_text(root / "labels.csv", "image,level,patient_id,eye\nPatient002_L.jpg,0,P002,left\n"
                                    "Patient002_R.jpg,2,P002,R\nPatient003_L,1,P003,OS\n")
    for name in ("Patient002_L", "Patient002_R", "Patient003_L"):
        write_image(root / "images" / f"{name}.jpg")
    return root


def make_folders(root: Path) -> Path:
    write_image(root / "0" / "a.jpg")
    write_image(root / "0" / "b.png")
    write_image(root / "3" / "c.tif")
    write_image(root / "unsorted.jpg")
    return root


BUILDERS = {"kaggle": make_kaggle, "aptos": make_aptos, "idrid": make_idrid,
            "messidor2": make_messidor2, "deepdrid": make_deepdrid, "ddr": make_ddr,
            "csv": make_csv, "folders": make_folders}


# -------------------------------------------------------------------- formats
@pytest.mark.parametrize("image_dir", ["images", "train"])
def test_kaggle_reads_patients_eyes_and_absolute_paths(tmp_path, image_dir):
    root = make_kaggle(tmp_path, image_dir)
    write_image(root / image_dir / "99_left.jpeg")  # on disk, not in the labels
    found = read_manifest(DataConfig(root=root, format="kaggle"))
    df = found.table
    assert list(df.columns) == ["image_id", "path", "grade", "patient_id", "eye", "source"]
    assert df["image_id"].tolist() == sorted(df["image_id"])
    row = df.set_index("image_id").loc["13_right"]
    assert (row["grade"], row["patient_id"], row["eye"], row["source"]) == (2, "13", "right", "kaggle")
    assert Path(row["path"]).is_absolute() and Path(row["path"]).name == "13_right.jpeg"
    assert df["grade"].dtype == np.int64
    assert df.groupby("patient_id")["eye"].apply(sorted).tolist() == [["left", "right"]] * 3
    assert found.skipped.as_dict() == {"missing_image": 0, "unlabelled_files": 1, "ungradable": 0}


def test_aptos_each_image_is_its_own_patient(tmp_path):
    with pytest.warns(UserWarning, match="APTOS .* publishes no patient ids: each of the 3 photos is a patient of its own"):
        df = read_dataset(make_aptos(tmp_path))  # said, as the csv format says it (probe 44 CH10)
    assert df["grade"].tolist() == [2, 4, 1]
    assert (df["patient_id"] == df["image_id"]).all()
    assert (df["eye"] == "").all() and "split" not in df.columns


def test_idrid_keeps_the_official_split_and_separates_colliding_names(tmp_path):
    df = read_dataset(make_idrid(tmp_path))
    assert df[["image_id", "grade", "split"]].values.tolist() == [
        ["test_IDRiD_001", 4, "test"], ["train_IDRiD_001", 3, "train"], ["train_IDRiD_002", 0, "train"]]
    paths = df.set_index("image_id")["path"]
    assert "b. Testing Set" in paths["test_IDRiD_001"] and "a. Training Set" in paths["train_IDRiD_001"]


def test_messidor2_pairs_eyes_and_drops_ungradable(tmp_path):
    found = read_manifest(DataConfig(root=make_messidor2(tmp_path)))
    df = found.table
    assert df["image_id"].tolist() == ["20051020_43808_0100_PP", "20051020_43832_0100_PP", "IM000001"]
    assert df["patient_id"].tolist() == ["20051020_43808_0100_PP", "20051020_43808_0100_PP", "IM000001"]
    assert df["eye"].tolist() == ["left", "right", "left"]
    assert df.set_index("image_id").loc["IM000001", "path"].endswith("IM000001.JPG")
    # the ungradable image has a label row, so it is not "unlabelled"
    assert found.skipped.as_dict() == {"missing_image": 0, "unlabelled_files": 0, "ungradable": 1}


def test_messidor2_without_pair_file_warns_and_uses_image_as_patient(tmp_path):
    with pytest.warns(UserWarning, match="own patient"):
        df = read_dataset(make_messidor2(tmp_path, pairs=False))
    assert (df["patient_id"] == df["image_id"]).all()


def test_deepdrid_takes_the_grade_of_the_image_eye(tmp_path, caplog):
    with pytest.warns(UserWarning, match=r"DeepDRiD: 1 row\(s\) carry their grade only in the other eye's column \(e.g. "
                                         r"'56_r3' \(in the left eye's column\)\)") as said:  # probe 42 CF8
        df = read_dataset(make_deepdrid(tmp_path)).set_index("image_id")
    assert not any("patient_DR_Level" in str(w.message) for w in said)  # patients 1, 56, 300 agree with their photos
    # Probe 36 BZ9: its quality column is not read, and said so (every photo counts with its grade).
    assert "column 'Overall quality' looks like a gradability mark or a row selection, which this format does not read" in caplog.text
    assert df.loc["1_l1", ["grade", "eye", "patient_id", "split"]].tolist() == [2, "left", "1", "train"]
    assert df.loc["1_r1", ["grade", "eye"]].tolist() == [3, "right"]
    assert df.loc["56_r3", ["grade", "eye"]].tolist() == [1, "right"]
    assert df.loc["300_l1", "split"] == "val"


def test_deepdrid_patient_level_against_the_photos_grades_is_warned_of(tmp_path):
    """Probe 42 CF8: a re-export whose right-eye row lost its grade took the left eye's 0, though
    patient_DR_Level said 1: read without a word."""
    root = make_deepdrid(tmp_path)
    labels = root / "regular_fundus_images" / "regular-fundus-training" / "regular-fundus-training.csv"
    labels.write_text(labels.read_text() + "17,17_l1,x,0,0,,1,8,8,4\n17,17_r1,x,0,0,,1,8,8,4\n")
    for name in ("17_l1", "17_r1"):
        write_image(labels.parent / "Images" / "17" / f"{name}.jpg")
    with pytest.warns(UserWarning) as said:
        df = read_dataset(root).set_index("image_id")
    messages = [str(w.message) for w in said]
    assert ("DeepDRiD: 1 patient(s) whose patient_DR_Level is not the worst of their photos' grades (e.g. patient '17': "
            "patient_DR_Level 1, worst photo 0): a grade in the wrong column, or one missing? Check them") in messages
    assert any(m.startswith("DeepDRiD: 2 row(s) carry their grade only in the other eye's column") for m in messages)
    assert df.loc["17_r1", "grade"] == 0  # read as it is


def test_ddr_splits_and_excludes_ungradable_grade_5(tmp_path):
    found = read_manifest(DataConfig(root=make_ddr(tmp_path)))
    df = found.table
    assert df[["image_id", "grade", "split"]].values.tolist() == [
        ["007-0004-000", 0, "train"], ["007-0100-000", 2, "val"], ["20170413102628830", 4, "test"]]
    assert found.skipped.as_dict()["ungradable"] == 1


def test_generic_csv_with_configured_columns_and_extensionless_names(tmp_path):
    write_text(tmp_path / "meta" / "grades.csv", "file,dr,person,side\nx1,3,A,left\nx2.png,0,A,right\n")
    write_image(tmp_path / "pics" / "x1.tif")
    write_image(tmp_path / "pics" / "x2.png")
    df = read_dataset(tmp_path, "csv", labels="meta/grades.csv", images="pics",
                      columns={"image": "file", "grade": "dr", "patient": "person", "eye": "side"})
    assert df[["image_id", "grade", "patient_id", "eye"]].values.tolist() == [
        ["x1", 3, "A", "left"], ["x2", 0, "A", "right"]]
    assert df["path"].iloc[0].endswith("x1.tif")


def test_generic_csv_uses_patient_id_and_eye_columns_when_present(tmp_path):
    df = read_dataset(make_csv(tmp_path))
    assert df["source"].unique().tolist() == ["csv"]
    assert df[["patient_id", "eye"]].values.tolist() == [["P002", "left"], ["P002", "right"], ["P003", "left"]]


def test_class_folders(tmp_path):
    found = read_manifest(DataConfig(root=make_folders(tmp_path)))
    df = found.table
    assert df[["image_id", "grade"]].values.tolist() == [["a", 0], ["b", 0], ["c", 3]]
    assert found.skipped.as_dict()["unlabelled_files"] == 1  # unsorted.jpg has no grade folder


def test_class_folder_outside_grades_is_an_error(tmp_path):
    write_image(make_folders(tmp_path) / "5" / "d.jpg")
    with pytest.raises(DataError, match=r"5.*not a grade in 0\.\.4"):
        read_dataset(tmp_path)


@pytest.mark.parametrize("fmt", sorted(BUILDERS))
def test_auto_detects_every_layout(tmp_path, fmt):
    root = BUILDERS[fmt](tmp_path)
    assert detect_format(root) == fmt
    assert read_manifest(DataConfig(root=root)).table.iloc[0]["source"] == fmt


def test_unknown_layout_is_explained(tmp_path):
    write_text(tmp_path / "notes.txt", "nothing here")
    with pytest.raises(DataError, match="cannot tell the data-set format.*trainLabels.csv"):
        read_dataset(tmp_path)


# ----------------------------------------------------------------- bad input
def kaggle_with(tmp_path: Path, level: str) -> Path:
    return make_kaggle(tmp_path, labels=f"image,level\n10_left,0\n10_right,{level}\n13_left,1\n")


@pytest.mark.parametrize("level, problem", [
    ("5", "grade '5' is not one of 0, 1, 2, 3, 4"),
    ("-1", "grade '-1' is not one of 0, 1, 2, 3, 4"),
    ("", "grade is empty"),
    ("abc", "grade 'abc' is not one of 0, 1, 2, 3, 4"),
    ("2.5", "grade '2.5' is not one of 0, 1, 2, 3, 4"),
])
def test_bad_grades_name_file_row_and_image(tmp_path, level, problem):
    with pytest.raises(DataError) as err:
        read_dataset(kaggle_with(tmp_path, level))
    assert str(err.value) == f"trainLabels.csv row 2 (image '10_right'): {problem}"


def test_grade_written_as_float_is_accepted(tmp_path):
    df = read_dataset(kaggle_with(tmp_path, "2.0"))
    assert df.set_index("image_id").loc["10_right", "grade"] == 2


def test_missing_image_names_the_row(tmp_path):
    root = make_kaggle(tmp_path)
    (root / "images" / "13_left.jpeg").unlink()
    with pytest.raises(DataError, match=r"trainLabels.csv row 3 \(image '13_left'\): image file not found"):
        read_dataset(root)


def test_skip_missing_counts_the_skipped_rows(tmp_path):
    root = make_kaggle(tmp_path)
    (root / "images" / "13_left.jpeg").unlink()
    (root / "images" / "7_left.jpeg").unlink()
    found = read_manifest(DataConfig(root=root, skip_missing=True))
    df = found.table
    assert len(df) == 4 and "13_left" not in set(df["image_id"])
    assert found.skipped.as_dict()["missing_image"] == 2


def test_duplicate_image_ids_name_both_rows(tmp_path):
    root = make_kaggle(tmp_path, labels="image,level\n10_left,0\n10_right,1\n10_left,0\n")
    with pytest.raises(DataError, match=r"row 3 \(image '10_left'\): image id '10_left' appears twice "
                                        r"\(also trainLabels.csv row 1"):
        read_dataset(root)


def test_missing_columns_name_expected_and_found(tmp_path):
    root = make_kaggle(tmp_path, labels="img,grade\n10_left,0\n")
    with pytest.raises(DataError) as err:
        read_dataset(root)
    assert str(err.value) == ("trainLabels.csv: missing column(s) ['image', 'level']; "
                              "expected ['image', 'level'], found ['img', 'grade']")


def test_empty_data_set_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no usable labelled images"):
        read_dataset(make_kaggle(tmp_path, labels="image,level\n"))


def test_every_image_missing_with_skip_missing_is_still_an_error(tmp_path):
    root = make_aptos(tmp_path)
    for path in (root / "train_images").iterdir():
        path.unlink()
    with pytest.raises(DataError, match="no usable labelled images.*'missing_image': 3"):
        read_dataset(root, skip_missing=True)


def test_latin1_csv_is_read_with_a_warning(tmp_path):
    write_text(tmp_path / "labels.csv", "image,level,patient_id\nx1,1,Bézier\n", encoding="latin-1")
    write_image(tmp_path / "images" / "x1.jpg")
    with pytest.warns(UserWarning, match="not valid UTF-8"):
        df = read_dataset(tmp_path)
    assert df["patient_id"].tolist() == ["Bézier"]


def test_utf8_bom_is_ignored(tmp_path):
    write_text(tmp_path / "labels.csv", "\ufeffimage,level\nx1,1\n")
    write_image(tmp_path / "images" / "x1.jpg")
    assert read_dataset(tmp_path)["grade"].tolist() == [1]


def test_binary_label_file_is_rejected(tmp_path):
    (tmp_path / "labels.csv").write_bytes(b"PK\x03\x04\x00\x00binary")
    with pytest.raises(DataError, match="labels.csv is a spreadsheet workbook"):
        read_dataset(tmp_path, "csv")


def test_unknown_eye_value_names_the_row(tmp_path):
    write_text(tmp_path / "labels.csv", "image,level,eye\nx1,1,left\nx2,0,both\n")
    write_image(tmp_path / "images" / "x1.jpg")
    write_image(tmp_path / "images" / "x2.jpg")
    with pytest.raises(DataError, match=r"labels.csv row 2 \(image 'x2'\): eye 'both'"):
        read_dataset(tmp_path)


def test_bad_grade_in_ddr_text_file_names_the_line(tmp_path):
    root = make_ddr(tmp_path)
    write_text(root / "DDR-dataset" / "DR_grading" / "valid.txt", "007-0100-000.jpg 7\n")
    with pytest.raises(DataError, match=r"DR_grading/valid.txt row 1 \(image '007-0100-000'\): grade '7'"):
        read_dataset(root)


def test_root_must_exist(tmp_path):
    with pytest.raises(DataError, match="data folder not found"):
        read_dataset(tmp_path / "nope")


# ------------------------------------------------------------------- limit
def test_limit_keeps_the_first_patients_sorted_by_id(tmp_path):
    df = read_dataset(make_kaggle(tmp_path), limit=2)
    assert sorted(df["patient_id"].unique()) == ["10", "13"]  # string order: "10" < "13" < "7"
    assert len(df) == 4


def test_limit_applies_per_official_split(tmp_path):
    df = read_dataset(make_idrid(tmp_path), limit=1)
    assert df["image_id"].tolist() == ["test_IDRiD_001", "train_IDRiD_001"]


# --------------------------------------------------------------- real data
@pytest.mark.skipif(not (SHARED / "eyepacs-256").is_dir(), reason="shared EyePACS data absent")
def test_real_eyepacs_256():
    found = read_manifest(DataConfig(root=SHARED / "eyepacs-256"))
    df = found.table
    assert len(df) == 3717 and df["image_id"].is_unique
    assert df["grade"].value_counts().sort_index().tolist() == [2729, 243, 574, 101, 70]
    assert set(df["eye"]) == {"left", "right"}
    assert found.skipped.as_dict() == {"missing_image": 0, "unlabelled_files": 0, "ungradable": 0}
    assert pd.Series(df["path"]).str.endswith(".jpeg").all()


def test_lookalike_patient_ids_are_kept_apart_with_a_warning(tmp_path, caplog):
    # A spreadsheet turns 007 into 7 in some rows: predict notes such ids, and so does the label reader.
    write_text(tmp_path / "labels.csv", "image,level,patient_id\na,0,007\nb,1,7\nc,2,P1\nd,0,p1\n")
    for name in "abcd":
        write_image(tmp_path / "images" / f"{name}.png")
    with caplog.at_level("WARNING", logger="drgrader"):
        df = read_dataset(tmp_path)
    # one console line like every other drgrader warning (before: a raw UserWarning with its source line)
    assert any("patients '007' and '7' differ only in case, spacing, separators, leading zeros, look-alike letters or accents (2 such groups); kept apart as given"
               in r.getMessage() for r in caplog.records)
    assert list(df["patient_id"]) == ["007", "7", "P1", "p1"]


def test_a_linked_image_folder_counts_its_unlabelled_photos_once(tmp_path):
    """Probe 35 BY4: an images/ folder that is a link to a shared store was counted twice in
    'unlabelled files' (walked under the root, and again as a folder outside it)."""
    store = tmp_path / "store"
    store.mkdir()
    for name in ("10_left", "10_right", "11_left", "11_right", "12_left"):
        (store / f"{name}.jpeg").write_bytes(name.encode())
    root = tmp_path / "set"
    root.mkdir()
    (root / "images").symlink_to(store)
    (root / "labels.csv").write_text("image,level\n10_left,2\n10_right,2\n")
    found = read_manifest(DataConfig(root=root, format="csv", labels="labels.csv", images="images"))
    assert len(found.table) == 2 and found.skipped.unlabelled_files == 3


def test_kaggle_layout_with_photos_in_both_train_and_images_is_refused(tmp_path):
    # Probe 36 BZ11: train/ was read and images/'s photos of the same names called "not in trainLabels.csv".
    write_text(tmp_path / "trainLabels.csv", "image,level\n10_left,0\n")
    write_image(tmp_path / "train" / "10_left.jpeg")
    write_image(tmp_path / "images" / "10_left.jpeg")
    with pytest.raises(DataError, match="images/ and train/ hold photos; keep the one trainLabels.csv grades"):
        read_dataset(tmp_path)
    (tmp_path / "train").rename(tmp_path / "Train")  # probe 37 CA1: as copied from Windows or macOS
    with pytest.raises(DataError, match="Train/ and images/ hold photos"):
        read_dataset(tmp_path)
    (tmp_path / "Train").rename(tmp_path / "Training")  # probe 38 CB3
    with pytest.raises(DataError, match="Training/ and images/ hold photos"):
        read_dataset(tmp_path)
    (tmp_path / "Training").rename(tmp_path / "train")
    (tmp_path / "images" / "10_left.jpeg").unlink()  # an empty images/ beside train/: train/ read
    assert read_dataset(tmp_path)["image_id"].tolist() == ["10_left"]


def test_photo_names_in_decomposed_unicode_are_found_by_their_composed_spelling(tmp_path):
    """Probe 47 CK4: a folder copied from a Mac names 'Müller10_left.jpeg' with 'u' + a combining
    mark (NFD); a label file typed in a spreadsheet spells it composed (NFC). Before, the row's
    file was 'not found' while `ls` showed it."""
    import unicodedata
    decomposed = unicodedata.normalize("NFD", "Müller10")
    assert decomposed != "Müller10"
    for eye in ("left", "right"):
        write_image(tmp_path / "images" / f"{decomposed}_{eye}.jpeg")
    (tmp_path / "labels.csv").write_text("image,level\nMüller10_left,1\nMüller10_right,3\n", encoding="utf-8")
    found = read_manifest(DataConfig(root=tmp_path, format="csv", labels="labels.csv", images="images"))
    assert sorted(found.table["grade"]) == [1, 3]
    assert found.skipped.unlabelled_files == 0

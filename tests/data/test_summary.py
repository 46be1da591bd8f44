"""Data summary: counts per grade and split, eyes, sizes, gradability, duplicate files."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from drgrader.data.manifest import read_dataset
from drgrader.data.summary import format_summary, summarize


def make_tree(root: Path) -> pd.DataFrame:
    """Kaggle layout: 3 patients; 2_right is a byte copy of 1_left; 3_left is 16x8."""
    grades = {"1_left": 0, "1_right": 0, "2_left": 2, "2_right": 4, "3_left": 1}
    (root / "images").mkdir(parents=True)
    for i, name in enumerate(grades):
        width = 16 if name == "3_left" else 8
        assert cv2.imwrite(str(root / "images" / f"{name}.png"), np.full((8, width, 3), 40 * i, np.uint8))
    shutil.copyfile(root / "images" / "1_left.png", root / "images" / "2_right.png")
    (root / "trainLabels.csv").write_text("image,level\n" + "".join(f"{k},{v}\n" for k, v in grades.items()))
    return read_dataset(root)


def test_counts_per_grade_split_patient_and_eye(tmp_path):
    manifest = make_tree(tmp_path)
    split = pd.Series(["train", "train", "test", "test", "val"], index=manifest.index)
    s = summarize(manifest, split, check_images=False)
    assert (s["images"], s["patients"]) == (5, 3)
    assert s["grades"] == {0: 2, 1: 1, 2: 1, 3: 0, 4: 1}
    assert s["eyes"] == {"left": 3, "right": 2, "unknown": 0}
    assert s["images_per_patient"] == {1: 1, 2: 2}
    assert list(s["splits"]) == ["train", "val", "test"]
    # manifest rows are sorted: 1_left, 1_right, 2_left, 2_right, 3_left
    assert s["splits"]["test"] == {"images": 2, "patients": 1, "grades": {0: 0, 1: 0, 2: 1, 3: 0, 4: 1}}
    assert "image_sizes" not in s and "duplicates" not in s


def test_image_sizes_and_byte_duplicates(tmp_path):
    manifest = make_tree(tmp_path)
    split = pd.Series(["train", "train", "test", "test", "val"], index=manifest.index)
    s = summarize(manifest, split)
    assert s["image_sizes"]["most_common"] == [{"size": "8x8", "count": 4}, {"size": "16x8", "count": 1}]
    assert (s["image_sizes"]["min"], s["image_sizes"]["max"]) == ("8x8", "16x8")
    assert s["duplicates"]["groups"] == [
        {"image_ids": ["1_left", "2_right"], "grades": [0, 4], "splits": ["train", "test"]}]
    assert (s["duplicates"]["conflicting_grades"], s["duplicates"]["crossing_splits"]) == (1, 1)


def test_unreadable_image_is_listed(tmp_path):
    manifest = make_tree(tmp_path)
    Path(manifest.loc[manifest["image_id"] == "3_left", "path"].iloc[0]).write_bytes(b"not an image")
    assert summarize(manifest)["image_sizes"]["unreadable"] == ["3_left"]


def test_gradability_from_a_quality_table(tmp_path):
    manifest = make_tree(tmp_path)
    quality = pd.DataFrame({"image_id": ["1_left", "1_right", "2_left", "elsewhere"],
                            "gradable": [True, False, False, False],
                            "quality_reason": ["", "too dark", "blurred", "too dark"]})
    q = summarize(manifest, quality=quality, check_images=False)["gradability"]
    assert q == {"assessed": 3, "gradable": 1, "ungradable": 2, "not_assessed": 2,
                 "reasons": {"too dark": 1, "blurred": 1}}


def test_split_column_of_the_manifest_is_used_by_default(tmp_path):
    manifest = make_tree(tmp_path).assign(split=["train", "test", "train", "test", "train"])
    assert summarize(manifest, check_images=False)["splits"]["test"]["images"] == 2


def test_format_summary_is_a_readable_table(tmp_path):
    manifest = make_tree(tmp_path)
    split = pd.Series(["train", "train", "test", "test", "val"], index=manifest.index)
    text = format_summary(summarize(manifest, split))
    assert "| grade | all | train | val | test |" in text
    assert "| 0 none | 2 (40.0%) | 2 (100.0%) | 0 (0.0%) | 0 (0.0%) |" in text
    assert "| patients | 3 | 1 | 1 | 1 |" in text
    assert "- 1_left, 2_right (grades 0, 4; splits train, test)" in text


def test_kaggle_names_give_patients_and_eyes_without_a_patient_column(tmp_path, caplog):
    """Grade folders, and a corrected copy of trainLabels.csv given as data.labels (which makes
    it the csv format): both eyes of patient 10 are one patient, as in the kaggle format, so a
    patient-level split cannot put them on two sides; an info line says so."""
    folders, kaggle = tmp_path / "folders", tmp_path / "kaggle"
    for i, name in enumerate(("0/10_left", "0/10_right", "3/11_left", "0/scan")):
        (folders / name).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(folders / f"{name}.png"), np.full((8, 8, 3), 40 * i, np.uint8))
    shutil.copytree(folders / "0", kaggle / "images")
    (kaggle / "corrected.csv").write_text("image,level\n10_left,0\n10_right,2\nscan,1\n")
    with caplog.at_level(logging.INFO, logger="drgrader"):
        by_folder = read_dataset(folders)
        by_csv = read_dataset(kaggle, labels="corrected.csv")
    s = summarize(by_folder, check_images=False)
    assert (s["patients"], s["eyes"]) == (3, {"left": 2, "right": 1, "unknown": 1})
    assert by_folder.set_index("image_id")["patient_id"].to_dict() == {"10_left": "10", "10_right": "10", "11_left": "11",
                                                                       "scan": "scan"}
    assert by_csv[["patient_id", "eye"]].values.tolist() == [["10", "left"], ["10", "right"], ["scan", ""]]
    assert [r.getMessage() for r in caplog.records] == [
        f"{folders} (grade folders): no patient column, so patient and eye of 3 of 4 images are read from names like "
        "10_left (as the kaggle format reads them); the rest (1) are patients of their own",
        "corrected.csv: no patient column, so patient and eye of 2 of 3 images are read from names like 10_left (as the "
        "kaggle format reads them); the rest (1) are patients of their own"]

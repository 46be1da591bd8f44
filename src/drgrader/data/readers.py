"""One reader per published data-set layout (Kaggle EyePACS, APTOS, IDRiD, Messidor-2, DeepDRiD,
DDR, a generic CSV, grade folders), and the detection of which one a folder holds. Each returns
raw label rows; :mod:`.manifest` validates them all the same way."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path
from typing import Callable

from drgrader.config import DataConfig
from drgrader.data.eyes import patient_id
from drgrader.data.input_columns import label_identity_columns, refuse_identity_columns
from drgrader.data.label_files import (
    DEEPDRID_NAME,
    IMAGE_EXTENSIONS,
    DataError,
    Found,
    ImageFolder,
    LabelRow,
    csv_records,
    eye_of,
    first_dir,
    patient_from_name,
    photo_files,
    read_label_csv,
    require_columns,
    shown_path,
    strip_image_extension,
    two_photos_under_one_name,
    where_in,
)

log = logging.getLogger("drgrader")


def _log_patients_from_names(rows: list[LabelRow], what: str) -> None:
    """Say so when a data set without patient ids got them from Kaggle-style names (``10_left``)."""
    named = sum(row.patient_id != row.image_id for row in rows)
    if named:
        rest = f"; the rest ({len(rows) - named}) are patients of their own" if named < len(rows) else ""
        log.info("%s: no patient column, so patient and eye of %d of %d images are read from names like 10_left "
                 "(as the kaggle format reads them)%s", what, named, len(rows), rest)


def _patient_and_eye(rec: dict[str, str], where: str, image_id: str, patient_col: str | None,
                     eye_col: str | None) -> tuple[str, str]:
    """A row's patient and eye: from its columns, else from a Kaggle-style name (``10_left``)."""
    eye = eye_of(rec[eye_col], where) if eye_col else ""
    if patient_col:
        patient = patient_id(rec[patient_col])
        if not patient:
            what = "empty" if not rec[patient_col] else f"{rec[patient_col]!r}, a placeholder for a missing value"
            raise DataError(f"{where}: patient id (column {patient_col!r}) is {what}")
        return patient, eye
    patient, named_eye = patient_from_name(image_id)
    if eye and named_eye and eye != named_eye:
        raise DataError(f"{where}: eye {eye!r} (column {eye_col!r}) but the name says {named_eye}")
    return patient, eye or named_eye


def _read_kaggle(root: Path, cfg: DataConfig) -> Found:
    """Kaggle EyePACS 2015: trainLabels.csv (image,level), train/ or images/<id>_<eye>.jpeg."""
    labels = root / "trainLabels.csv"
    images = first_dir(root, ["train", "images"])
    if images is None:
        raise DataError(f"{root}: no image folder; expected train/ or images/ next to trainLabels.csv")
    folder = ImageFolder(images)
    file = shown_path(labels, root)
    table = read_label_csv(labels, root, ["image", "level"])
    refuse_identity_columns(table, file, "kaggle")
    rows = []
    for n, rec in csv_records(table):
        image_id = strip_image_extension(rec["image"])
        patient, eye = patient_from_name(image_id)
        rows.append(LabelRow(where_in(file, n, image_id), image_id, folder.find(rec["image"]),
                         rec["level"], patient, eye, looked_for=folder.describe(rec["image"])))
    return rows, [folder], {}


def _read_aptos(root: Path, cfg: DataConfig) -> Found:
    """APTOS 2019: train.csv (id_code,diagnosis), train_images/<id_code>.png.

    APTOS publishes no patient ids, so each image is its own patient, unless a patient (eye)
    column was added to train.csv (``patient_id``, ``Patient ID``): then it is read, as the
    csv format reads it.
    """
    labels = root / "train.csv"
    folder = ImageFolder(root / "train_images")
    file = shown_path(labels, root)
    table = read_label_csv(labels, root, ["id_code", "diagnosis"])
    patient_col, eye_col = label_identity_columns(table, file)
    rows = []
    for n, rec in csv_records(table):
        image_id = strip_image_extension(rec["id_code"])
        where = where_in(file, n, image_id)
        patient, eye = _patient_and_eye(rec, where, image_id, patient_col, eye_col)
        rows.append(LabelRow(where, image_id, folder.find(rec["id_code"]), rec["diagnosis"], patient, eye,
                             looked_for=folder.describe(rec["id_code"])))
    return rows, [folder], {}


def _idrid_base(root: Path) -> Path | None:
    # The zip unpacks either flat or with the folder repeated inside itself.
    for base in [root / "B. Disease Grading", root / "B. Disease Grading" / "B. Disease Grading", root]:
        if (base / "2. Groundtruths").is_dir():
            return base
    return None


def _read_idrid(root: Path, cfg: DataConfig) -> Found:
    """IDRiD part B (disease grading), with its official training / testing split.

    Both sets number their images from IDRiD_001, so the image id carries the split
    ("train_IDRiD_001", "test_IDRiD_001"). IDRiD publishes no patient ids: image = patient.
    """
    base = _idrid_base(root)
    if base is None:
        raise DataError(f"{root}: no 'B. Disease Grading/2. Groundtruths' folder (IDRiD layout)")
    parts = [
        ("a. IDRiD_Disease Grading_Training Labels.csv", "a. Training Set", "train"),
        ("b. IDRiD_Disease Grading_Testing Labels.csv", "b. Testing Set", "test"),
    ]
    rows, folders = [], []
    for label_name, image_dir, split in parts:
        labels = base / "2. Groundtruths" / label_name
        if split == "test" and not labels.exists():
            continue  # some copies ship only the training part
        folder = ImageFolder(base / "1. Original Images" / image_dir)
        folders.append(folder)
        file = shown_path(labels, root)
        table = read_label_csv(labels, root, ["Image name", "Retinopathy grade"])
        refuse_identity_columns(table, file, "idrid")
        for n, rec in csv_records(table):
            name = rec["Image name"]
            image_id = f"{split}_{strip_image_extension(name)}"
            rows.append(LabelRow(where_in(file, n, image_id), image_id, folder.find(name),
                             rec["Retinopathy grade"], image_id, split=split,
                             looked_for=folder.describe(name)))
    return rows, folders, {}


def _messidor_pairs(path: Path, root: Path) -> dict[str, tuple[str, str]]:
    """Image stem -> (patient id, eye) from ADCIS's messidor-2.csv exam list.

    Each line lists the two images of one examination ("left;right"); the patient id is the
    left image's name. The file ships with the ADCIS images, not with the Kaggle grades.
    """
    pairs: dict[str, tuple[str, str]] = {}
    text = path.read_bytes().decode("latin-1")
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"[;,\t]", line) if c.strip()]
        if len(cells) < 2 or Path(cells[0]).suffix.lower() not in IMAGE_EXTENSIONS:
            continue  # header or blank line
        patient = strip_image_extension(cells[0])
        pairs[strip_image_extension(cells[0]).lower()] = (patient, "left")
        pairs[strip_image_extension(cells[1]).lower()] = (patient, "right")
    if not pairs:
        raise DataError(f"{shown_path(path, root)}: no 'left;right' image pairs found")
    return pairs


def _read_messidor2(root: Path, cfg: DataConfig) -> Found:
    """Messidor-2 with the adjudicated grades of Krause et al. (Kaggle messidor_data.csv).

    Columns image_id,adjudicated_dr_grade,adjudicated_dme,adjudicated_gradable (a common
    re-upload names them id_code,diagnosis,...). Ungradable images are dropped and counted.
    Patients come from ADCIS's messidor-2.csv exam pairs when present; without it each image
    is its own patient, and both eyes of a person can land in different splits.
    """
    labels = root / "messidor_data.csv"
    images = first_dir(root, ["IMAGES", "messidor-2/preprocess", "messidor-2/messidor-2/preprocess",
                               "preprocess"])
    if images is None:
        raise DataError(f"{root}: no image folder; expected IMAGES/ or messidor-2/preprocess/")
    table = read_label_csv(labels, root, [])
    id_col, grade_col = ("id_code", "diagnosis") if "id_code" in table.columns else (
        "image_id", "adjudicated_dr_grade")
    require_columns(table, [id_col, grade_col], shown_path(labels, root))
    refuse_identity_columns(table, shown_path(labels, root), "messidor2")
    pairs_file = root / "messidor-2.csv"
    pairs = _messidor_pairs(pairs_file, root) if pairs_file.is_file() else {}
    if not pairs:
        warnings.warn(f"{root}: no messidor-2.csv exam pairs; each image is treated as its own "
                      "patient", stacklevel=3)
    folder = ImageFolder(images)
    file = shown_path(labels, root)
    rows, ungradable = [], 0
    for n, rec in csv_records(table):
        name = rec[id_col]
        image_id = strip_image_extension(name)
        path = folder.find(name)  # claim the file even when ungradable: it has a label row
        if rec.get("adjudicated_gradable", "1") in ("0", "0.0"):
            ungradable += 1
            continue
        patient, eye = pairs.get(image_id.lower(), (image_id, ""))
        rows.append(LabelRow(where_in(file, n, image_id), image_id, path, rec[grade_col], patient, eye,
                         looked_for=folder.describe(name)))
    return rows, [folder], {"ungradable": ungradable}


def _deepdrid_base(root: Path) -> Path | None:
    for base in [root / "regular_fundus_images", root]:
        if (base / "regular-fundus-training").is_dir():
            return base
    return None


def _read_deepdrid(root: Path, cfg: DataConfig) -> Found:
    """DeepDRiD regular fundus images, official training / validation folders.

    Each CSV row is one image of a patient (``<patient>_<l|r><view>``) with per-eye grades in
    left_eye_DR_Level / right_eye_DR_Level. The image_path column omits the Images/ folder,
    so images are found by id under Images/. The labelled test set ships as .xlsx
    (Challenge1_labels.xlsx) and is not read here.
    """
    base = _deepdrid_base(root)
    if base is None:
        raise DataError(f"{root}: no regular_fundus_images/regular-fundus-training folder (DeepDRiD)")
    required = ["patient_id", "image_id", "left_eye_DR_Level", "right_eye_DR_Level"]
    rows, folders = [], []
    for sub, split in [("regular-fundus-training", "train"), ("regular-fundus-validation", "val")]:
        labels = base / sub / f"{sub}.csv"
        if split == "val" and not labels.exists():
            continue
        folder = ImageFolder(base / sub / "Images", recursive=True)
        folders.append(folder)
        file = shown_path(labels, root)
        for n, rec in csv_records(read_label_csv(labels, root, required)):
            image_id = rec["image_id"]
            match = DEEPDRID_NAME.search(image_id)
            eye = {"l": "left", "r": "right"}[match[1].lower()] if match else ""
            # A few rows carry the grade in the other eye's column (e.g. 56_r3); each row
            # fills exactly one of the two, so take the eye's own column, else the filled one.
            own = rec[f"{eye}_eye_DR_Level"] if eye else ""
            grade = own or rec["left_eye_DR_Level"] or rec["right_eye_DR_Level"]
            rows.append(LabelRow(where_in(file, n, image_id), image_id, folder.find(image_id), grade,
                             patient_id(rec["patient_id"]) or image_id, eye, split=split,
                             looked_for=folder.describe(image_id)))
    return rows, folders, {}


def _ddr_base(root: Path) -> Path | None:
    for base in [root / "DDR-dataset" / "DR_grading", root / "DR_grading", root]:
        if (base / "train.txt").is_file():
            return base
    return None


def _read_ddr(root: Path, cfg: DataConfig) -> Found:
    """DDR grading: DR_grading/{train,valid,test}.txt with lines "name.jpg grade".

    Grade 5 means ungradable: those images are dropped and counted. DDR publishes no
    patient ids, so each image is its own patient.
    """
    base = _ddr_base(root)
    if base is None:
        raise DataError(f"{root}: no DDR-dataset/DR_grading/train.txt (DDR layout)")
    rows, folders, ungradable = [], [], 0
    for part, split in [("train", "train"), ("valid", "val"), ("test", "test")]:
        labels = base / f"{part}.txt"
        if not labels.is_file():
            continue
        folder = ImageFolder(base / part)
        folders.append(folder)
        file = shown_path(labels, root)
        lines = labels.read_bytes().decode("utf-8-sig", errors="replace").splitlines()
        for n, line in enumerate(lines, start=1):
            fields = line.split()
            if not fields:
                continue
            image_id = strip_image_extension(fields[0])
            if len(fields) != 2:
                raise DataError(f"{where_in(file, n, image_id)}: expected 'image-name grade', got {line!r}")
            path = folder.find(fields[0])
            if fields[1] == "5":
                ungradable += 1
                continue
            rows.append(LabelRow(where_in(file, n, image_id), image_id, path, fields[1], image_id,
                             split=split, looked_for=folder.describe(fields[0])))
    return rows, folders, {"ungradable": ungradable}


def _read_csv_format(root: Path, cfg: DataConfig) -> Found:
    """Any label CSV: ``data.labels`` (default labels.csv), ``data.images`` (default images/).

    Column names come from ``data.columns``. Without a configured patient (eye) column, a
    column named as predict names it (``patient_id``, ``patient``, ``Patient ID``; ``eye``, ``EYE``)
    is used when present, and one that only looks like it (``patient_no``) is refused, so a patient-level split does
    not silently become image-level; otherwise patient and eye come from Kaggle-style names
    (``10_left``), and any other image is its own patient. An empty patient cell, or a
    placeholder for a missing value (``NA``, ``unknown``), is refused.
    """
    labels = root / (cfg.labels or "labels.csv")
    if not labels.is_file():
        raise DataError(f"label file not found: {labels} (data.labels)")
    if cfg.images is not None:
        images = root / cfg.images
        if not images.is_dir():
            raise DataError(f"image folder not found: {images} (data.images)")
    else:
        images = first_dir(root, ["images"]) or labels.parent
    cols = cfg.columns
    required = [cols.image, cols.grade] + [c for c in (cols.patient, cols.eye) if c]
    table = read_label_csv(labels, root, required)
    file = shown_path(labels, root)
    patient_col, eye_col = label_identity_columns(table.drop(columns=[cols.image, cols.grade]), file, cols.patient, cols.eye)
    folder = ImageFolder(images)
    rows = []
    for n, rec in csv_records(table):
        ref = rec[cols.image]
        image_id = strip_image_extension(ref)
        where = where_in(file, n, image_id)
        patient, eye = _patient_and_eye(rec, where, image_id, patient_col, eye_col)
        rows.append(LabelRow(where, image_id, folder.find(ref), rec[cols.grade], patient, eye,
                         looked_for=folder.describe(ref)))
    if not patient_col:
        _log_patients_from_names(rows, file)
    return rows, [folder], {}


# A grade folder is named by its grade, alone or before a word: "3", "4 proliferative", "0_No_DR".
GRADE_FOLDER = re.compile(r"([0-9]+)(?:[\s_.\-]+\D.*)?")


def _grade_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and GRADE_FOLDER.fullmatch(p.name))


def _read_folders(root: Path, cfg: DataConfig) -> Found:
    """One folder per grade: root/<0..4>/**/*.jpg|jpeg|png|tif, subfolders included (``0/clinicB/``);
    a grade folder may carry a word after its grade (``4 proliferative``). The image id is the path
    inside the grade folder (``clinicB/10_left``), so patient and eye come from Kaggle-style names
    per subfolder (two clinics numbering alike stay apart); any other image is its own patient.
    Photos in other folders have no grade: counted and named in a warning, never dropped unsaid."""
    rows = []
    for grade_dir in _grade_folders(root):
        grade = GRADE_FOLDER.fullmatch(grade_dir.name)[1]  # type: ignore[index]
        if grade not in {"0", "1", "2", "3", "4"}:
            raise DataError(f"{grade_dir}: folder name {grade_dir.name!r} is not a grade in 0..4")
        by_id: dict[str, Path] = {}  # 10_left.jpeg and 10_LEFT.jpeg (or 10_left.png) are one name
        for path in photo_files(grade_dir, recursive=True):
            image_id = path.relative_to(grade_dir).with_suffix("").as_posix()
            if image_id.lower() in by_id:
                raise two_photos_under_one_name(grade_dir, by_id[image_id.lower()], path)
            by_id[image_id.lower()] = path
            patient, eye = patient_from_name(image_id)
            rows.append(LabelRow(shown_path(path, root), image_id, path, grade, patient, eye))
    _log_patients_from_names(rows, f"{root} (grade folders)")
    others: dict[str, int] = {}  # folder -> its photos, for folders whose name is not a grade
    for sub in sorted(root.iterdir()):
        if sub.is_dir() and not sub.name.startswith(".") and not GRADE_FOLDER.fullmatch(sub.name):
            if n := len(photo_files(sub, recursive=True)):
                others[sub.name] = n
    if others:
        listing = ", ".join(f"{name!r} ({n})" for name, n in others.items())
        warnings.warn(f"{root}: {sum(others.values())} photos left out, in folders whose name is not a grade "
                      f"0..4 (such as '3' or '3 severe'): {listing}", stacklevel=3)
    # Images lying next to the grade folders have no grade either.
    return rows, [ImageFolder(root)], {"unlabelled_files": sum(others.values())}


READERS: dict[str, Callable[[Path, DataConfig], Found]] = {
    "kaggle": _read_kaggle,
    "aptos": _read_aptos,
    "idrid": _read_idrid,
    "messidor2": _read_messidor2,
    "deepdrid": _read_deepdrid,
    "ddr": _read_ddr,
    "csv": _read_csv_format,
    "folders": _read_folders,
}


def detect_format(root: str | Path) -> str:
    """The data-set format whose published files are present in ``root``."""
    root = Path(root)
    if (root / "trainLabels.csv").is_file():
        return "kaggle"
    if (root / "train.csv").is_file() and (root / "train_images").is_dir():
        return "aptos"
    if _idrid_base(root) is not None:
        return "idrid"
    if (root / "messidor_data.csv").is_file():
        return "messidor2"
    if _deepdrid_base(root) is not None:
        return "deepdrid"
    if _ddr_base(root) is not None:
        return "ddr"
    if (root / "labels.csv").is_file():
        return "csv"
    if _grade_folders(root):
        return "folders"
    raise DataError(
        f"cannot tell the data-set format of {root}: found none of trainLabels.csv (kaggle), "
        "train.csv + train_images/ (aptos), 'B. Disease Grading' (idrid), messidor_data.csv "
        "(messidor2), regular_fundus_images/ (deepdrid), DR_grading/train.txt (ddr), "
        "labels.csv (csv), grade folders 0..4 (folders); set data.format and data.labels"
    )



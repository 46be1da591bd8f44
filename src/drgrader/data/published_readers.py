"""Readers of the published data sets' layouts: Kaggle EyePACS, APTOS, IDRiD, Messidor-2,
DeepDRiD and DDR, each with the file names and folders it was published with. Each returns raw
label rows; :mod:`.readers` holds the registry and detects which layout a folder holds, and
:mod:`.manifest` validates the rows. The generic formats (a label CSV, grade folders) are in
:mod:`.generic_readers`."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from drgrader.config import DataConfig
from drgrader.data.eyes import long_ids_kept, patient_id
from drgrader.data.grade_columns import name_unread_columns, refuse_other_grade_columns
from drgrader.data.input_columns import label_identity_columns, refuse_identity_columns
from drgrader.data.label_files import (
    DEEPDRID_NAME,
    IMAGE_EXTENSIONS,
    DataError,
    Found,
    ImageFolder,
    LabelRow,
    column_key,
    csv_records,
    first_dir,
    grade_value,
    patient_and_eye,
    patient_from_name,
    photo_files,
    read_label_csv,
    require_columns,
    shown_path,
    strip_image_extension,
    where_in,
)
from drgrader.data.text_lines import decode_lines, legacy_warning

_KAGGLE_PHOTO_FOLDERS = {"train", "images", "training", "trainimages", "trainingimages", "trainset", "trainingset"}


def read_kaggle(root: Path, cfg: DataConfig) -> Found:
    """Kaggle EyePACS 2015: trainLabels.csv (image,level), train/ or images/<id>_<eye>.jpeg."""
    labels = root / "trainLabels.csv"
    images = first_dir(root, ["train", "images"])
    if images is None:
        raise DataError(f"{root}: no image folder; expected train/ or images/ next to trainLabels.csv")
    # Which one trainLabels.csv grades is not a guess to make (probe 36 BZ11: train/ read, images/ called
    # unlabelled; probe 37 CA1: a Train/ copied from Windows or macOS alike).
    # probe 38 CB3: Training/, train_images/ too
    holding = [d.name for d in sorted(root.iterdir()) if d.is_dir() and column_key(d.name) in _KAGGLE_PHOTO_FOLDERS and photo_files(d)]
    if len(holding) > 1:
        raise DataError(f"{root}: {' and '.join(f'{name}/' for name in holding)} hold photos; keep the one trainLabels.csv grades "
                        "(or read another with data.format=csv, data.labels=trainLabels.csv, data.images=<its name>)")
    folder = ImageFolder(images)
    file = shown_path(labels, root)
    table = read_label_csv(labels, root, ["image", "level"])
    refuse_identity_columns(table, file, "kaggle")
    refuse_other_grade_columns(table, file, "level", "kaggle")
    name_unread_columns(table, file, ("image", "level"))  # probe 35 BY9: not even named before
    rows = []
    for n, rec in csv_records(table):
        image_id = strip_image_extension(rec["image"])
        patient, eye = patient_from_name(image_id)
        rows.append(LabelRow(where_in(file, n, image_id), image_id, folder.find(rec["image"]),
                         rec["level"], patient, eye, looked_for=folder.describe(rec["image"])))
    return rows, [folder], {}


def _warn_no_patient_ids(root: Path, layout: str, rows: list[LabelRow]) -> None:
    """A layout published without patient ids: each photo a patient of its own, said as the csv
    format says it (probe 44 CH10: APTOS holds both eyes of many people)."""
    if rows:
        warnings.warn(f"{root}: {layout} publishes no patient ids: each of the {len(rows)} photos is a patient of its own, "
                      "so a patient's two eyes may fall on both sides of the split", stacklevel=3)


def read_aptos(root: Path, cfg: DataConfig) -> Found:
    """APTOS 2019: train.csv (id_code,diagnosis), train_images/<id_code>.png.

    APTOS publishes no patient ids, so each image is its own patient, unless a patient (eye)
    column was added to train.csv (``patient_id``, ``Patient ID``): then it is read, as the
    csv format reads it.
    """
    labels = root / "train.csv"
    folder = ImageFolder(root / "train_images")
    file = shown_path(labels, root)
    table = read_label_csv(labels, root, ["id_code", "diagnosis"])
    refuse_other_grade_columns(table, file, "diagnosis", "aptos")
    patient_col, eye_col = label_identity_columns(table, file)
    name_unread_columns(table, file, ("id_code", "diagnosis", patient_col, eye_col))  # probe 36 BZ9: a gradability mark
    kept_digits = patient_col is not None and long_ids_kept(table[patient_col])
    rows = []
    for n, rec in csv_records(table):
        image_id = strip_image_extension(rec["id_code"])
        where = where_in(file, n, image_id)
        patient, eye = patient_and_eye(rec, where, image_id, patient_col, eye_col, kept_digits=kept_digits)
        rows.append(LabelRow(where, image_id, folder.find(rec["id_code"]), rec["diagnosis"], patient, eye,
                             looked_for=folder.describe(rec["id_code"]), patient_given=patient_col is not None))
    if patient_col is None:
        _warn_no_patient_ids(root, "APTOS (train.csv without a patient_id column)", rows)
    return rows, [folder], {}


def idrid_base(root: Path) -> Path | None:
    # The zip unpacks either flat or with the folder repeated inside itself.
    for base in [root / "B. Disease Grading", root / "B. Disease Grading" / "B. Disease Grading", root]:
        if (base / "2. Groundtruths").is_dir():
            return base
    return None


def read_idrid(root: Path, cfg: DataConfig) -> Found:
    """IDRiD part B (disease grading), with its official training / testing split.

    Both sets number their images from IDRiD_001, so the image id carries the split
    ("train_IDRiD_001", "test_IDRiD_001"). IDRiD publishes no patient ids: image = patient.
    """
    base = idrid_base(root)
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
        refuse_other_grade_columns(table, file, "Retinopathy grade", "idrid")
        name_unread_columns(table, file, ("Image name", "Retinopathy grade", "Risk of macular edema"))
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
    text, legacy = decode_lines(path.read_bytes())
    if legacy:
        warnings.warn(legacy_warning(shown_path(path, root), legacy), stacklevel=3)
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


def read_messidor2(root: Path, cfg: DataConfig) -> Found:
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
    refuse_other_grade_columns(table, shown_path(labels, root), grade_col, "messidor2")
    name_unread_columns(table, shown_path(labels, root), (id_col, grade_col, "adjudicated_dme", "adjudicated_gradable"))
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
        gradable = rec.get("adjudicated_gradable", "1").strip()
        if gradable not in ("0", "0.0", "1", "1.0"):  # 'False', 'no': read as 1 they kept an ungradable photo
            raise DataError(f"{where_in(file, n, image_id)}: adjudicated_gradable {gradable[:40]!r} is not one of 0, 1")
        if gradable in ("0", "0.0"):
            ungradable += 1
            continue
        patient, eye = pairs.get(image_id.lower(), (image_id, ""))
        rows.append(LabelRow(where_in(file, n, image_id), image_id, path, rec[grade_col], patient, eye,
                         looked_for=folder.describe(name)))
    return rows, [folder], {"ungradable": ungradable}


def deepdrid_base(root: Path) -> Path | None:
    for base in [root / "regular_fundus_images", root]:
        if (base / "regular-fundus-training").is_dir():
            return base
    return None


def read_deepdrid(root: Path, cfg: DataConfig) -> Found:
    """DeepDRiD regular fundus images, official training / validation folders.

    Each CSV row is one image of a patient (``<patient>_<l|r><view>``) with per-eye grades in
    left_eye_DR_Level / right_eye_DR_Level. The image_path column omits the Images/ folder,
    so images are found by id under Images/. The labelled test set ships as .xlsx
    (Challenge1_labels.xlsx) and is not read here.
    """
    base = deepdrid_base(root)
    if base is None:
        raise DataError(f"{root}: no regular_fundus_images/regular-fundus-training folder (DeepDRiD)")
    required = ["patient_id", "image_id", "left_eye_DR_Level", "right_eye_DR_Level"]
    rows, folders = [], []
    from_other: list[str] = []
    stated: dict[tuple[str, str], str] = {}  # (split, patient) -> its patient_DR_Level
    for sub, split in [("regular-fundus-training", "train"), ("regular-fundus-validation", "val")]:
        labels = base / sub / f"{sub}.csv"
        if split == "val" and not labels.exists():
            continue
        folder = ImageFolder(base / sub / "Images", recursive=True)
        folders.append(folder)
        file = shown_path(labels, root)
        table = read_label_csv(labels, root, required)
        name_unread_columns(table, file, (*required, "image_path"))  # its "Overall quality": probe 36 BZ9
        for n, rec in csv_records(table):
            image_id = rec["image_id"]
            match = DEEPDRID_NAME.search(image_id)
            eye = {"l": "left", "r": "right"}[match[1].lower()] if match else ""
            # A few rows carry the grade in the other eye's column (e.g. 56_r3); each row
            # fills exactly one of the two, so take the eye's own column, else the filled one.
            own = rec[f"{eye}_eye_DR_Level"] if eye else ""
            grade = own or rec["left_eye_DR_Level"] or rec["right_eye_DR_Level"]
            if eye and not own and grade:
                from_other.append(f"{image_id!r} (in the {'right' if eye == 'left' else 'left'} eye's column)")
            rows.append(LabelRow(where_in(file, n, image_id), image_id, folder.find(image_id), grade,
                             patient_id(rec["patient_id"]) or image_id, eye, split=split,
                             looked_for=folder.describe(image_id)))
            stated[(split, rows[-1].patient_id)] = rec.get("patient_DR_Level", "").strip()
    _warn_deepdrid_grades(rows, from_other, stated)
    return rows, folders, {}


def _warn_deepdrid_grades(rows: list[LabelRow], from_other: list[str], stated: dict[tuple[str, str], str]) -> None:
    """A row whose grade sits only in the other eye's column (the release misplaces a few, 56_r3;
    a user's re-export that lost one eye's grade would pass the fellow eye's), and a patient whose
    ``patient_DR_Level`` is not the worst of its eyes' grades: read as they are, and said (probe 42 CF8)."""
    if from_other:
        warnings.warn(f"DeepDRiD: {len(from_other)} row(s) carry their grade only in the other eye's column (e.g. "
                      f"{from_other[0]}): read as the photo's grade, as the release misplaces a few; check them", stacklevel=3)
    worst: dict[tuple[str, str], int] = {}
    for row in rows:
        if (grade := grade_value(row.grade)) is not None:
            key = (str(row.split), row.patient_id)
            worst[key] = max(worst.get(key, 0), grade)
    wrong = [(key[1], said, worst[key]) for key, said in stated.items()
             if key in worst and grade_value(said) is not None and grade_value(said) != worst[key]]
    if wrong:
        patient, said, grade = wrong[0]
        warnings.warn(f"DeepDRiD: {len(wrong)} patient(s) whose patient_DR_Level is not the worst of their photos' grades "
                      f"(e.g. patient {patient!r}: patient_DR_Level {said}, worst photo {grade}): a grade in the wrong "
                      "column, or one missing? Check them", stacklevel=3)


def ddr_base(root: Path) -> Path | None:
    for base in [root / "DDR-dataset" / "DR_grading", root / "DR_grading", root]:
        if (base / "train.txt").is_file():
            return base
    return None


def read_ddr(root: Path, cfg: DataConfig) -> Found:
    """DDR grading: DR_grading/{train,valid,test}.txt with lines "name.jpg grade".

    Grade 5 means ungradable: those images are dropped and counted. DDR publishes no
    patient ids, so each image is its own patient.
    """
    base = ddr_base(root)
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
    _warn_no_patient_ids(root, "DDR", rows)
    return rows, folders, {"ungradable": ungradable}

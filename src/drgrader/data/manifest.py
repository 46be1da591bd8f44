"""Read a graded fundus data set into one manifest table.

The manifest is a pandas DataFrame with one row per image and the columns

    image_id (str, unique), path (str, absolute), grade (int 0..4), patient_id (str),
    eye ("left", "right" or ""), source (format name), and split ("train"/"val"/"test")
    only when the data set publishes an official split.

Each ``_read_<format>`` function follows the published layout of one public data set and
returns raw label rows; ``_build_manifest`` validates them all the same way, so every format
gives the same errors (naming the label file, the 1-based data row and the image id).
What was left out is counted in ``manifest.attrs["skipped"]``.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from drgrader.config import DataConfig

# Order matters: an image id without extension is looked up with these, in this order.
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".dcm")
MANIFEST_COLUMNS = ["image_id", "path", "grade", "patient_id", "eye", "source"]
SPLITS = ("train", "val", "test")

# Kaggle EyePACS names: "<patient>_<left|right>"
_EYEPACS_NAME = re.compile(r"^(.+)_(left|right)$", re.IGNORECASE)
# DeepDRiD names: "<patient>_<l|r><view>", e.g. "12_l1"
_DEEPDRID_NAME = re.compile(r"_([lr])\d*$", re.IGNORECASE)
_EYE_WORDS = {"left": "left", "l": "left", "os": "left", "right": "right", "r": "right", "od": "right"}


class DataError(ValueError):
    """A data set that cannot be read; the message names the file, row and image."""


@dataclass
class _Row:
    """One label row as a reader found it; the grade is still raw text."""

    where: str  # e.g. "trainLabels.csv row 17 (image '13_left')"
    image_id: str
    path: Path | None  # None when the image file was not found
    grade: str
    patient_id: str
    eye: str = ""
    split: str | None = None
    looked_for: str = ""  # shown when the image is missing


def _where(file: str, row: int, image_id: str) -> str:
    return f"{file} row {row} (image {image_id!r})"


class _ImageFolder:
    """The image files of one folder, found by name case-insensitively, with or without extension.

    One directory listing replaces a stat per label row (EyePACS has 35k rows), and the
    folder remembers which files were claimed so the unlabelled ones can be counted.
    """

    def __init__(self, folder: Path, recursive: bool = False):
        self.folder = folder
        self.by_name: dict[str, Path] = {}
        self.by_stem: dict[str, list[Path]] = {}
        self.used: set[Path] = set()
        if not folder.is_dir():
            return
        files = folder.rglob("*") if recursive else folder.iterdir()
        for path in sorted(files):
            hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
            if hidden or path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            self.by_name.setdefault(path.name.lower(), path)
            self.by_stem.setdefault(path.stem.lower(), []).append(path)

    def find(self, ref: str) -> Path | None:
        """The file named ``ref`` (a file name, a name without extension, or a sub-path)."""
        ref = ref.strip().replace("\\", "/")
        found: Path | None = None
        if "/" in ref:
            candidates = [self.folder / ref] + [self.folder / (ref + ext) for ext in IMAGE_EXTENSIONS]
            found = next((p for p in candidates if p.is_file()), None)
        elif ref.lower() in self.by_name:
            found = self.by_name[ref.lower()]
        else:
            same_stem = self.by_stem.get(strip_image_extension(ref).lower(), [])
            same_stem = sorted(same_stem, key=lambda p: IMAGE_EXTENSIONS.index(p.suffix.lower()))
            found = same_stem[0] if same_stem else None
        if found is not None:
            self.used.add(found)
        return found

    def describe(self, ref: str) -> str:
        suffix = "" if Path(ref).suffix.lower() in IMAGE_EXTENSIONS else " (+ .jpeg/.jpg/.png/.tif)"
        return f"no file {ref!r}{suffix} in {self.folder}"

    def unlabelled(self) -> int:
        return len(set(self.by_name.values()) - self.used)


def strip_image_extension(name: str) -> str:
    """``"10_left.jpeg"`` -> ``"10_left"``; names without an image extension are kept."""
    path = Path(name.replace("\\", "/"))
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return str(path.with_suffix("")).replace("\\", "/")
    return name.replace("\\", "/")


def _shown(path: Path, root: Path) -> str:
    """A label file's name as messages show it: relative to the data-set root."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _read_csv(path: Path, root: Path, required: list[str], sep: str = ",") -> pd.DataFrame:
    """A label CSV as stripped strings, checked for the ``required`` columns.

    Row ``i`` of the result has index ``i - 1`` even when padding rows were dropped, so
    messages can quote 1-based data row numbers.
    """
    shown = _shown(path, root)
    if not path.is_file():
        raise DataError(f"label file not found: {path}")
    data = path.read_bytes()
    if b"\x00" in data[:65536]:
        raise DataError(f"{shown} is not a text CSV file (it contains binary data)")
    try:
        text = data.decode("utf-8-sig")  # also removes the byte-order mark Excel writes
    except UnicodeDecodeError:
        warnings.warn(f"{shown} is not valid UTF-8; reading it as Latin-1", stacklevel=3)
        text = data.decode("latin-1")
    _check_field_counts(text, sep, shown)
    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, sep=sep, index_col=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{shown} cannot be read as CSV: {exc}") from None
    # Header cells can carry stray spaces (IDRiD: "Risk of macular edema ").
    table.columns = [str(c).strip() for c in table.columns]
    _require_columns(table, required, shown)
    for column in table.columns:
        table[column] = table[column].str.strip()
    # Spreadsheet exports pad the end with empty rows (",,,,"): not label rows.
    return table[(table != "").any(axis=1)]


def _check_field_counts(text: str, sep: str, shown: str) -> None:
    """A row with more (non-empty) fields than the header is an error naming the row: pandas
    would silently turn its first fields into an index and shift every column."""
    rows = (fields for fields in csv.reader(io.StringIO(text), delimiter=sep) if fields)
    header = next(rows, None)
    if header is None:
        return
    for n, fields in enumerate(rows, start=1):
        if len(fields) > len(header) and any(f.strip() for f in fields[len(header):]):
            raise DataError(f"{shown} row {n}: {len(fields)} fields, but the header has {len(header)} ({', '.join(header)[:80]})")


def _require_columns(table: pd.DataFrame, required: list[str], shown: str) -> None:
    missing = [c for c in required if c not in table.columns]
    if missing:
        found = [c for c in table.columns if not c.startswith("Unnamed:")]
        raise DataError(f"{shown}: missing column(s) {missing}; expected {required}, found {found}")


def _records(table: pd.DataFrame) -> list[tuple[int, dict[str, str]]]:
    """(1-based data row number, row as a dict) pairs."""
    return [(int(i) + 1, rec) for i, rec in zip(table.index, table.to_dict("records"))]


def _first_dir(root: Path, names: list[str]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def _eye(value: str, where: str) -> str:
    word = value.strip().lower()
    if word == "":
        return ""
    if word not in _EYE_WORDS:
        raise DataError(f"{where}: eye {value!r} is not one of left/right/L/R/OS/OD")
    return _EYE_WORDS[word]


_Found = tuple[list[_Row], list[_ImageFolder], dict[str, int]]


# ----------------------------------------------------------------------- readers
def _read_kaggle(root: Path, cfg: DataConfig) -> _Found:
    """Kaggle EyePACS 2015: trainLabels.csv (image,level), train/ or images/<id>_<eye>.jpeg."""
    labels = root / "trainLabels.csv"
    images = _first_dir(root, ["train", "images"])
    if images is None:
        raise DataError(f"{root}: no image folder; expected train/ or images/ next to trainLabels.csv")
    folder = _ImageFolder(images)
    file = _shown(labels, root)
    rows = []
    for n, rec in _records(_read_csv(labels, root, ["image", "level"])):
        image_id = strip_image_extension(rec["image"])
        match = _EYEPACS_NAME.match(image_id)
        patient, eye = (match[1], match[2].lower()) if match else (image_id, "")
        rows.append(_Row(_where(file, n, image_id), image_id, folder.find(rec["image"]),
                         rec["level"], patient, eye, looked_for=folder.describe(rec["image"])))
    return rows, [folder], {}


def _read_aptos(root: Path, cfg: DataConfig) -> _Found:
    """APTOS 2019: train.csv (id_code,diagnosis), train_images/<id_code>.png.

    APTOS publishes no patient ids, so each image is its own patient.
    """
    labels = root / "train.csv"
    folder = _ImageFolder(root / "train_images")
    file = _shown(labels, root)
    rows = []
    for n, rec in _records(_read_csv(labels, root, ["id_code", "diagnosis"])):
        image_id = strip_image_extension(rec["id_code"])
        rows.append(_Row(_where(file, n, image_id), image_id, folder.find(rec["id_code"]),
                         rec["diagnosis"], image_id, looked_for=folder.describe(rec["id_code"])))
    return rows, [folder], {}


def _idrid_base(root: Path) -> Path | None:
    # The zip unpacks either flat or with the folder repeated inside itself.
    for base in [root / "B. Disease Grading", root / "B. Disease Grading" / "B. Disease Grading", root]:
        if (base / "2. Groundtruths").is_dir():
            return base
    return None


def _read_idrid(root: Path, cfg: DataConfig) -> _Found:
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
        folder = _ImageFolder(base / "1. Original Images" / image_dir)
        folders.append(folder)
        file = _shown(labels, root)
        for n, rec in _records(_read_csv(labels, root, ["Image name", "Retinopathy grade"])):
            name = rec["Image name"]
            image_id = f"{split}_{strip_image_extension(name)}"
            rows.append(_Row(_where(file, n, image_id), image_id, folder.find(name),
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
        raise DataError(f"{_shown(path, root)}: no 'left;right' image pairs found")
    return pairs


def _read_messidor2(root: Path, cfg: DataConfig) -> _Found:
    """Messidor-2 with the adjudicated grades of Krause et al. (Kaggle messidor_data.csv).

    Columns image_id,adjudicated_dr_grade,adjudicated_dme,adjudicated_gradable (a common
    re-upload names them id_code,diagnosis,...). Ungradable images are dropped and counted.
    Patients come from ADCIS's messidor-2.csv exam pairs when present; without it each image
    is its own patient, and both eyes of a person can land in different splits.
    """
    labels = root / "messidor_data.csv"
    images = _first_dir(root, ["IMAGES", "messidor-2/preprocess", "messidor-2/messidor-2/preprocess",
                               "preprocess"])
    if images is None:
        raise DataError(f"{root}: no image folder; expected IMAGES/ or messidor-2/preprocess/")
    table = _read_csv(labels, root, [])
    id_col, grade_col = ("id_code", "diagnosis") if "id_code" in table.columns else (
        "image_id", "adjudicated_dr_grade")
    _require_columns(table, [id_col, grade_col], _shown(labels, root))
    pairs_file = root / "messidor-2.csv"
    pairs = _messidor_pairs(pairs_file, root) if pairs_file.is_file() else {}
    if not pairs:
        warnings.warn(f"{root}: no messidor-2.csv exam pairs; each image is treated as its own "
                      "patient", stacklevel=3)
    folder = _ImageFolder(images)
    file = _shown(labels, root)
    rows, ungradable = [], 0
    for n, rec in _records(table):
        name = rec[id_col]
        image_id = strip_image_extension(name)
        path = folder.find(name)  # claim the file even when ungradable: it has a label row
        if rec.get("adjudicated_gradable", "1") in ("0", "0.0"):
            ungradable += 1
            continue
        patient, eye = pairs.get(image_id.lower(), (image_id, ""))
        rows.append(_Row(_where(file, n, image_id), image_id, path, rec[grade_col], patient, eye,
                         looked_for=folder.describe(name)))
    return rows, [folder], {"ungradable": ungradable}


def _deepdrid_base(root: Path) -> Path | None:
    for base in [root / "regular_fundus_images", root]:
        if (base / "regular-fundus-training").is_dir():
            return base
    return None


def _read_deepdrid(root: Path, cfg: DataConfig) -> _Found:
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
        folder = _ImageFolder(base / sub / "Images", recursive=True)
        folders.append(folder)
        file = _shown(labels, root)
        for n, rec in _records(_read_csv(labels, root, required)):
            image_id = rec["image_id"]
            match = _DEEPDRID_NAME.search(image_id)
            eye = {"l": "left", "r": "right"}[match[1].lower()] if match else ""
            # A few rows carry the grade in the other eye's column (e.g. 56_r3); each row
            # fills exactly one of the two, so take the eye's own column, else the filled one.
            own = rec[f"{eye}_eye_DR_Level"] if eye else ""
            grade = own or rec["left_eye_DR_Level"] or rec["right_eye_DR_Level"]
            rows.append(_Row(_where(file, n, image_id), image_id, folder.find(image_id), grade,
                             rec["patient_id"] or image_id, eye, split=split,
                             looked_for=folder.describe(image_id)))
    return rows, folders, {}


def _ddr_base(root: Path) -> Path | None:
    for base in [root / "DDR-dataset" / "DR_grading", root / "DR_grading", root]:
        if (base / "train.txt").is_file():
            return base
    return None


def _read_ddr(root: Path, cfg: DataConfig) -> _Found:
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
        folder = _ImageFolder(base / part)
        folders.append(folder)
        file = _shown(labels, root)
        lines = labels.read_bytes().decode("utf-8-sig", errors="replace").splitlines()
        for n, line in enumerate(lines, start=1):
            fields = line.split()
            if not fields:
                continue
            image_id = strip_image_extension(fields[0])
            if len(fields) != 2:
                raise DataError(f"{_where(file, n, image_id)}: expected 'image-name grade', got {line!r}")
            path = folder.find(fields[0])
            if fields[1] == "5":
                ungradable += 1
                continue
            rows.append(_Row(_where(file, n, image_id), image_id, path, fields[1], image_id,
                             split=split, looked_for=folder.describe(fields[0])))
    return rows, folders, {"ungradable": ungradable}


def _read_csv_format(root: Path, cfg: DataConfig) -> _Found:
    """Any label CSV: ``data.labels`` (default labels.csv), ``data.images`` (default images/).

    Column names come from ``data.columns``. Without a configured patient (eye) column, a
    column named ``patient_id`` (``eye``) is used when present, so a patient-level split does
    not silently become image-level; otherwise each image is its own patient.
    """
    labels = root / (cfg.labels or "labels.csv")
    if not labels.is_file():
        raise DataError(f"label file not found: {labels} (data.labels)")
    if cfg.images is not None:
        images = root / cfg.images
        if not images.is_dir():
            raise DataError(f"image folder not found: {images} (data.images)")
    else:
        images = _first_dir(root, ["images"]) or labels.parent
    cols = cfg.columns
    required = [cols.image, cols.grade] + [c for c in (cols.patient, cols.eye) if c]
    table = _read_csv(labels, root, required)
    patient_col = cols.patient or ("patient_id" if "patient_id" in table.columns else None)
    eye_col = cols.eye or ("eye" if "eye" in table.columns else None)
    folder = _ImageFolder(images)
    file = _shown(labels, root)
    rows = []
    for n, rec in _records(table):
        ref = rec[cols.image]
        image_id = strip_image_extension(ref)
        where = _where(file, n, image_id)
        patient = rec[patient_col] if patient_col else image_id
        if not patient:
            raise DataError(f"{where}: patient id (column {patient_col!r}) is empty")
        eye = _eye(rec[eye_col], where) if eye_col else ""
        rows.append(_Row(where, image_id, folder.find(ref), rec[cols.grade], patient, eye,
                         looked_for=folder.describe(ref)))
    return rows, [folder], {}


def _grade_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def _read_folders(root: Path, cfg: DataConfig) -> _Found:
    """One folder per grade: root/<0..4>/*.jpg|jpeg|png|tif. Each image is its own patient."""
    rows = []
    for grade_dir in _grade_folders(root):
        if grade_dir.name not in {"0", "1", "2", "3", "4"}:
            raise DataError(f"{grade_dir}: folder name {grade_dir.name!r} is not a grade in 0..4")
        for path in sorted(_ImageFolder(grade_dir).by_name.values()):
            rows.append(_Row(_shown(path, root), path.stem, path, grade_dir.name, path.stem))
    # Images lying next to the grade folders have no grade.
    return rows, [_ImageFolder(root)], {}


_READERS: dict[str, Callable[[Path, DataConfig], _Found]] = {
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


# -------------------------------------------------------------------- validation
def _grade(text: str, where: str) -> int:
    """Grade text -> int; "2.0" is accepted as 2."""
    if text == "":
        raise DataError(f"{where}: grade is empty")
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: grade {text!r} is not a number") from None
    if not value.is_integer():
        raise DataError(f"{where}: grade {text!r} is not a whole number")
    if not 0 <= value <= 4:
        raise DataError(f"{where}: grade {text!r} is not in 0..4")
    return int(value)


def _first_patients(df: pd.DataFrame, limit: int) -> pd.DataFrame:
    """Rows of the first ``limit`` patients (sorted by id); per official split when there is one,
    so a smoke run on IDRiD or DDR still has a training and a test set."""
    groups = [df] if "split" not in df.columns else [g for _, g in df.groupby("split")]
    keep: set[str] = set()
    for group in groups:
        keep.update(sorted(group["patient_id"].unique())[:limit])
    return df[df["patient_id"].isin(keep)]


def _build_manifest(found: _Found, cfg: DataConfig, source: str, root: Path) -> pd.DataFrame:
    rows, folders, extra_skipped = found
    records, missing = [], []
    first_seen: dict[str, _Row] = {}
    for row in rows:
        if not row.image_id:
            raise DataError(f"{row.where}: image name is empty")
        grade = _grade(row.grade, row.where)
        if row.image_id in first_seen:
            raise DataError(f"{row.where}: image id {row.image_id!r} appears twice "
                            f"(also {first_seen[row.image_id].where})")
        first_seen[row.image_id] = row
        if row.path is None:
            missing.append(row)
            continue
        record = {"image_id": row.image_id, "path": str(row.path.resolve()), "grade": grade,
                  "patient_id": str(row.patient_id), "eye": row.eye, "source": source}
        if row.split is not None:
            record["split"] = row.split
        records.append(record)
    if missing and not cfg.skip_missing:
        more = f"; {len(missing) - 1} more rows lack their image" if len(missing) > 1 else ""
        raise DataError(f"{missing[0].where}: image file not found: {missing[0].looked_for}"
                        f"{more} (data.skip_missing=true skips such rows)")
    skipped = {"missing_image": len(missing),
               "unlabelled_files": sum(f.unlabelled() for f in folders),
               "ungradable": 0, **extra_skipped}
    if not records:
        raise DataError(f"no usable labelled images in {root} (format {source}); skipped: {skipped}")
    has_split = any("split" in r for r in records)
    df = pd.DataFrame(records, columns=MANIFEST_COLUMNS + (["split"] if has_split else []))
    df["grade"] = df["grade"].astype("int64")
    if cfg.limit is not None:
        df = _first_patients(df, cfg.limit)
    df = df.sort_values("image_id", kind="stable").reset_index(drop=True)
    df.attrs["skipped"] = skipped
    return df


def read_manifest(cfg: DataConfig) -> pd.DataFrame:
    """Read the data set described by ``cfg`` (``data`` section) into a validated manifest.

    ``cfg.format == "auto"`` detects the format from the files present (``csv`` when
    ``cfg.labels`` is set). Raises :class:`DataError` naming the file and row of the first
    problem. ``df.attrs["skipped"]`` counts rows left out: ``missing_image`` (with
    ``cfg.skip_missing``), ``unlabelled_files`` (images without a label row) and
    ``ungradable`` (Messidor-2, DDR).
    """
    if cfg.root is None:
        raise DataError("data.root is not set: give the folder of a data set")
    root = Path(cfg.root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"data folder not found: {root} (data.root)")
    fmt: str = cfg.format
    if fmt == "auto":
        fmt = "csv" if cfg.labels is not None else detect_format(root)
    return _build_manifest(_READERS[fmt](root, cfg), cfg, fmt, root)


def read_dataset(root: str | Path, format: str = "auto", **kwargs) -> pd.DataFrame:
    """Convenience: ``read_manifest(DataConfig(root=root, format=format, **kwargs))``."""
    return read_manifest(DataConfig(root=Path(root), format=format, **kwargs))

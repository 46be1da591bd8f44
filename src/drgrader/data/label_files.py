"""The building blocks of the data-set readers: label-file parsing with errors that name the
file and the 1-based data row, image folders looked up by name, a row's patient and eye (from its
columns or its name), and the row a reader returns.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from drgrader.data.eyes import (
    EYE_WORDS,
    eye_alone,
    eyes_named,
    folder_patient,
    folders_of_visits,
    patient_id,
    spreadsheet_damage,
    visit_folder,
)
from drgrader.data.eyes import patient_and_eye as named_patient_and_eye  # this module's patient_and_eye reads a row
from drgrader.data.text_lines import decode_lines, legacy_warning
from drgrader.outputs import IMAGE_EXTENSIONS  # in order: an id without extension is looked up with these

MANIFEST_COLUMNS = ["image_id", "path", "grade", "patient_id", "eye", "source"]
SPLITS = ("train", "val", "test")

# DeepDRiD names: "<patient>_<l|r><view>", e.g. "12_l1"
DEEPDRID_NAME = re.compile(r"_([lr])\d*$", re.IGNORECASE)


# A grade is one digit of the scale. "2.0" too, on purpose: spreadsheet exports write whole
# numbers as floats. Nothing else is read as a grade: int()/float() would take "02", "-0", "+2",
# "2e0", "0_3" and "３" (full-width) too, which no grading tool writes.
GRADE_TEXT = re.compile(r"([0-4])(?:\.0+)?")


def grade_value(text: str) -> int | None:
    """The grade a label cell or a grade folder's name gives ("0".."4", "0.0".."4.0"), else None."""
    match = GRADE_TEXT.fullmatch(text)
    return None if match is None else int(match[1])


class DataError(ValueError):
    """A data set that cannot be read; the message names the file, row and image."""


@dataclass
class LabelRow:
    """One label row as a reader found it; the grade is still raw text."""

    where: str  # e.g. "trainLabels.csv row 17 (image '13_left')"
    image_id: str
    path: Path | None  # None when the image file was not found
    grade: str
    patient_id: str
    eye: str = ""
    split: str | None = None
    looked_for: str = ""  # shown when the image is missing
    patient_given: bool = False  # from a patient column: checked against the name's patient


def where_in(file: str, row: int, image_id: str) -> str:
    return f"{file} row {row} (image {image_id!r})"


class ImageFolder:
    """The image files of one folder, found by name case-insensitively, with or without extension.

    One directory listing replaces a stat per label row (EyePACS has 35k rows), and the
    folder remembers which files were claimed so the unlabelled ones can be counted. Two files
    whose names differ only in case or extension (``10_left.jpeg``, ``10_LEFT.jpeg``,
    ``10_left.png``) are refused: a label row would match either, and one would silently be left out.
    Names are compared in Unicode's composed form (NFC): a folder copied from a Mac keeps ``ü`` as
    ``u`` + a combining mark, which a label file typed in a spreadsheet does not.
    """

    def __init__(self, folder: Path, recursive: bool = False):
        self.folder = folder
        self.by_name: dict[str, Path] = {}
        self.by_stem: dict[str, Path] = {}
        self.used: set[Path] = set()
        for path in photo_files(folder, recursive):
            other = self.by_stem.get(_key(path.stem))
            if other is not None:
                raise two_photos_under_one_name(folder, other, path)
            self.by_name[_key(path.name)] = path
            self.by_stem[_key(path.stem)] = path

    def find(self, ref: str) -> Path | None:
        """The file named ``ref`` (a file name, a name without extension, or a sub-path)."""
        ref = ref.strip().replace("\\", "/")
        found: Path | None = None
        if "/" in ref:  # a sub-path: not in the listing, looked up on disk
            candidates = [self.folder / ref] if (self.folder / ref).is_file() else [
                p for p in (self.folder / (ref + ext) for ext in IMAGE_EXTENSIONS) if p.is_file()]
            if len(candidates) > 1:
                raise DataError(f"{self.folder}: {ref!r} could be {candidates[0].name} or {candidates[1].name}: "
                                "give the file name with its extension")
            found = candidates[0] if candidates else None
        elif _key(ref) in self.by_name:
            found = self.by_name[_key(ref)]
        elif Path(ref).suffix.lower() not in IMAGE_EXTENSIONS:
            found = self.by_stem.get(_key(ref))
        # else: a name with another extension ('10_left.png' beside 10_left.jpeg) is not that
        # file, as predict's lists read it: taking the JPEG would be a guess made without a word.
        if found is not None:
            self.used.add(found)
        return found

    def describe(self, ref: str) -> str:
        if Path(ref).suffix.lower() not in IMAGE_EXTENSIONS:
            return f"no file {ref!r} (+ an image extension: {'/'.join(IMAGE_EXTENSIONS)}) in {self.folder}"
        other = self.by_stem.get(_key(strip_image_extension(ref.strip())))
        hint = f" ({other.name} has another extension: name it so if it is that photo)" if other is not None else ""
        return f"no file {ref!r} in {self.folder}{hint}"

    def unlabelled(self) -> int:
        return len(set(self.by_name.values()) - self.used)


def _key(name: str) -> str:
    """A file name as the folder's listing is keyed: composed (NFC) and lower-case."""
    return unicodedata.normalize("NFC", name).lower()


def two_photos_under_one_name(folder: Path, first: Path, second: Path) -> DataError:
    a, b = (p.relative_to(folder).as_posix() for p in (first, second))
    return DataError(f"{folder}: {a!r} and {b!r} differ only in case or extension: two photos under "
                     "one name (a label row would match either); rename or remove one")


def photo_files(folder: Path, recursive: bool = False) -> list[Path]:
    """The image files of ``folder`` (and its subfolders), sorted; hidden ones (a name, or a
    folder's, beginning with '.': macOS's ``._`` copies, ``.thumbnails/``) left out."""
    if not folder.is_dir():
        return []
    files = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(path for path in files if path.suffix.lower() in IMAGE_EXTENSIONS
                  and not any(part.startswith(".") for part in path.relative_to(folder).parts))


def patient_from_name(image_id: str) -> tuple[str, str]:
    """(patient, eye) a label file's image id names by predict's rule (:func:`~drgrader.data.eyes.
    patient_and_eye`, as predict reads names): ``10_left`` -> ``("10", "left")``, ``Patient002_L`` -> ``("Patient002", "left")``;
    a folder in the id stays in the patient (``clinicB/10_left`` -> ``clinicB/10``: two clinics'
    patient 10 are two patients), but for folders named like visits (``P10/2015/10_left``,
    ``P10/2016/10_left``: both ``P10/10``, one person's visits on one side of a split). A name that is its eye alone in a folder (``P10/OD``: a
    patient-per-folder export, :func:`~drgrader.data.eyes.eye_alone`) is the folder's patient:
    ``("P10", "right")``. A name without an eye, naming both, or whose patient part is a
    missing-value placeholder (``NA_left``) is a patient of its own: ``(image_id, "")``."""
    folder, _, name = image_id.replace("\\", "/").rpartition("/")
    if folder and (eye := eye_alone(name)) and patient_id(folder.rpartition("/")[2]):
        head, _, last = folder.rpartition("/")  # a copied folder's marks dropped (`1002 - Copy`: probe 55 BS11)
        return f"{head}/{folder_patient(last)}" if head else folder_patient(last), eye  # P10/2015/OD: P10/2015, or P10 (patients_over_visits)
    read = named_patient_and_eye(name)
    if read is None or len(eyes_named(name)) > 1 or not patient_id(read[0]):
        return image_id, ""
    while folder and visit_folder(folder.rpartition("/")[2]):  # P10/2015/10_left: P10's patient 10 (probe 51 CO7)
        folder = folder.rpartition("/")[0]
    return (f"{folder}/{patient_id(read[0])}" if folder else patient_id(read[0])), read[1]


def patients_over_visits(image_ids: pd.Series, patients: pd.Series, given: list[bool]) -> pd.Series:
    """Patients read from ``<patient>/<visit>/<eye>`` image ids (``P10/2015/OD``: patient ``P10/2015``,
    by :func:`patient_from_name`) as the folder above the visit's, where the layout shows visits
    (:func:`~drgrader.data.eyes.folders_of_visits`: ``P10/2015``, ``P10/2016``, ``P11/2015``), so that
    a person's visits stay on one side of a split (probe 50 CN2); ``given`` patients (a column's) are kept."""
    parts = image_ids.astype(str).str.replace("\\", "/").str.rsplit("/", n=2)
    nested = [k for k, was_given in zip(image_ids.index, given) if not was_given and len(parts[k]) == 3
              and eye_alone(parts[k][2]) and patients[k] == f"{parts[k][0]}/{parts[k][1]}"]
    of_visits = folders_of_visits((parts[k][0], parts[k][1]) for k in nested)
    out = patients.copy()
    for k in nested:
        if parts[k][0] in of_visits:
            out[k] = parts[k][0]
    return out


def strip_image_extension(name: str) -> str:
    """``"10_left.jpeg"`` -> ``"10_left"``; names without an image extension are kept."""
    path = Path(name.replace("\\", "/"))
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return str(path.with_suffix("")).replace("\\", "/")
    return name.replace("\\", "/")


def shown_path(path: Path, root: Path) -> str:
    """A label file's name as messages show it: relative to the data-set root."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def read_label_csv(path: Path, root: Path, required: list[str], sep: str = ",") -> pd.DataFrame:
    """A label CSV as stripped strings, checked for the ``required`` columns.

    Row ``i`` of the result has index ``i - 1`` even when padding rows were dropped, so
    messages can quote 1-based data row numbers.
    """
    shown = shown_path(path, root)
    if not path.is_file():
        raise DataError(f"label file not found: {path}")
    raw = path.read_bytes()
    if raw.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):  # probe 43 CG7: its junk was shown as the header
        raise DataError(f"{shown} is a spreadsheet workbook (Excel .xlsx or .xls), not a text CSV file: save it as CSV")
    text, legacy = decode_lines(raw)  # UTF-16/32 (Excel's "Unicode Text") decoded first
    if "\x00" in text[:65536]:
        raise DataError(f"{shown} is not a text CSV file (it contains binary data)")
    if legacy:
        warnings.warn(legacy_warning(shown, legacy), stacklevel=3)
    table = read_text_table(text, sep, shown)
    # Header cells can carry stray spaces (IDRiD: "Risk of macular edema ").
    table.columns = [str(c).strip() for c in table.columns]
    require_columns(table, required, shown)
    for column in table.columns:
        table[column] = table[column].str.strip()
    # Spreadsheet exports pad the end with empty rows (",,,,"): not label rows.
    return table[(table != "").any(axis=1)]


def read_text_table(text: str, sep: str, shown: str) -> pd.DataFrame:
    """A label file's or list's text as a table of text cells, its rows' field counts checked."""
    check_field_counts(text, sep, shown)
    try:
        with warnings.catch_warnings():  # a trailing empty field on every row: nothing is lost (probe 38 BB10)
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, sep=sep, index_col=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{shown} cannot be read as CSV: {exc}") from None


def check_field_counts(text: str, sep: str, shown: str) -> None:
    """A row with more (non-empty) fields than the header is an error naming the row: pandas
    would silently turn its first fields into an index and shift every column."""
    # newline="": a lone carriage return ends a line, as it does for pandas (csv module docs).
    rows = (fields for fields in csv.reader(io.StringIO(text, newline=""), delimiter=sep) if fields)
    n = 0
    try:
        header = next(rows, None)
        if header is None:
            return
        refuse_repeated_columns(header, shown)
        for n, fields in enumerate(rows, start=1):
            if [f.strip() for f in fields] == [h.strip() for h in header]:
                raise DataError(f"{shown} row {n} repeats the header ({', '.join(header)[:80]}): two files joined? "
                                "Remove the line")
            if len(fields) > len(header) and any(f.strip() for f in fields[len(header):]):
                # The row as written, so the cell with the comma shows (probe 38 BB9)
                raise DataError(f"{shown} row {n}: {len(fields)} fields, but the header has {len(header)} "
                                f"({', '.join(header)[:80]}): {sep.join(fields)[:80]!r}"
                                + (separator_hint(header) or "; a cell holding a comma ('12,345') must be quoted"))
    except csv.Error as exc:
        raise DataError(f"{shown} row {n + 1}: cannot be read as CSV ({exc})") from None


def column_key(name: str) -> str:
    """A column name as columns are looked up and compared: case, spaces and separators ignored
    (``Patient ID`` is ``patient_id``, ``Level`` is ``level``)."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def name_words(name: str) -> list[str]:
    """A column name's words: ``LevelUpdated``, ``level_updated`` and ``DRGrade2`` -> ``level
    updated``, ``dr grade 2``; in NFKC, accents taken off (``Hôpital`` -> ``hopital``, full-width
    ``ＤＯＢ`` -> ``dob``: probe 43 BG8), other scripts' words kept whole (``氏名``, ``имя``)."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", name))
                    if not unicodedata.combining(c))
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", plain))
    return re.findall(r"[^\W\d_]+|[0-9]+", spaced.casefold())


def refuse_repeated_columns(header: list[str], shown: str) -> None:
    """A column named twice (``level,level``, ``level,level `` or ``level,Level``: the same name by
    :func:`column_key`) is refused: one would be read and the other dropped unsaid (pandas renames
    a second ``level`` to ``level.1``; ``Level`` is not the ``level`` a reader asks for)."""
    seen: dict[str, str] = {}
    for cell in header:
        key = column_key(cell) or cell.strip()  # a name of punctuation alone is its own key
        if not cell.strip():
            continue  # empty header cells are unnamed padding columns, not names
        if key in seen:
            first = seen[key]
            spelled = "" if cell == first else f" (as {first[:40]!r} and {cell[:40]!r})"
            raise DataError(f"{shown}: column {first.strip()[:40]!r} appears twice{spelled}; keep one")
        seen[key] = cell


def separator_hint(headers: list[str]) -> str:
    """The hint for a CSV read as one column whose name holds the others: a European Excel's
    (semicolons) or Excel's "Unicode Text" (tabs). One hint for label files and predict lists."""
    if len(headers) == 1 and any(sep in headers[0] for sep in ";\t"):
        return "; its columns look separated by semicolons or tabs: save it comma-separated"
    return ""


def require_columns(table: pd.DataFrame, required: list[str], shown: str) -> None:
    missing = [c for c in required if c not in table.columns]
    if missing:
        found = [c for c in table.columns if not c.startswith("Unnamed:")]
        raise DataError(f"{shown}: missing column(s) {missing}; expected {required}, found {found}"
                        f"{separator_hint(list(table.columns))}")


def csv_records(table: pd.DataFrame) -> list[tuple[int, dict[str, str]]]:
    """(1-based data row number, row as a dict) pairs."""
    return [(int(i) + 1, rec) for i, rec in zip(table.index, table.to_dict("records"))]


def first_dir(root: Path, names: list[str]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def eye_of(value: str, where: str) -> str:
    word = value.strip().lower()
    if word == "":
        return ""
    if word not in EYE_WORDS:
        raise DataError(f"{where}: eye {value!r} is not one of left/right/L/R/OS/OD")
    return EYE_WORDS[word]


def patient_and_eye(rec: dict[str, str], where: str, image_id: str, patient_col: str | None,
                    eye_col: str | None, *, kept_digits: bool = False) -> tuple[str, str]:
    """A row's patient and eye: from its columns, else (each) from a Kaggle-style name (``10_left``).
    ``kept_digits``: :func:`~drgrader.data.eyes.long_ids_kept` of the patient column."""
    eye = eye_of(rec[eye_col], where) if eye_col else ""
    name_patient, named_eye = patient_from_name(image_id)
    if not named_eye and len(said := eyes_named(image_id)) == 1:  # OD_Smith, Smith_RE: predict's reading (probe 56 CT5)
        named_eye = next(iter(said))
    # An eye cell against the name's eye is refused with or without a patient column: a
    # training eye's label is not guessed (predict, which grades, leaves such an eye unknown).
    if eye and named_eye and eye != named_eye:
        raise DataError(f"{where}: eye {eye!r} (column {eye_col!r}) but the name says {named_eye}")
    if patient_col:
        patient = patient_id(rec[patient_col])
        if not patient:
            what = "empty" if not rec[patient_col] else f"{rec[patient_col]!r}, a placeholder for a missing value"
            raise DataError(f"{where}: patient id (column {patient_col!r}) is {what}")
        if damage := spreadsheet_damage(patient, kept_digits=kept_digits):
            raise DataError(f"{where}: patient {patient!r} {damage}")
        # the name's eye where no eye cell says one, as predict reads it (probe 54 CR2: every eye unknown, never
        # paired); a name that another row's patient contradicts leaves it unknown (manifest._note_given_against_names)
        return patient, eye or named_eye
    return name_patient, eye or named_eye


Found = tuple[list[LabelRow], list[ImageFolder], dict[str, int]]


# ----------------------------------------------------------------------- readers

"""Readers of the generic formats, for a data set of one's own: any label CSV (``data.format: csv``,
columns named in ``data.columns``) and one folder per grade (``folders``). Each returns raw label
rows; :mod:`.readers` holds the registry and detection, :mod:`.manifest` validates the rows. The
published data sets' layouts are in :mod:`.published_readers`."""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

from drgrader.config import DataConfig
from drgrader.data.eyes import long_ids_kept
from drgrader.data.grade_columns import (
    grades_in_words,
    name_unread_columns,
    refuse_messidor1_scale,
    refuse_other_grade_columns,
    refuse_referral_label,
    warn_grade_column_names_no_grade,
)
from drgrader.data.input_columns import identifiers_beside_patient, label_identity_columns
from drgrader.data.label_files import (
    DataError,
    Found,
    ImageFolder,
    LabelRow,
    csv_records,
    first_dir,
    grade_value,
    patient_and_eye,
    patient_from_name,
    photo_files,
    read_label_csv,
    shown_path,
    strip_image_extension,
    two_photos_under_one_name,
    where_in,
)
from drgrader.data.patient_columns import (
    eyes_of_rows,
    patients_of_rows,
    refuse_two_people_under_one_id,
    warn_columns_within_patients,
)
from drgrader.grading import GRADE_NAMES

log = logging.getLogger("drgrader")


def _log_patients_from_names(rows: list[LabelRow], what: str) -> None:
    """Say so when a data set without patient ids got them from Kaggle-style names (``10_left``).
    DICOM photos are left out: their headers give them (:mod:`drgrader.data.dicom_labels`)."""
    rows = [row for row in rows if not str(row.path or "").lower().endswith(".dcm")]
    named = sum(row.patient_id != row.image_id for row in rows)
    if named:
        rest = f"; the rest ({len(rows) - named}) are patients of their own" if named < len(rows) else ""
        log.info("%s: no patient column, so patient and eye of %d of %d images are read from names like 10_left "
                 "(as the kaggle format reads them)%s", what, named, len(rows), rest)
    elif rows:  # as predict notes 'no patient': a patient-level split cannot keep such a patient's eyes together
        log.warning("%s: no patient column, and no name gives a patient and eye (e.g. %r): each of the %d photos is a "
                    "patient of its own, so a patient's two eyes may fall on both sides of the split; add a patient_id "
                    "column", what, rows[0].image_id, len(rows))


def read_csv_format(root: Path, cfg: DataConfig) -> Found:
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
    refuse_referral_label(table, file, cols.grade)
    warn_grade_column_names_no_grade(file, cols.grade)
    refuse_messidor1_scale(table, file, cols.grade)
    patient_col, eye_col = label_identity_columns(table.drop(columns=[cols.image, cols.grade]), file, cols.patient, cols.eye)
    # the patient column found by its name too: ids 'V1'..'V4' are no second grading (probe 43 CG5's list)
    refuse_other_grade_columns(table, file, cols.grade, other_read=(cols.image, patient_col, eye_col))
    said = identifiers_beside_patient(file, list(table.columns)) if patient_col else []  # named as not read already
    refuse_two_people_under_one_id(file, table.drop(columns=[c for c in (patient_col,) if c]),  # probe 40 BD6
                                   patients_of_rows(table, patient_col, cols.image), identifiers=said)
    # every column given is used, refused or named (an image_id cell is no claim here, as in predict)
    name_unread_columns(table, file, (cols.image, cols.grade, patient_col, eye_col, *said))
    warn_columns_within_patients(file, table.drop(columns=[c for c in (cols.image, cols.grade, patient_col, eye_col) if c]),
                       patients_of_rows(table, patient_col, cols.image), eyes_of_rows(table, eye_col, cols.image))
    folder = ImageFolder(images)
    kept_digits = patient_col is not None and long_ids_kept(table[patient_col])
    rows = []
    for n, rec in csv_records(table):
        ref = rec[cols.image]
        found = folder.find(ref)
        image_id = (id_in_folder(found, images) if "/" in ref.replace("\\", "/") else None) or strip_image_extension(ref)
        where = where_in(file, n, image_id)
        patient, eye = patient_and_eye(rec, where, image_id, patient_col, eye_col, kept_digits=kept_digits)
        rows.append(LabelRow(where, image_id, found, rec[cols.grade], patient, eye,
                             looked_for=folder.describe(ref), patient_given=patient_col is not None))
    if not patient_col:
        _log_patients_from_names(rows, file)
    return rows, [folder], {}


def id_in_folder(found: Path | None, images: Path) -> str | None:
    """A photo inside the image folder, however the label file spelt its path (absolute, through
    ``../``), is known by its path in that folder, so that its patient is the one its name gives
    there (probe 32 B19: ``/abs/images/10_left.jpeg`` and ``../images/10_right.jpeg`` were two
    patients); None for a photo elsewhere or not found."""
    if found is None:
        return None
    try:
        return found.resolve().relative_to(images.resolve()).with_suffix("").as_posix()
    except ValueError:
        return None


# A grade folder is named by its grade, alone or before a word: "3", "4 proliferative", "0_No_DR".
# Any number with a sign or decimals is matched too ("-0", "+3", "3.0", "02"), so that the grade
# is then read by the label grades' one rule (grade_value), not left out for its spelling.
GRADE_FOLDER = re.compile(r"([+-]?[0-9]+(?:\.[0-9]+)?)(?:[\s_.\-]+(\D.*))?")


def grade_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and GRADE_FOLDER.fullmatch(p.name))


def read_folders(root: Path, cfg: DataConfig) -> Found:
    """One folder per grade: root/<0..4>/**/*.jpg|jpeg|png|tif, subfolders included (``0/clinicB/``);
    a grade folder may carry a word after its grade (``4 proliferative``). The image id is the path
    inside the grade folder (``clinicB/10_left``), so patient and eye come from Kaggle-style names
    per subfolder (two clinics numbering alike stay apart); any other image is its own patient.
    Photos in other folders have no grade: counted and named in a warning (by the manifest), never
    dropped unsaid. A grade folder whose word says another grade (``1 Moderate``), or one inside
    another (``0/2/``), is refused: its photos would take a grade their folder's name contradicts."""
    rows = []
    folders = grade_folders(root)
    refuse_words_against_numbers(root, folders)
    inside: dict[Path, Counter[str]] = {}  # a grade folder -> its photos by the sub-folder they are in
    for grade_dir in folders:
        grade_text = GRADE_FOLDER.fullmatch(grade_dir.name)[1]  # type: ignore[index]
        grade = grade_value(grade_text)
        if grade is None:
            raise DataError(f"{grade_dir}: folder name {grade_dir.name!r} is not a grade in 0..4 (grade {grade_text!r} "
                            "is not one of 0, 1, 2, 3, 4)")
        by_id: dict[str, Path] = {}  # 10_left.jpeg and 10_LEFT.jpeg (or 10_left.png) are one name
        for path in photo_files(grade_dir, recursive=True):
            image_id = path.relative_to(grade_dir).with_suffix("").as_posix()
            if image_id.lower() in by_id:
                raise two_photos_under_one_name(grade_dir, by_id[image_id.lower()], path)
            by_id[image_id.lower()] = path
            patient, eye = patient_from_name(image_id)
            rows.append(LabelRow(shown_path(path, root), image_id, path, str(grade), patient, eye))
        inside[grade_dir] = Counter(path.relative_to(grade_dir).parts[0] for path in by_id.values() if path.parent != grade_dir)
    refuse_grade_folders_inside(root, inside)
    _log_patients_from_names(rows, f"{root} (grade folders)")
    # Photos in other folders, or lying next to the grade folders, have no grade: the manifest
    # counts and names them in one warning, as it does for any data set's unlisted photos.
    return rows, [], {}


def _grade_name(grade: int) -> str:
    return GRADE_NAMES[grade].split(" ", 1)[1]  # "moderate", "severe NPDR"


def refuse_words_against_numbers(root: Path, folders: list[Path]) -> None:
    """A grade folder whose word names another ICDR grade than its number (``1 Moderate``, ``3 PDR``:
    a 4-class or 1-based scheme) would shift every photo in it by a grade, and the referable line
    with them: refused, naming it (probe 58 CV6). A word naming no grade or two (``NPDR``,
    ``severe PDR``) is not judged."""
    wrong = {}  # a folder's name -> what its number and word say
    for folder in folders:
        match = GRADE_FOLDER.fullmatch(folder.name)
        number, named = grade_value(match[1]), set(grades_in_words(match[2] or ""))  # type: ignore[index]
        if number is not None and len(named) == 1 and named != {number}:
            word = named.pop()
            wrong[folder.name] = (f"its number says grade {number} ({_grade_name(number)}), its word says "
                                  f"{_grade_name(word)} ({word})")
    if wrong:
        first, *others = wrong
        more = f" (so do {', '.join(map(repr, others))})" if others else ""
        raise DataError(f"{root}: grade folder {first!r}: {wrong[first]}{more}; the folders are read by their numbers, so their photos would take "
                        "grades of another scale (4 classes, or counted from 1?): rename the folders by their ICDR grade "
                        "(0 none, 1 mild, 2 moderate, 3 severe NPDR, 4 proliferative)")


def refuse_grade_folders_inside(root: Path, inside: dict[Path, Counter[str]]) -> None:
    """A grade folder dropped into another (``0/2/``) gives its photos the outer grade, which its
    name contradicts: refused, naming it (probe 58 CV7). Other sub-folders are read (``0/clinicB/``),
    and numbered ones too when the numbers are no grades: some beyond 0..4 (patients ``0/17/``), one
    bearing its own grade folder's number (batches ``1/1/``), or one number in two grade folders
    (batches ``0/1/``, ``3/1/``)."""
    outer = {folder: grade_value(GRADE_FOLDER.fullmatch(folder.name)[1]) for folder in inside}  # type: ignore[index]
    plain = [(outer[folder], match[1]) for folder, names in inside.items() for name in names
             if (match := GRADE_FOLDER.fullmatch(name)) and not match[2]]
    other_numbering = any(grade_value(number) in (None, grade) for grade, number in plain) or len(plain) > len(
        {number for _, number in plain})
    nested = {}  # "0/2/" -> what its photos would be read as
    for folder, names in inside.items():
        for name, photos in sorted(names.items()):
            match = GRADE_FOLDER.fullmatch(name)
            if match is None or (not grades_in_words(match[2]) if match[2] else other_numbering):
                continue
            grade, given = grade_value(match[1]), outer[folder]
            if grade is not None and given is not None and grade != given:
                nested[f"{folder.name}/{name}/"] = (f"a grade folder inside grade folder {folder.name!r}; its {photos} photos "
                                                    f"would be read as grade {given} ({_grade_name(given)}), not {grade} "
                                                    f"({_grade_name(grade)})")
    if nested:
        first, *others = nested
        more = f" (so is {', '.join(others)})" if others else ""
        raise DataError(f"{root}: {first}: {nested[first]}{more}; move it beside the other grade folders, or rename it "
                        "if its number is no grade (e.g. 'batch 2')")

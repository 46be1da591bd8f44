"""A label file's columns beside the ones read: a second grade column is refused, by its name or
by its values (a second grading, a correction, an adjudication, in numbers or ICDR's words), and
every other column is named; and which CSVs are label files at all (an image and a grade column).
The rules every label-file reader applies (:mod:`.published_readers`, :mod:`.generic_readers`)."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from drgrader.data.label_files import DataError, column_key, grade_value, name_words
from drgrader.data.text_lines import decode_lines

log = logging.getLogger("drgrader")

# The image and grade columns of the label files drgrader reads (kaggle, aptos, idrid, messidor2,
# csv), by column_key: a CSV with one of each is a label file, whatever its name.
_IMAGE_COLUMN_KEYS = {"image", "imageid", "imagename", "imagepath", "idcode", "path", "file", "filename", "img", "photo"}
# A column name's words that make it read as a DR grade: a word starting with one of these
# (``levels``, ``graded``, ``diagnoses``) or one of the short names (``DR``, ``label``)...
_GRADE_WORD_STARTS = ("level", "grade", "grading", "diagnos", "severit", "retinopath")
_GRADE_NAMES = {"dr", "icdr", "icdrs", "rdr", "etdrs", "nsc", "rg", "label", "class", "stage", "consensus", "target",
                "truth", "gt", "outcome", "annotation"}
_GRADE_LETTERS = {"r", "y"}  # a column named R (the UK NSC grade) or y (the ML label), alone
# ... but not who graded or whether it could be (``grader``, ``gradable``), and not a name with
# a word of image quality, macular edema (graded beside DR: IDRiD's "Risk of macular edema",
# Messidor's adjudicated_dme) or a date.
_NOT_GRADE_STARTS = ("grader", "gradab")
_NOT_GRADE_WORDS = ("quality", "macul", "edema", "oedema", "dme", "confidence")
_DATE_NAMES = {"date", "dated", "time", "timestamp", "day"}


def _names_no_dr_grade(name: str) -> bool:
    """A column name with a word of image quality, macular edema or a date (``maculopathy``,
    ``grade_date``): whatever else it says or holds, not a DR grade."""
    return any(w.startswith(_NOT_GRADE_WORDS) or w in _DATE_NAMES for w in name_words(name))


def looks_like_grade(name: str) -> bool:
    """A column name that reads as a DR grade (``grade``, ``level_corrected``, ``level_updated``,
    ``DR grade``, ``label``); not ``grader``, ``image_quality_grade`` or ``grade_date``."""
    words = name_words(name)
    grade = (len(words) == 1 and words[0] in _GRADE_LETTERS) or any(
        w in _GRADE_NAMES or (w.startswith(_GRADE_WORD_STARTS) and not w.startswith(_NOT_GRADE_STARTS)) for w in words)
    return grade and not _names_no_dr_grade(name)


# ICDR severity in words, as a second grader or a report writes it ("Moderate NPDR"; probe 34 AX9).
# The severity word first ("mild non-proliferative" is 1, "severe NPDR" 3); an annotation tool's
# "2 - Moderate" by its digit (probe 35 AY14), and "Grade 2", "None (0)" (probe 36 AZ6).
_GRADE_WORDS = ((re.compile(r"mild"), 1), (re.compile(r"moderate"), 2), (re.compile(r"severe"), 3),
                (re.compile(r"prolif|\bpdr\b"), 4), (re.compile(r"^(?:no(?: apparent)?(?: dr| retinopathy)?|none|normal)$"), 0))
# "Non-proliferative" or "NPDR" names no grade alone (1 to 3): not read as "proliferative" (probe 58 CV6)
_NON_PROLIFERATIVE = re.compile(r"\bnon ?prolif\w*|\bnpdr\b")
_GRADE_AND_LABEL = re.compile(r"^([0-4])\s*[-:.)]\s*\D")
_LABEL_AND_GRADE = re.compile(r"^[^\W\d_][^\d]*?\s*\(?([0-4])\)?$")  # "Grade 2", "Moderate (2)": probe 36 AZ6


def _grade_or_words(cell: str) -> int | None:
    grade = grade_value(cell)
    if grade is not None:
        return grade
    if labelled := _GRADE_AND_LABEL.match(cell.strip()) or _LABEL_AND_GRADE.match(cell.strip()):
        return int(labelled[1])
    named = grades_in_words(cell)
    return named[0] if named else None


def grades_in_words(text: str) -> list[int]:
    """The ICDR grades a text names in words, severity first ("Moderate NPDR": [2], "No_DR": [0],
    "severe PDR": [3, 4], "NPDR": []); spaces, underscores and hyphens alike."""
    text = " ".join(_NON_PROLIFERATIVE.sub(" ", re.sub(r"[\s_\-]+", " ", text.casefold())).split())
    return [g for pattern, g in _GRADE_WORDS if pattern.search(text)]


# A name that says a grading by someone (``grader_2``, ``final``, ``adjudicated``): its grades are a
# second grading however much they differ (probe 37 CA13), where a full column of another name must
# agree on most rows (else a visit or camera number).
_GRADING_WORDS = ("grader", "final", "adjud", "reader", "second", "consensus", "reference", "ophthalm", "specialist", "rater",
                  "annotator", "optometr")  # the last five: probe 38 CB7


# A grader's short name: G2, R2 (grader or reader 2), MD, a nurse's grades (probe 39 CC5).
_GRADER_SHORT = re.compile(r"^(?:[gr][_\- ]?[0-9]|md|nurse)$", re.IGNORECASE)


def _names_a_grading(name: str) -> bool:
    words = name_words(name)  # not a gradability mark: adjudicated_gradable
    return (any(w.startswith(_GRADING_WORDS) for w in words) or bool(_GRADER_SHORT.match(name.strip()))) and not any(
        w.startswith(("gradab", "ungrad")) for w in words)


def _disagreeing_grades(values: pd.Series, read: pd.Series, *, named_grading: bool = False) -> int:
    """How many rows a second grading gives another grade than the column read: a column of grades
    (every cell empty or a grade, three grades or more: not a 0/1 flag) that agrees with the one
    read on most rows, as a second grader or a correction does (a visit or camera number agrees by
    chance only); 0 for a column that is no such thing."""
    cells = values.astype(str).str.strip()
    grades = cells[cells != ""].map(_grade_or_words)
    # Other cells may be an adjudicator's marks ("U", "5" for ungradable; probe 34 BX4, probe 35 BY1):
    # a few of anything, or up to half of one or two marks.
    marks = cells[cells != ""][grades.isna()]
    # Filled only on some rows (a quarter or more empty): an adjudicator's grade where the graders
    # disagreed, which differs wherever it is filled (probe 35 BY1), and may hold only the two grades
    # either side of the referral line (probe 36 BZ1); a full column must agree on most.
    sparse = (cells == "").mean() >= 0.25
    # a 0/1 flag, or one value alone, not grades
    flag = grades.nunique() < 3 and not (sparse and grades.nunique() == 2 and set(grades.dropna()) - {0, 1})
    if grades.empty or flag or not (grades.notna().mean() >= 0.9 or (grades.notna().mean() >= 0.5 and marks.nunique() <= 2)):
        return 0
    grades = grades.dropna()
    differ = grades != read.astype(str).str.strip().map(grade_value).reindex(grades.index)
    return int(differ.sum()) if differ.any() and (sparse or named_grading or differ.mean() <= 0.5) else 0


# A column beside the grade that marks gradability (what Messidor-2's format reads): not read by the
# other formats, so its ungradable photos would count with their grade (probe 35 BY9).
# Also its other spellings: readable, usable, image_ok, excluded (probe 36 BZ2); and a column that
# selects rows (include, keep, in_study, drop: a researcher's way to leave rows out) or judges them
# under other words (adequate, QA, Bildqualitaet: probe 42 CF4).
_GRADABILITY = re.compile(r"gradab|ungrad|qualit|readab|usab|image_?ok|exclu|inclu|adequa|accept|reject|discard|select"
                          r"|in_?study|(?:^|[^a-z])(?:qa|qc|keep|drop|use|used|ok)(?:[^a-z]|$)", re.IGNORECASE)


# A data set's own split, by its cells (train/test words) or by its name and a few values (is_test 0/1,
# fold 1-5): not read, so train draws its own and the user's test rows may be trained on (probe 43 CG3).
_SPLIT_CELLS = {"train", "training", "test", "testing", "val", "valid", "validation", "dev", "holdout", "tune", "trainval",
                "public", "private", "publictest", "privatetest", "development", "held_out", "heldout", "held out",
                "internal", "external", "derivation", "evaluation", "hold out", "validierung", "entwicklung",
                "validacion", "entrenamiento", "prueba", "apprentissage", "entrainement", "testdaten", "trainingsdaten",
                "validierungsdaten", "trainingsset", "testset", "validatie", "treino", "teste", "validacao", "addestramento",
                "trainset", "valset"}  # probe 44 CH2, probe 45 CI2, probe 46 CJ3, probe 47 CK7
_SPLIT_NAMES = {"split", "subset", "partition", "fold", "folds", "usage", "holdout", "test", "train", "cohort", "purpose",
                "dataset", "role", "sample", "kohorte", "cohorte"}
_SPLIT_FILLERS = {"set", "cohort", "data", "split", "sample", "group"}  # "Training set", "Validation cohort"


_MACULAR_WORDS = {"maculopathy", "dme", "csme", "edema", "oedema", "macular"}


def _looks_like_split(header: str, cells: pd.Series) -> bool:
    values = set(cells.str.strip().str.casefold()) - {""}
    words = [set(name_words(v)) - _SPLIT_FILLERS for v in values]
    by_cells = len(values) >= 2 and all(w and (w <= _SPLIT_CELLS or " ".join(sorted(w)) in _SPLIT_CELLS) for w in words)
    return by_cells or bool(set(name_words(header)) & _SPLIT_NAMES and 2 <= len(values) <= 10)


def name_unread_columns(table: pd.DataFrame, file: str, read: Iterable[str | None]) -> None:
    """Say which columns of a label file are not read (INFO), and warn of one that marks
    gradability or gives the data set's own split; a column without a header is named when any
    of its cells holds something (probe 34 BX10)."""
    used = set(read)
    unread = [c for c in table.columns if c not in used
              and not (str(c).startswith("Unnamed:") and not table[c].astype(str).str.strip().ne("").any())]
    if unread:
        log.info("%s: column(s) not read: %s (a label file gives each photo's grade, patient and eye)", file,
                 ", ".join(str(c)[:40] for c in unread[:10]) + (f" and {len(unread) - 10} more" if len(unread) > 10 else ""))
    marks = [c for c in unread if _GRADABILITY.search(str(c))]
    if marks:
        log.warning("%s: column %r looks like a gradability mark or a row selection, which this format does not read: "
                    "every photo counts with its grade; remove the rows of the photos to leave out", file, str(marks[0])[:40])
    if macular := [c for c in unread if set(name_words(str(c))) & _MACULAR_WORDS]:  # probe 44 CH8
        log.warning("%s: column %r (maculopathy, DME) is not read: referable DR here is grade 2 or worse only, so an eye "
                    "referred for maculopathy alone counts as not referable", file, str(macular[0])[:40])
    if splits := [c for c in unread if _looks_like_split(str(c), table[c].astype(str))]:
        log.warning("%s: column %r looks like the data set's own split, which is not read: train and cv draw their own "
                    "by patient, so its test rows may be trained on; to keep it, write it as data.split.file (columns "
                    "image_id, patient_id, split; split one of train, val, test)",
                    file, str(splits[0])[:40])


def refuse_other_grade_columns(table: pd.DataFrame, shown: str, read: str, fmt: str | None = None,
                               other_read: Iterable[str | None] = ()) -> None:
    """A second grade column (``level`` read, ``level_corrected`` beside it) is refused: by its
    name, or by its values (grades 0-4 that differ from the ones read: ``target``, ``ETDRS``, ``R``),
    unless its name says it is no DR grade (``maculopathy``, ``grade_date``): one would be read and
    the other, perhaps the corrected one, dropped unsaid. ``fmt``: the published format, whose grade
    column is fixed; None for the csv format (data.columns.grade)."""
    fix = f"keep one (the {fmt} format reads {read[:40]!r})" if fmt else "remove it, or point data.columns.grade at it"
    for column in table.columns:
        if column == read or column in set(other_read):
            continue
        if looks_like_grade(column):
            raise DataError(f"{shown}: column {column[:40]!r} looks like a grade column but is not the one read "
                            f"({read[:40]!r}); {fix}")
        named = _names_a_grading(column)
        if read in table and not _names_no_dr_grade(column) and (rows := _disagreeing_grades(table[column], table[read],
                                                                                               named_grading=named)):
            raise DataError(f"{shown}: column {column[:40]!r} holds grades 0-4 that differ from the ones read "
                            f"({read[:40]!r}) on {rows} row(s); {fix}")


def looks_like_label_file(path: Path) -> bool:
    """A CSV (or TSV) with an image column and a grade column (``image,level``; ``id_code,diagnosis``) with
    a grade other than 0: Kaggle's ``sampleSubmission.csv`` (``image,level``, every level 0) is a
    template to fill, not labels."""
    try:
        text, _ = decode_lines(path.read_bytes()[:20_000_000])
        rows = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        header = next(rows, [])
        keys = [column_key(cell) for cell in header]
        # A grade column by the rule a second grade column is refused by (corrected_labels.csv's 'label').
        grade = next((k for k, cell in enumerate(header) if looks_like_grade(cell)), None)
        if grade is None or not _IMAGE_COLUMN_KEYS & set(keys):
            return False
        return any(fields[grade].strip() not in ("", "0") for fields in rows if len(fields) > grade)
    except (OSError, csv.Error):
        return False


# A referral or any-DR label (0/1) is no ICDR grade: read as one, every eye with DR would be "mild" (probe 36 BZ6).
_REFERRAL_NAME = re.compile(r"refer|rdr|vtdr|binary|any_?dr|dr_?present|has_?dr|dr_?yes", re.IGNORECASE)  # probe 37 CA3


def refuse_messidor1_scale(table: pd.DataFrame, shown: str, read: str) -> None:
    """Messidor-1's sheet (``Image name, Ophthalmologic department, Retinopathy grade, ...``): its grades
    are 0-3 on its own scale, 3 holding severe NPDR and PDR alike, not ICDR's (probe 37 CA7). Its
    headers in any case or spelling (``retinopathy_grade``; probe 39 CC2)."""
    # its department column is Messidor-1's alone, whatever the grade column is called (probe 40 CD1)
    if any(column_key(c) == "ophthalmologicdepartment" for c in table.columns):
        raise DataError(f"{shown}: this is Messidor-1's sheet, whose {read!r} is 0-3 on its own scale (3: severe "
                        "NPDR and PDR alike), not an ICDR grade 0-4; drgrader reads ICDR grades (Messidor-2's adjudicated "
                        "ones: data.format=messidor2)")
    if column_key(read) != "retinopathygrade":
        return
    if not (set(table[read].astype(str).str.strip()) - {""}) & {"4", "4.0"}:
        log.warning("%s: %r is Messidor-1's header, whose grades are 0-3 on its own scale (3: severe NPDR and PDR alike); "
                    "no grade 4 here: if this is Messidor-1, its grades are not ICDR's", shown, read)


def warn_grade_column_names_no_grade(shown: str, read: str) -> None:
    """The grade column pointed at a column whose name says macular edema, image quality or a date
    (IDRiD's ``Risk of macular edema``, 0-2): its values pass as ICDR grades (a DME risk of 2 read as
    moderate NPDR, referable) and nothing else would say so (probe 47 CK3)."""
    if _names_no_dr_grade(read):
        log.warning("%s: column %r (data.columns.grade) is read as the ICDR DR grade 0-4, but its name says macular "
                    "edema, image quality or a date: if it is not the DR grade, point data.columns.grade at that column",
                    shown, read[:40])


def refuse_referral_label(table: pd.DataFrame, shown: str, read: str) -> None:
    """The grade column pointed at a referral label: named so (``referable``, ``RDR``) and holding
    only 0 and 1. drgrader reads ICDR grades 0-4 and derives referable DR (grade 2 or more) from them."""
    values = set(table[read].astype(str).str.strip()) - {""}
    if _REFERRAL_NAME.search(read) and values <= {"0", "1", "0.0", "1.0"}:
        raise DataError(f"{shown}: column {read[:40]!r} (data.columns.grade) holds only 0 and 1 and its name says a referral "
                        "or any-DR label, not an ICDR grade 0-4 (1 would be read as mild DR): point data.columns.grade at the "
                        "grades; drgrader derives referable DR (grade 2 or more) from them")


"""What ``drgrader predict`` and ``explain`` are given to grade: image files, folders (searched
recursively) and CSVs, as one table of ``path, image_id, patient_id, eye, identity_note``. This
module gathers what the CSV, the DICOM tags and the file name say; :mod:`drgrader.data.identity`
decides patient and eye from it, and notes every conflict."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from drgrader.data.dicom import split_frame_ref
from drgrader.data.identity import IDENTITY_COLUMNS, resolve_identity
from drgrader.data.identity_notes import PATIENT_IN_SOURCES
from drgrader.data.input_files import input_rows, is_photo_file, not_a_photo
from drgrader.data.input_lists import is_pipe, rows_from_list
from drgrader.data.manifest import IMAGE_EXTENSIONS, DataError

log = logging.getLogger("drgrader")

INPUT_COLUMNS = IDENTITY_COLUMNS


def _files_under(folder: Path) -> list[Path]:
    """Every entry under ``folder`` that is not a folder, sorted, through linked folders too (a photo
    store linked in: probe 51 BO7, ``rglob`` left them out without a word), each real folder walked once (a
    link back up the tree is no loop); a folder linked under another name lists its own files under that
    name too (probe 56 BT1: a patient's folder aliased under another patient's name was left out)."""
    found, seen = [], set()
    for here, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(here)
        if real in seen:
            dirs[:] = []
            above = os.path.realpath(os.path.dirname(here))
            if os.path.commonpath([real, above]) == real:  # a link back up the tree: a loop
                continue
            # a folder linked under another name (byname/Smith_John -> ids/1001): its photos are listed
            # under that name too, as the patient its name may say (the resolver notes one photo under two)
        seen.add(real)
        found += [Path(here) / name for name in files]  # a broken link too: its row says why
    return sorted(found)


def collect_inputs(inputs: Sequence[str | Path]) -> pd.DataFrame:
    """Image files, folders (searched recursively for image extensions, and for DICOM files by
    content) and CSVs (an ``image`` or ``path`` column, optional ``image_id``, ``patient_id``/
    ``patient`` and ``eye``: :mod:`.input_columns`) -> a table with ``INPUT_COLUMNS``, one row per
    photo. Patient and eye also come from DICOM tags and from file names (``123_left``,
    ``Patient001_L``, ``P7-OD``), as :mod:`drgrader.data.identity` resolves them. A multi-frame
    DICOM file gives one row per frame (``<file>#frame<N>``). A pipe (``predict <(...)``) is read
as a CSV list (paths relative to the current folder); a list's path written on Windows
(``photos\\10_left.jpeg``) that does not exist is read with ``/``. Every input is used or refused: one
    that gives no photo (an empty folder or CSV, beside others that do) is a DataError naming it;
    a file that cannot be read (even a link loop) is a row whose grading says why."""
    rows: list[dict] = []
    empty: list[str] = []
    given_by: dict[str, str] = {}  # a photo's absolute path -> the list (or DICOM folder) that gave its patient
    for item in inputs:
        path = Path(item)
        before = len(rows)
        if path.is_dir():
            # Every entry with an image extension becomes a row, even a FIFO or a broken link
            # (its row then says why it was not graded); other entries are counted by suffix.
            # Hidden files and folders (macOS's ._ copies, .thumbnails/) are left out, as the
            # label-file reader leaves them, and counted.
            entries, hidden = [], []
            for f in _files_under(path):
                relative = f.relative_to(path)
                (hidden if any(part.startswith(".") for part in relative.parts) else entries).append(relative)
            if hidden:
                log.warning("skipped %d hidden files in %s (a name, or a folder's, beginning with '.': e.g. %s)",
                            len(hidden), path, hidden[0])
            entries = [path / f for f in entries]
            photo = [is_photo_file(f) for f in entries]
            files = [f for f, ok in zip(entries, photo) if ok]
            others = Counter(f.suffix.lower() or "(no suffix)" for f, ok in zip(entries, photo) if not ok)
            if others:
                listing = ", ".join(f"{suffix}: {n}" for suffix, n in sorted(others.items()))
                log.warning("skipped %d files in %s that are not %s images (%s)%s",
                            sum(others.values()), path, "/".join(IMAGE_EXTENSIONS), listing,
                            _list_hint([f for f, ok in zip(entries, photo) if not ok]))
            if not files:
                log.warning("no images (%s) in folder %s", ", ".join(IMAGE_EXTENSIONS), path)
            rows += [row for f in files for row in input_rows(f)]
        elif path.suffix.lower() == ".csv" and path.is_file() or is_pipe(path):
            listed = rows_from_list(path, piped=not path.is_file())
            given_by.update({os.path.abspath(r["path"]): str(path) for r in listed if r["csv_patient"]})
            rows += listed
        elif (why := not_a_photo(path)) is not None:  # a .zip given: refused, not a patient to photograph again
            raise DataError(f"{path}: {why}")
        elif path.exists() or path.is_symlink() or split_frame_ref(path)[1] is not None:
            rows += input_rows(path)  # a broken link or a link loop too: its row says why
        else:
            raise FileNotFoundError(f"input not found: {path}")
        if len(rows) == before:
            empty.append(str(path))
    if empty and rows:  # all empty: the caller's "no images found"
        raise DataError(f"no photos in {', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}: "
                        "an input that gives nothing to grade is refused (remove it from the command)")
    table = resolve_identity(rows)
    # one line per run where patients come from several sources (how each photo's was read); one source alone
    # says nothing new, and an error that follows stays the run's one line
    if len(sources := table.attrs.get("patients_from") or {}) > 1:
        log.info("patients of %d photo(s) read from %s", len(table), ", ".join(f"{where}: {n}" for where, n in sources.items()))
    dicom = {os.path.abspath(r["path"]) for r in rows if r["dicom_patient"] and not r["csv_patient"]}
    _note_patients_of_two_sources(table, given_by, dicom)
    return table


def _dicom_folder(path: str, patient: str) -> str:
    """Where a DICOM header gave ``patient``: the photo's folder, or the folder above it named for
    the patient (an export's ``1001/study/series/`` folders are one source)."""
    own = next((p for p in Path(path).parents if p.name.casefold() == patient.casefold()), Path(path).parent)
    return f"the DICOM headers in {own}"


def _note_patients_of_two_sources(table: pd.DataFrame, given_by: dict[str, str], dicom: set[str]) -> None:
    """A patient id given by two sources (two sites' day lists or DICOM folders, each numbering
    from 1001), or by one and by the names of photos in another folder: one patient as given, but
    as likely two people numbered alike, so noted on each photo (probe 36 AZ12, probe 37 BA12,
    probe 38 BB2), as two folders of named photos are. ``dicom``: the photos whose patient a DICOM
    header gave."""
    absolute = table["path"].map(os.path.abspath)
    folder = absolute.map(os.path.dirname)
    # Only patients with a given photo and two places at least can have two sources (a loop over all is slow).
    given_here = absolute.map(lambda p: p in given_by or p in dicom)
    place = absolute.map(lambda p: given_by.get(p, "")).where(lambda w: w != "", folder)
    by_patient = table["patient_id"]
    known = (by_patient != "") & given_here.groupby(by_patient).transform("any") & (place.groupby(by_patient).transform("nunique") > 1)
    for patient, rows in table.index[known].groupby(table["patient_id"][known]).items():
        where = absolute[rows].map(lambda p: given_by.get(p) or (_dicom_folder(p, patient) if p in dicom else ""))
        given = sorted(set(where) - {""})  # the lists and DICOM folders that give this patient
        others = sorted(set(folder[rows][where == ""]) - set(folder[rows][where != ""]))  # named photos elsewhere
        if not given or len(given) + len(others) < 2:
            continue
        sources = ", ".join([*given, *(f"the photos in {f}" for f in others)])
        note = (f"{PATIENT_IN_SOURCES}: patient {patient!r} is given by {sources}; taken as one patient's eyes (if they "
                "number patients alike, give each site's patients their own ids, e.g. A-1001)")
        for k in rows:
            table.at[k, "identity_note"] = "; ".join(filter(None, (table.at[k, "identity_note"], note)))


def _list_hint(skipped: list[Path]) -> str:
    """The hint for a list of the photos lying among them (``patients.csv`` with an image column),
    skipped with the folder's other files: its patients and eyes are read only when it is given
    (probe 53 BQ9)."""
    for f in skipped:
        if f.suffix.lower() == ".csv" and f.is_file():
            with open(f, encoding="utf-8", errors="replace") as text:
                header = text.readline().casefold()
            if any(word in header for word in ("image", "file", "path", "photo")):
                return (f"; {f.name} looks like a list of photos: to read the patients and eyes it gives, give predict "
                        "the list instead of the folder")
    return ""

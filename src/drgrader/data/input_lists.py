"""A CSV list of photos as ``predict`` and ``explain`` read it (an ``image`` or ``path`` column, and
``image_id``, ``patient_id``, ``eye`` when given: :mod:`.input_columns`): paths relative to the
list, written on Windows or in another case, a piped list, lines an old spreadsheet encoded;
every row used or refused by its number."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import stat
from pathlib import Path

import pandas as pd

from drgrader.data.eyes import EYE_WORDS, long_ids_kept, patient_and_eye, patient_id, placeholder_ids, spreadsheet_damage
from drgrader.data.identity_claims import own_name
from drgrader.data.input_columns import (
    csv_columns,
    identifiers_beside_patient,
    refuse_noted_predictions,
    refuse_other_photo_columns,
)
from drgrader.data.input_files import input_rows, not_a_photo
from drgrader.data.label_files import read_text_table
from drgrader.data.manifest import IMAGE_EXTENSIONS, DataError, strip_image_extension
from drgrader.data.patient_columns import refuse_two_people_under_one_id, warn_columns_within_patients
from drgrader.data.text_lines import DOS_END_OF_FILE, decode_lines, legacy_warning
from drgrader.data.unread_columns import eye_columns, warn_columns_pairing_eyes, warn_eye_columns_not_read
from drgrader.outputs import unescape_name

log = logging.getLogger("drgrader")

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # https://, s3://, file://

# C:\photos\x.jpg, C:/photos/x.jpg, \\server\share\x.jpg: a path on another (Windows) machine.
_WINDOWS_ABSOLUTE = re.compile(r"^([A-Za-z]:[\\/]|\\\\)")


def _resolve_csv_image(folder: Path, ref: str, where: str) -> Path:
    """A CSV cell -> image path: relative to the CSV's folder; a name without extension
    (Kaggle's ``10_left``) gets the image extension that exists, and is refused (``where`` names
    the CSV row) when two do: which photo was meant is not a guess to make."""
    path = Path(ref)
    if not path.is_absolute():
        path = folder / path
    if path.suffix.lower() not in IMAGE_EXTENSIONS and not path.exists():
        found = list(dict.fromkeys(c for c in (path.with_name(path.name + ext) for ext in IMAGE_EXTENSIONS) if c.is_file()))
        if len(found) > 1:
            raise DataError(f"{where}: {ref!r} could be {found[0].name} or {found[1].name}: give the file name with its extension")
        if found:
            return found[0]
    return path  # a missing file becomes a row with "file not found"


def _other_case(path: Path) -> Path | None:
    """The one existing file whose path differs from ``path`` only in case (a list written on
    Windows or macOS, whose file systems match names so); None when there is none, or several
    (``A.jpg`` beside ``a.jpg``: which was meant is not a guess to make)."""
    anchor = Path(path.anchor)
    candidates = [anchor]
    for part in path.parts[len(anchor.parts):]:
        if part in (".", ".."):
            candidates = [c / part for c in candidates]
            continue
        found = []
        for folder in candidates:
            try:
                found += [folder / name for name in os.listdir(folder) if name.lower() == part.lower()]
            except OSError:
                continue
        candidates = found
    files = [c for c in candidates if c.is_file()]
    if not files and path.suffix.lower() not in IMAGE_EXTENSIONS:  # Kaggle's 10_left: with the extension that exists
        files = [f for ext in IMAGE_EXTENSIONS if (f := _other_case(path.with_name(path.name + ext)))]
    return files[0] if len(files) == 1 else None


def _read_pipe(path: Path) -> bytes:
    """A pipe's bytes (``predict <(...)``), read without blocking on a FIFO that has no writer."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)  # a writer's data: wait for it
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def _legacy_name(ref: str) -> str | None:
    """The file name a legacy-encoded line's ``ref`` is, when the file's name is those bytes too
    (an old share's): None when the text has no such spelling."""
    for codec in ("cp1252", "latin-1"):
        try:
            return os.fsdecode(ref.encode(codec))
        except UnicodeEncodeError:
            continue
    return None


def _list_text(csv: Path, piped: bool) -> tuple[str, bool]:
    """A CSV list's text, and whether any line was not UTF-8: such a line is read as an old
    spreadsheet wrote it (:func:`~drgrader.data.text_lines.decode_lines`), warned naming the lines."""
    text, legacy = decode_lines(_read_pipe(csv) if piped else csv.read_bytes())
    if legacy:
        log.warning("%s", legacy_warning(str(csv), legacy))
    return text, bool(legacy)


def is_pipe(path: Path) -> bool:
    """A pipe or FIFO (bash's ``<(...)`` is ``/dev/fd/63``) not named like a photo: a piped list."""
    try:
        return stat.S_ISFIFO(path.stat().st_mode) and path.suffix.lower() not in IMAGE_EXTENSIONS
    except (OSError, ValueError):
        return False


def _patient_of(row: dict) -> str:
    """A listed photo's patient before the resolver weighs the claims: its cell's, its header's, its name's."""
    return row["csv_patient"] or row["dicom_patient"] or (patient_and_eye(own_name(row)) or ("",))[0]


def rows_from_list(csv: Path, piped: bool = False) -> list[dict]:
    """The rows of a CSV list; relative paths are relative to its folder (a piped list's: the
    current folder, where the command that wrote it ran)."""
    text, legacy_lines = _list_text(csv, piped)
    table = read_text_table(text, ",", str(csv))  # probe 37 BA11: "12,345" unquoted shifted every column
    folder = Path() if piped else csv.parent
    columns = csv_columns(csv, list(table.columns))
    image_col, id_col, patient_col, eye_col = (columns[role] for role in ("image", "image_id", "patient", "eye"))
    assert image_col is not None  # csv_columns refuses a CSV without one
    beside = identifiers_beside_patient(csv, list(table.columns))
    refuse_noted_predictions(csv, table)
    refuse_other_photo_columns(csv, table, columns, folder)
    no_digit = placeholder_ids(table[patient_col]) if patient_col else set()
    kept_digits = patient_col is not None and long_ids_kept(table[patient_col])
    if no_digit:
        log.warning("%s: %d patient id(s) stand for none where the others are ids (no digit among numbers, or a negative "
                    "number among positive ones: e.g. %r): read as no patient, each photo a patient of its own (a "
                    "missing-value mark?); write the patient's id if it is one", csv, len(no_digit), sorted(no_digit)[0])
    rows, windows, elsewhere, other_case, from_here, missing, patients, eyes = [], [], [], [], [], [], [], []
    spans: list[tuple[int, int]] = []  # each table row's evidence rows (a multi-frame DICOM file gives several)
    for number, rec in enumerate(table.to_dict("records"), start=1):  # data rows, as label files count them
        binary = next((column for column, value in rec.items() if "\x00" in value), None)
        if binary is not None:  # no file name holds one: a damaged or binary file, not a list to guess from
            raise DataError(f"{csv} row {number}: a NUL byte in the {binary!r} cell (binary data, not a list of photos)")
        end_mark = next((column for column, value in rec.items() if DOS_END_OF_FILE in value), None)
        if end_mark is not None:  # one at the very end was dropped as the file's end: this one is inside it
            raise DataError(f"{csv} row {number}: a DOS end-of-file byte (Ctrl-Z, 0x1A) in the {end_mark!r} cell, "
                            "before the end of the file (two files joined?): remove it")
        ref = rec[image_col].strip()
        if not ref:
            raise DataError(f"{csv} row {number}: empty {image_col!r} cell")
        if _URL.match(ref):  # Path() would read https://x/a.jpg as https:/x/a.jpg, a file not found
            raise DataError(f"{csv} row {number} (image {ref[:80]!r}): a URL, not a file path: download the photos first")
        if patient_col and not rec[patient_col].strip() and (said := next((c for c in beside if rec[c].strip()), None)):
            # The patient would come from the file's name, the identifier beside it dropped: its eyes not paired.
            raise DataError(f"{csv} row {number} (image {ref!r}): no patient in {patient_col!r}, but {said[:40]!r} says "
                            f"{rec[said].strip()[:40]!r}, which is not read: fill {patient_col!r}")
        if patient_col and (damage := spreadsheet_damage(rec[patient_col], kept_digits=kept_digits)):
            raise DataError(f"{csv} row {number} (image {ref!r}): patient {rec[patient_col].strip()!r} {damage}")
        eye = rec[eye_col].strip() if eye_col else ""
        if eye and eye.lower() not in EYE_WORDS:
            raise DataError(f"{csv} row {number} (image {ref!r}): eye {eye!r} is not one of left/right/L/R/OS/OD")
        path = _resolve_csv_image(folder, ref, f"{csv} row {number}")
        if path.is_dir():  # not a photo that could not be read: the patient need not be photographed again
            raise DataError(f"{csv} row {number} (image {ref!r}): a folder, not a photo: give the folder as an argument, "
                            "or list its photos")
        if (why := not_a_photo(path)) is not None:  # an archive or a text file listed: refused as one given is
            raise DataError(f"{csv} row {number} (image {ref!r}): {why}")
        # A list with legacy lines may name a file whose name is those bytes too (an old share's); by
        # row, not line: a quoted cell can span lines.
        if legacy_lines and not path.exists() and (legacy := _legacy_name(ref)) not in (None, ref):
            raw = _resolve_csv_image(folder, legacy, f"{csv} row {number}")
            path, ref = (raw, legacy) if raw.exists() else (path, ref)
        if "\\x" in ref and not path.exists() and unescape_name(ref) != ref:  # a name predict's CSVs spelled \xNN
            unescaped = _resolve_csv_image(folder, unescape_name(ref), f"{csv} row {number}")
            if unescaped.exists():
                path, ref = unescaped, unescape_name(ref)
        if _WINDOWS_ABSOLUTE.match(ref) and os.sep == "/" and not path.exists():
            elsewhere.append(ref)
        elif "\\" in ref and os.sep == "/" and not path.exists():  # a list written on Windows
            posix = _resolve_csv_image(folder, ref.replace("\\", "/"), f"{csv} row {number}")
            if posix.exists():
                windows.append(ref)
                path, ref = posix, ref.replace("\\", "/")
        if not path.exists() and not path.is_symlink() and (match := _other_case(folder / ref.replace("\\", "/"))):
            other_case.append(f"{ref} -> {match.name}")
            windows += [ref] if "\\" in ref else []
            path = match
        if not path.exists() and not path.is_symlink() and not _WINDOWS_ABSOLUTE.match(ref):
            missing.append(ref)
        here = Path(ref)  # probe 36 AZ7: the same relative path from the working folder, another file or the only one
        if not piped and not here.is_absolute() and folder.resolve() != Path.cwd() and here.is_file() and not (
                path.exists() and os.path.samefile(here, path)):
            from_here.append(f"{ref} (read from {path}, not {here.absolute()})" if path.exists() else f"{ref} (not found as {path})")
        id_cell = rec[id_col].strip() if id_col else ""
        first = len(rows)
        rows += input_rows(
            path,
            image_id=id_cell or strip_image_extension(ref),
            patient_id=rec[patient_col].strip() if patient_col and patient_id(rec[patient_col]) not in no_digit else "",
            eye=EYE_WORDS.get(eye.lower(), ""),
            csv_image_id=id_cell,  # a claim checked against the file's own name, as the patient and eye cells are
        )
        patients.append(_patient_of(rows[first]))
        eyes.append(rows[first]["csv_eye"] or (patient_and_eye(own_name(rows[first])) or ("", ""))[1])
        spans.append((first, len(rows)))
    # Each row's patient as given, by a DICOM header or by the photo's name (probe 40 BD5, probe 41 BE9)
    refuse_two_people_under_one_id(csv, table.drop(columns=[c for c in (patient_col, id_col) if c]),
                                   pd.Series(patients, index=table.index), identifiers=beside)
    unread = table.drop(columns=[c for c in (image_col, patient_col, eye_col, id_col) if c])
    as_read, eyes_read = pd.Series(patients, index=table.index), pd.Series(eyes, index=table.index)
    noted = warn_columns_within_patients(csv, unread, as_read, eyes_read)
    for k, note in noted.items():  # into identity_note, as the resolver's own notes (probe 44 BH9)
        for row in rows[slice(*spans[table.index.get_loc(k)])]:
            row["notes"] = (*row.get("notes", ()), note)
    found = eye_columns(unread)  # probe 58 BV8: R and L in a column not read
    warn_eye_columns_not_read(csv, unread, found, eyes_read, table[image_col].str.strip(), eye_col=eye_col)
    warn_columns_pairing_eyes(csv, unread, as_read, eyes_read, table[image_col].str.strip(), found)
    if windows:
        log.warning("%s: %d image path(s) written with backslashes (Windows) read with '/' (e.g. %s)", csv, len(windows), windows[0])
    if other_case:
        log.warning("%s: %d image path(s) found under a name that differs only in case (e.g. %s), as Windows and macOS "
                    "match names", csv, len(other_case), other_case[0])
    if from_here:
        log.warning("%s: %d image path(s) are read relative to the list's folder, and the working folder holds a file of "
                    "that path too (e.g. %s): write the paths relative to the list, or absolute", csv, len(from_here), from_here[0])
    if eyed := [c for c in (table[patient_col] if patient_col else ()) if patient_and_eye(c.strip())]:  # probe 41 BE5
        log.warning("%s: %d patient cell(s) name an eye too (e.g. %r): each eye is read as a patient of its own and not "
                    "paired; write the patient's id alone and the eye in an eye column", csv, len(eyed), eyed[0].strip())
    if missing:  # probe 39 BC3: said at INFO only, even when no photo was found
        log.warning("%s: %d of %d listed photo(s) not found (e.g. %s%s): their rows say 'file not found'", csv, len(missing),
                    len(table), missing[0], _other_extension(folder / missing[0]) or _in_a_folder_beside(folder, missing[0]))
    if elsewhere:
        log.warning("%s: %d image path(s) name a Windows drive or network share (e.g. %s), which this machine cannot "
                    "open: their rows say 'file not found'; write the paths as they are here (or relative to the list)",
                    csv, len(elsewhere), elsewhere[0])
    return rows


def _other_extension(path: Path) -> str:
    """The hint for a listed photo not found when its folder holds the name with another extension."""
    stem = strip_image_extension(path.name).lower()
    others = [f.name for f in (path.parent.iterdir() if path.parent.is_dir() else ())
              if f.suffix.lower() in IMAGE_EXTENSIONS and strip_image_extension(f.name).lower() == stem]
    return f"; {others[0]} has another extension: list it so if it is that photo" if others else ""


def _in_a_folder_beside(folder: Path, listed: str) -> str:
    """The hint for a listed photo not found when a folder beside the list holds it (a data set's
    label file, its photos in ``images/``, given to predict: probe 53 BQ7)."""
    name = Path(listed).name
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for found in (sub / name, *(sub / f"{name}{ext}" for ext in IMAGE_EXTENSIONS)):
            if found.is_file():
                return (f"; {found.relative_to(folder).as_posix()} is beside the list: a data set's label file? A list "
                        "names each photo by its path from the list's folder (or give predict the photos' folder)")
    return ""


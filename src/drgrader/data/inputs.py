"""What ``drgrader predict`` and ``explain`` are given to grade: image files, folders (searched
recursively) and CSVs, as one table of ``path, image_id, patient_id, eye, identity_note``. This
module gathers what the CSV, the DICOM tags and the file name say; :mod:`drgrader.data.identity`
decides patient and eye from it, and notes every conflict."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import stat
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from PIL import Image

from drgrader.data.dicom import frame_ref, header_or_none, is_dicom, split_frame_ref
from drgrader.data.eyes import EYE_WORDS, long_ids_kept, patient_and_eye, patient_id, placeholder_ids, spreadsheet_damage
from drgrader.data.identity import IDENTITY_COLUMNS, resolve_identity
from drgrader.data.identity_claims import evidence
from drgrader.data.identity_notes import PATIENT_IN_SOURCES
from drgrader.data.images import PARTIAL_DOWNLOADS, UNREAD_PHOTO_FORMATS
from drgrader.data.input_columns import (
    csv_columns,
    identifiers_beside_patient,
    refuse_noted_predictions,
    refuse_two_people_under_one_id,
)
from drgrader.data.label_files import read_text_table
from drgrader.data.manifest import IMAGE_EXTENSIONS, DataError, strip_image_extension
from drgrader.data.text_lines import DOS_END_OF_FILE, decode_lines, legacy_warning
from drgrader.outputs import unescape_name

log = logging.getLogger("drgrader")

INPUT_COLUMNS = IDENTITY_COLUMNS


def input_rows(path: Path, image_id: str | None = None, patient_id: str = "", eye: str = "",
               csv_image_id: str = "") -> list[dict]:
    """The evidence rows of one input file (:func:`~drgrader.data.identity.evidence`): the CSV's
    ``patient_id`` and ``eye`` when given, the DICOM tags (``PatientID``, ``ImageLaterality`` /
    ``Laterality``). A multi-frame DICOM file gives one row per frame: path ``<file>#frame<N>``,
    image id ``<id>#frame<N>``. :func:`~drgrader.data.identity.resolve_identity` makes them a table."""
    image_id = image_id or path.stem
    source, frame = split_frame_ref(path)
    header = header_or_none(source)  # unreadable: its row says why when it is graded
    frames = header.frames if header is not None and frame is None else 1
    if not csv_image_id and (target := _linked_photo(source)) is not None:
        # A link named for one patient to another's photo (a link farm off by one; probe 34 AX15):
        # the link's name is a claim against the photo's own, as a CSV's image id cell is.
        source, csv_image_id = target, path.stem
    row = evidence(path, image_id, source, csv_image_id=csv_image_id, csv_patient=patient_id, csv_eye=eye,
                   dicom_patient=header.patient_id if header else "",
                   dicom_laterality=header.laterality if header else ())
    if frames == 1:
        return [row]
    return [{**row, "path": frame_ref(path, k), "image_id": f"{image_id}#frame{k}"} for k in range(1, frames + 1)]


def _linked_photo(path: Path) -> Path | None:
    """The photo a symbolic link points at when the target's name says another patient or eye
    than the link's; None otherwise (not a link, or a name saying nothing)."""
    if not path.is_symlink():
        return None
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None  # a loop or a dangling link: a row with its reason when graded
    named, linked = patient_and_eye(target.stem), patient_and_eye(path.stem)
    return target if named is not None and named != linked else None


def _is_photo_file(path: Path) -> bool:
    """A photo by its extension (a stray space after it forgiven: ``10_left.jpeg ``), or a DICOM
    file by its content (exports often lack ``.dcm``; a DICOMDIR index holds no image)."""
    # A photo format drgrader does not read is a row saying so, so that its eye counts as not graded
    # (probe 34 AX17: its patient was decided on the other eye, "the only photo").
    if path.suffix.lower().strip() in (*IMAGE_EXTENSIONS, *UNREAD_PHOTO_FORMATS, *PARTIAL_DOWNLOADS):
        return True
    return path.name.upper() != "DICOMDIR" and is_dicom(path)


_ARCHIVES = ((b"PK\x03\x04", "a ZIP archive"), (b"PK\x05\x06", "a ZIP archive"), (b"\x1f\x8b", "a gzip archive"),
             (b"Rar!", "a RAR archive"), (b"7z\xbc\xaf", "a 7-Zip archive"), (b"BZh", "a bzip2 archive"))


def not_a_photo(path: Path) -> str | None:
    """Why a file given by name is not a photo to grade (``"not a photo (a ZIP archive): unpack it
    first"``), or None: a file named like a photo (a damaged one is a row saying why), a DICOM
    file, or one Pillow can identify whatever its name is a photo."""
    if not path.is_file() or _is_photo_file(path):
        return None
    try:
        with Image.open(path):
            return None
    except (OSError, ValueError, Image.DecompressionBombError):
        pass
    with open(path, "rb") as fh:
        head = fh.read(512)
    kind = next((what for magic, what in _ARCHIVES if head.startswith(magic)), None)
    if kind is None and head[257:262] == b"ustar":
        kind = "a tar archive"
    if kind is not None:
        return f"not a photo ({kind}): unpack it first"
    return (f"not a photo (a {path.suffix.lower() or 'file without an extension'}{' file' if path.suffix else ''}): "
            f"give photos ({', '.join(IMAGE_EXTENSIONS)}), folders or CSV lists")


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


def _is_pipe(path: Path) -> bool:
    """A pipe or FIFO (bash's ``<(...)`` is ``/dev/fd/63``) not named like a photo: a piped list."""
    try:
        return stat.S_ISFIFO(path.stat().st_mode) and path.suffix.lower() not in IMAGE_EXTENSIONS
    except (OSError, ValueError):
        return False


def _rows_from_csv(csv: Path, piped: bool = False) -> list[dict]:
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
    refuse_two_people_under_one_id(csv, table, patient_col)
    no_digit = placeholder_ids(table[patient_col]) if patient_col else set()
    kept_digits = patient_col is not None and long_ids_kept(table[patient_col])
    if no_digit:
        log.warning("%s: %d patient id(s) stand for none where the others are ids (no digit among numbers, or a negative "
                    "number among positive ones: e.g. %r): read as no patient, each photo a patient of its own (a "
                    "missing-value mark?); write the patient's id if it is one", csv, len(no_digit), sorted(no_digit)[0])
    rows, windows, elsewhere, other_case, from_here, missing = [], [], [], [], [], []
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
        rows += input_rows(
            path,
            image_id=id_cell or strip_image_extension(ref),
            patient_id=rec[patient_col].strip() if patient_col and patient_id(rec[patient_col]) not in no_digit else "",
            eye=EYE_WORDS.get(eye.lower(), ""),
            csv_image_id=id_cell,  # a claim checked against the file's own name, as the patient and eye cells are
        )
    if windows:
        log.warning("%s: %d image path(s) written with backslashes (Windows) read with '/' (e.g. %s)", csv, len(windows), windows[0])
    if other_case:
        log.warning("%s: %d image path(s) found under a name that differs only in case (e.g. %s), as Windows and macOS "
                    "match names", csv, len(other_case), other_case[0])
    if from_here:
        log.warning("%s: %d image path(s) are read relative to the list's folder, and the working folder holds a file of "
                    "that path too (e.g. %s): write the paths relative to the list, or absolute", csv, len(from_here), from_here[0])
    if missing:  # probe 39 BC3: said at INFO only, even when no photo was found
        log.warning("%s: %d of %d listed photo(s) not found (e.g. %s%s): their rows say 'file not found'", csv, len(missing),
                    len(table), missing[0], _other_extension(folder / missing[0]))
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
            for f in sorted(f for f in path.rglob("*") if not f.is_dir()):
                relative = f.relative_to(path)
                (hidden if any(part.startswith(".") for part in relative.parts) else entries).append(relative)
            if hidden:
                log.warning("skipped %d hidden files in %s (a name, or a folder's, beginning with '.': e.g. %s)",
                            len(hidden), path, hidden[0])
            entries = [path / f for f in entries]
            photo = [_is_photo_file(f) for f in entries]
            files = [f for f, ok in zip(entries, photo) if ok]
            others = Counter(f.suffix.lower() or "(no suffix)" for f, ok in zip(entries, photo) if not ok)
            if others:
                listing = ", ".join(f"{suffix}: {n}" for suffix, n in sorted(others.items()))
                log.warning("skipped %d files in %s that are not %s images (%s)",
                            sum(others.values()), path, "/".join(IMAGE_EXTENSIONS), listing)
            if not files:
                log.warning("no images (%s) in folder %s", ", ".join(IMAGE_EXTENSIONS), path)
            rows += [row for f in files for row in input_rows(f)]
        elif path.suffix.lower() == ".csv" and path.is_file() or _is_pipe(path):
            listed = _rows_from_csv(path, piped=not path.is_file())
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



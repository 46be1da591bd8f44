"""The columns ``drgrader predict`` reads from a CSV of photos (and the data-set readers from a
label file: its patient and eye), and the refusal of the columns they would otherwise drop
without a word.

Read: the photo (``image`` or ``path``), its id (``image_id``), the patient (``patient_id`` or
``patient``) and the eye (``eye``), whatever their case and separators (``Patient ID``,
``PATIENT-ID``). Any other column is named in one log line as not read, unless it looks like one
of these (a misspelling such as ``imgae`` or ``pateint``, a plural, a qualified name such as
``image_path`` or ``patient_no``, a common synonym such as ``filename`` or ``laterality``, an
identifier a clinic gives its patients under such as ``MRN``, ``case_id`` or ``Patient Name``), or
two columns name the same thing (``image`` and ``path``): then the CSV is refused, naming the
column, since grading without it would silently take patients and eyes from the file names instead.
Beside the patient column itself, a column that looks like it (a hospital number beside the
screening id) is no such risk: it is named as not read.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from difflib import SequenceMatcher
from pathlib import Path

import pandas as pd

from drgrader.data.identity_notes import NOTE_KINDS
from drgrader.data.label_files import (  # not .manifest: its readers use this module
    IMAGE_EXTENSIONS,
    DataError,
    column_key,
    separator_hint,
)

log = logging.getLogger("drgrader")

KNOWN = {  # what a column gives -> the names it may have
    "image": ("image", "path"),
    "image_id": ("image_id",),
    "patient": ("patient_id", "patient"),
    "eye": ("eye",),
}
_QUALIFIERS = {  # a known name with one of these before or after it looks like it
    # and a wide list's second photo column ("image_right", "second_image"; probe 39 BC6)
    "image": ("path", "file", "filename", "name", "ref", "url", "left", "right", "od", "os", "second", "other", "eye"),
    "image_id": (),
    "patient": ("id", "no", "nr", "number", "code", "ref", "name", "mrn"),
    "eye": ("side", "laterality", "lr"),
}
# Identifiers a clinic's export gives its patients under (a record number, a case, a name): a list
# with one is refused, not graded photo by photo, since its two eyes would not be paired.
_PATIENT_IDENTIFIERS = ("pid", "subject", "subjectid", "mrn", "mrno", "mrnumber", "medicalrecordnumber", "recordnumber",
                        "recordno", "hospitalnumber", "hospitalno", "chartnumber", "chartno", "case", "caseid", "caseno",
                        "casenumber", "participant", "participantid", "person", "personid", "patientname",
                        # a study's participant, the NHS number, Australia's unit record number (probe 36 BZ5)
                        "study", "studyid", "studyno", "studynumber", "patno", "patnr", "patid", "nhs", "nhsnumber",
                        "nhsno", "ur", "urn", "urno", "urnumber", "eid",
                        # a hand-made list's bare ID, a hospital number, national ids (probe 37 BA5, CA2)
                        "id", "hn", "hospitalid", "ic", "icno", "nric", "nhi", "cpr",
                        # a name, a family's, an exam's accession number (one visit: both eyes; probe 38 BB5)
                        "fullname", "surname", "familyname", "familyid", "accession", "accessionno", "accessionnumber",
                        # the medical abbreviation, German, French, Indonesian, a practice's client (probe 56 BT5)
                        "pt", "ptid", "ptno", "ptnr", "ptnumber", "patientennummer", "patientnummer", "dossier",
                        "dossierno", "client", "clientid", "clientno", "kodepasien", "nopasien", "idpasien")
_SYNONYMS = {"file": "image", "filename": "image", "filepath": "image", "img": "image", "imgpath": "image",
             "photo": "image", "fundus": "image", "side": "eye", "laterality": "eye",
             "whicheye": "eye", "odos": "eye", "auge": "eye", "oeil": "eye", "ojo": "eye", "occhio": "eye",
             # a side in German, Spanish, Italian, Latin's eye, Portuguese and Dutch (probe 57 CU4)
             "seite": "eye", "augenseite": "eye", "lado": "eye", "lato": "eye", "oculus": "eye", "olho": "eye", "oog": "eye",
             "lateralidad": "eye", "lateralidade": "eye"} | dict.fromkeys(_PATIENT_IDENTIFIERS, "patient")
_CLOSE = 0.8  # difflib ratio from which a name is a misspelling of a known one (images, imgae, pateint)


_squash = column_key  # one rule for looking columns up and for a column named twice


def _looks_like(squashed: str) -> str | None:
    """The known column ``squashed`` looks like, or None."""
    if squashed in _SYNONYMS:
        return _SYNONYMS[squashed]
    for role, names in KNOWN.items():
        for known in map(_squash, names):
            qualified = {known + q for q in _QUALIFIERS[role]} | {q + known for q in _QUALIFIERS[role]}
            if squashed in qualified or (len(squashed) < 40 and SequenceMatcher(None, squashed, known).ratio() >= _CLOSE):
                return role
    return None


def _names(role: str) -> str:
    return " or ".join(repr(n) for n in KNOWN[role])


def _roles(csv: Path | str, headers: Sequence[str]) -> tuple[dict[str, list[str]], list[tuple[str, str]], list[str]]:
    """The headers of each known column, the (header, role) of those that only look like one, and
    the patient look-alikes set aside as not read, since the patient column itself is there (an
    ``MRN`` beside ``patient_id``: the patients are read, nothing is taken from file names)."""
    found: dict[str, list[str]] = {role: [] for role in KNOWN}
    lookalikes: list[tuple[str, str]] = []  # (header, the role it looks like)
    by_squash = {_squash(n): role for role, names in KNOWN.items() for n in names}
    for header in headers:
        duplicate = re.fullmatch(r"(.*)\.[0-9]+", header)  # pandas renames a second 'image' to 'image.1'
        if duplicate and duplicate[1] in headers:
            raise DataError(f"{csv}: column {duplicate[1][:40]!r} appears twice; keep one")
        role = by_squash.get(_squash(header))
        if role is not None:
            found[role].append(header)
        elif (like := _looks_like(_squash(header))) is not None:
            lookalikes.append((header, like))
    beside = [h for h, like in lookalikes if like == "patient" and found["patient"]]
    return found, [(h, like) for h, like in lookalikes if h not in beside], beside


def _one_each(csv: Path | str, found: dict[str, list[str]], roles: Sequence[str]) -> dict[str, str | None]:
    for role in roles:
        if len(found[role]) > 1:
            listing = " and ".join(repr(h[:40]) for h in found[role])
            raise DataError(f"{csv}: columns {listing} both give the {role.replace('_', ' ')}; keep one")
    return {role: (found[role][0] if found[role] else None) for role in roles}


def csv_columns(csv: Path, headers: Sequence[str]) -> dict[str, str | None]:
    """The header of each known column of ``csv`` (None where absent); a DataError naming the
    column when one looks like a known column without being one, or two name the same thing."""
    found, lookalikes, _ = _roles(csv, headers)  # the patient look-alikes set aside: named below as not read
    if not found["image"]:
        hint = next((f"; rename {h[:40]!r} if it is the photo" for h, like in lookalikes if like == "image"), "")
        hint = hint or separator_hint(list(headers))
        raise DataError(f"{csv}: needs an 'image' or 'path' column (has {list(headers)[:20]}){hint}")
    if lookalikes:
        header, like = lookalikes[0]
        raise DataError(f"{csv}: column {header[:40]!r} looks like the {like.replace('_', ' ')} column but is not one "
                        f"predict reads ({_names(like)}); rename or remove it")
    columns = _one_each(csv, found, list(KNOWN))
    unread = [h for h in headers if h not in columns.values() and not h.startswith("Unnamed:")]
    if unread:  # not refused, but said: every column given is used, refused or named
        log.info("%s: column(s) not read: %s (predict reads %s)", csv, ", ".join(h[:40] for h in unread[:10]) +
                 (f" and {len(unread) - 10} more" if len(unread) > 10 else ""),
                 ", ".join("/".join(names) for names in KNOWN.values()))
    return columns


def identifiers_beside_patient(csv: Path | str, headers: Sequence[str]) -> list[str]:
    """The patient look-alikes (``MRN``, ``Patient Name``) of a CSV that has the patient column
    itself: not read, so a row whose patient cell is empty must not leave its patient to them."""
    return _roles(csv, headers)[2]


def _label_roles(labels: str, headers: Sequence[str], roles: Sequence[str]) -> dict[str, str | None]:
    """The patient and eye columns (``roles``) of a label file, found by the same names as
    predict's, whatever their case (``Patient ID``, ``EYE``); None where absent. A column that
    looks like one (``patient_no``, ``laterality``) is refused by name: a patient-level split
    without it would put one patient on both sides. The label file's image and grade columns
    are set by its format, so only ``roles`` are looked for."""
    found, lookalikes, beside = _roles(labels, headers)
    for header, like in lookalikes:
        if like in roles:
            raise DataError(f"{labels}: column {header[:40]!r} looks like the {like} column but is not one the label "
                            f"reader reads ({_names(like)}); rename it, or name it in data.columns.{like}")
    columns = _one_each(labels, found, roles)
    if beside and "patient" in roles:
        log.info("%s: column(s) not read: %s (the patient is read from %r)", labels,
                 ", ".join(h[:40] for h in beside), columns["patient"])
    return columns


def label_identity_columns(table: pd.DataFrame, file: str, patient: str | None = None,
                           eye: str | None = None) -> tuple[str | None, str | None]:
    """The patient and eye columns of a label table: the configured ones, else those found
    under predict's names (``patient_id``, ``Patient ID``, ``EYE``); look-alikes refused."""
    roles = [role for role, given in (("patient", patient), ("eye", eye)) if not given]
    headers = [h for h in table.columns if h not in (patient, eye)]
    found = _label_roles(file, headers, roles) if roles else {}
    return patient or found.get("patient"), eye or found.get("eye")


def refuse_identity_columns(table: pd.DataFrame, file: str, fmt: str) -> None:
    """A published layout whose patients come from elsewhere: a patient or eye column added to
    its label file would be ignored, so it is refused (the csv format reads it)."""
    for column in label_identity_columns(table, file):
        if column is not None:
            raise DataError(f"{file}: column {column[:40]!r} is not read by the {fmt} format, whose patients and "
                            "eyes come from its own layout; remove it, or read the file with data.format=csv "
                            "(data.labels, data.images, data.columns)")


def _names_a_photo(folder: Path | None, cell: str) -> bool:
    """A cell names a photo: by its extension, or (``IMG_6``, as the image column may give it) a
    photo of that name beside the list (probe 41 BE3)."""
    if cell.lower().endswith(IMAGE_EXTENSIONS):
        return True
    return folder is not None and any((folder / f"{cell}{ext}").is_file() for ext in IMAGE_EXTENSIONS[:4])


def refuse_other_photo_columns(csv: Path | str, table: pd.DataFrame, columns: dict[str, str | None],
                               folder: Path | None = None) -> None:
    """A column predict does not read whose cells name photos (``right_eye_image``, ``photo_right``,
    ``right`` beside ``image``: a list with one row per patient): its photos would be dropped and
    the patient decided on the other one, "the only photo" (probe 39 BC6, probe 40 BD3). ``folder``:
    where the list's relative paths are read from."""
    for header in table.columns:
        if header in columns.values():
            continue
        cells = table[header].str.strip()
        cells = cells[cells != ""]
        own = table.loc[cells.index, columns["image"]].map(lambda ref: Path(ref.strip()).stem)  # the row's own photo again
        named = cells[cells.map(lambda cell: _names_a_photo(folder, cell)) & (cells.map(lambda cell: Path(cell).stem) != own)]
        if len(named) and len(named) * 2 >= len(cells):
            raise DataError(f"{csv}: column {header[:40]!r} names photos too ({Path(named.iat[0]).name[:60]!r}), but predict reads one "
                            f"photo per row, from {columns['image']!r}: list each photo on its own row (image, patient_id, "
                            "eye), or remove the column")


# drgrader's own identity notes begin with their kind: "one patient in two folders: ...".
_NOTE = re.compile(rf"^(?:{'|'.join(map(re.escape, NOTE_KINDS))}): ")


def refuse_noted_predictions(csv: Path | str, table: pd.DataFrame) -> None:
    """A predictions file drgrader wrote (or a copy of it), given back as a list: its patients and
    eyes would be taken as given and the notes on how they were resolved lost (probe 39 BC8). Its
    notes are known by their words in whatever column (probe 40 BD4, probe 41 BE4: renamed)."""
    for column in table.columns:
        noted = table.index[table[column].str.match(_NOTE)]
        if len(noted):
            first = noted[0]
            raise DataError(f"{csv} carries the identity notes of a drgrader run on {len(noted)} of its rows "
                            f"(row {first + 1}: {table.at[first, column][:120]!r}): read as a list, its patients and "
                            "eyes would be taken as given and those notes lost; give the photos or the list that run read")

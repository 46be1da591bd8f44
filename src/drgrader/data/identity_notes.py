"""The identity notes' vocabulary (each note in ``identity_note`` begins with its kind) and the
one console summary of them: what :mod:`drgrader.data.identity` writes (the eye counts' notes here), and what ``predict``,
``serve`` and :func:`drgrader.api.grade` count and warn about."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from drgrader.data.dicom import BIRTH_YEAR, VISIT_TAG
from drgrader.data.eyes import VISIT_WORD, eye_of_folder, visit_folder
from drgrader.data.identity_claims import VISIT_FOLDER

log = logging.getLogger("drgrader")

# The kinds of note, as each note begins (the console summary counts them).
CONTRADICTORY_EYE = "contradictory eye"
CONTRADICTORY_PATIENT = "contradictory patient"
BOTH_EYES_IN_NAME = "both eyes in the name"
SAME_NAME_IN_FOLDERS = "same eye in two folders"
EYES_IN_FOLDERS = "one patient in two folders"
PATIENT_IN_SOURCES = "one patient from two sources"
SEVERAL_PHOTOS_OF_ONE_EYE = "several photos of one eye"
SAME_PHOTO_AS_TWO_EYES = "one photo as two eyes"
SAME_PHOTO_UNDER_TWO_PATIENTS = "same photo under two patients"
ONE_FILE = "one file's bytes"  # how byte copies are one picture (note_same_pictures takes others)
LOOKALIKE_PATIENTS = "lookalike patients"
NO_PATIENT = "no patient"
NO_EYE = "no eye"
IMAGE_ID_REPEATED = "image id repeated"
TWO_PEOPLE = "two people under one id"
TWO_VISITS = "two visits under one id"
TWO_VALUES = "two values under one id"  # a list's column not read (patient_columns.warn_columns_within_patients)
DATE_AS_PATIENT = "a date or visit as the patient"
PATIENT_FOLDER = "a patient's folder?"
VISIT_FOLDER_READ = "a visit's folder"
FOLDER_TWO_PATIENTS = "one folder, two patients"
NOTE_KINDS = [TWO_PEOPLE, TWO_VISITS, TWO_VALUES, DATE_AS_PATIENT, PATIENT_FOLDER, VISIT_FOLDER_READ, FOLDER_TWO_PATIENTS, CONTRADICTORY_EYE, CONTRADICTORY_PATIENT, BOTH_EYES_IN_NAME, SAME_NAME_IN_FOLDERS, EYES_IN_FOLDERS, PATIENT_IN_SOURCES,
              SEVERAL_PHOTOS_OF_ONE_EYE, SAME_PHOTO_AS_TWO_EYES, SAME_PHOTO_UNDER_TWO_PATIENTS, LOOKALIKE_PATIENTS,
              NO_PATIENT, NO_EYE, IMAGE_ID_REPEATED]


def note_kinds(note: str) -> set[str]:
    """The kinds (:data:`NOTE_KINDS`) of the notes in one photo's ``identity_note``."""
    parts = note.split("; ")  # each note begins a part: '<kind>: ...'
    return {kind for kind in NOTE_KINDS if any(part.startswith(kind + ":") for part in parts)}


def identity_summary(notes: pd.Series) -> str:
    """One line counting the photos of each kind of note ('' when there is none)."""
    kinds = [note_kinds(str(n)) for n in notes.fillna("")]
    counts = [(kind, sum(kind in of_photo for of_photo in kinds)) for kind in NOTE_KINDS]
    listed = ", ".join(f"{kind} {n}" for kind, n in counts if n)
    if not listed:
        return ""
    noted = sum(str(n) != "" for n in notes.fillna(""))
    return f"identity of {noted} of {len(kinds)} photos resolved with a note ({listed})"


def warn_identity(table: pd.DataFrame, where: str = "") -> None:
    """The one console warning summing up the identity notes of ``table`` (``where``: the file whose
    identity_note column holds them; explain, which writes none, says its own: probe 58 BV12)."""
    summary = identity_summary(table["identity_note"]) if "identity_note" in table else ""
    if summary:
        log.warning("%s; see identity_note%s", summary, f" in {where} and its patients file" if where else "")


# A patient id that is a whole date, perhaps with a time: 20230502, 2023-05-02, 2023_05_02_101530, 02.05.2023;
# or a visit's word, as a visit's folder is named (Baseline, visit1, FU1, V1, BL, M12, T0: photos named
# `Baseline_L.jpg`; probe 49 BM7, probe 53 BQ1), but a lone letter.
DATE_ID = re.compile(r"^(?:19|20)\d\d([-_.]?)(?:0[1-9]|1[0-2])\1(?:0[1-9]|[12]\d|3[01])(?:[-_T ]?\d{4}(?:\d\d)?)?$"
                      r"|^(?:0?[1-9]|[12]\d|3[01])([-_.])(?:0?[1-9]|1[0-2])\2(?:19|20)\d\d$"
                      rf"|^(?=..){VISIT_WORD}$", re.IGNORECASE)


def note_date_patients(table: pd.DataFrame, notes: list[list[str]]) -> None:
    """Patients whose id is a date or a visit (probe 47 BK10, probe 46 BJ7, probe 49 BM7): kept, each
    photo noted, since one day's or visit's photos, perhaps of several people, are then one patient's eyes."""
    for k in table.index[table["patient_id"].astype(str).str.match(DATE_ID)]:
        notes[k].append(f"{DATE_AS_PATIENT}: patient {table.at[k, 'patient_id']!r} reads as a date or a visit (photos "
                        "named by day or visit?): the photos of one day or visit are taken as one patient's; if they "
                        "are several people's, give the patients in a CSV")


def _number(name: str) -> str:
    return re.sub(r"\D", "", name).lstrip("0")


# A patient's number: 1001, P7, PT12, ID-17, Patient1001, 1001 Smith (not site3, cam2, day1: probe 52 BP3)
_PATIENT_LIKE = re.compile(r"^[A-Za-z]{0,2}[-_ ]?\d+$|\d{3,}")
# A camera's counter read as the patient (IMG_0001_L, DSC_0042_R: probe 52 BP2), never a patient's id
# Design rule for Camera File system (DCF) names and their vendors' prefixes: Canon IMG_/_MG_, Nikon DSC_/DSCN,
# Fujifilm DSCF, Pentax IMGP, Casio CIMG, Samsung SAM_ (probe 56 CT2; not Panasonic's P + 7 digits: a record number too)
_CAMERA_COUNTER = re.compile(r"^(?:img|imgp|_mg|dsc|dscn|dscf|dcim|pict|photo|image|cimg|sam)[-_ ]?\d+$", re.IGNORECASE)
# The folders drgrader makes for photos given in memory (drgrader.grade) or uploaded (serve): not the user's
TEMP_FOLDER_PREFIX = "drgrader-tmp-"


def camera_counter(patient: str) -> bool:
    """A patient id that is a camera's counter (``IMG_0001``, ``Smith_John/DSC_0042``), never a patient's."""
    return bool(_CAMERA_COUNTER.match(patient.rpartition("/")[2]))


def _shot_number(patient: str) -> bool:
    """A patient id that is a shot's or a camera's number (1, 2, 07, 0001, 0123): read from ``1_L.jpg`` in
    one patient's folder."""
    number = patient.rpartition("/")[2]
    return number.isdigit() and int(number) <= 999


def shots_of_one_patient(patients: set[str], one_eye_each: bool, both_eyes: bool = True) -> bool:
    """A folder's patients read from names that are shots' numbers close together (``Smith_John/1_L``,
    ``2_R``, ``0001_L``, ``0123_L`` + ``0124_R``; ``2_L``, ``3_R``, ``4_R``), each of one eye (a retake beside
    it): one patient's shots, perhaps (probe 53 BQ2, probe 54 BR1, probe 55 BS1); not a numbered export (``10_L``,
    ``10_R``, ``11_L``) or a batch of one eye (``21_L``, ``22_L``, ``23_L``; ``both_eyes``: both eyes among them)."""
    if len(patients) < 2 or not all(_shot_number(p) for p in patients) or not one_eye_each:
        return False
    numbers = sorted(int(p.rpartition("/")[2]) for p in patients)
    close = numbers[-1] - numbers[0] < 2 * len(numbers)
    return close and (len(numbers) == 2 or numbers[0] <= 1 or both_eyes)


def one_eye_each(table: pd.DataFrame) -> pd.Series:
    """Per row of ``table``: whether its patient has photos of one eye only (of all its photos)."""
    eyes = table["eye"].where(table["eye"] != "").groupby(table["patient_id"]).transform("nunique")
    return eyes.le(1)


def _long_id(patient: str) -> bool:
    """A patient id of three or more digits that is not a year (10570, 1001, not 2015): a patient's own."""
    return patient.isdigit() and len(patient) >= 3 and not re.fullmatch(r"(?:19|20)\d\d", patient)


def note_patients_folders(table: pd.DataFrame, notes: list[list[str]], from_name: pd.Series) -> None:
    """Photos whose patient is read from their names (``2015_L``, ``Mar2015_L``, ``1_L``, ``IMG_0001_L``) in
    a folder named like a patient (a number, perhaps after a few letters; no visit's or eye's name) that holds one or two such
    patients, neither of them the folder's, or in any folder shots' numbers of one photo each (``Smith_John/1_L``,
    ``2_R``: probe 53 BQ2): a patient-per-folder export whose names say a visit or a shot (probe 50 BN1,
    probe 51 BO1, BO3). Kept as read (a day's folder holds several patients too), noted."""
    named = table.index[from_name.to_numpy()]
    # the folder a patient's would be: the photo's, or the one above a visit's (1001/V1/1_L.jpg: probe 52 BP2)
    folders = table.loc[named, "source"].map(lambda source: Path(str(source)).parent).map(
        lambda folder: folder.parent if visit_folder(folder.name) and folder.parent.name else folder)
    patients = table.loc[named, "patient_id"].astype(str)
    in_folder = patients.groupby(folders).agg(set)
    one_eye = one_eye_each(table).loc[named].groupby(folders).all()
    both_eyes = table.loc[named, "eye"].groupby(folders).agg(lambda eyes: {"left", "right"} <= set(eyes))
    for k in named:
        patient, folder = str(table.at[k, "patient_id"]), folders[k]
        if folder.name.startswith(TEMP_FOLDER_PREFIX):  # drgrader's own folder says nothing (probe 53 BQ4)
            continue
        here = in_folder[folder]
        # one or two patients there, or shots numbered 1..99 (1_L, 2_R, 3_L: probe 52 BP2)
        few = len(here) <= 2 or all(_shot_number(p) for p in here)
        shots = shots_of_one_patient(here, one_eye[folder], both_eyes[folder])  # whatever the folder's name
        if camera_counter(patient):
            notes[k].append(f"{PATIENT_FOLDER}: patient {patient!r} is read from the photo's name, a camera's counter "
                            "(photos numbered by shot?): one patient's photos would be several patients; if so, give the "
                            "patients in a CSV")
        elif (_PATIENT_LIKE.search(folder.name) and not visit_folder(folder.name) and not eye_of_folder(folder.name)
                and few and _number(patient) != _number(folder.name)  # P10/10_left: one
                and not (len(_number(folder.name)) <= 2 and _long_id(patient))):  # n2/10570_left: a scratch folder (BQ3)
            notes[k].append(f"{PATIENT_FOLDER}: patient {patient!r} is read from the photo's name, but its folder "
                            f"{folder.name!r} is named like a patient (one patient's folder, its photos named by visit "
                            "or shot?): if so, give the patients in a CSV")
        elif shots and not visit_folder(folder.name) and not eye_of_folder(folder.name) and _number(patient) != _number(folder.name):
            notes[k].append(f"{PATIENT_FOLDER}: patient {patient!r} is read from the photo's name, a shot's number (its "
                            f"folder {folder.name!r} one patient's, its photos numbered by shot?): one patient's photos "
                            "would be several patients; if so, give the patients in a CSV")


def note_folder_against_others(table: pd.DataFrame, notes: list[list[str]]) -> None:
    """A folder read as the patient of its photos named by the eye alone (``Smith_John/OD.jpg``) that
    holds photos taken as another patient's, by a DICOM header, a CSV or a name (``Smith_John/10570_left.jpeg``;
    ``1001/OD.dcm`` whose PatientID is 2002): one patient split, or two in one folder (probe 54 BR10, BR12).
    Kept as read, noted: on every photo there when one or two others are, else (a mixed folder) on the
    folder's own photos."""
    claimed = table["folder_patient"] != ""
    if not claimed.any():
        return
    folders = table["source"].map(lambda source: str(Path(str(source)).parent))
    # each folder's patients and claims, in one pass (exports of thousands of patient folders)
    taken_in = table["patient_id"].groupby(folders).agg(set)
    claims = table.loc[claimed, "folder_patient"].groupby(folders[claimed]).agg(set)
    rows_of = table.index.groupby(folders)
    _note_folders_inside(notes, claims, taken_in, rows_of)
    for folder, patients in claims.items():
        here, taken = rows_of[folder], taken_in[folder]
        for patient in patients:
            others = sorted(taken - {patient, ""})
            if patient not in taken or not others:  # a CSV gave every photo its patient: no folder's read
                continue
            rows = here if len(others) <= 2 else here[table.loc[here, "folder_patient"] == patient]
            shown = ", ".join(map(repr, others[:3])) + (" ..." if len(others) > 3 else "")
            for k in rows:
                notes[k].append(f"{FOLDER_TWO_PATIENTS}: folder {Path(folder).name!r} is patient {patient!r} for its "
                                f"photos named by the eye alone, but holds photos taken as patient {shown} too (by a "
                                "DICOM header, a CSV or a photo's name): if they are one patient's, give the patients "
                                "in a CSV")


def _note_folders_inside(notes: list[list[str]], claims: pd.Series, taken_in: pd.Series, rows_of: dict) -> None:
    """A patient's folder inside another's, each read from its photos named by the eye alone
    (``1001/OS.jpg`` + ``1001/retake/OD.jpg``: patients ``1001`` and ``retake``): a retake's or a field's
    folder, perhaps (probe 55 BS12). Kept as read, noted on both. ``claims``: each folder's patients by
    folder; ``taken_in``: each folder's patients as taken; ``rows_of``: each folder's rows."""
    for folder, patients in claims.items():
        parent = str(Path(folder).parent)
        if parent not in claims.index:
            continue
        patient, outer = min(patients), min(claims[parent])
        if outer == patient or patient not in taken_in[folder] or outer not in taken_in[parent]:
            continue
        for k in rows_of[folder].append(rows_of[parent]):
            notes[k].append(f"{FOLDER_TWO_PATIENTS}: folder {Path(folder).name!r} (patient {patient!r}) is inside folder "
                            f"{Path(parent).name!r} (patient {outer!r}), both read from photos named by the eye alone: a "
                            f"retake's or a field's folder of patient {outer!r}? If so, give the patients in a CSV")


def note_id_inside_another(table: pd.DataFrame, notes: list[list[str]]) -> None:
    """Two patients of one eye each, the other's eye, one id the other's number with a word or letter added
    (``new_10193`` left beside ``10193`` right, ``10131a``, a header's ``10131^Smith``): one patient's
    eyes, perhaps (probe 56 BT2). Kept apart as read, each photo noted."""
    known = table[(table["patient_id"] != "") & (table["eye"] != "")]
    eyes_of = known.groupby("patient_id")["eye"].agg(set)
    one_eye = {p: next(iter(e)) for p, e in eyes_of.items() if len(e) == 1}
    for patient, eye in one_eye.items():
        for number in set(re.findall(r"\d{3,}", patient)) - {patient}:
            if one_eye.get(number) not in (None, eye):
                for k in table.index[table["patient_id"].isin([patient, number])]:
                    notes[k].append(f"{LOOKALIKE_PATIENTS}: patient {patient!r} ({eye} eye only) holds the number of "
                                    f"patient {number!r} ({one_eye[number]} eye only): one patient's eyes, the name "
                                    "marked (a copy, an edit, a name added)? Kept apart as read; if one, give the "
                                    "patients in a CSV")


_NUMBERED_SHOT = re.compile(r"(?:left|right|os|od)[_\- ]+([0-9]{1,2})$", re.IGNORECASE)


def note_eye_counts(table: pd.DataFrame, notes: list[list[str]], said: pd.Series) -> None:
    """Note (``notes``: one list per row of ``table``, :func:`~drgrader.data.identity.resolve_identity`'s)
    several photos of one eye, and known patients whose eye is not known (but for the photos
    ``said``, whose other notes say why)."""
    known = table[table["eye"] != ""]
    counts = known.groupby(["patient_id", "eye"])["path"].transform("size")
    for k in counts.index[counts > 1]:
        shot = _NUMBERED_SHOT.search(table.at[k, "image_id"])  # probe 37 BA9: S1_left_10, S1_left_11 may be patients 10, 11
        hint = (f" ({table.at[k, 'image_id']!r} is read as photo {shot[1]} of it: if {shot[1]} numbers the patient, give the "
                "patients in a CSV)") if shot else ""
        notes[k].append(f"{SEVERAL_PHOTOS_OF_ONE_EYE}: {counts[k]} photos of the {table.at[k, 'eye']} eye of patient "
                        f"{table.at[k, 'patient_id']!r}; all kept, the worst decides{hint}")
    for k in table.index[(table["eye"] == "") & ~said]:
        if not any(n.startswith((CONTRADICTORY_EYE, BOTH_EYES_IN_NAME, SAME_PHOTO_AS_TWO_EYES)) for n in notes[k]):
            tags = table.at[k, "dicom_laterality"]  # only tags that name no eye here (B, U): said, not "no laterality"
            dicom = ", ".join(f"{'laterality' if len(tags) == 1 else tag} {said}" for tag, said in tags)
            what = f"no CSV eye or name like 10_left, and DICOM {dicom}" if tags else "no CSV eye, DICOM laterality or name like 10_left"
            notes[k].append(f"{NO_EYE}: {table.at[k, 'image_id']!r} has {what}; which eye is unknown, it is judged as an "
                            "eye of its own")


def note_other_claimants(table: pd.DataFrame, photos: list[dict], notes: list[list[str]]) -> None:
    """A photo two lists give to two patients goes to the first; the other's photos are noted too,
    so that its decision is not read as made with that photo (probe 42 BF7: "the only photo")."""
    for k, row in enumerate(photos):
        for other in (row.get("csv_patients") or [])[1:]:
            if other == table.at[k, "patient_id"]:
                continue
            for j in table.index[table["patient_id"] == other]:
                notes[j].append(f"{CONTRADICTORY_PATIENT}: {table.at[k, 'image_id']!r} is listed as a photo of patient {other!r} too, "
                                f"but taken as one of patient {table.at[k, 'patient_id']!r}; this patient is judged without it")


def _differ(tag: str, values: set[str]) -> bool:
    if tag == BIRTH_YEAR:  # a year from an age in whole years: one person's within a year or two
        years = [int(v) for v in values]
        return max(years) - min(years) > 2
    return len(values) > 1


def _person_tags(persons: Iterable) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    for person in persons:
        for tag, digest in person or ():
            seen.setdefault(tag, set()).add(digest)
    return seen


def people_tags_differing(persons: Iterable) -> list[str]:
    """The DICOM header tags (of :attr:`~drgrader.data.dicom.DicomHeader.person`, one per photo) by which
    the photos are of two people: another name, birth date, sex, issuer, institution (not a visit)."""
    return _people_tags(_person_tags(persons))


def _people_tags(seen: dict[str, set[str]]) -> list[str]:
    return [tag for tag, values in seen.items() if _differ(tag, values) and tag not in (VISIT_TAG, VISIT_FOLDER)]


def note_two_people(table: pd.DataFrame, notes: list[list[str]]) -> None:
    """A patient whose photos' DICOM headers name two people under one ``PatientID`` (another name,
    birth date, sex, issuer of the id, institution; a birth year by age more than two years apart:
    two sites numbering alike, a typing error), or two visits (another StudyDate: probe 43 BG4):
    noted on each photo, never paired without a word (probe 41 BE6). Only the tags that differ are
    named, never their values (the headers' digests: :attr:`~drgrader.data.dicom.DicomHeader.person`)."""
    known = table["patient_id"][table["patient_id"] != ""]
    for patient, rows in known.index.groupby(known).items():
        if len(rows) < 2:
            continue
        seen = _person_tags(table.loc[rows, "person"])
        differ = _people_tags(seen)
        for k in rows:
            if differ:
                notes[k].append(f"{TWO_PEOPLE}: the DICOM headers of patient {patient!r} differ in {', '.join(differ)}; "
                                "taken as one patient's photos (if two sites or people share the id, give each its own)")
            elif _differ(VISIT_TAG, seen.get(VISIT_TAG, set())):
                notes[k].append(f"{TWO_VISITS}: the DICOM headers of patient {patient!r} are of two study dates; taken "
                                "as one exam's photos, its eyes paired (grade one visit at a time, or give each its own id)")
            elif _differ(VISIT_FOLDER, seen.get(VISIT_FOLDER, set())):  # 1001/2015/OS.jpg, 1001/2023/OD.jpg
                notes[k].append(f"{TWO_VISITS}: the photos of patient {patient!r} are in folders of two visits; taken "
                                "as one exam's photos, its eyes paired (grade one visit at a time, or give each its own id)")

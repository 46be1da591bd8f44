"""Whose photo, and which eye: the one place that decides it for ``drgrader predict``,
``explain``, :func:`drgrader.api.grade` and ``serve`` (an upload field, ``left`` or ``right``, is
a claim about the eye like a CSV's eye cell; serve refuses what this notes as another eye or
another patient), and that says so whenever it has to choose.

Evidence, strongest first: a CSV's ``patient_id`` / ``eye`` cells, the DICOM header
(``PatientID``, laterality), the file name (``10_left``, ``P7-OD``: :mod:`drgrader.data.eyes`),
and for a photo named by its eye alone its folder (``P10/OD.jpeg``: a patient-per-folder export).
A list's notes on a row (two values of a column it does not read under one patient:
:mod:`drgrader.data.patient_columns`) are the photo's notes too.
A patient id is read as :func:`~drgrader.data.eyes.patient_id` spells it: a placeholder for a
missing value (``NA``, ``unknown``) is no patient, and ``Müller`` in NFC and NFD is one patient.
Every conflict is resolved conservatively (two patients are never merged, no photo is dropped)
and noted on each photo concerned, in ``identity_note`` (``<kind>: <what was done>``):

- the sources disagree on the eye (a DICOM's ``ImageLaterality`` and ``Laterality`` too) -> the
  eye is left unknown; on the patient (CSV and DICOM
  ``PatientID``) -> the CSV's (the user's own list) is taken; a photo whose CSV or DICOM patient
  is not the one its name says, when another photo is that patient (by its name or given: a CSV
  row for ``10_left`` saying ``P1`` beside a ``10_right`` from a folder), or another photo given
  the same patient names a third one (``10131_right`` and ``10007_left`` both ``PatientID`` P9)
  -> the given patient is taken, its eye left unknown (two photos whose names say two patients
  are never paired on a given id alone), the photos of both patients noted;
- two CSV rows (two lists) giving one photo two patients -> the first's, noted on it and on every
  photo of the other patient, which is judged without it;
- a name with both eyes in it (``P7_OD_OS``) -> neither patient nor eye is read from it;
- a photo named by its eye alone in a folder named for a visit, where the layout shows visits
  (``P10/2015/OD.jpeg``, ``P10/2023/OS.jpeg``, ``P11/2015/OD.jpeg``): the folder above is the patient;
  one patient's photos in two visits' folders (so named, or read from names: ``a/2015/10_left``) ->
  taken as one patient's, noted as two visits;
- a patient read from file names has its eyes in two folders, each eye in one (``a/10_left``,
  ``b/10_right``) -> one patient, noted (not when each folder is named for its eye, ``left/``);
- one eye of a patient read from file names is named in two folders (``a/10_left``,
  ``b/10_left``) -> a patient per folder (``a/10``, ``b/10``): two clinics number alike more
  often than one patient's photo sits in two places;
- several photos of one eye -> all kept; the patient's decision takes the worst;
- one file's bytes given as two eyes of a patient (``10_right.jpeg`` a copy of ``10_left.jpeg``)
  -> which eye it shows is unknown; the copies are patients of their own, so the photo is never
  paired with itself as its own fellow eye;
- one file's bytes under two patients (a photo filed under the wrong patient) -> kept apart as
  given, noted on each copy: each patient is judged on it;
- the same for one picture in files that differ (a PNG of a JPEG, a re-saved or resized copy, a
  copy mirrored, flipped or turned), found once the photos are decoded: :func:`note_same_pictures`, called by
  ``predict`` after grading (:mod:`drgrader.data.same_picture` finds them);
- patient ids that differ only as one may be the other retyped (:func:`~drgrader.data.eyes.folded_patient`:
  case, spacing, separators, look-alike letters, accents, a number's leading zeros: ``P7`` and ``p7``,
  ``AB-123`` and ``AB123``, ``007`` and ``7``, ``García`` and ``Garcia``) -> kept apart, as given
  (merging would be the guess); noted, since they are often one patient typed twice;
- a patient id that is a date or a visit's word (``20230502_L.jpg``: a camera's export named by day;
  ``Baseline_L.jpg``; an exam-date column mapped into patient_id) -> taken as given, noted: one day's
  photos are one patient's; a patient read from names in a folder named like a patient's number that
  holds one or two of them (``1001/2015_L.jpg``, ``1003/1_L.jpg``), or shots of one eye each in any
  folder (``Smith_John/1_L.jpg``, ``2_R.jpg``) -> taken as read, noted; a patient's folder (read from its
  photos named by the eye alone) holding a photo taken as another patient's -> taken as read, noted;
- no patient -> the photo (a DICOM file: all its frames) is a patient of its own, named by its
  image id (by its path when that id is taken);
- a patient without the eye -> which eye is unknown (a DICOM laterality ``B``, both eyes, is
  named); the photo is judged as an eye of its own.

The same path given twice (a folder and a CSV listing it) is one photo: its evidence combined.
Two files are never one image id: ids that coincide are qualified by folder or extension.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from drgrader.data.eyes import (
    eyes_named,
    folded_patient,
    reordered_patient,
    shown_patient,
)
from drgrader.data.folder_layout import folder_labels, split_by_folder, visits_in_folders
from drgrader.data.given_patients import given_against_names, one_name_two_given, patients_claimed_by_names
from drgrader.data.identity_claims import _FRAME, EVIDENCE_KEYS, image_id_claims, own_name, patient_named, photo_eye_claims
from drgrader.data.identity_notes import (
    BOTH_EYES_IN_NAME,
    CONTRADICTORY_EYE,
    CONTRADICTORY_PATIENT,
    IMAGE_ID_REPEATED,
    LOOKALIKE_PATIENTS,
    NO_PATIENT,
    ONE_FILE,
    SAME_PHOTO_AS_TWO_EYES,
    SAME_PHOTO_UNDER_TWO_PATIENTS,
    note_date_patients,
    note_eye_counts,
    note_folder_against_others,
    note_id_inside_another,
    note_other_claimants,
    note_patients_folders,
    note_two_people,
)
from drgrader.data.image_files import identical_files

IDENTITY_COLUMNS = ["path", "image_id", "patient_id", "eye", "identity_note"]


def _file_of(row: dict) -> tuple[int, int, str] | None:
    """The file a row's path reaches through links (device, inode) and its DICOM frame; None when
    it cannot be reached (missing, a broken link or a loop: its row says why)."""
    try:
        status = os.stat(row["source"])
    except (OSError, ValueError):
        return None
    frame = _FRAME.search(row["path"])
    return status.st_dev, status.st_ino, frame.group() if frame else ""


def _combine_repeats(rows: list[dict]) -> list[dict]:
    """One row per file (photos/a.jpg and /data/photos/a.jpg are one), in first-seen order, under
    its first spelling; a repeat adds what the first lacked. A file reached again through a link
    (a linked folder, a hard link) under the same name is that file given twice alike, graded once
    (before: two patients, 'same photo under two patients'); under another name, or in another
    patient's folder, it stays a photo of its own, noted as a copy, since it may claim another patient or eye."""
    by_path: dict[str, dict] = {}
    first_of: dict[tuple, str] = {}  # (device, inode, frame, image id) -> the key of its first row
    for row in rows:
        key = os.path.abspath(row["path"])
        file = _file_of(row)
        if key not in by_path and file is not None:
            # a photo named by its eye alone is its folder's patient's: reached through a link from another
            # patient's folder (byname/Smith_John -> ids/1001) it stays a row of its own, noted (probe 55 BS14)
            key = first_of.setdefault((*file, row["image_id"], row.get("folder_patient", "")), key)
        first = by_path.setdefault(key, dict(row))
        for key in ("csv_patient", "csv_eye"):  # two CSV rows (or CSVs) that disagree: each claim kept
            claims = first.setdefault(f"{key}s", [first[key]] if first[key] else [])
            if row.get(key) and row[key] not in claims:
                claims.append(row[key])
        for key in EVIDENCE_KEYS:
            first[key] = first.get(key) or row.get(key, "")
    return list(by_path.values())


def _read_one(row: dict) -> tuple[str, str, str, bool, list[str]]:
    """(patient, eye, the patient its name says ('' when none, or both eyes), whether the patient
    was given (CSV or DICOM), notes) of one photo from its own evidence."""
    name = own_name(row)
    notes = []
    own = photo_eye_claims(row)
    if len(eyes_named(name)) > 1 and not ((row["csv_patient"] or row["dicom_patient"]) and (row["csv_eye"] or own)):
        notes.append(f"{BOTH_EYES_IN_NAME}: {name!r} names the left and the right eye; neither patient nor eye read from it")
    name_patient = patient_named(name)
    id_patient, id_eye = image_id_claims(row)
    csv_eyes = row.get("csv_eyes") or [row["csv_eye"]]
    claims = [*(("CSV" if k == 0 else "CSV again", e) for k, e in enumerate(csv_eyes) if e),
              *([("CSV's image id", id_eye)] if id_eye else []), *own]
    eye = claims[0][1] if claims else ""
    if len({e for _, e in claims}) > 1:
        said = ", the ".join(f"{who} says {e}" for who, e in claims)
        notes.append(f"{CONTRADICTORY_EYE}: for {row['image_id']!r} the {said}; the eye is left unknown")
        eye = ""
    csv_patient = row["csv_patient"] or id_patient  # the image id cell's patient: a CSV claim, as its name says it
    patient = csv_patient or row["dicom_patient"] or name_patient or row.get("folder_patient", "")
    csv_patients = row.get("csv_patients") or []
    if len(csv_patients) > 1:
        notes.append(f"{CONTRADICTORY_PATIENT}: for {row['image_id']!r} the CSV says "
                     f"{' and '.join(map(repr, csv_patients))}; the first is taken")
    if row["csv_patient"] and id_patient and row["csv_patient"] != id_patient:
        notes.append(f"{CONTRADICTORY_PATIENT}: for {row['image_id']!r} the CSV's patient says {row['csv_patient']!r}, "
                     f"its image id {id_patient!r}; the patient cell's is taken")
    if csv_patient and row["dicom_patient"] and csv_patient != row["dicom_patient"]:
        notes.append(f"{CONTRADICTORY_PATIENT}: for {row['image_id']!r} the CSV says {csv_patient!r}, the DICOM "
                     f"PatientID {row['dicom_patient']!r}; the CSV's is taken")
    return patient, eye, name_patient, bool(csv_patient or row["dicom_patient"]), notes


def _unique_image_ids(table: pd.DataFrame, notes: list[list[str]]) -> None:
    """One image id per file: files whose ids coincide (``x.jpeg`` and ``x.png`` of one folder,
    ``a/10_left`` and ``b/10_left``) are named by their folder (``a/10_left``) and, when that is
    not enough, by their whole file name (``x.png``); a DICOM frame keeps its ``#frame<N>``. An id
    no file is named (a CSV's image_id cell given to two rows) is noted on each (probe 34 AX7)."""
    base = table["image_id"].map(lambda i: _FRAME.sub("", i))
    for given, group in table.groupby(base, sort=False):
        files = list(dict.fromkeys(group["source"]))
        if len(files) < 2:
            continue
        if all(Path(f).stem != Path(str(given)).name for f in files):
            shown = ", ".join(Path(f).name for f in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
            for k in group.index:
                notes[k].append(f"{IMAGE_ID_REPEATED}: image id {given!r} is given to {len(files)} files ({shown}); "
                                "each is named by its file instead")
        parents = {f: str(Path(f).parent) for f in files}
        labels = folder_labels(set(parents.values())) if len(set(parents.values())) > 1 else {}
        ids = {f: "/".join(filter(None, (labels.get(parents[f]), Path(f).stem))) for f in files}
        if len(set(ids.values())) < len(files):
            ids = {f: "/".join(filter(None, (labels.get(parents[f]), Path(f).name))) for f in files}
        for k in group.index:
            table.at[k, "image_id"] = ids[table.at[k, "source"]] + table.at[k, "image_id"][len(base[k]):]


def _own_patients(table: pd.DataFrame, notes: list[list[str]]) -> None:
    """Photos without a patient: each a patient of its own (a DICOM file's frames together)."""
    lone = table.index[table["patient_id"] == ""]
    taken = set(table["patient_id"])
    ids = {k: _FRAME.sub("", table.at[k, "image_id"]) for k in lone}
    per_id = Counter((ids[k], table.at[k, "source"]) for k in lone)
    id_sources = Counter(i for i, _ in per_id)
    for k in lone:
        own = ids[k] if ids[k] not in taken and id_sources[ids[k]] == 1 else table.at[k, "source"]
        table.at[k, "patient_id"] = own
        notes[k].append(f"{NO_PATIENT}: {table.at[k, 'image_id']!r} has no CSV patient, DICOM PatientID or name like "
                        f"10_left; a patient of its own, {own!r}")


def _copies(table: pd.DataFrame, notes: list[list[str]]) -> None:
    """Identical files (one file's bytes), noted as :func:`_note_one_picture` notes them."""
    whole = table[table["path"] == table["source"]]  # not the frames of one DICOM file
    taken = set(table["patient_id"])
    for positions in identical_files(whole["path"].tolist()):
        _note_one_picture(table, notes, list(whole.index[positions]), ONE_FILE, taken)


def _note_one_picture(table: pd.DataFrame, notes: list[list[str]], rows: list, how: str, taken: set[str]) -> None:
    """Photos (``rows``: labels of ``table``) that are one picture (``how``: what makes them so,
    e.g. one file's bytes) under several patients: kept apart as given, each noted (the photo of
    one may be misfiled under the other). Given as different eyes of one patient (or of sides
    not known): one photo, whose eye is unknown; every copy but the first a patient of its own
    (never its own fellow). ``taken``: the patient ids in use, grown by those given here."""
    copies = table.loc[rows]
    patients = list(dict.fromkeys(copies["patient_id"]))
    if len(patients) > 1:
        note = (f"{SAME_PHOTO_UNDER_TWO_PATIENTS}: {', '.join(map(repr, copies['image_id']))} are {how}, "
                f"under patients {' and '.join(map(repr, patients))}; kept apart as given, so each patient is "
                "judged on it (check that it is not filed under the wrong patient)")
        for k in copies.index:
            notes[k].append(note)
    for _, same in copies.groupby("patient_id", sort=False):
        eyes = set(same["eye"])
        if len(same) < 2 or (len(eyes) == 1 and "" not in eyes):  # copies of one known eye: several photos of it
            continue
        patient, ids = same["patient_id"].iat[0], ", ".join(repr(i) for i in same["image_id"])
        claimed = " and ".join(sorted({f"{e} eye" if e else "an eye not known" for e in same["eye"]}))
        for k in same.index:
            own = patient
            if k != same.index[0]:
                own = table.at[k, "image_id"] if table.at[k, "image_id"] not in taken else table.at[k, "path"]
                taken.add(own)
            table.at[k, "eye"], table.at[k, "patient_id"] = "", own
            kept = "this one kept" if own == patient else f"this copy a patient of its own, {own!r}"
            notes[k].append(f"{SAME_PHOTO_AS_TWO_EYES}: {ids} of patient {patient!r} are {how}, given as "
                            f"the {claimed}; which eye it shows is unknown, {kept}")


def note_same_pictures(table: pd.DataFrame, groups: Iterable[tuple[Sequence[int], str]]) -> pd.DataFrame:
    """Photos found to be one picture after they were read (their pixels alike, not their
    bytes: :mod:`drgrader.data.same_picture`), noted as the resolver notes one file's bytes:
    ``groups`` of row positions of ``table`` (predict's rows: ``IDENTITY_COLUMNS``), each with
    how they are one picture (``"the same pixels"``, ``"mirror images"``...). Under several
    patients: kept apart, each noted (``same photo under two patients``); given as two eyes of
    one patient: which eye is unknown, every copy but the first a patient of its own (``one
    photo as two eyes``), so that no photo is paired with itself as its fellow eye. Returns the
    table so changed (a copy)."""
    given = [(list(positions), how) for positions, how in groups]
    table = table.copy()
    if not given:
        return table
    index = table.index
    table = table.reset_index(drop=True)
    notes = [[part for part in str(note).split("; ") if part] for note in table["identity_note"].fillna("")]
    taken = set(table["patient_id"])
    for positions, how in given:
        _note_one_picture(table, notes, positions, how, taken)
    table["identity_note"] = ["; ".join(n) for n in notes]
    table.index = index
    return table


def _lookalike_patients(table: pd.DataFrame, notes: list[list[str]]) -> None:
    """Patient ids equal but for case, spacing, a number's leading zeros, look-alike letters, accents or text encoding: kept
    apart, each photo noted."""
    ids = table.loc[table["patient_id"] != "", "patient_id"]
    noted: set[tuple[str, ...]] = set()
    # and a person's name in another word order (Doe_Jane, Jane_Doe; probe 58 BV4)
    for key, order in ((folded_patient, ""), (reordered_patient, "word order, ")):
        for _, group in ids.groupby(ids.map(key)):
            spellings = tuple(sorted(set(group)))
            if len(spellings) > 1 and spellings not in noted:
                noted.add(spellings)
                said = " and ".join(f"'{shown_patient(spelling)}'" for spelling in spellings)  # a Latin-1 name as the CSVs spell it
                for k in group.index:
                    notes[k].append(f"{LOOKALIKE_PATIENTS}: patients {said} differ only in {order}case, spacing, separators, "
                                    "leading zeros, look-alike letters, accents or text encoding; kept apart as given (one "
                                    "spelling in the input makes them one patient)")


def resolve_identity(rows: Iterable[dict]) -> pd.DataFrame:
    """Evidence rows (:func:`evidence`) -> one row per photo with ``IDENTITY_COLUMNS``: its
    patient, its eye and the note of every conflict resolved for it (module docstring)."""
    photos = _combine_repeats(list(rows))
    visits_in_folders(photos)
    table = pd.DataFrame(photos, columns=EVIDENCE_KEYS)
    notes: list[list[str]] = [[] for _ in photos]
    read = [_read_one(row) for row in photos]
    table["patient_id"] = [patient for patient, _, _, _, _ in read]
    name_patient = pd.Series([named for _, _, named, _, _ in read], index=table.index, dtype=str)
    table["eye"] = [eye for _, eye, _, _, _ in read]
    for k, (_, _, _, _, own_notes) in enumerate(read):
        notes[k] += [*own_notes, *(photos[k].get("notes") or ())]
    given = pd.Series([was_given for _, _, _, was_given, _ in read], index=table.index, dtype=bool)
    from_name = (table["patient_id"] != "") & ~given
    lone = table["patient_id"] == ""
    note_other_claimants(table, photos, notes)
    claimed = patients_claimed_by_names(table, given, name_patient)
    contested = given_against_names(table, given, claimed, notes)
    one_name_two_given(table, given, claimed, notes)
    split_by_folder(table, from_name, notes)
    _lookalike_patients(table, notes)
    _unique_image_ids(table, notes)
    note_date_patients(table, notes)
    note_patients_folders(table, notes, from_name)
    note_folder_against_others(table, notes)
    note_id_inside_another(table, notes)
    _own_patients(table, notes)
    _copies(table, notes)
    note_eye_counts(table, notes, lone | contested)
    note_two_people(table, notes)
    table["identity_note"] = ["; ".join(n) for n in notes]
    resolved = table[IDENTITY_COLUMNS]
    resolved.attrs["patients_from"] = _patients_from(table, given, name_patient, lone)
    return resolved


def _patients_from(table: pd.DataFrame, given: pd.Series, name_patient: pd.Series, lone: pd.Series) -> dict[str, int]:
    """How many photos took their patient from each source (a list, DICOM headers, file names, folders, none):
    what a run says once, so a layout read another way than meant is seen at a glance."""
    listed = given & (table["csv_patient"] != "")
    headers = given & ~listed & (table["dicom_patient"] != "")
    # the rest of the given: a list's image id cell or a link's name naming another patient (probe 58 BV10)
    sources = {"a list": listed, "DICOM headers": headers, "link names or a list's image ids": given & ~listed & ~headers,
               "file names": ~given & ~lone & (name_patient != ""),
               "folders (photos named by the eye alone)": ~given & ~lone & (name_patient == ""),
               "nothing (each photo a patient of its own)": lone}
    return {source: int(rows.sum()) for source, rows in sources.items() if rows.any()}

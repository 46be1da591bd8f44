"""The web demo's per-patient answer: the graded photos of one patient's eyes -> the
per-patient decision, its reason and uncertainty, made by the functions ``drgrader predict``
uses (:func:`~drgrader.inference.predict.ready_for_patients`,
:func:`~drgrader.inference.patient_decision.decide_patients`), so the demo and a predict run on
the same two photos of one patient give the same decision.

Upload fields (multipart): ``left`` and/or ``right`` (one photo each), or ``file`` (the demo's
original field: one photo of an eye of unknown side). The eyes are one patient's, as the fields
say: predict's identity resolver reads the photos, and one it finds to be the other eye, or two it
finds to be two patients', are refused (:func:`eye_mix_up`), and so are two that are one picture
(the same pixels in two files, or one mirrored, flipped or turned: :func:`one_picture`); with two eyes and a bundle that has a
paired-eye stage, each eye is graded from both (``fused_grade``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from drgrader.data.dicom import DicomHeader, is_dicom
from drgrader.data.identity import resolve_identity
from drgrader.data.identity_claims import VISIT_FOLDER, evidence, patient_named, photo_eye_claims
from drgrader.data.identity_notes import (
    CONTRADICTORY_EYE,
    CONTRADICTORY_PATIENT,
    DATE_AS_PATIENT,
    DATE_ID,
    LOOKALIKE_PATIENTS,
    NO_PATIENT,
    TWO_PEOPLE,
    TWO_VISITS,
    note_kinds,
    people_tags_differing,
)
from drgrader.data.image_files import identical_files
from drgrader.data.same_picture import EDITED_COPY, alike_pairs, how_alike, same_pictures
from drgrader.grading import GRADE_NAMES, SCORE_COLUMNS
from drgrader.inference.bundle import Bundle
from drgrader.inference.patient_decision import decide_patients
from drgrader.inference.predict import OUTPUT_COLUMNS, ready_for_patients, typed_predictions
from drgrader.inference.serve_names import counted_alike, exam_day, folder_claims, folder_eye_said, name_number

EYE_FIELDS = {"right": "right", "left": "left"}  # form field -> eye, in the order eyes are listed
FILE_FIELD = "file"  # one photo, side unknown
FIELDS = [*EYE_FIELDS, FILE_FIELD]
MAX_PHOTOS = 2
PATIENT_ID = "patient"
_SUFFIX = re.compile(r"\.[a-z0-9]{1,5}")


def unknown_fields(names: Iterable[str]) -> str | None:
    """The 400 message for upload fields the server does not read, or None: a photo sent under
    another name (``photo``, ``Left``) would otherwise be dropped and the answer given without it."""
    unknown = sorted(set(names) - set(FIELDS))
    if not unknown:
        return None
    listing = ", ".join(repr(name[:40]) for name in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
    return (f"unknown upload field{'s' if len(unknown) > 1 else ''} {listing}: send the photos as "
            "'right' and/or 'left' (or one photo as 'file')")


def upload_name(sent: str) -> str:
    """An upload's file name as the client sent it, with up to two folders (``1001/OD.jpg``;
    ``scans\\1001\\OD.jpg`` -> ``scans/1001/OD.jpg``): a folder can name the patient, as it does
    for predict, so it is not cut off (probe 53 BQ5: two patients' ``OD.jpg`` and ``OS.jpg``). A full
    Windows path (``C:\\...``) arrives as its base name (python-multipart cuts it, as browsers once sent it)."""
    parts = [p for p in PurePosixPath(sent.replace("\\", "/")).parts if p not in ("/", ".", "..") and not p.endswith(":")]
    return "/".join(parts[-3:]) or "upload"


def upload_evidence(field: str, name: str, path: Path, header: DicomHeader | None) -> dict:
    """The identity evidence (:func:`~drgrader.data.identity.evidence`) of one uploaded eye photo,
    gathered as predict gathers a listed photo's (:func:`~drgrader.data.input_files.input_rows`): its
    field is a claim about the eye, as a CSV's eye cell is; its DICOM header (``PatientID``,
    laterality); its file name, the image id, and its folders (:func:`~.serve_names.folder_claims`)."""
    folder_patient, visit = folder_claims(name)
    return evidence(path, PurePosixPath(name).stem, path, csv_eye=EYE_FIELDS[field], folder_patient=folder_patient,
                    dicom_patient=header.patient_id if header else "",
                    dicom_laterality=header.laterality if header else (), person=(*(header.person if header else ()), *visit))


def _wrong_eye(field: str, name: str, said: list[tuple[str, str]]) -> str:
    """The message for a photo whose own evidence (``said``: :func:`~drgrader.data.identity.photo_eye_claims`)
    is not the eye of its field."""
    first_who, first = said[0]
    other = next(((who, eye) for who, eye in said if eye != first), None)
    if other:  # its header and name (or two laterality tags) disagree: no field can be right
        return field_error(field, f"{name}: its {first_who} says the {first} eye, its {other[0]} the {other[1]} eye; "
                                  "correct one of them")
    fix = " (or rename it)" if first_who == "file name" else ""
    return field_error(field, f"{name}: its {first_who} says the {first} eye; send it as '{first}'{fix}")


def _patient_source(row: dict, patient: str) -> str:
    """Where a resolved photo's patient came from, for messages: its DICOM ``PatientID``, name or folder."""
    if row["dicom_patient"] == patient:
        return "DICOM PatientID"
    return "folder" if row["folder_patient"] == patient and not patient_named(row["image_id"]) else "name"


def _two_patients(names: list[str], rows: list[dict], resolved: pd.DataFrame, kinds: list[set[str]]) -> str | None:
    """The message for two eye photos the resolver does not take as one patient's, or None: two
    patients by name or DICOM ``PatientID`` (a photo without one, ``no patient``, agrees with
    any), two dates or visits as their patients (two exams: probe 58 BV6), or one ``PatientID`` on photos
    whose names say two patients (``contradictory patient``)."""
    patients = list(resolved["patient_id"])
    # a photo without a patient, or whose name's patient is a date or a visit (`Baseline_R.jpg`: probe 50 BN7), agrees with any
    if not any(NO_PATIENT in k or DATE_AS_PATIENT in k for k in kinds) and patients[0] != patients[1]:
        said = "; ".join(f"{name}: patient {patient!r} by its {_patient_source(row, patient)}"
                         for name, patient, row in zip(names, patients, rows))
        fix = (" (ids that differ only in case, spacing, separators or leading zeros are two patients to predict too: "
               "spell them alike)") if LOOKALIKE_PATIENTS in kinds[0] else ""
        return f"the 'right' and 'left' photos are of two patients ({said}): send the two eyes of one patient{fix}"
    exams = [_name_id(row, patient, k) for row, patient, k in zip(rows, patients, kinds)]
    if all(DATE_ID.match(e) for e in exams) and exam_day(exams[0]) != exam_day(exams[1]):  # probe 58 BV6
        said = "; ".join(f"{name}: {exam!r} by its {'name' if NO_PATIENT in k else _patient_source(row, exam)}"
                         for name, exam, row, k in zip(names, exams, rows, kinds))
        return (f"the 'right' and 'left' photos are of two exams ({said}: a date or visit each): send the two eyes "
                "of one exam")
    if any(TWO_PEOPLE in k for k in kinds):  # probe 41 BE6
        return (f"the 'right' and 'left' photos ({', '.join(names)}) are of patient {patients[0]!r} by their "
                f"{_patient_source(rows[0], patients[0])}, but their headers name two people (another name, birth date, age, sex, issuer or institution): send "
                "the two eyes of one patient (or correct the PatientID)")
    if differ := people_tags_differing(row["person"] for row in rows):  # no PatientID, two PatientNames (probe 55 BS4)
        return (f"the 'right' and 'left' photos ({', '.join(names)}) have no patient id, and their DICOM headers name two "
                f"people (they differ in {', '.join(differ)}): send the two eyes of one patient")
    if any(TWO_VISITS in k for k in kinds):  # probe 43 BG4
        by = "visit folders" if any(tag == VISIT_FOLDER for row in rows for tag, _ in row["person"]) else "DICOM headers"
        return (f"the 'right' and 'left' photos ({', '.join(names)}) of patient {patients[0]!r} are of two "
                f"{'visits' if by == 'visit folders' else 'study dates'} by their {by}: send the two eyes of one exam")
    if any(CONTRADICTORY_PATIENT in k for k in kinds):
        return (f"the 'right' and 'left' photos are of two patients by their names ({', '.join(names)}), though both are "
                f"patient {patients[0]!r} by their DICOM PatientID: send the two eyes of one patient (or correct the PatientID)")
    return None


def eye_mix_up(photos: Iterable[tuple[str, str, Path]], headers: dict[str, DicomHeader | None]) -> str | None:
    """The 400 message for uploaded eye photos ``(field, file name, saved path)`` (``headers``:
    each field's DICOM header, or None) that cannot be what their fields say, or None: one file's
    bytes sent as both eyes (graded as a pair it would be its own fellow eye), or what predict's
    resolver (:func:`~drgrader.data.identity.resolve_identity`, each field a claim about its
    photo's eye) notes as another eye or another patient: a photo whose file name, DICOM
    laterality or folder names the other eye (``10_right.jpeg``, ``OD/10193.jpg``, ``Fundus_OD/IMG_0001.jpg`` sent as
    ``left``; a letter's folder, ``L/``, is no eye, as predict's rule reads none: :func:`~.serve_names.folder_eye`), or
    whose name, header and folder disagree; two photos of two patients by their names or ``PatientID`` (``10131_right.jpeg``
    beside ``11_left.jpeg``; ``007`` and ``7``, kept apart by predict too), or of one
    ``PatientID`` but two patients by their names. Other notes are no refusal: a photo without a
    patient (``upload.jpg``, ``PatientID`` ``ANONYMOUS``) agrees with any; a name with both eyes
    in it says no eye, so its field stands (as a CSV's eye cell does)."""
    eyes = [(field, name, path) for field, name, path in photos if field in EYE_FIELDS]
    if not eyes:
        return None
    if len(eyes) == 2 and identical_files([path for _, _, path in eyes]):
        return f"the 'right' and 'left' photos are one file ({eyes[0][1]}, {eyes[1][1]}: the same bytes): send a photo of each eye"
    rows = [upload_evidence(field, name, path, headers.get(field)) for field, name, path in eyes]
    resolved = resolve_identity(rows)  # one row per photo, in order: the uploads are distinct files
    kinds = [note_kinds(note) for note in resolved["identity_note"]]
    for (field, name, _), row, of_photo in zip(eyes, rows, kinds):
        said = [*photo_eye_claims(row), *folder_eye_said(name)]  # its folder too (probe 58 BV5, probe 59 BW10, BW11)
        if CONTRADICTORY_EYE in of_photo or any(eye != EYE_FIELDS[field] for _, eye in said):
            return _wrong_eye(field, name, said)
    if len(eyes) == 2 and (numbered := _two_numbers([name for _, name, _ in eyes], rows, resolved, kinds)):
        return numbered
    return _two_patients([name for _, name, _ in eyes], rows, resolved, kinds) if len(eyes) == 2 else None


def _name_id(row: dict, patient: str, kinds: set[str]) -> str:
    """The id a photo's own evidence gives it: its resolved patient, or the stem of its name when it
    has none (the resolver then makes it a patient of its own, perhaps by its file's path)."""
    return row["image_id"] if NO_PATIENT in kinds else patient


def _two_numbers(names: list[str], rows: list[dict], resolved: pd.DataFrame, kinds: list[set[str]]) -> str | None:
    """The message for two photos, one or both without a patient by their evidence, whose names hold two
    patients' numbers (``Patient002.jpg`` + ``Patient014.jpg``, ``10007.jpg`` + ``10570.jpg``, ``Patient2.jpg``
    + ``Patient14.jpg``, ``5001_R_20240101.jpg`` + ``5002_L_20240101.jpg``, ``10193_right.jpg`` + ``10570.jpg``):
    predict keeps them apart, each a patient of its own, so the form's one patient is no pair (probe 57
    BU9, probe 58 BV1). Leading zeros aside, as in ``1001`` and ``01001``."""
    if not any(NO_PATIENT in k for k in kinds):
        return None  # two patients by their evidence: _two_patients
    numbers = [name_number(_name_id(row, patient, k)) for row, patient, k in zip(rows, resolved["patient_id"], kinds)]
    if not all(numbers) or numbers[0].lstrip("0") == numbers[1].lstrip("0"):
        return None
    if counted_alike([_name_id(row, patient, k) for row, patient, k in zip(rows, resolved["patient_id"], kinds)]):
        return None  # one phone's shots, Scan_1 and Scan_2 (probe 59 BW6)
    return (f"the 'right' and 'left' photos are named for two patients' numbers ({names[0]}: {numbers[0]!r}; "
            f"{names[1]}: {numbers[1]!r}), and predict takes them as two patients: send the two eyes of one patient "
            "(or name them so, e.g. 1001_right.jpg and 1001_left.jpg)")


def one_picture(eyes: list[tuple[str, str]], prints: list[str]) -> str | None:
    """The 400 message for two eye photos ``(field, file name)`` that are one picture though their
    bytes differ (``prints``: their fingerprints, :func:`~drgrader.data.same_picture.picture_print`;
    the same pixels re-saved or converted, or one mirrored, flipped or turned), or None: as predict takes them
    (:func:`~drgrader.data.same_picture.same_pictures`), graded as a pair the photo would be its
    own fellow eye."""
    if len(eyes) != 2 or len(prints) != 2:
        return None
    names = [name for _, name in eyes]
    for _, orientations in same_pictures(prints):
        return (f"the 'right' and 'left' photos are one picture ({names[0]}, {names[1]}: {how_alike(names, orientations)}): "
                "send a photo of each eye")
    if alike_pairs(prints, [(0, 1)]):  # probe 42 BF3: one photo edited
        return f"the 'right' and 'left' photos are {EDITED_COPY} ({names[0]}, {names[1]}): send a photo of each eye"
    return None


def field_label(field: str) -> str:
    """How an upload field is named in messages: ``left eye``, ``right eye``, or ``photo``."""
    return f"{field} eye" if field in EYE_FIELDS else "photo"


def field_error(field: str, message: str) -> str:
    """An error about one upload field's photo, naming the eye (``left eye: x.jpg: ...``)."""
    return message if field == FILE_FIELD else f"{field_label(field)}: {message}"


def upload_suffix(name: str) -> str:
    """The extension to keep when saving an upload (``.dcm`` matters: a DICOM file without the
    128-byte preamble is known by its name only); '' for none or anything odd."""
    suffix = Path(name).suffix.lower()
    return suffix if _SUFFIX.fullmatch(suffix) else ""


def save_upload(folder: Path, field: str, name: str, data: bytes) -> Path:
    """Write one upload as ``<folder>/<field>[.ext]``. A DICOM file is known by its content (the
    DICM marker, as ``predict`` knows a camera export without ``.dcm``) whatever it is called
    (``scan.jpg``), any other file by its name's extension (:func:`upload_suffix`)."""
    path = folder / field
    path.write_bytes(data)
    return path if is_dicom(path) else path.rename(path.with_name(f"{field}{upload_suffix(name)}"))


def _scores(body: dict) -> list[float]:
    """The 8 model scores of a graded photo's JSON (NaN where the model gives none)."""
    values = [*(body.get("probabilities") or [None] * 5), body["expected_grade"], body["score_any"], body["score_referable"]]
    return [np.nan if v is None else float(v) for v in values]


def photo_table(eyes: dict[str, dict]) -> pd.DataFrame:
    """The graded photos (field -> JSON of :func:`~drgrader.inference.serve.analyse_photo`) as
    the rows ``predict`` writes, all of one patient."""
    rows = []
    for field, body in eyes.items():
        rows.append({
            "path": body["filename"],
            # the eye's field (unique), or for a photo of unknown side its name (the reason names it)
            "image_id": field if field in EYE_FIELDS else Path(body["filename"]).stem or field,
            "patient_id": PATIENT_ID,
            "eye": EYE_FIELDS.get(field, ""),
            "grade": body["grade"],
            **dict(zip(SCORE_COLUMNS, _scores(body))),
            "any_dr": body["any_dr"],
            "referable": body["referable"],
            "gradable": body["gradable"],
            "quality_score": body["quality_score"],
            "quality_reason": body["quality_reason"],
            "error": "",
        })
    return typed_predictions(pd.DataFrame(rows, columns=OUTPUT_COLUMNS))


def _value(x) -> float | None:
    return None if x is None or pd.isna(x) else float(x)


def _flag(x) -> bool | None:
    return None if x is None or pd.isna(x) else bool(x)


def patient_answer(bundle: Bundle, eyes: dict[str, dict], *, refer_share: float | None = None) -> dict:
    """``{"patient": {...}, "eyes": {field: {...}}}`` for one patient's graded photos: the
    decision as ``predict`` makes it, and each eye's JSON with its ``uncertainty`` (and, with a
    paired-eye stage, its ``fused_grade``, ``paired`` and the grade and decisions it gives)."""
    table, points = ready_for_patients(bundle, photo_table(eyes), refer_share=refer_share)
    stage = bundle.paired_eyes
    decided = decide_patients(table, points).iloc[0]
    fields = list(eyes)
    deciding = [f for f, image in zip(fields, table["image_id"]) if image == decided["deciding_image"]]
    out = {}
    for k, (field, body) in enumerate(eyes.items()):
        row = table.iloc[k]
        eye = {**body, "eye": EYE_FIELDS.get(field), "uncertainty": _value(row["uncertainty"])}
        if stage:
            grade = None if pd.isna(row["grade"]) else int(row["grade"])
            eye.update(grade=grade, grade_name=None if grade is None else GRADE_NAMES[grade],
                       any_dr=_flag(row["any_dr"]), referable=_flag(row["referable"]),
                       fused_grade=_value(row["fused_grade"]), paired=bool(row["paired"]))
        out[field] = eye
    patient = {
        "decision": decided["decision"],
        "reason": decided["reason"],
        "uncertainty": _value(decided["uncertainty"]),
        "deciding_eye": deciding[0] if deciding else None,
        "eyes": fields,
        "paired_eyes": bool(stage) and bool(table["paired"].any()),
        "refer_share": points.refer_share,
    }
    return {"patient": patient, "eyes": out}

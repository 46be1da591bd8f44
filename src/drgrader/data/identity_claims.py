"""What one photo's evidence claims of its patient and eye, before :mod:`drgrader.data.identity`
weighs the photos together: the evidence row, the name its own claims are read from, and a CSV
image id cell that claims otherwise."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from drgrader.data.eyes import EYE_WORDS, eye_of_folder, eyes_named, patient_and_eye, patient_id
from drgrader.outputs import IMAGE_EXTENSIONS

# What input_rows gathers for each photo: where it is, and what each source says.
EVIDENCE_KEYS = ["path", "image_id", "source", "csv_image_id", "csv_patient", "csv_eye", "folder_patient",
                 "dicom_patient", "dicom_laterality", "person", "notes"]

_FRAME = re.compile(r"#frame[0-9]+$")
VISIT_FOLDER = "visit folder"  # a ``person`` tag of its own: the visit a <patient>/<visit>/<eye>.jpg photo is of


def evidence(path: str | Path, image_id: str, source: str | Path, *, csv_image_id: str = "", csv_patient: str = "",
             csv_eye: str = "", folder_patient: str = "", dicom_patient: str = "",
             dicom_laterality: Iterable[tuple[str, str]] = (), person: Iterable[tuple[str, str]] = ()) -> dict:
    """One photo's evidence (``source``: its file, without a DICOM frame suffix; ``csv_image_id``:
    a CSV's image id cell, a claim like its patient and eye cells (:func:`image_id_claims`);
    ``folder_patient``: its folder's name, when its own name is its eye alone (``P10/OD.jpeg``);
    ``dicom_laterality``: its header's laterality tags and what each says,
    :attr:`~drgrader.data.dicom.DicomHeader.laterality`; ``person``: what tells its person apart,
    :attr:`~drgrader.data.dicom.DicomHeader.person`); ``notes``: what the list it came from said of it, for
    its ``identity_note``)."""
    return {"path": str(path), "image_id": image_id, "source": str(source), "csv_image_id": csv_image_id,
            "csv_patient": patient_id(csv_patient), "csv_eye": csv_eye, "folder_patient": patient_id(folder_patient),
            "dicom_patient": patient_id(dicom_patient),
            "dicom_laterality": tuple(dicom_laterality), "person": tuple(person), "notes": ()}


def own_name(row: dict) -> str:
    """The name a photo's own patient and eye are read from: its image id, but its file's name
    when a CSV's image id cell renamed it and the file's name says a patient and eye (the cell is
    then a CSV claim: :func:`image_id_claims`)."""
    file_name = Path(row["source"]).stem
    if row.get("csv_image_id") and patient_and_eye(file_name):
        return file_name
    return _FRAME.sub("", row["image_id"])


def image_id_claims(row: dict) -> tuple[str, str]:
    """(patient, eye) a CSV's image id cell says where it differs from the file's own name
    (``10131_left.jpeg`` listed as ``10131_right``: ``("", "right")``), each '' where it agrees
    or says nothing: such a cell is a claim like a CSV's patient or eye cell, never taken over
    the file's name silently (a shifted cell)."""
    cell, name = row.get("csv_image_id", ""), own_name(row)
    if Path(cell).suffix.lower() in IMAGE_EXTENSIONS:  # '10007_left.jpeg': the name it gives, as a file's
        cell = Path(cell).stem
    by_id = patient_and_eye(cell) if cell and name != _FRAME.sub("", row["image_id"]) else None
    if by_id is None or len(eyes_named(cell)) > 1:
        return "", ""
    by_name = patient_and_eye(name)
    patient, named_patient = patient_named(cell), patient_named(name)
    return (patient if patient != named_patient else "", by_id[1] if by_name and by_id[1] != by_name[1] else "")


def photo_eye_claims(row: dict) -> list[tuple[str, str]]:
    """What a photo itself says of its eye, its DICOM header before its file name: ``[(who,
    eye)]`` of one evidence row (:func:`evidence`), ``who`` as the notes name it (``DICOM
    laterality``, each tag by its name when there are two; ``file name``). A name with both eyes in
    it says none; one eye word anywhere in it (``OD.jpg``, ``5_right_20240101``) is a claim.
    ``serve`` names them when it refuses a photo sent as the other eye."""
    name = own_name(row)
    tags = row["dicom_laterality"]  # each tag its own claim: ImageLaterality L against Laterality R is a contradiction
    claims = [("DICOM laterality" if len(tags) == 1 else f"DICOM {tag}", said) for tag, said in tags
              if said in EYE_WORDS.values()]
    eyes = eyes_named(name)  # "10_left", and a name of its eye alone ("OD", "Right", "OD_1": probe 36 AZ2)
    if len(eyes) == 1:
        claims.append(("file name" if name == _FRAME.sub("", row["image_id"]) else f"file name {name!r}", next(iter(eyes))))
    folder = Path(str(row["path"])).parent.name
    if eye := eye_of_folder(folder):  # an eye-per-folder layout, OD/10193.jpg
        claims.append((f"folder {folder!r}", eye))
    return claims


def patient_named(name: str) -> str:
    """The patient a photo's name says (``10_left`` -> ``10``); '' when none, or both eyes."""
    named = patient_and_eye(name)
    return patient_id(named[0]) if named and len(eyes_named(name)) == 1 else ""

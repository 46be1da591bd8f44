"""A data set of DICOM photos read as predict reads them: the headers' ``PatientID`` and
laterality are evidence beside the label file's cells (probe 43 CG5: a label file giving each
photo its own exam id split one patient's eyes across train and test, and the report said no
patient was in two splits).

As :mod:`drgrader.data.identity` weighs them: a patient or eye the label file gives stands, one
it does not give (a name like ``IMG_0001``, no eye column) is taken from the header, and where
the two disagree it is said, with a count and an example."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from drgrader.data.dicom import header_or_none
from drgrader.data.eyes import patient_id
from drgrader.data.identity_notes import note_two_people

log = logging.getLogger("drgrader")


def with_dicom_identity(df: pd.DataFrame, given: list[bool], root: Path) -> pd.DataFrame:
    """``df`` (the manifest's rows; ``given``: whether each row's patient came from a patient
    column) with the patient and eye of each DICOM photo's header where the label file gives none,
    and a warning where they disagree with what it gives."""
    dicom = df.index[df["path"].str.lower().str.endswith(".dcm")]
    if not len(dicom):
        return df
    df = df.copy()
    headers = {k: header_or_none(df.at[k, "path"]) for k in dicom}
    header_patient = pd.Series({k: patient_id(h.patient_id) if h else "" for k, h in headers.items()}, dtype=str)
    header_eye = pd.Series({k: h.eye if h else "" for k, h in headers.items()}, dtype=str)
    was_given = pd.Series(given, index=df.index)[dicom]
    take = (header_patient != "") & ~was_given
    df.loc[take.index[take], "patient_id"] = header_patient[take]
    alone = ~was_given & (header_patient == "") & (df.loc[dicom, "patient_id"] == df.loc[dicom, "image_id"])
    if alone.any():  # probe 44 CH1: anonymised headers (PatientID ANONYMOUS or empty), no patient column
        log.warning("%s: %d DICOM photo(s) have no patient in the label file, their names or their headers (PatientID "
                    "empty or anonymised; e.g. %r): each is a patient of its own, so a patient's two eyes may fall on both "
                    "sides of the split; add a patient_id column", root, int(alone.sum()), df.at[alone.index[alone][0], "image_id"])
    no_eye = (df.loc[dicom, "eye"] == "") & (header_eye != "")
    df.loc[no_eye.index[no_eye], "eye"] = header_eye[no_eye]
    other_eye = (df.loc[dicom, "eye"] != "") & (header_eye != "") & (df.loc[dicom, "eye"] != header_eye)
    if other_eye.any():
        k = other_eye.index[other_eye][0]
        log.warning("%s: %d DICOM photo(s) whose header's laterality is not the label file's eye (e.g. %r: %s by the label "
                    "file, %s by its header); the label file's is taken: check them", root, int(other_eye.sum()),
                    df.at[k, "image_id"], df.at[k, "eye"], header_eye[k])
    both = was_given & (header_patient != "")
    if both.any():
        _warn_patients_apart(df.loc[both.index[both]], header_patient[both], root)
    _warn_two_people(df.loc[dicom, "patient_id"], [h.person if h else () for h in headers.values()], root)
    return df


def _warn_two_people(patients: pd.Series, person: list, root: Path) -> None:
    """Photos of one patient whose headers name two people or two visits, by predict's rule
    (:func:`~drgrader.data.identity_notes.note_two_people`; probe 44 CH11: pooled without a word)."""
    frame = pd.DataFrame({"patient_id": patients.to_numpy(), "person": person})
    notes: list[list[str]] = [[] for _ in range(len(frame))]
    note_two_people(frame, notes)
    said = {note for row in notes for note in row}
    if said:
        log.warning("%s: %d patient(s) whose DICOM headers disagree (e.g. %s): their photos are taken as one patient's; "
                    "give each person or visit its own patient id in the label file", root, len(said), sorted(said)[0])


def _warn_patients_apart(df: pd.DataFrame, header_patient: pd.Series, root: Path) -> None:
    """Photos of one header ``PatientID`` under two of the label file's patients (an exam id per
    photo: one patient's eyes on both sides of a split), or one label patient of two PatientIDs."""
    given = df["patient_id"]
    split = given.groupby(header_patient).nunique()
    pooled = header_patient.groupby(given).nunique()
    for apart, by, of, what in ((split[split > 1], header_patient, given, "DICOM PatientID {} is the label file's patients {}"),
                                (pooled[pooled > 1], given, header_patient, "the label file's patient {} is DICOM PatientIDs {}")):
        if len(apart):
            first = apart.index[0]
            values = ", ".join(repr(v) for v in dict.fromkeys(of[by == first]))
            log.warning("%s: %d patient(s) where the label file and the DICOM headers disagree (e.g. %s): the label file's "
                        "patients are taken, so one person's eyes may be split or two people's pooled; check them", root,
                        len(apart), what.format(repr(first), values))

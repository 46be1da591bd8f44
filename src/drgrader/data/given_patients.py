"""A patient given to a photo (a list's or label file's cell, a DICOM header) against the patient its
name says: one rule for ``predict`` (:func:`~drgrader.data.identity.resolve_identity`) and for label
files (:mod:`drgrader.data.manifest`). The given patient stands; what contradicts it is noted.

Each function takes ``name_patient`` as :func:`patients_claimed_by_names` gives it: the patient a
photo's name says, blank where the name says none (a camera's counter, one given patient's shots).
"""

from __future__ import annotations

import pandas as pd

from drgrader.data.eyes import folded_patient
from drgrader.data.identity_notes import CONTRADICTORY_PATIENT, camera_counter, shots_of_one_patient

__all__ = ["given_against_names", "one_name_two_given", "patients_claimed_by_names"]


def patients_claimed_by_names(table: pd.DataFrame, given: pd.Series, name_patient: pd.Series) -> pd.Series:
    """The patient each photo's name says, blank where a name names no patient: a camera's counter
    (``IMG_0001_L``: a given patient is what it lacks, probe 55 CS1) and one given patient's shots
    (``Smith_John/1_L``, ``2_R`` given ``SJ``: probe 56 CT1)."""
    counters = name_patient.astype(str).map(camera_counter).astype(bool)
    return name_patient.where(~counters & ~_shots_of_given(table, given, name_patient), "")


def given_against_names(table: pd.DataFrame, given: pd.Series, name_patient: pd.Series,
                        notes: list[list[str]]) -> pd.Series:
    """Photos given a patient G (CSV row or DICOM header) whose name says another patient N, when
    N is the patient of another photo (given or by name) or another photo of G names a third
    patient: a shifted CSV cell, an export that gives every file one PatientID. G stands, but
    two photos whose names say two patients are never paired on a given id alone: the photo's
    eye is left unknown (never a fellow eye), and it and every photo of G and of N noted.
    Returns which photos lost their eye so."""
    patients = table["patient_id"]
    contested = pd.Series(False, index=table.index)
    rows_of = table.index.groupby(patients)  # once: a list renaming thousands of patients is no quadratic loop
    nothing = table.index[:0]
    for k in table.index[given & (name_patient != "") & (name_patient != patients)]:
        g, n = patients[k], name_patient[k]
        of_n = rows_of.get(n, nothing)
        of_g = rows_of[g][rows_of[g] != k]
        naming_others = of_g[(name_patient[of_g] != "") & (name_patient[of_g] != n)]
        if not len(of_n) and not len(naming_others):
            continue  # a CSV that renames 10_left and 10_right to P1: nothing contradicts it
        others = of_n if len(of_n) else naming_others
        ids = ", ".join(map(repr, table.loc[others, "image_id"]))
        why = (f"the patient of {ids}" if len(of_n) else
               f"while {ids}, also patient {g!r}, {'is' if len(others) == 1 else 'are'} named for another patient")
        eye = table.at[k, "eye"]
        note = (f"{CONTRADICTORY_PATIENT}: {table.at[k, 'image_id']!r} is patient {g!r} by its CSV row, DICOM header or link name, but "
                f"its name says patient {n!r}, {why}; the given patient is taken, its eye{f' ({eye})' if eye else ''} left "
                "unknown, so it is not paired as any patient's fellow eye")
        for j in dict.fromkeys([k, *of_g, *of_n]):
            notes[j].append(note)
        contested[k] = True
    table.loc[contested, "eye"] = ""
    return contested


def _shots_of_given(table: pd.DataFrame, given: pd.Series, name_patient: pd.Series) -> pd.Series:
    """Per row: a given patient's photo whose name's patient is one of that patient's shots' numbers
    (:func:`~drgrader.data.identity_notes.shots_of_one_patient`, each number of one eye, from 1)."""
    out = pd.Series(False, index=table.index)
    if table.empty:  # str.rpartition of no rows has no columns
        return out
    numbers = name_patient.astype(str).str.rpartition("/")[2]
    digits = given & numbers.str.fullmatch(r"\d{1,4}")
    if not digits.any():
        return out
    # numbered from 1, as a camera's shots are (10_left given 12 beside 12_right: a shifted cell, said)
    firsts = numbers[digits].astype(int).groupby(table.loc[digits, "patient_id"]).min()
    for patient in firsts.index[firsts <= 1]:
        rows = table.index[given & (table["patient_id"] == patient)]
        eyes = table.loc[rows, "eye"]
        one_eye = bool(eyes.where(eyes != "").groupby(numbers[rows]).nunique().le(1).all())
        if digits[rows].all() and shots_of_one_patient(set(numbers[rows]), one_eye, {"left", "right"} <= set(eyes)):
            out[rows] = True
    return out


def one_name_two_given(table: pd.DataFrame, given: pd.Series, name_patient: pd.Series, notes: list[list[str]]) -> None:
    """Photos named for one patient (``10131_left``, ``10131_right``) but given two (CSV cells
    ``P7``, ``P8``: a typo, a row off by one): kept apart as given, each noted (probe 35 AY8: two
    one-eyed patients without a word); names that differ as a retyped id does (``0010131_left``) too."""
    named = given & (name_patient != "")
    for _, group in table[named].groupby(name_patient[named].map(folded_patient)):
        patients = sorted(set(group["patient_id"]))
        if len(patients) < 2:
            continue
        ids = ", ".join(map(repr, group["image_id"]))
        n = name_patient[group.index[0]]
        for k in group.index:
            notes[k].append(f"{CONTRADICTORY_PATIENT}: {ids} are named for one patient ({n!r}) but given "
                            f"{', '.join(map(repr, patients))}; kept apart as given (one patient given to both makes them one)")

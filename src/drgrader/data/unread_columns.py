"""A list's columns that predict does not read but whose values say which eye a photo is (R, L, OD,
OS: probe 58 BV8) or pair photos predict takes as two patients' eyes (a patient column under a name no
list of words holds: probe 57 BU1, probe 58 BV3): warned by their values, whatever their names, so
that the eyes and the pairing are not lost without a word."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from drgrader.data.eyes import EYE_WORDS
from drgrader.data.patient_columns import eye_values, no_patient_s_id

log = logging.getLogger("drgrader")

# A value on more photos of one eye than this is no patient's (a site, a grade, a day shared by many);
# a patient's own allows retakes and a second field of an eye.
_MOST_PHOTOS_OF_AN_EYE = 3


def eye_columns(unread: pd.DataFrame) -> dict[str, pd.Series]:
    """The columns not read whose values are eyes, each as every row's eye (``left``, ``right``, '')."""
    return {column: unread[column].astype(str).str.strip().str.lower().map(lambda c: EYE_WORDS.get(c, ""))
            for column in unread.columns if eye_values(unread[column])}


def warn_eye_columns_not_read(csv: Path, unread: pd.DataFrame, found: dict[str, pd.Series], eyes: pd.Series,
                              images: pd.Series, *, eye_col: str | None) -> None:
    """An eye column not read (``found``: :func:`eye_columns`) whose eyes the photos as read lack or
    contradict (``eyes``: each row's, from the eye column or the photo's name): said naming it, never
    as two people under one id (probe 58 BV8: `Seite`, `Côté`, `Lado` of R and L)."""
    for column, by_column in found.items():
        off = by_column[(by_column != "") & (eyes != by_column)].index
        if not len(off):  # the eyes as read agree: nothing is lost
            continue
        k = off[0]
        read = f"{eyes[k]} eye" if eyes[k] else "no eye"
        how = (f"predict reads the eyes from {eye_col!r}: which is right?" if eye_col else
               "rename it 'eye' if it is each photo's eye")
        log.warning("%s: column %r is not read, but its values are eyes: it looks like the eye column, and %d photo(s) "
                    "have no eye or another one as read (e.g. %r: %r there, %s as read): %s", csv, column[:40], len(off),
                    images[k][:80], unread[column][k].strip()[:10], read, how)


def warn_columns_pairing_eyes(csv: Path, unread: pd.DataFrame, patients: pd.Series, eyes: pd.Series,
                              images: pd.Series, found: dict[str, pd.Series]) -> None:
    """A column not read (not an eye column, nor one that is no patient's id by its name or cells: a
    grade, a date, a site) one of whose values holds a left and a right photo that predict takes as two
    one-eyed patients (``patients``: as read, '' a photo's own; ``eyes``: as read, else from an eye
    column not read, ``found``): a patient column under a name no list holds (`Kunde`, `Fallnummer`),
    whose pairing would be lost without a word (probe 57 BU1). Empty cells and retakes aside, one pair
    suffices (probe 58 BV3: a one-patient list, a retake, an empty cell, one pair named alike)."""
    eye_column = next(iter(found), None)
    known = eyes.where(eyes != "", found[eye_column] if eye_column else "")
    people = patients.where(patients != "", pd.Series([f"\0{k}" for k in patients.index], index=patients.index))
    both = known[known != ""].groupby(people[known != ""]).nunique()
    one_eyed = people.map(both).eq(1)  # a patient with both eyes as read is paired already
    for column in unread.columns:
        cells = unread[column].astype(str).str.strip()
        if column in found or no_patient_s_id(column, cells):
            continue
        for value, rows in cells[(cells != "") & one_eyed].groupby(cells[(cells != "") & one_eyed]).groups.items():
            if cells[cells == value].groupby(known[cells == value]).size().max() > _MOST_PHOTOS_OF_AN_EYE:
                continue
            left = [k for k in rows if known[k] == "left"]
            right = [k for k in rows if known[k] == "right"]  # another patient: each is one-eyed
            if not left or not right:
                continue
            first, other = sorted((left[0], right[0]))
            who = [repr(patients[k]) if patients[k] else f"{images[k][:80]!r} (no patient)" for k in (first, other)]
            log.warning("%s: column %r is not read, but its values pair the photos as patients' two eyes (e.g. %r: "
                        "patients %s and %s as read, one eye each%s): if it is the patient's id, name it patient_id",
                        csv, column[:40], value[:40], *who,
                        f" by column {eye_column[:40]!r}, not read either" if eye_column and
                        "" in (eyes[first], eyes[other]) else "")
            break

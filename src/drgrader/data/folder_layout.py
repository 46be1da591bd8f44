"""The folder rules of identity (:mod:`drgrader.data.identity` uses them): where a patient read from
file names is named in several folders (two clinics' patient 10, or one patient's eyes sorted by eye or
visit), and where a patient-per-folder export holds visit folders (``1001/2015/OD.jpg``)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from drgrader.data.eyes import EYE_WORDS, eye_of_folder, folder_patient, folders_of_visits, visit_folder
from drgrader.data.identity_notes import EYES_IN_FOLDERS, SAME_NAME_IN_FOLDERS, VISIT_FOLDER_READ


def folder_labels(folders: set[str]) -> dict[str, str]:
    """Short distinct names of folders: relative to their common folder (to its parent when
    one of them is that common folder)."""
    absolute = {f: Path(os.path.abspath(f)) for f in folders}
    common = Path(os.path.commonpath([str(p) for p in absolute.values()]))
    base = common.parent if common in absolute.values() else common
    return {f: p.relative_to(base).as_posix() for f, p in absolute.items()}


def _folder_eye(name: str) -> str | None:
    """The eye a folder of named photos is named for: ``r/``, ``OD/``, ``Left Eye/`` (probe 38
    BB10). One rule for both uses below (probe 39 BC2: ``L/`` was an eye folder to one, not the other)."""
    return EYE_WORDS.get(name.lower()) or eye_of_folder(name)


def _patient_folder(source: str) -> str:
    """A named photo's folder, or the one above a folder named for its eye (probe 38 BB6: siteA/left/, siteB/right/)
    or for a visit (a/2015/, a/2023/: probe 48 BL5; two visits are noted as such)."""
    parent = Path(source).parent
    return str(parent.parent if _folder_eye(parent.name) or visit_folder(parent.name) else parent)


def split_by_folder(table: pd.DataFrame, from_name: pd.Series, notes: list[list[str]]) -> None:
    """A patient read from names, one of whose eyes is named in several folders: one patient
    per folder (``<folder>/<patient>``)."""
    named = table[from_name & (table["eye"] != "")]
    folders = named["source"].map(_patient_folder)
    spread = folders.groupby([named["patient_id"], named["eye"]]).nunique()
    for patient in sorted({p for (p, _), n in spread.items() if n > 1}):
        rows = table.index[from_name & (table["patient_id"] == patient)]
        own = table.loc[rows, "source"].map(_patient_folder)
        labels = folder_labels(set(own))
        eyes = sorted(e for (p, e), n in spread.items() if p == patient and n > 1)
        where = ", ".join(sorted(labels.values()))
        for k in rows:
            # a patient read from its folder (P10/OD.jpeg) is that folder's label; else the folder's and the name's
            qualified = labels[own[k]] if Path(labels[own[k]]).name == patient else f"{labels[own[k]]}/{patient}"
            table.at[k, "patient_id"] = qualified
            notes[k].append(f"{SAME_NAME_IN_FOLDERS}: the {' and '.join(eyes)} eye of patient {patient!r} is named in "
                            f"{where}; taken as a patient per folder, this one {qualified!r}")
    # Its two eyes in two folders: one patient (photos sorted by visit or camera), but as likely
    # two clinics' patients numbered alike, so said; not when each folder is named for its eye.
    split = {p for (p, _), n in spread.items() if n > 1}
    for patient, folder_of in folders.groupby(named["patient_id"]):
        named_for_eye = all(_folder_eye(Path(f).name) == named.at[k, "eye"] for k, f in folder_of.items())
        if patient in split or folder_of.nunique() < 2 or named_for_eye:
            continue
        labels = folder_labels(set(folder_of))
        # The file's name after its folder: a CSV row's image id may already hold the folder (cA/10_left).
        listing = ", ".join(f"{labels[f]}/{Path(named.at[k, 'image_id']).name}" for k, f in folder_of.items())
        for k in table.index[from_name & (table["patient_id"] == patient)]:
            notes[k].append(f"{EYES_IN_FOLDERS}: the eyes of patient {patient!r} are in {len(labels)} folders ({listing}); "
                            "taken as one patient's eyes (if the folders number patients alike, give the patients in a CSV)")


def visits_in_folders(photos: list[dict]) -> None:
    """A photo named by its eye alone in a folder named like a visit (``1001/2015/OD.jpg``): the folder
    above is its patient when the layout shows visits (:func:`~drgrader.data.eyes.folders_of_visits`;
    probe 48 BL5). Else the folder is the patient, as patient ids may look like years (``2001/OD.jpg``,
    ``clinic/2002/OD.jpg``; probe 49 BM2): read as visits, one patient would take many people's eyes."""
    of_visits = folders_of_visits((str(Path(row["source"]).parent.parent), Path(row["source"]).parent.name) for row in photos)
    for row in photos:
        parent = Path(row["source"]).parent
        if row.get("folder_patient") and str(parent.parent) in of_visits and parent.parent.name:
            row["folder_patient"] = folder_patient(parent.parent.name)
            # said on each photo, as a patient folder named like a year is read so too (probe 52 BP1: `site2/2001`)
            row["notes"] = (*(row.get("notes") or ()), f"{VISIT_FOLDER_READ}: patient {row['folder_patient']!r} is the "
                            f"folder above {parent.name!r}, read as a visit's folder (a follow-up export); if "
                            f"{parent.name!r} is the patient, give the patients in a CSV")

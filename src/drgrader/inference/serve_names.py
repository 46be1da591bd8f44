"""How the web demo's two-eye check (:func:`~drgrader.inference.serve_patient.eye_mix_up`) reads an
upload's name and folders: the patient and eye its folders say, the patient's number its name holds
(not a camera's, phone's or messenger's counter), and a date or visit as one spelling."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from drgrader.data.eyes import eye_alone, eye_of_folder, eyes_named, folded_patient, folder_patient, uncopied, visit_folder
from drgrader.data.identity_claims import VISIT_FOLDER, patient_named
from drgrader.data.identity_notes import DATE_ID, camera_counter

# A date in a name (20240101, 2024-01-01, 01.01.2024), perhaps with its time (_103015, T10:30:15, " at 10.30.15",
# a phone's _103015123): the day of an exam, never a patient's number (probe 58 BV1)
_DATE_IN_NAME = re.compile(r"(?<!\d)(?P<day>(?:19|20)\d\d(?P<s>[-_.]?)(?:0[1-9]|1[0-2])(?P=s)(?:0[1-9]|[12]\d|3[01])"
                           r"|(?:0?[1-9]|[12]\d|3[01])(?P<t>[-_./])(?:0?[1-9]|1[0-2])(?P=t)(?:19|20)\d\d)"
                           r"(?:(?:[-_T ]| at )\d\d[-.:]?\d\d(?:[-.:]?\d\d(?:\d{3})?)?)?(?!\d)", re.IGNORECASE)
# A messenger's or a DICOM export's counter at the end of a name (WhatsApp's IMG-20240501-WA0003, a DICOM
# media's IM0001, IM000001), and a shot's counter of 1-2 digits (Scan_1, fundus2, IMG_20240501_103015_1): probe 59 BW6
_KNOWN_COUNTER = re.compile(r"(?:^|(?<=[-_ ]))(?:WA|IM)\d{4,6}$", re.IGNORECASE)
_SHORT_COUNTER = re.compile(r"[-_ ]?(?<!\d)\d{1,2}$")
# ... but not after a word that names the patient (Patient2, Pt 14, P7, Case_3, ID-12): that number is the patient's
_PATIENT_WORD = re.compile(r"(?:^|[^a-z])(?:patient|pat|pt|p|subject|subj|sub|s|case|id|mrn|no|nr|num|number)$", re.IGNORECASE)
# A folder named by a letter, perhaps numbered (R/, L/, R0/ .. R3/: NHS grades, L1/: a round): no eye, as predict reads it
_LETTER_FOLDER = re.compile(r"^(?:r|l|re|le)[_\- ]?\d{0,3}$", re.IGNORECASE)
# A visit's word in its spellings (V1 and Visit1, BL and Baseline, FU2 and Follow-up 2): one visit's
_VISIT_SPELT = re.compile(r"^(?P<word>[a-z]+?)[-_ ]?(?P<n>\d{0,3})$", re.IGNORECASE)
_VISIT_WORDS = {"bl": "baseline", "v": "visit", "y": "year", "yr": "year", "m": "month", "w": "week", "t": "tp",
                "followup": "fu"}


def uncounted(name: str) -> str | None:
    """A name without a counter at its end (``IMG-20240501-WA0003`` -> ``IMG-20240501``, ``Scan_1`` -> ``Scan``,
    ``IMG_20240501_103015_2`` -> ``IMG_20240501_103015``, ``IM0001`` -> ''), or None when it has none or its number is a
    patient's (``Patient2``, ``P7``, ``10007``, ``Patient014``: 3 or more digits after a word)."""
    name = uncopied(name) or name
    known = _KNOWN_COUNTER.search(name)
    counter = known or _SHORT_COUNTER.search(name)
    rest = name[:counter.start()].rstrip("-_ ") if counter else ""
    # a known counter may be the whole name (IM0001); a number alone (1.jpg, 2.jpg) may be a patient's
    return rest if counter and (rest or known) and not _PATIENT_WORD.search(rest) else None


def name_number(name: str) -> str:
    """The number an id or a file name's stem gives its patient (``Patient2`` -> ``2``, ``5001_R_20240101``
    -> ``5001``, ``10007_2024`` -> ``10007``): its longest run of digits once its dates are out, a year
    only when there is no other; '' for none, a camera's counter (``IMG_0001``), a phone's or messenger's
    (``IMG-20240501-WA0003``, ``IM0001``, ``Scan_1``, ``fundus2``: probe 59 BW6) or a date or visit. A copy's
    marks are no number (``image (1)``, ``image (2)``: a browser's downloads of one name)."""
    name = uncopied(name) or name
    if camera_counter(name) or DATE_ID.match(name) or eye_alone(re.sub(r"[_\- ]?\d{1,3}$", "", name)):
        return ""  # (OD_1, R2: a shot of an eye named alone)
    if (rest := uncounted(name)) is not None and (_KNOWN_COUNTER.search(name) or re.search(r"[a-z]{3}$", rest, re.IGNORECASE)):
        name = rest  # a counter after a word (Scan_1, eye2), or a known one (WA0003): a shot's, not the patient's
    runs = re.findall(r"\d+", _DATE_IN_NAME.sub(" ", name))
    runs = [r for r in runs if not re.fullmatch(r"(?:19|20)\d\d", r)] or runs
    return max(runs, key=len, default="")


def counted_alike(names: list[str]) -> bool:
    """Two names that are one text but for their counters (``Scan_1``, ``Scan_2``; ``IMG_20240501_103015_1``,
    ``..._2``; ``IM0001``, ``IM0002``): one camera's, phone's or messenger's shots (probe 59 BW6)."""
    rests = [uncounted(name) for name in names]
    return rests[0] is not None and rests[0] == rests[1]


def exam_day(exam: str) -> str:
    """A date's or visit's id as one spelling, to compare two: a date without its time (a phone's
    ``20240101_103015`` and ``20240101_103020`` are one day's); a visit's word as one word (``V1`` and
    ``Visit1``, ``BL`` and ``Baseline``: probe 59 BW6)."""
    if day := _DATE_IN_NAME.fullmatch(exam):
        return folded_patient(day["day"])
    if visit := _VISIT_SPELT.fullmatch(re.sub(r"[-_ ](?=up)", "", exam, flags=re.IGNORECASE)):  # Follow-up 1: followup1
        word = visit["word"].lower()
        return f"{_VISIT_WORDS.get(word, word)}{int(visit['n']) if visit['n'] else ''}"
    return folded_patient(exam)


def folder_eye(folder: str, *, named: bool) -> str | None:
    """The eye an upload's folder names: predict's eye folder (:func:`~drgrader.data.eyes.eye_of_folder`:
    ``OD/``, ``Left/``, ``Right Eye/``; never a letter, ``L/`` or ``R0/``, as predict reads none: probe 59 BW10),
    or, above a photo whose name says no eye (``named``: it does), a folder that says one eye as a name
    says it (:func:`~drgrader.data.eyes.eyes_named`: ``Fundus_OD/``, ``OD_Photos/``, ``Right Eye Photos/``,
    ``OD (1)/``, ``1001_OD/``: probe 59 BW11)."""
    if eye := eye_of_folder(folder):
        return eye
    if named or _LETTER_FOLDER.match(uncopied(folder) or folder):
        return None
    eyes = eyes_named(folder)
    return next(iter(eyes)) if len(eyes) == 1 else None


def folder_eye_said(name: str) -> list[tuple[str, str]]:
    """What an upload's folder says of its eye (:func:`folder_eye`), as
    :func:`~drgrader.data.identity_claims.photo_eye_claims` says it: ``[(who, eye)]``, or none."""
    path = PurePosixPath(name)
    folder = path.parent.name
    eye = folder_eye(folder, named=bool(eyes_named(path.stem))) if folder else None
    return [(f"folder {folder!r}", eye)] if eye else []


def folder_claims(name: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(patient, person) an upload's folders say, for a photo whose name gives no patient (``OD.jpg``,
    ``IMG_0001.jpg``, ``scan.jpg``: two such photos in two patients' folders are no pair; probe 59 BW3): its
    folder (``1001/OD.jpg``, ``Smith John/DSC_0042.JPG``), or the folder above a visit's (``1001/V1/OD.jpg``),
    whose visit tells two exams apart, or above its eye's (``1001/OD/IMG_0001.jpg``, ``1001/Fundus_OD/``:
    probe 58 BV5), or a folder of a patient's number and eye (``1001_OD/IMG_0001.jpg``: probe 59 BW11)."""
    path = PurePosixPath(name)
    folder, above = path.parent.name, path.parent.parent.name
    if not folder or patient_named(path.stem) or name_number(path.stem):
        return "", ()
    visit = folder if visit_folder(folder) and above else ""
    eye = folder_eye(folder, named=bool(eyes_named(path.stem)))
    own = patient_named(folder) if eye and not eye_of_folder(folder) else ""
    if own and name_number(own):  # 1001_OD/: the folder's own patient, as a name's
        return own, ()
    holder = above if visit or eye else folder
    # an eye's or a letter's folder is no patient (L/IMG_0001.jpg + R/IMG_0002.jpg: one patient's eyes by letter)
    patient = folder_patient(holder) if holder and not eye_of_folder(holder) and not _LETTER_FOLDER.match(holder) else ""
    return patient, ((VISIT_FOLDER, visit.casefold()),) if visit else ()

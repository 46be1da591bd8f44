"""Which eye, and whose, from a photo's file name.

Common names end in the eye after a separator (``_``, ``-`` or a space), in any case:

    10_left, 10_right                      Kaggle EyePACS
    Patient001_L, Patient001_R
    Patient001_OD, Patient001_OS           oculus dexter (right), oculus sinister (left)
    10193_OG, 10193_OE, 10193_OI, 10_LT    the left eye in French, Portuguese, Spanish, English notes
    10606_derecho, 5001_links, 10193left   other languages' words; an eye word glued to the number
    张三_左眼, 10193_левый, 10193左, 10193_O.D.   other scripts' (drgrader.data.eye_words); the Latin dotted
    10_OS_left                             the eye said twice: patient 10
    P-17-left, "anna k OS"
    10_left (1), 10_left - Copy, 10_left copy 2   a browser's, Windows' or macOS's copy of 10_left
    10_left_2, 10_OS_macula, 10_left_disc  a second photo (field) of that eye

Anything else (``eyeA``, ``IDRiD_001``, ``12_l1``) says nothing. A name that also names the
other eye (``P7_OD_OS``, ``left_10_right``) contradicts itself: :func:`eyes_named` finds those,
and :mod:`drgrader.data.identity` then reads neither patient nor eye from it.

:func:`patient_id` is the one spelling of a patient id, wherever it comes from (a CSV cell, a
DICOM ``PatientID``, a name): what a spreadsheet or R writes for a missing value means no patient.
:func:`folded_patient` is how two ids are compared when one may be the other retyped (``P7``,
``p7``, ``P-7``, ``Р7`` in Cyrillic): they stay apart, and :mod:`drgrader.data.identity` notes them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from pathlib import PurePosixPath

from drgrader.data.eye_words import EYE_WORDS, LEFT_WORDS, RIGHT_WORDS
from drgrader.outputs import escape_name, has_stray_bytes

# What R, pandas, spreadsheets and forms write for a missing value: no patient, never one patient
# "NA" of every photo that lacks one. Compared casefolded. pandas' own default list
# (``pandas._libs.parsers.STR_NA_VALUES``, private, so written out here: ``<NA>`` is what
# ``astype(str)`` writes for a nullable column's missing value, ``#N/A`` what Excel's VLOOKUP
# writes for a missing match), what anonymising exports write as DICOM PatientID, and the
# markers of clinical and statistical records: "." (SAS, Stata), "N/K" / "NK" (NHS "not known"),
# "TBC" / "TBA" (to be confirmed, to be assigned).
PANDAS_NA_WORDS = frozenset({"#n/a", "#n/a n/a", "#na", "-1.#ind", "-1.#qnan", "-nan", "1.#ind", "1.#qnan", "<na>",
                             "n/a", "na", "null", "nan", "none"})
MISSING_PATIENT_WORDS = PANDAS_NA_WORDS | {"n/a n/a", "unknown", "-", "?", "anonymous", "anon", ".", "n/k", "nk", "tbc",
                                           "tba"}
# The same markers spelt out, dotted, spaced or in a person-name value (``not known``, ``N.K.``,
# ``ANONYMOUS^PATIENT``, ``NONE^NONE``, ``ANONYMIZED_ID``, ``no patient id``): an id every word of which
# is one of these (words split at spaces, ``^``, ``_``, ``.``, ``-``, ``/``), or whose words run together
# are one (``N.K.`` -> ``nk``), is no patient. Some other languages' too (probe 35 AY3); such a list is
# never complete. An id of no letter or digit at all (``*``, ``--``, ``...``), of x's (``xxx``, a form's
# filler) or in brackets without a digit (``(blank)``, what an Excel pivot writes for an empty cell) is
# no patient either (probe 34 AX3, AX5; probe 35 AY3, AY4).
_MISSING_WORDS = frozenset({
    "na", "nk", "nd", "nv", "sn", "ka", "oa", "unk", "tbc", "tba", "tbd", "unknown", "missing", "pending", "none", "nil",
    "null", "nan", "nat", "undefined", "blank", "empty", "redacted", "withheld", "notknown", "notrecorded",
    "notavailable", "notgiven", "nonegiven", "noid", "noname", "tobeconfirmed", "tobeassigned", "tobedetermined",
    "no", "not", "known", "recorded", "available", "given", "to", "be", "confirmed", "assigned", "determined",
    "id", "patient", "pat", "name", "number", "of",
    # what anonymisers write (DICOM PatientID)
    "anonymous", "anon", "anonymised", "anonymized", "anonymouspatient", "unknownpatient", "deidentified",
    "de", "identified", "removed", "deleted", "masked", "hidden", "confidential", "private",
    # other languages: German, French, Spanish, Italian, Dutch, Portuguese
    "unbekannt", "nicht", "bekannt", "nichtbekannt", "keine", "angabe", "inconnu", "inconnue", "desconocido",
    "desconocida", "sconosciuto", "onbekend", "desconhecido", "sin", "dato", "datos"})
# Words of that list that are also initials or short names (probe 36 AZ8: "KA_left" was no patient):
# written alone they are an id; spelt out, dotted or slashed ("k.A.", "S/N", "N.D.") a missing value.
_ALSO_INITIALS = frozenset({"nd", "nv", "sn", "ka", "oa", "no", "de", "to", "be", "of", "id", "sin", "pat"})
_ID_WORDS = re.compile(r"[\s^_.\-/]+")
_NO_ID = re.compile(r"^(?!#{2,}$)(?:[^\w]|_)*$|^x{2,}$|^[(<\[][^\d]*[)>\]]$", re.IGNORECASE)

# What a spreadsheet saves "as displayed" in place of an id it could not show: a long number in
# scientific notation (``1.23457E+11``; ``1,23457E+11`` with a decimal comma), its digits lost, or
# a run of ``#`` (a column too narrow). Every such row would be one patient of strangers' eyes.
_SHORTENED_NUMBER = re.compile(r"^[0-9](?:[.,][0-9]+)?e\+[0-9]{2,3}$", re.IGNORECASE)
_TOO_NARROW = re.compile(r"^#{2,}$")
# Past 15 significant digits a spreadsheet keeps zeros (``440106199001011234`` -> ``440106199001011000``).
_ROUNDED_NUMBER = re.compile(r"^[1-9][0-9]{14}0+$")
# What a spreadsheet shows for a formula that failed (``=VLOOKUP(...)`` whose source was deleted):
# the id is lost on every row, so they would all be one patient (probe 34 AX2). By shape, in any
# language and program (``#REF!``, ``#WERT!``, ``#NOM?``, ``#N/D``, ``#NV``, LibreOffice's ``Err:502``;
# probe 35 AY1); ``#N/A`` itself is a missing value (PANDAS_NA_WORDS). A ``#`` and letters alone, no
# digit, is one too (``#YOK``, ``#PUUTTUU``, ``#NENÍ_K_DISPOZICI``: ``#N/A`` in Turkish, Finnish, Czech;
# probe 36 AZ1): no id is a ``#`` before a word.
_ERROR_VALUE = re.compile(r"^(?!#n/?a$)(?:#[^\s\d#][^\s#!?]{0,14}[!?]|#[^\W\d_]{1,3}/[^\W\d_]{1,3}|#[^\W\d_][^\W\d]{1,24}|"
                          r"err:[0-9]{3})$", re.IGNORECASE)

_INNER_EXTENSION = re.compile(r"\.(?:jpe?g|png|tiff?|bmp|gif|webp|dcm|jfif|jpe)$", re.IGNORECASE)
_WORDS = re.compile(r"[^_\- ]+")
_LONG_EYE_WORDS = set(EYE_WORDS) - {"l", "r"}  # single letters inside a name are too often something else
_RIGHT, _LEFT, _LONG = "|".join(RIGHT_WORDS), "|".join(LEFT_WORDS), "|".join(_LONG_EYE_WORDS)
# A name that is only its eye, in a few languages, perhaps numbered ("R", "RE", "OD1", "rechts_2", "gauche").
_BARE_EYE = re.compile(rf"^(?:(?P<right>r|re|{_RIGHT})|(?P<left>l|le|{_LEFT}))[_\- ]?[0-9]{{0,3}}$", re.IGNORECASE)
# A name that is its eye and nothing else ("OD", "Right", "left eye", "OS (1)"): a patient-per-folder
# export's (P10/OD.jpeg), whose folder is the patient (probe 42 CF3). Not with a number after the eye
# ("OD_1", "R2"): that may be the patient's.
_EYE_ONLY = re.compile(rf"^(?:(?P<right>r|re|{_RIGHT})|(?P<left>l|le|{_LEFT}))(?:[_\- ]?eye)?$", re.IGNORECASE)
# What a browser, Windows or macOS appends to a copy's name: "10_left (1)", "10_left - Copy (2)", "10_left copy 2".
_COPY_SUFFIX = re.compile(r"(?: ?\(\d{1,2}\)| - (?:copy|kopie)(?: \(\d+\))?| copy(?: \d+)?| ?\(copy\))$", re.IGNORECASE)  # "(1)" unspaced: probe 39 BC1; not "(1965)": probe 56 BT15
# a file manager's copy before the name ("Copy of 10_left", "Kopie von 10_left": probe 55 BS6)
_COPY_PREFIX = re.compile(r"^(?:copy(?: \(\d+\))? of |kopie von |copie de |copia de |copia di )", re.IGNORECASE)


def _composed(name: str) -> str:
    """:func:`uncopied`, in Unicode NFC: macOS writes names decomposed (``vänster``, a Korean word as its letters)."""
    return unicodedata.normalize("NFC", uncopied(name))


def uncopied(name: str) -> str:
    """A file name (or image id) without its folders and a copy's marks (``Copy of 10_left (1)``: ``10_left``)."""
    return _COPY_PREFIX.sub("", _COPY_SUFFIX.sub("", PurePosixPath(name.replace("\\", "/")).name.strip()))


def folder_patient(name: str) -> str:
    """The patient a patient's folder names, without a copy's marks (``1002 - Copy``, ``1003 (2)``,
    ``Copy of 1001``: a folder copied or downloaded twice is the same patient's; probe 55 BS11)."""
    return patient_id(uncopied(name) or name)
# The eye as a name's last word; the Latin abbreviations dotted too ("10193_O.D.", "10193 O.S"; probe 59 BW1).
_NAME = re.compile(rf"^(?P<patient>.*[^_\- ])[_\- ]+(?P<eye>l|r|{_LONG}|o\.[ds]\.?)$", re.IGNORECASE)
# An eye word glued to the patient's number ("10193left", "10193Right"; probe 58 BV2): only the long
# English words after a digit ("12_l1", "DSC0042R" say nothing), and another script's, which its writers
# do not space ("10193左", "10193левый"), and 左眼 / 右眼 / 左目 / 右目 after a name too ("张三左眼"; probe 59 BW1).
_OTHER_SCRIPTS = "|".join(w for w in (*RIGHT_WORDS, *LEFT_WORDS) if not w.isascii())
_GLUED = re.compile(rf"^(?P<patient>.*[0-9]|.*[^\W\d_](?=[左右][眼目]$))(?P<eye>left|right|{_OTHER_SCRIPTS})$", re.IGNORECASE)
# A second photo of an eye: a camera's number or the field after a long eye word ("5_left_2",
# "6_OS_macula", "6_left_disc"): the same patient and eye (identity notes several photos of one eye).
# And the word eye after it ("10_left_eye", "10193_linkes_Auge"; probe 59 BW1).
_SHOT = re.compile(rf"^(?P<eye_named>.*[_\- ](?:{_LONG}))[_\- ]+(?:\d{{1,2}}|macula|macular|disc|disk|nasal|temporal|"
                   r"f\d|field ?\d|eye|auge)$", re.IGNORECASE)


def patient_id(text: str) -> str:
    """A patient id as one spelling: stripped, in Unicode NFC (macOS writes file names in NFD, so
    ``Müller`` may come in two byte spellings of one name); ``""`` for a missing-value placeholder
    (:data:`MISSING_PATIENT_WORDS`: ``NA``, ``#N/A``, ``<NA>``, ``null``, ``unknown``, ``ANONYMOUS``, ..., any case)."""
    text = unicodedata.normalize("NFC", text).strip()
    folded = text.casefold()
    words = [w for w in _ID_WORDS.split(folded) if w]
    missing = "".join(words) in _MISSING_WORDS or (words and all(w in _MISSING_WORDS for w in words))
    if folded in _ALSO_INITIALS:  # "KA" alone is someone's initials; "k.A.", "K A" the German "keine Angabe"
        missing = False
    if folded in MISSING_PATIENT_WORDS or _NO_ID.match(text) or missing:
        return ""
    return text


_NEGATIVE_NUMBER = re.compile(r"^-[0-9]+(?:\.0+)?$")
_NUMBER = re.compile(r"^[0-9]+(?:\.0+)?$")


def placeholder_ids(cells) -> set[str]:
    """The patient ids of a list's column that stand for none: ids holding no digit where nearly
    all others do (4 in 5 of at least 5: a missing-value word of some language the lists above
    lack, ``nieznany``; probe 35 AY3's second net), and negative numbers where every other id is a
    number and none is negative (``-1``, ``-999``: what ``fillna(-1)`` writes; probe 36 AZ3). Read
    as no patient, not as one patient of every photo so marked."""
    ids = [i for i in (patient_id(str(c)) for c in cells) if i]
    has_digit = [any(c.isdigit() for c in i) for i in ids]
    found = set()
    if len(ids) >= 5 and sum(has_digit) >= 0.8 * len(ids):
        found = {i for i, digit in zip(ids, has_digit) if not digit}
    negative = {i for i in ids if _NEGATIVE_NUMBER.match(i)}
    others = [i for i in ids if i not in negative and i not in found]
    if negative and others and all(_NUMBER.match(i) for i in others):
        found |= negative
    return found


def long_ids_kept(cells) -> bool:
    """Whether a column holds a number of 16 or more digits with a digit other than 0 after the
    15th: it was not rounded, so its ids ending in 0 are real (probe 36 AZ9: a 16-digit national id
    ending in 0 was refused as rounded)."""
    return any(len(c := str(cell).strip()) >= 16 and c.isdigit() and c[15:].strip("0") for cell in cells)


def spreadsheet_damage(cell: str, *, kept_digits: bool = False) -> str | None:
    """What is wrong with a patient cell a spreadsheet mangled (``1.23457E+11``, ``#######``) and
    how to fix it, as the end of a message (``patient '1.23457E+11' <this>``); None for any other
    cell. Predict's lists and label files refuse such a row. ``kept_digits``: its column kept a
    long id's last digits (:func:`long_ids_kept`), so a 16-digit id ending in 0 is one."""
    cell = cell.strip()
    if "\n" in cell or "\r" in cell:  # probe 38 BB10
        return "holds a line break (Alt+Enter in a spreadsheet cell?): write the id on one line"
    if _SHORTENED_NUMBER.match(cell):
        return "is a number a spreadsheet shortened (its digits are lost): format the column as text and export again"
    # probe 35 AY2; beside kept long ids, one zero past the 15th digit is one id in ten (probe 36 AZ9), two or more
    # is Excel's rounding still (probe 37 BA2)
    if _ROUNDED_NUMBER.match(cell) and not (kept_digits and len(cell) == 16):
        return ("is a number a spreadsheet rounded to 15 digits (the last ones are zeros, the id is lost): format the "
                "column as text and export again")
    if _ERROR_VALUE.match(cell):
        return ("is an error value a spreadsheet shows for a formula that failed (the id is lost): fix the column, "
                "paste it as values and export again")
    if _TOO_NARROW.match(cell):
        return ("is what a spreadsheet shows in a column too narrow (the id is lost): format the column as text and "
                "export again")
    return None


def patient_and_eye(name: str) -> tuple[str, str] | None:
    """``"Patient001_L"`` -> ``("Patient001", "left")``; ``None`` when the name carries no eye.

    ``name`` is an image id or file name without its extension; folders in it are ignored.
    """
    stem = _composed(name)
    # a second extension Windows hid ("10_left.jpeg.jpg": the id keeps ".jpeg"; probe 34 AX12)
    stem = _INNER_EXTENSION.sub("", stem)
    if shot := _SHOT.match(stem):
        stem = shot["eye_named"]
    match = _NAME.match(stem) or _GLUED.match(stem)
    if match is None:
        return None
    patient, eye = match["patient"], EYE_WORDS[match["eye"].lower().replace(".", "")]
    # The eye said twice (``10_OS_left``): the patient is ``10``, not ``10_OS``. (Two different
    # eyes are a contradiction, left to eyes_named.)
    while (again := _NAME.match(patient)) and EYE_WORDS[again["eye"].lower().replace(".", "")] == eye:
        patient = again["patient"]
    return patient, eye


# A folder named for a visit (``2015``, ``2023-05-02``, ``baseline``, ``visit2``, ``FU1``, ``month6``): in a
# ``<patient>/<visit>/<eye>.jpg`` follow-up export, the patient is the folder above it (probe 48 BL5).
# A visit's word, perhaps numbered (Baseline, BL, V1, FU2, M12, T0): a folder's or a name's
VISIT_WORD = (r"(?:baseline|bl|screening|follow[-_ ]?up|fu|visit|v|year|yr|y|month|m|week|w|exam|session|round|tp|t)"
              r"[-_ ]?\d{0,3}")
_VISIT_WORD = re.compile(rf"^{VISIT_WORD}$", re.IGNORECASE)
_VISIT_FOLDER = re.compile(r"^(?:(?:19|20)\d\d(?:[-_.]?(?:0[1-9]|1[0-2])(?:[-_.]?(?:0[1-9]|[12]\d|3[01]))?)?"
                           rf"|{VISIT_WORD})$", re.IGNORECASE)


def visit_folder(name: str) -> bool:
    """A folder named for a visit (a year, a date, ``baseline``, ``visit2``, ``FU1``), not a patient."""
    return bool(_VISIT_FOLDER.match(name.strip()))


def folders_of_visits(folders: Iterable[tuple[str, str]]) -> set[str]:
    """Of photos' (folder above, folder) pairs, the folders above that hold visits, as a follow-up
    export's patient folders do (``1001/2015``, ``1001/2023``, ``1002/2015``): every folder in one is
    named like a visit, one of those names sits under another folder too, and its own name has a number. Patient ids may look
    like years (``clinic/2001``, ``clinic/2002``: probe 49 BM2), so a lone year-like folder is no visit."""
    holders: dict[str, set[str]] = {}  # a folder's name -> the folders above it
    inside: dict[str, set[str]] = {}  # a folder above -> the names of its folders
    for above, name in folders:
        holders.setdefault(name, set()).add(above)
        inside.setdefault(above, set()).add(name)
    # a visit's name under two patients' folders, or a visit's word (V1, BL, baseline: never a year, which
    # patient ids may look like) under one (a single patient's export: `1001/V1/OD.jpg`; probe 54 BR11)
    repeated = {name for name, above in holders.items() if visit_folder(name) and (len(above) > 1 or _VISIT_WORD.match(name.strip()))}
    # ... and the folder above is named like a patient (a number in it): `siteA/2001`, `siteB/2001` are two
    # sites' patients numbered like years, not visits (probe 51 BO6)
    return {above for above, names in inside.items() if all(map(visit_folder, names)) and names & repeated
            and any(c.isdigit() for c in above.replace("\\", "/").rpartition("/")[2])}


def eye_of_folder(name: str) -> str | None:
    """The eye a folder is named for, alone (``OD/``, ``Left/``, ``right eye/``: an eye-per-folder
    layout; probe 37 BA7); None for any other folder name: never a letter or a number (``R0/`` ..
    ``R3/`` are the NHS grades, ``L0/`` EyePACS levels, ``R1/`` a reading round; probe 38 BB4)."""
    bare = _FOLDER_EYE.match(re.sub(r"[_\- ]?eye$", "", unicodedata.normalize("NFC", name.strip()), flags=re.IGNORECASE))
    return None if bare is None else _eye_matched(bare)


# After a word with a digit (a patient number), never a camera's letters ("DSC_L0042"; probe 39 BC9).
_LETTER_EYE_NUMBERED = re.compile(r"(?<=[0-9]_)(re|le|r|l)_?[0-9]+$", re.IGNORECASE)
# A one-letter eye as the word after a patient number, whatever follows ("5001-R-2024-01-01",
# "5012_R_eye", "5016_R_disc"), or before it ("R_5020"); probe 39 BC1.
_LETTER_EYE_WORD = re.compile(r"^[0-9]+_(re|le|r|l)(?:_.*)?$|^(re|le|r|l)_[0-9]+$", re.IGNORECASE)
_SHORT_EYES = {"r": "right", "re": "right", "l": "left", "le": "left"}
# Brackets and dots between the words of a name ("5103 (R)", "5104[R]", "5109_R.2024-01-01",
# "5116_Right.Eye"; probe 40 BD1): read as the separators they are, for the rules that claim an eye.
_ANY_SEPARATORS = re.compile(r"[()\[\]._\- ]+")
# RE / LE as the last word ("5003_RE"; probe 38 BB1); the other languages' words ("5001_rechts") are long eye words.
_LAST_WORD_EYE = re.compile(r"(?<=[_\- ])(?:(?P<right>re)|(?P<left>le))$", re.IGNORECASE)
_DOTTED_EYE = re.compile(r"(?:^|(?<=[_\- ]))o\.([ds])\.?(?=[_\- ]|$)", re.IGNORECASE)  # O.D., O.S (probe 59 BW1)
_FOLDER_EYE = re.compile(rf"^(?:(?P<right>{_RIGHT})|(?P<left>{_LEFT}))$", re.IGNORECASE)


def _eye_matched(match: re.Match) -> str:
    """The eye a match of the rules above found (their groups ``right`` and ``left``)."""
    return "right" if match["right"] else "left"


def eye_alone(name: str) -> str | None:
    """The eye of a name that says its eye and nothing else (``OD``, ``Right``, ``left eye``,
    ``OS (1)``), or None: such a photo's folder names its patient (``P10/OD.jpeg``)."""
    return eye_word(_composed(name))


def eye_word(text: str) -> str | None:
    """The eye a text that is an eye word and nothing else names (``R``, ``OD``, ``LEFT``, ``Left Eye``,
    ``rechts``), or None (``B``, ``OU``, ``R/L``): a name's or a DICOM laterality tag's (probe 59 BW5)."""
    match = _EYE_ONLY.match(text.strip())
    return _eye_matched(match) if match else None


def eyes_named(name: str) -> set[str]:
    """Every eye a name mentions: its last word (as :func:`patient_and_eye` reads it) and any
    ``left`` / ``right`` / ``OS`` / ``OD`` word elsewhere in it; a name that is an eye word alone
    (``R``, ``LE``, ``OD1``, ``rechts``: a patient-per-folder export). Two eyes: the name contradicts itself."""
    plain = _composed(name)
    if bare := _BARE_EYE.match(plain):  # probe 37 BA1; "r (1)": probe 38 BB1
        return {_eye_matched(bare)}
    named = {EYE_WORDS["o" + m[1].lower()] for m in _DOTTED_EYE.finditer(plain)}  # "10193_O.S._right": probe 59 BW1
    spaced = _ANY_SEPARATORS.sub("_", plain).strip("_")
    words = [re.sub(r"(?<=.)eye$", "", w.lower()) for w in _WORDS.findall(spaced)]  # "rightEye": probe 39 BC1
    named |= {EYE_WORDS[w] for w in words if w in _LONG_EYE_WORDS}
    named |= {EYE_WORDS[m["eye"].lower()] for w in words if (m := _GLUED.match(w))}  # "10193left_OD"
    # a one-letter eye before a date or shot number ("5001_R_20240101", "5002_R1"; probe 38 BB1; "5119_RE_1")
    named |= {_SHORT_EYES[m[1].lower()] for m in _LETTER_EYE_NUMBERED.finditer(spaced)}
    if letter := _LETTER_EYE_WORD.match(spaced):
        named.add(_SHORT_EYES[(letter[1] or letter[2]).lower()])
    if last := _LAST_WORD_EYE.search(spaced):
        named.add(_eye_matched(last))
    read = patient_and_eye(name)  # it takes the folders and copy marks off as above
    return named | {read[1]} if read else named


# Letters that look like Latin ones (Unicode's confusables, UTS #39), casefolded: a Cyrillic or Greek
# keyboard layout left on types them in an id; and the dash family, which word processors put for "-".
_LOOK_ALIKES = str.maketrans({**dict(zip("авекмнорстухіјѕԁһԛԝ", "abekmhopctyxijsdhqw")),
                              **dict(zip("αβεζηικμνορτυχ", "abezhikmnoptyx")),
                              **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63", "-")})


# Latin letters a system that strips accents writes plainly (their accents NFD takes apart themselves): ø, æ, ...
_PLAIN_LETTERS = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i", "ß": "ss"})
# The German umlauts transliterated (Mueller for Müller, Oeztuerk for Öztürk), in a word of three letters or more
# (not an id's "AE12"): folded, as the umlaut without its dots, to the plain vowel.
_UMLAUT_SPELT = re.compile(r"(?<=[a-z])([aou])e|^([aou])e(?=[a-z])")


def unaccented(text: str) -> str:
    """Casefolded text with its Latin letters' accents taken off (``garcía`` -> ``garcia``, ``søren`` ->
    ``soren``, ``straße`` -> ``strasse``): what a system that strips diacritics writes for a name (a PACS
    export beside a list typed by hand). Other scripts' marks are kept (a kana's dakuten makes another sound)."""
    return "".join(d[0] if len(d := unicodedata.normalize("NFD", c)) > 1 and d[0].isascii() else c
                   for c in unicodedata.normalize("NFC", text)).translate(_PLAIN_LETTERS)


def _umlauts_plain(word: str) -> str:
    """``mueller`` -> ``muller``, as ``müller`` unaccented is; a word of three letters or more only."""
    return _UMLAUT_SPELT.sub(lambda m: m[1] or m[2], word) if len(word) >= 3 and word.isalpha() else word


# Written or left out by one system and not another ("AB-123", "AB123"; probe 34 AX13; "12,345",
# "P:7", "Q#8", a spreadsheet's text mark "'00123"; probe 35 AY6).
# Also the other apostrophes and the Arabic thousands separator: de-CH Excel writes "12’345" (probe 36 AZ4).
# And Excel's text-keeping form ="00123", or an id in literal quotes ("P7"): probe 37 BA8.
# And DICOM's person-name separator: SMITH^JOHN is Smith John (probe 58 BV4).
_SEPARATORS = frozenset("-_./,:#'\u2019\u2018\u02bc`\u00b4\u066c\"=^")
_FLOAT_WRITTEN = re.compile(r"^([0-9]+)\.0+$")  # probe 34 BX6: "10.0" beside "10"


def folded_patient(patient: str) -> str:
    """A patient id as it may have been retyped, only to compare ids: case, every space (``P 1``,
    ``P1``), invisible format characters (a zero-width space, a byte-order mark) and, for a
    number, leading zeros (a spreadsheet turns ``007`` into ``7``) and a float's ``.0`` (pandas
    writes ``10.0``) taken out; in NFKC, so a full-width letter (``Ｓ1``, as an East-Asian input
    method types it) is its plain one; a Cyrillic or Greek letter that looks Latin (``Р1``) as the
    Latin letter it passes for, another script's digits as digits (``١٢٣``), and the separators
    ``-``, ``_``, ``.``, ``/``, ``,``, ``:``, ``#``, ``'`` (an en dash among them: ``C–1``, ``C-1``,
    ``C1``; ``12,345``; ``'00123``) and DICOM's ``^`` (``SMITH^JOHN``, ``Smith John``); a Latin letter's
    accent (``García``, ``Garcia``; ``Søren``, ``Soren``) and a transliterated umlaut (``Müller``, ``Mueller``,
    ``Muller``); a name from a file name that is not UTF-8 (Latin-1 ``M\xfcller``) read as Latin-1 (``Müller``)."""
    if has_stray_bytes(patient):  # an old share's Latin-1 name
        patient = patient.encode("utf-8", "surrogateescape").decode("latin-1")
    patient = _FLOAT_WRITTEN.sub(r"\1", patient.strip())  # "10.0": a number column pandas or Excel wrote as float
    # accents and transliterated umlauts (García, Garcia; Müller, Mueller; Søren, Soren: probe 58 BV4)
    plain = re.sub(r"[^\W\d_]+", lambda m: _umlauts_plain(m[0]),
                   unaccented(unicodedata.normalize("NFKC", patient).casefold().translate(_LOOK_ALIKES)))
    folded = "".join(str(unicodedata.digit(c)) if c.isdigit() and not c.isascii() else c  # Arabic-Indic digits too
                     for c in plain if not c.isspace() and unicodedata.category(c) != "Cf" and c not in _SEPARATORS)
    return folded.lstrip("0") or "0" if folded.isdigit() else folded


_NAME_WORDS = re.compile(r"[\s_^,]+")


def reordered_patient(patient: str) -> str:
    """A patient id of two or more words of letters alone (a person's name: ``Doe_Jane``, ``SMITH^JOHN``,
    ``Garcia, Maria``) as :func:`folded_patient` folds it, its words in alphabetical order: one system
    writes the family name first, another last (probe 58 BV4). Any other id as :func:`folded_patient` folds it."""
    words = [folded_patient(w) for w in _NAME_WORDS.split(patient.strip()) if w]
    return "".join(sorted(words)) if len(words) > 1 and all(w.isalpha() for w in words) else folded_patient(patient)


def shown_patient(patient: str) -> str:
    r"""A patient id as a note spells it: the stray bytes of a Latin-1 name as ``\xNN``, an
    invisible format character as ``\u200b``, a look-alike letter or dash as ``\u0420`` (else two
    ids in the note would look the same)."""
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) == "Cf" or ord(c.casefold()[0]) in _LOOK_ALIKES else c
                   for c in escape_name(patient))

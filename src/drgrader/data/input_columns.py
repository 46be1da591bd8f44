"""The columns ``drgrader predict`` reads from a CSV of photos (and the data-set readers from a
label file: its patient and eye), and the refusal of the columns they would otherwise drop
without a word.

Read: the photo (``image`` or ``path``), its id (``image_id``), the patient (``patient_id`` or
``patient``) and the eye (``eye``), whatever their case and separators (``Patient ID``,
``PATIENT-ID``). Any other column is named in one log line as not read, unless it looks like one
of these (a misspelling such as ``imgae`` or ``pateint``, a plural, a qualified name such as
``image_path`` or ``patient_no``, a common synonym such as ``filename`` or ``laterality``, an
identifier a clinic gives its patients under such as ``MRN``, ``case_id`` or ``Patient Name``), or
two columns name the same thing (``image`` and ``path``): then the CSV is refused, naming the
column, since grading without it would silently take patients and eyes from the file names instead.
Beside the patient column itself, a column that looks like it (a hospital number beside the
screening id) is no such risk: it is named as not read.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from difflib import SequenceMatcher
from pathlib import Path

import pandas as pd

from drgrader.data.eyes import EYE_WORDS, patient_and_eye, patient_id
from drgrader.data.identity_notes import NOTE_KINDS, TWO_VALUES
from drgrader.data.label_files import (  # not .manifest: its readers use this module
    IMAGE_EXTENSIONS,
    DataError,
    column_key,
    name_words,
    separator_hint,
)

log = logging.getLogger("drgrader")

KNOWN = {  # what a column gives -> the names it may have
    "image": ("image", "path"),
    "image_id": ("image_id",),
    "patient": ("patient_id", "patient"),
    "eye": ("eye",),
}
_QUALIFIERS = {  # a known name with one of these before or after it looks like it
    # and a wide list's second photo column ("image_right", "second_image"; probe 39 BC6)
    "image": ("path", "file", "filename", "name", "ref", "url", "left", "right", "od", "os", "second", "other", "eye"),
    "image_id": (),
    "patient": ("id", "no", "nr", "number", "code", "ref", "name", "mrn"),
    "eye": ("side", "laterality", "lr"),
}
# Identifiers a clinic's export gives its patients under (a record number, a case, a name): a list
# with one is refused, not graded photo by photo, since its two eyes would not be paired.
_PATIENT_IDENTIFIERS = ("pid", "subject", "subjectid", "mrn", "mrno", "mrnumber", "medicalrecordnumber", "recordnumber",
                        "recordno", "hospitalnumber", "hospitalno", "chartnumber", "chartno", "case", "caseid", "caseno",
                        "casenumber", "participant", "participantid", "person", "personid", "patientname",
                        # a study's participant, the NHS number, Australia's unit record number (probe 36 BZ5)
                        "study", "studyid", "studyno", "studynumber", "patno", "patnr", "patid", "nhs", "nhsnumber",
                        "nhsno", "ur", "urn", "urno", "urnumber", "eid",
                        # a hand-made list's bare ID, a hospital number, national ids (probe 37 BA5, CA2)
                        "id", "hn", "hospitalid", "ic", "icno", "nric", "nhi", "cpr",
                        # a name, a family's, an exam's accession number (one visit: both eyes; probe 38 BB5)
                        "fullname", "surname", "familyname", "familyid", "accession", "accessionno", "accessionnumber")
_SYNONYMS = {"file": "image", "filename": "image", "filepath": "image", "img": "image", "imgpath": "image",
             "photo": "image", "fundus": "image", "side": "eye", "laterality": "eye",
             "whicheye": "eye", "odos": "eye", "auge": "eye", "oeil": "eye", "ojo": "eye", "occhio": "eye"} | dict.fromkeys(_PATIENT_IDENTIFIERS, "patient")
_CLOSE = 0.8  # difflib ratio from which a name is a misspelling of a known one (images, imgae, pateint)


_squash = column_key  # one rule for looking columns up and for a column named twice


def _looks_like(squashed: str) -> str | None:
    """The known column ``squashed`` looks like, or None."""
    if squashed in _SYNONYMS:
        return _SYNONYMS[squashed]
    for role, names in KNOWN.items():
        for known in map(_squash, names):
            qualified = {known + q for q in _QUALIFIERS[role]} | {q + known for q in _QUALIFIERS[role]}
            if squashed in qualified or (len(squashed) < 40 and SequenceMatcher(None, squashed, known).ratio() >= _CLOSE):
                return role
    return None


def _names(role: str) -> str:
    return " or ".join(repr(n) for n in KNOWN[role])


def _roles(csv: Path | str, headers: Sequence[str]) -> tuple[dict[str, list[str]], list[tuple[str, str]], list[str]]:
    """The headers of each known column, the (header, role) of those that only look like one, and
    the patient look-alikes set aside as not read, since the patient column itself is there (an
    ``MRN`` beside ``patient_id``: the patients are read, nothing is taken from file names)."""
    found: dict[str, list[str]] = {role: [] for role in KNOWN}
    lookalikes: list[tuple[str, str]] = []  # (header, the role it looks like)
    by_squash = {_squash(n): role for role, names in KNOWN.items() for n in names}
    for header in headers:
        duplicate = re.fullmatch(r"(.*)\.[0-9]+", header)  # pandas renames a second 'image' to 'image.1'
        if duplicate and duplicate[1] in headers:
            raise DataError(f"{csv}: column {duplicate[1][:40]!r} appears twice; keep one")
        role = by_squash.get(_squash(header))
        if role is not None:
            found[role].append(header)
        elif (like := _looks_like(_squash(header))) is not None:
            lookalikes.append((header, like))
    beside = [h for h, like in lookalikes if like == "patient" and found["patient"]]
    return found, [(h, like) for h, like in lookalikes if h not in beside], beside


def _one_each(csv: Path | str, found: dict[str, list[str]], roles: Sequence[str]) -> dict[str, str | None]:
    for role in roles:
        if len(found[role]) > 1:
            listing = " and ".join(repr(h[:40]) for h in found[role])
            raise DataError(f"{csv}: columns {listing} both give the {role.replace('_', ' ')}; keep one")
    return {role: (found[role][0] if found[role] else None) for role in roles}


def csv_columns(csv: Path, headers: Sequence[str]) -> dict[str, str | None]:
    """The header of each known column of ``csv`` (None where absent); a DataError naming the
    column when one looks like a known column without being one, or two name the same thing."""
    found, lookalikes, _ = _roles(csv, headers)  # the patient look-alikes set aside: named below as not read
    if not found["image"]:
        hint = next((f"; rename {h[:40]!r} if it is the photo" for h, like in lookalikes if like == "image"), "")
        hint = hint or separator_hint(list(headers))
        raise DataError(f"{csv}: needs an 'image' or 'path' column (has {list(headers)[:20]}){hint}")
    if lookalikes:
        header, like = lookalikes[0]
        raise DataError(f"{csv}: column {header[:40]!r} looks like the {like.replace('_', ' ')} column but is not one "
                        f"predict reads ({_names(like)}); rename or remove it")
    columns = _one_each(csv, found, list(KNOWN))
    unread = [h for h in headers if h not in columns.values() and not h.startswith("Unnamed:")]
    if unread:  # not refused, but said: every column given is used, refused or named
        log.info("%s: column(s) not read: %s (predict reads %s)", csv, ", ".join(h[:40] for h in unread[:10]) +
                 (f" and {len(unread) - 10} more" if len(unread) > 10 else ""),
                 ", ".join("/".join(names) for names in KNOWN.values()))
    return columns


def identifiers_beside_patient(csv: Path | str, headers: Sequence[str]) -> list[str]:
    """The patient look-alikes (``MRN``, ``Patient Name``) of a CSV that has the patient column
    itself: not read, so a row whose patient cell is empty must not leave its patient to them."""
    return _roles(csv, headers)[2]


def _label_roles(labels: str, headers: Sequence[str], roles: Sequence[str]) -> dict[str, str | None]:
    """The patient and eye columns (``roles``) of a label file, found by the same names as
    predict's, whatever their case (``Patient ID``, ``EYE``); None where absent. A column that
    looks like one (``patient_no``, ``laterality``) is refused by name: a patient-level split
    without it would put one patient on both sides. The label file's image and grade columns
    are set by its format, so only ``roles`` are looked for."""
    found, lookalikes, beside = _roles(labels, headers)
    for header, like in lookalikes:
        if like in roles:
            raise DataError(f"{labels}: column {header[:40]!r} looks like the {like} column but is not one the label "
                            f"reader reads ({_names(like)}); rename it, or name it in data.columns.{like}")
    columns = _one_each(labels, found, roles)
    if beside and "patient" in roles:
        log.info("%s: column(s) not read: %s (the patient is read from %r)", labels,
                 ", ".join(h[:40] for h in beside), columns["patient"])
    return columns


def label_identity_columns(table: pd.DataFrame, file: str, patient: str | None = None,
                           eye: str | None = None) -> tuple[str | None, str | None]:
    """The patient and eye columns of a label table: the configured ones, else those found
    under predict's names (``patient_id``, ``Patient ID``, ``EYE``); look-alikes refused."""
    roles = [role for role, given in (("patient", patient), ("eye", eye)) if not given]
    headers = [h for h in table.columns if h not in (patient, eye)]
    found = _label_roles(file, headers, roles) if roles else {}
    return patient or found.get("patient"), eye or found.get("eye")


def refuse_identity_columns(table: pd.DataFrame, file: str, fmt: str) -> None:
    """A published layout whose patients come from elsewhere: a patient or eye column added to
    its label file would be ignored, so it is refused (the csv format reads it)."""
    for column in label_identity_columns(table, file):
        if column is not None:
            raise DataError(f"{file}: column {column[:40]!r} is not read by the {fmt} format, whose patients and "
                            "eyes come from its own layout; remove it, or read the file with data.format=csv "
                            "(data.labels, data.images, data.columns)")


# Columns that tell people or sites apart beside the patient column, by a word of their name: one
# id with two of their values is two patients, whose eyes would be paired (probe 39 BC4: a pooled
# multi-site list; probe 40 BD2: hospital_id, facility, first_name, sex ...).
_SITE_WORDS = {"site", "clinic", "centre", "center", "hospital", "facility", "practice", "provider", "institution",
               "location", "sitename", "siteid",
               # in German, French, Spanish, Italian, Dutch, Portuguese (probe 41 CE9: Standort)
               "standort", "klinik", "krankenhaus", "praxis", "hopital", "centro", "clinica", "ospedale", "sede",
               "ziekenhuis", "kliniek", "locatie", "ubicacion", "sitio", "lieu", "etablissement", "campus",
               # and in Japanese, Chinese, Korean, Russian (probe 43 BG8)
               "病院", "医院", "병원", "больница", "клиника"}
_PERSON_WORDS = {"name", "surname", "lastname", "firstname", "givenname", "familyname", "fullname", "forename", "forenames",
                 "initials", "dob", "yob", "birth", "birthdate", "birthday", "sex", "gender", "age",
                 # in German, French, Spanish, Italian (probe 42 BF1), Dutch, Portuguese (probe 43 BG1)
                 "vorname", "nachname", "geschlecht", "geburtsdatum", "geburt", "geb", "prenom", "nom", "sexe", "naissance",
                 "nombre", "apellido", "apellidos", "sexo", "nacimiento", "nome", "cognome", "sesso", "nascita", "genero",
                 "voornaam", "achternaam", "naam", "geboortedatum", "geslacht", "leeftijd", "sobrenome", "idade", "edad",
                 "nascimento", "geburtstag", "alter", "bsn", "cpf", "personnummer", "sus",  # probe 44 BH1
                 # a person's record and card numbers (probe 43 BG2)
                 "ssn", "uhid", "chi", "medicare", "phn", "dni", "aadhaar", "kvnr", "insurance", "passport", "chart", "client", "email", "phone", "telephone", "mobile", "address",
                 # and in Japanese, Chinese, Korean, Russian (probe 43 BG8)
                 "氏名", "姓名", "名前", "生年月日", "性別", "性别", "出生日期", "年齢", "年龄", "이름", "성명", "성별", "생년월일",
                 "나이", "имя", "фамилия", "отчество", "рождения", "пол", "возраст"}
# Run together, as a header's words cannot show them (``DoB``, ``D.O.B.``, ``fname``, ``M/F``: probe 43 BG5)
_PERSON_KEYS = {"dob", "dateofbirth", "birthdate", "fname", "lname", "ptname", "patname", "mf", "fm", "nationalid",
                "healthcard", "gebdatum", "medicalrecordno", "medicalrecord", "recordnr"}
# "Image name", "nom_fichier", "Camera name", "grader_initials" are a photo's, a device's or a reader's (probe 43 BG8)
_PHOTO_WORDS = {"image", "img", "file", "filename", "photo", "picture", "path", "fundus", "fichier", "immagine", "imagen",
                "imagem", "bild", "datei", "appareil", "camera", "device", "series", "grader", "reader", "operator",
                "photographer", "technician", "field", "view", "scan"}


_BARE_NAMES = {"name", "naam", "nom", "nome", "nombre"}  # alone, may be each photo's own name
_ROW_IDS = {"id", "no", "nr", "number", "index", "accession", "accessionno", "accessionnumber"}


def _tells_apart(header: str) -> str | None:
    words = set(name_words(header))
    words |= {key for key in (*_SITE_WORDS, *_PERSON_WORDS) if not key.isascii() and key in header.casefold()}  # 患者氏名
    if words & _SITE_WORDS:
        return "sites"
    if (words & _PERSON_WORDS or column_key(header) in _PERSON_KEYS) and not words & _PHOTO_WORDS:
        return "people"
    return None


def patients_of_rows(table: pd.DataFrame, patient_col: str | None, image_col: str) -> pd.Series:
    """Each row's patient as the resolver reads a label file's: the patient cell's, else (blank, or a
    missing-value mark such as ``#N/A``: probe 41 BE2) the one the photo's name gives."""
    from_name = table[image_col].map(lambda ref: (patient_and_eye(Path(ref.strip().replace("\\", "/")).stem) or ("",))[0])
    cells = table[patient_col].map(patient_id) if patient_col else pd.Series("", index=table.index)
    return cells.where(cells != "", from_name)


def eyes_of_rows(table: pd.DataFrame, eye_col: str | None, image_col: str) -> pd.Series:
    """Each row's eye, roughly as the readers take it: the eye cell's, else the one the photo's name gives."""
    from_name = table[image_col].map(lambda ref: (patient_and_eye(Path(ref.strip().replace("\\", "/")).stem) or ("", ""))[1])
    cells = table[eye_col].str.strip().str.lower().map(lambda e: EYE_WORDS.get(e, "")) if eye_col else from_name
    return cells.where(cells != "", from_name)


# A column naming a visit: its values differ in every patient of a follow-up study, and still pool two exams.
_VISIT_WORDS = {"visit", "date", "exam", "examination", "timepoint", "time", "session", "followup", "follow", "year",
                "baseline", "month", "week", "day", "studydate", "datetime", "timestamp", "fu", "besuch", "visita",
                "consulta", "round", "jahr", "datum"}
# Columns of each eye's or photo's own, by a word of their name: they differ between a patient's eyes
# by nature, so they are not compared (probe 44 BH4: IOP, lens status, image quality, notes).
_EYE_S_OWN_WORDS = _PHOTO_WORDS | {
    "iop", "pressure", "lens", "phakic", "pseudophakic", "quality", "va", "acuity", "vision", "refraction", "sphere",
    "cylinder", "axis", "notes", "note", "comment", "comments", "remark", "remarks", "finding", "findings", "diagnosis",
    "dilated", "dilation", "pupil", "macula", "maculopathy", "macular", "edema", "oedema", "dme", "csme", "grade", "level",
    "dr", "retinopathy", "laser", "cataract", "glaucoma", "amd", "gradable", "ungradable", "artifact", "artefact",
    "clarity", "focus", "exposure"}
_DAY = re.compile(r"^(\d{4}-?\d{2}-?\d{2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4})")  # a date-time's day: one visit


def warn_columns_within_patients(csv: Path | str, table: pd.DataFrame, patients: pd.Series,
                                 eyes: pd.Series) -> dict[int, str]:
    """A column not read (``table``: those columns; the known site and person words are refused
    before, :func:`refuse_two_people_under_one_id`) whose values differ within one patient: two
    people, sites or visits under one id, by any header in any language (probe 42 CF1, CF5; probe
    43 BG4, BG8; probe 44 BH1, BH5, BH7), whose eyes would be paired and photos pooled. Said in one
    warning per column, not refused; returns a note for each row concerned (predict puts it in
    ``identity_note``). Not compared: a column of each eye's or photo's own by its name (IOP, lens,
    quality, notes, a camera) or of every row's own (:func:`_each_photo_s_own`); between two eyes,
    one that differs in most of three or more patients with several photos (each eye's own: a
    visual acuity). A column whose name says a visit is always compared, by day (a time of day is
    no second visit)."""
    noted: dict[int, str] = {}
    for header in table.columns:
        words = set(name_words(header))
        if words & _EYE_S_OWN_WORDS:
            continue
        visit = bool(words & _VISIT_WORDS)
        cells = table[header].str.strip()
        use = (patients != "") & (cells.map(patient_id) != "")  # a missing-value mark is no value
        if not visit and _each_photo_s_own(cells[use], patients[use]):  # a row number, a file name (probe 43 BG7)
            continue
        folded = cells[use].map(lambda v: _visit_day(v) if visit else _folded(v, header))
        per_patient = folded.groupby(patients[use]).nunique()
        several = patients[use].value_counts()
        several = several[several > 1]
        differ = per_patient[per_patient > 1]
        if not visit and len(several) >= 3 and len(differ) > 0.5 * len(several):
            known = use & (eyes != "")
            within_eye = folded[known[use]].groupby([patients[known], eyes[known]]).nunique()
            differ = differ[list(dict.fromkeys(p for (p, _), n in within_eye.items() if n > 1))]  # one eye's photos only
        if not len(differ):
            continue
        patient = differ.index[0]
        rows = folded.index[patients[use] == patient]
        first, other = rows[0], next(k for k in rows if folded[k] != folded[rows[0]])
        shown = " and ".join(f"{cells[k][:40]!r}" + (f" ({eyes[k]} eye)" if eyes[k] else "") for k in (first, other))
        log.warning("%s: %d patient(s) have photos of two values of column %r, which is not read (e.g. patient %r: "
                    "%s): two people, sites or visits under one id? They are taken as one patient's photos (its eyes "
                    "paired, its decision from all of them): give each its own patient id if so; nothing is wrong if "
                    "the column is each eye's or photo's own", csv, len(differ), header[:40], patient, shown)
        for p in differ.index:
            values = " and ".join(repr(v[:40]) for v in dict.fromkeys(cells[use][patients[use] == p]))
            for k in folded.index[patients[use] == p]:
                noted.setdefault(k, f"{TWO_VALUES}: column {header[:40]!r} gives patient {p!r} {values}; taken as one "
                                    "patient's photos (two people, sites or visits? give each its own id)")
    return noted


def _visit_day(value: str) -> str:
    """A visit's cell as a day (``2015-03-01 09:30:12`` and ``2015-03-01``: one visit; probe 44 BH7)."""
    day = _DAY.match(value.strip())
    return day[1].replace("-", "") if day else _folded(value, "")


def _folded(value: str, header: str) -> str:
    """A cell as two rows of one person may spell it (``North Clinic``, ``north-clinic ``; ``M``,
    ``Male``: probe 41 BE10; ``José``, ``Jose``; ``67``, ``67.0``: probe 44 BH8); numbers kept apart
    (``1/12/1950`` is not ``11/2/1950``: probe 43 BG6)."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", value.casefold()) if not unicodedata.combining(c))
    folded = " ".join(re.findall(r"[^\W_]+", re.sub(r"(?<=\d)\.0+$", "", plain.strip())))
    return folded[:1] if {"sex", "gender"} & set(name_words(header)) else folded


def _each_photo_s_own(cells: pd.Series, patients: pd.Series) -> bool:
    """A column whose every row differs, in a list where two patients at least have several rows:
    each photo's own (a row number, a file name, an accession per image: probe 43 BG7), not a person's."""
    return bool(cells.is_unique) and int((patients.value_counts() > 1).sum()) >= 2


def refuse_two_people_under_one_id(csv: Path | str, table: pd.DataFrame, patients: pd.Series,
                                   identifiers: Sequence[str] = ()) -> None:
    """A patient (``patients``: each row's, as the resolver takes it) whose rows give two sites or
    two people (names, dates of birth, sexes; ``identifiers``: another id beside the patient's, an
    MRN) in a column predict does not read: refused naming both values, never paired as one
    patient's eyes (probe 39 BC4, probe 40 BD2/BD5/BD6, probe 42 BF5)."""
    for header in table.columns:
        # a bare ID or accession may be a row number (probe 44 BH2): compared by its values instead
        what = "people" if header in identifiers and column_key(header) not in _ROW_IDS else _tells_apart(header)
        if what is None:
            continue
        cells = table[header].str.strip()
        given = (patients != "") & (cells.map(patient_id) != "")  # "unknown", "NA", "-": no value (probe 44 BH8)
        if _each_photo_s_own(cells[given], patients[given]):
            continue
        folded = cells[given].map(lambda v: _folded(v, header))
        values = folded.groupby(patients[given]).agg(lambda v: list(dict.fromkeys(v)))
        mixed = values[values.map(len) > 1]
        # A bare "name" may be each photo's own (a camera's file name): then no patient keeps one value,
        # and no value is on two rows (probe 43 CG4: "Person 0" on two rows of one id and two on another's).
        # "Site Name", "first_name" are no bare name (probe 41 BE1).
        alike = (patients[given].value_counts() > 1).reindex(values.index) & (values.map(len) == 1)
        if len(mixed) and (not set(name_words(header)) <= _BARE_NAMES or alike.any() or not cells[given].is_unique):
            patient = mixed.index[0]
            a, b = list(dict.fromkeys(cells[given][patients[given] == patient]))[:2]
            raise DataError(f"{csv}: patient {patient!r} has rows of two {what} in {header[:40]!r} ({a[:40]!r} and "
                            f"{b[:40]!r}): two patients under one id, whose eyes would be paired? Give each its own id"
                            + (f" (e.g. '{a[:20]}-{patient}')" if what == "sites" else "") + ", or remove the column")


def _names_a_photo(folder: Path | None, cell: str) -> bool:
    """A cell names a photo: by its extension, or (``IMG_6``, as the image column may give it) a
    photo of that name beside the list (probe 41 BE3)."""
    if cell.lower().endswith(IMAGE_EXTENSIONS):
        return True
    return folder is not None and any((folder / f"{cell}{ext}").is_file() for ext in IMAGE_EXTENSIONS[:4])


def refuse_other_photo_columns(csv: Path | str, table: pd.DataFrame, columns: dict[str, str | None],
                               folder: Path | None = None) -> None:
    """A column predict does not read whose cells name photos (``right_eye_image``, ``photo_right``,
    ``right`` beside ``image``: a list with one row per patient): its photos would be dropped and
    the patient decided on the other one, "the only photo" (probe 39 BC6, probe 40 BD3). ``folder``:
    where the list's relative paths are read from."""
    for header in table.columns:
        if header in columns.values():
            continue
        cells = table[header].str.strip()
        cells = cells[cells != ""]
        own = table.loc[cells.index, columns["image"]].map(lambda ref: Path(ref.strip()).stem)  # the row's own photo again
        named = cells[cells.map(lambda cell: _names_a_photo(folder, cell)) & (cells.map(lambda cell: Path(cell).stem) != own)]
        if len(named) and len(named) * 2 >= len(cells):
            raise DataError(f"{csv}: column {header[:40]!r} names photos too ({Path(named.iat[0]).name[:60]!r}), but predict reads one "
                            f"photo per row, from {columns['image']!r}: list each photo on its own row (image, patient_id, "
                            "eye), or remove the column")


# drgrader's own identity notes begin with their kind: "one patient in two folders: ...".
_NOTE = re.compile(rf"^(?:{'|'.join(map(re.escape, NOTE_KINDS))}): ")


def refuse_noted_predictions(csv: Path | str, table: pd.DataFrame) -> None:
    """A predictions file drgrader wrote (or a copy of it), given back as a list: its patients and
    eyes would be taken as given and the notes on how they were resolved lost (probe 39 BC8). Its
    notes are known by their words in whatever column (probe 40 BD4, probe 41 BE4: renamed)."""
    for column in table.columns:
        noted = table.index[table[column].str.match(_NOTE)]
        if len(noted):
            first = noted[0]
            raise DataError(f"{csv} carries the identity notes of a drgrader run on {len(noted)} of its rows "
                            f"(row {first + 1}: {table.at[first, column][:120]!r}): read as a list, its patients and "
                            "eyes would be taken as given and those notes lost; give the photos or the list that run read")

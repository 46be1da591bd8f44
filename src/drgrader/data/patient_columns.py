"""Who is under one patient id in a list or label file: the columns predict and the label readers
do not read that tell two people, sites or visits apart under one id, whose eyes would otherwise
be paired and photos pooled. A column known by a word of its name (a site, a person's name, date
of birth or record number, in several languages and scripts) with two values under one patient is
refused (:func:`refuse_two_people_under_one_id`); any other column whose values differ within a
patient is warned of and noted (:func:`warn_columns_within_patients`), unless it is each eye's or
photo's own. Both take each row's patient as the resolver takes it (:func:`patients_of_rows`, or a
list's own reading)."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from drgrader.data.eyes import EYE_WORDS, eye_alone, patient_and_eye, patient_id, unaccented
from drgrader.data.identity_notes import TWO_VALUES
from drgrader.data.label_files import DataError, column_key, name_words

log = logging.getLogger("drgrader")


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
                 "ssn", "uhid", "chi", "medicare", "phn", "dni", "aadhaar", "kvnr", "insurance", "passport", "chart", "client",
                 "email", "phone", "telephone", "mobile", "address",
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
# Not "time" alone: a time of day is no visit (probe 45 BI11).
_VISIT_WORDS = {"visit", "date", "exam", "examination", "timepoint", "session", "followup", "follow", "year",
                "baseline", "month", "week", "day", "studydate", "datetime", "timestamp", "fu", "besuch", "visita",
                "consulta", "round", "jahr", "datum"}
# Columns of each eye's own, by a clinical word of their name: they differ between a patient's eyes by
# nature, so they are not compared (probe 44 BH4: IOP, lens status, image quality, notes), unless their
# name says a person's too (`Patient name (camera)`, `DR screening number`: probe 45 BI2); a photo's
# own (`image_id`, `camera`) alike, unless its name says a person's (`Name on image`, `Camera name`:
# one exam has one camera).
_EYE_S_OWN_WORDS = {
    "iop", "pressure", "lens", "phakic", "pseudophakic", "quality", "va", "acuity", "vision", "refraction", "sphere",
    "cylinder", "axis", "notes", "note", "comment", "comments", "remark", "remarks", "finding", "findings", "diagnosis",
    "dilated", "dilation", "pupil", "macula", "maculopathy", "macular", "edema", "oedema", "dme", "csme", "grade", "level",
    "laser", "cataract", "glaucoma", "amd", "gradable", "ungradable", "artifact", "artefact", "clarity", "focus",
    "exposure", "field", "view", "fixation", "centred", "centered", "grader", "reader",
    "flash", "gain", "iso", "shutter", "aperture", "mydriasis", "mydriatic", "icd", "snomed"}  # probe 46 BJ6
_DATE_WORDS = {"date", "datetime", "timestamp", "time", "day", "studydate", "datum", "fecha"}
_NUMBER_WORDS = {"id", "no", "nr", "number", "num", "code", "accession", "ref", "reference"}
_ANYONE_S = {"patient", "id", "number", "no", "nr", "programme", "program", "screening"}
_PERSON_ID_WORDS = {"patient", "mrn", "subject", "participant", "study", "case", "screening", "hospital", "record", "chart",
                    "nhs", "chi", "ssn", "uhid", "hn", "urn", "pid", "patid", "ptid", "accession", "exam", "visit"}
_STAFF = {"grader", "reader", "operator", "photographer", "technician", "staff", "nurse", "doctor"}  # `grader_initials`
# A photo's field (macula- or disc-centred: two photos of each eye, as screening programmes take them),
# by its cells: never a site or a visit (probe 45 BI8: refused as two sites under `Centre`).
_FIELD_WORDS = {"macula", "macular", "disc", "disk", "optic", "nasal", "temporal", "superior", "inferior", "central",
                "fovea", "foveal", "field", "centred", "centered", "posterior", "pole", "periphery", "peripheral", "centre",
                "center", "on", "nerve", "head", "onh", "view"}
_TIME = re.compile(r"^\d{1,2}:\d{2}(:\d{2})?$")  # a time of day, and nothing else (probe 47 BK6)
# A whole cell that is a date, perhaps with its time (``2015-03-01``, ``20150301093000``, ``12/1/1950 09:30``),
# never a number or id that begins like one (``4821100001``, ``20230502017``, ``1.2.840.10008``: probe 46 BJ1, BJ3).
# A time may come first (``11:00 01/03/2015``: probe 47 BK6).
_DAY = re.compile(r"^(?:\d{1,2}:\d{2}(?::\d{2})?[ T])?"
                  r"(?:(?P<y>(?:19|20)\d\d)(?P<dash>-?)(?P<m>0[1-9]|1[0-2])-?(?P<d>0[1-9]|[12]\d|3[01])"
                  r"|(?P<a>[0-3]?\d)(?P<sep>[./-])(?P<b>[0-3]?\d)(?P=sep)(?P<yy>(?:19|20)\d\d|\d\d))"
                  r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?|T?(?:[01]\d|2[0-3])[0-5]\d[0-5]\d(?:\.\d+)?)?"  # HHMMSS: probe 48 BL2
                  r"(?:Z|[+-]\d\d:?\d\d)?$")  # a zone: probe 47 BK7
# Found by its cells alone (no visit word in its name), a date is written with separators: a 14-digit
# number may be an accession (a day and a counter: ``20230502000017``; probe 47 BK1).
_NO_VALUE = {"", "-", "--", "?", "na", "n/a", "#n/a", "<na>", "nan", "null", "none", "unknown", "not known", "missing"}


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
        cells = table[header].str.strip()
        use = (patients != "") & cells.map(_has_value)  # a missing-value mark is no value
        # A date (by its name, or by its cells: `Fecha`, `Aufnahmedatum`) is a visit whatever else its name says
        # (`Image date`: probe 45 BI1, BI3); a person's or site's word keeps a column (`Sex (image header)`: BI2).
        # A missing mark written as the column's codes are (`NA` beside `EU`, `JS`; `na` beside `eu`) is a code
        # here, compared (probe 48 BL1, probe 49 BM1); the refusal below takes it for no value (`Sex` M, NA: one person).
        for same_case in (str.isupper, str.islower):
            cased = cells.map(lambda v: same_case(str(v))).astype(bool)
            codes = (patients != "") & ~use & cased
            if codes.any() and use.any() and cased[use].all():
                use |= codes
        if use.any():  # `NA` is as often a value (North America, N. A., Na) as a mark: beside values, compared (BM3)
            use |= (patients != "") & (cells.astype(str).str.casefold() == "na")
        visit = bool(words & _VISIT_WORDS) or bool(use.any() and cells[use].map(_written_date).mean() >= 0.9)
        # `Exam ID`, `Visit number` 20230502000017: whole (probe 48 BL2); under a bare `Exam` too (probe 49 BM4)
        by_day = visit and not words & _NUMBER_WORDS and not (
            not words & _DATE_WORDS and use.any() and cells[use].str.fullmatch(r"\d{9,}").all())
        if visit and not cells[use].str.match(_DAY).any() and cells[use].str.match(_TIME).all():
            continue  # times of day only: no visit (probe 45 BI11)
        if not visit and _eye_s_or_photo_s(words, cells[use]):
            continue
        if eye_values(cells[use]):  # its eye, R and L: not two people (probe 58 BV8; input_lists says it)
            continue
        if not visit and _each_photo_s_own(cells[use], patients[use]):  # a row number, a file name (probe 43 BG7)
            continue
        folded = cells[use].map(lambda v: _visit_day(v) if by_day else _folded(v, header))
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
        # its eyes are paired only when both are known (probe 58 BV8)
        pooled = "its eyes paired" if {"left", "right"} <= set(eyes[rows]) else "its photos pooled"
        log.warning("%s: %d patient(s) have photos of two values of column %r, which is not read (e.g. patient %r: "
                    "%s): two people, sites or visits under one id? They are taken as one patient's photos (%s, its "
                    "decision from all of them): give each its own patient id if so; nothing is wrong if the column is "
                    "each eye's or photo's own", csv, len(differ), header[:40], patient, shown, pooled)
        for p in differ.index:
            values = " and ".join(repr(v[:40]) for v in dict.fromkeys(cells[use][patients[use] == p]))
            for k in folded.index[patients[use] == p]:
                noted.setdefault(k, f"{TWO_VALUES}: column {header[:40]!r} gives patient {p!r} {values}; taken as one "
                                    "patient's photos (two people, sites or visits? give each its own id)")
    return noted


def _eye_s_or_photo_s(words: set[str], cells: pd.Series) -> bool:
    """A column of each eye's or photo's own by a word of its name (IOP, a grade, quality, notes, a
    camera, a grader) or by its cells (a photo's field), unless its name says a person's too
    (`image_id`, not `Name on image`, `MRN (photo)`, `Subject ID (image)`: probe 46 BJ2)."""
    eye_s = words & _EYE_S_OWN_WORDS and not words & (_PERSON_WORDS | _ANYONE_S)
    photo_s = words & _PHOTO_WORDS and not words & (_PERSON_WORDS | _PERSON_ID_WORDS)
    return bool(eye_s or photo_s or words & _STAFF or _fields(cells))


def eye_values(cells: pd.Series) -> bool:
    """Cells that are, empty ones aside, eye words an eye column reads (R, L, OD, OS, left, right; any case)."""
    given = cells.astype(str).str.strip().str.lower()
    given = given[given != ""]
    return bool(len(given)) and bool(given.isin(list(EYE_WORDS)).all())


def no_patient_s_id(header: str, cells: pd.Series) -> bool:
    """A column not read that is no patient's id, though its values may be shared by two patients'
    photos: each eye's or photo's own, a date, a site, a person's sex or age (probe 58 BV3)."""
    words = set(name_words(header))
    given = cells[cells.map(_has_value)].str.strip()
    return (_eye_s_or_photo_s(words, given) or bool(words & (_DATE_WORDS | _SITE_WORDS | _SEX_WORDS | _AGE_WORDS))
            or column_key(header) in ("mf", "fm") or bool(len(given) and given.map(_written_date).mean() >= 0.9))


# What a field is centred on, named in every field cell (``Central`` and ``Peripheral`` alone are sites: probe 47 BK2)
_FIELD_CENTRES = {"macula", "macular", "disc", "disk", "optic", "fovea", "foveal", "nerve", "onh", "pole"}


def _fields(cells: pd.Series) -> bool:
    """Cells that name a photo's field (``macula``, ``disc-centred``), every one of them, and
    nothing else (``Central London`` is a site: probe 46 BJ4)."""
    return bool(len(cells)) and bool(cells.map(
        lambda v: bool(words := set(name_words(v))) and words <= _FIELD_WORDS and bool(words & _FIELD_CENTRES)).all())


def _eyes_named(cells: pd.Series) -> bool:
    """Cells that each name one eye and nothing else (``Left eye``, ``OD``, ``right``): each photo's own."""
    return bool(len(cells)) and bool(cells.map(lambda v: eye_alone(v) is not None).all())


def _padded(value: str) -> str:
    """An ISO date without its zeros (``1950-1-12``, as some exports write it) with them (probe 49 BM8)."""
    return re.sub(r"^((?:19|20)\d\d)-(\d{1,2})-(\d{1,2})(?=$|[ T])",
                  lambda m: f"{m[1]}-{int(m[2]):02d}-{int(m[3]):02d}", value.strip())


def _written_date(value: str) -> bool:
    """A cell that is a date written with separators (``2015-03-01``, ``1/3/2015 09:30``), as a column of dates
    is known by its cells; not a run of digits (an accession: probe 47 BK1)."""
    day = _DAY.match(_padded(value))
    return day is not None and (bool(day["a"]) or bool(day["dash"]))


def _has_value(value: str) -> bool:
    """A cell that says something: not empty, not a missing-value mark a spreadsheet or pandas writes
    (``NA``, ``N/A``, ``NaN``, ``unknown``). Narrower than a patient id's missing words: ``Nan`` and
    ``Na`` are names, ``NK`` initials (probe 47 BK8)."""
    return value.strip().casefold() not in _NO_VALUE or value.strip() in ("Na", "Nan")


def _visit_day(value: str) -> str:
    """A visit's cell as a day (``2015-03-01 09:30:12`` and ``2015-03-01``: one visit; probe 44 BH7)."""
    day = _DAY.match(_padded(value))
    if day is None:
        return _folded(value, "")  # not a date: no recursion, _folded takes dates here
    if day["y"]:
        return f"{int(day['y']) % 100:02d}-{day['m']}-{day['d']}"
    a, b, year = int(day["a"]), int(day["b"]), int(day["yy"]) % 100
    # One reading (a dot: day first, as Europe writes it; a day over 12; day = month): its ISO day, so
    # 31/01/1950 is 1950-01-31 (probe 48 BL3). Else never one day with an ISO date, whose order is known
    # (1/12/1950 may be 12 January: probe 47 BK3); 12/1/1950 is 12/01/1950 (probe 46 BJ5), and 12/01/50 (BK7).
    if day["sep"] == "." or a > 12 or b > 12 or a == b:
        d, m = (b, a) if b > 12 else (a, b)
        return f"{year:02d}-{m:02d}-{d:02d}"
    return f"{a:02d}/{b:02d}/{year:02d}"


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_NAMED_MONTH = re.compile(r"^(\d{1,2})[- /.]([A-Za-z]{3,9})\.?[- /.,]*((?:19|20)\d\d)$")
_BIRTH_WORDS = {"dob", "birth", "birthdate", "birthday", "geburtsdatum", "geburt", "geb", "naissance", "nacimiento",
                "nascita", "geboortedatum", "nascimento", "geburtstag", "生年月日", "出生日期", "생년월일", "рождения"}
_AGE_WORDS = {"age", "alter", "edad", "idade", "leeftijd", "eta", "年齢", "年龄", "나이", "возраст"}
_AGE = re.compile(r"^\s*(\d{1,3})(?:[.,]0+)?\s*(?:y|yr|yrs|year|years|j|jahre|ans|anos|a|jaar)?\.?\s*$", re.IGNORECASE)
# Sex in a few languages: folded to its first letter (M, Male; F, Femme; V, Vrouw), as one person writes it two ways.
_SEX_WORDS = {"sex", "gender", "sexe", "geslacht", "sexo", "geschlecht", "sesso", "genero", "性別", "性别", "성별", "пол"}


def _folded(value: str, header: str) -> str:
    """A cell as two rows of one person may spell it (``North Clinic``, ``north-clinic ``; ``M``,
    ``Male``: probe 41 BE10; ``José``, ``Jose``; ``67``, ``67.0``: probe 44 BH8); numbers kept apart
    (``1/12/1950`` is not ``11/2/1950``: probe 43 BG6)."""
    if named := _NAMED_MONTH.match(value.strip()):  # 12-Jan-1950 is 1950-01-12 (probe 47 BK7)
        value = f"{named[3]}-{_MONTHS.index(named[2][:3].casefold()) + 1:02d}-{int(named[1]):02d}"
    words = set(name_words(header))
    birth = bool(words & _BIRTH_WORDS) or column_key(header) in {"dob", "dateofbirth", "birthdate", "gebdatum"}
    if _written_date(value) or (birth and _DAY.match(value.strip())):  # a date as its day: `1950-01-12 00:00:00`,
        return _visit_day(value)  # `12/1/1950` (probe 46 BJ5), a birth date `19500112` (probe 48 BL3); not a number
    if words & _AGE_WORDS and (age := _AGE.match(value)):  # 67 is 67 y (probe 47 BK7)
        return age[1]
    plain = unaccented(unicodedata.normalize("NFKC", value).casefold())  # as a lookalike id is folded
    plain = re.sub(r"['’`]", "", plain)  # O'Brien is OBrien (probe 48 BL4)
    if re.fullmatch(r"[\d\s-]+", plain.strip()):  # 485 777 3456 is 4857773456, 00123 is 123 (probe 48 BL4)
        return re.sub(r"\D", "", plain).lstrip("0") or "0"
    tokens = re.findall(r"[^\W_]+", re.sub(r"(?<=\d)\.0+$", "", plain.strip()))
    if words & _SITE_WORDS:  # Site 01 is Site 1 (probe 47 BK7)
        tokens = [t.lstrip("0") or "0" if t.isdigit() else t for t in tokens]
    folded = " ".join(tokens)
    if words & _PERSON_WORDS and (pn := _natural_order(plain)):  # SMITH^JOHN, Smith, John: John Smith (probe 48 BL4)
        folded = pn  # in order: LEE^JAMES is not JAMES^LEE (probe 49 BM5)
    return folded[:1] if words & _SEX_WORDS or column_key(header) in ("mf", "fm") else folded


def _natural_order(name: str) -> str:
    """A name written family first, as a DICOM PN (``SMITH^JOHN^^MR``: family, given, middle, prefix)
    or ``Smith, John``, in the order ``John Smith`` is written; '' for a name in no such form."""
    if "^" in name:
        family, given = ([*name.split("^"), ""])[:2]
    elif name.count(",") == 1:
        family, given = name.split(",")
    else:
        return ""
    return " ".join(re.findall(r"[^\W_]+", f"{given} {family}"))


def _each_photo_s_own(cells: pd.Series, patients: pd.Series) -> bool:
    """A column whose every row differs, in a list where two patients at least have several rows:
    each photo's own (a row number, a file name, an accession per image: probe 43 BG7), not a person's
    (numbered, not words: probe 48 BL6)."""
    return bool(cells.is_unique) and int((patients.value_counts() > 1).sum()) >= 2 and _numbered(cells)


def _numbered(cells: pd.Series) -> bool:
    """Cells that are mostly numbered (``IMG_0001``, ``A17``, ``3``), as a photo's or row's own are; a
    person's names are not (``John Smith``, ``J. Smith``: probe 48 BL6)."""
    return bool(cells.str.contains(r"\d").mean() >= 0.5)


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
        given = (patients != "") & cells.map(_has_value)  # "unknown", "NA", "-": no value (probe 44 BH8)
        # a photo's field (`Centre`: macula, disc; probe 45 BI8), or its eye (`Scan site`: Left eye; probe 47 BK9)
        if what == "sites" and (_fields(cells[given]) or _eyes_named(cells[given])):
            continue
        # A person's column is compared even when every row differs: every patient with two photos may be two
        # people (probe 47 BK5)
        folded = cells[given].map(lambda v: _folded(v, header))
        values = folded.groupby(patients[given]).agg(lambda v: list(dict.fromkeys(v)))
        mixed = values[values.map(len) > 1]
        # A bare "name" may be each photo's own (a camera's file name): then no patient keeps one value,
        # and no value is on two rows (probe 43 CG4: "Person 0" on two rows of one id and two on another's).
        # "Site Name", "first_name" are no bare name (probe 41 BE1).
        alike = (patients[given].value_counts() > 1).reindex(values.index) & (values.map(len) == 1)
        if len(mixed) and (not set(name_words(header)) <= _BARE_NAMES or alike.any() or not cells[given].is_unique
                           or not _numbered(cells[given])):  # `John Smith` is a person's, `IMG_0001` a photo's (probe 48 BL6)
            patient = mixed.index[0]
            a, b = list(dict.fromkeys(cells[given][patients[given] == patient]))[:2]
            raise DataError(f"{csv}: patient {patient!r} has rows of two {what} in {header[:40]!r} ({a[:40]!r} and "
                            f"{b[:40]!r}): two patients under one id, whose eyes would be paired? Give each its own id"
                            + (f" (e.g. '{a[:20]}-{patient}')" if what == "sites" else "") + ", or remove the column")

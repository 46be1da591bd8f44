"""Read a graded fundus data set into one manifest: a table and the count of what was left out.

The table is a pandas DataFrame with one row per image and the columns

    image_id (str, unique), path (str, absolute), grade (int 0..4), patient_id (str),
    eye ("left", "right" or ""), source (format name), and split ("train"/"val"/"test")
    only when the data set publishes an official split.

Each reader :mod:`.readers` names by format follows the published layout of one public data set
(:mod:`.published_readers`) or a generic one (:mod:`.generic_readers`) and returns raw label
rows; ``_build_manifest`` validates them all the same way, so every format gives the same errors
(naming the label file, the 1-based data row and the image id).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from drgrader.config import Columns, DataConfig
from drgrader.data.dicom_labels import with_dicom_identity
from drgrader.data.eyes import folded_patient, shown_patient
from drgrader.data.given_patients import given_against_names, one_name_two_given, patients_claimed_by_names
from drgrader.data.grade_columns import looks_like_label_file
from drgrader.data.identity_claims import patient_named
from drgrader.data.identity_notes import camera_counter, one_eye_each, shots_of_one_patient
from drgrader.data.label_files import (
    IMAGE_EXTENSIONS,
    MANIFEST_COLUMNS,
    DataError,
    Found,
    LabelRow,
    grade_value,
    patients_over_visits,
    shown_path,
    strip_image_extension,
)
from drgrader.data.readers import READERS, detect_format
from drgrader.outputs import kind_of

log = logging.getLogger("drgrader")

__all__ = ["IMAGE_EXTENSIONS", "DataError", "Manifest", "Skipped", "detect_format", "read_dataset", "read_manifest",
           "strip_image_extension"]


@dataclass(frozen=True)
class Skipped:
    """Rows left out of a manifest: label rows whose image is missing (with
    ``data.skip_missing``), image files without a label row, and eyes the data set itself marks
    ungradable (Messidor-2, DDR)."""

    missing_image: int = 0
    unlabelled_files: int = 0
    ungradable: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Manifest:
    """The labelled images of a data set (``table``) and what was left out (``skipped``)."""

    table: pd.DataFrame
    skipped: Skipped


# -------------------------------------------------------------------- validation
def _grade(text: str, where: str) -> int:
    """Grade text -> int: "0".."4", or "0.0".."4.0" as spreadsheets write them."""
    if text == "":
        raise DataError(f"{where}: grade is empty")
    grade = grade_value(text)
    if grade is None:
        raise DataError(f"{where}: grade {text!r} is not one of 0, 1, 2, 3, 4")
    return grade


def _first_patients(df: pd.DataFrame, limit: int) -> pd.DataFrame:
    """Rows of the first ``limit`` patients (sorted by id); per official split when there is one,
    so a smoke run on IDRiD or DDR still has a training and a test set."""
    groups = [df] if "split" not in df.columns else [g for _, g in df.groupby("split")]
    keep: set[str] = set()
    for group in groups:
        keep.update(sorted(group["patient_id"].unique())[:limit])
    return df[df["patient_id"].isin(keep)]


def _resolved(path: Path) -> Path:
    """The absolute, link-free path; a symbolic link loop stays as found (reading it then fails
    with its reason, as a row of the cache index, instead of stopping the whole data set)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a loop, before Python 3.13
        return path.absolute()


def _warn_lookalike_patients(df: pd.DataFrame, root: Path) -> None:
    """Patient ids equal but for case, spacing, accents or a number's leading zeros (a spreadsheet turns
    ``007`` into ``7``) are kept apart as given, with a warning, as predict notes them."""
    ids = pd.Series(df["patient_id"].unique())
    groups = [sorted(group) for _, group in ids.groupby(ids.map(folded_patient)) if len(group) > 1]
    if groups:
        more = f" ({len(groups)} such groups)" if len(groups) > 1 else ""
        said = " and ".join(f"'{shown_patient(p)}'" for p in groups[0])
        log.warning("%s: patients %s differ only in case, spacing, separators, leading zeros, look-alike letters or accents%s; "
                    "kept apart as given (one spelling in the label file makes them one patient)", root, said, more)


def _warn_one_eye_graded_apart(df: pd.DataFrame, root: Path) -> None:
    """Two photos of one eye (``10_left``, ``10_left_2``) graded apart: a grade is the eye's, so the
    reference contradicts itself; both are kept as labelled, with a warning (probe 33 BV10)."""
    eyes = df[df["eye"] != ""]
    apart = [group for _, group in eyes.groupby(["patient_id", "eye"]) if group["grade"].nunique() > 1]
    if apart:
        first = apart[0]
        shown = ", ".join(f"{i!r} grade {g}" for i, g in zip(first["image_id"], first["grade"]))
        log.warning("%s: %d eye(s) have photos graded apart (e.g. patient %r %s eye: %s); a grade is an eye's, so the "
                    "labels contradict each other: check them", root, len(apart), first["patient_id"].iat[0],
                    first["eye"].iat[0], shown)


def _warn_one_photo_each(df: pd.DataFrame, root: Path) -> None:
    """Patient ids (a column's, a header's, a name's) for many photos, none of them on two: ids per
    photo (an exam or image id, an anonymiser that hashes per file), a patient's eyes then on both
    sides of a split (probe 45 CI5). Photos without one are warned of by their readers."""
    counts = df["patient_id"].value_counts()
    if len(df) >= 20 and (df["patient_id"] != df["image_id"]).all() and (counts == 1).mean() >= 0.8:  # most: probe 46 CJ4, 47 CK8
        log.warning("%s: %d of the %d patients have one photo: are the patient ids per photo (an exam or image id, an "
                    "anonymiser's per-file id)? Then a patient's two eyes may fall on both sides of the split", root,
                    int((counts == 1).sum()), len(counts))


def _warn_shots_as_patients(df: pd.DataFrame, root: Path, given: list[bool]) -> None:
    """Image ids ``Smith_John/1_L``, ``Smith_John/2_R`` (or ``IMG_0001_L``, a camera's counter): the names'
    numbers read as patients may be one patient's shots, whose eyes could then fall on both sides of a split
    (probe 53 BQ2, probe 54 CR1, as predict notes)."""
    named = df[~pd.Series(given, index=df.index, dtype=bool)]
    if named.empty:
        return
    folders = named["image_id"].astype(str).str.replace("\\", "/").str.rpartition("/")[0]
    one_each = one_eye_each(df).loc[named.index].groupby(folders).all()
    both = named["eye"].groupby(folders).agg(lambda eyes: {"left", "right"} <= set(eyes))
    shots = [f for f, patients in named["patient_id"].groupby(folders).agg(set).items()
             if f and shots_of_one_patient(patients, one_each[f], both[f])]
    if shots:
        log.warning("%s: %d folder(s) hold photos numbered like one patient's shots (e.g. %r: %s), each number read as "
                    "a patient: if each folder is one patient's, give a patient_id column, or a patient's eyes may fall "
                    "on both sides of the split", root, len(shots), shots[0],
                    ", ".join(sorted(named["image_id"][folders == shots[0]])[:3]))
    if counters := sorted(named["image_id"][named["patient_id"].astype(str).map(camera_counter)]):  # probe 54 CR1
        log.warning("%s: %d photo(s) are named by a camera's counter (e.g. %s), each counter read as a patient: give a "
                    "patient_id column, or a patient's eyes may fall on both sides of the split", root, len(counters),
                    ", ".join(counters[:2]))


def _warn_several_photos_of_one_eye(df: pd.DataFrame, root: Path) -> None:
    """Eyes with several photos (retakes, two fields per eye): every eye-level figure counts each
    photo, as the figures' "eyes" (probe 47 CK2: "65 eyes of 30 patients" for 60 eyes). Said, with
    the counts, so that no one reads them as eyes."""
    eyes = df[df["eye"] != ""]
    per_eye = eyes.groupby(["patient_id", "eye"]).size()
    several = per_eye[per_eye > 1]
    if len(several):
        (patient, eye), n = next(iter(several.items()))
        log.warning("%s: %d eye(s) have several photos (e.g. patient %r %s eye: %d): every eye-level figure counts each "
                    "photo as an eye (%d photos of %d eyes)", root, len(several), patient, eye, n, len(eyes), len(per_eye))


def _warn_no_grade_0(df: pd.DataFrame, root: Path) -> None:
    """No grade 0 among many photos: a scale from 1 (1-5, 1-4) read as ICDR's 0-4, every eye a step
    too high (probe 40 CD3). A set chosen for disease has no 0 either: said, not refused."""
    if len(df) >= 20 and df["grade"].min() >= 1:
        log.warning("%s: no grade 0 among %d photos: a grade scale that starts at 1 read as the ICDR grades 0-4, every eye "
                    "a step too high? If these are ICDR grades (eyes chosen for disease), nothing is wrong", root, len(df))


def _warn_binary_grades(df: pd.DataFrame, root: Path) -> None:
    """Every grade 0 or 1 over many photos: a yes/no label (any DR, referable; a binarised EyePACS
    copy) read as ICDR grades none and mild, whatever its column's name (probe 38 CB4). Real ICDR
    grades of a day without a moderate eye look alike, so said whatever the share of 1s (a fifth
    or more, probe 39 CC9, let a referable label of 10% pass unsaid: probe 41 CE8)."""
    if len(df) >= 20 and set(df["grade"]) == {0, 1}:
        log.warning("%s: every grade read is 0 or 1 (%d photos, %.0f%% of them 1): a yes/no label (any DR, referable) read as "
                    "the ICDR grades 0 (no DR) and 1 (mild)? drgrader reads grades 0-4 and derives referable DR (2 or more) "
                    "from them; if these are ICDR grades (no eye moderate or worse), nothing is wrong", root, len(df),
                    100 * (df["grade"] == 1).mean())


def _note_given_against_names(df: pd.DataFrame, given: list[bool], root: Path) -> None:
    """A label file's patient cell that another row's name contradicts (``10_left`` given patient
    12 while ``10_right`` is patient 10: a shifted cell) is taken as predict takes it, by the one
    resolver (:func:`~drgrader.data.given_patients.given_against_names`): the eye left unknown (never
    paired as a fellow eye), and said in one warning."""
    notes: list[list[str]] = [[] for _ in range(len(df))]
    given_rows = pd.Series(given, index=df.index)
    named = patients_claimed_by_names(df, given_rows, df["image_id"].map(patient_named))
    contested = given_against_names(df, given_rows, named, notes)
    if contested.any():
        log.warning("%s: %d label row(s) give a patient their image's name contradicts; e.g. %s (correct the "
                    "label file's patient cell if it is shifted)", root, int(contested.sum()),
                    notes[int(contested.to_numpy().argmax())][0])
    split: list[list[str]] = [[] for _ in range(len(df))]  # one name's eyes given two patients (probe 51 CO3)
    one_name_two_given(df, given_rows, named, split)
    if said := [n[0] for n in split if n]:
        log.warning("%s: %d label row(s) of one name's patient are given two patients; e.g. %s; a patient-level split "
                    "may put that patient's eyes on both sides", root, len(said), said[0])


def _under(path: Path, root: Path) -> bool:
    """Inside ``root`` as found there (a linked image folder counts, its photos walked with root's:
    probe 35 BY4 counted them twice) or once links are resolved."""
    try:
        return Path(path).absolute().is_relative_to(root) or _resolved(path).is_relative_to(root)
    except (OSError, ValueError):
        return False


def _unlisted_photos(root: Path, claimed: set[Path], cfg: DataConfig) -> list[Path]:
    """The photos under ``root`` (subfolders included, links followed once) that no label row
    claims; hidden files and folders, the cache folder and drgrader's own output folders (runs,
    evaluations, bundles: their figures are PNGs) are not photos of the data set."""
    skip = {_resolved(Path(cfg.cache_dir).expanduser())} if cfg.cache_dir is not None else set()
    seen: set[Path] = set()
    found: list[Path] = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        here = Path(folder)
        real = _resolved(here)
        if real in seen:  # a link back up the tree
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and _resolved(here / d) not in skip
                         and kind_of(here / d) in (None, "a folder"))
        for name in sorted(files):
            path = here / name
            if name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS or path in claimed:
                continue
            if _resolved(path) not in claimed:
                found.append(path)
    return found


def _label_source(source: str, cfg: DataConfig, rows: list[LabelRow]) -> str:
    """What lists a data set's photos, in words, for the warning on the photos it does not list."""
    if source == "folders":
        return "a grade folder 0..4 (such as '3' or '3 severe')"
    files = sorted({row.where.rsplit(" row ", 1)[0] for row in rows if " row " in row.where})
    if not files:
        files = [str(cfg.labels or "labels.csv")] if source == "csv" else [f"the {source} label files"]
    return " or ".join(files[:3]) + (" (or the other label files)" if len(files) > 3 else "")


def _warn_unlisted(unlisted: list[Path], root: Path, listed_in: str) -> None:
    """One warning naming how many photos the label files do not list, per top folder, with an example."""
    by_folder: dict[str, int] = {}
    for path in unlisted:
        parts = path.relative_to(root).parts
        top = parts[0] + "/" if len(parts) > 1 else "the folder itself"
        by_folder[top] = by_folder.get(top, 0) + 1
    shown = sorted(by_folder.items(), key=lambda item: (-item[1], item[0]))
    listing = ", ".join(f"{name}: {n}" for name, n in shown[:6]) + (f", {len(shown) - 6} more folders" if len(shown) > 6 else "")
    count = f"{len(unlisted)} photo{'s' if len(unlisted) != 1 else ''}"
    warnings.warn(f"{count} in {root} {'are' if len(unlisted) != 1 else 'is'} not in {listed_in} and "
                  f"{'are' if len(unlisted) != 1 else 'is'} left out (in {listing}; e.g. "
                  f"{unlisted[0].relative_to(root).as_posix()})", stacklevel=4)


def _warn_other_label_files(root: Path, source: str, cfg: DataConfig, rows: list[LabelRow]) -> None:
    """A label file beside the one the format reads (``labels.csv``, ``grades.csv`` or
    ``labels/trainLabels.csv`` next to ``trainLabels.csv``: any CSV in the root or a folder of it
    with an image and a grade column) is named in a warning: which one was meant is unknown, and
    it would otherwise be left out without a word. Not when data.labels names the file to read."""
    if cfg.labels is not None:
        return
    read = {row.where.rsplit(" row ", 1)[0] for row in rows if " row " in row.where}
    if not read:
        return
    # any case of the suffix, and tab-separated too (Labels.CSV, grades.tsv: probe 53 CQ1)
    csvs = [p for p in (*root.glob("*.*"), *root.glob("*/*.*")) if p.suffix.lower() in (".csv", ".tsv")]
    others = sorted(name for p in csvs if (name := shown_path(p, root)) not in read and looks_like_label_file(p))
    if read and others:
        names = " and ".join(sorted(read) + others)
        warnings.warn(f"{root} holds {names}: read {', '.join(sorted(read))} ({source}); {', '.join(others)} "
                      f"{'is' if len(others) == 1 else 'are'} not read (data.format=csv and data.labels={others[0]} "
                      f"read it instead{', saved as comma-separated' if others[0].lower().endswith('.tsv') else ''})",
                      stacklevel=4)


def _build_manifest(found: Found, cfg: DataConfig, source: str, root: Path) -> Manifest:
    rows, folders, extra_skipped = found
    records, missing, given = [], [], []
    first_seen: dict[str, LabelRow] = {}
    row_of_file: dict[str, LabelRow] = {}
    for row in rows:
        if not row.image_id:
            raise DataError(f"{row.where}: image name is empty")
        grade = _grade(row.grade, row.where)
        if row.image_id in first_seen:
            raise DataError(f"{row.where}: image id {row.image_id!r} appears twice "
                            f"(also {first_seen[row.image_id].where})")
        first_seen[row.image_id] = row
        if row.path is None:
            missing.append(row)
            continue
        path = str(_resolved(row.path))
        # Files are found case-insensitively, so '10_left' and '10_LEFT' pass the id check above
        # and would use one photo twice, with two grades.
        if path in row_of_file:
            raise DataError(f"{row.where}: names the same file as {row_of_file[path].where} "
                            f"({shown_path(row.path, root)}); keep one row")
        row_of_file[path] = row
        record = {"image_id": row.image_id, "path": path, "grade": grade,
                  "patient_id": str(row.patient_id), "eye": row.eye, "source": source}
        if row.split is not None:
            record["split"] = row.split
        records.append(record)
        given.append(row.patient_given)
    if missing and not cfg.skip_missing:
        more = f"; {len(missing) - 1} more rows lack their image" if len(missing) > 1 else ""
        raise DataError(f"{missing[0].where}: image file not found: {missing[0].looked_for}"
                        f"{more} (data.skip_missing=true skips such rows)")
    # Every photo under the root that no label row claims is counted, and named in one warning
    # (a reader's image folders and whatever lies beside them: grade folders next to
    # trainLabels.csv, a test/ folder); an image folder outside the root counts its own.
    claimed = {path for row in rows if row.path is not None for path in (row.path, _resolved(row.path))}
    claimed |= {path for folder in folders for path in folder.used}
    outside = [f for f in folders if not _under(f.folder, root)]
    unlisted = _unlisted_photos(root, claimed, cfg)
    unlabelled = len(unlisted) + sum(f.unlabelled() for f in outside) + extra_skipped.get("unlabelled_files", 0)
    skipped = Skipped(missing_image=len(missing), **{**extra_skipped, "unlabelled_files": unlabelled})
    if not records:
        raise DataError(f"no usable labelled images in {root} (format {source}); skipped: {skipped.as_dict()}")
    if unlisted:
        _warn_unlisted(unlisted, root, _label_source(source, cfg, rows))
    _warn_other_label_files(root, source, cfg, rows)
    has_split = any("split" in r for r in records)
    df = pd.DataFrame(records, columns=MANIFEST_COLUMNS + (["split"] if has_split else []))
    df["grade"] = df["grade"].astype("int64")
    df["patient_id"] = patients_over_visits(df["image_id"], df["patient_id"], given)
    df = with_dicom_identity(df, given, root)
    _note_given_against_names(df, given, root)
    _warn_lookalike_patients(df, root)
    _warn_one_eye_graded_apart(df, root)
    _warn_binary_grades(df, root)
    _warn_no_grade_0(df, root)
    _warn_one_photo_each(df, root)
    _warn_shots_as_patients(df, root, given)
    _warn_several_photos_of_one_eye(df, root)
    if cfg.limit is not None:
        df = _first_patients(df, cfg.limit)
    df = df.sort_values("image_id", kind="stable").reset_index(drop=True)
    return Manifest(df, skipped)


def _refuse_csv_options(cfg: DataConfig, fmt: str, root: Path) -> None:
    """data.labels, data.images and data.columns are read by the csv format alone; under another
    format they would be ignored (a corrected label file silently not used), so they are refused."""
    if fmt == "csv":
        return
    given = [(name, value) for name, value in (("data.labels", cfg.labels), ("data.images", cfg.images)) if value is not None]
    given += [(f"data.columns.{key}", value) for key, value in cfg.columns if value != getattr(Columns(), key)]
    if given:
        name, value = given[0]
        how = "detected in" if cfg.format == "auto" else "given for"
        raise DataError(f"{name}={value} is not read by the {fmt} format ({how} {root}), which reads its own "
                        "layout's label files; use data.format=csv to read a label file of your own, or drop it")


def read_manifest(cfg: DataConfig) -> Manifest:
    """Read the data set described by ``cfg`` (``data`` section) into a validated manifest.

    ``cfg.format == "auto"`` detects the format from the files present (``csv`` when
    ``cfg.labels`` is set). Raises :class:`DataError` naming the file and row of the first
    problem. The result's ``skipped`` counts what was left out.
    """
    if cfg.root is None:
        raise DataError("data.root is not set: give the folder of a data set")
    root = Path(cfg.root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"data folder not found: {root} (data.root)")
    fmt: str = cfg.format
    if fmt == "auto":
        fmt = "csv" if cfg.labels is not None else detect_format(root)
    _refuse_csv_options(cfg, fmt, root)
    return _build_manifest(READERS[fmt](root, cfg), cfg, fmt, root)


def read_dataset(root: str | Path, format: str = "auto", **kwargs) -> pd.DataFrame:
    """Convenience: the table of ``read_manifest(DataConfig(root=root, format=format, **kwargs))``."""
    return read_manifest(DataConfig.model_validate({"root": Path(root), "format": format, **kwargs})).table

"""Grade many photos with a bundle: image files, folders or a CSV in, one CSV row per image out
(JPEG, PNG, TIFF, BMP, GIF, WebP, DICOM; a multi-frame DICOM file gives a row per frame).

Decoding and preprocessing run in a thread pool (OpenCV and Pillow release the GIL) one batch
ahead of the model. Finished rows are appended to ``<out>.partial.csv`` after every batch, so an
interrupted run continues where it stopped when rerun with the same ``--out``; the final CSV is
written atomically at the end. An unreadable image becomes a row with its error, not a crash.

No PyTorch import here: with an ONNX bundle this module runs on ONNX Runtime alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from drgrader.config import ConfigError, PreprocessConfig
from drgrader.data.dicom import frame_ref, is_dicom, read_header, split_frame_ref
from drgrader.data.eyes import EYE_WORDS, patient_and_eye
from drgrader.data.images import ImageReadError, read_image
from drgrader.data.manifest import IMAGE_EXTENSIONS, DataError, strip_image_extension
from drgrader.data.photo import preprocess_file
from drgrader.data.preprocess import assess_quality, find_fundus
from drgrader.grading import GRADE_NAMES, SCORE_COLUMNS, column_index
from drgrader.inference.bundle import Bundle, load_bundle
from drgrader.inference.patient_decision import DecisionPoints, bundle_decision_points, decide_patients, eye_uncertainty
from drgrader.inference.predictor import apply_view
from drgrader.io import atomic_write_json, atomic_write_text
from drgrader.outputs import claim_file, exclusive
from drgrader.runtime import cpu_count

log = logging.getLogger("drgrader")

DEFAULT_OUT = "predictions.csv"
INPUT_COLUMNS = ["path", "image_id", "patient_id", "eye"]
OUTPUT_COLUMNS = [
    *INPUT_COLUMNS,
    "grade",
    *SCORE_COLUMNS,
    "any_dr",
    "referable",
    "gradable",
    "quality_score",
    "quality_reason",
    "error",
]
PATIENT_COLUMNS = [
    "patient_id",
    "decision",
    "reason",
    "uncertainty",
    "images",
    "worst_image",
    "worst_eye",
    "grade",
    "expected_grade",
    "score_any",
    "score_referable",
    "any_dr",
    "referable",
    "all_gradable",
]
_TEXT_COLUMNS = ["path", "image_id", "patient_id", "eye", "quality_reason", "error"]
_FRAME_ID = re.compile(r"#frame[0-9]+$")


# ------------------------------------------------------------------------------ inputs
def _input_rows(path: Path, image_id: str | None = None, patient_id: str = "", eye: str = "") -> list[dict]:
    """The rows of one input file. Patient and eye: as given (CSV), else from DICOM tags
    (``PatientID``, ``ImageLaterality`` / ``Laterality``), else from the file name
    (:func:`~drgrader.data.eyes.patient_and_eye`). A multi-frame DICOM file gives one row per
    frame: path ``<file>#frame<N>``, image id ``<id>#frame<N>``."""
    image_id = image_id or path.stem
    source, frame = split_frame_ref(path)
    frames = 1
    if is_dicom(source):
        try:
            header = read_header(source)
        except ImageReadError:
            header = None  # its row says why when it is graded
        if header is not None:
            patient_id, eye = patient_id or header.patient_id, eye or header.eye
            frames = header.frames if frame is None else 1
    named = patient_and_eye(_FRAME_ID.sub("", image_id))
    if named:
        patient_id, eye = patient_id or named[0], eye or named[1]
    row = {"path": str(path), "image_id": image_id, "patient_id": patient_id, "eye": eye}
    if frames == 1:
        return [row]
    return [{**row, "path": frame_ref(path, k), "image_id": f"{image_id}#frame{k}"} for k in range(1, frames + 1)]


def _is_photo_file(path: Path) -> bool:
    """A photo by its extension, or a DICOM file by its content (exports often lack ``.dcm``;
    a DICOMDIR index holds no image)."""
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return True
    return path.name.upper() != "DICOMDIR" and is_dicom(path)


def _resolve_csv_image(folder: Path, ref: str) -> Path:
    """A CSV cell -> image path: relative to the CSV's folder; a name without extension
    (Kaggle's ``10_left``) gets the first image extension that exists."""
    path = Path(ref)
    if not path.is_absolute():
        path = folder / path
    if path.suffix.lower() not in IMAGE_EXTENSIONS and not path.exists():
        for ext in IMAGE_EXTENSIONS:
            candidate = path.with_name(path.name + ext)
            if candidate.is_file():
                return candidate
    return path  # a missing file becomes a row with "file not found"


def _rows_from_csv(csv: Path) -> list[dict]:
    try:
        table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{csv}: not a readable CSV: {exc}") from None
    lower = {c.strip().lower(): c for c in table.columns}
    image_col = lower.get("image") or lower.get("path")
    if image_col is None:
        raise DataError(f"{csv}: needs an 'image' or 'path' column (has {list(table.columns)})")
    patient_col = lower.get("patient_id") or lower.get("patient")
    eye_col = lower.get("eye")
    rows = []
    for number, rec in enumerate(table.to_dict("records"), start=2):  # row 1 is the header
        ref = rec[image_col].strip()
        if not ref:
            raise DataError(f"{csv} row {number}: empty {image_col!r} cell")
        eye = rec[eye_col].strip() if eye_col else ""
        if eye and eye.lower() not in EYE_WORDS:
            raise DataError(f"{csv} row {number} (image {ref!r}): eye {eye!r} is not one of left/right/L/R/OS/OD")
        rows += _input_rows(
            _resolve_csv_image(csv.parent, ref),
            image_id=strip_image_extension(ref),
            patient_id=rec[patient_col].strip() if patient_col else "",
            eye=EYE_WORDS.get(eye.lower(), ""),
        )
    return rows


def collect_inputs(inputs: Sequence[str | Path]) -> pd.DataFrame:
    """Image files, folders (searched recursively for image extensions, and for DICOM files by
    content) and CSVs (an ``image`` or ``path`` column, optional ``patient_id``/``patient`` and
    ``eye``) -> a table with ``INPUT_COLUMNS``. Patient and eye also come from DICOM tags and
    from file names (``123_left``, ``Patient001_L``, ``P7-OD``: :mod:`drgrader.data.eyes`).
    A multi-frame DICOM file gives one row per frame (``<file>#frame<N>``)."""
    rows: list[dict] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            # Every entry with an image extension becomes a row, even a FIFO or a broken link
            # (its row then says why it was not graded); other entries are counted by suffix.
            entries = sorted(f for f in path.rglob("*") if not f.name.startswith(".") and not f.is_dir())
            photo = [_is_photo_file(f) for f in entries]
            files = [f for f, ok in zip(entries, photo) if ok]
            others = Counter(f.suffix.lower() or "(no suffix)" for f, ok in zip(entries, photo) if not ok)
            if others:
                listing = ", ".join(f"{suffix}: {n}" for suffix, n in sorted(others.items()))
                log.warning("skipped %d files in %s that are not %s images (%s)",
                            sum(others.values()), path, "/".join(IMAGE_EXTENSIONS), listing)
            if not files:
                log.warning("no images (%s) in folder %s", ", ".join(IMAGE_EXTENSIONS), path)
            rows += [row for f in files for row in _input_rows(f)]
        elif path.suffix.lower() == ".csv" and path.is_file():
            rows += _rows_from_csv(path)
        elif path.exists() or split_frame_ref(path)[1] is not None:
            rows += _input_rows(path)
        else:
            raise FileNotFoundError(f"input not found: {path}")
    table = pd.DataFrame(rows, columns=INPUT_COLUMNS)
    return table.drop_duplicates("path").reset_index(drop=True)


# --------------------------------------------------------------------- decode + score
@dataclass
class _Loaded:
    """One photo after the worker: model input(s) and quality, or the reason it failed."""

    prepared: object = None  # array, or a list per ensemble member
    gradable: bool | None = None
    quality_score: float = float("nan")
    quality_reason: str = ""
    error: str = ""


def load_photo(path: str | Path, bundle: Bundle) -> _Loaded:
    """Decode, check quality and preprocess one photo (runs in the worker threads)."""
    try:
        if bundle.reads_cached_input:
            # Exactly what the training cache stores: same scale-on-decode, same pipeline.
            cfg = PreprocessConfig.model_validate(bundle.manifest["preprocess"])
            done = preprocess_file(path, cfg, bundle.input_size)
            return _Loaded(done.image, done.quality.gradable, done.quality.score, done.quality.reason)
        rgb = read_image(path)
    except ImageReadError as exc:
        return _Loaded(error=exc.reason)
    except (ValueError, cv2.error) as exc:
        return _Loaded(error=f"preprocessing failed: {exc}")
    try:
        circle = find_fundus(rgb)
        quality = assess_quality(rgb, circle)
        prepared = bundle.prepare(rgb, circle)
    except (ValueError, cv2.error) as exc:  # one odd photo must not stop a run of thousands
        return _Loaded(error=f"preprocessing failed: {exc}")
    return _Loaded(prepared, quality.gradable, quality.score, quality.reason)


def _predict_chunk(bundle: Bundle, chunk: pd.DataFrame, loaded: list[_Loaded], tta: list[str] | None) -> pd.DataFrame:
    out = chunk[INPUT_COLUMNS].reset_index(drop=True).copy()
    ok = [i for i, item in enumerate(loaded) if not item.error]
    scores = np.full((len(chunk), len(SCORE_COLUMNS)), np.nan)
    decisions = pd.DataFrame(np.nan, index=range(len(chunk)), columns=["pred_grade", "any_dr_pred", "referable_pred"])
    if ok:
        scores[ok] = bundle.score_prepared([loaded[i].prepared for i in ok], tta)
        decided = bundle.decide(scores[ok])
        decisions.loc[ok, decisions.columns] = decided[decisions.columns].to_numpy()
    out["grade"] = decisions["pred_grade"]
    for j, col in enumerate(SCORE_COLUMNS):
        out[col] = scores[:, j]
    out["any_dr"] = decisions["any_dr_pred"]
    out["referable"] = decisions["referable_pred"]
    out["gradable"] = [item.gradable for item in loaded]
    out["quality_score"] = [item.quality_score for item in loaded]
    out["quality_reason"] = [item.quality_reason for item in loaded]
    out["error"] = [item.error for item in loaded]
    return out[OUTPUT_COLUMNS]


def _submit(pool: ThreadPoolExecutor, bundle: Bundle, chunk: pd.DataFrame) -> list[Future]:
    return [pool.submit(load_photo, path, bundle) for path in chunk["path"]]


def predict_images(
    bundle: Bundle,
    images: Sequence[str | Path] | pd.DataFrame,
    *,
    batch_size: int = 16,
    tta: list[str] | None = None,
    workers: int | None = None,
    on_batch: Callable[[pd.DataFrame], None] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Predict every image; returns one row per image (per frame of a multi-frame DICOM file)
    with ``OUTPUT_COLUMNS``.

    ``images``: paths, or a table with ``INPUT_COLUMNS`` (from :func:`collect_inputs`).
    ``tta``: views (default: the bundle's). ``on_batch`` receives each finished batch's rows.
    """
    if isinstance(images, pd.DataFrame):
        table = images.reset_index(drop=True)
    else:
        table = pd.DataFrame([row for p in images for row in _input_rows(Path(p))], columns=INPUT_COLUMNS)
    check_tta(tta)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    chunks = [table.iloc[i : i + batch_size] for i in range(0, len(table), batch_size)]
    results = []
    pool = ThreadPoolExecutor(max_workers=workers or cpu_count(), thread_name_prefix="drgrader-decode")
    bar = tqdm(total=len(table), unit="img", desc="predicting", disable=not progress)
    try:
        pending = _submit(pool, bundle, chunks[0]) if chunks else []
        for i, chunk in enumerate(chunks):
            loaded = [f.result() for f in pending]
            # Decode the next batch while the model runs on this one.
            pending = _submit(pool, bundle, chunks[i + 1]) if i + 1 < len(chunks) else []
            rows = _predict_chunk(bundle, chunk, loaded, tta)
            if on_batch is not None:
                on_batch(rows)
            results.append(rows)
            bar.update(len(chunk))
    finally:
        bar.close()
        pool.shutdown(wait=True, cancel_futures=True)
    if not results:
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    return _typed(pd.concat(results, ignore_index=True))


def check_tta(tta: list[str] | None) -> None:
    """Fail before any work on an unknown TTA view name."""
    probe = np.zeros((1, 8, 8, 3), dtype=np.uint8)
    for view in tta or []:
        try:
            apply_view(probe, view)
        except ValueError as exc:
            raise ConfigError(f"--tta: {exc}") from None


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Integer decisions (empty where there is none), booleans, text without NaN."""
    df = df.copy()
    for col in ("grade", "any_dr", "referable"):
        df[col] = pd.to_numeric(df[col], errors="coerce").round().astype("Int64")
    df["gradable"] = df["gradable"].map({True: True, False: False, "True": True, "False": False}).astype("boolean")
    for col in _TEXT_COLUMNS:
        df[col] = df[col].fillna("").astype(str)
    return df


def describe_prediction(bundle: Bundle, scores: np.ndarray) -> dict:
    """One image's scores (8 values) -> JSON-ready prediction: task, grade, grade_name,
    probabilities (5 or None), expected_grade, score_any, score_referable, any_dr, referable
    (None where the model cannot say)."""
    scores = np.asarray(scores, dtype=float).reshape(1, -1)
    decided = bundle.decide(scores).iloc[0]
    grade, probs = decided["pred_grade"], scores[0, :5]

    def value(x: float) -> float | None:
        return None if np.isnan(x) else float(x)

    def decision(x: float) -> bool | None:
        return None if np.isnan(x) else bool(x >= 0.5)

    return {
        "task": bundle.task,
        "grade": None if np.isnan(grade) else int(grade),
        "grade_name": None if np.isnan(grade) else GRADE_NAMES[int(grade)],
        "probabilities": None if np.isnan(probs).any() else [float(p) for p in probs],
        **{column: value(scores[0, column_index(column)]) for column in ("expected_grade", "score_any", "score_referable")},
        "any_dr": decision(decided["any_dr_pred"]),
        "referable": decision(decided["referable_pred"]),
    }


# ------------------------------------------------------------------------ per patient
def patient_table(preds: pd.DataFrame, points: DecisionPoints) -> pd.DataFrame:
    """One row per patient: the per-patient decision (:mod:`.patient_decision`, by ``points``)
    with its reason and uncertainty, and the worst eye's figures (highest grade, then referable
    score). A patient whose photos were all unreadable still gets a row (``ungradable``)."""
    decisions = decide_patients(preds, points).drop(columns="deciding_image")
    rows = preds[(preds["patient_id"] != "") & (preds["error"] == "")]
    if rows.empty:
        return decisions.reindex(columns=PATIENT_COLUMNS)
    keys = ["grade", "score_referable", "score_any", "expected_grade"]
    worst = rows.sort_values(keys, ascending=False, na_position="last").groupby("patient_id", sort=False).head(1)
    worst = worst.set_index("patient_id")
    grouped = rows.groupby("patient_id", sort=True)
    table = pd.DataFrame(
        {
            "images": grouped.size(),
            "worst_image": worst["image_id"],
            "worst_eye": worst["eye"],
            "grade": grouped["grade"].max(),
            "expected_grade": grouped["expected_grade"].max(),
            "score_any": grouped["score_any"].max(),
            "score_referable": grouped["score_referable"].max(),
            "any_dr": grouped["any_dr"].max(),
            "referable": grouped["referable"].max(),
            "all_gradable": grouped["gradable"].all(),
        }
    )
    table = decisions.merge(table.rename_axis("patient_id").reset_index(), on="patient_id", how="left")
    table["images"] = table["images"].fillna(0).astype(int)
    table["all_gradable"] = table["all_gradable"].astype("boolean").fillna(False)
    return table[PATIENT_COLUMNS]


def with_paired_eyes(preds: pd.DataFrame, paired_stage: dict) -> pd.DataFrame:
    """Re-decide every graded photo with the bundle's paired-eye stage: an eye whose patient has
    one other photo (of the other eye) is graded from both, the others by the single-eye
    fallback. Adds ``fused_grade`` and ``paired``; the scores stay the first stage's."""
    from drgrader.inference.paired_eyes import decisions_with_stage

    scored = preds[SCORE_COLUMNS].notna().any(axis=1).to_numpy()
    usable = preds.assign(expected_grade=preds["expected_grade"].where(preds["error"] == ""))
    staged = decisions_with_stage(usable, paired_stage)
    out = preds.copy()
    for column, staged_column in (("grade", "pred_grade"), ("any_dr", "any_dr_pred"), ("referable", "referable_pred")):
        out[column] = pd.Series(np.where(scored, staged[staged_column], np.nan)).round().astype("Int64")
    out["fused_grade"] = staged["fused_grade"].to_numpy()
    out["paired"] = staged["paired"].to_numpy()
    return out


# ------------------------------------------------------------------------ the command
def _resume_key(bundle: Bundle, tta: list[str] | None) -> dict:
    """What must not change between an interrupted run and its continuation."""
    manifest = json.dumps(bundle.manifest, sort_keys=True, default=str).encode()
    return {"bundle": str(Path(bundle.path).resolve()), "manifest_sha256": hashlib.sha256(manifest).hexdigest(), "tta": tta}


def _read_partial(partial: Path) -> pd.DataFrame:
    data = partial.read_bytes()
    if data and not data.endswith(b"\n"):
        # Killed in the middle of a write: drop the incomplete last line.
        data = data[: data.rfind(b"\n") + 1]
        partial.write_bytes(data)
    if not data.strip():
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    return pd.read_csv(partial, dtype={c: str for c in _TEXT_COLUMNS})


def _default_out() -> Path:
    """``predictions.csv``; when that exists, the interrupted run it belongs to, else a fresh name."""
    default = Path(DEFAULT_OUT)
    candidate, n = default, 1
    while candidate.exists() and not candidate.with_name(candidate.name + ".partial.csv").exists():
        n += 1
        candidate = default.with_name(f"{default.stem}-{n}{default.suffix}")
    return candidate


def predict_command(
    bundle: str | Path | Bundle,
    inputs: Sequence[str | Path],
    *,
    out: str | Path | None = None,
    backend: str = "auto",
    batch_size: int = 16,
    tta: list[str] | None = None,
    overwrite: bool = False,
    refer_share: float | None = None,
) -> Path:
    """``drgrader predict``: grade the inputs into ``out`` (CSV, ``OUTPUT_COLUMNS`` and each
    photo's ``uncertainty``) and, when patient ids are known, ``<out stem>_patients.csv`` (the
    per-patient decision, its reason and uncertainty, and the worst eye). ``refer_share``: the
    share of patients to send to a human grader (default: the bundle's). Resumable: rerun with
    the same ``out``. Without ``out``: ``predictions.csv``, or a fresh ``predictions-2.csv`` ...
    when it exists (an interrupted default run is resumed)."""
    check_tta(tta)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    if refer_share is not None and not 0 <= refer_share <= 0.5:
        raise ConfigError(f"--refer-share must be between 0 and 0.5, got {refer_share}")
    table = collect_inputs(inputs)
    if table.empty:
        raise DataError(f"no images found in {', '.join(str(i) for i in inputs)}")
    out = claim_file(_default_out() if out is None else Path(out), inputs=[*inputs, *table["path"]], overwrite=overwrite)
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle, backend)
    try:  # before any work: a share the bundle has no band for
        bundle_decision_points(bundle.manifest, pd.DataFrame(columns=SCORE_COLUMNS), refer_share=refer_share)
    except ValueError as exc:
        raise ConfigError(f"--refer-share: {exc}") from None
    with exclusive(out):
        return _predict_into(bundle, table, out, batch_size, tta, refer_share)


def _predict_into(
    bundle: Bundle, table: pd.DataFrame, out: Path, batch_size: int, tta: list[str] | None, refer_share: float | None = None
) -> Path:
    partial = out.with_name(out.name + ".partial.csv")
    key_file = out.with_name(out.name + ".partial.json")
    key = _resume_key(bundle, tta)
    done = pd.DataFrame(columns=OUTPUT_COLUMNS)
    if partial.is_file():
        old_key = json.loads(key_file.read_text()) if key_file.is_file() else None
        if old_key == key:
            done = _read_partial(partial)
            log.info("resuming: %d of %d images already done in %s", table["path"].isin(done["path"]).sum(), len(table), partial)
        else:
            log.warning("ignoring %s: written with another bundle or TTA", partial)
            partial.unlink()
    if not partial.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(key_file, key)
    todo = table[~table["path"].isin(done["path"])]

    with open(partial, "a", encoding="utf-8", newline="") as fh:
        write_header = fh.tell() == 0

        def append(rows: pd.DataFrame) -> None:
            nonlocal write_header
            fh.write(rows.to_csv(index=False, header=write_header))
            write_header = False
            fh.flush()
            os.fsync(fh.fileno())

        predict_images(bundle, todo, batch_size=batch_size, tta=tta, on_batch=append)

    rows = _read_partial(partial).drop_duplicates("path", keep="last")
    final = _typed(table[["path"]].merge(rows, on="path", how="left")[OUTPUT_COLUMNS])
    if bundle.paired_eyes:
        final = with_paired_eyes(final, bundle.paired_eyes)
    points = bundle_decision_points(bundle.manifest, final, refer_share=refer_share)
    final["uncertainty"] = eye_uncertainty(final, points)
    atomic_write_text(out, final.to_csv(index=False))
    patients = patient_table(final, points)
    if len(patients):
        patients_file = out.with_name(f"{out.stem}_patients.csv")
        atomic_write_text(patients_file, patients.to_csv(index=False))
        counts = patients["decision"].value_counts()
        log.info("per-patient decisions (%s): %s", ", ".join(f"{n} {o}" for o, n in counts.items()), patients_file)
    partial.unlink()
    key_file.unlink(missing_ok=True)
    failed = int((final["error"] != "").sum())
    ungradable = int((final["gradable"] == False).sum())  # noqa: E712 (nullable boolean)
    log.info("predicted %d images (%d unreadable, %d flagged ungradable): %s", len(final) - failed, failed, ungradable, out)
    return out

"""Grade many photos with a bundle: one row per image (JPEG, PNG, TIFF, BMP, GIF, WebP, DICOM; a
multi-frame DICOM file gives a row per frame), and the per-patient table. The command around it
(inputs, resumable output) is :mod:`drgrader.workflows.predict`.

Decoding and preprocessing run in a thread pool (OpenCV and Pillow release the GIL) one batch
ahead of the model. An unreadable image becomes a row with its error, not a crash.

No PyTorch import here: with an ONNX bundle this module runs on ONNX Runtime alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from drgrader.config import ConfigError, PreprocessConfig
from drgrader.data.dicom import split_frame_ref
from drgrader.data.identity import note_same_pictures, resolve_identity
from drgrader.data.image_files import identical_files
from drgrader.data.images import ImageReadError, read_image_size
from drgrader.data.input_files import input_rows
from drgrader.data.inputs import INPUT_COLUMNS
from drgrader.data.photo import preprocess_file
from drgrader.data.same_picture import EDITED_COPY, alike_pairs, how_alike, picture_print, same_pictures
from drgrader.grading import GRADE_NAMES, SCORE_COLUMNS, column_index
from drgrader.inference.bundle import Bundle
from drgrader.inference.patient_decision import DecisionPoints, bundle_decision_points, decide_patients, eye_uncertainty, usable_photos
from drgrader.inference.predictor import apply_view
from drgrader.progress import progress as progress_bar
from drgrader.runtime import cpu_count

log = logging.getLogger("drgrader")

DEFAULT_OUT = "predictions.csv"
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
    "fused_grade",  # the paired-eye stage's, which decided grade and referral (empty without a stage)
    "expected_grade",  # this and the two scores: each eye's own, before the paired-eye stage
    "score_any",
    "score_referable",
    "any_dr",
    "referable",
    "all_gradable",
    "identity_note",
]
TEXT_COLUMNS = ["path", "image_id", "patient_id", "eye", "identity_note", "quality_reason", "error"]
# Each photo's fingerprint (drgrader.data.same_picture), beside OUTPUT_COLUMNS until the photos
# are compared (with_same_pictures): in predict's resume file, never in a CSV users read.
PICTURE_COLUMN = "picture_print"


# --------------------------------------------------------------------- decode + score
@dataclass
class _Loaded:
    """One photo after the worker: model input(s) and quality, or the reason it failed."""

    prepared: object = None  # array, or a list per ensemble member
    gradable: bool | None = None
    quality_score: float = float("nan")
    quality_reason: str = ""
    error: str = ""
    picture: str = ""  # its fingerprint (drgrader.data.same_picture.picture_print), '' when none


def load_photo(path: str | Path, bundle: Bundle) -> _Loaded:
    """Decode, check quality, fingerprint and preprocess one photo (runs in the worker threads)."""
    try:
        if bundle.reads_cached_input:
            # Exactly what the training cache stores: same scale-on-decode, same pipeline.
            cfg = PreprocessConfig.model_validate(bundle.manifest["preprocess"])
            done = preprocess_file(path, cfg, bundle.input_size, fingerprint=True)
            return _Loaded(done.image, done.quality.gradable, done.quality.score, done.quality.reason, picture=done.picture)
        prepared, rgb, quality = bundle.read_photo(path, orig_size=read_image_size(path))  # each member as it was trained
        picture = picture_print(rgb)
    except ImageReadError as exc:
        return _Loaded(error=exc.reason)
    except (ValueError, cv2.error) as exc:  # one odd photo must not stop a run of thousands
        return _Loaded(error=f"preprocessing failed: {exc}")
    return _Loaded(prepared, quality.gradable, quality.score, quality.reason, picture=picture)


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
    out[PICTURE_COLUMN] = [item.picture for item in loaded]
    return out[[*OUTPUT_COLUMNS, PICTURE_COLUMN]]


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
    with ``OUTPUT_COLUMNS`` and its fingerprint (``PICTURE_COLUMN``: :func:`ready_for_patients`
    compares them and drops it).

    ``images``: paths (patient and eye resolved as :func:`collect_inputs` does), or a table with
    ``INPUT_COLUMNS`` (from :func:`collect_inputs`; ``identity_note`` may be left out).
    ``tta``: views (default: the bundle's). ``on_batch`` receives each finished batch's rows.
    """
    if isinstance(images, pd.DataFrame):
        table = images.reset_index(drop=True)
        if "identity_note" not in table:
            table = table.assign(identity_note="")
    else:
        table = resolve_identity(row for p in images for row in input_rows(Path(p)))
    check_tta(tta)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    chunks = [table.iloc[i : i + batch_size] for i in range(0, len(table), batch_size)]
    results = []
    pool = ThreadPoolExecutor(max_workers=workers or cpu_count(), thread_name_prefix="drgrader-decode")
    bar = progress_bar(total=len(table), unit="img", desc="predicting", disable=not progress)  # --progress decides the form
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
        return pd.DataFrame(columns=[*OUTPUT_COLUMNS, PICTURE_COLUMN])
    return typed_predictions(pd.concat(results, ignore_index=True))


def check_tta(tta: list[str] | None) -> None:
    """Fail before any work on an unknown TTA view name."""
    if tta is not None and not tta:  # `--tta` with no view: neither none nor the bundle's can be meant
        raise ConfigError("--tta: give at least one view, or leave --tta out for the bundle's own")
    probe = np.zeros((1, 8, 8, 3), dtype=np.uint8)
    for view in tta or []:
        try:
            apply_view(probe, view)
        except ValueError as exc:
            raise ConfigError(f"--tta: {exc}") from None


def warn_other_tta(bundle: Bundle, tta: list[str] | None) -> None:
    """Views other than the bundle's are used as asked, but not silently (``predict --tta`` and
    ``drgrader.grade(tta=...)``)."""
    if tta is not None and sorted(tta) != sorted(bundle.tta):
        log.warning("--tta %s: the bundle's thresholds and uncertainty band were fitted on the scores of its own views (%s); "
                    "with others its grades and decisions may not match its figures", " ".join(tta), " ".join(bundle.tta))


def typed_predictions(df: pd.DataFrame) -> pd.DataFrame:
    """Integer decisions (empty where there is none), booleans, text without NaN."""
    df = df.copy()
    for col in ("grade", "any_dr", "referable"):
        df[col] = pd.to_numeric(df[col], errors="coerce").round().astype("Int64")
    df["gradable"] = df["gradable"].map({True: True, False: False, "True": True, "False": False}).astype("boolean")
    for col in TEXT_COLUMNS + ([PICTURE_COLUMN] if PICTURE_COLUMN in df else []):
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
    with its reason and uncertainty, the worst eye's figures (of the photos the decision stands
    on: highest grade, then the decision's score) and the identity notes of its photos. ``images``
    counts every photo of the patient, read or not (they add up to the photos), and
    ``all_gradable`` is false when one could not be read. A patient whose photos were all
    unreadable still gets a row (``ungradable``)."""
    decisions = decide_patients(preds, points).drop(columns="deciding_image")
    # cast first: with no notes the mapped column is float NaN, and pandas warns (later refuses) a "" fill
    decisions["identity_note"] = decisions["patient_id"].map(_notes_per_patient(preds)).astype(object).fillna("")
    given = preds[preds["patient_id"] != ""].groupby("patient_id")
    decisions["images"] = decisions["patient_id"].map(given.size()).fillna(0).astype(int)
    decisions["all_gradable"] = decisions["patient_id"].map(
        given["gradable"].agg(lambda g: bool(g.astype("boolean").fillna(False).all()))).astype("boolean").fillna(False)
    rows = preds[(preds["patient_id"] != "") & (preds["error"] == "")]
    if rows.empty:
        return decisions.reindex(columns=PATIENT_COLUMNS)
    # The figures are those of the photos the decision stands on (read and gradable), the worst
    # by the decision's own score, so that they never contradict it (an ungradable photo's grade 3
    # beside "negative").
    usable = rows[usable_photos(rows, points)]
    keys = list(dict.fromkeys(["grade", points.referable_score, "score_referable", "score_any", "expected_grade"]))
    worst = usable.sort_values(keys, ascending=False, na_position="last").groupby("patient_id", sort=False).head(1)
    worst = worst.set_index("patient_id")
    graded = usable.groupby("patient_id", sort=True)
    table = pd.DataFrame(
        {
            "worst_image": worst["image_id"],
            "worst_eye": worst["eye"],
            "grade": graded["grade"].max(),
            # With a paired-eye stage the decision stands on the fused grade, not on the single-eye
            # scores beside it (a referable score of 0.99 beside "referable 0" needs it to be read).
            "fused_grade": graded["fused_grade"].max() if "fused_grade" in usable else float("nan"),
            "expected_grade": graded["expected_grade"].max(),
            "score_any": graded["score_any"].max(),
            "score_referable": graded["score_referable"].max(),
            "any_dr": graded["any_dr"].max(),
            "referable": graded["referable"].max(),
        }
    )
    table = decisions.merge(table.rename_axis("patient_id").reset_index(), on="patient_id", how="left")
    return table[PATIENT_COLUMNS]


def _notes_per_patient(preds: pd.DataFrame) -> pd.Series:
    """Each patient's identity notes (those of its photos, each once), by patient id."""
    if "identity_note" not in preds:
        return pd.Series(dtype=str)
    noted = preds[preds["identity_note"].fillna("") != ""]
    return noted.groupby("patient_id")["identity_note"].agg(
        lambda notes: "; ".join(dict.fromkeys(part for note in notes for part in note.split("; "))))


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


def with_same_pictures(preds: pd.DataFrame) -> pd.DataFrame:
    """Graded photos (with their fingerprints, ``PICTURE_COLUMN``) of which those that are one
    picture, their files differing (a PNG of a JPEG, a re-saved or resized copy, one mirrored,
    flipped or turned: :func:`~drgrader.data.same_picture.same_pictures`), are noted as the identity resolver notes
    one file's bytes (:func:`~drgrader.data.identity.note_same_pictures`): under two patients
    kept apart, each noted; as a patient's two eyes, which eye unknown and never paired as
    fellow eyes; a patient's left and right photos nearer than a patient's two eyes ever are (one
    photo edited: :data:`~drgrader.data.same_picture.FELLOW_EYES_APART`) alike. Byte copies among
    them were noted already (one of each file is compared); the frames of one DICOM file are not
    compared with each other. Without the column: unchanged. The column is dropped."""
    if PICTURE_COLUMN not in preds:
        return preds
    table = preds.drop(columns=PICTURE_COLUMN)
    paths = table["path"].astype(str).tolist()
    units = [str(split_frame_ref(Path(p))[0]) for p in paths]
    prints = preds[PICTURE_COLUMN].fillna("").astype(str).tolist()
    groups = []
    for positions, orientations in same_pictures(prints, units):
        copies = identical_files([paths[k] for k in positions])  # positions in ``positions``
        repeats = {i for same in copies for i in same[1:]}
        kept = [(k, way) for i, (k, way) in enumerate(zip(positions, orientations)) if i not in repeats]
        if len(kept) > 1:
            rows = [k for k, _ in kept]
            groups.append((rows, how_alike(table["image_id"].iloc[rows].tolist(), [way for _, way in kept])))
    grouped = {k for rows, _ in groups for k in rows}
    groups += [([a, b], EDITED_COPY) for a, b in alike_pairs(prints, _fellow_pairs(table, grouped, units))]
    return note_same_pictures(table, groups) if groups else table


def _fellow_pairs(table: pd.DataFrame, grouped: set[int], units: list[str]) -> list[tuple[int, int]]:
    """Positions (left, right) of each patient's two eyes' photos, of other files, not already one picture."""
    eyes = table.reset_index(drop=True)
    known = eyes[(eyes["patient_id"].astype(str) != "") & eyes["eye"].isin(("left", "right")) & ~eyes.index.isin(grouped)]
    pairs = []
    for _, rows in known.groupby("patient_id"):
        left, right = rows.index[rows["eye"] == "left"], rows.index[rows["eye"] == "right"]
        pairs += [(int(a), int(b)) for a in left for b in right if units[a] != units[b]]
    return pairs


def ready_for_patients(bundle: Bundle, preds: pd.DataFrame, *, refer_share: float | None = None) -> tuple[pd.DataFrame, DecisionPoints]:
    """Graded photos as the per-patient decision takes them: those that are one picture noted and
    never one another's fellow eye (:func:`with_same_pictures`, when they carry fingerprints);
    each eye re-decided by the bundle's paired-eye stage (when it has one) and given its
    ``uncertainty``; with the decision points. The one path of ``predict``, ``drgrader.grade``
    and the web demo, so all decide a patient alike."""
    preds = with_same_pictures(preds)
    if bundle.paired_eyes:
        preds = with_paired_eyes(preds, bundle.paired_eyes)
    else:
        preds = preds.copy()
    points = bundle_decision_points(bundle.manifest, preds, refer_share=refer_share)
    preds["uncertainty"] = eye_uncertainty(preds, points)
    return preds, points



"""The gallery of the most confident errors: the eyes the grader got wrong by the largest
margin, each as the model's input next to its Grad-CAM overlay when the run's bundle (and
PyTorch) can be loaded, else the preprocessed photo alone.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from drgrader.config import PreprocessConfig
from drgrader.grading import GRADE_NAMES, SCREENS
from drgrader.reporting import plots
from drgrader.reporting.document import SCREEN_SHORT, THUMBNAIL_PX, Gallery, Note, Para, Section
from drgrader.reporting.run_data import RunData

log = logging.getLogger("drgrader")

GALLERY_SIZE = 8


def _floats(pred: pd.DataFrame, column: str) -> np.ndarray:
    """A predictions column as floats; all NaN when the column is absent."""
    if column not in pred:
        return np.full(len(pred), np.nan)
    return pd.to_numeric(pred[column], errors="coerce").to_numpy(dtype=float)


def select_errors(pred: pd.DataFrame, thresholds: dict | None = None, n: int = GALLERY_SIZE) -> pd.DataFrame:
    """The ``n`` most confident errors, worst first, with a ``severity`` column.

    Grade models: eyes whose predicted grade is wrong, by |expected grade - true grade| (else
    |predicted - true|). Binary models: wrong screening decisions, by the distance of the
    score from the threshold (referable when the model has that score, else any DR).
    """
    thresholds = thresholds or {}
    grade, predicted = _floats(pred, "grade"), _floats(pred, "pred_grade")
    if not np.isnan(predicted).all():
        expected = _floats(pred, "expected_grade")
        severity = np.where(np.isnan(expected), np.abs(predicted - grade), np.abs(expected - grade))
        wrong = ~np.isnan(predicted) & (predicted != grade)
    else:
        for name in ("referable", "any_dr"):
            column, min_grade = SCREENS[name]
            score, decision = _floats(pred, column), _floats(pred, f"{name}_pred")
            if np.isnan(score).all():
                continue
            threshold = 0.5 if thresholds.get(name) is None else thresholds[name]
            wrong = ~np.isnan(decision) & ((decision >= 0.5) != (grade >= min_grade))
            severity = np.abs(score - threshold)
            break
        else:
            return pred.iloc[:0].assign(severity=pd.Series(dtype=float))
    out = pred.assign(severity=severity)[wrong]
    return out.sort_values("severity", ascending=False, kind="stable").head(n)


def _error_caption(row: pd.Series) -> list[str]:
    """Lines under a gallery thumbnail: id, true and predicted grade, scores, what went wrong."""
    true = int(row["grade"])
    lines = [str(row.get("image_id", ""))]
    predicted = row.get("pred_grade", np.nan)
    lines.append(f"true: {GRADE_NAMES[true]}"
                 + ("" if pd.isna(predicted) else f" · predicted: {GRADE_NAMES[int(predicted)]}"))
    scores = []
    expected = row.get("expected_grade", np.nan)
    if not pd.isna(expected):
        scores.append(f"expected grade {expected:.2f}")
    for name, (column, _) in SCREENS.items():
        score = row.get(column, np.nan)
        if not pd.isna(score) and score != expected:  # regression models score with the expected grade
            scores.append(f"{SCREEN_SHORT[name]} score {score:.2f}")
    if scores:
        lines.append(", ".join(scores))
    referable = row.get("referable_pred", np.nan)
    any_dr = row.get("any_dr_pred", np.nan)
    if not pd.isna(referable):
        if true >= 2 and not referable:
            lines.append("MISSED referable DR")
        elif true < 2 and referable:
            lines.append("false alarm: referred without referable DR")
    elif not pd.isna(any_dr):
        if true >= 1 and not any_dr:
            lines.append("MISSED DR")
        elif true < 1 and any_dr:
            lines.append("false alarm: flagged without DR")
    return lines


# probe 59 CW3: another run's bundle copied into the run folder
NOT_ITS_MODEL = ("the report's Grad-CAM would show another model under this run's predictions; the error gallery "
                 "is drawn without it")


def _load_explainer(run: RunData) -> tuple[tuple | None, str | None]:
    """((bundle, explain_image) for Grad-CAM overlays, or None when unavailable; why not, for the
    report, when the run's bundle is not its own model)."""
    from drgrader.inference.bundle import MANIFEST, load_bundle

    candidates = [run.run_dir / "bundle"]
    if run.metrics.get("model"):  # evaluation folders name the bundle they scored
        candidates.append(Path(run.metrics["model"]))
    bundle_dir = next((c for c in candidates if (c / MANIFEST).is_file()), None)
    if bundle_dir is None:
        return None, None
    from drgrader.extras import missing

    if missing("explain") or not (bundle_dir / "model.safetensors").is_file():
        log.info("report: no Grad-CAM overlays (they need the [explain] extra and the bundle's model.safetensors)")
        return None, None
    try:  # only now: it imports PyTorch and pytorch-grad-cam (seconds)
        from drgrader.inference.explain import explain_image
    except ImportError as exc:
        log.info("report: no Grad-CAM (%s)", exc)
        return None, None
    try:
        bundle = load_bundle(bundle_dir)
    except Exception as exc:  # a broken bundle must not stop the report: plain thumbnails instead
        log.warning("report: cannot load bundle %s for Grad-CAM: %s", bundle_dir, exc)
        return None, None
    if bundle_dir == candidates[0] and (run.run_dir / "config.yaml").is_file():  # probe 59 CW3: as evaluate RUN checks
        from drgrader.inference.bundle_spec import BundleError
        from drgrader.inference.own_run import check_own_run

        try:
            check_own_run(bundle_dir, bundle.manifest, run.run_dir, uses=NOT_ITS_MODEL, strict=False, whole=True)
        except BundleError as exc:
            log.warning("report: %s", exc)
            return None, f"No Grad-CAM: {exc}."
    return (bundle, explain_image), None


def _thumbnail(path: str, run: RunData, explainer) -> tuple[np.ndarray | None, bool]:
    """(picture, has Grad-CAM): the preprocessed photo, next to its Grad-CAM overlay when a
    bundle is available. None when the photo cannot be read."""
    from drgrader.data.images import read_image

    try:
        rgb = read_image(path, min_side=2 * THUMBNAIL_PX)
    except (ValueError, OSError) as exc:
        log.warning("report: gallery: %s", exc)
        return None, False
    if explainer is not None:
        bundle, explain_image = explainer
        try:
            result = explain_image(bundle, rgb)
            cam = result.get("overlay_referable")
            cam = result.get("overlay_grade") if cam is None else cam
            if cam is not None:
                return plots.side_by_side([result["preprocessed"], cam], THUMBNAIL_PX), True
        except Exception as exc:  # Grad-CAM is a bonus; the thumbnail alone still helps
            log.warning("report: Grad-CAM failed for %s: %s", path, exc)
    try:
        from drgrader.data.preprocess import preprocess_image

        data = run.config.data if run.config is not None else None
        cfg = data.preprocess if data is not None else PreprocessConfig()
        return preprocess_image(rgb, cfg, THUMBNAIL_PX), False
    except Exception as exc:  # preprocessing failure: show the raw photo
        log.warning("report: preprocessing failed for %s: %s", path, exc)
        return plots.side_by_side([rgb], THUMBNAIL_PX), False


def gallery_section(run: RunData, figures: dict[str, bytes]) -> Section:
    title = "Most confident errors"
    pred = run.predictions
    if pred is None or "grade" not in pred:
        return Section("gallery", title, [Note("No predictions_test.csv: no error gallery.")])
    errors = select_errors(pred, run.metrics.get("thresholds"))
    if errors.empty:
        return Section("gallery", title, [Note("No wrong predictions on this set.")])
    explainer, not_own = _load_explainer(run)
    items, missing, with_cam = [], [], 0
    for i, (_, row) in enumerate(errors.iterrows(), start=1):
        picture, cam = _thumbnail(str(row.get("path", "")), run, explainer) if "path" in row else (None, False)
        if picture is None:
            missing.append(str(row.get("image_id")))
            continue
        with_cam += cam
        name = f"error_{i:02d}.png"
        figures[name] = plots.image_png(picture)
        items.append((name, _error_caption(row)))
    kind = "grade" if "pred_grade" in pred and pred["pred_grade"].notna().any() else "screening decision"
    blocks: list = [Para(
        f"The {len(errors)} eyes where the {kind} was wrong by the largest margin, worst first"
        + (" (left: the model's input; right: Grad-CAM, where the model looked for referable DR)" if with_cam else
           " (the model's input after preprocessing)")
        + ". Look for a pattern: image quality, a lesion type, a camera.")]
    if not_own:
        blocks.append(Note(not_own))
    if items:
        blocks.append(Gallery(items))
    if missing:
        blocks.append(Note(f"Photos not found or unreadable for {len(missing)} of them: {', '.join(missing)}."))
    return Section("gallery", title, blocks)

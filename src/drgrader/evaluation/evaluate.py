"""Score a bundle on prepared data, fit thresholds on validation, measure on test."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from drgrader.config import EvalConfig
from drgrader.inference.bundle import Bundle
from drgrader.io import atomic_write_json, atomic_write_text
from drgrader.outputs import table_csv
from drgrader.progress import progress

log = logging.getLogger("drgrader")

ROW_COLUMNS = ["image_id", "patient_id", "eye", "grade", "split", "gradable", "quality_reason", "path"]


def score_rows(bundle: Bundle, rows: pd.DataFrame, tta: list[str], *, batch_size: int = 32, desc: str = "scoring") -> np.ndarray:
    """Scores (N x 8) of the rows' images. Uses the preprocessed cache when the rows have one and
    the bundle is a single model; otherwise reads raw photos and lets the bundle preprocess."""
    from drgrader.data.cache import load_cached

    use_cache = "cache_path" in rows and bundle.reads_cached_input
    out = []
    for start in progress(range(0, len(rows), batch_size), desc=desc, unit="batch", leave=False):
        chunk = rows.iloc[start : start + batch_size]
        if use_cache:
            batch = np.stack([load_cached(p) for p in chunk["cache_path"]])
            out.append(bundle.score_prepared(batch, tta))
        else:
            out.append(bundle.score_prepared([bundle.prepare_photo(p)[0] for p in chunk["path"]], tta))
    return np.concatenate(out) if out else np.zeros((0, 8), dtype=np.float32)


def predictions_table(rows: pd.DataFrame, scores: np.ndarray, thresholds: dict | None) -> pd.DataFrame:
    from drgrader.grading import decide

    keep = [c for c in ROW_COLUMNS if c in rows]
    return pd.concat([rows[keep].reset_index(drop=True), decide(scores, thresholds)], axis=1)


def evaluate_split_pair(
    bundle: Bundle,
    val_rows: pd.DataFrame | None,
    test_rows: pd.DataFrame,
    eval_cfg: EvalConfig,
    out_dir: Path,
    *,
    fit: bool = True,
    seed: int = 0,
) -> dict:
    """Fit thresholds on ``val_rows`` (when ``fit``), and for a grader the paired-eye stage when
    enough validation patients have both eyes, then evaluate ``test_rows`` (with both eyes when
    there is a stage, and single-eye beside it) with and without TTA. Writes predictions CSVs into
    ``out_dir`` and returns the metrics (``paired_stage``: the stage fitted here, if any)."""
    from drgrader.evaluation.patient_decisions import fit_patient_decision, with_patient_decisions
    from drgrader.evaluation.results import evaluate_table
    from drgrader.evaluation.thresholds import fit_thresholds

    tta: list[str] = list(eval_cfg.tta) or ["orig"]
    result: dict = {"tta_views": tta}
    thresholds = dict(bundle.thresholds)
    decision_spec = bundle.manifest.get("patient_decision")
    if fit and val_rows is not None and len(val_rows):
        val_scores = score_rows(bundle, val_rows, tta, desc="validation")
        val_pred = predictions_table(val_rows, val_scores, None)
        thresholds = fit_thresholds(val_pred, eval_cfg, bundle.task)
        val_pred = predictions_table(val_rows, val_scores, thresholds)
        atomic_write_text(out_dir / "predictions_val.csv", table_csv(val_pred))
        result["val"] = evaluate_table(val_pred, thresholds, n_boot=0, seed=seed)
        decided_val, used_val = val_pred, thresholds
        fitted = _fit_stage(val_pred, eval_cfg) if bundle.task == "grade" else None
        if fitted is not None:  # the bundle decides with both eyes: so do its decision points
            result["paired_stage"], decided_val = fitted
            used_val = result["paired_stage"]["thresholds"]
            result["val_paired_eyes"] = evaluate_table(decided_val, used_val, n_boot=0, seed=seed)
        decision_spec = fit_patient_decision(decided_val, used_val, refer_share=eval_cfg.refer_share,
                                             urgent_sensitivity=eval_cfg.urgent_sensitivity, fitted_on="validation split")
    result["thresholds"] = thresholds
    result["patient_decision"] = decision_spec

    stage = result.get("paired_stage") or bundle.paired_eyes

    def decided(single: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
        """Predictions and the thresholds that made them: with a paired-eye stage, its own."""
        from drgrader.inference.paired_eyes import decide_paired

        return (decide_paired(single, stage), stage["thresholds"]) if stage else (single, thresholds)

    single = predictions_table(test_rows, score_rows(bundle, test_rows, tta, desc="test"), thresholds)
    if stage:  # single-eye figures beside the paired ones, like the TTA table
        result["test_single_eye"] = evaluate_table(single, thresholds, n_boot=eval_cfg.bootstrap, seed=seed)
    test_pred, used = decided(single)
    atomic_write_text(out_dir / "predictions_test.csv", table_csv(test_pred))
    result["test"] = with_patient_decisions(evaluate_table(test_pred, used, n_boot=eval_cfg.bootstrap, seed=seed),
                                            test_pred, used, decision_spec, n_boot=eval_cfg.bootstrap, seed=seed)
    if tta != ["orig"]:
        plain, used = decided(predictions_table(test_rows, score_rows(bundle, test_rows, ["orig"], desc="test, no TTA"), thresholds))
        result["test_no_tta"] = evaluate_table(plain, used, n_boot=0, seed=seed)
    return result


def _fit_stage(val_pred: pd.DataFrame, eval_cfg: EvalConfig) -> tuple[dict, pd.DataFrame] | None:
    """The paired-eye stage fitted on the validation patients (cross-fitted among them for its
    thresholds), or None when too few of them have both eyes."""
    from drgrader.evaluation.paired_stage import fit_paired_stage

    try:
        return fit_paired_stage(val_pred, eval_cfg, patients="validation patients")
    except ValueError as exc:
        log.warning("paired-eye stage not fitted (single-eye decisions only): %s", exc)
        return None


# The predictions CSVs a metrics.json is computed from, beside it: their sha256 is recorded in it
# (``predictions_sha256``), so the report can tell a predictions file edited since.
PREDICTION_FILES = ("predictions_test.csv", "predictions_val.csv", "predictions_oof.csv")


def predictions_checksums(folder: Path) -> dict[str, str]:
    """The sha256 of each predictions CSV present in ``folder``, by file name."""
    from drgrader.io import sha256_file

    return {name: sha256_file(folder / name) for name in PREDICTION_FILES if (folder / name).is_file()}


def write_metrics(path: Path, metrics: dict) -> None:
    """Write ``metrics.json`` with the checksums of the predictions CSVs written beside it."""
    atomic_write_json(path, {**metrics, "predictions_sha256": predictions_checksums(Path(path).parent)})
    log.info("metrics written to %s", path)

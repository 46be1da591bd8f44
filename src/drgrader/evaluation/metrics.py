"""The single metrics of a DR grader: grade agreement, screening at a threshold, ROC, operating
points, calibration. :mod:`.results` assembles them over a predictions table with the
patient-level bootstrap CIs of :mod:`.bootstrap`.

The predictions table has one row per image: ``image_id, patient_id, eye, grade`` (true
grade 0..4), ``pred_grade`` and ``expected_grade`` (NaN for binary models), ``p0..p4``,
``score_any`` / ``score_referable`` (higher = more likely diseased; NaN when the model
cannot say) and ``gradable``. Screening decisions are ``score >= threshold``.

Accuracy alone hid a screener that missed 75% of diseased eyes (seed 001), so every
screening section reports sensitivity and specificity first, next to the accuracy a
constant "everyone healthy" answer would get, and ``results.evaluate_table`` lists warnings
when a screener falls below the IDx-DR pivotal-trial bar.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    cohen_kappa_score,
    confusion_matrix,
    mean_absolute_error,
    roc_auc_score,
    roc_curve,
)

from drgrader.grading import GRADE_NAMES, GRADES

# IDx-DR pivotal trial (Abramoff et al. 2018) pre-specified endpoints.
IDX_DR_SENSITIVITY = 0.85
IDX_DR_SPECIFICITY = 0.825
MIN_SUPPORT_REACHABLE = 10  # a grade with this many eyes should be predicted at least once
HIGH = 0.90  # sensitivity / specificity of the "high_sensitivity" / "high_specificity" points

MetricFn = Callable[[pd.DataFrame], float]


# ------------------------------------------------------------------------- grades
def quadratic_weighted_kappa(y_true, y_pred) -> float:
    """Cohen's kappa with quadratic weights over grades 0..4 (NaN when undefined, and when the
    reference holds one grade: no agreement beyond chance can be measured there, where sklearn
    gives 0; probe 37 CA9, a clinic's batch of normals reported "kappa 0.000 (0.000-0.000)")."""
    if len(np.unique(np.asarray(y_true))) < 2:
        return float("nan")
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        # Undefined kappa (truth and prediction one same grade) is NaN (sklearn's default
        # since 1.7; 0/0 before), not a warning.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return float(cohen_kappa_score(y_true, y_pred, labels=GRADES, weights="quadratic"))


def grade_metrics(y_true, y_pred) -> dict:
    """Kappa, accuracy, confusion matrices, per-grade precision/recall/F1 and mean abs. error."""
    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(y_pred).astype(int)
    report = classification_report(
        y_true, y_pred, labels=GRADES, output_dict=True, zero_division=0
    )

    def figures(row: dict) -> dict:
        return {
            "precision": row["precision"],
            "recall": row["recall"],
            "f1": row["f1-score"],
            "support": int(row["support"]),
        }

    return {
        "n": int(y_true.size),
        "kappa": quadratic_weighted_kappa(y_true, y_pred),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        # What always answering the most common grade would score.
        "accuracy_baseline": float(np.bincount(y_true, minlength=5).max() / y_true.size),
        "mean_absolute_error": float(mean_absolute_error(y_true, y_pred)),
        "confusion": confusion_matrix(y_true, y_pred, labels=GRADES).tolist(),
        "confusion_row_normalised": confusion_matrix(
            y_true, y_pred, labels=GRADES, normalize="true"
        ).tolist(),
        "per_grade": {
            str(g): {"name": GRADE_NAMES[g], **figures(report[str(g)])} for g in GRADES
        },
        "macro_avg": figures(report["macro avg"]),
        "weighted_avg": figures(report["weighted avg"]),
    }


# ---------------------------------------------------------------------- screening
def _binary_inputs(y_true_binary, score) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true_binary).astype(bool).ravel()
    s = np.asarray(score, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels ({y.size}) and scores ({s.size}) differ in length")
    return y, s


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else math.nan


def screening_at_threshold(y_true_binary, score, threshold: float) -> dict:
    """Sensitivity, specificity, PPV, NPV, accuracy and counts of ``score >= threshold``."""
    y, s = _binary_inputs(y_true_binary, score)
    pred = s >= threshold
    tp = int(np.sum(pred & y))
    fp = int(np.sum(pred & ~y))
    fn = int(np.sum(~pred & y))
    tn = int(np.sum(~pred & ~y))
    return {
        "threshold": float(threshold),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "accuracy": _ratio(tp + tn, y.size),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


def meets_idx_dr_bar(sensitivity: float, specificity: float) -> bool:
    """IDx-DR pivotal-trial endpoints: sensitivity > 0.85 and specificity > 0.825."""
    # NaN compares False, so an undefined figure never passes.
    return bool(sensitivity > IDX_DR_SENSITIVITY and specificity > IDX_DR_SPECIFICITY)


def _both_classes(y: np.ndarray) -> bool:
    return bool(y.any() and not y.all())


def roc_auc(y_true_binary, score) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    y, s = _binary_inputs(y_true_binary, score)
    return float(roc_auc_score(y, s)) if _both_classes(y) else math.nan


def roc_curve_points(y_true_binary, score) -> pd.DataFrame:
    """ROC curve (columns fpr, tpr, threshold) for plots; empty with one class only.

    The first row (nothing called positive) gets a finite threshold just above the highest
    score instead of sklearn's ``inf``, so the table stays JSON-friendly.
    """
    y, s = _binary_inputs(y_true_binary, score)
    if not _both_classes(y):
        return pd.DataFrame({"fpr": [], "tpr": [], "threshold": []})
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    thr = thr.copy()
    thr[0] = np.nextafter(s.max(), np.inf)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thr})


def operating_points(y_true_binary, score, chosen_threshold: float | None) -> dict[str, dict]:
    """Screening figures at the chosen threshold and at three ROC operating points.

    ``youden``: maximal sensitivity + specificity - 1 (the highest such threshold on ties);
    ``high_sensitivity``: the highest threshold with sensitivity >= 0.90;
    ``high_specificity``: the lowest threshold with specificity >= 0.90.
    With one class only the three ROC points are undefined (all figures NaN).
    ``chosen`` is left out when ``chosen_threshold`` is None.
    """
    y, s = _binary_inputs(y_true_binary, score)
    points: dict[str, dict] = {}
    if chosen_threshold is not None:
        points["chosen"] = screening_at_threshold(y, s, chosen_threshold)
    curve = roc_curve_points(y, s)
    if curve.empty:
        undefined = {k: math.nan for k in screening_at_threshold(y, s, 0.0)}
        for name in ("youden", "high_sensitivity", "high_specificity"):
            points[name] = dict(undefined)
        return points
    fpr, tpr, thr = curve["fpr"].to_numpy(), curve["tpr"].to_numpy(), curve["threshold"].to_numpy()
    # roc_curve thresholds decrease, so tpr and fpr increase along the arrays.
    index = {
        "youden": int(np.argmax(tpr - fpr)),
        "high_sensitivity": int(np.flatnonzero(tpr >= HIGH)[0]),
        "high_specificity": int(np.flatnonzero(1.0 - fpr >= HIGH)[-1]),
    }
    for name, i in index.items():
        points[name] = screening_at_threshold(y, s, float(thr[i]))
    return points


# -------------------------------------------------------------------- calibration
def reliability_bins(y_true_binary, prob, n_bins: int = 10) -> pd.DataFrame:
    """Equal-width probability bins: bin_lower, bin_upper, mean_prob, observed, count.

    Empty bins are kept (count 0, NaN means) so the table always has ``n_bins`` rows.
    """
    y, p = _binary_inputs(y_true_binary, prob)
    if p.size and (np.nanmin(p) < 0 or np.nanmax(p) > 1):
        raise ValueError(f"probabilities must lie in [0, 1] (got {np.nanmin(p)}..{np.nanmax(p)})")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bin_of = np.digitize(p, edges[1:-1])  # 0..n_bins-1; p == 1 falls in the last bin
    count = np.bincount(bin_of, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prob = np.bincount(bin_of, weights=p, minlength=n_bins) / count
        observed = np.bincount(bin_of, weights=y, minlength=n_bins) / count
    return pd.DataFrame(
        {
            "bin_lower": edges[:-1],
            "bin_upper": edges[1:],
            "mean_prob": mean_prob,
            "observed": observed,
            "count": count,
        }
    )


def expected_calibration_error(y_true_binary, prob, n_bins: int = 10) -> float:
    """Count-weighted mean |mean probability - observed frequency| over equal-width bins."""
    bins = reliability_bins(y_true_binary, prob, n_bins)
    used = bins["count"] > 0
    if not used.any():
        return math.nan
    gap = (bins["mean_prob"] - bins["observed"]).abs()[used]
    return float((gap * bins["count"][used]).sum() / bins["count"].sum())

"""Evaluation of a DR grader's predictions table, with patient-level bootstrap CIs.

The predictions table has one row per image: ``image_id, patient_id, eye, grade`` (true
grade 0..4), ``pred_grade`` and ``expected_grade`` (NaN for binary models), ``p0..p4``,
``score_any`` / ``score_referable`` (higher = more likely diseased; NaN when the model
cannot say) and ``gradable``. Screening decisions are ``score >= threshold``.

Accuracy alone hid a screener that missed 75% of diseased eyes (seed 001), so every
screening section reports sensitivity and specificity first, next to the accuracy a
constant "everyone healthy" answer would get, and :func:`evaluate_table` lists warnings
when a screener falls below the IDx-DR pivotal-trial bar.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np
import pandas as pd
import sklearn
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

from drgrader.grading import GRADE_NAMES, GRADES, SCREEN_NAMES, SCREENS, apply_cutpoints

# IDx-DR pivotal trial (Abramoff et al. 2018) pre-specified endpoints.
IDX_DR_SENSITIVITY = 0.85
IDX_DR_SPECIFICITY = 0.825
MIN_SUPPORT_REACHABLE = 10  # a grade with this many eyes should be predicted at least once
HIGH = 0.90  # sensitivity / specificity of the "high_sensitivity" / "high_specificity" points

MetricFn = Callable[[pd.DataFrame], float]


# ------------------------------------------------------------------------- grades
def quadratic_weighted_kappa(y_true, y_pred) -> float:
    """Cohen's kappa with quadratic weights over grades 0..4 (NaN when undefined)."""
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


# ---------------------------------------------------------------------- bootstrap
def _group_rows(df: pd.DataFrame, group: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows sorted by group, and each group's start and size in that order."""
    if group not in df.columns:
        raise ValueError(f"predictions table lacks the {group!r} column needed to resample")
    codes, uniques = pd.factorize(df[group], sort=False)
    if (codes < 0).any():
        bad = df.index[np.flatnonzero(codes < 0)[0]]
        raise ValueError(f"predictions table row {bad!r}: {group} is missing")
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=len(uniques))
    starts = np.cumsum(sizes) - sizes
    return order, starts, sizes


def _draw_rows(
    order: np.ndarray, starts: np.ndarray, sizes: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of one resample of groups, and the draw number of each row."""
    drawn = rng.integers(0, sizes.size, sizes.size)
    n_rows = sizes[drawn]
    first_row_of_draw = np.repeat(np.cumsum(n_rows) - n_rows, n_rows)
    offset_in_group = np.arange(n_rows.sum()) - first_row_of_draw
    rows = order[np.repeat(starts[drawn], n_rows) + offset_in_group]
    return rows, np.repeat(np.arange(drawn.size), n_rows)


def resample_patients(
    df: pd.DataFrame, rng: np.random.Generator, group: str = "patient_id"
) -> pd.DataFrame:
    """One bootstrap resample: patients drawn with replacement, each with all its images.

    The ``group`` column of the result holds the draw number (0..n_patients-1), so a patient
    drawn twice counts as two patients in patient-level metrics.
    """
    rows, draw = _draw_rows(*_group_rows(df, group), rng)
    out = df.iloc[rows].reset_index(drop=True)
    out[group] = draw
    return out


def bootstrap_cis(
    fns: dict[str, MetricFn],
    df: pd.DataFrame,
    *,
    group: str = "patient_id",
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, tuple[float, float, float]]:
    """Percentile bootstrap CIs of several metrics over the same patient resamples.

    Returns ``{name: (estimate on df, lo, hi)}``. Resamples where a metric is NaN (e.g. one
    class only) are skipped for that metric; with none left (or ``n == 0``) lo/hi are NaN.
    """
    estimates = {name: float(fn(df)) for name, fn in fns.items()}
    values = np.full((n, len(fns)), np.nan)
    if n > 0:
        order, starts, sizes = _group_rows(df, group)
        rng = np.random.default_rng(seed)
        # The inputs were already checked on df; skipping sklearn's per-call validation
        # roughly halves the time of sklearn metrics over a thousand resamples.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            for i in range(n):
                rows, draw = _draw_rows(order, starts, sizes, rng)
                sample = df.iloc[rows].reset_index(drop=True)
                sample[group] = draw
                values[i] = [fn(sample) for fn in fns.values()]
    out = {}
    for j, name in enumerate(fns):
        valid = values[:, j][~np.isnan(values[:, j])]
        if valid.size == 0:
            out[name] = (estimates[name], math.nan, math.nan)
            continue
        if valid.size < 0.5 * n:
            warnings.warn(
                f"bootstrap of {name}: only {valid.size}/{n} resamples defined; CI is unreliable",
                stacklevel=2,
            )
        lo, hi = np.percentile(valid, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        out[name] = (estimates[name], float(lo), float(hi))
    return out


def bootstrap_ci(
    fn: MetricFn,
    df: pd.DataFrame,
    *,
    group: str = "patient_id",
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """``(fn(df), lo, hi)``: percentile CI from ``n`` resamples of whole patients."""
    return bootstrap_cis({"value": fn}, df, group=group, n=n, seed=seed, alpha=alpha)["value"]


# ------------------------------------------------------------------ patient level
def patient_level(
    df: pd.DataFrame,
    score_col: str,
    label_col: str,
    *,
    group: str = "patient_id",
    threshold: float | None = None,
) -> pd.DataFrame:
    """One row per patient, judged by the worst eye: max label, max score, number of images,
    and (with ``threshold``) ``decision`` = any eye positive = max score >= threshold."""
    out = (
        df.groupby(group, sort=False)
        .agg(label=(label_col, "max"), score=(score_col, "max"), n_images=(label_col, "size"))
        .reset_index()
    )
    if threshold is not None:
        out["decision"] = out["score"] >= threshold
    return out


# ------------------------------------------------------------------ whole table
def _check_grades(df: pd.DataFrame, column: str, allow_nan: bool) -> None:
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isin(values, GRADES)
    if allow_nan:
        bad &= ~np.isnan(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        image = f" (image_id {df['image_id'].iloc[i]!r})" if "image_id" in df.columns else ""
        raise ValueError(
            f"predictions table row {df.index[i]!r}{image}: {column}={df[column].tolist()[i]!r} "
            f"is not a grade 0..4 ({int(bad.sum())} such rows)"
        )


def _column(df: pd.DataFrame, name: str) -> np.ndarray | None:
    """The column as floats, or None when absent or entirely NaN."""
    if name not in df.columns:
        return None
    values = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)
    return None if np.isnan(values).all() else values


def _screen_arrays(d: pd.DataFrame, column: str, min_grade: int) -> tuple[np.ndarray, np.ndarray]:
    s = d[column].to_numpy(dtype=float)
    keep = ~np.isnan(s)
    return d["grade"].to_numpy()[keep] >= min_grade, s[keep]


def _screen_fns(name: str, column: str, min_grade: int, threshold: float | None) -> dict:
    """Bootstrap metric functions of one screening section."""

    def auc(d: pd.DataFrame) -> float:
        return roc_auc(*_screen_arrays(d, column, min_grade))

    def at_threshold(key: str) -> MetricFn:
        return lambda d: screening_at_threshold(
            *_screen_arrays(d, column, min_grade), threshold
        )[key]

    fns = {f"{name}.auc": auc}
    if threshold is not None:
        fns[f"{name}.sensitivity"] = at_threshold("sensitivity")
        fns[f"{name}.specificity"] = at_threshold("specificity")
    return fns


def _agreement_with_screens(df: pd.DataFrame, pred: np.ndarray, thresholds: dict) -> dict:
    """Share of eyes on which "grade >= k" makes the same call as the screening threshold (1.0
    when the cut-points are tied to the thresholds; below it, the report tells two stories)."""
    out = {}
    for name, (column, min_grade) in SCREENS.items():
        score, threshold = _column(df, column), thresholds.get(name)
        if score is None or threshold is None:
            continue
        both = ~np.isnan(score) & ~np.isnan(pred)
        if both.any():
            out[name] = float(np.mean((pred[both] >= min_grade) == (score[both] >= threshold)))
    return out


def _grade_prediction(df: pd.DataFrame, cutpoints) -> tuple[np.ndarray | None, str | None]:
    expected = _column(df, "expected_grade")
    if cutpoints is not None and expected is not None:
        pred = apply_cutpoints(expected, cutpoints).astype(float)
        pred[np.isnan(expected)] = np.nan
        return pred, "expected_grade+cutpoints"
    pred = _column(df, "pred_grade")
    return (pred, "pred_grade") if pred is not None else (None, None)


def _screening_section(y: np.ndarray, s: np.ndarray, column: str, threshold) -> dict:
    prevalence = float(y.mean())
    points = operating_points(y, s, threshold)
    section = {
        "score_column": column,
        "n": int(y.size),
        "prevalence": prevalence,
        # What calling every eye healthy (or every eye diseased) would score.
        "accuracy_baseline": max(prevalence, 1.0 - prevalence),
        "auc": roc_auc(y, s),
        "threshold": threshold,
        "operating_points": points,
        "idx_dr_bar": (
            meets_idx_dr_bar(points["chosen"]["sensitivity"], points["chosen"]["specificity"])
            if "chosen" in points
            else None
        ),
    }
    if s.min() >= 0.0 and s.max() <= 1.0:
        section["ece"] = expected_calibration_error(y, s)
        section["reliability"] = reliability_bins(y, s).to_dict("records")
    return section


def _headline(result: dict) -> dict:
    head: dict = {}
    if "grade" in result:
        head["kappa"] = result["grade"]["kappa"]
        head["grade_accuracy"] = result["grade"]["accuracy"]
        for name, figures in result["grade"]["screening_from_grades"].items():
            head[f"{name}_sensitivity_from_grades"] = figures["sensitivity"]
            head[f"{name}_specificity_from_grades"] = figures["specificity"]
    for name in SCREENS:
        section = result.get(name)
        if section is None:
            continue
        head[f"{name}_auc"] = section["auc"]
        chosen = section["operating_points"].get("chosen")
        if chosen is not None:
            for key in ("sensitivity", "specificity", "accuracy"):
                head[f"{name}_{key}"] = chosen[key]
            head[f"{name}_accuracy_baseline"] = section["accuracy_baseline"]
    return head


def _screen_warnings(label: str, figures: dict) -> list[str]:
    """Plain-language alarms for one set of screening figures (NaN figures raise none)."""
    notes = []
    sens, spec, acc = figures["sensitivity"], figures["specificity"], figures["accuracy"]
    if sens <= IDX_DR_SENSITIVITY:
        notes.append(
            f"{label}: sensitivity {sens:.3f} misses {1 - sens:.0%} of diseased eyes "
            f"(IDx-DR bar: > {IDX_DR_SENSITIVITY})"
        )
    if spec <= IDX_DR_SPECIFICITY:
        notes.append(f"{label}: specificity {spec:.3f} (IDx-DR bar: > {IDX_DR_SPECIFICITY})")
    n = figures["tp"] + figures["fp"] + figures["tn"] + figures["fn"]
    prevalence = (figures["tp"] + figures["fn"]) / n if n else math.nan
    baseline = max(prevalence, 1.0 - prevalence)
    if acc - baseline < 0.05:
        notes.append(
            f"{label}: accuracy {acc:.3f} is within 0.05 of the {baseline:.3f} "
            "a constant answer gets"
        )
    return notes


def _warnings(result: dict) -> list[str]:
    notes = []
    if "grade" in result:
        for g in result["grade"]["unreachable_grades"]:
            n = result["grade"]["per_grade"][str(g)]["support"]
            notes.append(f"grade {GRADE_NAMES[g]} ({n} eyes) is never predicted correctly (recall 0)")
        for name, share in result["grade"]["agreement_with_screens"].items():
            if share < 1.0:
                notes.append(
                    f"{SCREEN_NAMES[name]}: the predicted grade and the screening threshold disagree "
                    f"on {1 - share:.0%} of eyes"
                )
        for name, figures in result["grade"]["screening_from_grades"].items():
            notes += _screen_warnings(f"{SCREEN_NAMES[name]} from the predicted grades", figures)
    for name in SCREENS:
        chosen = result.get(name, {}).get("operating_points", {}).get("chosen")
        if chosen is not None:
            notes += _screen_warnings(f"{SCREEN_NAMES[name]} at the chosen threshold", chosen)
    return notes


def _jsonable(obj):
    """Plain JSON types: numpy scalars/arrays to Python, NaN/inf to None, tuples to lists."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, pd.DataFrame):
        return _jsonable(obj.to_dict("records"))
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def evaluate_table(
    df: pd.DataFrame,
    thresholds: dict | None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict:
    """Every metric of a predictions table as a JSON-serialisable dict.

    ``thresholds`` is what :func:`drgrader.evaluation.thresholds.fit_thresholds` returned
    on validation (``cutpoints``, ``any_dr``, ``referable``); they are applied unchanged.
    Sections: ``grade`` (when grades are predicted; cut-points on ``expected_grade`` take
    precedence over ``pred_grade``), ``any_dr`` / ``referable`` (when the score exists),
    ``patient_level`` (worst eye), ``gradability``, plus ``headline`` and ``warnings``.
    CIs (``ci``: [lo, hi]) come from ``n_boot`` resamples of patients.
    """
    thresholds = thresholds or {}
    for column in ("grade", "patient_id"):
        if column not in df.columns:
            raise ValueError(f"predictions table lacks the {column!r} column")
    _check_grades(df, "grade", allow_nan=False)
    if "pred_grade" in df.columns:
        _check_grades(df, "pred_grade", allow_nan=True)

    grade = df["grade"].to_numpy().astype(int)
    # A slim copy keeps the bootstrap's per-resample row copies cheap.
    work = pd.DataFrame({"patient_id": df["patient_id"].to_numpy(), "grade": grade})
    result: dict = {
        "n_images": int(len(df)),
        "n_patients": int(df["patient_id"].nunique()),
        "bootstrap": {"unit": "patient", "n": n_boot, "seed": seed, "ci_level": 1 - alpha},
    }
    fns: dict[str, MetricFn] = {}

    pred, source = _grade_prediction(df, thresholds.get("cutpoints"))
    if pred is not None:
        work["pred"] = pred
        keep = ~np.isnan(pred)
        section = grade_metrics(grade[keep], pred[keep])
        section["prediction"] = source
        section["n_missing"] = int((~keep).sum())
        pred_grade = _column(df, "pred_grade")
        if source != "pred_grade" and pred_grade is not None:
            kept = ~np.isnan(pred_grade)
            section["kappa_pred_grade"] = quadratic_weighted_kappa(grade[kept], pred_grade[kept])
        section["screening_from_grades"] = {
            name: screening_at_threshold(grade[keep] >= g, pred[keep], g)
            for name, (_, g) in SCREENS.items()
        }
        section["unreachable_grades"] = [
            int(g) for g, row in section["per_grade"].items()
            if row["support"] >= MIN_SUPPORT_REACHABLE and row["recall"] == 0
        ]
        section["agreement_with_screens"] = _agreement_with_screens(df, pred, thresholds)
        result["grade"] = section

        def graded(d: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
            p = d["pred"].to_numpy()
            k = ~np.isnan(p)
            return d["grade"].to_numpy()[k], p[k].astype(int)

        fns["grade.kappa"] = lambda d: quadratic_weighted_kappa(*graded(d))
        fns["grade.accuracy"] = lambda d: float(accuracy_score(*graded(d)))

    for name, (column, min_grade) in SCREENS.items():
        score = _column(df, column)
        if score is None:
            continue
        work[column] = score
        y, s = _screen_arrays(work, column, min_grade)
        section = _screening_section(y, s, column, thresholds.get(name))
        section["n_missing"] = int(len(df) - y.size)
        result[name] = section
        fns.update(_screen_fns(name, column, min_grade, thresholds.get(name)))

    for key, (estimate, lo, hi) in bootstrap_cis(
        fns, work, n=n_boot, seed=seed, alpha=alpha
    ).items():
        section_name, metric = key.split(".")
        result[section_name].setdefault("ci", {})[metric] = [lo, hi] if n_boot > 0 else None

    result["patient_level"] = _patient_level_section(work, thresholds)

    if "gradable" in df.columns:
        gradable = df["gradable"].fillna(True).astype(bool).to_numpy()
        gradability: dict = {
            "n_ungradable": int((~gradable).sum()),
            "share_ungradable": float((~gradable).mean()) if len(df) else math.nan,
        }
        if gradable.all() or not gradable.any():
            gradability["gradable_only"] = None
        else:
            subset = evaluate_table(df[gradable], thresholds, n_boot=0, seed=seed, alpha=alpha)
            gradability["gradable_only"] = subset["headline"]
        result["gradability"] = gradability

    result["headline"] = _headline(result)
    result["warnings"] = _warnings(result)
    return _jsonable(result)


def _patient_level_section(work: pd.DataFrame, thresholds: dict) -> dict:
    """Worst-eye screening per patient, from the screening score or else the predicted grade."""
    out = {}
    for name, (column, min_grade) in SCREENS.items():
        if column in work.columns:
            score_col, threshold = column, thresholds.get(name)
        elif "pred" in work.columns:
            score_col, threshold = "pred", float(min_grade)
        else:
            continue
        d = work[["patient_id", "grade", score_col]].dropna(subset=[score_col])
        d = d.assign(label=d["grade"] >= min_grade)
        patients = patient_level(d, score_col, "label", threshold=threshold)
        section = {
            "score_column": score_col,
            "n_patients": int(len(patients)),
            "prevalence": float(patients["label"].mean()),
            "auc": roc_auc(patients["label"], patients["score"]),
            "threshold": threshold,
        }
        if threshold is not None:
            section.update(
                {
                    k: v
                    for k, v in screening_at_threshold(
                        patients["label"], patients["score"], threshold
                    ).items()
                    if k != "threshold"
                }
            )
        out[name] = section
    return out

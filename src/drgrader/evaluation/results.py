"""The evaluation result of a predictions table (what ``metrics.json``'s ``test`` holds):
grade and screening sections with patient-bootstrap CIs, patient level, gradability, the
headline figures and plain-language warnings. The single metrics are in :mod:`.metrics`."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score

from drgrader.evaluation.bootstrap import bootstrap_cis
from drgrader.evaluation.metrics import (
    MIN_SUPPORT_REACHABLE,
    MetricFn,
    expected_calibration_error,
    grade_metrics,
    meets_idx_dr_bar,
    operating_points,
    quadratic_weighted_kappa,
    reliability_bins,
    roc_auc,
    screening_at_threshold,
)
from drgrader.evaluation.result_warnings import result_warnings
from drgrader.grading import GRADES, SCREENS, apply_cutpoints


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

    fns: dict[str, MetricFn] = {f"{name}.auc": auc}
    if threshold is None:
        return fns

    def at_threshold(key: str, cut: float = threshold) -> MetricFn:
        return lambda d: screening_at_threshold(*_screen_arrays(d, column, min_grade), cut)[key]

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
    given = _column(df, "pred_grade")
    return (given, "pred_grade") if given is not None else (None, None)


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


# The headline figures a finished run prints, most important first.
PRINTED_HEADLINE = ("kappa", "grade_accuracy", "referable_auc", "referable_sensitivity", "referable_specificity",
                    "any_dr_auc", "any_dr_sensitivity", "any_dr_specificity")


def headline_with_ci(result: dict, keys: tuple[str, ...] = PRINTED_HEADLINE) -> dict[str, tuple]:
    """``result["headline"]`` figures (of :func:`evaluate_table`) with their bootstrap CIs, as
    ``{key: (value, [lo, hi] or None)}``; figures the result does not have are left out."""
    head = result.get("headline") or {}
    out: dict[str, tuple] = {}
    for key in keys:
        if head.get(key) is None:
            continue
        section, metric = ("grade", "kappa") if key == "kappa" else key.rsplit("_", 1)
        out[key] = (head[key], ((result.get(section) or {}).get("ci") or {}).get(metric))
    return out


def jsonable(obj):
    """Plain JSON types: numpy scalars/arrays to Python, NaN/inf to None, tuples to lists."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, pd.DataFrame):
        return jsonable(obj.to_dict("records"))
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
    result["warnings"] = result_warnings(result)
    return jsonable(result)


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

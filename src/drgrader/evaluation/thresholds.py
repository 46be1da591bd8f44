"""Decision thresholds and grade cut-points, fitted on validation and applied unchanged to test.

Convention everywhere in drgrader: a screening score is called positive when
``score >= threshold`` (the same convention as :func:`sklearn.metrics.roc_curve`), and a
continuous grade score ``s`` becomes grade ``k`` when ``cut[k-1] <= s < cut[k]``.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from drgrader.config import EvalConfig
from drgrader.evaluation.metrics import MIN_SUPPORT_REACHABLE, quadratic_weighted_kappa
from drgrader.grading import SCREENS, apply_cutpoints, scores_are_the_grade

DEFAULT_CUTPOINTS = (0.5, 1.5, 2.5, 3.5)
GRID_STEP = 0.01  # seed 001 swept its accuracy threshold in steps of 0.01


def _paired_inputs(targets, score, dtype: type, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Targets (as ``dtype``) and float scores of equal length, with no NaN score."""
    y: np.ndarray = np.asarray(targets).astype(dtype).ravel()
    s = np.asarray(score, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{name} ({y.size}) and scores ({s.size}) differ in length")
    if np.isnan(s).any():
        raise ValueError(f"{int(np.isnan(s).sum())} scores are NaN; drop those rows first")
    return y, s


def _binary_inputs(y_true_binary, score) -> tuple[np.ndarray, np.ndarray]:
    return _paired_inputs(y_true_binary, score, bool, "labels")


def _candidates(s: np.ndarray, lo: float | None, hi: float | None, step: float) -> np.ndarray:
    """The thresholds worth trying: a fixed grid when both bounds are given, else the observed
    score values (clipped to whichever bound is given), e.g. for regression expected grades."""
    if lo is not None and hi is not None:
        if lo > hi:
            raise ValueError(f"threshold range lo={lo} > hi={hi}")
        return np.round(np.arange(lo, hi + step / 2, step), 10)
    cand = np.unique(s)
    if lo is not None:
        cand = cand[cand >= lo]
    if hi is not None:
        cand = cand[cand <= hi]
    if cand.size == 0:
        raise ValueError(f"no observed score lies within [{lo}, {hi}]")
    return cand


def _middle_of_best(objective: np.ndarray) -> int:
    # Several thresholds often tie (a plateau between two observed scores); the middle one
    # is less tuned to the validation set than the plateau's edge.
    best = np.flatnonzero(objective >= objective.max() - 1e-12)
    return int(best[len(best) // 2])


def search_threshold(
    y_true_binary,
    score,
    objective: Literal["accuracy", "youden", "sensitivity"],
    *,
    lo: float | None = 0.0,
    hi: float | None = 1.0,
    target_sensitivity: float = 0.9,
    step: float = GRID_STEP,
) -> float:
    """The screening threshold that is best on ``objective`` (positive = ``score >= thr``).

    With both ``lo`` and ``hi`` given the candidates are ``lo, lo+step, ..., hi`` (seed 001
    used 0.30..0.70 step 0.01 for accuracy); with either set to None the candidates are the
    observed score values within the remaining bound (for scores outside [0, 1]).

    Objectives: ``accuracy``; ``youden`` (sensitivity + specificity - 1); ``sensitivity``
    (the highest threshold whose sensitivity is >= ``target_sensitivity``, i.e. the best
    specificity that keeps the target; if no candidate reaches it, the lowest candidate).
    Ties go to the middle of the tied candidates.
    """
    y, s = _binary_inputs(y_true_binary, score)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"cannot fit a threshold: {n_pos} positive and {n_neg} negative examples"
        )
    cand = _candidates(s, lo, hi, step)
    # Counts of scores >= each candidate, from sorted scores (O(n log n), no n x m matrix).
    tp = n_pos - np.searchsorted(np.sort(s[y]), cand, side="left")
    fp = n_neg - np.searchsorted(np.sort(s[~y]), cand, side="left")
    sensitivity = tp / n_pos
    specificity = 1.0 - fp / n_neg
    if objective == "accuracy":
        return float(cand[_middle_of_best((tp + n_neg - fp) / (n_pos + n_neg))])
    if objective == "youden":
        return float(cand[_middle_of_best(sensitivity + specificity - 1.0)])
    if objective == "sensitivity":
        ok = np.flatnonzero(sensitivity >= target_sensitivity)
        if ok.size == 0:
            warnings.warn(
                f"no threshold in the candidate range reaches sensitivity {target_sensitivity}; "
                f"using the lowest candidate {cand[0]:g} (sensitivity {sensitivity[0]:.3f})",
                stacklevel=2,
            )
            return float(cand[0])
        return float(cand[ok[-1]])
    raise ValueError(
        f"unknown threshold objective {objective!r}; use accuracy, youden or sensitivity"
    )


def fit_cutpoints(y_true_grade, continuous_score, init=DEFAULT_CUTPOINTS) -> np.ndarray:
    """Four increasing cut-points maximising quadratic weighted kappa on (grade, score).

    Nelder-Mead from ``init``, as the Kaggle 2015 and APTOS 2019 winners did. Kappa is
    piecewise constant in the cut-points, so the first simplex is made wide (+-0.25) to see
    across plateaus. The result is sorted, and ``init`` is kept if nothing beats it.
    """
    y, s = _paired_inputs(y_true_grade, continuous_score, int, "grades")
    start = np.sort(np.asarray(init, dtype=float))

    def loss(cuts: np.ndarray) -> float:
        kappa = quadratic_weighted_kappa(y, apply_cutpoints(s, cuts))
        return 1.0 if np.isnan(kappa) else -kappa

    simplex = np.vstack([start, start + 0.25 * np.eye(4)])
    result = minimize(
        loss,
        start,
        method="Nelder-Mead",
        options={"initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-6, "maxiter": 2000},
    )
    fitted = np.sort(result.x)
    return fitted if loss(fitted) < loss(start) else start


def _within(s: np.ndarray, lo: float, hi: float) -> bool:
    return bool(s.min() >= lo and s.max() <= hi)


UPPER_CUT_CANDIDATES = 120  # quantiles of the score tried for each of the two upper cut-points


def _kappa_from_confusion(cm: np.ndarray) -> float:
    """Quadratic weighted kappa of a 5 x 5 confusion matrix (NaN when undefined): the same
    figure as ``metrics.quadratic_weighted_kappa``, from counts, because the cut-point grid
    search evaluates it thousands of times."""
    n = cm.sum()
    idx = np.arange(cm.shape[0])
    weights = (idx[:, None] - idx[None, :]) ** 2 / (cm.shape[0] - 1) ** 2
    expected = np.outer(cm.sum(axis=1), cm.sum(axis=0)) / n
    denominator = (weights * expected).sum()
    return float(1.0 - (weights * cm).sum() / denominator) if denominator > 0 else float("nan")


def fit_upper_cutpoints(y_true_grade, continuous_score, lower: tuple[float, float]) -> np.ndarray:
    """Cut-points whose first two are fixed at ``lower`` (the any-DR and referable thresholds on
    the same score), so that "grade >= 1" and "grade >= 2" *are* the screening decisions; the
    upper two (grade 3 and grade 4) maximise quadratic weighted kappa over a grid of score
    quantiles, among the pairs that leave every grade with >= 10 eyes reachable (recall > 0)
    when such a pair exists. Exhaustive over the grid, so it cannot stall on kappa's plateaus."""
    y, s = _paired_inputs(y_true_grade, continuous_score, int, "grades")
    c0, c1 = sorted(float(c) for c in lower)
    above = s[s >= c1]
    grid = np.unique(np.quantile(above, np.linspace(0, 1, UPPER_CUT_CANDIDATES))) if above.size else np.array([])
    grid = np.unique(np.concatenate([grid[grid > c1], [c1 + 1.0, c1 + 2.0]]))
    low_grade = np.digitize(s, [c0, c1])  # 0, 1 or 2 (= "2 or more")
    # Grades of the "2 or more" eyes for each (c2, c3) pair come from their rank among the grid.
    rank = np.searchsorted(grid, s, side="right")  # number of grid values <= s
    support = np.bincount(y, minlength=5)
    must_reach = support >= MIN_SUPPORT_REACHABLE
    best, best_key = (c1 + 1.0, c1 + 2.0), (-np.inf, -np.inf)
    for i, c2 in enumerate(grid):
        for c3 in grid[i + 1 :]:
            pred = low_grade + (rank > i) + (s >= c3)
            cm = np.bincount(y * 5 + pred, minlength=25).reshape(5, 5)
            reachable = bool(np.all(np.diag(cm)[must_reach] > 0))
            key = (float(reachable), _kappa_from_confusion(cm))
            if key > best_key:
                best, best_key = (float(c2), float(c3)), key
    return np.array([c0, c1, *best])


def fit_thresholds(val_df: pd.DataFrame, eval_cfg: EvalConfig, task: str) -> dict:
    """Fit everything that turns validation predictions into decisions.

    Returns ``{"cutpoints": [4 floats] | None, "any_dr": float | None, "referable": float | None}``:
    one threshold per available screening score with ``eval_cfg.threshold_objective``, and
    cut-points on ``expected_grade`` for grade models when ``eval_cfg.fit_cutpoints``. When the
    screening scores are the expected grade (regression) and ``eval_cfg.consistent_cutpoints``,
    the first two cut-points are the any-DR and referable thresholds, so the predicted grade
    and the screening decisions tell one story (:func:`fit_upper_cutpoints`); otherwise all
    four maximise kappa, and on such one-score models the screens then follow the grade. A
    probability is searched over ``eval_cfg.threshold_range``; a score outside [0, 1] (a
    regression expected grade) over its observed values instead of the grid. A threshold that cannot be fitted
    (validation lacks a class) is None, with a warning.

    The result always passes the bundle's consistency check (``bundle_spec.check_bundle``):
    an any-DR threshold fitted above the referable one is lowered to it. Every such change is a
    warning and a line of ``"adjusted"`` in the result (and so in bundle.json and metrics.json).
    """
    if task not in ("grade", "any_dr", "referable"):
        raise ValueError(f"unknown task {task!r}; use grade, any_dr or referable")
    if "grade" not in val_df.columns:
        raise ValueError("validation predictions lack the 'grade' column")
    grade = val_df["grade"].to_numpy()
    out: dict = {"cutpoints": None, "any_dr": None, "referable": None}
    not_fitted: list[str] = []

    lo, hi = eval_cfg.threshold_range
    for name, (column, min_grade) in SCREENS.items():
        if column not in val_df.columns:
            continue
        score = val_df[column].to_numpy(dtype=float)
        keep = ~np.isnan(score)
        if not keep.any():
            continue
        y, s = grade[keep] >= min_grade, score[keep]
        # A probability is searched over the range (seed 001's 0.30-0.70: before probe 38 CB9 it applied only when
        # every score lay inside it, so never); another score (an expected grade) over its own values.
        bounds = (lo, hi) if _within(s, 0.0, 1.0) else (None, None)
        if bounds == (None, None) and (lo, hi) != (0.0, 1.0):
            warnings.warn(f"eval.threshold_range [{lo:g}, {hi:g}] is not applied to the {name} threshold: its score is no "
                          f"probability (it runs {s.min():.3g}-{s.max():.3g}), so it is searched over its own values", stacklevel=2)
        try:
            out[name] = search_threshold(
                y,
                s,
                eval_cfg.threshold_objective,
                lo=bounds[0],
                hi=bounds[1],
                target_sensitivity=eval_cfg.target_sensitivity,
            )
        except ValueError as exc:
            warnings.warn(f"{name} threshold not fitted: {exc}", stacklevel=2)
            not_fitted.append(f"{name} threshold ({exc})")

    adjusted = []
    if out["any_dr"] is not None and out["referable"] is not None and out["any_dr"] > out["referable"]:
        # Fitted apart (little data, few grade-1 eyes), the two screens can cross: a photo would be
        # referable yet not any DR. The referable threshold is the referral a programme acts on, so it
        # stays as fitted; the any-DR one comes down to it, which only adds any-DR calls (never misses
        # more disease) and makes every referable photo an any-DR one.
        adjusted.append(f"any_dr threshold {out['any_dr']:.4g} lowered to the referable threshold {out['referable']:.4g}: "
                        "fitted above it, it would call photos referable but not any DR")
        out["any_dr"] = out["referable"]

    if task == "grade" and eval_cfg.fit_cutpoints and "expected_grade" in val_df.columns:
        expected = val_df["expected_grade"].to_numpy(dtype=float)
        keep = ~np.isnan(expected)
        one_score = scores_are_the_grade(val_df)
        screens_fitted = out["any_dr"] is not None and out["referable"] is not None
        if keep.any() and eval_cfg.consistent_cutpoints and screens_fitted and one_score:
            cuts = fit_upper_cutpoints(grade[keep], expected[keep], (out["any_dr"], out["referable"]))
        elif keep.any():
            cuts = fit_cutpoints(grade[keep], expected[keep])
            if len(np.unique(grade[keep])) < 2:  # kappa is undefined on one grade: the defaults are kept
                not_fitted.append(f"grade cut-points (the validation eyes are all grade {int(grade[keep][0])}: "
                                  "the default cut-points)")
            if one_score:  # grade and screens on one score: the screens follow the grade
                adjusted += _screens_from_cutpoints(out, cuts)
        else:
            cuts = None
        if cuts is not None and len(np.unique(grade[keep])) > 1:
            not_fitted += _unseen_grade_cutpoints(cuts, int(grade[keep].max()))
        out["cutpoints"] = None if cuts is None else [float(c) for c in cuts]
    for note in adjusted:
        warnings.warn(note, stacklevel=2)
    if adjusted:
        out["adjusted"] = adjusted
    if not_fitted:
        out["not_fitted"] = not_fitted
    return out


def _unseen_grade_cutpoints(cuts: np.ndarray, top: int) -> list[str]:
    """The cut-points of grades no validation eye reaches (no grade 3 or 4 among a small split's):
    fitted on nothing, they called an expected grade of 0.5 a grade 3 and urgent (probe 49 CM1).
    Kept at their defaults instead (never below the cut-point before), in place; said."""
    said = []
    for g in range(max(top + 1, 3), 5):  # the any-DR and referable cut-points are the screens'
        cuts[g - 1] = max(DEFAULT_CUTPOINTS[g - 1], cuts[g - 2])
        said.append(f"grade-{g} cut-point (no validation eye is grade {g} or more: the default {cuts[g - 1]:g})")
    return said


def _screens_from_cutpoints(out: dict, cuts: np.ndarray) -> list[str]:
    """Set the any-DR and referable thresholds to the grade-1 and grade-2 cut-points (all four
    fitted for kappa, on the score the screens use), so "grade >= 1" and "grade >= 2" are the
    screening decisions; returns what changed, in words."""
    notes = []
    for screen, grade in (("any_dr", 1), ("referable", 2)):
        cut = float(cuts[grade - 1])
        if out[screen] is not None and out[screen] != cut:
            notes.append(f"{screen} threshold {out[screen]:.4g} replaced by the grade-{grade} cut-point {cut:.4g}, "
                         "so that the grade and the screening decision agree")
        out[screen] = cut
    return notes

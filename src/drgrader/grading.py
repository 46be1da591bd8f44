"""The grading vocabulary: grades, screens, score columns, and the functions that turn scores
into decisions. Every stage of drgrader speaks it; it imports nothing of the package.

Grades are the International Clinical DR scale (0 none .. 4 proliferative). A model's scores
for one photo are the eight ``SCORE_COLUMNS``: class probabilities ``p0..p4`` (NaN for
regression and binary models), the ``expected_grade`` (continuous), and one score per screen,
``score_any`` (any DR, grade >= 1) and ``score_referable`` (referable DR, grade >= 2), higher
meaning more likely diseased.

Conventions: a screening score is positive when ``score >= threshold`` (as
:func:`sklearn.metrics.roc_curve`); a continuous grade ``s`` is grade ``k`` when
``cut[k-1] <= s < cut[k]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "GRADES",
    "NUM_GRADES",
    "GRADE_NAMES",
    "ONE_SCORE_KINDS",
    "SCREENS",
    "SCREEN_NAMES",
    "SCORE_COLUMNS",
    "PROBABILITY_COLUMNS",
    "DECISION_COLUMNS",
    "column_index",
    "scores_are_the_grade",
    "apply_cutpoints",
    "decide",
]

NUM_GRADES = 5
GRADES = list(range(NUM_GRADES))
GRADE_NAMES = ["0 none", "1 mild", "2 moderate", "3 severe NPDR", "4 proliferative"]

# Output kinds (models.heads) whose grade and both screening scores are one number.
ONE_SCORE_KINDS = frozenset({"regression", "multitask"})
# Screen name -> (its score column, lowest positive grade).
SCREENS = {"any_dr": ("score_any", 1), "referable": ("score_referable", 2)}
SCREEN_NAMES = {"any_dr": "Any DR (grade >= 1)", "referable": "Referable DR (grade >= 2)"}

PROBABILITY_COLUMNS = [f"p{g}" for g in GRADES]
SCORE_COLUMNS = [*PROBABILITY_COLUMNS, "expected_grade", "score_any", "score_referable"]
DECISION_COLUMNS = ["pred_grade", "any_dr_pred", "referable_pred"]


def column_index(name: str) -> int:
    """Position of a score column in a score matrix (N x 8), e.g. ``column_index("score_referable")``."""
    return SCORE_COLUMNS.index(name)


def scores_are_the_grade(table: pd.DataFrame) -> bool:
    """True when both screening scores are the expected grade itself (a regression model's
    output, or a fused grade): then one cut on that score is both a grade and a screen."""
    columns = ["expected_grade", *(column for column, _ in SCREENS.values())]
    if not all(c in table for c in columns):
        return False
    grade = table["expected_grade"].to_numpy(dtype=float)
    return all(np.allclose(table[c].to_numpy(dtype=float), grade, equal_nan=True) for c in columns[1:])


def apply_cutpoints(score, cutpoints) -> np.ndarray:
    """Grades 0..4 from a continuous score: grade k when ``cut[k-1] <= score < cut[k]``."""
    cuts = np.sort(np.asarray(cutpoints, dtype=float))
    if cuts.shape != (NUM_GRADES - 1,):
        raise ValueError(f"expected {NUM_GRADES - 1} cut-points, got {cuts.size}")
    return np.digitize(np.asarray(score, dtype=float), cuts).astype(int)


def decide(scores: np.ndarray, thresholds: dict | None) -> pd.DataFrame:
    """Scores (N x 8) -> table with the scores, the predicted grade and the screening decisions.

    The grade comes from the fitted cut-points on the expected grade when there are any, else
    from the most probable class (or the rounded regression value). A screen without a fitted
    threshold falls back on the predicted grade, else 0.5 for probabilities."""
    thresholds = thresholds or {}
    df = pd.DataFrame(scores, columns=SCORE_COLUMNS)
    expected = df["expected_grade"].to_numpy()
    cut = thresholds.get("cutpoints")
    if np.isnan(expected).all():
        pred = np.full(len(df), np.nan)
    elif cut is not None:
        pred = apply_cutpoints(expected, cut).astype(float)
        pred[np.isnan(expected)] = np.nan
    elif not np.isnan(df["p0"]).all():
        pred = df[PROBABILITY_COLUMNS].to_numpy().argmax(axis=1).astype(float)
    else:
        pred = np.clip(np.rint(expected), 0, NUM_GRADES - 1)
    df["pred_grade"] = pred
    for name, (column, min_grade) in SCREENS.items():
        thr = thresholds.get(name)
        score = df[column].to_numpy()
        if thr is None:
            if not np.isnan(pred).all():
                decision = np.where(np.isnan(pred), np.nan, (pred >= min_grade).astype(float))
            else:
                decision = np.where(np.isnan(score), np.nan, (score >= 0.5).astype(float))
        else:
            decision = np.where(np.isnan(score), np.nan, (score >= thr).astype(float))
        df[f"{name}_pred"] = decision
    return df

"""The paired-eye stage: grade each eye from its own score and its fellow eye's.

Diabetic retinopathy is a disease of the patient: both eyes usually sit within one grade of
each other, so the fellow eye is evidence about this one (every 2015 Kaggle leader blended the
two eyes; o_O's per-patient blend moved the private kappa from 0.824 to 0.845). The stage is a
ridge regression on the first stage's scores of both eyes (own, fellow, their absolute
difference, laterality) onto the true grade, fitted on out-of-fold predictions, so it learns
how much the fellow eye is worth on scores the first stage did not train on. Its output is a
continuous *fused grade*, decoded by its own thresholds and cut-points, like a regression
model's. An eye without a usable fellow (one photo, or the other one ungradable or unreadable)
gets the plain fallback (so does an eye whose side is not known: see :func:`fellow_index`): a ridge regression on its own scores alone, fitted on the same data,
so that every eye's fused grade is on one scale and one set of thresholds decides them all.

A fellow eye never talks a severe eye out of it: where an eye's own grade alone (the
fallback) reaches the grade-3 cut-point, its fused grade is at least that (:func:`guarded`).
EyePACS rarely has one severe eye beside a healthy one (3 of 3,717 eyes), so the fitted stage
learns to pull an eye that disagrees with its fellow towards it (the shipped grader's weight on
their difference is -0.33: an eye scoring 3.1 alone beside a clean fellow fused to 0.9,
"moderate", and its patient was not called urgent), a fair bet for kappa and the wrong one for
a unilateral severe eye. Measured on five-fold out-of-fold predictions
(``benchmarks/bench_urgent_guard.py``), the guard costs nothing measurable.

NumPy only at prediction time (the model is a few coefficients in bundle.json); scikit-learn
only to fit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from drgrader.data.eyes import EYE_WORDS
from drgrader.grading import DECISION_COLUMNS, SCORE_COLUMNS, SCREENS, column_index, decide, scores_are_the_grade

SCREEN_SCORES = ["expected_grade", *(column for column, _ in SCREENS.values())]
DECIDED_COLUMNS = [*SCORE_COLUMNS, *DECISION_COLUMNS, "paired"]
RIDGE_ALPHA = 1.0
_RIGHT = {"right", "r", "od"}


@dataclass(frozen=True)
class PairedEyeModel:
    """``fused = intercept + coef . features`` for eyes with a fellow (features as
    :func:`pair_features` builds them), ``single_intercept + single_coef . own scores`` else."""

    inputs: list[str]  # first-stage score columns used for each eye
    coef: list[float]
    intercept: float
    single_coef: list[float]
    single_intercept: float

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PairedEyeModel":
        try:
            model = cls(
                inputs=list(data["inputs"]),
                coef=[float(c) for c in data["coef"]],
                intercept=float(data["intercept"]),
                single_coef=[float(c) for c in data["single_coef"]],
                single_intercept=float(data["single_intercept"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"paired-eye model is malformed: {exc!r}") from None
        n = len(model.inputs)
        if not set(model.inputs) <= set(SCREEN_SCORES) or len(model.coef) != 3 * n + 1 or len(model.single_coef) != n:
            raise ValueError(
                f"paired-eye model is malformed: {n} inputs, {len(model.coef)} + {len(model.single_coef)} coefficients"
            )
        return model

    def inverted(self) -> str | None:
        """The stage's weights on the eye's own (first) score, with a fellow (``coef[0]``) and
        alone (``single_coef[0]``), that are not positive, in words (None: both positive). Such a
        stage turns the grader upside down: the higher an eye's own score, the lower its fused
        grade, and the grade-3 guard, which compares the stage's own fallback, cannot see it."""
        weights = (("coef[0]", self.coef[0]), ("single_coef[0]", self.single_coef[0]))
        return ", ".join(f"{name} {value:.3g}" for name, value in weights if value <= 0) or None

    def own_grades(self, table: pd.DataFrame) -> np.ndarray:
        """Every row's grade from its own scores alone (the fallback), NaN where it has none."""
        return table[self.inputs].to_numpy(dtype=float) @ np.asarray(self.single_coef) + self.single_intercept

    def predict(self, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(fused grade of every row, NaN where the row has no score; fellow row index or -1)."""
        fellow = fellow_index(table)
        fused = self.own_grades(table)
        if (fellow >= 0).any():
            fused[fellow >= 0] = pair_features(table, fellow, self.inputs) @ np.asarray(self.coef) + self.intercept
        return fused, fellow


def score_inputs(table: pd.DataFrame) -> list[str]:
    """The first-stage scores to fuse: the expected grade alone when the screening scores are
    the grade itself (regression), else the expected grade and both screening scores."""
    return ["expected_grade"] if scores_are_the_grade(table) else list(SCREEN_SCORES)


def fellow_index(table: pd.DataFrame) -> np.ndarray:
    """For each row, the row index (position) of its fellow eye, or -1: the patient's other
    photo when the patient has exactly two usable photos, a known left eye and a known right
    eye. A photo whose eye is unknown is never a fellow: two of them are as often two fields of
    one eye (macula- and disc-centred, a multi-frame DICOM) as two eyes."""
    usable = table["expected_grade"].notna().to_numpy().copy()
    if "gradable" in table:
        usable &= table["gradable"].fillna(True).astype(bool).to_numpy()
    words = table["eye"].fillna("").astype(str).str.lower() if "eye" in table else pd.Series([""] * len(table))
    eye = words.map(lambda w: EYE_WORDS.get(w, "")).to_numpy()
    patient = table["patient_id"].fillna("").astype(str).to_numpy() if "patient_id" in table else np.full(len(table), "")
    fellow = np.full(len(table), -1)
    positions = pd.Series(np.arange(len(table)))[usable & (patient != "")]
    for _, group in positions.groupby(patient[positions.to_numpy()]):
        if len(group) == 2:
            a, b = group.to_numpy()
            if {eye[a], eye[b]} == {"left", "right"}:
                fellow[a], fellow[b] = b, a
    return fellow


def pair_features(table: pd.DataFrame, fellow: np.ndarray, inputs: list[str]) -> np.ndarray:
    """Rows with a fellow (``fellow >= 0``) -> [own scores, fellow scores, |own - fellow|, right eye]."""
    rows = np.flatnonzero(fellow >= 0)
    own = table[inputs].to_numpy(dtype=float)[rows]
    other = table[inputs].to_numpy(dtype=float)[fellow[rows]]
    eye = table["eye"].fillna("").astype(str).str.lower() if "eye" in table else pd.Series([""] * len(table))
    right = eye.isin(_RIGHT).to_numpy(dtype=float)[rows]
    return np.column_stack([own, other, np.abs(own - other), right])


def fit_paired_eyes(table: pd.DataFrame) -> PairedEyeModel:
    """Fit the stage on a predictions table with true ``grade`` (out-of-fold scores)."""
    from sklearn.linear_model import Ridge

    inputs = score_inputs(table)
    fellow = fellow_index(table)
    if (fellow >= 0).sum() < 10:
        raise ValueError(f"only {(fellow >= 0).sum()} eyes have a fellow eye; the paired-eye stage needs at least 10")
    grade = table["grade"].to_numpy(dtype=float)
    scored = table["expected_grade"].notna().to_numpy()
    paired = Ridge(alpha=RIDGE_ALPHA).fit(pair_features(table, fellow, inputs), grade[fellow >= 0])
    single = Ridge(alpha=RIDGE_ALPHA).fit(table[inputs].to_numpy(dtype=float)[scored], grade[scored])
    return PairedEyeModel(
        inputs, [float(c) for c in paired.coef_], float(paired.intercept_),
        [float(c) for c in single.coef_], float(single.intercept_),
    )


def cross_fit_paired_eyes(table: pd.DataFrame, *, folds: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fused grades of every row, each from a stage fitted without its patient (patient-grouped
    k-fold): honest figures for the stage itself. Also returns each row's own grade alone from
    the same stages (for :func:`guarded`) and which rows had a fellow."""
    from sklearn.model_selection import GroupKFold

    fused, own = np.full(len(table), np.nan), np.full(len(table), np.nan)
    groups = table["patient_id"].astype(str).to_numpy()
    splitter = GroupKFold(n_splits=min(folds, len(set(groups))))
    for train_idx, test_idx in splitter.split(table, groups=groups):
        model = fit_paired_eyes(table.iloc[train_idx].reset_index(drop=True))
        # A held-out eye's fellow is held out with it (same patient, same group).
        held_out = table.iloc[test_idx].reset_index(drop=True)
        fused[test_idx], own[test_idx] = model.predict(held_out)[0], model.own_grades(held_out)
    return fused, own, fellow_index(table) >= 0


def guarded(fused: np.ndarray, own: np.ndarray, thresholds: dict | None) -> np.ndarray:
    """Fused grades that never fall below the eye's own grade alone where that reaches the
    grade-3 cut-point (see the module); unchanged without cut-points."""
    cutpoints = (thresholds or {}).get("cutpoints")
    if not cutpoints:
        return fused
    return np.where(own >= cutpoints[2], np.fmax(fused, own), fused)


def fused_scores(fused: np.ndarray) -> np.ndarray:
    """Score matrix (N x 8) of fused grades: the fused grade is the expected grade and both
    screening scores (a regression output); class probabilities are not defined."""
    scores = np.full((len(fused), len(SCORE_COLUMNS)), np.nan)
    for column in SCREEN_SCORES:
        scores[:, column_index(column)] = fused
    return scores


def fused_table(
    single: pd.DataFrame, fused: np.ndarray, paired: np.ndarray, thresholds: dict | None, own: np.ndarray | None = None
) -> pd.DataFrame:
    """The rows of a predictions table, re-decided on their fused grades by ``thresholds``
    (:func:`guarded` by the eyes' ``own`` grades alone when given); ``paired`` says which eyes
    had a fellow."""
    rows = single.drop(columns=[c for c in single.columns if c in DECIDED_COLUMNS]).reset_index(drop=True)
    if own is not None:
        fused = guarded(fused, own, thresholds)
    return pd.concat([rows, decide(fused_scores(fused), thresholds)], axis=1).assign(paired=paired)


def _staged(table: pd.DataFrame, paired_stage: dict) -> tuple[np.ndarray, np.ndarray]:
    """(guarded fused grades, has a fellow) of a table's rows by a stored stage."""
    model = PairedEyeModel.from_dict(paired_stage["model"])
    fused, fellow = model.predict(table)
    return guarded(fused, model.own_grades(table), paired_stage.get("thresholds")), fellow >= 0


def decide_paired(single: pd.DataFrame, paired_stage: dict) -> pd.DataFrame:
    """A single-eye predictions table (with ``patient_id``, ``eye`` and the score columns) ->
    the same rows decided on the fused grade by a stored stage (``{"model", "thresholds"}``)."""
    fused, paired = _staged(single, paired_stage)
    return fused_table(single, fused, paired, paired_stage.get("thresholds"))


def decisions_with_stage(table: pd.DataFrame, paired_stage: dict) -> pd.DataFrame:
    """Decisions (``pred_grade``, ``any_dr_pred``, ``referable_pred``) of a table with the score
    columns (and ``patient_id``/``eye`` when known) by a stored stage, with ``fused_grade`` and
    ``paired``; the first-stage scores are left to the caller."""
    fused, paired = _staged(table, paired_stage)
    decided = decide(fused_scores(fused), paired_stage.get("thresholds"))
    return decided[DECISION_COLUMNS].assign(fused_grade=fused, paired=paired)

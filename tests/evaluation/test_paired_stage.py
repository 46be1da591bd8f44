"""fit_paired_stage: the paired-eye stage fitted on labelled eyes, figures cross-fitted."""

import logging

import numpy as np
import pandas as pd
import pytest

from drgrader.config import EvalConfig
from drgrader.evaluation.evaluate import _fit_stage
from drgrader.evaluation.paired_stage import fit_paired_stage
from drgrader.grading import decide


def eyes(patients: int, *, both: bool = True, seed: int = 0) -> pd.DataFrame:
    """Each patient's eyes share one grade; each eye's score is that grade plus its own noise."""
    rng = np.random.default_rng(seed)
    grade = np.repeat(rng.choice(5, patients, p=[0.5, 0.15, 0.2, 0.1, 0.05]), 2)
    scores = np.full((grade.size, 8), np.nan)
    scores[:, 5:] = (grade + rng.normal(0, 0.8, grade.size))[:, None]  # expected grade = both screening scores
    table = pd.concat([pd.DataFrame({"image_id": [f"{i // 2}_{i % 2}" for i in range(grade.size)],
                                     "patient_id": [str(i // 2) for i in range(grade.size)],
                                     "eye": ["right", "left"] * patients, "grade": grade}),
                       decide(scores, None)], axis=1)
    return table if both else table.iloc[::2].reset_index(drop=True)


def test_stage_fused_two_noisy_looks_and_its_figures_are_cross_fitted():
    table = eyes(200)
    stage, decided = fit_paired_stage(table, EvalConfig())
    assert stage["model"]["inputs"] == ["expected_grade"] and decided["paired"].all()
    assert stage["thresholds"]["cutpoints"][:2] == [stage["thresholds"]["any_dr"], stage["thresholds"]["referable"]]
    # Averaging the fellow eye's independent noise brings the fused grade closer to the truth.
    single_error = np.abs(table["expected_grade"] - table["grade"]).mean()
    fused_error = np.abs(decided["expected_grade"] - decided["grade"]).mean()
    assert fused_error < 0.85 * single_error


def test_without_fellow_eyes_train_keeps_single_eye_decisions(caplog):
    with pytest.raises(ValueError, match="fellow eye"):
        fit_paired_stage(eyes(50, both=False), EvalConfig())
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        assert _fit_stage(eyes(50, both=False), EvalConfig()) is None
    assert "single-eye decisions only" in caplog.text

"""Threshold search and grade cut-point fitting on small hand-checked data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drgrader.config import EvalConfig
from drgrader.evaluation.metrics import quadratic_weighted_kappa
from drgrader.evaluation.thresholds import (
    DEFAULT_CUTPOINTS,
    apply_cutpoints,
    fit_cutpoints,
    fit_thresholds,
    search_threshold,
)

# Tiny ROC (same as test_metrics): Youden J is 0.75 for any threshold in (0.3, 0.4].
Y_ROC = [0, 0, 0, 0, 1, 1, 1]
S_ROC = [0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.9]


def test_youden_on_observed_scores_and_on_grid():
    assert search_threshold(Y_ROC, S_ROC, "youden", lo=None, hi=None) == pytest.approx(0.4)
    # On the 0.01 grid the plateau is 0.31..0.40; the middle of it is chosen.
    grid = search_threshold(Y_ROC, S_ROC, "youden")
    assert 0.3 < grid <= 0.4
    assert grid == pytest.approx(0.36)


def test_accuracy_objective_seed001_range():
    # Perfect accuracy for any threshold in (0.45, 0.55]; seed 001 swept 0.30..0.70.
    y = [0, 0, 0, 1, 1]
    s = [0.1, 0.2, 0.45, 0.55, 0.9]
    thr = search_threshold(y, s, "accuracy", lo=0.30, hi=0.70)
    assert 0.45 < thr <= 0.55


def test_sensitivity_objective_keeps_the_target():
    # 10 diseased at 0.1..1.0, 10 healthy at 0.05..0.95. Sensitivity >= 0.9 needs 9 of 10
    # diseased eyes called positive, so the highest such threshold is the 2nd-lowest score 0.2.
    y = [1] * 10 + [0] * 10
    s = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0] + [
        0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95
    ]
    assert search_threshold(y, s, "sensitivity", target_sensitivity=0.9) == pytest.approx(0.2)
    assert search_threshold(y, s, "sensitivity", target_sensitivity=0.5) == pytest.approx(0.6)
    # Unreachable within the range: warn and take the most sensitive candidate.
    with pytest.warns(UserWarning, match="reaches sensitivity"):
        assert search_threshold(y, s, "sensitivity", lo=0.5, hi=0.9) == pytest.approx(0.5)


def test_scores_outside_unit_range_use_observed_values():
    # Regression expected grades: referable = grade >= 2; the gap is between 1.4 and 1.9.
    grade = np.array([0, 0, 1, 1, 2, 2, 3, 4])
    expected = np.array([0.2, 0.6, 1.1, 1.4, 1.9, 2.3, 3.1, 3.8])
    thr = search_threshold(grade >= 2, expected, "youden", lo=None, hi=None)
    assert thr == pytest.approx(1.9)


def test_search_threshold_rejects_one_class_and_bad_objective():
    with pytest.raises(ValueError, match="0 positive"):
        search_threshold([0, 0, 0], [0.1, 0.2, 0.3], "youden")
    with pytest.raises(ValueError, match="unknown threshold objective"):
        search_threshold(Y_ROC, S_ROC, "f1")


def test_apply_cutpoints_by_hand():
    # Default cuts 0.5, 1.5, 2.5, 3.5: a score equal to a cut goes up.
    assert apply_cutpoints([0.49, 0.5, 1.6, 3.5, 4.2, -1.0], DEFAULT_CUTPOINTS).tolist() == [
        0, 1, 2, 4, 4, 0
    ]
    with pytest.raises(ValueError, match="4 cut-points"):
        apply_cutpoints([1.0], [0.5, 1.5])


def test_fit_cutpoints_recovers_shifted_cutpoints():
    # Scores = grade + 0.3 + noise: the best cuts sit half-way between grade clusters,
    # at k + 0.8 instead of the default k + 0.5.
    rng = np.random.default_rng(0)
    grade = rng.integers(0, 5, 600)
    score = grade + 0.3 + rng.normal(0, 0.12, grade.size)
    default_kappa = quadratic_weighted_kappa(grade, apply_cutpoints(score, DEFAULT_CUTPOINTS))
    cuts = fit_cutpoints(grade, score)
    assert cuts.shape == (4,) and np.all(np.diff(cuts) > 0)
    np.testing.assert_allclose(cuts, [0.8, 1.8, 2.8, 3.8], atol=0.2)
    fitted_kappa = quadratic_weighted_kappa(grade, apply_cutpoints(score, cuts))
    assert fitted_kappa > default_kappa
    assert fitted_kappa > 0.99


def test_fit_cutpoints_keeps_init_when_nothing_is_better():
    grade = np.array([0, 1, 2, 3, 4] * 4)
    score = grade.astype(float)  # the default cuts are already perfect
    # Nothing beats kappa 1, so the init comes back unchanged.
    np.testing.assert_array_equal(fit_cutpoints(grade, score), DEFAULT_CUTPOINTS)


def _val_table(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    grade = rng.integers(0, 5, n)
    expected = np.clip(grade + 0.3 + rng.normal(0, 0.2, n), 0, 4)
    return pd.DataFrame(
        {
            "patient_id": np.arange(n) // 2,
            "grade": grade,
            "expected_grade": expected,
            "score_any": 1 / (1 + np.exp(-4 * (expected - 0.8))),
            "score_referable": expected,  # a regression score, not a probability
        }
    )


def test_fit_thresholds_grade_model():
    val = _val_table()
    out = fit_thresholds(val, EvalConfig(), "grade")
    assert set(out) == {"cutpoints", "any_dr", "referable"}
    assert len(out["cutpoints"]) == 4 and out["cutpoints"] == sorted(out["cutpoints"])
    assert 0.0 <= out["any_dr"] <= 1.0
    # The referable score is an expected grade: searched over observed values, lands ~1.8.
    assert 1.4 < out["referable"] < 2.2
    assert fit_thresholds(val, EvalConfig(fit_cutpoints=False), "grade")["cutpoints"] is None
    assert fit_thresholds(val, EvalConfig(), "referable")["cutpoints"] is None


def test_a_threshold_range_that_cannot_apply_is_said_and_a_reversed_one_refused():
    # Probe 38 CB9: eval.threshold_range [0.5, 0.9] was dropped for a score running beyond it, unsaid;
    # a reversed range was accepted.
    from drgrader.config import ConfigError, load_config

    with pytest.warns(UserWarning, match=r"eval.threshold_range \[0.5, 0.9\] is not applied to the referable threshold: its "
                                         r"score is no probability"):
        out = fit_thresholds(_val_table(), EvalConfig(threshold_range=(0.5, 0.9)), "grade")
    assert 0.5 <= out["any_dr"] <= 0.9
    with pytest.warns(UserWarning):  # a probability is searched within the range (seed 001's sweep), never was before
        narrow = fit_thresholds(_val_table(), EvalConfig(threshold_range=(0.1, 0.2)), "grade")
    assert 0.1 <= narrow["any_dr"] <= 0.2  # its best threshold outside the range (~0.7) is not taken
    with pytest.raises(ConfigError, match=r"eval.threshold_range must be \[low, high\] with low < high \(got \[0.9, 0.5\]\)"):
        load_config("demo", ["eval.threshold_range=[0.9, 0.5]"])


def test_fit_thresholds_binary_model_and_missing_class():
    val = _val_table()
    val["expected_grade"] = np.nan
    val["score_referable"] = np.nan
    out = fit_thresholds(val, EvalConfig(threshold_objective="accuracy"), "any_dr")
    assert out["cutpoints"] is None and out["referable"] is None
    assert out["any_dr"] is not None
    healthy = _val_table().assign(grade=0)
    with pytest.warns(UserWarning, match="threshold not fitted") as caught:
        out = fit_thresholds(healthy, EvalConfig(), "grade")
    assert out["any_dr"] is None and out["referable"] is None
    assert {str(w.message).split()[0] for w in caught} == {"any_dr", "referable"}
    # Probe 33 BV11: the bundle (and so its card) keeps what could not be fitted, and why.
    assert [n.split(" (")[0] for n in out["not_fitted"]] == ["any_dr threshold", "referable threshold", "grade cut-points"]
    assert "all grade 0" in out["not_fitted"][2]
    assert "not_fitted" not in fit_thresholds(_val_table(), EvalConfig(), "grade")


@pytest.mark.parametrize("consistent", [True, False])
def test_cut_points_of_grades_no_validation_eye_reaches_keep_their_defaults(consistent):
    """Probe 49 CM1: a small validation split without grade 3 or 4 eyes "fitted" those cut-points on
    nothing (0.25, 0.98 on a weak model's scale): an expected grade of 0.5 was a grade 3, urgent."""
    val = _val_table()
    low = val[val["grade"] <= 2].reset_index(drop=True)
    low["expected_grade"] = low["score_referable"] = low["grade"] * 0.3 - 1.0  # a weak model's squeezed scale
    out = fit_thresholds(low, EvalConfig(consistent_cutpoints=consistent), "grade")
    assert out["cutpoints"][2:] == [max(2.5, out["cutpoints"][1]), max(3.5, out["cutpoints"][1])]
    assert [n.split(" (")[0] for n in out["not_fitted"]] == ["grade-3 cut-point", "grade-4 cut-point"]
    assert "no validation eye is grade 3 or more: the default 2.5" in out["not_fitted"][0]
    three = val[val["grade"] <= 3].reset_index(drop=True)  # grade 3 seen, grade 4 not
    out = fit_thresholds(three, EvalConfig(consistent_cutpoints=consistent), "grade")
    assert [n.split(" (")[0] for n in out["not_fitted"]] == ["grade-4 cut-point"] and out["cutpoints"][3] >= 3.5

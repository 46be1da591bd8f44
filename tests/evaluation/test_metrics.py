"""Metrics against hand-computed values, patient-level bootstrap, and the full table."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from drgrader.evaluation.bootstrap import bootstrap_ci, resample_patients
from drgrader.evaluation.metrics import (
    expected_calibration_error,
    grade_metrics,
    meets_idx_dr_bar,
    operating_points,
    quadratic_weighted_kappa,
    reliability_bins,
    roc_auc,
    roc_curve_points,
    screening_at_threshold,
)
from drgrader.evaluation.results import evaluate_table, patient_level

# A 3-class kappa example worked by hand.
#   y_true = [0, 0, 1, 1, 2, 2], y_pred = [0, 1, 1, 1, 2, 0]
#   observed O (rows true, cols pred) = [[1,1,0],[0,2,0],[1,0,1]], n = 6
#   row sums [2,2,2], col sums [2,3,1]  ->  expected E[i,j] = row_i*col_j/6 = [2/3, 1, 1/3] per row
#   quadratic weights W[i,j] = (i-j)^2 = [[0,1,4],[1,0,1],[4,1,0]]
#   sum W*O = 1*1 (true 0, pred 1) + 4*1 (true 2, pred 0) = 5
#   sum W*E = (1 + 4/3) + (2/3 + 1/3) + (8/3 + 1) = 7/3 + 1 + 11/3 = 7
#   kappa = 1 - 5/7 = 2/7
# Grades 3 and 4 never occur: they add zero rows/columns and do not change the ratio.
Y_TRUE_3 = [0, 0, 1, 1, 2, 2]
Y_PRED_3 = [0, 1, 1, 1, 2, 0]


def test_quadratic_kappa_matches_hand_computation():
    assert quadratic_weighted_kappa(Y_TRUE_3, Y_PRED_3) == pytest.approx(2 / 7)


def test_quadratic_kappa_penalises_far_errors_more():
    y = [0, 1, 2, 3, 4] * 4
    assert quadratic_weighted_kappa(y, y) == pytest.approx(1.0)
    near = [min(g + 1, 4) for g in y]
    far = [4 if g < 2 else 0 for g in y]
    assert quadratic_weighted_kappa(y, near) > 0.5 > quadratic_weighted_kappa(y, far)


def test_quadratic_kappa_undefined_is_nan():
    assert math.isnan(quadratic_weighted_kappa([0, 0, 0], [0, 0, 0]))
    # Probe 37 CA9: a reference of one grade (a batch of normals) measures no agreement beyond chance:
    # sklearn's 0 read as "chance" in the report and card.
    assert math.isnan(quadratic_weighted_kappa([0, 0, 0, 0], [0, 1, 0, 2]))


def test_grade_metrics_on_hand_example():
    m = grade_metrics(Y_TRUE_3, Y_PRED_3)
    assert m["kappa"] == pytest.approx(2 / 7)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["accuracy_baseline"] == pytest.approx(2 / 6)
    assert m["mean_absolute_error"] == pytest.approx((1 + 2) / 6)
    assert m["confusion"][:3] == [[1, 1, 0, 0, 0], [0, 2, 0, 0, 0], [1, 0, 1, 0, 0]]
    assert m["confusion_row_normalised"][0][:2] == pytest.approx([0.5, 0.5])
    assert m["confusion_row_normalised"][4] == [0.0] * 5  # no grade-4 eyes: zeros, not NaN
    # Grade 1: predicted 3 times, 2 right -> precision 2/3; both grade-1 eyes found -> recall 1.
    assert m["per_grade"]["1"]["precision"] == pytest.approx(2 / 3)
    assert m["per_grade"]["1"]["recall"] == pytest.approx(1.0)
    assert m["per_grade"]["1"]["f1"] == pytest.approx(0.8)
    assert m["per_grade"]["3"] == {
        "name": "3 severe NPDR", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0
    }
    # Support-weighted recall is the accuracy.
    assert m["weighted_avg"]["recall"] == pytest.approx(m["accuracy"])


# 10 eyes, 4 diseased. Threshold 0.5 calls 0.9, 0.8 (diseased) and 0.7, 0.6 (healthy) positive:
# TP 2, FN 2, FP 2, TN 4 -> sensitivity 2/4, specificity 4/6, PPV 2/4, NPV 4/6, accuracy 6/10.
Y10 = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
S10 = [0.9, 0.8, 0.4, 0.3, 0.7, 0.2, 0.1, 0.05, 0.6, 0.35]


def test_screening_at_threshold_hand_example():
    m = screening_at_threshold(Y10, S10, 0.5)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 2, 2, 4)
    assert m["sensitivity"] == pytest.approx(0.5)
    assert m["specificity"] == pytest.approx(4 / 6)
    assert m["ppv"] == pytest.approx(0.5)
    assert m["npv"] == pytest.approx(4 / 6)
    assert m["accuracy"] == pytest.approx(0.6)
    # score == threshold counts as positive.
    assert screening_at_threshold(Y10, S10, 0.4)["tp"] == 3


def test_screening_undefined_rates_are_nan():
    m = screening_at_threshold([0, 0, 0], [0.1, 0.6, 0.2], 0.5)
    assert math.isnan(m["sensitivity"]) and m["specificity"] == pytest.approx(2 / 3)


# Tiny ROC: 4 healthy (0.1, 0.2, 0.3, 0.6), 3 diseased (0.4, 0.7, 0.9).
#   thr 0.9: tpr 1/3 fpr 0   J 0.333      thr 0.4: tpr 1   fpr 1/4 J 0.75  <- Youden
#   thr 0.7: tpr 2/3 fpr 0   J 0.667      thr 0.3: tpr 1   fpr 2/4 J 0.5
#   thr 0.6: tpr 2/3 fpr 1/4 J 0.417
# Highest threshold with sensitivity >= 0.9: 0.4. Lowest with specificity >= 0.9 (fpr 0): 0.7.
Y_ROC = [0, 0, 0, 0, 1, 1, 1]
S_ROC = [0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.9]


def test_operating_points_on_tiny_roc():
    points = operating_points(Y_ROC, S_ROC, chosen_threshold=0.5)
    assert points["youden"]["threshold"] == pytest.approx(0.4)
    assert points["youden"]["sensitivity"] == pytest.approx(1.0)
    assert points["youden"]["specificity"] == pytest.approx(0.75)
    assert points["high_sensitivity"]["threshold"] == pytest.approx(0.4)
    assert points["high_specificity"]["threshold"] == pytest.approx(0.7)
    assert points["high_specificity"]["sensitivity"] == pytest.approx(2 / 3)
    assert points["chosen"]["threshold"] == 0.5
    assert points["chosen"]["sensitivity"] == pytest.approx(2 / 3)
    assert points["chosen"]["specificity"] == pytest.approx(0.75)


def test_high_specificity_can_mean_calling_nobody_positive():
    # The top score is healthy and there are only 2 healthy eyes: any finite threshold at an
    # observed score has specificity <= 0.5, so the point is "nobody positive".
    points = operating_points([0, 0, 1], [0.9, 0.1, 0.5], None)
    assert "chosen" not in points
    assert points["high_specificity"]["threshold"] > 0.9
    assert points["high_specificity"]["sensitivity"] == 0.0


def test_roc_auc_hand_example_and_one_class():
    # Pairs (diseased, healthy): 0.35>0.1 yes, 0.35>0.4 no, 0.8>0.1 yes, 0.8>0.4 yes -> 3/4.
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert math.isnan(roc_auc([0, 0, 0], [0.1, 0.2, 0.3]))
    assert roc_curve_points([1, 1], [0.1, 0.2]).empty
    curve = roc_curve_points(Y_ROC, S_ROC)
    assert curve["tpr"].iloc[-1] == 1.0 and np.isfinite(curve["threshold"]).all()


def test_operating_points_one_class_is_nan_not_crash():
    points = operating_points([0, 0, 0], [0.1, 0.2, 0.3], chosen_threshold=0.25)
    assert points["chosen"]["specificity"] == pytest.approx(2 / 3)
    assert math.isnan(points["youden"]["threshold"])
    assert math.isnan(points["high_sensitivity"]["sensitivity"])


def test_idx_dr_bar_is_strict():
    assert meets_idx_dr_bar(0.87, 0.90)
    assert not meets_idx_dr_bar(0.85, 0.90)  # must exceed 0.85
    assert not meets_idx_dr_bar(0.90, 0.825)  # must exceed 0.825
    assert not meets_idx_dr_bar(math.nan, 0.95)


# ------------------------------------------------------------------------ bootstrap
def _two_identical_eyes(n_patients: int, seed: int = 1) -> pd.DataFrame:
    x = np.random.default_rng(seed).normal(size=n_patients)
    return pd.DataFrame(
        {
            "image_id": np.arange(2 * n_patients),
            "patient_id": np.repeat(np.arange(n_patients), 2),
            "x": np.repeat(x, 2),
        }
    )


def test_resample_patients_keeps_all_eyes_of_a_drawn_patient():
    df = _two_identical_eyes(30)
    sample = resample_patients(df, np.random.default_rng(0))
    assert len(sample) == len(df)
    for _, rows in sample.groupby("patient_id"):
        # Each draw is exactly one original patient's two images (image ids 2p and 2p+1).
        ids = sorted(rows["image_id"])
        assert len(ids) == 2 and ids[0] % 2 == 0 and ids[1] == ids[0] + 1
    # Drawing with replacement: some patients come twice (as distinct draws), some never.
    assert sample["image_id"].nunique() < len(df)


def test_bootstrap_resamples_patients_not_images():
    mean_x = lambda d: float(d["x"].mean())  # noqa: E731
    pairs = _two_identical_eyes(40)
    one_eye = pairs.iloc[::2]
    by_patient = bootstrap_ci(mean_x, pairs, n=400, seed=3)
    # Identical eyes carry no extra information: same CI as one eye per patient (same draws).
    assert by_patient == pytest.approx(bootstrap_ci(mean_x, one_eye, n=400, seed=3))
    # Treating the 80 images as independent understates the width by about sqrt(2).
    by_image = bootstrap_ci(mean_x, pairs, group="image_id", n=400, seed=3)
    width_patient = by_patient[2] - by_patient[1]
    width_image = by_image[2] - by_image[1]
    assert width_patient / width_image > 1.2
    assert by_patient[0] == pytest.approx(pairs["x"].mean())


def test_bootstrap_skips_nan_resamples():
    # 1 diseased patient of 20: about 1/e of the resamples lack it and have no AUC.
    # Skipping those leaves only perfect rankings, so the CI is exactly [1, 1], not NaN.
    df = pd.DataFrame(
        {"patient_id": np.arange(20), "y": [1] + [0] * 19, "s": np.linspace(1, 0, 20)}
    )
    assert bootstrap_ci(lambda d: roc_auc(d["y"], d["s"]), df, n=200) == (1.0, 1.0, 1.0)
    # Defined in under half of the resamples (the diseased patient drawn twice): warn.
    twice = lambda d: 1.0 if d["y"].sum() >= 2 else math.nan  # noqa: E731
    with pytest.warns(UserWarning, match="resamples defined"):
        estimate, lo, hi = bootstrap_ci(twice, df, n=200)
    assert math.isnan(estimate) and lo == hi == 1.0
    never = bootstrap_ci(lambda d: math.nan, df, n=20)
    assert all(math.isnan(v) for v in never)


def test_patient_level_takes_the_worst_eye():
    df = pd.DataFrame(
        {"patient_id": ["a", "a", "b", "b"], "label": [0, 1, 0, 0], "s": [0.2, 0.7, 0.4, 0.1]}
    )
    out = patient_level(df, "s", "label", threshold=0.5).set_index("patient_id")
    assert out.loc["a", "label"] == 1 and out.loc["a", "score"] == 0.7
    assert bool(out.loc["a", "decision"]) and not bool(out.loc["b", "decision"])
    assert out.loc["b", "n_images"] == 2


# ---------------------------------------------------------------------- calibration
def test_ece_calibrated_is_near_zero_and_overconfident_is_not():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=20000)
    y = rng.uniform(size=p.size) < p
    assert expected_calibration_error(y, p) < 0.02
    # All 0.9 but only half diseased: one bin, |0.9 - 0.5| = 0.4.
    assert expected_calibration_error([1, 0] * 50, [0.9] * 100) == pytest.approx(0.4)
    # Push calibrated probabilities towards 0/1: over-confident.
    sharp = np.clip(0.5 + 1.8 * (p - 0.5), 0, 1)
    assert expected_calibration_error(y, sharp) > 0.1


def test_reliability_bins_layout():
    bins = reliability_bins([0, 1, 1], [0.05, 0.95, 1.0], n_bins=10)
    assert len(bins) == 10 and bins["count"].sum() == 3
    assert bins["count"].iloc[-1] == 2  # p == 1.0 belongs to the last bin
    assert bins["observed"].iloc[-1] == 1.0 and bins["mean_prob"].iloc[-1] == pytest.approx(0.975)
    assert math.isnan(bins["mean_prob"].iloc[5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reliability_bins([0, 1], [0.5, 1.5])


# -------------------------------------------------------------------- whole table
def _table(grade, score_any=None, score_ref=None, pred_grade=None, expected=None, gradable=None):
    n = len(grade)
    nan = np.full(n, np.nan)
    return pd.DataFrame(
        {
            "image_id": [f"img{i}" for i in range(n)],
            "patient_id": [f"p{i // 2}" for i in range(n)],
            "eye": ["left", "right"] * (n // 2) + ["left"] * (n % 2),
            "grade": grade,
            "pred_grade": nan if pred_grade is None else pred_grade,
            "expected_grade": nan if expected is None else expected,
            **{f"p{k}": nan for k in range(5)},
            "score_any": nan if score_any is None else score_any,
            "score_referable": nan if score_ref is None else score_ref,
            "gradable": np.ones(n, bool) if gradable is None else gradable,
        }
    )


def test_seed001_trap_is_impossible_to_miss():
    # 20 diseased, 80 healthy eyes. The screener finds 5 diseased and wrongly flags 8 healthy:
    # accuracy (5 + 72) / 100 = 0.77, below the 0.80 of calling everyone healthy.
    grade = [1] * 20 + [0] * 80
    score = [0.9] * 5 + [0.1] * 15 + [0.9] * 8 + [0.1] * 72
    result = evaluate_table(_table(grade, score_any=score), {"any_dr": 0.5}, n_boot=50)
    assert "grade" not in result and "referable" not in result
    head = result["headline"]
    assert head["any_dr_accuracy"] == pytest.approx(0.77)
    assert head["any_dr_sensitivity"] == pytest.approx(0.25)
    assert head["any_dr_specificity"] == pytest.approx(0.9)
    assert head["any_dr_accuracy_baseline"] == pytest.approx(0.8)
    assert result["any_dr"]["idx_dr_bar"] is False
    assert any("misses 75% of diseased eyes" in w for w in result["warnings"])
    assert any("constant answer" in w for w in result["warnings"])
    lo, hi = result["any_dr"]["ci"]["sensitivity"]
    assert lo <= 0.25 <= hi
    json.dumps(result, allow_nan=False)


def test_evaluate_binary_only_table_has_no_grade_section():
    rng = np.random.default_rng(0)
    grade = rng.integers(0, 5, 60)
    score = np.clip((grade >= 2) * 0.5 + rng.uniform(0, 0.5, 60), 0, 1)
    result = evaluate_table(_table(grade, score_ref=score), {"referable": 0.5}, n_boot=30)
    assert "grade" not in result and "any_dr" not in result
    assert result["n_images"] == 60 and result["n_patients"] == 30
    assert result["referable"]["auc"] > 0.9
    assert result["referable"]["ece"] is not None
    assert set(result["referable"]["operating_points"]) == {
        "chosen", "youden", "high_sensitivity", "high_specificity"
    }
    assert result["patient_level"]["referable"]["n_patients"] == 30
    assert result["gradability"] == {
        "n_ungradable": 0, "share_ungradable": 0.0, "gradable_only": None
    }
    json.dumps(result, allow_nan=False)


@pytest.mark.parametrize("grades, expected", [
    ([0] * 16 + [1] * 4, "every true grade is 0 or 1 (20 eyes, 20% of them 1)"),
    ([1, 2, 3, 4] * 5, "no true grade 0 among 20 eyes"),
    ([0, 1] * 9, None),  # too few eyes to tell
    ([0] * 15 + [1] * 4 + [2], None),  # one moderate eye: an ICDR scale
])
def test_a_yes_no_or_one_based_label_is_warned_in_the_results(grades, expected):
    """Probe 42 CF2: the console warned, but report.md and the model card (which outlive it) did not."""
    result = evaluate_table(_table(grades, pred_grade=grades), {}, n_boot=0)
    said = [w for w in result["warnings"] if "true grade" in w]
    assert len(said) == (expected is not None)
    assert all(w.startswith(expected) for w in said)


def test_too_few_patients_get_no_confidence_intervals_and_a_warning():
    """Probe 43 CG8: one patient's two photos got 95% CIs of zero width ("0.0-0.0%"), filed on the card."""
    grades = [0, 3]
    result = evaluate_table(_table(grades, score_ref=[0.2, 0.9], pred_grade=[0, 0]), {"referable": 0.5}, n_boot=200)
    assert result["n_patients"] == 1
    assert result["referable"]["ci"]["auc"] == [None, None] and result["grade"]["ci"]["kappa"] == [None, None]
    assert result["warnings"][0].startswith("only 1 patient(s): too few to resample, so no confidence intervals")
    many = evaluate_table(_table([0, 3] * 5, score_ref=[0.2, 0.9] * 5, pred_grade=[0, 3] * 5), {"referable": 0.5}, n_boot=50)
    assert many["n_patients"] == 5 and not any(w.startswith("only") for w in many["warnings"])


def test_too_few_resamples_are_warned_of_first():
    """Probe 58 CV3: eval.bootstrap=1 printed "95% CI 31.1-31.1%" beside an accuracy of 29.5%, in console, report
    and card, with nothing saying the interval came from one resample."""
    df = _table([0, 3] * 10, score_ref=[0.2, 0.9] * 10, pred_grade=[0, 2] * 10)
    for n_boot in (1, 20):
        warned = evaluate_table(df, {"referable": 0.5}, n_boot=n_boot)["warnings"]
        assert warned[0].startswith(f"the 95% confidence intervals rest on only {n_boot} bootstrap resample(s) "
                                    "(eval.bootstrap): too few")
        assert "use at least 200 (1000 is usual), or 0 to give none" in warned[0]
    for n_boot in (0, 200):  # none, or enough: no such warning
        assert not any("resample" in w for w in evaluate_table(df, {"referable": 0.5}, n_boot=n_boot)["warnings"])


def test_evaluate_table_is_nan_safe_with_one_class():
    grade = [0] * 10  # no diseased eye; scores 0.0..0.9, threshold 0.5 -> 5 of 10 healthy right
    result = evaluate_table(
        _table(grade, score_any=np.linspace(0, 0.9, 10), pred_grade=[0] * 10),
        {"any_dr": 0.5},
        n_boot=20,
    )
    assert result["any_dr"]["auc"] is None
    assert result["any_dr"]["ci"]["auc"] == [None, None]
    assert result["any_dr"]["operating_points"]["chosen"]["sensitivity"] is None
    assert result["any_dr"]["operating_points"]["chosen"]["specificity"] == pytest.approx(0.5)
    assert result["grade"]["kappa"] is None
    # Undefined sensitivity is not reported as a miss; the weak specificity is.
    assert not any("misses" in w for w in result["warnings"])
    assert any("Any DR (grade >= 1) at the chosen threshold: specificity 0.500" in w for w in result["warnings"])
    json.dumps(result, allow_nan=False)


def test_evaluate_grade_model_uses_cutpoints_and_reports_gradability():
    grade = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4] * 3)
    expected = grade + 0.3  # argmax-free score; cut-points at k + 0.8 grade it perfectly
    pred = np.clip(np.round(expected + 0.3), 0, 4)  # a worse pred_grade column
    gradable = np.ones(grade.size, bool)
    gradable[:4] = False
    df = _table(grade, pred_grade=pred, expected=expected, gradable=gradable)
    result = evaluate_table(df, {"cutpoints": [0.8, 1.8, 2.8, 3.8]}, n_boot=200)  # 200: no "too few resamples"
    assert result["grade"]["prediction"] == "expected_grade+cutpoints"
    assert result["grade"]["kappa"] == pytest.approx(1.0)
    assert result["grade"]["kappa_pred_grade"] < 1.0
    assert result["grade"]["screening_from_grades"]["referable"]["sensitivity"] == 1.0
    assert result["headline"]["referable_sensitivity_from_grades"] == 1.0
    assert result["warnings"] == []
    # No screening scores: patient level falls back to the predicted grade (worst eye).
    assert result["patient_level"]["referable"]["score_column"] == "pred"
    assert result["patient_level"]["referable"]["sensitivity"] == 1.0
    assert result["gradability"]["n_ungradable"] == 4
    assert result["gradability"]["gradable_only"]["kappa"] == pytest.approx(1.0)
    # Without cut-points the pred_grade column is used as is.
    plain = evaluate_table(df, {}, n_boot=0)
    assert plain["grade"]["prediction"] == "pred_grade"
    assert plain["grade"]["ci"] == {"kappa": None, "accuracy": None}
    # Probe 39 CC11: half the eyes or more ungradable (red-free photos): the figures say so first.
    df["gradable"] = np.arange(grade.size) < 15
    assert evaluate_table(df, {"cutpoints": [0.8, 1.8, 2.8, 3.8]}, n_boot=0)["warnings"] == [
        "50% of the eyes (15) are ungradable by the grader's own photo check, and every figure counts them: see the "
        "report's gradability section (why they are) before reading them"]


def test_evaluate_table_names_a_bad_row():
    df = _table([0, 1, 7, 2], score_any=[0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match=r"row 2 \(image_id 'img2'\): grade=7"):
        evaluate_table(df, {}, n_boot=0)
    with pytest.raises(ValueError, match="patient_id"):
        evaluate_table(df.drop(columns="patient_id"), {}, n_boot=0)


def test_grade_model_that_misses_disease_is_flagged():
    # 8 of 10 eyes healthy; the model calls every eye grade 0: accuracy 0.8, kappa 0,
    # and both referable eyes missed.
    grade = [0] * 8 + [2, 3]
    result = evaluate_table(_table(grade, pred_grade=[0] * 10), {}, n_boot=0)
    assert result["grade"]["accuracy"] == pytest.approx(0.8)
    assert result["headline"]["referable_sensitivity_from_grades"] == 0.0
    assert any(
        w.startswith("Referable DR (grade >= 2) from the predicted grades: sensitivity 0.000 misses 100%")
        for w in result["warnings"]
    )


def test_scores_that_rank_diseased_eyes_lower_are_warned_of_and_accuracy_far_below_a_constant_is_not_within_it():
    """Probe 48 CL4: a referable AUC of 0.185 (CI wholly below 0.5) raised no warning; CL3: an
    accuracy 0.43 below a constant answer's was said to be "within 0.05" of it."""
    grade = [0] * 30 + [3] * 30  # the scores backwards: diseased eyes low, healthy high
    score = list(np.linspace(0.5, 0.9, 30)) + list(np.linspace(0.1, 0.6, 30))
    result = evaluate_table(_table(grade, score_ref=score), {"referable": 0.5}, n_boot=50)
    assert result["referable"]["auc"] < 0.1 and result["referable"]["ci"]["auc"][1] < 0.5
    assert any(w.startswith("Referable DR (grade >= 2): AUC 0.0") and "below 0.5: the score ranks diseased eyes below "
               "healthy ones" in w for w in result["warnings"])
    accuracy = [w for w in result["warnings"] if "a constant answer gets" in w]
    assert accuracy and all("is below the 0.500 a constant answer gets" in w for w in accuracy)
    right = evaluate_table(_table(grade, score_ref=score[30:] + score[:30]), {"referable": 0.5}, n_boot=50)
    assert not any("below 0.5" in w for w in right["warnings"])

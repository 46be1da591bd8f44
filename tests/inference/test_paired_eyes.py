"""The paired-eye stage and the cut-points tied to the screening thresholds."""

import numpy as np
import pandas as pd
import pytest

from drgrader.config import EvalConfig
from drgrader.evaluation.metrics import quadratic_weighted_kappa
from drgrader.evaluation.thresholds import apply_cutpoints, fit_thresholds, fit_upper_cutpoints
from drgrader.grading import decide
from drgrader.inference.paired_eyes import (
    PairedEyeModel,
    cross_fit_paired_eyes,
    decide_paired,
    decisions_with_stage,
    fellow_index,
    fit_paired_eyes,
)
from drgrader.inference.patient_decision import decide_patients, decision_points

GRADE_MIX = [0.55, 0.1, 0.2, 0.08, 0.07]


def regression_table(n_patients: int, seed: int, noise: float = 0.9) -> pd.DataFrame:
    """Synthetic first-stage predictions of patients whose two eyes share one grade: each eye's
    score is that grade plus its own noise, so the fellow eye carries evidence about this one."""
    rng = np.random.default_rng(seed)
    grade = rng.choice(5, size=n_patients, p=GRADE_MIX)
    rows = []
    for p, g in enumerate(grade):
        for eye in ("left", "right"):
            rows.append({"image_id": f"{p}_{eye}", "patient_id": str(p), "eye": eye, "grade": g})
    table = pd.DataFrame(rows)
    score = table["grade"].to_numpy(float) + rng.normal(0, noise, len(table))
    return pd.concat([table, decide(np.column_stack([np.full((len(table), 5), np.nan), score, score, score]), None)], axis=1)


def test_fellow_index_pairs_two_eyes_of_a_patient_only():
    table = pd.DataFrame({
        "patient_id": ["a", "a", "b", "c", "c", "c", "d", "d"],
        "eye": ["left", "right", "left", "left", "right", "right", "left", "right"],
        "expected_grade": [1.0, 2.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0],
        "gradable": [True, True, True, True, True, True, True, False],
    })
    # b has one eye, c three photos, d's right eye is ungradable: none of them is paired.
    assert fellow_index(table).tolist() == [1, 0, -1, -1, -1, -1, -1, -1]


def test_an_eye_of_unknown_side_is_never_a_fellow_eye():
    """Two photos of one patient without their sides are as often two fields of one eye (a list
    without an eye column, a multi-frame DICOM without laterality): paired, a referable eye was
    pulled towards its companion and the patient called negative (probe 23, finding 1)."""
    table = pd.DataFrame({
        "patient_id": ["a", "a", "b", "b", "c", "c", "d", "d"],
        "eye": ["", "", "left", "", "", None, "OS", "od"],
        "expected_grade": [2.0, 0.2, 1.0, 1.0, 1.0, 1.0, 0.0, 3.0],
    })
    # Only d, a known left beside a known right (in any spelling of EYE_WORDS), is paired.
    assert fellow_index(table).tolist() == [-1, -1, -1, -1, -1, -1, 7, 6]
    model = fit_paired_eyes(regression_table(300, seed=1))
    stage = {"model": model.to_dict(), "thresholds": {"cutpoints": [0.5, 1.5, 2.5, 3.5], "any_dr": 0.5, "referable": 1.5}}
    scored = table.assign(score_any=table["expected_grade"], score_referable=table["expected_grade"])
    decided = decide_paired(scored, stage)
    assert decided["paired"].tolist() == [False] * 6 + [True, True]
    assert decided["expected_grade"][0] == pytest.approx(
        model.single_intercept + model.single_coef[0] * 2.0)  # the single-eye fallback, as its note says


def test_fused_grade_beats_single_eye_when_eyes_share_disease():
    table = regression_table(600, seed=0)
    fused, own, paired = cross_fit_paired_eyes(table)
    assert paired.all() and not np.isnan(fused).any() and not np.isnan(own).any()
    truth = table["grade"].to_numpy()
    single_kappa = quadratic_weighted_kappa(truth, np.clip(np.rint(table["expected_grade"]), 0, 4))
    fused_kappa = quadratic_weighted_kappa(truth, np.clip(np.rint(fused), 0, 4))
    assert fused_kappa > single_kappa + 0.03
    # The stage learned to lean on the fellow eye: its weight is a large share of the own eye's.
    model = fit_paired_eyes(table)
    own, fellow = model.coef[0], model.coef[1]
    assert fellow > 0.5 * own > 0


def test_one_eyed_patient_falls_back_to_the_single_eye_model():
    model = fit_paired_eyes(regression_table(300, seed=1))
    lone = pd.DataFrame({"patient_id": ["x"], "eye": ["left"], "grade": [3], "expected_grade": [3.1],
                         "score_any": [3.1], "score_referable": [3.1]})
    fused, fellow = model.predict(lone)
    assert fellow.tolist() == [-1]
    assert fused[0] == pytest.approx(model.single_intercept + model.single_coef[0] * 3.1)
    stage = {"model": model.to_dict(), "thresholds": {"cutpoints": [0.5, 1.5, 2.5, 3.5], "any_dr": 0.5, "referable": 1.5}}
    decided = decide_paired(lone, stage)
    assert decided["paired"].tolist() == [False]
    # Decided on the single-eye model's grade (shrunk towards the mean, as a fitted regression is).
    assert decided["pred_grade"].tolist() == [float(apply_cutpoints(fused, [0.5, 1.5, 2.5, 3.5])[0])]
    assert decided["referable_pred"].tolist() == [float(fused[0] >= 1.5)]


def test_a_clean_fellow_eye_never_talks_a_severe_eye_out_of_it():
    # The stage as the shipped grader fitted it on EyePACS: an eye unlike its fellow is pulled
    # towards it (negative weight on their difference), so unguarded, a severe eye beside a
    # clean one fuses to 0.05 + (0.58 - 0.33) * 3.13 = 0.83, a moderate grade.
    model = PairedEyeModel(["expected_grade"], [0.58, 0.53, -0.33, 0.0], 0.05, [0.91], 0.04)
    table = pd.DataFrame({"image_id": ["p_right", "p_left"], "patient_id": ["p", "p"], "eye": ["right", "left"],
                          "expected_grade": [0.0, 3.13], "score_any": [0.0, 3.13], "score_referable": [0.0, 3.13]})
    stage = {"model": model.to_dict(), "thresholds": {"cutpoints": [0.8, 0.8, 1.75, 3.3], "any_dr": 0.8, "referable": 0.8}}
    assert model.predict(table)[0].tolist() == pytest.approx([0.05 + 0.20 * 3.13, 0.05 + 0.25 * 3.13])
    decided = decide_paired(table, stage)
    # Its own grade alone (0.04 + 0.91 * 3.13 = 2.89) reaches grade 3's cut-point: it stays there.
    # The clean eye's own grade (0.04) does not: its fused grade, raised by its fellow, stands.
    assert decided["expected_grade"].tolist() == pytest.approx([0.05 + 0.20 * 3.13, 0.04 + 0.91 * 3.13])
    assert decided["pred_grade"].tolist() == [0, 3] and decided["paired"].all()
    assert decisions_with_stage(table, stage)["fused_grade"].tolist() == decided["expected_grade"].tolist()
    patient = decide_patients(decided, decision_points(stage["thresholds"], None, table=decided)).iloc[0]
    assert patient["decision"] == "urgent"
    assert patient["reason"].startswith("left eye vision-threatening: expected grade 2.89 >= 1.75")


def test_paired_eye_model_round_trips_and_rejects_malformed():
    model = fit_paired_eyes(regression_table(100, seed=2))
    assert PairedEyeModel.from_dict(model.to_dict()) == model
    with pytest.raises(ValueError, match="malformed"):
        PairedEyeModel.from_dict({**model.to_dict(), "coef": [1.0]})
    with pytest.raises(ValueError, match="malformed"):
        PairedEyeModel.from_dict({"inputs": ["expected_grade"]})


def test_tied_cutpoints_make_grade_and_referral_one_decision():
    table = regression_table(400, seed=3, noise=0.7)
    thresholds = fit_thresholds(table, EvalConfig(threshold_objective="youden"), "grade")
    cuts = thresholds["cutpoints"]
    assert cuts[0] == thresholds["any_dr"] and cuts[1] == thresholds["referable"]
    assert cuts == sorted(cuts)
    decided = decide(table[["p0", "p1", "p2", "p3", "p4", "expected_grade", "score_any", "score_referable"]].to_numpy(), thresholds)
    np.testing.assert_array_equal(decided["pred_grade"] >= 2, decided["referable_pred"] == 1)
    np.testing.assert_array_equal(decided["pred_grade"] >= 1, decided["any_dr_pred"] == 1)
    # Free cut-points stay available.
    free = fit_thresholds(table, EvalConfig(consistent_cutpoints=False), "grade")["cutpoints"]
    assert free[1] != thresholds["referable"]


def test_upper_cutpoints_keep_every_well_supported_grade_reachable():
    # Grade 4 scores overlap grade 3's, so the kappa-best cut for grade 4 sits above every score;
    # 12 grade-4 eyes must still get at least one grade-4 prediction.
    rng = np.random.default_rng(4)
    grade = np.repeat([0, 1, 2, 3, 4], [200, 30, 60, 40, 12])
    score = np.where(grade == 4, 3.0, grade) + rng.normal(0, 0.4, grade.size)
    cuts = fit_upper_cutpoints(grade, score, (0.5, 1.5))
    pred = apply_cutpoints(score, cuts)
    for g in range(5):
        assert (pred[grade == g] == g).any(), f"grade {g} is never predicted"
    assert quadratic_weighted_kappa(grade, pred) > 0.8

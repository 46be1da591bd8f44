"""The per-patient decision fitted and measured: the urgent threshold, the band sending the share
of patients asked for, the referral curve against hand-computed figures, the outcome table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from drgrader.evaluation.patient_decisions import (
    CURVE_SHARES,
    fit_patient_decision,
    patient_decision_section,
    patient_outcomes,
    referral_point,
)
from drgrader.inference.bundle_spec import PatientDecisionSpec
from drgrader.inference.patient_decision import decision_points

GRADE_MIX = [0.5, 0.15, 0.2, 0.08, 0.07]


def screening_table(n_patients: int, seed: int) -> pd.DataFrame:
    """Two eyes per patient sharing one grade; a referable probability and an expected grade
    that follow the grade with noise; 3% of photos ungradable."""
    rng = np.random.default_rng(seed)
    grade = np.repeat(rng.choice(5, size=n_patients, p=GRADE_MIX), 2)
    expected = np.clip(grade + rng.normal(0, 0.7, grade.size), 0, 4)
    referable = 1 / (1 + np.exp(-(expected - 1.5) * 2.5))
    nan = np.full(grade.size, np.nan)
    return pd.DataFrame({
        "image_id": [f"{p}_{e}" for p in range(n_patients) for e in ("left", "right")],
        "patient_id": np.repeat([str(p) for p in range(n_patients)], 2),
        "eye": ["left", "right"] * n_patients,
        "grade": grade,
        "gradable": rng.random(grade.size) > 0.03,
        "p0": nan, "p1": nan, "p2": nan, "p3": nan, "p4": nan,
        "expected_grade": expected, "score_any": referable, "score_referable": referable,
    })


def test_the_band_sends_the_share_asked_for():
    fit_on, other = screening_table(500, seed=1), screening_table(500, seed=2)
    thresholds = {"referable": 0.5}
    spec = fit_patient_decision(fit_on, thresholds, refer_share=0.1, urgent_sensitivity=0.9, fitted_on="validation split")
    PatientDecisionSpec.model_validate(spec)  # what bundle.json accepts
    json.dumps(spec, allow_nan=False)
    for table, tolerance in ((fit_on, 0.005), (other, 0.04)):
        decided = patient_outcomes(table, decision_points(thresholds, spec, table=table))
        assert (decided["decision"] == "uncertain").mean() == pytest.approx(0.1, abs=tolerance)
    # Another share, read off the stored band, on the same patients.
    points = decision_points(thresholds, spec, table=fit_on, refer_share=0.25)
    assert (patient_outcomes(fit_on, points)["decision"] == "uncertain").mean() == pytest.approx(0.25, abs=0.005)
    # 90% of grade 3-4 eyes would need a threshold below the grade-3 cut-point (2.5 here) with this
    # noisy a grader: urgent is held there, so it never contradicts the predicted grade, and says so.
    gradable = fit_on[fit_on["gradable"]]
    severe = gradable["grade"] >= 3
    assert spec["urgent_threshold"] == 2.5 and "held at the grade-3 cut-point 2.50" in spec["urgent_rule"]
    assert (gradable.loc[severe, "expected_grade"] >= 2.5).mean() < 0.9


def test_the_urgent_threshold_keeps_its_promise_when_the_grader_can():
    table = screening_table(500, seed=1)
    table["expected_grade"] = table["grade"] + np.random.default_rng(0).normal(0, 0.15, len(table))
    spec = fit_patient_decision(table, {"referable": 0.5}, refer_share=0.1, urgent_sensitivity=0.9, fitted_on="validation split")
    gradable = table[table["gradable"]]
    severe = gradable["grade"] >= 3
    assert spec["urgent_threshold"] > 2.5
    assert (gradable.loc[severe, "expected_grade"] >= spec["urgent_threshold"]).mean() >= 0.9
    assert spec["urgent_rule"].endswith("on the validation split (target 90%)")


def test_no_share_no_cutoff_and_an_unfittable_urgent_threshold_falls_back():
    table = screening_table(60, seed=3)
    table["grade"] = np.minimum(table["grade"], 2)  # no grade 3-4 eye to fit on
    spec = fit_patient_decision(table, {"referable": 0.5, "cutpoints": [0.5, 1.5, 2.6, 3.5]}, refer_share=0.0,
                                urgent_sensitivity=0.9, fitted_on="validation split")
    assert spec["uncertainty_cutoff"] is None and spec["urgent_threshold"] == 2.6
    assert spec["urgent_rule"].startswith("the grade-3 cut-point: the validation split had 0 gradable grade 3-4 eyes")
    PatientDecisionSpec.model_validate(spec)


def one_eyed(scores: list[float], grades: list[int]) -> pd.DataFrame:
    """Patients with one photo each, a referable probability and no grade score (no urgent)."""
    n = len(scores)
    nan = [np.nan] * n
    return pd.DataFrame({"patient_id": [f"p{i + 1}" for i in range(n)], "eye": "right", "image_id": [f"p{i + 1}" for i in range(n)],
                         "grade": grades, "p0": nan, "p1": nan, "p2": nan, "p3": nan, "p4": nan, "expected_grade": nan,
                         "score_any": scores, "score_referable": scores})


# p1 TP (uncertainty 0.2), p2 TP (0.88), p3 FN (0.9), p4 TN (0.2), p5 FP (0.8), p6 TN (0.96)
SCORES, GRADES = [0.9, 0.56, 0.45, 0.1, 0.6, 0.48], [3, 2, 2, 0, 1, 0]


def test_referral_curve_against_hand_computed_figures():
    table = one_eyed(SCORES, GRADES)
    points = decision_points({"referable": 0.5}, None, table=table)
    d = patient_outcomes(table, points)
    assert d["uncertainty"].to_numpy() == pytest.approx([0.2, 0.88, 0.9, 0.2, 0.8, 0.96])
    nobody = referral_point(d, 0.0)
    assert (nobody["sent"], nobody["sensitivity"], nobody["specificity"]) == (0, pytest.approx(2 / 3), pytest.approx(2 / 3))
    one = referral_point(d, 1 / 6)  # p6, a true negative, goes to a human
    assert (one["sent"], one["sensitivity"], one["specificity"]) == (1, pytest.approx(2 / 3), pytest.approx(1 / 2))
    two = referral_point(d, 2 / 6)  # then p3, the missed one
    assert (two["sent"], two["sensitivity"], two["specificity"]) == (2, pytest.approx(1.0), pytest.approx(1 / 2))

    section = patient_decision_section(table, points, n_boot=50, seed=0)
    curve = {p["share"]: p for p in section["referral_curve"]}
    assert list(curve) == CURVE_SHARES and curve[0.0]["sensitivity"] == pytest.approx(2 / 3)
    assert curve[0.15]["sent"] == 1 and curve[0.15]["specificity"] == pytest.approx(1 / 2)  # round(0.9) = 1 patient
    lo, hi = curve[0.0]["sensitivity_ci"]
    assert 0 <= lo <= 2 / 3 <= hi <= 1
    assert section["at_cutoff"] is None  # no band in these points
    json.dumps(section, allow_nan=False)


def test_outcome_table_counts_each_outcome_by_true_grade():
    table = pd.concat([one_eyed(SCORES + [0.2, 0.99], GRADES + [4, 4]),
                       one_eyed([0.3], [3]).assign(patient_id="p9", image_id="p9", gradable=False)], ignore_index=True)
    points = decision_points({"referable": 0.5}, {"uncertainty_cutoff": 0.95, "refer_share": 0.1}, table=table)
    section = patient_decision_section(table, points, n_boot=0)
    by_grade = section["by_grade"]
    assert by_grade["0"] == {"negative": 1, "refer": 0, "urgent": 0, "uncertain": 1, "ungradable": 0}  # p4; p6 (0.96)
    assert by_grade["2"] == {"negative": 1, "refer": 1, "urgent": 0, "uncertain": 0, "ungradable": 0}
    assert by_grade["3"] == {"negative": 0, "refer": 1, "urgent": 0, "uncertain": 0, "ungradable": 1}  # p1; p9
    assert by_grade["4"] == {"negative": 1, "refer": 1, "urgent": 0, "uncertain": 0, "ungradable": 0}
    assert section["outcomes"]["ungradable"] == 1 and section["n_patients"] == 9
    assert (section["severe_patients"], section["severe_called_negative"]) == (4, 1)
    assert section["warnings"] == ["1 of 4 patients with severe or proliferative DR (grade 3-4, worse eye) were called "
                                   "negative by the per-patient decision"]
    band = section["at_cutoff"]  # p6 to a human; p9 ungradable counts in neither figure
    assert (band["sent"], band["sensitivity"], band["specificity"]) == (1, pytest.approx(3 / 5), pytest.approx(1 / 2))
    assert band["sensitivity_ci"] is None  # no bootstrap


def test_report_section_puts_severe_patients_called_negative_first(tmp_path):
    from drgrader.reporting.run_data import RunData
    from drgrader.reporting.sections_decisions import decisions_section

    table = one_eyed(SCORES + [0.2], GRADES + [4])
    points = decision_points({"referable": 0.5}, {"uncertainty_cutoff": 0.95, "refer_share": 0.1}, table=table)
    metrics = {"test": {"patient_decision": patient_decision_section(table, points, n_boot=20)},
               "patient_decision": {"fitted_on": "validation split", "urgent_rule": "the grade-3 cut-point"}}
    figures: dict[str, bytes] = {}
    section = decisions_section(RunData(tmp_path, metrics, None, None, None, None), figures)
    alert = next(b for b in section.blocks if type(b).__name__ == "Alert")
    assert alert.level == "warning" and alert.title.startswith("1 of 2 patients with severe or proliferative DR")
    outcome_table = section.blocks[-1]
    assert outcome_table.rows[4][1] == ("1 ✗", "bad")  # grade 4, negative
    assert figures["referral_curve.png"].startswith(b"\x89PNG")
    assert decisions_section(RunData(tmp_path, {"test": {}}, None, None, None, None), {}) is None

def test_cv_fits_the_decision_on_the_paired_eyes(tmp_path):
    """pool_folds on made-up out-of-fold predictions (regression scores): the decision is fitted
    and measured on the fused grades the ensemble bundle will decide with."""
    from drgrader.config import ExperimentConfig
    from drgrader.workflows.cv import pool_folds

    table = screening_table(120, seed=5)
    table["score_any"] = table["score_referable"] = table["expected_grade"]  # a regression model's scores
    for fold in range(3):
        (tmp_path / f"fold-{fold}").mkdir()
        table[table["patient_id"].astype(int) % 3 == fold].to_csv(tmp_path / f"fold-{fold}" / "predictions_val.csv", index=False)
    cfg = ExperimentConfig.model_validate({"eval": {"bootstrap": 20, "refer_share": 0.15}})
    pooled = pool_folds(cfg, tmp_path, 3)
    spec = pooled["patient_decision"]
    PatientDecisionSpec.model_validate(spec)
    assert spec["refer_share"] == 0.15 and spec["fitted_on"] == "out-of-fold predictions"
    section = pooled["paired_eyes"]["patient_decision"]
    assert section["rules"]["referable_threshold"] == pooled["paired_stage"]["thresholds"]["referable"]
    assert section["at_cutoff"]["sent_share"] == pytest.approx(0.15, abs=0.01)
    assert "patient_decision" not in pooled["single_eye"]

def test_train_fits_stores_measures_and_reports_the_decision(synth_dir, tmp_path):
    """End to end on the tiny fixtures: the band fitted on validation lands in bundle.json, the
    test patients' decisions in metrics.json, and the report has the section and its figure."""
    from conftest import tiny_config

    from drgrader.inference.bundle_spec import read_manifest
    from drgrader.workflows.train import train

    run = train(tiny_config(synth_dir, **{"train.epochs": 1, "eval.refer_share": 0.2}), out=tmp_path / "run", progress=False)
    spec = read_manifest(run / "bundle")["patient_decision"]
    assert spec["refer_share"] == 0.2 and spec["fitted_on"] == "validation split" and len(spec["band"]) == 50
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["patient_decision"] == spec
    section = metrics["test"]["patient_decision"]
    assert section["n_patients"] == metrics["test"]["n_patients"] == sum(section["outcomes"].values())
    assert [p["share"] for p in section["referral_curve"]] == CURVE_SHARES
    assert section["rules"]["uncertainty_cutoff"] == spec["uncertainty_cutoff"]
    report = (run / "report.md").read_text()
    assert "## Per-patient decisions" in report and "could not be rendered" not in report
    assert (run / "figures" / "referral_curve.png").is_file()

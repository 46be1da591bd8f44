"""The per-patient decision: each outcome and its reason from hand-built score tables, the
uncertainty, the band read from a bundle, and predict's per-patient file."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pandas as pd
import pytest

from drgrader.config import ConfigError
from drgrader.data.quality import COMPRESSED_COPY
from drgrader.inference.bundle_spec import BundleError, update_manifest
from drgrader.inference.patient_decision import (
    band_cutoff,
    bundle_decision_points,
    decide_patients,
    decision_points,
    eye_uncertainty,
)
from drgrader.synth import make_fundus
from drgrader.workflows.predict import predict_command

SPEC = {"urgent_threshold": 3.0, "refer_share": 0.1, "uncertainty_cutoff": 0.9, "band": [[0.1, 0.9], [0.2, 0.7]]}


def photo(patient: str, eye: str, referable: float, grade: float = 1.0, **extra) -> dict:
    """One photo's row with a referable probability and an expected grade."""
    probs = dict.fromkeys(["p0", "p1", "p2", "p3", "p4"], np.nan)
    return {"patient_id": patient, "eye": eye, "image_id": f"{patient}_{eye}", "gradable": True, "error": "",
            "quality_reason": "", **probs, "expected_grade": grade, "score_any": referable, "score_referable": referable, **extra}


def decide(rows: list[dict], spec: dict | None = SPEC, thresholds: dict | None = None) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    points = decision_points(thresholds or {"referable": 0.4}, spec, table=table)
    return decide_patients(table, points).set_index("patient_id")


def test_each_outcome_with_its_reason():
    decided = decide([
        photo("neg", "right", 0.10, 0.2), photo("neg", "left", 0.20, 0.5),
        photo("ref", "right", 0.80, 2.0), photo("ref", "left", 0.10),
        photo("urg", "right", 0.95, 3.4), photo("urg", "left", 0.10),
        photo("none", "left", 0.5, gradable=False, quality_reason="blurred"),
        photo("none", "right", np.nan, np.nan, error="corrupt or truncated image data"),
        photo("half", "left", 0.5, gradable=False, quality_reason="blurred"), photo("half", "right", 0.10),
        photo("close", "right", 0.42), photo("close", "left", 0.10),
        photo("", "", 0.3),  # no patient id: no patient row
    ])
    assert decided["decision"].to_dict() == {
        "close": "uncertain", "half": "ungradable", "neg": "negative", "none": "ungradable", "ref": "refer", "urg": "urgent"}
    reasons = decided["reason"]
    assert reasons["neg"] == "no referable eye: left eye 0.20, right eye 0.10 < 0.40 (referable score); rescreen in 12 months"
    assert reasons["ref"] == "right eye referable score 0.80 >= 0.40: refer"
    assert reasons["urg"] == "right eye vision-threatening: expected grade 3.40 >= 3.00; refer urgently"
    assert reasons["none"] == ("no gradable photo (left eye ungradable, blurred; right eye unreadable, corrupt or truncated "
                               "image data): photograph again")
    assert reasons["half"] == "left eye ungradable, blurred; right eye 0.10 < 0.40 (referable score): photograph again"
    assert reasons["close"] == ("right eye referable score 0.42 is close to its threshold 0.40 (uncertainty 0.97 >= 0.90): "
                                "a human grader decides")
    assert np.isnan(decided.loc["none", "uncertainty"])
    assert decided.loc["urg", "deciding_image"] == "urg_right"


def test_a_photo_that_is_not_there_is_looked_for_not_retaken():
    # A typo in a CSV's path is not a reason to call the patient back to the camera.
    decided = decide([photo("typo", "right", np.nan, np.nan, error="file not found"), photo("typo", "left", 0.10),
                      photo("gone", "right", np.nan, np.nan, error="file not found"),
                      photo("gone", "left", 0.5, gradable=False, quality_reason="blurred")])
    assert decided["decision"].to_dict() == {"gone": "ungradable", "typo": "ungradable"}
    assert decided.loc["typo", "reason"] == ("right eye unreadable, file not found; left eye 0.10 < 0.40 (referable score): "
                                             "find the missing photo (file not found)")
    assert decided.loc["gone", "reason"].endswith("): find the missing photo (file not found) or photograph again")


def test_a_compressed_copy_is_replaced_by_its_original_not_retaken():
    # Before: a photo flagged "compressed copy: ... grade the original photo" made its patient
    # "ungradable ...: photograph again" (a recall for a photo that exists).
    copy = f"{COMPRESSED_COPY}: a JPEG of quality ~40 with the fundus 317 px across: ...; grade the original photo"
    decided = decide([photo("c", "right", 0.5, gradable=False, quality_reason=copy),
                      photo("c", "left", 0.5, gradable=False, quality_reason=copy),
                      photo("m", "right", 0.5, gradable=False, quality_reason=copy),
                      photo("m", "left", 0.5, gradable=False, quality_reason="blurred")])
    assert decided.loc["c", "reason"].endswith("): ask for the original photo (compressed copy)")
    assert decided.loc["m", "reason"].endswith("): ask for the original photo (compressed copy) or photograph again")

def test_worst_gradable_eye_decides_and_an_ungradable_fellow_does_not_stop_a_referral():
    decided = decide([photo("a", "left", 0.5, gradable=False, quality_reason="too dark"), photo("a", "right", 0.9),
                      photo("b", "left", 0.9, 3.5, gradable=False), photo("b", "right", 0.1)])
    assert decided.loc["a", "decision"] == "refer"
    assert decided.loc["a", "reason"] == "right eye referable score 0.90 >= 0.40: refer; left eye ungradable, too dark"
    # b's only high scores are on an ungradable photo: they are not trusted, the eye is photographed again.
    assert decided.loc["b", "decision"] == "ungradable"


def test_an_urgent_or_uncertain_patient_names_the_eye_that_was_not_seen():
    """Probe 57 BU2: only `refer` named an unreadable fellow eye; `urgent` and `uncertain` left it out,
    so whoever takes the patient does not learn that the other eye needs a photo too."""
    decided = decide([photo("u", "right", 0.95, 3.4), photo("u", "left", np.nan, np.nan, error="file not found"),
                      photo("c", "right", 0.42), photo("c", "left", 0.5, gradable=False, quality_reason="blurred")])
    assert decided.loc["u", "reason"] == ("right eye vision-threatening: expected grade 3.40 >= 3.00; refer urgently; "
                                          "left eye unreadable, file not found")
    assert decided.loc["c", "reason"] == ("right eye referable score 0.42 is close to its threshold 0.40 (uncertainty 0.97 "
                                          ">= 0.90): a human grader decides; left eye ungradable, blurred")


def test_one_photo_still_gets_a_decision():
    decided = decide([photo("solo", "right", 0.05)])
    assert decided.loc["solo", "decision"] == "negative"
    assert decided.loc["solo", "reason"] == ("no referable eye: right eye 0.05 < 0.40 (referable score), the only photo; "
                                             "rescreen in 12 months")
    unknown_eye = decide([photo("x", "", 0.7)])
    assert unknown_eye.loc["x", "reason"] == "photo x_ referable score 0.70 >= 0.40: refer"


def test_an_any_dr_screener_decides_its_patients_on_its_any_dr_score():
    """Probe 34 AX8: a model.task=any_dr bundle has no referable score; every patient was
    'ungradable ... photograph again' beside photos all gradable."""
    rows = [photo("a", "right", 0.9), photo("a", "left", 0.1), photo("b", "right", 0.2), photo("b", "left", 0.3)]
    for row in rows:
        row.update(score_referable=np.nan, expected_grade=np.nan)
    table = pd.DataFrame(rows)
    decided = decide_patients(table, decision_points({"any_dr": 0.6}, None, table=table)).set_index("patient_id")
    assert decided["decision"].to_dict() == {"a": "refer", "b": "negative"}
    assert decided.loc["a", "reason"] == "right eye any-DR score 0.90 >= 0.60: refer"
    assert decided.loc["b", "reason"].startswith("no referable eye: left eye 0.30, right eye 0.20 < 0.60 (any-DR score)")


def test_a_negative_on_one_eye_says_the_other_eye_has_no_photo():
    """Probe 35 AY11: two photos of the left eye and none of the right: 'negative ... rescreen', the
    reason silent on the eye never photographed (one photo alone says 'the only photo')."""
    decided = decide([photo("p", "left", 0.1), photo("p", "left", 0.2, image_id="p_left_2")])
    assert decided.loc["p", "decision"] == "negative"
    assert decided.loc["p", "reason"] == ("no referable eye: left eye 0.20 < 0.40 (referable score), no photo of the "
                                          "right eye; rescreen in 12 months")


def test_uncertainty_is_the_closeness_to_the_threshold_on_the_scores_scale():
    table = pd.DataFrame([photo("p", "right", s) for s in (0.4, 0.1, 0.0, 0.7, 1.0)] + [photo("q", "left", 0.5, gradable=False)])
    points = decision_points({"referable": 0.4}, None, table=table)
    assert points.scale == (0.0, 1.0)
    assert eye_uncertainty(table, points)[:5] == pytest.approx([1.0, 0.25, 0.0, 0.5, 0.0])
    assert np.isnan(eye_uncertainty(table, points)[5])
    # A regression model's scores are the grade: the scale is 0..4, the fallback threshold grade 2.
    grade = pd.DataFrame([photo("r", "right", 2.5, 2.5), photo("r", "left", 0.75, 0.75)])
    points = decision_points({}, None, table=grade)
    assert points.scale == (0.0, 4.0) and points.referable_threshold == 1.5
    assert eye_uncertainty(grade, points) == pytest.approx([1 - 1.0 / 2.5, 0.5])
    # Probe 47 CK1: a threshold fitted below the scale (-1.016) made every eye under it certain (0), one 0.002 away too.
    low = pd.DataFrame([photo("s", "right", -1.018, -1.018), photo("s", "left", -0.9, -0.9)])
    points = decision_points({"referable": -1.016, "cutpoints": [-1.5, -1.016, 2.5, 3.5]}, None, table=low)
    assert eye_uncertainty(low, points)[0] == pytest.approx(1 - 0.002 / 0.5)
    # Probe 48 CL1: just inside the scale (0.01) alike, no jump: an eye 0.02 under it is as uncertain as under 0.
    for t in (0.0, 0.01, 3.995):
        near = pd.DataFrame([photo("n", "right", t - 0.02, t - 0.02), photo("n", "left", t + 0.02, t + 0.02)])
        points = decision_points({"referable": t}, None, table=near)
        assert points.scale == (0.0, 4.0)
        assert eye_uncertainty(near, points) == pytest.approx([1 - 0.02 / max(t, 0.5), 1 - 0.02 / max(4 - t, 0.5)])


def test_patient_uncertainty_is_that_of_the_eyes_the_decision_stands_on():
    decided = decide([photo("neg", "right", 0.38), photo("neg", "left", 0.0),
                      photo("ref", "right", 0.41), photo("ref", "left", 1.0)], spec=None)
    # A negative needs both eyes: the closer one counts; a referral needs one: the surer one counts.
    assert decided.loc["neg", "uncertainty"] == pytest.approx(0.95)
    assert decided.loc["ref", "uncertainty"] == pytest.approx(0.0)
    assert decided.loc["ref", "decision"] == "refer"


def test_urgent_is_never_sent_to_the_human_queue():
    decided = decide([photo("u", "right", 0.41, 3.2)])
    assert decided.loc["u", "decision"] == "urgent"


def test_a_bundle_without_a_band_has_no_uncertain_outcome_and_urgent_at_the_grade_3_cutpoint():
    rows = [photo("close", "right", 0.401), photo("sev", "right", 0.9, 2.8)]
    decided = decide(rows, spec=None, thresholds={"referable": 0.4, "cutpoints": [0.5, 1.5, 2.7, 3.5]})
    assert decided["decision"].to_dict() == {"close": "refer", "sev": "urgent"}
    assert decide(rows, spec=None)["decision"].to_dict() == {"close": "refer", "sev": "urgent"}  # default 2.5
    table = pd.DataFrame(rows)
    with pytest.raises(ValueError, match="no fitted uncertainty band"):
        decision_points({"referable": 0.4}, None, table=table, refer_share=0.1)
    assert decision_points({"referable": 0.4}, None, table=table, refer_share=0).uncertainty_cutoff is None
    # A screening-only model has no grade score: no urgent outcome.
    binary = table.assign(expected_grade=np.nan)
    assert decision_points({"referable": 0.4}, None, table=binary).urgent_threshold is None


def test_another_refer_share_reads_its_cutoff_off_the_stored_band():
    band = SPEC["band"]
    assert band_cutoff(band, 0.1) == pytest.approx(0.9)
    assert band_cutoff(band, 0.15) == pytest.approx(0.8)
    assert band_cutoff(band, 0.05) == pytest.approx(0.95)  # halfway from "nobody" (1.0)
    assert band_cutoff(band, 0) is None
    with pytest.raises(ValueError, match="beyond the fitted band"):
        band_cutoff(band, 0.3)


def test_paired_eye_bundles_decide_on_the_fused_grade():
    table = pd.DataFrame([photo("p", "right", 0.9, 1.0, fused_grade=1.7), photo("p", "left", 0.1, 0.2, fused_grade=1.2)])
    manifest = {"thresholds": {"referable": 0.5}, "paired_eyes": {"model": {}, "thresholds": {"referable": 1.6}}}
    points = bundle_decision_points(manifest, table)
    assert (points.referable_score, points.referable_threshold, points.scale) == ("fused_grade", 1.6, (0.0, 4.0))
    assert points.urgent_score == "fused_grade" and points.urgent_threshold == 2.5
    assert decide_patients(table, points).loc[0, "reason"] == "right eye fused grade 1.70 >= 1.60: refer"


def test_bundle_json_validates_the_patient_decision(tiny_bundle, tmp_path):
    bundle = shutil.copytree(tiny_bundle, tmp_path / "b")
    update_manifest(bundle, patient_decision=SPEC)
    for bad in ({**SPEC, "refer_share": 0.7}, {**SPEC, "uncertainty_cutoff": None},
                {**SPEC, "band": [[0.1, 0.5], [0.2, 0.9]]}, {**SPEC, "urgent_threshold": float("nan")}):
        with pytest.raises(BundleError, match="patient_decision"):
            update_manifest(bundle, patient_decision=bad)


@pytest.fixture
def clinic(tmp_path):
    """Photos of a two-eyed patient, a one-photo patient, a patient with an unreadable photo, a
    patient with nothing readable, and a photo without a patient."""
    folder = tmp_path / "clinic"
    folder.mkdir()
    for seed, (name, grade) in enumerate([("P1_L", 0), ("P1_R", 3), ("P2_R", 1), ("P3_R", 2), ("lone", 0)]):
        rgb = make_fundus(grade, np.random.default_rng(seed), height=128)
        assert cv2.imwrite(str(folder / f"{name}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    (folder / "P3_L.jpg").write_bytes((folder / "P3_R.jpg").read_bytes()[:300])
    (folder / "P4_L.jpg").write_bytes(b"")
    return folder


def test_predict_writes_decision_reason_and_uncertainty(tiny_bundle, clinic, tmp_path):
    bundle = shutil.copytree(tiny_bundle, tmp_path / "bundle")
    update_manifest(bundle, patient_decision={**SPEC, "urgent_threshold": 4.0, "band": [[0.1, 0.9], [0.5, 0.0]]})
    out = predict_command(bundle, [clinic], out=tmp_path / "p.csv")
    photos = pd.read_csv(out, dtype={"patient_id": str}).set_index("image_id")
    read = photos["error"].isna()
    assert photos.loc[read, "uncertainty"].between(0, 1).all() and photos.loc[~read, "uncertainty"].isna().all()
    patients = pd.read_csv(tmp_path / "p_patients.csv", dtype={"patient_id": str}).set_index("patient_id")
    assert list(patients.columns[:3]) == ["decision", "reason", "uncertainty"]
    assert sorted(patients.index) == ["P1", "P2", "P3", "P4", "lone"]  # P4: no readable photo, still a row; lone: its own
    # The tiny bundle's referable threshold is 0.5; the band's cut-off 0.9.
    for patient in ("P1", "P2", "P3"):
        worst = photos.loc[read & (photos["patient_id"] == patient), "score_referable"].max()
        expected = "refer" if worst >= 0.5 else ("ungradable" if patient == "P3" else "negative")
        assert patients.loc[patient, "decision"] == expected
    assert "left eye unreadable" in patients.loc["P3", "reason"]
    assert patients.loc["P4", "decision"] == "ungradable" and patients.loc["P4", "images"] == 1  # its one photo, unreadable, counted
    assert patients.loc["P4", "reason"].startswith("no gradable photo (left eye unreadable, empty file")

    # At 50% the stored band's cut-off is 0: every patient the model can decide goes to a human.
    everyone = predict_command(bundle, [clinic], out=tmp_path / "all.csv", refer_share=0.5)
    decisions = pd.read_csv(everyone.with_name("all_patients.csv"), dtype={"patient_id": str}).set_index("patient_id")["decision"]
    assert decisions["P1"] == decisions["P2"] == "uncertain" and decisions["P4"] == "ungradable"

    none = predict_command(bundle, [clinic], out=tmp_path / "none.csv", refer_share=0)
    assert "uncertain" not in set(pd.read_csv(none.with_name("none_patients.csv"))["decision"])
    with pytest.raises(ConfigError, match="refer-share"):
        predict_command(tiny_bundle, [clinic], out=tmp_path / "old.csv", refer_share=0.1)  # no band in an old bundle

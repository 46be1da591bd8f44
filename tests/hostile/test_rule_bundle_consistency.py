"""Rule 4: a bundle is consistent or refused. One check (``bundle_spec.check_bundle``) on every
read and write of ``bundle.json``: thresholds against cut-points, input size, normalisation and
preprocessing against the training record, input size against the ONNX graph's, the per-patient
decision against the thresholds, a paired-eye stage's numbers finite; the fit that `train` and
`cv` use repairs what would break it, and says so. An interrupted export leaves nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from drgrader.cli import main
from drgrader.config import EvalConfig
from drgrader.evaluation.thresholds import fit_thresholds
from drgrader.grading import SCORE_COLUMNS, decide
from drgrader.inference import export
from drgrader.inference.bundle import load_bundle
from drgrader.inference.bundle_spec import BundleError, check_bundle, read_manifest, update_manifest
from drgrader.reporting.model_card import build_model_card
from drgrader.synth import make_fundus

CUTS = [0.5, 1.5, 2.5, 3.5]
BAND = [[0.05, 0.7], [0.1, 0.5], [0.2, 0.3]]


@pytest.fixture
def photo(tmp_path):
    import cv2

    path = tmp_path / "photos" / "1_left.jpeg"
    path.parent.mkdir()
    cv2.imwrite(str(path), cv2.cvtColor(make_fundus(2, np.random.default_rng(0), height=128), cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def onnx_bundle(tiny_bundle, tmp_path_factory):
    return export.export_command(tiny_bundle, out=tmp_path_factory.mktemp("rule4") / "tiny-onnx")


def edited(bundle, tmp_path, **changes):
    """A copy of ``bundle`` with keys of its bundle.json changed (None: removed)."""
    copy = tmp_path / "edited"
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "bundle.json").read_text())
    manifest.update(changes)
    (copy / "bundle.json").write_text(json.dumps({k: v for k, v in manifest.items() if v is not None}))
    return copy


def regression(manifest: dict, **changes) -> dict:
    """The tiny bundle's manifest as a regression grader's (one score for grade and screens)."""
    return {**manifest, "kind": "regression", **changes}


def refused(bundle, photo, tmp_path, capsys, *extra) -> str:
    """`drgrader predict` on ``bundle``: exit 2, one line naming bundle.json, nothing written."""
    out = tmp_path / "pred.csv"
    assert main(["predict", str(bundle), str(photo), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(bundle / "bundle.json") in err
    assert "\n" not in err and "Traceback" not in err
    assert not out.exists()
    return err


# ------------------------------------------------------------------ thresholds and cut-points
def test_any_dr_threshold_above_the_referable_one_is_refused(tiny_bundle, photo, tmp_path, capsys):
    # 1 - p0 >= p2 + p3 + p4 for every photo: with any_dr 0.6 > referable 0.3, a photo with
    # p0 0.5, p2 0.5 would be referable but not any DR.
    bundle = edited(tiny_bundle, tmp_path, thresholds={"any_dr": 0.6, "referable": 0.3})
    err = refused(bundle, photo, tmp_path, capsys)
    assert "thresholds.any_dr 0.6 is above thresholds.referable 0.3: a photo could be referable but not any DR" in err


def test_the_cross_fitted_contradiction_of_the_issue_is_refused(tiny_bundle, tmp_path):
    # What cv wrote on little data: cut-points sorted from (any_dr, referable) = (1.31, 1.03), so
    # an eye fused at 1.4 was graded 2 and referable, an eye at 1.2 referable, and neither any DR.
    manifest = read_manifest(tiny_bundle)
    stage = {"model": {"inputs": ["expected_grade"], "coef": [0.5, 0.4, 0.0, 0.0], "intercept": 0.0,
                       "single_coef": [1.0], "single_intercept": 0.0},
             "thresholds": {"cutpoints": [1.03, 1.31, 2.8, 3.6], "any_dr": 1.31, "referable": 1.03}}
    with pytest.raises(BundleError, match=r"bundle.json is inconsistent: paired_eyes.thresholds.any_dr 1.31 is above "
                                          r"paired_eyes.thresholds.referable 1.03"):
        check_bundle({**manifest, "paired_eyes": stage}, tmp_path / "bundle.json")
    # the stage's screens must also be its grade-1 and grade-2 cut-points (one score: the fused grade)
    stage["thresholds"] = {"cutpoints": [1.03, 1.31, 2.8, 3.6], "any_dr": 1.03, "referable": 1.2}
    with pytest.raises(BundleError, match=r"paired_eyes.thresholds.referable 1.2 is not the grade-2 cut-point 1.31"):
        check_bundle({**manifest, "paired_eyes": stage}, tmp_path / "bundle.json")
    stage["thresholds"] = {"cutpoints": [1.03, 1.31, 2.8, 3.6], "any_dr": 1.03, "referable": 1.31}
    check_bundle({**manifest, "paired_eyes": stage}, tmp_path / "bundle.json")


def test_a_regression_grader_s_screens_are_its_cut_points(tiny_bundle, tmp_path):
    manifest = read_manifest(tiny_bundle)
    file = tmp_path / "bundle.json"
    check_bundle(regression(manifest, thresholds={"cutpoints": CUTS, "any_dr": 0.5, "referable": 1.5}), file)
    check_bundle(regression(manifest, thresholds={"cutpoints": CUTS, "referable": 1.5}), file)  # any_dr: the grade
    with pytest.raises(BundleError, match=r"thresholds.any_dr 0.8 is not the grade-1 cut-point 0.5 on the same score"):
        check_bundle(regression(manifest, thresholds={"cutpoints": CUTS, "any_dr": 0.8, "referable": 1.5}), file)
    # a probability model's screens are other scores than its grade: cut-points and screens differ freely
    check_bundle({**manifest, "thresholds": {"cutpoints": CUTS, "any_dr": 0.3, "referable": 0.4}}, file)


def test_the_fit_repairs_crossed_screens_and_says_so():
    # 52 eyes, 4 of grade 1: fitted apart, the any-DR threshold (1.31) lands above the referable one (1.03).
    rng = np.random.default_rng(23)
    grade = np.repeat([0, 1, 2, 3, 4], [30, 4, 8, 4, 2])
    score = grade + rng.normal(0, 0.8, grade.size)
    table = pd.DataFrame({"grade": grade, **{c: np.nan for c in SCORE_COLUMNS[:5]},
                          "expected_grade": score, "score_any": score, "score_referable": score})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = fit_thresholds(table, EvalConfig(), "grade")
    note = "any_dr threshold 1.312 lowered to the referable threshold 1.027"
    assert any(note in str(w.message) for w in caught)
    assert len(fitted["adjusted"]) == 1 and note in fitted["adjusted"][0]  # in bundle.json and metrics.json
    # the referral stays as fitted; any DR comes down to it; grade >= 1 and >= 2 are the screens
    assert fitted["any_dr"] == fitted["referable"] == pytest.approx(1.027, abs=1e-3)
    assert fitted["cutpoints"][:2] == [fitted["any_dr"], fitted["referable"]]
    decided = decide(table[SCORE_COLUMNS].to_numpy(), fitted)
    assert (decided["any_dr_pred"] >= decided["referable_pred"]).all()
    assert ((decided["pred_grade"] >= 2) == (decided["referable_pred"] == 1)).all()
    manifest = {"format": 1, "task": "grade", "backbone": "test_resnet", "input_size": 64, "kind": "regression",
                "head": "linear", "drop_rate": 0.0, "mean": [0.4] * 3, "std": [0.2] * 3, "preprocess": {}}
    check_bundle({**manifest, "thresholds": fitted}, "bundle.json")
    card = build_model_card({**manifest, "thresholds": fitted}, {})
    assert "**Adjusted so that the decisions agree**: " + note in card


def test_free_cut_points_carry_the_screens_on_a_one_score_grader():
    rng = np.random.default_rng(3)
    grade = rng.integers(0, 5, 300)
    score = grade + rng.normal(0, 0.7, grade.size)
    table = pd.DataFrame({"grade": grade, **{c: np.nan for c in SCORE_COLUMNS[:5]},
                          "expected_grade": score, "score_any": score, "score_referable": score})
    with pytest.warns(UserWarning, match="replaced by the grade-2 cut-point"):
        fitted = fit_thresholds(table, EvalConfig(consistent_cutpoints=False), "grade")
    assert [fitted["any_dr"], fitted["referable"]] == fitted["cutpoints"][:2]


def test_an_inconsistent_bundle_is_never_written(tiny_bundle, tmp_path):
    bundle = edited(tiny_bundle, tmp_path)
    before = (bundle / "bundle.json").read_bytes()
    with pytest.raises(BundleError, match="is inconsistent: thresholds.any_dr 0.9 is above"):
        update_manifest(bundle, thresholds={"any_dr": 0.9, "referable": 0.2})
    assert (bundle / "bundle.json").read_bytes() == before
    assert sorted(p.name for p in bundle.iterdir()) == sorted(p.name for p in tiny_bundle.iterdir())


# ------------------------------------------------------------------------------ input size
def test_an_edited_input_size_is_refused_for_the_torch_backend(tiny_bundle, photo, tmp_path, capsys):
    # test_resnet pools globally: at 96 px it would grade every photo, differently, without a word
    bundle = edited(tiny_bundle, tmp_path, input_size=96)
    err = refused(bundle, photo, tmp_path, capsys, "--backend", "torch")
    assert "input_size 96 is not the size the model was trained at (config.data.image_size 64)" in err


def test_an_exported_bundle_whose_graph_is_gone_is_refused_not_switched_to_torch(onnx_bundle, photo, tmp_path, capsys):
    manifest = read_manifest(onnx_bundle)
    bundle = edited(onnx_bundle, tmp_path, onnx={**manifest["onnx"], "file": "other.onnx"})
    for backend in ("auto", "onnx"):  # auto ran PyTorch without a word; onnx named the wrong file
        err = refused(bundle, photo, tmp_path, capsys, "--backend", backend)
        assert "names the ONNX graph 'other.onnx', which is not in" in err


def another_graph(bundle, tmp_path, **changes):
    """A copy of an exported ``bundle`` whose model.onnx is another model's graph (one weight of
    the first layer changed), as a deployment folder updated by hand would have."""
    import onnx

    copy = edited(bundle, tmp_path, **changes)
    graph = onnx.load(str(copy / "model.onnx"))
    weight = next(w for w in graph.graph.initializer if w.dims and len(w.dims) == 4)
    values = onnx.numpy_helper.to_array(weight).copy()
    values.flat[0] += 1.0
    weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
    onnx.save(graph, str(copy / "model.onnx"))
    return copy


def test_an_exported_bundle_with_another_model_s_graph_is_refused(onnx_bundle, photo, tmp_path, capsys):
    # Another run's model.onnx copied in graded under this bundle's thresholds and parity claim
    # with --backend onnx, and the PyTorch weights with auto: one bundle, two answers (probe 32 B4).
    manifest = read_manifest(onnx_bundle)
    assert set(manifest["onnx"]["sha256"]) == {"model.onnx"}
    bundle = another_graph(onnx_bundle, tmp_path)
    for backend in ("onnx", "auto", "torch"):
        err = refused(bundle, photo, tmp_path, capsys, "--backend", backend)
        assert ("bundle.json is inconsistent: model.onnx is not the graph exported with this bundle (its sha256 differs "
                "from bundle.json's record): export again") in err
    assert main(["models", str(bundle)]) == 2  # probe 33 BV4: its card was printed, exit 0
    assert "model.onnx is not the graph exported with this bundle" in capsys.readouterr().err
    # a bundle exported before the record (and the built-in grader) is opened as before
    older = another_graph(onnx_bundle, tmp_path / "older", onnx={k: v for k, v in manifest["onnx"].items() if k != "sha256"})
    assert load_bundle(older, "onnx").input_size == 64


def test_an_input_size_the_onnx_graph_does_not_take_is_refused(onnx_bundle, photo, tmp_path, capsys):
    # No training record to compare with (a hand-made ONNX bundle): the graph's own input decides.
    bundle = edited(onnx_bundle, tmp_path, input_size=96, config=None)
    err = refused(bundle, photo, tmp_path, capsys, "--backend", "onnx")
    assert "input_size 96 does not fit model.onnx, whose input is batch x 3 x 64 x 64" in err
    assert load_bundle(edited(onnx_bundle, tmp_path / "ok", config=None), "onnx").input_size == 64


# -------------------------------------------------------------- normalisation and preprocessing
def test_an_edited_normalisation_or_preprocessing_is_refused(tiny_bundle, photo, tmp_path, capsys):
    # Trained with ImageNet's scaling and the crop: ONNX keeps the scaling inside its graph, torch
    # reads bundle.json's; either edit would change the grades without a word.
    bundle = edited(tiny_bundle, tmp_path, mean=[0.5] * 3)
    err = refused(bundle, photo, tmp_path, capsys, "--backend", "torch")
    assert "mean [0.5, 0.5, 0.5] is not how the model was trained (config.data.normalize 'imagenet': [0.485, 0.456" in err
    manifest, file = read_manifest(tiny_bundle), tmp_path / "bundle.json"
    with pytest.raises(BundleError, match=r"inconsistent: std \[0.5, 0.5, 0.5\] is not how the model was trained"):
        check_bundle({**manifest, "std": [0.5] * 3}, file)
    shutil.rmtree(bundle)
    bundle = edited(tiny_bundle, tmp_path, preprocess={**manifest["preprocess"], "crop": False})
    err = refused(bundle, photo, tmp_path, capsys)
    assert "preprocess.crop false is not how the model was trained (config.data.preprocess.crop true)" in err
    with pytest.raises(BundleError, match=r"preprocess.ben_graham true is not how the model was trained "
                                          r"\(config.data.preprocess.ben_graham false\)"):
        check_bundle({**manifest, "preprocess": {**manifest["preprocess"], "ben_graham": True}}, file)
    # Without a training record there is nothing to compare with (a hand-made bundle).
    check_bundle({k: v for k, v in {**manifest, "mean": [0.5] * 3, "preprocess": {"crop": False}}.items() if k != "config"}, file)


def test_an_edited_mean_of_a_backbone_s_own_scaling_is_refused_by_torch(tiny_bundle, photo, tmp_path, capsys):
    # `normalize: model` (the backbone's own scaling, the built-in grader's) is known only to timm: PyTorch
    # checks it where it builds the network, so the two backends cannot grade one bundle differently.
    from drgrader.models.factory import input_mean_std

    manifest = read_manifest(tiny_bundle)
    config = {**manifest["config"], "data": {**manifest["config"]["data"], "normalize": "model"}}
    mean, std = input_mean_std(manifest["backbone"], "model")
    assert main(["predict", str(edited(tiny_bundle, tmp_path, config=config, mean=mean, std=std)), str(photo),
                 "--backend", "torch", "--out", str(tmp_path / "ok.csv")]) == 0
    shutil.rmtree(tmp_path / "edited")
    imagenet = [0.485, 0.456, 0.406]
    assert mean != imagenet  # the tiny backbone's own scaling is not ImageNet's
    err = refused(edited(tiny_bundle, tmp_path, config=config, mean=imagenet, std=std), photo, tmp_path, capsys, "--backend", "torch")
    assert "mean [0.485, 0.456, 0.406] and std" in err and "are not how the model was trained (config.data.normalize 'model'" in err


def test_a_view_given_twice_in_bundle_json_is_refused(tiny_bundle, photo, tmp_path, capsys):
    # One check with eval.tta and predict --tta: a repeated view would count twice in the average.
    bundle = edited(tiny_bundle, tmp_path, tta=["orig", "hflip", "hflip"])
    err = refused(bundle, photo, tmp_path, capsys)
    assert "is not a valid bundle: tta: Value error, view 'hflip' given twice: each view counts once in the average" in err


@pytest.mark.parametrize(("key", "value", "says"), [
    ("class_names", ["4 proliferative", "3 severe NPDR", "2 moderate", "1 mild", "0 none"], "class_names: Value error, must be"),
    ("class_names", ["0 none", "1 mild", "2 moderate"], "class_names: Value error, must be"),
    ("weights_dtype", "int8", "weights_dtype: Input should be 'float32' or 'float16'"),
])
def test_names_and_weight_types_it_does_not_use_are_refused(tiny_bundle, photo, tmp_path, capsys, key, value, says):
    # Reversed grade names would label every grade wrongly in a clinic's table; int8 weights would be read as floats.
    err = refused(edited(tiny_bundle, tmp_path, **{key: value}), photo, tmp_path, capsys)
    assert says in err


# --------------------------------------------------------------------- per-patient decision
def test_patient_decision_must_agree_with_the_thresholds_and_its_band(tiny_bundle, tmp_path):
    manifest = {**read_manifest(tiny_bundle), "thresholds": {"cutpoints": CUTS, "any_dr": 0.3, "referable": 0.4}}
    good = {"urgent_threshold": 2.7, "refer_share": 0.1, "uncertainty_cutoff": 0.5, "band": BAND}
    file = tmp_path / "bundle.json"
    check_bundle({**manifest, "patient_decision": good}, file)
    check_bundle({**manifest, "patient_decision": {**good, "refer_share": 0.15, "uncertainty_cutoff": 0.42}}, file)
    with pytest.raises(BundleError, match=r"urgent_threshold 2 is below the grade-3 cut-point 2.5: a patient could be urgent"):
        check_bundle({**manifest, "patient_decision": {**good, "urgent_threshold": 2.0}}, file)
    with pytest.raises(BundleError, match=r"uncertainty_cutoff 0.8 for refer_share 0.1 is outside its band \(0.5 at share 0.1"):
        check_bundle({**manifest, "patient_decision": {**good, "uncertainty_cutoff": 0.8}}, file)
    with pytest.raises(BundleError, match=r"refer_share 0.3 is beyond its band \(shares up to 0.2\)"):
        check_bundle({**manifest, "patient_decision": {**good, "refer_share": 0.3}}, file)


def test_an_urgent_threshold_no_grade_reaches_is_refused(tiny_bundle, tmp_path):
    # The urgent threshold is on the (fused) expected grade, 0..4: at 99 a grade-4 eye would be
    # "refer", never "urgent".
    manifest = {**read_manifest(tiny_bundle), "thresholds": {"cutpoints": CUTS, "any_dr": 0.3, "referable": 0.4}}
    file = tmp_path / "bundle.json"
    check_bundle({**manifest, "patient_decision": {"urgent_threshold": 4.0, "refer_share": 0.0}}, file)
    with pytest.raises(BundleError, match=r"urgent_threshold 99 is above the top of the grade scale \(4\): no patient could"):
        check_bundle({**manifest, "patient_decision": {"urgent_threshold": 99.0, "refer_share": 0.0}}, file)


@pytest.mark.parametrize(("key", "value"), [("intercept", float("nan")), ("coef", [0.5, float("inf"), 0.0, 0.0]),
                                            ("single_intercept", float("nan"))])
def test_a_paired_eye_stage_with_a_nan_is_refused(tiny_bundle, tmp_path, key, value):
    # A NaN intercept left 3 of 4 gradable photos without a grade and their patient "ungradable:
    # photograph again"; refused like a NaN threshold.
    model = {"inputs": ["expected_grade"], "coef": [0.5, 0.4, 0.0, 0.0], "intercept": 0.0,
             "single_coef": [1.0], "single_intercept": 0.0}
    stage = {"model": {**model, key: value}, "thresholds": {"cutpoints": CUTS, "any_dr": 0.5, "referable": 1.5}}
    bundle = edited(tiny_bundle, tmp_path, paired_eyes=stage)  # json writes NaN and Infinity, as a hand edit would
    with pytest.raises(BundleError, match=rf"is not a valid bundle: paired_eyes.model: Value error, {key} must be finite"):
        read_manifest(bundle)
    check_bundle({**read_manifest(tiny_bundle), "paired_eyes": {**stage, "model": model}}, tmp_path / "bundle.json")


def test_a_paired_eye_stage_needs_a_grader(tiny_bundle, tmp_path):
    stage = {"model": {"inputs": ["expected_grade"], "coef": [0.5, 0.4, 0.0, 0.0], "intercept": 0.0,
                       "single_coef": [1.0], "single_intercept": 0.0}, "thresholds": {}}
    manifest = {**read_manifest(tiny_bundle), "task": "referable", "kind": "binary", "paired_eyes": stage}
    with pytest.raises(BundleError, match="paired_eyes is a grading stage, but the task is 'referable'"):
        check_bundle(manifest, tmp_path / "bundle.json")


def test_a_paired_eye_stage_that_turns_the_grader_upside_down_is_refused(tiny_bundle, photo, tmp_path, capsys):
    # What train fitted on 16 validation photos of a 1-epoch demo run: an eye scoring grade 3 by the
    # bundle's own cut-points came out grade 0 and its patient "negative" (probe 32 B3).
    stage = {"model": {"inputs": ["expected_grade"], "coef": [-0.86, 0.4, 0.0, 0.0], "intercept": 0.0,
                       "single_coef": [-1.05], "single_intercept": 0.0},
             "thresholds": {"cutpoints": CUTS, "any_dr": 0.5, "referable": 1.5}}
    err = refused(edited(tiny_bundle, tmp_path, paired_eyes=stage), photo, tmp_path, capsys)
    assert ("is not a valid bundle: paired_eyes.model: Value error, the weight on the eye's own score must be positive, "
            "got coef[0] -0.86, single_coef[0] -1.05: a higher score would not give a higher grade") in err
    stage["model"].update(coef=[0.5, 0.4, 0.0, 0.0], single_coef=[0.0])  # a photo given alone would be graded 0
    with pytest.raises(BundleError, match=r"must be positive, got single_coef\[0\] 0:"):
        check_bundle({**read_manifest(tiny_bundle), "paired_eyes": stage}, tmp_path / "bundle.json")


def inverted_predictions(n_patients: int) -> pd.DataFrame:
    """Validation predictions of patients with both eyes whose scores run against their grades
    (a first stage that does not grade yet)."""
    rng = np.random.default_rng(5)
    grade = np.repeat(rng.choice(5, size=n_patients), 2)
    score = 4.0 - grade + rng.normal(0, 0.5, grade.size)
    rows = pd.DataFrame({"image_id": [f"{i // 2}_{'left' if i % 2 == 0 else 'right'}" for i in range(grade.size)],
                         "patient_id": [str(i // 2) for i in range(grade.size)],
                         "eye": ["left", "right"] * n_patients, "grade": grade})
    scores = np.column_stack([np.full((grade.size, 5), np.nan), score, score, score])
    return pd.concat([rows, decide(scores, None)], axis=1)


def test_train_and_cv_drop_a_paired_eye_stage_fitted_against_the_eye_s_own_score(caplog):
    from drgrader.evaluation.evaluate import _fit_stage
    from drgrader.evaluation.paired_stage import fit_paired_stage

    table = inverted_predictions(16)
    with caplog.at_level("WARNING", logger="drgrader"):
        assert _fit_stage(table, EvalConfig()) is None  # train: single-eye decisions, no stage in the bundle
    warning = caplog.records[-1].getMessage()
    assert warning.startswith("paired-eye stage not fitted (single-eye decisions only): the stage fitted on "
                              "16 validation patients weighs the eye's own score coef[0] -")
    assert "a higher score would not give a higher grade" in warning
    with pytest.raises(ValueError, match=r"16 out-of-fold patients weighs the eye's own score coef\[0\] -"):
        fit_paired_stage(table, EvalConfig(), patients="out-of-fold patients")  # cv's call, caught the same way


# ------------------------------------------------------------------- an interrupted export
@pytest.mark.parametrize("moment", ["parity_max_abs_diff", "write_manifest"])  # model.onnx half-made; all written
def test_an_interrupted_export_leaves_nothing(tiny_bundle, tmp_path, monkeypatch, moment):
    real = getattr(export, moment)

    def interrupted(*args, **kwargs):
        if moment == "write_manifest":
            real(*args, **kwargs)  # everything written, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(export, moment, interrupted)
    with pytest.raises(KeyboardInterrupt):
        export.export_command(tiny_bundle, out=tmp_path / "out" / "tiny-onnx")
    assert list((tmp_path / "out").iterdir()) == []  # no half bundle, no hidden staging folder


def test_export_overwrite_replaces_a_bundle_only_never_a_run_a_data_set_or_a_users_folder(tiny_bundle, tmp_path, capsys):
    # Probe 37 CA5: `export --out X --overwrite` deleted whatever X was (a run folder, a data set,
    # a folder of notes) and put the bundle there.
    from drgrader.cli import main

    run, notes = tmp_path / "run", tmp_path / "notes"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("x")
    notes.mkdir()
    (notes / "n.txt").write_text("important")
    for target, kind in ((run, "a run folder"), (notes, "a folder")):
        assert main(["export", str(tiny_bundle), "--out", str(target), "--overwrite"]) == 2
        assert (f"--out {target} already exists and is {kind}, which --overwrite never replaces (it replaces a model "
                "bundle only)") in capsys.readouterr().err
    assert (run / "config.yaml").is_file() and (notes / "n.txt").read_text() == "important"
    assert main(["export", str(tiny_bundle), "--out", str(notes)]) == 2
    assert "or --overwrite" not in capsys.readouterr().err  # never offered for what it cannot replace
    # Probe 38 CB1: another tool's bundle.json, and a user's file put inside a real bundle.
    (notes / "bundle.json").write_text('{"resourceType": "Bundle"}')
    assert main(["export", str(tiny_bundle), "--out", str(notes), "--overwrite"]) == 2
    assert "is a folder, which --overwrite never replaces" in capsys.readouterr().err
    real = tmp_path / "real"
    shutil.copytree(tiny_bundle, real)
    (real / "my_notes.txt").write_text("mine")
    assert main(["export", str(tiny_bundle), "--out", str(real), "--overwrite"]) == 2
    assert f"--out {real} is a model bundle holding other files too (my_notes.txt): --overwrite would delete them" in \
        capsys.readouterr().err
    assert (real / "my_notes.txt").read_text() == "mine" and (notes / "n.txt").read_text() == "important"


def test_an_interrupted_overwrite_keeps_the_old_bundle_and_a_finished_one_replaces_it(tiny_bundle, onnx_bundle, tmp_path, monkeypatch):
    out = tmp_path / "deploy"
    shutil.copytree(onnx_bundle, out)
    (out / "model.old.onnx").write_text("from the old export")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = export.write_manifest

    def interrupted(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "write_manifest", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export.export_command(tiny_bundle, out=out, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    monkeypatch.setattr(export, "write_manifest", real)
    export.export_command(tiny_bundle, out=out, overwrite=True)
    assert not (out / "model.old.onnx").exists() and (out / "model.onnx").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["deploy"]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # as a plain mkdir: readable by a model server


# ------------------------------------------------------------------ ensemble members (probe 30 F5)
def test_an_ensemble_edited_by_hand_is_refused_when_opened(tiny_bundle, other_tiny_bundle, photo, tmp_path, capsys):
    """Before (probe 30 F5): a member listed twice in bundle.json, or a member folder replaced by
    a copy of another member or by another model, was averaged as given while the card named the
    old members; the `ensemble` command refused the same faults."""
    from conftest import make_tiny_bundle

    from drgrader.inference.ensemble import make_ensemble

    third = make_tiny_bundle(tmp_path / "third", seed=2)
    made = make_ensemble([tiny_bundle, other_tiny_bundle, third], tmp_path / "ens")
    manifest = json.loads((made / "bundle.json").read_text())
    assert [len(m["weights_sha256"]) for m in manifest["member_info"]] == [1, 1, 1]
    assert len(load_bundle(made).members) == 3

    def copy(name: str):
        shutil.copytree(made, tmp_path / name)
        return tmp_path / name

    # a member listed twice, member_info left as made, or edited alike
    twice = copy("twice")
    listed = manifest["members"][:1] * 2 + manifest["members"][2:]
    (twice / "bundle.json").write_text(json.dumps({**manifest, "members": listed}))
    assert "are not the ones member_info describes" in refused(twice, photo, tmp_path, capsys)
    info = [manifest["member_info"][0], {**manifest["member_info"][0]}, manifest["member_info"][2]]
    (twice / "bundle.json").write_text(json.dumps({**manifest, "members": listed, "member_info": info}))
    assert f"{listed[1]} is the member {listed[0]} listed again" in refused(twice, photo, tmp_path, capsys)
    # a member folder replaced by a copy of another member, or by another model
    swapped = copy("swapped")
    shutil.rmtree(swapped / manifest["members"][1])
    shutil.copytree(tiny_bundle, swapped / manifest["members"][1])
    said = refused(swapped, photo, tmp_path, capsys)
    assert f"{manifest['members'][1]} does not hold the weights the ensemble was made from" in said
    assert main(["models", str(swapped)]) == 2  # probe 32 B13: its card was printed as if nothing were wrong
    assert "does not hold the weights the ensemble was made from" in capsys.readouterr().err
    # members reordered against member_info: the card would describe each folder as another model
    reordered = copy("reordered")
    (reordered / "bundle.json").write_text(json.dumps({**manifest, "members": manifest["members"][::-1]}))
    assert "are not the ones member_info describes" in refused(reordered, photo, tmp_path, capsys)
    # an ensemble made before the digests: what it still shows (two members with the same weights) is checked
    old = copy("old")
    shutil.rmtree(old / manifest["members"][1])
    shutil.copytree(tiny_bundle, old / manifest["members"][1])
    unrecorded = [{k: v for k, v in m.items() if k != "weights_sha256"} for m in manifest["member_info"]]
    (old / "bundle.json").write_text(json.dumps({**manifest, "member_info": unrecorded}))
    assert f"{manifest['members'][1]} has the same weights as {manifest['members'][0]}" in refused(old, photo, tmp_path, capsys)
    assert main(["export", str(old), "--out", str(tmp_path / "old-onnx")]) == 2  # every command that opens it
    assert "has the same weights as" in capsys.readouterr().err
    shutil.rmtree(old / manifest["members"][1])
    shutil.copytree(other_tiny_bundle, old / manifest["members"][1])
    assert len(load_bundle(old).members) == 3  # an old, untouched ensemble still opens, without a word


def test_a_bundle_whose_weights_are_another_models_is_refused(tiny_bundle, other_tiny_bundle, tmp_path, capsys):
    """Probe 33 BV1: another run's model.safetensors copied into a bundle graded under this
    bundle's thresholds, validation figures and card, without a word."""
    bundle = tmp_path / "tiny"
    shutil.copytree(tiny_bundle, bundle)
    assert json.loads((bundle / "bundle.json").read_text())["weights_sha256"]
    load_bundle(bundle, "torch")  # its own weights: opened
    shutil.copy(other_tiny_bundle / "model.safetensors", bundle / "model.safetensors")
    with pytest.raises(BundleError, match=r"model.safetensors is not the weights this bundle was saved with"):
        load_bundle(bundle, "torch")
    assert main(["models", str(bundle)]) == 2  # and its card is not printed as if nothing were wrong
    assert "model.safetensors is not the weights this bundle was saved with" in capsys.readouterr().err
    # nor is an ensemble made of it (probe 34 BX3: made, exit 0, refused only by predict later)
    assert main(["ensemble", str(bundle), str(tiny_bundle), "--out", str(tmp_path / "ens")]) == 2
    assert "model.safetensors is not the weights" in capsys.readouterr().err and not (tmp_path / "ens").exists()

"""Batch prediction: inputs, unreadable files, resume, CSV input, backends, ensembles."""

from __future__ import annotations

import json
import logging
import re
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_tiny_bundle
from counting_runner import CountingRunner

from drgrader.config import ExperimentConfig, config_to_dict
from drgrader.data.images import read_image
from drgrader.data.inputs import collect_inputs
from drgrader.inference.bundle import BundleError, load_bundle, save_bundle
from drgrader.inference.ensemble import make_ensemble
from drgrader.inference.predict import OUTPUT_COLUMNS, predict_images
from drgrader.models.factory import GraderNet, ScoringNet, input_mean_std
from drgrader.outputs import OutputError
from drgrader.synth import make_fundus
from drgrader.workflows.predict import predict_command

PROBS = ["p0", "p1", "p2", "p3", "p4"]


def write_fundus(path, grade: int, seed: int, height: int = 128) -> None:
    rgb = make_fundus(grade, np.random.default_rng(seed), height=height)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def make_bundle(path, backbone: str, size: int, task: str = "grade", kind: str = "softmax5", preprocess: dict | None = None):
    cfg = ExperimentConfig.model_validate(
        {
            "data": {"image_size": size, "normalize": "imagenet", "preprocess": preprocess or {}},
            "model": {"backbone": backbone, "task": task},
            "train": {"loss": {"binary": "bce", "regression": "mse", "corn": "corn"}.get(kind, "ce")},
        }
    )
    torch.manual_seed(1)
    net = GraderNet(backbone, task=task, kind=kind).eval()
    return save_bundle(path, ScoringNet(net, *input_mean_std(backbone, "imagenet")), config=config_to_dict(cfg), thresholds={})


@pytest.fixture
def photos(tmp_path):
    """Four fundus photos (two patients, Kaggle names), a truncated JPEG, a grey non-fundus."""
    folder = tmp_path / "photos"
    for seed, (name, grade) in enumerate([("7_left", 0), ("7_right", 3), ("8_left", 1), ("sub/9_right", 2)]):
        write_fundus(folder / f"{name}.jpeg", grade, seed)
    good = (folder / "7_left.jpeg").read_bytes()
    (folder / "corrupt.jpg").write_bytes(good[: len(good) // 2])
    cv2.imwrite(str(folder / "grey.png"), np.full((120, 160, 3), 128, np.uint8))
    (folder / "notes.txt").write_text("not an image, not picked up from a folder")
    return folder


def interrupted_after_one_batch(bundle_path, photos, out):
    """Predict in batches of 2 and interrupt the run at the second model call.
    Returns the bundle and its real runner, for the rerun."""
    bundle = load_bundle(bundle_path)
    runner = bundle.runner
    bundle.runner = CountingRunner(runner, fail_at=2)
    with pytest.raises(KeyboardInterrupt):
        predict_command(bundle, [photos], out=out, batch_size=2)
    return bundle, runner


def test_folder_with_corrupt_file_gives_error_row(tiny_bundle, photos, tmp_path):
    out = predict_command(tiny_bundle, [photos], out=tmp_path / "pred.csv", batch_size=4)
    df = pd.read_csv(out, dtype={"patient_id": str}, keep_default_na=False, na_values=[""])
    assert list(df.columns) == [*OUTPUT_COLUMNS, "uncertainty"]  # each photo's, from the per-patient decision
    assert len(df) == 6  # recursive, images only
    rows = df.set_index("image_id")
    assert "truncated" in rows.loc["corrupt", "error"]
    assert np.isnan(rows.loc["corrupt", "grade"]) and np.isnan(rows.loc["corrupt", "p0"])
    good = rows.drop(index="corrupt")
    assert good["error"].isna().all()
    assert good["grade"].between(0, 4).all()
    np.testing.assert_allclose(good[PROBS].sum(axis=1), 1.0, atol=1e-5)
    # thresholds 0.5 on both screening scores (tiny_bundle)
    assert (good["referable"] == (good["score_referable"] >= 0.5)).all()
    assert (good["any_dr"] == (good["score_any"] >= 0.5)).all()
    # Kaggle names give patient and eye; the grey frame is predicted but flagged.
    assert rows.loc["7_right", "patient_id"] == "7" and rows.loc["7_right", "eye"] == "right"
    assert rows.loc["grey", "gradable"] == False  # noqa: E712
    assert rows.loc["grey", "quality_reason"] == "no fundus detected"
    assert rows.loc["7_left", "gradable"] == True  # noqa: E712

    patients = pd.read_csv(tmp_path / "pred_patients.csv", dtype={"patient_id": str}).set_index("patient_id")
    assert sorted(patients.index) == ["7", "8", "9", "corrupt", "grey"]  # no patient in the name: each its own
    assert patients.loc["7", "images"] == 2
    p7 = good[good["patient_id"] == "7"]
    assert patients.loc["7", "grade"] == p7["grade"].max()
    assert patients.loc["7", "score_referable"] == pytest.approx(p7["score_referable"].max())
    assert rows.loc[patients.loc["7", "worst_image"], "grade"] == p7["grade"].max()
    assert not (tmp_path / "pred.csv.partial.csv").exists()


def test_interrupted_run_resumes_without_redoing_images(tiny_bundle, photos, tmp_path):
    out = tmp_path / "pred.csv"
    bundle, runner = interrupted_after_one_batch(tiny_bundle, photos, out)
    partial = tmp_path / "pred.csv.partial.csv"
    assert not out.exists()
    done_first = pd.read_csv(partial)["path"].tolist()
    assert len(done_first) == 2  # the first batch was flushed
    with open(partial, "a") as fh:  # as if killed in the middle of writing the next batch
        fh.write(f"{photos / '8_left.jpeg'},8_left,8,left,1.0,0.2")

    bundle.runner = counter = CountingRunner(runner)
    predict_command(bundle, [photos], out=out, batch_size=2)
    # 6 inputs in batches of 2, the first batch done: 2 model calls left (a full run makes 3).
    assert counter.calls == 2
    final = pd.read_csv(out)
    assert len(final) == 6 and final["path"].is_unique
    assert final["path"].iloc[:2].tolist() == done_first  # input order kept
    assert final[PROBS].notna().all(axis=1).tolist() == [True, True, True, False, True, True]  # 8_left redone
    assert not partial.exists() and not (tmp_path / "pred.csv.partial.json").exists()


def test_partial_from_other_settings_is_discarded_only_with_overwrite(tiny_bundle, photos, tmp_path):
    out = tmp_path / "pred.csv"
    bundle, runner = interrupted_after_one_batch(tiny_bundle, photos, out)
    bundle.runner = counter = CountingRunner(runner)
    with pytest.raises(OutputError, match="rerun with that run's options to resume, or --overwrite"):
        predict_command(bundle, [photos], out=out, batch_size=2, tta=["orig", "hflip"])
    predict_command(bundle, [photos], out=out, batch_size=2, tta=["orig", "hflip"], overwrite=True)
    assert counter.calls == 3 * 2  # every batch again, two views each


def test_csv_input(tiny_bundle, tmp_path):
    folder = tmp_path / "ds"
    write_fundus(folder / "images" / "21_left.jpeg", 2, seed=5)
    write_fundus(folder / "images" / "eyeA.png", 1, seed=6)
    pd.DataFrame(
        {
            "image": ["images/21_left", "images/eyeA.png", "images/gone_right"],
            "patient": ["", "p9", ""],
            "eye": ["", "OS", ""],
            "level": [2, 1, 0],
        }
    ).to_csv(folder / "labels.csv", index=False)
    table = collect_inputs([folder / "labels.csv"])
    assert table["image_id"].tolist() == ["images/21_left", "images/eyeA", "images/gone_right"]
    assert table["path"].iloc[0] == str(folder / "images" / "21_left.jpeg")  # extension found
    assert table["patient_id"].tolist() == ["21", "p9", "gone"]
    assert table["eye"].tolist() == ["left", "left", "right"]

    out = predict_command(tiny_bundle, [folder / "labels.csv"], out=tmp_path / "p.csv")
    df = pd.read_csv(out, keep_default_na=False)
    assert df["error"].tolist()[:2] == ["", ""]
    assert df["error"].iloc[2] == "file not found"


def test_csv_without_image_column_is_a_clear_error(tiny_bundle, tmp_path):
    from drgrader.data.manifest import DataError

    (tmp_path / "bad.csv").write_text("file,level\na.jpg,1\n")
    with pytest.raises(DataError, match="needs an 'image' or 'path' column"):
        predict_command(tiny_bundle, [tmp_path / "bad.csv"], out=tmp_path / "p.csv")


def test_views_other_than_the_bundle_s_are_used_with_a_warning(tiny_bundle, photos, tmp_path, caplog):
    bundle = load_bundle(tiny_bundle)
    caplog.set_level(logging.WARNING, logger="drgrader")
    predict_command(bundle, [photos], out=tmp_path / "same.csv", tta=list(reversed(bundle.tta)))
    assert "fitted on the scores of its own views" not in caplog.text  # the bundle's views, in any order
    predict_command(bundle, [photos], out=tmp_path / "other.csv", tta=["vflip"])
    assert f"--tta vflip: the bundle's thresholds and uncertainty band were fitted on the scores of its own views " \
           f"({' '.join(bundle.tta)})" in caplog.text


def test_unknown_tta_view_fails_before_work(tiny_bundle, photos, tmp_path):
    from drgrader.config import ConfigError

    with pytest.raises(ConfigError, match="sideways"):
        predict_command(tiny_bundle, [photos], out=tmp_path / "p.csv", tta=["orig", "sideways"])


def test_torch_and_onnx_predictions_agree(tiny_bundle, photos, tmp_path):
    from drgrader.inference.export import export_command

    onnx_dir = export_command(tiny_bundle, out=tmp_path / "tiny-onnx")
    paths = sorted(str(p) for p in photos.glob("*.jpeg"))
    by_torch = predict_images(load_bundle(onnx_dir, "torch"), paths, progress=False)
    by_onnx = predict_images(load_bundle(onnx_dir, "onnx"), paths, progress=False)
    cols = PROBS + ["expected_grade", "score_any", "score_referable"]
    assert np.abs(by_torch[cols].to_numpy() - by_onnx[cols].to_numpy()).max() < 1e-3
    assert by_torch["grade"].tolist() == by_onnx["grade"].tolist()


def test_ensemble_of_members_with_different_sizes_and_preprocessing(tiny_bundle, photos, tmp_path):
    other = make_bundle(tmp_path / "other", "test_efficientnet", 48, preprocess={"ben_graham": True, "clahe": True})
    ens_dir = make_ensemble([tiny_bundle, other], tmp_path / "ens")
    manifest = json.loads((ens_dir / "bundle.json").read_text())
    assert manifest["ensemble"] is True and manifest["thresholds"] is None
    assert manifest["members"] == ["members/0-tiny", "members/1-other"]
    assert manifest["task"] == "grade" and manifest["input_size"] == 64

    ens = load_bundle(ens_dir)
    assert [m.input_size for m in ens.members] == [64, 48]
    # The photo-size check takes the largest member's, whatever the order (before: the first member's).
    assert ens.input_size == 64 == load_bundle(make_ensemble([other, tiny_bundle], tmp_path / "ens2")).input_size
    paths = sorted(str(p) for p in photos.glob("*.jpeg"))
    images = [read_image(p) for p in paths]
    a, b = (load_bundle(p).score_raw(images) for p in (tiny_bundle, other))
    assert np.abs(a - b).max() > 1e-3  # the members really differ
    np.testing.assert_allclose(ens.score_raw(images), (a + b) / 2, atol=1e-6)
    # Probe 48 CL2: from files, each member decodes a photo as it was trained and scores alone (a JPEG
    # at a reduced scale for its input size): the ensemble's scores are its members' predict scores'
    # mean. Before, the ensemble decoded every photo in full: up to 0.35 grade units from that mean.
    large = []
    for seed in range(3):
        write_fundus(tmp_path / "large" / f"{seed}_left.jpeg", seed, seed, height=400)  # over 4x either input
        large.append(str(tmp_path / "large" / f"{seed}_left.jpeg"))
    alone = [predict_images(load_bundle(p), large, progress=False)[PROBS].to_numpy() for p in (tiny_bundle, other)]
    df = predict_images(ens, large, batch_size=2, progress=False)
    np.testing.assert_allclose(df[PROBS].to_numpy(), (alone[0] + alone[1]) / 2, atol=1e-6)
    full = ens.score_raw([read_image(p) for p in large])[:, :5]
    assert np.abs(full - df[PROBS].to_numpy()).max() > 1e-4  # a full decode is another input: the test can fail


def test_predict_says_when_a_bundle_decides_by_default_thresholds(tiny_bundle, other_tiny_bundle, photos, tmp_path, caplog):
    # `drgrader ensemble` fits none (cv does, out of fold): its decisions are not calibrated. Probe
    # 32 B5: the warning sent the user to `evaluate --data`, which never fits them.
    ens_dir = make_ensemble([tiny_bundle, other_tiny_bundle], tmp_path / "ens")
    with caplog.at_level("WARNING", logger="drgrader"):
        predict_command(ens_dir, [photos], out=tmp_path / "p.csv")
    assert [r.message for r in caplog.records if "no fitted thresholds" in r.message] == [
        f"{ens_dir} has no fitted thresholds: its decisions use the default cut-points and are not calibrated (an "
        "ensemble gets fitted thresholds only from `drgrader cv`, out of fold; `drgrader ensemble` fits none)"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="drgrader"):
        predict_command(tiny_bundle, [photos], out=tmp_path / "q.csv")
    assert not [r for r in caplog.records if "no fitted thresholds" in r.message]


def test_predict_says_when_a_bundle_was_trained_on_synthetic_photos(tiny_bundle, other_tiny_bundle, photos, tmp_path,
                                                                   caplog):
    """Probe 35 AY13: a bundle (or an ensemble's member) trained on drgrader synth photos graded real
    photos without a word; only its card said so."""
    from drgrader.synth import MARKER_NAME

    member = tmp_path / "syn-trained"
    shutil.copytree(tiny_bundle, member)
    (tmp_path / "syn").mkdir()
    (tmp_path / "syn" / MARKER_NAME).write_text("{}")
    manifest = json.loads((member / "bundle.json").read_text())
    manifest["config"]["data"]["root"] = str(tmp_path / "syn")
    (member / "bundle.json").write_text(json.dumps(manifest))
    ens_dir = make_ensemble([member, other_tiny_bundle], tmp_path / "ens")
    for bundle, shown in ((member, str(member)), (ens_dir, f"{ens_dir} (member {ens_dir / 'members' / '0-syn-trained'})")):
        caplog.clear()
        with caplog.at_level("WARNING", logger="drgrader"):
            predict_command(bundle, [photos], out=tmp_path / f"{bundle.name}.csv")
        assert [r.message for r in caplog.records if "synthetic" in r.message] == [
            f"{shown} was trained on synthetic photos (drgrader synth): it shows that the software works; its grades say "
            "nothing about real patients"]
    # Probe 36 AZ5: grade() and explain said nothing, serve only its console (not its page or answers).
    from fastapi.testclient import TestClient

    import drgrader
    from drgrader.inference.serve import create_app

    said = (f"{member} was trained on synthetic photos (drgrader synth): it shows that the software works; its grades say "
            "nothing about real patients")
    caplog.clear()
    with caplog.at_level("WARNING", logger="drgrader"):
        drgrader.grade(member, photos / "7_left.jpeg")
    assert [r.message for r in caplog.records if "synthetic" in r.message] == [said]
    assert TestClient(create_app(member)).get("/api/health").json()["model_warning"] == said
    assert TestClient(create_app(tiny_bundle)).get("/api/health").json()["model_warning"] is None


def test_ensemble_refuses_mixed_tasks_repeated_members_and_existing_output(tiny_bundle, other_tiny_bundle, tmp_path):
    binary = make_bundle(tmp_path / "ref", "test_resnet", 64, task="referable", kind="binary")
    with pytest.raises(BundleError, match="share one task"):
        make_ensemble([tiny_bundle, binary], tmp_path / "ens")
    assert not (tmp_path / "ens").exists()
    # One model twice would weigh double while the card counts another model (before: taken; probe 25).
    with pytest.raises(BundleError, match=f"{tiny_bundle} is given twice: an ensemble's members must be different models"):
        make_ensemble([tiny_bundle, other_tiny_bundle, f"{tiny_bundle}/"], tmp_path / "ens")
    with pytest.raises(BundleError, match="lies inside the member"):  # probe 35 BY6: copied into itself until too long
        make_ensemble([tiny_bundle, other_tiny_bundle], tiny_bundle / "ens")
    assert not (tiny_bundle / "ens").exists()
    shutil.copytree(tiny_bundle, tmp_path / "copy")
    with pytest.raises(BundleError, match=f"{tmp_path / 'copy'} has the same weights as {tiny_bundle}"):
        make_ensemble([tiny_bundle, tmp_path / "copy"], tmp_path / "ens")
    (tmp_path / "copy" / "model.onnx").write_bytes(b"an export beside the weights")  # as export writes it (probe 26)
    with pytest.raises(BundleError, match="has the same weights as"):
        make_ensemble([tiny_bundle, tmp_path / "copy"], tmp_path / "ens")
    assert not (tmp_path / "ens").exists()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep me")
    with pytest.raises(BundleError, match="not empty"):
        make_ensemble([tiny_bundle, other_tiny_bundle], tmp_path / "taken")


def test_ensemble_refuses_a_member_already_inside_another_member(tiny_bundle, other_tiny_bundle, tmp_path):
    # Before (probe 29): `ensemble ENS A` with A in ENS, or a cv bundle and one of its folds, was taken;
    # A weighed 2/3 of the average while the card said "ensemble of 2 models".
    third = make_tiny_bundle(tmp_path / "third", seed=2)
    inner = make_ensemble([tiny_bundle, other_tiny_bundle], tmp_path / "inner")
    with pytest.raises(BundleError, match=rf"{tiny_bundle} is already a member of {inner} \(its members/0-tiny has the same weights\)"):
        make_ensemble([inner, tiny_bundle], tmp_path / "ens")
    shutil.copytree(other_tiny_bundle, tmp_path / "fold-copy")  # a copy of one fold, given first
    with pytest.raises(BundleError, match=rf"{tmp_path / 'fold-copy'} is already a member of {inner}"):
        make_ensemble([tmp_path / "fold-copy", inner], tmp_path / "ens")
    other = make_ensemble([other_tiny_bundle, third], tmp_path / "other")
    with pytest.raises(BundleError, match=f"{inner} and {other} share a model"):
        make_ensemble([inner, other], tmp_path / "ens")
    assert not (tmp_path / "ens").exists()
    # Models all different: a nested ensemble is taken, its kind its models'.
    nested = make_ensemble([inner, third], tmp_path / "ens")
    assert [m["kind"] for m in json.loads((nested / "bundle.json").read_text())["member_info"]] == ["softmax5", "softmax5"]


def test_ensemble_refuses_members_whose_scores_are_on_two_scales(tiny_bundle, tmp_path, photos):
    # A regression model's score_any is its grade (0-4), a softmax model's a probability (0-1): before (probe 29)
    # the ensemble averaged the two, the regression member ruling the screening scores.
    regression = make_bundle(tmp_path / "mse", "test_resnet", 48, kind="regression")
    corn = make_bundle(tmp_path / "corn", "test_resnet", 48, kind="corn")
    said = (f"the members' screening scores are on different scales: a grade (0-4) from {regression} (regression), "
            f"a probability (0-1) from {tiny_bundle} (softmax5), {corn} (corn)")
    with pytest.raises(BundleError, match=re.escape(said)):
        make_ensemble([tiny_bundle, regression, corn], tmp_path / "ens")
    assert not (tmp_path / "ens").exists()
    make_ensemble([tiny_bundle, corn], tmp_path / "ok")  # two probabilities: one scale
    # An ensemble made before the check is refused when read, naming its members.
    mixed = make_ensemble([tiny_bundle, corn], tmp_path / "mixed")
    shutil.rmtree(mixed / "members" / "1-corn")
    shutil.copytree(regression, mixed / "members" / "1-corn")
    manifest = json.loads((mixed / "bundle.json").read_text())
    manifest["member_info"][1]["kind"] = "regression"
    (mixed / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=re.escape("is inconsistent: the members' screening scores are on different scales: "
                                                    "a grade (0-4) from members/1-corn (regression), a probability (0-1) from members/0-tiny (softmax5)")):
        load_bundle(mixed)

"""The thin end-to-end path: synthetic data -> preprocess -> train -> evaluate -> bundle -> report."""

import json
import subprocess
import sys

import pandas as pd
import pytest
from conftest import tiny_config

from drgrader.workflows.train import train


@pytest.fixture(scope="module")
def run_dir(synth_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    return train(tiny_config(synth_dir), out=out, progress=False)


def test_run_folder_has_everything(run_dir):
    for name in ("config.yaml", "manifest.csv", "split.csv", "train.log", "metrics.json",
                 "predictions_test.csv", "predictions_val.csv", "report.html", "report.md",
                 "checkpoints/best.ckpt", "checkpoints/last.ckpt", "logs/metrics.csv",
                 "bundle/bundle.json", "bundle/model.safetensors"):
        assert (run_dir / name).is_file(), name


def test_metrics_are_sane(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = metrics["test"]
    split = pd.read_csv(run_dir / "split.csv")
    assert test["n_images"] == (split["split"] == "test").sum()
    assert -1.0 <= test["grade"]["kappa"] <= 1.0
    assert 0.0 <= test["grade"]["accuracy"] <= 1.0
    assert metrics["evaluated_on"] == "test"
    assert metrics["versions"]["torch"]
    # Thresholds were fitted on validation and stored with the model.
    bundle = json.loads((run_dir / "bundle" / "bundle.json").read_text())
    assert bundle["thresholds"] == metrics["thresholds"]
    assert bundle["preprocess"] == metrics_config(run_dir)["data"]["preprocess"]


def metrics_config(run_dir):
    import yaml

    return yaml.safe_load((run_dir / "config.yaml").read_text())


def test_split_is_patient_level(run_dir):
    split = pd.read_csv(run_dir / "split.csv")
    assert split.groupby("patient_id")["split"].nunique().max() == 1


def test_existing_run_is_not_overwritten(run_dir, synth_dir):
    before = (run_dir / "metrics.json").read_bytes()
    second = train(tiny_config(synth_dir, **{"train.epochs": 1}), out=run_dir, progress=False)
    assert second != run_dir and second.name == f"{run_dir.name}-2"
    assert (run_dir / "metrics.json").read_bytes() == before


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "drgrader", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("demo", "synth", "train", "evaluate", "preprocess", "data", "predict", "explain", "export", "serve"):
        assert command in out


def test_cli_reports_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epocs: 3\n")
    res = subprocess.run([sys.executable, "-m", "drgrader", "train", str(bad)], capture_output=True, text=True)
    assert res.returncode == 2
    assert "train.epocs: unknown field" in res.stderr
    assert "Traceback" not in res.stderr


def test_train_fits_the_paired_eye_stage_on_its_validation_patients(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    bundle = json.loads((run_dir / "bundle" / "bundle.json").read_text())
    stage = metrics["paired_stage"]
    assert bundle["paired_eyes"] == stage and stage["model"]["inputs"]
    # Both reported: the eyes decided with their fellow (the headline) and each eye alone.
    assert metrics["test"]["n_images"] == metrics["test_single_eye"]["n_images"]
    assert "val_paired_eyes" in metrics
    test = pd.read_csv(run_dir / "predictions_test.csv")
    assert test["paired"].all()  # every synthetic patient has both eyes


def test_a_trained_bundle_away_from_its_run_knows_its_training_photos(run_dir, synth_dir, tmp_path, caplog):
    """Probe 32 B2: a bundle copied out of its run folder and evaluated on its own training data
    (the config's relative data.root) was called external, its card given an external entry."""
    import logging
    import shutil

    from drgrader.cli import main

    split = pd.read_csv(run_dir / "split.csv")
    digests = (run_dir / "bundle" / "training_photos.sha256").read_text().split()
    assert len(digests) == split["split"].isin(["train", "val"]).sum()  # each photo's bytes, so a copy is found too
    shutil.copytree(run_dir / "bundle", tmp_path / "travelled")
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        assert main(["evaluate", str(tmp_path / "travelled"), "--data", str(synth_dir), "--out", str(tmp_path / "ev"),
                     "--set", "eval.bootstrap=5"]) == 0
    assert f"{len(digests)} of {len(split)} evaluated photos were used to train or tune this model" in caplog.text
    assert "drgrader:external" not in (tmp_path / "travelled" / "MODEL_CARD.md").read_text(encoding="utf-8")

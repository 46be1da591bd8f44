"""`drgrader cv`: k-fold cross-fitting end to end on the synthetic data."""

import json

import pandas as pd
import pytest

from drgrader.cli import main

CONFIG = "cpu_grade_cv"  # shipped config, by name
TINY = {
    "data.format": "kaggle",
    "data.image_size": 48,
    "data.workers": 1,
    "model.backbone": "test_resnet",
    "model.pretrained": "none",
    "train.loss": "mse",
    "train.epochs": 2,
    "train.budget_minutes": "null",  # the recipe's time budget would plan many tiny epochs
    "train.batch_size": 8,
    "eval.tta": "[orig]",
    "eval.bootstrap": 20,
}


def overrides(synth_dir, tmp_path, **extra) -> list[str]:
    settings = {**TINY, "data.root": synth_dir, "data.cache_dir": tmp_path / "cache", **extra}
    return [f"{key}={value}" for key, value in settings.items()]


def cv_args(synth_dir, tmp_path, **extra) -> list[str]:
    return [arg for item in overrides(synth_dir, tmp_path, **extra) for arg in ("--set", item)]


@pytest.mark.slow
def test_cv_pools_out_of_fold_predictions_into_an_ensemble(synth_dir, tmp_path):
    out = tmp_path / "cv"
    sets = cv_args(synth_dir, tmp_path)
    # One fold on its own (as on a machine of its own): no pooling yet.
    assert main(["cv", CONFIG, "--folds", "3", "--fold", "1", "--out", str(out), *sets]) == 0
    assert (out / "fold-1" / "metrics.json").is_file() and not (out / "metrics.json").exists()
    finished = (out / "fold-1" / "metrics.json").stat().st_mtime_ns

    assert main(["cv", CONFIG, "--folds", "3", "--out", str(out), *sets]) == 0
    assert (out / "fold-1" / "metrics.json").stat().st_mtime_ns == finished  # kept, not retrained

    labels = pd.read_csv(synth_dir / "trainLabels.csv")
    oof = pd.read_csv(out / "predictions_oof.csv", dtype={"image_id": str, "patient_id": str})
    assert sorted(oof["image_id"]) == sorted(labels["image"].astype(str))  # every image exactly once
    assert set(oof["fold"]) == {0, 1, 2}
    assert oof.groupby("patient_id")["fold"].nunique().max() == 1  # a patient's eyes share a fold

    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["per_fold"]["folds"]) == {"0", "1", "2"}
    # Probe 46 CJ5: the data as fold 0 read it, with its warnings, in cv's own record (the report and card read it).
    fold_data = json.loads((out / "fold-0" / "metrics.json").read_text())["data"]
    assert metrics["data"]["manifest_sha256"] == fold_data["manifest_sha256"]
    assert metrics["data"].get("warnings") == fold_data.get("warnings") and "splits" not in metrics["data"]["summary"]
    card = (out / "bundle" / "MODEL_CARD.md").read_text(encoding="utf-8")  # the ensemble's own, out-of-fold figures
    assert "ensemble of 3 models" in card and "out-of-fold" in card
    assert all((out / "bundle" / "members" / f"{i}-fold-{i}" / "MODEL_CARD.md").is_file() for i in range(3))
    single = metrics["test_single_eye"]
    assert single["n_images"] == metrics["test"]["n_images"] == len(labels)
    assert single["grade"]["ci"]["kappa"] is not None
    # Grade and referral tell one story: cut-points 1 and 2 are the screening thresholds.
    thresholds = metrics["single_eye_thresholds"]
    assert thresholds["cutpoints"][:2] == [thresholds["any_dr"], thresholds["referable"]]
    assert single["grade"]["agreement_with_screens"] == {"any_dr": 1.0, "referable": 1.0}
    assert single["grade"]["screening_from_grades"]["referable"]["sensitivity"] == pytest.approx(
        single["referable"]["operating_points"]["chosen"]["sensitivity"])

    bundle = json.loads((out / "bundle" / "bundle.json").read_text())
    assert len(bundle["members"]) == 3
    assert bundle["thresholds"] == thresholds and bundle["paired_eyes"]["thresholds"] == metrics["thresholds"] and bundle["paired_eyes"]["model"]["inputs"] == ["expected_grade"]
    report = (out / "report.md").read_text()
    assert "## Paired eyes" in report and "## Cross-validation folds" in report and "mean ± sd" in report
    assert f"drgrader cv {out / 'config.yaml'} --folds 3 --out {out}" in report  # how to reproduce it

    # The ensemble bundle grades a data set with its paired-eye stage.
    ext = tmp_path / "external"
    assert main(["evaluate", str(out / "bundle"), "--data", str(synth_dir), "--out", str(ext)]) == 0
    external = json.loads((ext / "metrics.json").read_text())
    assert external["test"]["n_images"] == len(labels) and "test_single_eye" in external

    # predict pairs the eyes by their Kaggle names (the fifth photo's fellow is not given: it
    # gets the single-eye fallback) and answers on the fused grade, consistently.
    preds_file = tmp_path / "preds.csv"
    images = sorted((synth_dir / "images").glob("*.jpeg"))[:5]
    assert main(["predict", str(out / "bundle"), *map(str, images), "--out", str(preds_file)]) == 0
    preds = pd.read_csv(preds_file)
    assert preds["paired"].tolist() == [True, True, True, True, False] and preds["fused_grade"].notna().all()
    assert ((preds["grade"] >= 2) == (preds["referable"] == 1)).all()
    assert ((preds["grade"] >= 1) == (preds["any_dr"] == 1)).all()


def test_cv_refuses_a_folder_of_another_config(synth_dir, tmp_path, capsys):
    out = tmp_path / "cv"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["cv", CONFIG, "--folds", "3", "--out", str(out), *cv_args(synth_dir, tmp_path)]) == 2
    assert "not a drgrader cv folder" in capsys.readouterr().err
    assert main(["cv", CONFIG, "--folds", "1", "--out", str(tmp_path / "x"), *cv_args(synth_dir, tmp_path)]) == 2

    # A cv folder started with another config (or fold count) is not silently mixed into.
    from drgrader.config import load_config
    from drgrader.workflows.cv import open_cv_dir

    started = tmp_path / "started"
    open_cv_dir(load_config(CONFIG, overrides(synth_dir, tmp_path)), 3, started)
    capsys.readouterr()
    assert main(["cv", CONFIG, "--folds", "3", "--out", str(started), *cv_args(synth_dir, tmp_path, **{"train.lr": 0.01})]) == 2
    assert "another config or fold count" in capsys.readouterr().err
    assert main(["cv", CONFIG, "--folds", "4", "--out", str(started), *cv_args(synth_dir, tmp_path)]) == 2
    assert not any(started.glob("fold-*"))  # refused before any training


def test_cv_refuses_to_pool_folds_that_learnt_from_other_labels(synth_dir, tmp_path, capsys):
    # Folds run in different sessions (--fold i): a grade corrected in between would pool two data sets.
    from drgrader.config import load_config
    from drgrader.data.manifest import read_manifest
    from drgrader.workflows.cv import _check_same_data, open_cv_dir
    from drgrader.workflows.records import manifest_checksum

    cfg = load_config(CONFIG, overrides(synth_dir, tmp_path))
    cv_dir = open_cv_dir(cfg, 3, tmp_path / "cv")
    table = read_manifest(cfg.data).table
    (cv_dir / "fold-0").mkdir()
    table.to_csv(cv_dir / "fold-0" / "manifest.csv", index=False)  # as the fold's training wrote it
    _check_same_data(cv_dir, 3, manifest_checksum(table))  # the same data: nothing said
    table.assign(grade=table["grade"].where(table.index != 0, (table["grade"].iat[0] + 1) % 5)).to_csv(
        cv_dir / "fold-0" / "manifest.csv", index=False)
    capsys.readouterr()
    assert main(["cv", CONFIG, "--folds", "3", "--fold", "1", "--out", str(cv_dir), *cv_args(synth_dir, tmp_path)]) == 2
    assert "fold-0 learnt from other labelled data" in capsys.readouterr().err
    assert not (cv_dir / "fold-1").exists()


def test_cv_refuses_to_pool_folds_that_read_another_picture_under_a_photos_name(synth_dir, tmp_path, capsys):
    # Probe 29 Z12: a photo replaced by another picture (same name) between fold 0 and `--fold 1`
    # was pooled without a word, while a corrected grade is refused.
    import shutil

    import cv2

    from drgrader.config import load_config
    from drgrader.data.cache import build_cache
    from drgrader.data.manifest import read_manifest
    from drgrader.workflows.cv import open_cv_dir

    root = tmp_path / "data"
    shutil.copytree(synth_dir, root)
    cfg = load_config(CONFIG, overrides(root, tmp_path))
    cv_dir = open_cv_dir(cfg, 3, tmp_path / "cv")
    table = read_manifest(cfg.data).table
    fold = cv_dir / "fold-0"
    fold.mkdir()
    table.to_csv(fold / "manifest.csv", index=False)  # as the fold's training wrote them
    build_cache(table, cfg.data, progress=False)[["image_id", "picture"]].to_csv(fold / "pictures.csv", index=False)
    replaced, other = table["path"].iat[0], table["path"].iat[2]  # another patient's photo, mirrored
    cv2.imwrite(str(replaced), cv2.flip(cv2.imread(str(other)), 1))
    capsys.readouterr()
    assert main(["cv", CONFIG, "--folds", "3", "--fold", "1", "--out", str(cv_dir), *cv_args(root, tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"fold-0 learnt from other pictures: 1 photo(s) replaced since under the same name ({table['image_id'].iat[0]})" in err
    assert not (cv_dir / "fold-1").exists()


def test_cv_says_a_test_fraction_is_not_used(tmp_path, caplog):
    # Probe 37 CA8: `cv --set data.split.test=0.3` (a held-out share) was dropped without a word.
    import logging

    from conftest import tiny_config

    from drgrader.data.manifest import DataError
    from drgrader.workflows.cv import run_cv

    cfg = tiny_config(tmp_path / "no-data", **{"data.split.test": 0.3})
    with caplog.at_level(logging.INFO, logger="drgrader"), pytest.raises(DataError, match="not found"):
        run_cv(cfg, folds=2, out=tmp_path / "cv")  # the data folder is missing: refused after the line
    assert "data.split.test=0.3 is not used: cv draws its folds over every labelled photo" in caplog.text
    caplog.clear()  # probe 38 CB8: a config's kfold folds beside --folds
    cfg = tiny_config(tmp_path / "no-data", **{"data.split.method": "kfold", "data.split.folds": 10, "data.split.test": 0})
    with caplog.at_level(logging.INFO, logger="drgrader"), pytest.raises(DataError, match="not found"):
        run_cv(cfg, folds=2, out=tmp_path / "cv")
    assert "data.split.folds=10 is not used: cv trains the --folds 2 folds (give --folds 10 for the config's)" in caplog.text
    caplog.clear()  # probe 39 CC6: given under the patient split alike
    cfg = tiny_config(tmp_path / "no-data", **{"data.split.folds": 5})
    with caplog.at_level(logging.INFO, logger="drgrader"), pytest.raises(DataError, match="not found"):
        run_cv(cfg, folds=2, out=tmp_path / "cv")
    assert "data.split.folds=5 is not used: cv trains the --folds 2 folds" in caplog.text
    assert not (tmp_path / "cv").exists()

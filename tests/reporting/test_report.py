"""The run report: built from fake run folders written the way a training run (or an
evaluation-only run) writes them, with metrics from the real ``evaluate_table``."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from drgrader.config import ExperimentConfig, save_config
from drgrader.data.summary import summarize
from drgrader.evaluation.evaluate import write_metrics
from drgrader.evaluation.results import evaluate_table
from drgrader.io import atomic_write_json, atomic_write_text
from drgrader.reporting import write_report
from drgrader.reporting.document import THUMBNAIL_PX
from drgrader.reporting.gallery import select_errors
from drgrader.reporting.plots import epoch_table

GRADE_PROBS = [0.55, 0.1, 0.2, 0.08, 0.07]
EYEPACS_PROBS = [0.73, 0.07, 0.15, 0.025, 0.025]  # the screener: ~27% diseased, as in seed 001
N_BOOT = 50


# --------------------------------------------------------------------------- fakes
def fundus_images(folder: Path, n: int = 4) -> list[str]:
    """A few small synthetic fundus photos for the gallery thumbnails."""
    from PIL import Image

    from drgrader.synth import make_fundus

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"photo{i}.jpeg"
        Image.fromarray(make_fundus(i % 5, np.random.default_rng(i), height=96)).save(path)
        paths.append(str(path))
    return paths


def eyes_table(
    rng: np.random.Generator, n_patients: int, split: str, photos: list[str], probs=GRADE_PROBS
) -> pd.DataFrame:
    """Two eyes per patient; the second eye mostly has the first eye's grade."""
    first = rng.choice(5, n_patients, p=probs)
    second = np.where(rng.random(n_patients) < 0.7, first, rng.choice(5, n_patients, p=probs))
    grades = np.stack([first, second], axis=1).ravel()
    patients = np.repeat([f"{split}{i}" for i in range(n_patients)], 2)
    eyes = np.tile(["left", "right"], n_patients)
    n = 2 * n_patients
    return pd.DataFrame({
        "image_id": [f"{p}_{e}" for p, e in zip(patients, eyes)],
        "patient_id": patients,
        "eye": eyes,
        "grade": grades,
        "split": split,
        "gradable": rng.random(n) > 0.08,
        "quality_reason": "",
        "path": [photos[i % len(photos)] for i in range(n)],
        "source": "kaggle",
    })


def grade_scores(rng: np.random.Generator, rows: pd.DataFrame, noise: float = 0.6) -> pd.DataFrame:
    """A softmax-5 grader that is usually right: probabilities peak near a noisy grade."""
    latent = rows["grade"].to_numpy() + rng.normal(0, noise, len(rows))
    logits = -((latent[:, None] - np.arange(5)[None, :]) ** 2) / 0.8
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    out = rows.drop(columns="source").copy()
    for k in range(5):
        out[f"p{k}"] = p[:, k]
    out["expected_grade"] = p @ np.arange(5)
    out["score_any"] = 1 - p[:, 0]
    out["score_referable"] = p[:, 2:].sum(axis=1)
    out["pred_grade"] = p.argmax(axis=1).astype(float)
    return out


def binary_scores(rng: np.random.Generator, rows: pd.DataFrame, miss: float) -> pd.DataFrame:
    """An any-DR screener that gives a low score to ``miss`` of the diseased eyes (seed 001)."""
    diseased = rows["grade"].to_numpy() >= 1
    low = rng.uniform(0.02, 0.45, len(rows))
    high = rng.uniform(0.55, 0.98, len(rows))
    missed = rng.random(len(rows)) < miss
    false_alarm = rng.random(len(rows)) < 0.03
    score = np.where(diseased, np.where(missed, low, high), np.where(false_alarm, high, low))
    out = rows.drop(columns="source").copy()
    for column in ("p0", "p1", "p2", "p3", "p4", "expected_grade", "score_referable", "pred_grade"):
        out[column] = np.nan
    out["score_any"] = score
    return out


def decide(pred: pd.DataFrame, thresholds: dict) -> pd.DataFrame:
    pred = pred.copy()
    for name, column in (("any_dr", "score_any"), ("referable", "score_referable")):
        score = pred[column].to_numpy(dtype=float)
        pred[f"{name}_pred"] = np.where(np.isnan(score), np.nan, (score >= thresholds[name]).astype(float))
    return pred


def training_log(epochs: int = 4) -> pd.DataFrame:
    """Sparse rows like Lightning's CSVLogger: an lr row (step, no epoch) at each epoch's start,
    step rows, a validation row, an epoch row."""
    rows, step = [], 0
    for epoch in range(epochs):
        rows.append({"step": step, "lr-AdamW": 1e-3 * 0.7 ** epoch})
        for _ in range(3):
            rows.append({"epoch": epoch, "step": step, "train_loss_step": 1.5 / (epoch + 1) + 0.1})
            step += 1
        rows.append({"epoch": epoch, "step": step - 1, "val_loss": 1.2 / (epoch + 1) + 0.3,
                     "val_kappa": 0.3 + 0.1 * epoch, "val_auc_referable": 0.7 + 0.05 * epoch,
                     "val_metric": 0.3 + 0.1 * epoch})
        rows.append({"epoch": epoch, "step": step - 1, "train_loss_epoch": 1.4 / (epoch + 1) + 0.1})
    return pd.DataFrame(rows)


def make_run(
    folder: Path,
    *,
    task: str = "grade",
    miss: float = 0.1,
    training: bool = True,
    tta: bool = False,
    n_patients: int = 60,
    evaluated_on: str = "test",
) -> dict:
    """A run folder as workflows/train.py (or workflows/evaluate.py when not ``training``)
    writes it; returns the metrics."""
    rng = np.random.default_rng(7)
    photos = fundus_images(folder.parent / f"{folder.name}-photos")
    probs = GRADE_PROBS if task == "grade" else EYEPACS_PROBS
    val_rows = eyes_table(rng, n_patients // 2, "val", photos, probs)
    test_rows = eyes_table(rng, n_patients, "test", photos, probs)
    train_rows = eyes_table(rng, 2 * n_patients, "train", photos, probs)
    if task == "grade":
        thresholds = {"cutpoints": None, "any_dr": 0.5, "referable": 0.5}
        val, test, plain = (grade_scores(rng, val_rows), grade_scores(rng, test_rows),
                            grade_scores(rng, test_rows, noise=0.8))
    else:
        thresholds = {"cutpoints": None, "any_dr": 0.5, "referable": None}
        val, test, plain = (binary_scores(rng, r, miss) for r in (val_rows, test_rows, test_rows))
    thresholds_all = {"any_dr": thresholds["any_dr"], "referable": thresholds["referable"] or 0.5}
    val, test, plain = (decide(d, thresholds_all) for d in (val, test, plain))
    folder.mkdir(parents=True)
    atomic_write_text(folder / "predictions_val.csv", val.to_csv(index=False))
    atomic_write_text(folder / "predictions_test.csv", test.to_csv(index=False))

    table = pd.concat([train_rows, val_rows, test_rows], ignore_index=True)
    metrics = {
        "run": folder.name,
        "created": "2025-01-02T03:04:05+00:00",
        "versions": {"drgrader": "0.1.0", "torch": "2.x", "python": "3.11"},
        "data": {
            "summary": summarize(table, table["split"], table, check_images=False),
            "skipped": {"missing_images": 0},
            "manifest_sha256": "0123456789abcdef",
        },
        "evaluated_on": evaluated_on,
        "tta_views": ["orig", "hflip"] if tta else ["orig"],
        "thresholds": thresholds,
        "val": evaluate_table(val, thresholds, n_boot=0),
        "test": evaluate_table(test, thresholds, n_boot=N_BOOT),
    }
    if tta:
        metrics["test_no_tta"] = evaluate_table(plain, thresholds, n_boot=0)
    if training:
        metrics["training"] = {"best_checkpoint": str(folder / "checkpoints" / "best.ckpt"), "best_epoch": 2,
                               "epochs_run": 4, "best_val_metric": 0.5, "wall_time_s": 123.4, "weights": "none"}
        (folder / "logs").mkdir()
        atomic_write_text(folder / "logs" / "metrics.csv", training_log().to_csv(index=False))
        cfg = ExperimentConfig.model_validate({"name": folder.name, "model": {
            "task": task, "backbone": "resnet18"}, "train": {"loss": "ce" if task == "grade" else "bce"}})
        save_config(cfg, folder / "config.yaml")
    else:
        metrics["model"] = str(folder.parent / "some-run" / "bundle")
    write_metrics(folder / "metrics.json", metrics)  # as evaluate writes it: with the predictions' checksums
    return json.loads((folder / "metrics.json").read_text())


def assert_self_contained(page: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<link" not in page and "<script" not in page
    sources = re.findall(r"""<img[^>]*\ssrc="([^"]*)\"""", page)
    assert sources, "the report has no images"
    assert all(s.startswith("data:image/png;base64,") for s in sources)


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000, path


# --------------------------------------------------------------------------- tests
def test_grade_run_report_is_complete_and_self_contained(tmp_path):
    run = tmp_path / "grade-run"
    metrics = make_run(run, task="grade", tta=True)
    path = write_report(run)
    assert path == run / "report.html"
    page = path.read_text(encoding="utf-8")
    assert_self_contained(page)
    assert "could not be rendered" not in page

    test = metrics["test"]
    assert f"{test['grade']['kappa']:.3f}" in page
    kappa_ci = test["grade"]["ci"]["kappa"]
    assert f"{kappa_ci[0]:.3f}–{kappa_ci[1]:.3f}" in page
    chosen = test["referable"]["operating_points"]["chosen"]
    assert f"Of <strong>{chosen['tp'] + chosen['fn']} eyes with referable DR" in page
    assert f"<strong>missed {chosen['fn']}</strong>" in page
    for section in ("Test-time augmentation", "without TTA", "Per-grade results", "macro avg", "weighted avg",
                    "Patient level", "Gradability", "Most confident errors", "Ensemble", "Configuration",
                    "drgrader train"):
        if section == "Ensemble":
            assert "Ensemble members" not in page  # no members: no section
            continue
        assert section in page, section
    assert "<details>" in page and "backbone: resnet18" in page

    for name in ("learning_curves.png", "confusion.png", "roc.png", "reliability.png", "error_01.png"):
        assert_png(run / "figures" / name)
    markdown = (run / "report.md").read_text(encoding="utf-8")
    assert f"{test['grade']['kappa']:.3f}" in markdown
    referenced = re.findall(r"\]\((figures/[^)]+\.png)\)", markdown)
    assert "figures/roc.png" in referenced
    assert all((run / r).is_file() for r in referenced)


def test_seed001_like_screener_shows_its_warning(tmp_path):
    # 77%-ish accuracy while missing three quarters of the diseased eyes, as seed 001 did.
    run = tmp_path / "screener"
    metrics = make_run(run, task="any_dr", miss=0.75, n_patients=120)
    section = metrics["test"]["any_dr"]["operating_points"]["chosen"]
    assert section["sensitivity"] < 0.35 and section["accuracy"] > 0.7
    warnings = metrics["test"]["warnings"]
    missing = [w for w in warnings if "misses" in w]
    assert missing, warnings

    page = write_report(run).read_text(encoding="utf-8")
    assert_self_contained(page)
    assert "could not be rendered" not in page
    for warning in warnings:
        # The text up to the (HTML-escaped) ">" of the IDx-DR bar.
        assert warning.split(">")[0].rstrip() in page
    assert f"misses {1 - section['sensitivity']:.0%} of diseased eyes" in page
    assert "NO ✗" in page  # the IDx-DR verdict
    assert f"<strong>missed {section['fn']}</strong>" in page
    # Binary model: the grade sections say why they are missing, the 2 x 2 table is drawn.
    assert "Binary screening model" in page
    assert_png(run / "figures" / "confusion_any_dr.png")
    assert_png(run / "figures" / "roc.png")
    assert "misses" in (run / "report.md").read_text(encoding="utf-8")


def test_evaluation_only_folder_renders_without_log_or_config(tmp_path):
    run = tmp_path / "eval-external"
    make_run(run, training=False, evaluated_on=f"external:{tmp_path / 'other-data'}", n_patients=30)
    page = write_report(run).read_text(encoding="utf-8")
    assert_self_contained(page)
    assert "could not be rendered" not in page
    assert "Evaluation-only folder" in page
    assert "external data set" in page
    assert "No configuration in this folder" in page
    assert not (run / "figures" / "learning_curves.png").exists()
    assert "drgrader evaluate" in page and "--data" in page
    assert "labelled photo(s) are not counted" not in page
    # Probe 33 BV9: a labelled photo skipped as unreadable is said beside the counts it is missing from.
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["data"]["skipped"] = {"missing_image": 0, "unlabelled_files": 2, "unreadable_image": 1}
    atomic_write_json(run / "metrics.json", metrics)
    page = write_report(run).read_text(encoding="utf-8")
    assert "1 labelled photo(s) are not counted (1 unreadable image)." in page

    # With the config passed in (as drgrader evaluate does), it is shown.
    cfg = ExperimentConfig.model_validate({"name": "external-check", "data": {"image_size": 96}})
    page = write_report(run, config=cfg).read_text(encoding="utf-8")
    assert "name: external-check" in page


def test_gallery_uses_grad_cam_when_the_run_has_a_bundle(tmp_path, tiny_bundle):
    pytest.importorskip("pytorch_grad_cam")
    run = tmp_path / "with-bundle"
    make_run(run, task="grade", n_patients=10)
    shutil.copytree(tiny_bundle, run / "bundle")
    own = json.loads((run / "bundle" / "bundle.json").read_text())["config"]
    save_config(ExperimentConfig.model_validate(own), run / "config.yaml")  # the run the bundle was trained in
    write_report(run)
    from PIL import Image

    with Image.open(run / "figures" / "error_01.png") as im:
        assert im.width > 1.5 * THUMBNAIL_PX  # photo and overlay side by side
    assert "Grad-CAM" in (run / "report.html").read_text(encoding="utf-8")


def test_gallery_draws_no_grad_cam_with_another_runs_bundle(tmp_path, tiny_bundle, caplog):
    # Before (probe 59 CW3): another run's bundle copied into RUN/bundle (another seed, image size ...):
    # `report RUN` drew its Grad-CAM and input panels under this run's captions, without a word.
    pytest.importorskip("pytorch_grad_cam")
    run = tmp_path / "with-bundle"
    make_run(run, task="grade", n_patients=10)
    shutil.copytree(tiny_bundle, run / "bundle")
    own = json.loads((run / "bundle" / "bundle.json").read_text())["config"]
    save_config(ExperimentConfig.model_validate({**own, "train": {**own["train"], "seed": 7}}), run / "config.yaml")
    write_report(run)
    from PIL import Image

    with Image.open(run / "figures" / "error_01.png") as im:
        assert im.width <= 1.5 * THUMBNAIL_PX  # the photo alone
    said = (f"{run} is not the run {run / 'bundle'} was trained in (train.seed: the bundle's {own['train']['seed']}, "
            "the run's 7): the report's Grad-CAM would show another model under this run's predictions; the error "
            "gallery is drawn without it")
    assert said in caplog.text
    markdown = (run / "report.md").read_text(encoding="utf-8")
    assert f"No Grad-CAM: {said}." in markdown and "right: Grad-CAM" not in markdown


def test_report_needs_metrics(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.json"):
        write_report(tmp_path)


def test_select_errors_orders_grade_errors_by_distance_from_truth():
    pred = pd.DataFrame({
        "image_id": ["a", "b", "c", "d"],
        "grade": [4, 0, 2, 1],
        "pred_grade": [0.0, 0.0, 1.0, 2.0],
        "expected_grade": [0.4, 0.1, 1.3, 1.6],
    })
    errors = select_errors(pred)
    # a: |0.4-4| = 3.6, c: 0.7, d: 0.6; b is right.
    assert errors["image_id"].tolist() == ["a", "c", "d"]
    assert errors["severity"].tolist() == pytest.approx([3.6, 0.7, 0.6])


def test_select_errors_for_a_binary_screener_uses_the_threshold():
    pred = pd.DataFrame({
        "image_id": ["a", "b", "c", "d"],
        "grade": [3, 0, 1, 0],
        "pred_grade": np.nan,
        "score_any": [0.1, 0.9, 0.45, 0.2],
        "any_dr_pred": [0.0, 1.0, 0.0, 0.0],
        "score_referable": np.nan,
    })
    errors = select_errors(pred, {"any_dr": 0.5})
    # a: missed, 0.4 from the threshold; b: false alarm, 0.4; c: missed, 0.05; d is right.
    assert errors["image_id"].tolist() == ["a", "b", "c"]
    assert errors["severity"].tolist() == pytest.approx([0.4, 0.4, 0.05])


def test_epoch_table_collapses_sparse_logger_rows():
    epochs = epoch_table(training_log(epochs=2))
    assert epochs.index.tolist() == [0, 1]
    assert epochs.loc[1, "val_loss"] == pytest.approx(1.2 / 2 + 0.3)
    assert epochs.loc[1, "train_loss_epoch"] == pytest.approx(1.4 / 2 + 0.1)
    assert epochs["lr-AdamW"].tolist() == pytest.approx([1e-3, 0.7e-3])



def test_report_without_thresholds_cis_or_predictions_still_renders(tmp_path):
    # An ensemble evaluated on validation with no fitted thresholds, bootstrap off, and the
    # predictions file gone: every section either renders or says why it is missing.
    run = tmp_path / "ensemble"
    make_run(run, task="grade", n_patients=40)
    pred = pd.read_csv(run / "predictions_test.csv")
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["thresholds"] = {}
    metrics["test"] = evaluate_table(pred, {}, n_boot=0)
    metrics["evaluated_on"] = "val"
    metrics["members"] = {
        "model-a": {"kappa": [0.61, [0.5, 0.7]], "referable_auc": [0.8, None]},
        "model-b": {"kappa": [0.55, None], "referable_auc": [0.77, [0.7, 0.84]]},
    }
    atomic_write_json(run / "metrics.json", metrics)
    (run / "predictions_test.csv").unlink()

    page = write_report(run).read_text(encoding="utf-8")
    assert_self_contained(page)
    assert "could not be rendered" not in page
    assert "no threshold was fitted on validation" in page
    assert "No confidence intervals were computed" in page
    assert "validation split" in page and "optimistic" in page
    assert "Ensemble members" in page and "model-a" in page and "0.610 (0.500–0.700)" in page
    assert "No predictions_test.csv" in page
    # The summary falls back on decisions read from the predicted grades.
    figures = metrics["test"]["grade"]["screening_from_grades"]["referable"]
    assert f"<strong>missed {figures['fn']}</strong>" in page


def test_report_refuses_predictions_edited_since_metrics_json(tmp_path, capsys):
    # probe 27 X5: the gallery and ROC curves were redrawn from the edited file, the tables not.
    from drgrader.cli import main

    run = tmp_path / "edited"
    metrics = make_run(run, task="grade", n_patients=20)
    assert set(metrics["predictions_sha256"]) == {"predictions_test.csv", "predictions_val.csv"}
    assert main(["report", str(run)]) == 0  # the files as evaluate wrote them
    capsys.readouterr()
    report = (run / "report.md").read_text(encoding="utf-8")
    pred = pd.read_csv(run / "predictions_test.csv")
    pred["pred_grade"] = 4
    pred.to_csv(run / "predictions_test.csv", index=False)
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "predictions_test.csv changed since" in err and "drgrader evaluate" in err
    assert (run / "report.md").read_text(encoding="utf-8") == report  # not rewritten


def test_an_older_run_without_checksums_is_reported_as_before_and_says_so(tmp_path, caplog):
    import logging

    run = tmp_path / "older"
    metrics = make_run(run, task="grade", n_patients=20)
    del metrics["predictions_sha256"]
    atomic_write_json(run / "metrics.json", metrics)
    with caplog.at_level(logging.INFO, logger="drgrader"):
        page = write_report(run).read_text(encoding="utf-8")
    assert "could not be rendered" not in page
    assert any("records no checksum" in r.getMessage() and "older run" in r.getMessage() for r in caplog.records)


def test_an_any_dr_screeners_decision_rules_name_its_own_threshold_and_no_urgent_grade():
    # Probe 35 AY12 / probe 36 AZ11: an any-DR screener's report and card spoke of "the referable
    # threshold" and of an urgent grade reaching "n/a".
    from drgrader.reporting.model_card_figures import _patient_decision_blocks
    from drgrader.reporting.sections_decisions import _rules_text

    section = {"rules": {"referable_score": "score_any", "referable_threshold": 0.6, "urgent_threshold": None,
                         "uncertainty_cutoff": 0.2, "refer_share": 0.1}}
    text = _rules_text(section, {"urgent_rule": "no grade score (a screening-only model): no urgent outcome"})
    assert "**Urgent** is not decided (the model gives no grade score); **refer** when an eye's any-DR score reaches the " \
           "any-DR threshold 0.6" in text
    assert "close to the any-DR threshold is **uncertain**" in text and "n/a" not in text
    card = _patient_decision_blocks({"refer_share": 0.0}, task="any_dr")[0].text
    assert "**refer** (any DR) follow the any-DR threshold above" in card

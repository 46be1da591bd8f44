"""Resumed work never reuses what was made from inputs that changed since: a photo replaced on
disk after an interrupted ``predict`` is graded again, and ``train --resume`` refuses a label
file that changed since the run started (as ``cv`` refuses to pool such folds)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import tiny_config
from counting_runner import CountingRunner

from drgrader.cli import main
from drgrader.config import load_config, save_config
from drgrader.data.manifest import read_manifest
from drgrader.inference.bundle import load_bundle
from drgrader.inference.predict import predict_images
from drgrader.outputs import OutputError
from drgrader.synth import make_fundus
from drgrader.workflows.predict import predict_command
from drgrader.workflows.run_folder import check_resumed_config

SCORES = ["p0", "p1", "p2", "p3", "p4"]


def write_photo(path, grade: int, seed: int) -> None:
    rgb = make_fundus(grade, np.random.default_rng(seed), height=128)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def test_resumed_predict_grades_again_a_photo_replaced_since_the_interruption(tiny_bundle, tmp_path, caplog):
    folder, out = tmp_path / "photos", tmp_path / "pred.csv"
    folder.mkdir()
    for seed, name in enumerate(["7_left", "7_right", "8_left", "8_right"]):
        write_photo(folder / f"{name}.jpeg", seed % 5, seed)
    bundle = load_bundle(tiny_bundle)
    runner = bundle.runner
    bundle.runner = CountingRunner(runner, fail_at=2)
    with pytest.raises(KeyboardInterrupt):  # 7_left and 7_right done, then interrupted
        predict_command(bundle, [folder], out=out, batch_size=2)
    old = pd.read_csv(out.with_name(out.name + ".partial.csv")).set_index("image_id")

    # The photo is fixed on disk (a finished copy replaces a bad one) before the rerun.
    replaced = folder / "7_left.jpeg"
    write_photo(replaced, 4, 99)
    stat = replaced.stat()
    os.utime(replaced, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a new time, whatever the clock's step
    bundle.runner = counter = CountingRunner(runner)
    with caplog.at_level(logging.INFO, logger="drgrader"):
        predict_command(bundle, [folder], out=out, batch_size=2)

    rows = pd.read_csv(out).set_index("image_id")
    bundle.runner = runner
    fresh = predict_images(bundle, [replaced], progress=False).iloc[0]
    assert not np.allclose(old.loc["7_left", SCORES].astype(float), fresh[SCORES].astype(float), atol=1e-4)
    np.testing.assert_allclose(rows.loc["7_left", SCORES].astype(float), fresh[SCORES].astype(float), atol=1e-5)
    assert counter.calls == 2  # 7_left again, 8_left and 8_right: 7_right, unchanged, is reused
    np.testing.assert_allclose(rows.loc["7_right", SCORES].astype(float), old.loc["7_right", SCORES].astype(float))
    assert "resuming: 1 of 4 images already done" in caplog.text
    assert "1 photo(s) changed on disk (size or modification time) since the interrupted run: graded again" in caplog.text


def test_predict_of_other_photos_onto_an_interrupted_runs_output_keeps_its_rows(tiny_bundle, tmp_path, monkeypatch):
    """Probe 32 A16: an interrupted run's finished rows were deleted by the next predict onto the
    same --out (or the default one) with other photos: its rows not among their inputs, dropped."""
    folder, other = tmp_path / "photos", tmp_path / "other"
    folder.mkdir()
    other.mkdir()
    for seed, name in enumerate(["7_left", "7_right", "8_left", "8_right"]):
        write_photo(folder / f"{name}.jpeg", seed % 5, seed)
    write_photo(other / "9_left.jpeg", 1, 9)
    monkeypatch.chdir(tmp_path)  # the default --out, predictions.csv
    bundle = load_bundle(tiny_bundle)
    runner = bundle.runner
    bundle.runner = CountingRunner(runner, fail_at=2)
    with pytest.raises(KeyboardInterrupt):
        predict_command(bundle, [folder], batch_size=2)
    partial = tmp_path / "predictions.csv.partial.csv"
    kept = partial.read_bytes()
    bundle.runner = runner
    with pytest.raises(OutputError, match=r"holds 2 finished rows of a run of other photos \(2 of them not among this "
                                          r"run's inputs\): rerun with that run's options to resume"):
        predict_command(bundle, [other], batch_size=2)
    assert partial.read_bytes() == kept
    predict_command(bundle, [folder], batch_size=2)  # the interrupted run resumes and finishes
    assert len(pd.read_csv(tmp_path / "predictions.csv")) == 4


def test_predict_interrupted_before_its_first_row_resumes(tiny_bundle, tmp_path):
    folder, out = tmp_path / "photos", tmp_path / "pred.csv"
    folder.mkdir()
    write_photo(folder / "7_left.jpeg", 1, 1)
    bundle = load_bundle(tiny_bundle)
    runner = bundle.runner
    bundle.runner = CountingRunner(runner, fail_at=1)
    with pytest.raises(KeyboardInterrupt):
        predict_command(bundle, [folder], out=out)
    assert out.with_name(out.name + ".partial.csv").read_bytes() == b""  # no row written yet
    bundle.runner = runner
    assert len(pd.read_csv(predict_command(bundle, [folder], out=out))) == 1


def interrupted_run(tiny_bundle, tmp_path, **options):
    """Four photos, two graded (one batch) before a Ctrl-C: the bundle, its real runner, the folder, out."""
    folder, out = tmp_path / "photos", tmp_path / "pred.csv"
    folder.mkdir(parents=True)
    for seed, name in enumerate(["7_left", "7_right", "8_left", "8_right"]):
        write_photo(folder / f"{name}.jpeg", seed % 5, seed)
    bundle = load_bundle(tiny_bundle)
    runner = bundle.runner
    bundle.runner = CountingRunner(runner, fail_at=2)
    with pytest.raises(KeyboardInterrupt):
        predict_command(bundle, [folder], out=out, batch_size=2, **options)
    return bundle, runner, folder, out


def test_predict_resumes_when_the_bundles_own_views_are_spelled_out(tiny_bundle, tmp_path):
    # Before: the key held --tta as given (None against ["orig"]): the rows were deleted and graded again.
    bundle, runner, folder, out = interrupted_run(tiny_bundle, tmp_path)
    bundle.runner = counter = CountingRunner(runner)
    predict_command(bundle, [folder], out=out, batch_size=2, tta=list(bundle.tta))
    assert counter.calls == 1 and len(pd.read_csv(out)) == 4  # only 8_left and 8_right graded


def test_an_interrupted_run_is_not_continued_by_another_backend(tiny_bundle, tmp_path):
    """Probe 34 AX6: a run cut under --backend onnx and resumed under torch mixed the two engines'
    rows without a word."""
    from drgrader.inference import export

    exported = export.export_command(tiny_bundle, out=tmp_path / "tiny-onnx")
    bundle, runner, folder, out = interrupted_run(exported, tmp_path / "run")
    assert json.loads(out.with_name(out.name + ".partial.json").read_text())["backend"] == "torch:float32"
    with pytest.raises(OutputError, match=r"--backend torch:float32 \(now onnx:model.onnx\): rerun with that run's options"):
        predict_command(load_bundle(exported, "onnx"), [folder], out=out, batch_size=2)
    bundle.runner = runner
    assert len(pd.read_csv(predict_command(bundle, [folder], out=out, batch_size=2))) == 4  # the same backend resumes


def test_an_interrupted_run_of_other_views_is_refused_never_deleted(tiny_bundle, tmp_path, caplog):
    # Before: "ignoring ...partial.csv" and the finished rows deleted before one new row existed.
    bundle, runner, folder, out = interrupted_run(tiny_bundle, tmp_path)
    partial = out.with_name(out.name + ".partial.csv")
    rows = partial.read_bytes()
    bundle.runner = CountingRunner(runner)
    with pytest.raises(OutputError, match=r"holds 2 finished rows of --tta orig \(now hflip orig\): rerun with that run's options"):
        predict_command(bundle, [folder], out=out, batch_size=2, tta=["hflip", "orig"])
    assert partial.read_bytes() == rows and bundle.runner.calls == 0
    predict_command(bundle, [folder], out=out, batch_size=2)  # the original command still resumes
    assert bundle.runner.calls == 1
    # --overwrite starts again, saying what it discards
    bundle, runner, folder, out = interrupted_run(tiny_bundle, tmp_path / "again")
    bundle.runner = counter = CountingRunner(runner)
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        predict_command(bundle, [folder], out=out, batch_size=2, tta=["hflip"], overwrite=True)
    assert counter.calls == 2 and "--overwrite: discarding" in caplog.text


@pytest.mark.parametrize("versions", [{"drgrader": "0.1.0", "photo_checks": 7}, None])
def test_rows_graded_by_another_drgrader_version_are_graded_again(tiny_bundle, tmp_path, caplog, versions):
    # Probe 30 F4: a run interrupted under an earlier drgrader (no compression check) resumed after
    # the upgrade kept its rows' old quality verdicts. The resume record names the drgrader and
    # photo-check versions (data.cache.CACHE_VERSION); rows of another or of an unknown one
    # (a record written before versions were recorded) are graded again, saying so.
    import json

    from drgrader.workflows.predict import resume_key_file

    bundle, runner, folder, out = interrupted_run(tiny_bundle, tmp_path)
    key = json.loads(resume_key_file(out).read_text())
    assert key["versions"]["photo_checks"] >= 8  # the version with the compression check
    if versions is None:
        del key["versions"]
    else:
        key["versions"] = versions
    resume_key_file(out).write_text(json.dumps(key))
    bundle.runner = counter = CountingRunner(runner)
    with caplog.at_level(logging.INFO, logger="drgrader"):
        predict_command(bundle, [folder], out=out, batch_size=2)
    writer = "drgrader 0.1.0, photo checks 7" if versions else "an unknown drgrader version (its record names none"
    assert f"pred.csv.partial.csv was written by {writer}" in caplog.text
    assert "its 2 finished rows are graded again, so that every photo gets this version's photo checks" in caplog.text
    assert "resuming" not in caplog.text and counter.calls == 2 and len(pd.read_csv(out)) == 4


def resumable_run(tmp_path, cfg):
    """A run folder `train --resume` accepts as one: its config and a checkpoint (never loaded: the checks come first)."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    save_config(cfg, run / "config.yaml")
    return run


def test_train_resume_refuses_labels_changed_since_the_run_started(synth_dir, tmp_path, capsys):
    from drgrader.workflows.records import manifest_checksum
    from drgrader.workflows.run_folder import check_same_data

    root = tmp_path / "data"
    shutil.copytree(synth_dir, root)
    cfg = tiny_config(root)
    run = resumable_run(tmp_path, cfg)
    table = read_manifest(cfg.data).table
    table.to_csv(run / "manifest.csv", index=False)  # as the run's start wrote it
    check_same_data(run, manifest_checksum(table), why="")  # the same data: nothing said

    labels = pd.read_csv(root / "trainLabels.csv")
    labels.loc[0, "level"] = (labels.loc[0, "level"] + 1) % 5  # one grade corrected in between
    labels.to_csv(root / "trainLabels.csv", index=False)
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"error: {run} learnt from other labelled data" in err
    assert "the run would go on learning from both; restore the data, or train a new run" in err
    assert not (run / "train.log").exists()  # refused before any work


def test_train_resume_refuses_a_photo_replaced_by_another_picture_since_the_run_started(synth_dir, tmp_path, capsys):
    # Before (probe 58 CV2): `train --resume RUN` after a training photo was replaced by another
    # picture under its name resumed without a word, learning from both pictures under one label
    # (cv refuses this for its folds; a corrected grade was refused).
    from drgrader.data.cache import build_cache

    root = tmp_path / "data"
    shutil.copytree(synth_dir, root)
    cfg = tiny_config(root, **{"data.cache_dir": tmp_path / "cache"})
    run = resumable_run(tmp_path, cfg)
    table = read_manifest(cfg.data).table
    table.to_csv(run / "manifest.csv", index=False)  # as the run's start wrote them
    build_cache(table, cfg.data, progress=False)[["image_id", "picture"]].to_csv(run / "pictures.csv", index=False)
    table.assign(split="train")[["image_id", "patient_id", "split"]].to_csv(run / "split.csv", index=False)
    replaced, other = table["path"].iat[0], table["path"].iat[2]  # another patient's photo, mirrored
    cv2.imwrite(str(replaced), cv2.flip(cv2.imread(str(other)), 1))
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--progress", "log"]) == 2
    err = capsys.readouterr().err
    assert (f"error: {run} learnt from other pictures: 1 photo(s) replaced since under the same name "
            f"({table['image_id'].iat[0]}), and the run would go on learning from both; restore the data, or train a new run") in err
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == b"" and not (run / "metrics.json").exists()


def test_train_resume_refuses_a_set_that_changes_what_the_run_learns(synth_dir, tmp_path, capsys):
    # Before (probe 25): `train --resume RUN --set data.image_size=64 --set train.epochs=4` trained epochs
    # 3-4 at 64 px, its config.yaml still said 48 px and 2 epochs, and the bundle graded at 64 px with
    # weights kept from 48 px.
    cfg = tiny_config(synth_dir)
    run = resumable_run(tmp_path, cfg)
    saved = (run / "config.yaml").read_text()
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--set", f"data.image_size={cfg.data.image_size + 16}",
                 "--set", f"train.epochs={cfg.train.epochs + 2}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --resume continues {run} as it was configured; data.image_size {cfg.data.image_size} -> "
                          f"{cfg.data.image_size + 16} would change what its checkpoint learnt: train a new run")
    assert (run / "config.yaml").read_text() == saved and not (run / "train.log").exists()
    # Fewer epochs (before, probe 26: a finished 2-epoch run "resumed" to 1 trained nothing, its config then said 1).
    assert main(["train", "--resume", str(run), "--set", f"train.epochs={cfg.train.epochs - 1}"]) == 2
    assert "(a resumed run's epochs may grow, not shrink" in capsys.readouterr().err
    # How it runs may change, and the folder says so.
    check_resumed_config(run, load_config(run / "config.yaml", ["train.max_minutes=5", f"train.epochs={cfg.train.epochs + 2}"]))
    resumed = load_config(run / "config.yaml")
    assert (resumed.train.max_minutes, resumed.train.epochs) == (5, cfg.train.epochs + 2)


def _run_on_a_copy(synth_dir, tmp_path):
    """(a copy of the synthetic data set, a one-epoch run trained on it): the copy may be edited."""
    root = tmp_path / "data"
    shutil.copytree(synth_dir, root)
    config = tmp_path / "tiny.yaml"
    save_config(tiny_config(root, **{"train.epochs": 1, "data.cache_dir": tmp_path / "cache"}), config)
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run), "--progress", "log"]) == 0
    return root, run


def test_evaluate_run_after_a_grade_was_corrected_names_the_change(synth_dir, tmp_path, caplog):
    # Probe 29 Z13: `evaluate RUN` after a grade of its data set was corrected said nothing; its
    # report's training section then stood beside figures on other labels.
    import json

    root, run = _run_on_a_copy(synth_dir, tmp_path)
    caplog.clear()
    assert main(["evaluate", str(run), "--out", str(tmp_path / "same"), "--set", "eval.bootstrap=5"]) == 0
    assert "changed since" not in caplog.text  # the same data: nothing said
    labels = pd.read_csv(root / "trainLabels.csv")
    image, old = labels.loc[0, "image"], labels.loc[0, "level"]
    labels.loc[0, "level"] = (old + 1) % 5
    labels.to_csv(root / "trainLabels.csv", index=False)
    caplog.clear()
    assert main(["evaluate", str(run), "--out", str(tmp_path / "after"), "--set", "eval.bootstrap=5"]) == 0
    assert f"the data set changed since {run} was trained" in caplog.text
    assert f"grade of {image} {old} -> {(old + 1) % 5}" in caplog.text
    metrics = json.loads((tmp_path / "after" / "metrics.json").read_text())
    assert metrics["data_changed_since_training"] == [f"grade of {image} {old} -> {(old + 1) % 5}"]


def test_evaluate_run_from_another_folder_names_the_folder_a_relative_root_reads(synth_dir, tmp_path, caplog, monkeypatch):
    # Probe 36 BZ7: a run trained with data.root 'data' (relative), evaluated from another working
    # folder holding another 'data': "the data set changed", without naming the folder read.
    monkeypatch.chdir(tmp_path)
    shutil.copytree(synth_dir, tmp_path / "data")
    save_config(tiny_config(Path("data"), **{"train.epochs": 1, "data.cache_dir": "cache"}), tmp_path / "tiny.yaml")
    assert main(["train", "tiny.yaml", "--out", "run", "--progress", "log"]) == 0
    shutil.copytree(synth_dir, tmp_path / "elsewhere" / "data")
    monkeypatch.chdir(tmp_path / "elsewhere")
    caplog.clear()
    assert main(["evaluate", str(tmp_path / "run"), "--out", str(tmp_path / "e"), "--set", "eval.bootstrap=5"]) == 0
    assert (f"its photos are read from {tmp_path / 'elsewhere' / 'data' / 'images'}, the run read them from "
            f"{tmp_path / 'data' / 'images'} (a relative data.root is read from the working folder)") in caplog.text


def test_evaluate_run_refuses_a_set_of_what_its_bundle_fixes(synth_dir, tmp_path, capsys):
    # Probe 36 BZ4: `evaluate RUN --set data.image_size=128` (or a preprocessing switched on)
    # re-graded the run's test split with photos its model never saw, exit 0, no word.
    _, run = _run_on_a_copy(synth_dir, tmp_path)
    capsys.readouterr()
    for key, what in (("data.image_size=128", "the bundle's own preprocessing"), ("data.preprocess.clahe=true", "the bundle's"),
                      ("data.normalize=unit", "the bundle's"), ("data.split.seed=7", "the run's own split.csv"), ("data.limit=10", "the run's own split.csv"),
                      ("model.backbone=resnet18", "the model as trained"), ("train.epochs=3", "the model as trained")):
        assert main(["evaluate", str(run), "--out", str(tmp_path / "e"), "--set", key]) == 2
        err = capsys.readouterr().err
        assert f"--set {key.split('=')[0]}: evaluate RUN re-scores the run's held-out split with {what}" in err
        assert not (tmp_path / "e").exists()
    assert main(["evaluate", str(run), "--out", str(tmp_path / "e"), "--set", "eval.bootstrap=5", "--set", "train.seed=3"]) == 0


def test_evaluate_run_after_a_photo_was_replaced_names_the_photo(synth_dir, tmp_path, caplog):
    # Before (probe 31 W2): `evaluate RUN` after a test photo was replaced by another picture under
    # its name said nothing (only changed grades were named); the figures were on a picture the
    # run never measured.
    import json

    root, run = _run_on_a_copy(synth_dir, tmp_path)
    split = pd.read_csv(run / "split.csv", dtype=str)
    image = split.loc[split["split"] == "test", "image_id"].iloc[0]
    other = split.loc[split["image_id"] != image, "image_id"].iloc[0]
    mirrored = cv2.imread(str(root / "images" / f"{other}.jpeg"))[:, ::-1]
    cv2.imwrite(str(root / "images" / f"{image}.jpeg"), mirrored)  # another picture under the test photo's name
    caplog.clear()
    assert main(["evaluate", str(run), "--out", str(tmp_path / "after"), "--set", "eval.bootstrap=5"]) == 0
    said = f"1 photo(s) replaced by another picture under the same name ({image})"
    assert f"the data set changed since {run} was trained" in caplog.text and said in caplog.text
    assert json.loads((tmp_path / "after" / "metrics.json").read_text())["data_changed_since_training"] == [said]
    assert f"The data set changed since the model was trained: {said}." in (tmp_path / "after" / "report.md").read_text()


def test_int8_export_refuses_validation_photos_replaced_since_training(synth_dir, tmp_path, capsys):
    # Before (probe 58 CV4): `export --int8` measured its gate on the run's validation photos as
    # they are on disk now, with the grades of its manifest.csv: photos replaced since by other
    # pictures changed the gate's figures (kappa 0.221 became 0.306) and the card kept them.
    root, run = _run_on_a_copy(synth_dir, tmp_path)
    split = pd.read_csv(run / "split.csv", dtype=str)
    image = split.loc[split["split"] == "val", "image_id"].iloc[0]
    other = split.loc[split["split"] == "train", "image_id"].iloc[0]
    mirrored = cv2.imread(str(root / "images" / f"{other}.jpeg"))[:, ::-1]
    cv2.imwrite(str(root / "images" / f"{image}.jpeg"), mirrored)  # another picture under the validation photo's name
    out = tmp_path / "int8"
    capsys.readouterr()
    assert main(["export", str(run / "bundle"), "--int8", "--int8-anyway", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert (f"error: --int8 checks its gate on {run}'s validation photos with the grades the run read, but 1 of them were "
            f"replaced since by another picture under the same name ({image}): restore them") in err
    assert not out.exists()


def _fake_run(tiny_bundle, synth_dir, tmp_path):
    """A run folder without training: the tiny bundle as if trained on the synthetic data set, its
    manifest.csv and split.csv, and the bundle's records of its training and held-out photos."""
    from drgrader.config import ExperimentConfig
    from drgrader.data.prepare import prepare_data
    from drgrader.evaluation.training_overlap import write_training_digests

    run = tmp_path / "run"
    shutil.copytree(tiny_bundle, run / "bundle")
    manifest = json.loads((run / "bundle" / "bundle.json").read_text())
    manifest["config"]["data"] = {**manifest["config"]["data"], "root": str(synth_dir), "format": "kaggle"}
    (run / "bundle" / "bundle.json").write_text(json.dumps(manifest))
    cfg = ExperimentConfig.model_validate({**manifest["config"], "name": "run"})
    save_config(cfg.model_copy(update={"data": cfg.data.model_copy(update={"cache_dir": tmp_path / "cache"})}),
                run / "config.yaml")
    prepare_data(load_config(run / "config.yaml").data, run, progress=False)
    write_training_digests(run, run / "bundle")
    return run


def test_evaluate_run_refuses_a_split_csv_edited_since_training(tiny_bundle, synth_dir, tmp_path, capsys):
    # Before (probe 59 CW2): a test patient moved to train (or val) in the run's split.csv: `evaluate RUN`
    # scored the smaller split as "the held-out test split", exit 0, though the bundle's
    # held_out_photos.sha256 lists every photo the run held out. The other way (probe 59 CW5), a train
    # patient moved to test was refused as "another run's model ... (a bundle copied in?)".
    run = _fake_run(tiny_bundle, synth_dir, tmp_path)
    split_file = run / "split.csv"
    original = pd.read_csv(split_file, dtype=str, keep_default_na=False)
    held = len((run / "bundle" / "held_out_photos.sha256").read_text().split())

    def evaluate_with(split: pd.DataFrame) -> str:
        split.to_csv(split_file, index=False)
        capsys.readouterr()
        assert main(["evaluate", str(run), "--out", str(tmp_path / "ev"), "--set", "eval.bootstrap=5"]) == 2
        assert not (tmp_path / "ev").exists()
        return capsys.readouterr().err

    for side in ("train", "val"):
        patient = original.loc[original["split"] == "test", "patient_id"].iloc[0]
        moved = original["patient_id"] == patient
        err = evaluate_with(original.assign(split=original["split"].mask(moved, side)))
        first = sorted(synth_dir.glob(f"images/{original.loc[moved, 'image_id'].iloc[0]}.*"))[0]
        assert (f"{split_file} no longer puts {moved.sum()} of the {held} photos {run / 'bundle'} records as held out "
                f"(held_out_photos.sha256) in test (e.g. {first}, now in {side})") in err, err
        assert "edited since training? restore the run's split.csv" in err
    # Every test photo moved to train: the run would be scored on its validation split instead.
    err = evaluate_with(original.assign(split=original["split"].replace("test", "train")))
    assert f"{split_file} no longer puts {held} of the {held} photos" in err, err
    # A train patient moved to test: refused, naming split.csv, not a bundle copied in.
    patient = original.loc[original["split"] == "train", "patient_id"].iloc[0]
    moved = original["patient_id"] == patient
    err = evaluate_with(original.assign(split=original["split"].mask(moved, "test")))
    first = sorted(synth_dir.glob(f"images/{original.loc[moved, 'image_id'].iloc[0]}.*"))[0]
    assert (f"{split_file} puts {moved.sum()} photos in test that {run / 'bundle'} was trained or tuned on (e.g. {first}; "
            "by training_photos.sha256, not in its held_out_photos.sha256)") in err, err
    assert "a bundle copied in" not in err and "edited since training?" in err
    # The split as trained: evaluated.
    original.to_csv(split_file, index=False)
    assert main(["evaluate", str(run), "--out", str(tmp_path / "ev"), "--set", "eval.bootstrap=5"]) == 0

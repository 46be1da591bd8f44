"""Training loop: resume equals uninterrupted, samplers, and a 2-process DDP run (gloo, CPU)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import tiny_config

from drgrader.data.dataset import EpochSampler
from drgrader.workflows.train import train

STEADY = {"train.scheduler": "none", "eval.bootstrap": 0}


def test_resume_equals_uninterrupted(synth_dir, tmp_path):
    full = train(tiny_config(synth_dir, **STEADY, **{"train.epochs": 2}), out=tmp_path / "full", progress=False)
    # "Interrupted" after epoch 1: the run stops, then --resume continues it to epoch 2.
    part = train(tiny_config(synth_dir, **STEADY, **{"train.epochs": 1}), out=tmp_path / "part", progress=False)
    resumed = train(tiny_config(synth_dir, **STEADY, **{"train.epochs": 2}), resume=part, progress=False)
    assert resumed == part
    # Compare the final weights (last.ckpt), not the bundle: the bundle holds the *best* epoch,
    # which may be the first one and would hide a broken resume.
    a = torch.load(full / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(part / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4, msg=key)
    ka = json.loads((full / "metrics.json").read_text())["test"]["grade"]["kappa"]
    kb = json.loads((part / "metrics.json").read_text())["test"]["grade"]["kappa"]
    assert ka == pytest.approx(kb, abs=1e-6)
    # The learning curve survives the interruption: both epochs are in the resumed log.
    import pandas as pd

    epochs = pd.read_csv(part / "logs" / "metrics.csv")["epoch"].dropna().unique()
    assert sorted(epochs) == [0, 1]


def test_resume_of_a_copied_run_keeps_its_best_epoch(synth_dir, tmp_path):
    """Probe 34 BX7: Lightning restores the best checkpoint's score only in the folder it was saved
    in; a copied run compared only its new epochs and bundled the best of those as "best"."""
    import shutil

    part = train(tiny_config(synth_dir, **STEADY, **{"train.epochs": 1}), out=tmp_path / "part", progress=False)
    # The first epoch made unbeatable (val_metric <= 1), so any later "best" would be wrong.
    last = part / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    best_key = next(k for k in ckpt["callbacks"] if "val_metric" in k)
    state = ckpt["callbacks"][best_key]
    state["best_model_score"] = torch.tensor(1.0)
    state["best_k_models"] = {path: torch.tensor(1.0) for path in state["best_k_models"]}
    state["kth_value"] = torch.tensor(1.0)
    torch.save(ckpt, last)
    copied = tmp_path / "elsewhere" / "copied"
    shutil.copytree(part, copied)

    records = {}
    for run in (part, copied):
        train(tiny_config(synth_dir, **STEADY, **{"train.epochs": 2}), resume=run, progress=False)
        records[run] = json.loads((run / "metrics.json").read_text())["training"]
    assert records[part]["best_epoch"] == records[copied]["best_epoch"] == 0
    assert records[copied]["best_val_metric"] == 1.0
    assert records[copied]["best_checkpoint"] == str((copied / "checkpoints" / "best.ckpt").resolve())
    assert not (copied / "checkpoints" / "best-v1.ckpt").exists()


def test_a_copied_run_without_its_best_checkpoint_says_so(tmp_path, caplog):
    from drgrader.training.callbacks import RunFolderCheckpoint

    saved = str(tmp_path / "old" / "checkpoints")
    state = {"dirpath": saved, "monitor": "val_metric", "best_model_score": torch.tensor(0.5),
             "best_model_path": f"{saved}/best.ckpt", "best_k_models": {f"{saved}/best.ckpt": torch.tensor(0.5)},
             "kth_best_model_path": f"{saved}/best.ckpt", "kth_value": torch.tensor(0.5), "last_model_path": ""}
    here = tmp_path / "new" / "checkpoints"
    here.mkdir(parents=True)
    callback = RunFolderCheckpoint(dirpath=here, filename="best", monitor="val_metric", mode="max")
    with caplog.at_level("WARNING", logger="drgrader"), pytest.warns(UserWarning, match="dirpath has changed"):
        callback.load_state_dict(state)
    assert "best.ckpt is not in" in caplog.text and "compares only its new epochs" in caplog.text
    assert callback.best_model_score is None and callback.best_model_path == ""
    (here / "best.ckpt").write_bytes(b"")  # with the file there, the best is kept, in this folder
    callback = RunFolderCheckpoint(dirpath=here, filename="best", monitor="val_metric", mode="max")
    callback.load_state_dict(state)
    assert float(callback.best_model_score) == 0.5 and callback.best_model_path == str(here / "best.ckpt")


@pytest.mark.parametrize("method", ["patient", "official"])
def test_a_data_set_with_a_published_split_trains_to_the_end(synth_dir, tmp_path, method):
    # Probe 36 BZ3: on DDR (a format whose manifest keeps its published split) train ended in
    # KeyError 'split' after the last epoch, the run half-made: the manifest's split column and
    # the run's split.csv were merged into split_x/split_y.
    import shutil

    import pandas as pd

    base = tmp_path / "ddr" / "DR_grading"
    labels = pd.read_csv(synth_dir / "trainLabels.csv")
    for k, (image, grade) in enumerate(zip(labels["image"], labels["level"])):
        part = "train" if k < 48 else "valid" if k < 64 else "test"
        (base / part).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(synth_dir / "images" / f"{image}.jpeg", base / part / f"{image}.jpg")
        with open(base / f"{part}.txt", "a") as fh:
            fh.write(f"{image}.jpg {grade}\n")
    cfg = tiny_config(tmp_path / "ddr", **STEADY, **{"data.format": "ddr", "train.epochs": 1, "data.split.method": method,
                                                     "data.cache_dir": str(tmp_path / "cache")})
    run = train(cfg, out=tmp_path / "run", progress=False)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["n_images"] > 0 and (run / "bundle" / "training_photos.sha256").is_file()
    if method == "official":  # the run's split is DDR's own: its test photos are the test split
        split = pd.read_csv(run / "split.csv", dtype=str)
        assert (split["split"] == "test").sum() == 16


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="last.ckpt"):
        train(tiny_config(tmp_path), resume=tmp_path)


def test_oversampling_balances_classes_like_seed001():
    classes = np.array([0] * 90 + [1] * 10)
    sampler = EpochSampler(classes, "oversample", seed=0)
    drawn = np.array([i for i, _ in sampler])
    assert len(drawn) == 180
    assert (classes[drawn] == 1).sum() == 90  # minority drawn with replacement up to the majority
    assert sorted(set(drawn[classes[drawn] == 0])) == list(range(90))  # majority used once each


def test_schedule_moves_from_balanced_to_natural():
    classes = np.array([0] * 900 + [1] * 100)
    sampler = EpochSampler(classes, "schedule", seed=0, decay=0.5)
    share = []
    for epoch in (0, 8):
        sampler.set_epoch(epoch)
        drawn = np.array([i for i, _ in sampler])
        share.append((classes[drawn] == 1).mean())
    assert share[0] == pytest.approx(0.5, abs=0.06)
    assert share[1] == pytest.approx(0.1, abs=0.04)


def test_sampler_is_deterministic_per_epoch():
    classes = np.arange(50) % 5
    s1, s2 = EpochSampler(classes, "natural", seed=1), EpochSampler(classes, "natural", seed=1)
    assert list(s1) == list(s2)
    s2.set_epoch(1)
    assert list(s1) != list(s2)


@pytest.mark.slow
def test_two_process_ddp_run(synth_dir, tmp_path):
    """`drgrader train --devices 2 --strategy ddp` on CPU: two gloo processes, one run folder."""
    cfg_file = tmp_path / "ddp.yaml"
    cfg = tiny_config(synth_dir, **{"train.epochs": 1, "train.accelerator": "cpu", "data.workers": 1})
    from drgrader.config import save_config

    save_config(cfg, cfg_file)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DRGRADER_RUN_DIR", None)
    res = subprocess.run(
        [sys.executable, "-m", "drgrader", "train", str(cfg_file), "--out", str(tmp_path / "run"),
         "--devices", "2", "--strategy", "ddp"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    run = tmp_path / "run"
    assert (run / "metrics.json").is_file()
    assert not (tmp_path / "run-2").exists()  # the second rank joined the same folder
    training = json.loads((run / "metrics.json").read_text())["training"]
    assert training["world_size"] == 2 and training["strategy"] == "DDPStrategy"

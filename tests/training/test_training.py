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

"""Interrupted work resumes and loses nothing: real processes killed with real signals
(preprocessing, training, batch prediction), and a full disk while a file is being written.

Each killed command runs in its own session and is killed as a process group (the command and
any worker processes it started), as an out-of-memory killer or a cluster scheduler would.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_config

from drgrader.cli import main as cli_main
from drgrader.config import save_config
from drgrader.data.cache import IMAGE_SUFFIX, build_cache, cache_dir_for, load_cached
from drgrader.data.manifest import read_manifest
from drgrader.synth import make_dataset, make_fundus

SRC = Path(__file__).resolve().parents[2] / "src"
IMAGES = 60


def cli_env() -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    env.pop("DRGRADER_RUN_DIR", None)  # set by in-process training runs
    return env


def drgrader(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "drgrader", *map(str, args)], capture_output=True, text=True,
                          env=cli_env(), timeout=timeout)


def default_sigint() -> None:
    """Give the child Python's Ctrl-C handling even when this test runs as a background job: a
    non-interactive shell starts `cmd &` with SIGINT ignored, and children inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def kill_when(args: list, ready, sig: int = signal.SIGKILL, timeout: float = 300, log: Path | None = None):
    """Start ``drgrader *args`` in a new session, poll ``ready()`` every 2 ms, then send ``sig``
    to the whole process group. Returns the exit code. Fails if the command ends first."""
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "drgrader", *map(str, args)], stdout=out, stderr=subprocess.STDOUT,
                            env=cli_env(), start_new_session=True, preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"drgrader {args[0]} ended (exit {proc.returncode}) before it could be interrupted")
            if time.monotonic() > deadline:
                pytest.fail(f"drgrader {args[0]} did not reach the interruption point in {timeout} s")
            time.sleep(0.002)
        os.killpg(proc.pid, sig)
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        try:  # workers of the group may outlive the leader by a moment
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if log:
            out.close()


@pytest.fixture(scope="module")
def data60(tmp_path_factory):
    """30 synthetic patients, 60 photos, Kaggle layout."""
    root = tmp_path_factory.mktemp("int") / "data"
    make_dataset(root, IMAGES // 2, seed=8, height=192, progress=False)
    return root


def finished_files(cache: Path) -> dict[str, bytes]:
    """The cache's visible files (not the temporary ones of an unfinished write)."""
    return {p.name: p.read_bytes() for p in sorted(cache.iterdir()) if not p.name.startswith(".")}


# ------------------------------------------------------------------- preprocessing
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_preprocessing_resumes_to_a_byte_identical_cache(data60, tmp_path, sig):
    cfg = tiny_config(data60, **{"data.cache_dir": str(tmp_path / "cache")})
    save_config(cfg, tmp_path / "cfg.yaml")
    reference_cfg = cfg.data.model_copy(update={"cache_dir": tmp_path / "reference"})
    build_cache(read_manifest(cfg.data).table, reference_cfg, workers=1, progress=False)
    reference = finished_files(cache_dir_for(reference_cfg))
    assert len(reference) == 2 * IMAGES + 1  # image + row per image, settings.json

    cache = cache_dir_for(cfg.data)

    def rows_written() -> bool:
        return cache.is_dir() and len([p for p in cache.glob("*.json") if p.name != "settings.json"]) >= 10

    code = kill_when(["preprocess", tmp_path / "cfg.yaml", "--workers", "2"], rows_written, sig=sig, log=tmp_path / "log")
    log = (tmp_path / "log").read_text()
    if sig == signal.SIGINT:  # Ctrl-C: a clean stop that says the work is kept
        assert code == 130 and "interrupted; finished work is kept" in log, log[-2000:]
    else:
        assert code == -signal.SIGKILL
    done = {p.stem for p in cache.glob("*.json") if p.name != "settings.json"}
    assert 10 <= len(done) < IMAGES, "the kill should land half way"
    # Everything visible is complete: each row parses and its image loads.
    for stem in done:
        row = json.loads((cache / f"{stem}.json").read_text())
        assert load_cached(cache / row["file"]).shape == (48, 48, 3)
    # Killed between the two writes of an image: the image (here even a cut one) without its row.
    victim = sorted(done)[0]
    image = cache / f"{victim}{IMAGE_SUFFIX}"
    (cache / f"{victim}.json").unlink()
    image.write_bytes(image.read_bytes()[:100])
    kept = {stem: (cache / f"{stem}.json").stat().st_mtime_ns for stem in done - {victim}}

    res = drgrader("preprocess", tmp_path / "cfg.yaml", "--workers", "2")
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"preprocessed {IMAGES}/{IMAGES} images; 0 unreadable" in res.stdout
    assert finished_files(cache) == reference
    # The rerun did only the rest: rows finished before the interruption were not rewritten.
    assert {stem: (cache / f"{stem}.json").stat().st_mtime_ns for stem in kept} == kept


# ------------------------------------------------------------------------ training
@pytest.mark.slow
def test_training_killed_mid_epoch_resumes_to_the_same_weights(data60, tmp_path, caplog):
    from drgrader.workflows.train import train

    caplog.set_level(logging.INFO, logger="drgrader")  # train.log gets INFO lines, as under the CLI

    cfg = tiny_config(data60, **{"train.scheduler": "none", "train.epochs": 3, "eval.bootstrap": 0})
    save_config(cfg, tmp_path / "cfg.yaml")
    run = tmp_path / "killed"
    last = run / "checkpoints" / "last.ckpt"
    # last.ckpt appears at the end of the first epoch: the kill lands in the second.
    assert kill_when(["train", tmp_path / "cfg.yaml", "--out", run], last.is_file) == -signal.SIGKILL
    assert not (run / "metrics.json").exists()
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 0

    res = drgrader("train", "--resume", run)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"run folder: {run}" in res.stdout
    reference = train(cfg, out=tmp_path / "reference", progress=False)

    # The final weights (last.ckpt, not the best one, which may be from before the kill).
    a = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(reference / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2 and a["global_step"] == b["global_step"]
    for key, value in b["state_dict"].items():
        torch.testing.assert_close(a["state_dict"][key], value, atol=1e-5, rtol=1e-4, msg=key)
    # The same learning curve: train.log's epoch lines (appended, so those written before the
    # kill survive) and logs/metrics.csv (Lightning rewrites that file when new columns appear,
    # so rows from before a kill can be lost; those after the resume must match).
    assert epoch_lines(run) == epoch_lines(reference) and len(epoch_lines(reference)) == 3
    curve_a, curve_b = (pd.read_csv(r / "logs" / "metrics.csv").groupby("epoch").mean(numeric_only=True)
                        for r in (run, reference))
    for column in ("train_loss_epoch", "val_loss", "val_kappa"):
        np.testing.assert_allclose(curve_a.loc[[1, 2], column], curve_b.loc[[1, 2], column], atol=1e-5, err_msg=column)
    ma, mb = (json.loads((r / "metrics.json").read_text()) for r in (run, reference))
    ga, gb = ma["test"]["grade"], mb["test"]["grade"]
    assert ga["confusion"] == gb["confusion"]
    for name in ("kappa", "accuracy", "mean_absolute_error"):
        assert ga[name] == pytest.approx(gb[name], abs=1e-6), name
    assert ma["data"]["manifest_sha256"] == mb["data"]["manifest_sha256"]


def epoch_lines(run: Path) -> list[str]:
    """train.log's one-line epoch summaries, without time stamps and durations."""
    lines = (run / "train.log").read_text().splitlines()
    return [re.sub(r"^.* INFO (epoch \d+/\d+) \(\d+ s\)", r"\1", line) for line in lines if " INFO epoch " in line]


# ---------------------------------------------------------------------- prediction
def test_killed_prediction_resumes_without_redoing_finished_rows(tiny_bundle, tmp_path):
    from drgrader.inference.bundle import load_bundle
    from drgrader.inference.predict import predict_images

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(40):  # large frames: decoding takes long enough to stop half way
        rgb = cv2.resize(make_fundus(i % 5, np.random.default_rng(i), height=96), (1536, 1024))
        cv2.imwrite(str(folder / f"{i}_left.jpeg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    out = tmp_path / "pred.csv"
    partial = tmp_path / "pred.csv.partial.csv"

    def some_rows() -> bool:
        return partial.is_file() and partial.read_bytes().count(b"\n") > 6

    args = ["predict", tiny_bundle, folder, "--out", out, "--batch-size", "2"]
    assert kill_when(args, some_rows) == -signal.SIGKILL
    assert not out.exists()
    lines = partial.read_bytes().split(b"\n")
    done = len(lines) - 2  # header, and what follows the last newline (empty or cut mid-row)
    assert 5 < done < 40

    res = drgrader(*args)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"resuming: {done} of 40 images already done" in res.stderr
    final = pd.read_csv(out)
    assert len(final) == 40 and final["path"].is_unique and final["error"].isna().all()
    assert not partial.exists()
    expected = predict_images(load_bundle(tiny_bundle), sorted(folder.iterdir()), progress=False)
    merged = final.merge(expected, on="path", suffixes=("", "_expected"))
    assert len(merged) == 40
    np.testing.assert_allclose(merged["p0"], merged["p0_expected"], atol=1e-5)
    assert (merged["grade"] == merged["grade_expected"]).all()


# -------------------------------------------------------------------- a full disk
def enospc(path="") -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def test_full_disk_during_an_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    from drgrader.io import atomic_write_json

    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"kappa": 0.5})

    def full(fd):
        raise enospc()

    monkeypatch.setattr(os, "fsync", full)  # where a full disk (or NFS quota) is reported
    with pytest.raises(OSError) as err:
        atomic_write_json(target, {"kappa": 0.9})
    assert err.value.errno == errno.ENOSPC
    assert json.loads(target.read_text()) == {"kappa": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary file left


def test_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    from drgrader.training.module import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"epoch": 1, "state_dict": {"w": torch.ones(3)}}, path)

    def half_written(obj, f):
        Path(f).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise enospc(f)

    monkeypatch.setattr(torch, "save", half_written)
    with pytest.raises(OSError) as err:
        io.save_checkpoint({"epoch": 2, "state_dict": {"w": torch.zeros(3)}}, path)
    assert err.value.errno == errno.ENOSPC
    monkeypatch.undo()
    previous = torch.load(path, map_location="cpu", weights_only=True)
    assert previous["epoch"] == 1 and torch.equal(previous["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def test_full_disk_while_caching_stops_with_a_clear_error_and_resumes(data60, tmp_path, monkeypatch, capsys):
    """The disk fills up while images are written (the small JSON rows still fit). The build
    must stop, not record every remaining photo as 'unreadable' in the cache, and a rerun
    after space is freed must finish the job."""
    cfg = tiny_config(data60, **{"data.cache_dir": str(tmp_path / "cache")})
    save_config(cfg, tmp_path / "cfg.yaml")
    real_replace, calls = os.replace, []

    def replace(src, dst):
        if str(dst).endswith(IMAGE_SUFFIX):
            calls.append(dst)
            if len(calls) > 20:
                raise enospc(dst)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    assert cli_main(["preprocess", str(tmp_path / "cfg.yaml"), "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: [Errno 28] No space left on device: ")
    assert "Traceback" not in err
    monkeypatch.undo()
    cache = cache_dir_for(cfg.data)
    rows = [json.loads(p.read_text()) for p in cache.glob("*.json") if p.name != "settings.json"]
    assert len(rows) == 20 and all(r["ok"] for r in rows)
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # the failed write cleaned up

    assert cli_main(["preprocess", str(tmp_path / "cfg.yaml"), "--workers", "1"]) == 0
    assert f"preprocessed {IMAGES}/{IMAGES} images; 0 unreadable" in capsys.readouterr().out

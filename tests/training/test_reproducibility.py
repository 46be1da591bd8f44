"""Same config and seed, same results on CPU: the split, the cache bytes (whatever the number
of worker processes), the weights and the metrics of two runs. And a run folder says what made
it: package versions and the checksum of the data it used."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import timm
import torch
from conftest import tiny_config

import drgrader
from drgrader.data.cache import build_cache, cache_dir_for
from drgrader.data.manifest import read_manifest
from drgrader.data.split import make_split
from drgrader.workflows.records import manifest_checksum
from drgrader.workflows.train import train

# What legitimately differs between two runs: when they ran, how long, and where.
VOLATILE = {"created", "run"}
VOLATILE_TRAINING = {"wall_time_s", "best_checkpoint"}


@pytest.fixture(scope="module")
def two_runs(synth_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("repro")
    cfg = tiny_config(synth_dir, **{"train.epochs": 2, "eval.bootstrap": 20})
    return train(cfg, out=out / "a", progress=False), train(cfg, out=out / "b", progress=False)


def test_split_depends_on_the_seed_only(synth_dir):
    cfg = tiny_config(synth_dir).data
    manifest = read_manifest(cfg).table
    first, again = make_split(manifest, cfg.split), make_split(manifest, cfg.split)
    assert first.equals(again)
    other = make_split(manifest, cfg.split.model_copy(update={"seed": cfg.split.seed + 1}))
    assert not first.equals(other)  # the seed really is what decides


def test_cache_bytes_do_not_depend_on_worker_count(synth_dir, tmp_path):
    cfg = tiny_config(synth_dir).data
    manifest = read_manifest(cfg).table
    folders = []
    for workers in (1, 2):
        data_cfg = cfg.model_copy(update={"cache_dir": tmp_path / f"w{workers}"})
        build_cache(manifest, data_cfg, workers=workers, progress=False)
        folders.append(cache_dir_for(data_cfg))
    files = [{p.name: p.read_bytes() for p in sorted(f.iterdir())} for f in folders]
    assert len(files[0]) == 2 * len(manifest) + 1
    assert files[0] == files[1]


@pytest.mark.slow
def test_two_runs_give_identical_splits_weights_and_metrics(two_runs):
    a, b = two_runs
    for name in ("split.csv", "manifest.csv", "predictions_test.csv", "predictions_val.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    wa = torch.load(a / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    wb = torch.load(b / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    ma, mb = (json.loads((r / "metrics.json").read_text()) for r in two_runs)
    for metrics in (ma, mb):
        for key in VOLATILE:
            metrics.pop(key)
        for key in VOLATILE_TRAINING:
            metrics["training"].pop(key)
    assert ma == mb  # bootstrap CIs included: they are seeded too


@pytest.mark.slow
def test_run_records_versions_and_data_checksum(two_runs):
    run = two_runs[0]
    metrics = json.loads((run / "metrics.json").read_text())
    versions = metrics["versions"]
    assert versions["drgrader"] == drgrader.__version__
    assert versions["torch"] == torch.__version__
    assert versions["timm"] == timm.__version__
    # The checksum identifies the labelled data the run used: recomputed from the manifest.csv
    # in the run folder it matches; one changed grade changes it.
    manifest = pd.read_csv(run / "manifest.csv", dtype={"image_id": str, "patient_id": str})
    checksum = metrics["data"]["manifest_sha256"]
    assert checksum == manifest_checksum(manifest)
    relabelled = manifest.copy()
    relabelled.loc[0, "grade"] = (relabelled.loc[0, "grade"] + 1) % 5
    assert manifest_checksum(relabelled) != checksum

"""Every shipped config (src/drgrader/configs/) runs end to end with `drgrader train` then `drgrader evaluate`, on the
synthetic data: its task, head, loss, sampler, preprocessing, TTA and threshold settings as
shipped; only the data folder, the network size and the budget are shrunk to seconds."""

import json
import os

import pandas as pd
import pytest

from drgrader.cli import main
from drgrader.config import load_config
from drgrader.config_recipes import shipped_configs
from drgrader.runtime import resolve_precision

CONFIGS = list(shipped_configs())

# Shrink the compute, keep the recipe.
TINY = {
    "data.format": "kaggle",
    "data.image_size": 48,
    "data.workers": 1,
    "model.backbone": "test_resnet",
    "model.pretrained": "none",
    "train.epochs": 1,
    "train.budget_minutes": "null",  # a recipe's time budget would plan many tiny epochs
    "train.batch_size": 8,
    "eval.bootstrap": 10,
}


@pytest.fixture
def own_process_group():
    """A recipe with strategy ddp (gpu_grade) trains here as a one-process DDP group: take the
    group and Lightning's MASTER_* variables down after it, or a later DDP run in a subprocess
    inherits a port this process still listens on."""
    saved = dict(os.environ)
    yield
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS)
def test_config_trains_then_evaluates(config, synth_dir, tmp_path, own_process_group):
    settings = {**TINY, "data.root": synth_dir, "data.cache_dir": tmp_path / "cache"}
    sets = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    run = tmp_path / "run"
    assert main(["train", config, "--out", str(run), *sets]) == 0

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["training"]["epochs_run"] == 1
    split = metrics["evaluated_on"]
    assert metrics[split]["n_images"] > 0
    assert (run / "bundle" / "bundle.json").is_file() and (run / "report.html").is_file()

    # Every setting of the recipe was accepted as shipped (gpu_grade: bf16 mixed precision, DDP).
    shipped = load_config(config)
    assert metrics["training"]["precision"] == resolve_precision(shipped.train.precision, shipped.train.accelerator)
    if shipped.train.strategy == "ddp":
        assert metrics["training"]["strategy"] == "DDPStrategy"

    # External evaluation of the trained run on a data folder (here the same synthetic set).
    out = tmp_path / "external"
    assert main(["evaluate", str(run), "--data", str(synth_dir), "--out", str(out)]) == 0
    external = json.loads((out / "metrics.json").read_text())
    assert external["test"]["n_images"] == len(pd.read_csv(synth_dir / "trainLabels.csv"))
    assert external["tta_views"] == metrics["tta_views"]  # the config's TTA travels with the bundle

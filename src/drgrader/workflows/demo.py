"""``drgrader demo``: the main job on built-in data. Synthesise a small fundus data set (real
data cannot ship), train a small grader on it, evaluate on held-out patients, write the report."""

from __future__ import annotations

import logging
from pathlib import Path

from drgrader.config import ExperimentConfig

log = logging.getLogger("drgrader")


def ensure_demo_data(data_dir: Path, patients: int, seed: int = 0) -> Path:
    """Make the synthetic set once; an existing one (same folder) is reused."""
    from drgrader.synth import make_dataset

    labels = data_dir / "trainLabels.csv"
    if labels.is_file():
        log.info("using the synthetic data set in %s", data_dir)
        return labels
    log.info("synthesising %d patients (%d images) into %s", patients, 2 * patients, data_dir)
    from drgrader.runtime import cpu_count

    return make_dataset(data_dir, patients, seed=seed, workers=cpu_count())


def run_demo(cfg: ExperimentConfig, *, data_dir: Path, patients: int, out: Path | None = None) -> Path:
    from drgrader.workflows.console import print_run
    from drgrader.workflows.train import train

    ensure_demo_data(data_dir, patients)
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"root": data_dir, "format": "kaggle"})})
    run_dir = train(cfg, out=out)
    print_run(run_dir)
    return run_dir

"""train.budget_minutes: the epochs and the cosine schedule planned from the measured epoch time."""

import json

import pytest

from drgrader.training.time_budget import planned_epochs


def test_plan_fills_the_rest_of_the_budget_with_whole_epochs():
    # 10 minutes, one epoch of 100 s done: five more fit in the 500 s left.
    assert planned_epochs(600, 100, 1, 100) == 6
    # 70 s left of a 100 s epoch: no room for another.
    assert planned_epochs(600, 530, 5, 100) == 5
    # Overspent (a slow first epoch): stop after what is done, never plan zero epochs.
    assert planned_epochs(60, 100, 1, 100) == 1
    assert planned_epochs(0.0, 0.0, 0, 10) == 1


@pytest.mark.slow
def test_budget_sets_the_epochs_and_ends_the_cosine_at_its_floor(synth_dir, tmp_path):
    import statistics

    import torch
    from conftest import tiny_config

    from drgrader.workflows.train import train

    # A first guess of 2 epochs: the budget (15 s of tiny epochs) holds more.
    cfg = tiny_config(synth_dir, **{"train.epochs": 2, "train.budget_minutes": 0.25, "train.warmup_epochs": 0.5,
                                    "train.scheduler": "cosine", "eval.bootstrap": 0})
    run = train(cfg, out=tmp_path / "run", progress=False)
    training = json.loads((run / "metrics.json").read_text())["training"]
    seconds = training["epoch_seconds"]
    assert training["budget_minutes"] == 0.25
    assert training["epochs_run"] == training["planned_epochs"] == len(seconds) > 2
    # It stopped because another epoch would not fit, and never ran past the budget by more than one.
    assert sum(seconds) + max(statistics.median(seconds), seconds[-1]) > 15 - 0.001 * len(seconds)  # rounded to ms
    assert sum(seconds) <= 15 + max(seconds)
    # The schedule followed the plan: the last epoch ran near the bottom of the cosine, not at the
    # learning rate the 2-epoch guess (then past its end) or a fixed long schedule would have had.
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["lr_schedulers"][0]["_last_lr"][0] < 0.5 * cfg.train.lr

"""Training callbacks: a one-line summary per epoch, on the console and in train.log (progress
bars vanish from logs; these lines stay, and are training's progress report when the bar is off:
``--progress log``), and the check that all processes of a run share its folder."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L

log = logging.getLogger("drgrader")


class EpochSummary(L.Callback):
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._started = time.time()

    # At train-epoch end this epoch's validation has run (the module logged its metrics).
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.global_rank != 0:
            return
        metrics = trainer.callback_metrics
        shown = ["train_loss_epoch", "val_loss", "val_kappa", "val_auc_referable", "val_auc"]
        parts = [f"{k.removesuffix('_epoch')} {float(metrics[k]):.4f}" for k in shown if k in metrics]
        seconds = time.time() - getattr(self, "_started", time.time())
        log.info("epoch %d/%d (%.0f s): %s", trainer.current_epoch + 1, trainer.max_epochs, seconds, ", ".join(parts))


class SameRunFolder(L.Callback):
    """Stops a multi-process run whose processes would write to different run folders (they
    learn rank 0's before the process group exists: :mod:`drgrader.workflows.run_folder`);
    checked once the group is up, on every rank alike so none is left waiting."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = str(Path(run_dir).resolve())

    def setup(self, trainer, pl_module, stage: str) -> None:
        if trainer.world_size < 2:
            return
        chosen = trainer.strategy.broadcast(self.run_dir, src=0)
        if not trainer.strategy.reduce_boolean_decision(chosen == self.run_dir, all=True):
            raise RuntimeError(
                f"the processes of this run disagree on its folder (rank 0: {chosen}; rank {trainer.global_rank}: "
                f"{self.run_dir}); start them with one launch id (torchrun --rdzv-id, one Slurm job step)"
            )

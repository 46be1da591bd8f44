"""A one-line summary per epoch, on the console and in train.log (progress bars vanish from
logs; these lines stay, and are training's progress report when the bar is off: ``--progress log``)."""

from __future__ import annotations

import logging
import time

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

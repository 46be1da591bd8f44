"""Training callbacks: a one-line summary per epoch, on the console and in train.log (progress
bars vanish from logs; these lines stay, and are training's progress report when the bar is off:
``--progress log``), the check that all processes of a run share its folder, and checkpoints
that remember the best epoch when a run folder is moved or copied before ``--resume``."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

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


class RunFolderCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint that keeps its record of the best epoch when the run folder was moved or
    copied before ``--resume``. Lightning restores that record only from the very folder it was
    saved in; elsewhere the resumed run compares only its new epochs and calls the best of those
    "best". Here the saved paths are re-pointed to the same files in this folder."""

    @property
    def state_key(self) -> str:
        # Saved under ModelCheckpoint's key: checkpoints of earlier runs resume into this class and back.
        return "ModelCheckpoint" + super().state_key.removeprefix(type(self).__qualname__)

    def load_state_dict(self, state_dict: dict) -> None:
        saved_dir = state_dict.get("dirpath")
        if saved_dir is None or self.dirpath is None or saved_dir == self.dirpath:
            return super().load_state_dict(state_dict)

        def here(path: str) -> str:
            return str(Path(self.dirpath) / Path(path).name) if path and str(Path(path).parent) == saved_dir else path

        best_k = {here(path): score for path, score in state_dict.get("best_k_models", {}).items()}
        missing = [path for path in best_k if not Path(path).is_file()]
        if missing:
            # Compared against, it could stay "best" and leave the bundle without its weights.
            log.warning("the earlier best checkpoint %s is not in %s: the resumed run compares only its new epochs",
                        Path(missing[0]).name, self.dirpath)
            return super().load_state_dict({**state_dict, "best_model_path": ""})
        if self.monitor:
            log.info("run folder moved or copied (checkpoints were in %s): its best checkpoint is kept", saved_dir)
        super().load_state_dict({
            **state_dict, "dirpath": self.dirpath, "best_k_models": best_k,
            **{key: here(state_dict.get(key, "")) for key in ("best_model_path", "kth_best_model_path", "last_model_path")},
        })

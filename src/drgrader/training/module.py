"""The LightningModule: model logic only (loss, optimiser, schedule, validation metric).
Data logic lives in :mod:`drgrader.training.datamodule`."""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torchmetrics.classification import BinaryAUROC, MulticlassCohenKappa

from drgrader.config import ExperimentConfig
from drgrader.grading import NUM_GRADES, SCREENS
from drgrader.io import atomic_path
from drgrader.models.factory import GraderNet, ScoringNet, unfreeze
from drgrader.models.losses import TaskLoss, binary_target


class GraderModule(L.LightningModule):
    def __init__(
        self,
        cfg: ExperimentConfig,
        net: GraderNet,
        mean: list[float],
        std: list[float],
        class_weights: torch.Tensor | None = None,
    ):
        super().__init__()
        self.cfg = cfg
        self.scoring = ScoringNet(net, mean, std)
        t = cfg.train
        self.loss_fn = TaskLoss(
            cfg.model.task,
            t.loss,
            label_smoothing=t.label_smoothing,
            class_weights=class_weights,
            focal_gamma=t.focal_gamma,
            focal_alpha=t.focal_alpha,
        )
        self.val_kappa = MulticlassCohenKappa(num_classes=NUM_GRADES, weights="quadratic")
        self.val_auc = BinaryAUROC()
        if t.channels_last:
            self.scoring.to(memory_format=torch.channels_last)
        # Epochs the cosine schedule spans: train.epochs, or the plan of a time budget
        # (:class:`drgrader.training.time_budget.TimeBudget` updates it after each epoch).
        self.schedule_epochs = t.epochs

    @property
    def net(self) -> GraderNet:
        return self.scoring.net

    def _raw(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.scoring.normalise(pixels.float())
        if self.cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    # ------------------------------------------------------------------ training
    def on_train_epoch_start(self) -> None:
        # Re-seed per epoch so a run resumed from a checkpoint draws the same dropout masks as
        # an uninterrupted one (Lightning does not restore global RNG state).
        torch.manual_seed(self.cfg.train.seed * 1000 + self.current_epoch + 1000 * self.global_rank)
        unfreeze_at = self.cfg.model.unfreeze_epoch
        if unfreeze_at is not None and self.current_epoch + 1 >= unfreeze_at:
            unfreeze(self.net)

    def train_size(self) -> int | None:
        """The input size of this epoch under progressive resizing (None: the cached size)."""
        t = self.cfg.train
        if t.progressive_start_size is None or self.current_epoch >= t.progressive_until * self.schedule_epochs:
            return None
        return t.progressive_start_size

    def training_step(self, batch, batch_idx):
        pixels, grades = batch
        t = self.cfg.train
        size = self.train_size()
        if size is not None and size != pixels.shape[-1]:
            pixels = F.interpolate(pixels.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        if t.mixup > 0 and len(grades) > 1:
            # mixup (Zhang et al. 2018): blend each photo with another of the batch; the loss is the
            # same blend of the two losses, so every loss kind (regression, ordinal, classes) takes it.
            lam = float(torch.distributions.Beta(t.mixup, t.mixup).sample())
            other = torch.randperm(len(grades), device=grades.device)
            raw = self._raw(lam * pixels.float() + (1 - lam) * pixels.float()[other])
            loss = lam * self.loss_fn(raw, grades) + (1 - lam) * self.loss_fn(raw, grades[other])
        else:
            loss = self.loss_fn(self._raw(pixels), grades)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(grades))
        return loss

    # ---------------------------------------------------------------- validation
    def validation_step(self, batch, batch_idx):
        pixels, grades = batch
        raw = self._raw(pixels)
        loss = self.loss_fn(raw, grades)
        self.log("val_loss", loss, prog_bar=True, on_epoch=True, sync_dist=True, batch_size=len(grades))
        out = self.net.decode(raw)
        task = self.cfg.model.task
        if task == "grade":
            if "probs" in out and self.net.kind == "softmax5":
                pred = out["probs"].argmax(dim=1)
            else:
                pred = out["expected_grade"].round().clamp(0, 4).long()
            self.val_kappa.update(pred, grades)
            self.val_auc.update(out["score_referable"], binary_target(grades, "referable").long())
        else:
            key = SCREENS[task][0]
            self.val_auc.update(out[key], binary_target(grades, task).long())

    def on_validation_epoch_end(self) -> None:
        auc = self.val_auc.compute()
        if self.cfg.model.task == "grade":
            kappa = self.val_kappa.compute()
            self.log("val_kappa", kappa, prog_bar=True, sync_dist=True)
            self.log("val_auc_referable", auc, prog_bar=True, sync_dist=True)
            metric = kappa
        else:
            self.log("val_auc", auc, prog_bar=True, sync_dist=True)
            metric = auc
        # The metric that picks the best checkpoint: kappa for grades, AUC for screens.
        self.log("val_metric", torch.nan_to_num(metric, nan=0.0), sync_dist=True)
        self.val_kappa.reset()
        self.val_auc.reset()

    # ---------------------------------------------------------------- optimiser
    def configure_optimizers(self):
        t = self.cfg.train
        params = [p for p in self.parameters()]  # frozen ones get no gradient and stay put
        if t.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
        elif t.optimizer == "adamw":
            opt = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
        else:
            opt = torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay, nesterov=True)
        if t.scheduler == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, mode="min", factor=t.plateau_factor, patience=t.plateau_patience
            )
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}
        if t.scheduler == "cosine":
            steps_per_epoch = max(1, int(self.trainer.estimated_stepping_batches)) / max(1, self.trainer.max_epochs)
            warmup = int(t.warmup_epochs * steps_per_epoch)

            def factor(step: int) -> float:
                if step < warmup:
                    return (step + 1) / (warmup + 1)
                total = steps_per_epoch * self.schedule_epochs  # read at every step: a budget re-plans it
                progress = (step - warmup) / max(1, total - warmup)
                return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

            sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        return opt


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints go to a temporary name, then a rename: a kill or a full disk mid-write
    leaves the previous checkpoint intact."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)

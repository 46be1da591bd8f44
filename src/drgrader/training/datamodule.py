"""Data logic of training: which images, which sampler, which augmentation, which loader."""

from __future__ import annotations

import lightning as L
import pandas as pd
from torch.utils.data import DataLoader

from drgrader.config import ExperimentConfig
from drgrader.data.dataset import (
    EpochSampler,
    FundusDataset,
    build_augmentation,
    sampler_classes,
)
from drgrader.runtime import cpu_count
from drgrader.training.distillation import distillation_targets


def loader_workers(cfg: ExperimentConfig) -> int:
    # Decoding cached PNGs is cheap; one worker per two cores leaves the rest to the model.
    return cfg.data.workers if cfg.data.workers > 0 else max(0, cpu_count() // 2)


class FundusDataModule(L.LightningDataModule):
    """``table``: the prepared manifest (columns cache_path, grade, split)."""

    def __init__(self, cfg: ExperimentConfig, table: pd.DataFrame):
        super().__init__()
        self.cfg = cfg
        self.train_rows = table[table["split"] == "train"].reset_index(drop=True)
        self.val_rows = table[table["split"] == "val"].reset_index(drop=True)
        if self.train_rows.empty or self.val_rows.empty:
            raise ValueError(
                f"training needs non-empty train and val splits (got {len(self.train_rows)} train, "
                f"{len(self.val_rows)} val images); check data.split"
            )

    def _loader(self, rows: pd.DataFrame, train: bool) -> DataLoader:
        t = self.cfg.train
        augment = build_augmentation(t.augment, self.cfg.data.image_size) if train else None
        targets = None
        if train and t.distill_from is not None:
            targets = distillation_targets(rows, t.distill_from, t.distill_weight)
        dataset = FundusDataset(rows["cache_path"].tolist(), rows["grade"].tolist(), augment, targets=targets)
        workers = loader_workers(self.cfg)
        sampler = None
        if train:
            classes = sampler_classes(rows["grade"].to_numpy(), self.cfg.model.task)
            sampler = EpochSampler(classes, t.sampler, seed=t.seed, decay=t.sampler_decay)
            if self.trainer is not None:
                # Lightning draws the first epoch's order before its set_epoch call: a resumed
                # run must start with the epoch it resumes at (the value set_epoch would get).
                sampler.set_epoch(self.trainer.fit_loop.epoch_progress.current.processed)
        return DataLoader(
            dataset,
            batch_size=t.batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=workers,
            persistent_workers=workers > 0,
            drop_last=train and len(rows) > t.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_rows, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_rows, train=False)

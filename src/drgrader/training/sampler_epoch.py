"""Each training epoch draws a new order and new augmentation seeds, whatever the Lightning
version: the train sampler's ``set_epoch`` is called by drgrader itself.

Under DDP Lightning wraps a custom sampler (``EpochSampler``) in a ``DistributedSamplerWrapper``.
Releases before the fix of Lightning issue #21454 call ``set_epoch`` on that wrapper only, so the
sampler inside stayed at epoch 0 and every epoch replayed epoch 0's order and seeds. The
callback reaches through the wrapper. It runs at train-epoch start, before Lightning creates the
epoch's iterator (for the first epoch the iterator already exists: the datamodule sets that
epoch when it builds the loader).

Debugging hook: with DRGRADER_SAMPLE_LOG=<folder> set, each rank also writes the indices its
train sampler draws for the epoch (its shard, under DDP) to ``<folder>/rank<r>-epoch<e>.json``;
the torchrun test checks with them that the shards are disjoint and reordered every epoch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L

SAMPLE_LOG_ENV = "DRGRADER_SAMPLE_LOG"


def _loaders(obj: Any) -> Iterator[Any]:
    """The data loaders in ``trainer.train_dataloader`` (one, or a list / dict of them)."""
    if isinstance(obj, dict):
        for value in obj.values():
            yield from _loaders(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _loaders(value)
    elif obj is not None:
        yield obj


def epoch_samplers(loader: Any) -> list[Any]:
    """The samplers of a loader that take ``set_epoch``: its sampler, its batch sampler's, and
    the samplers they wrap (a ``DistributedSamplerWrapper`` keeps the original one in
    ``.dataset._sampler``)."""
    found: dict[int, Any] = {}
    for sampler in (getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
        while sampler is not None and id(sampler) not in found:
            found[id(sampler)] = sampler
            sampler = getattr(getattr(sampler, "dataset", None), "_sampler", None)
    return [s for s in found.values() if callable(getattr(s, "set_epoch", None))]


class SamplerEpoch(L.Callback):
    """Calls ``set_epoch(trainer.current_epoch)`` on every train sampler, wrapped ones
    included, at the start of each train epoch."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        for loader in _loaders(trainer.train_dataloader):
            for sampler in epoch_samplers(loader):
                sampler.set_epoch(trainer.current_epoch)
        if os.environ.get(SAMPLE_LOG_ENV):
            write_draws(Path(os.environ[SAMPLE_LOG_ENV]), trainer)


def write_draws(folder: Path, trainer) -> None:
    """The sample indices this rank's train sampler yields this epoch, as a JSON file."""
    draws, size = [], 0
    for loader in _loaders(trainer.train_dataloader):
        sampler = getattr(loader, "sampler", None)
        if sampler is not None:  # iterating is pure: the same draws the epoch's iterator makes
            draws += [int(item[0] if isinstance(item, tuple) else item) for item in sampler]
            size += len(loader.dataset)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"rank": trainer.global_rank, "world_size": trainer.world_size, "epoch": trainer.current_epoch,
              "of": size, "indices": draws}
    (folder / f"rank{trainer.global_rank}-epoch{trainer.current_epoch}.json").write_text(json.dumps(record))

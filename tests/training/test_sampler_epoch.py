"""The SamplerEpoch callback alone gives every epoch a new order: with Lightning's own set_epoch
calls switched off, and through a DistributedSamplerWrapper that does not forward set_epoch
(Lightning before the fix of its issue #21454)."""

from types import SimpleNamespace

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from drgrader.data.dataset import EpochSampler
from drgrader.training.sampler_epoch import SamplerEpoch, epoch_samplers

CLASSES = np.array([0, 1, 2, 3, 4] * 8)


class Indices(Dataset):
    """Item = the sample's index (EpochSampler yields (index, augmentation seed))."""

    def __len__(self):
        return len(CLASSES)

    def __getitem__(self, item):
        return torch.tensor([float(item[0])])


class Recorder(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.seen: dict[int, list[int]] = {}

    def training_step(self, batch, batch_idx):
        self.seen.setdefault(self.current_epoch, []).extend(batch[:, 0].int().tolist())
        return self.layer(batch).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def train_dataloader(self):
        return DataLoader(Indices(), sampler=EpochSampler(CLASSES, "natural", seed=0), batch_size=8)


def orders_by_epoch(monkeypatch, callbacks) -> dict[int, list[int]]:
    # A Lightning that never calls set_epoch itself: only the callback can move the sampler on.
    monkeypatch.setattr("lightning.pytorch.loops.fit_loop._set_sampler_epoch", lambda dataloader, epoch: None)
    module = Recorder()
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", devices=1, callbacks=callbacks, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module)
    return module.seen


def test_the_callback_alone_gives_each_epoch_a_new_order(monkeypatch):
    without = orders_by_epoch(monkeypatch, [])
    assert without[0] == without[1] == without[2]  # the failure the callback exists for
    seen = orders_by_epoch(monkeypatch, [SamplerEpoch()])
    assert seen[0] == without[0]  # epoch 0 unchanged
    assert seen[0] != seen[1] != seen[2] != seen[0]
    assert all(sorted(order) == list(range(len(CLASSES))) for order in seen.values())  # each a permutation


def test_the_callback_reaches_through_a_ddp_wrapper_that_does_not_forward(monkeypatch):
    monkeypatch.setattr(DistributedSamplerWrapper, "set_epoch", DistributedSampler.set_epoch)  # pre-fix Lightning
    inner = EpochSampler(CLASSES, "natural", seed=0)
    wrapper = DistributedSamplerWrapper(inner, num_replicas=2, rank=0, shuffle=False)
    loader = DataLoader(Indices(), sampler=wrapper, batch_size=8)
    assert epoch_samplers(loader) == [wrapper, inner]

    orders = []
    for epoch in (0, 1):
        SamplerEpoch().on_train_epoch_start(SimpleNamespace(train_dataloader=loader, current_epoch=epoch), None)
        orders.append([int(x) for batch in loader for x in batch[:, 0]])
    assert inner.epoch == 1 and wrapper.epoch == 1
    assert orders[0] != orders[1] and len(orders[0]) == len(CLASSES) // 2  # this rank's half, a new one each epoch

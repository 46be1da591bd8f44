"""Training levers of the lab: mixup and progressive resizing (train.mixup, train.progressive_*)."""

import pytest
import torch
from conftest import tiny_config

from drgrader.config import load_config
from drgrader.models.factory import create_model, input_mean_std
from drgrader.training.module import GraderModule


def module_of(**sets) -> GraderModule:
    cfg = load_config(None, ["model.backbone=test_resnet", "model.pretrained=none", "train.loss=mse",
                             *[f"{k}={v}" for k, v in sets.items()]])
    return GraderModule(cfg, create_model(cfg.model, cfg.train.loss), *input_mean_std("test_resnet", cfg.data.normalize))


def test_mixup_blends_two_photos_and_their_losses(monkeypatch):
    module = module_of(**{"train.mixup": 0.4})
    seen = []
    monkeypatch.setattr(GraderModule, "_raw", lambda self, pixels: seen.append(pixels) or torch.full((len(pixels), 1), 2.0))
    monkeypatch.setattr(torch.distributions.Beta, "sample", lambda self: torch.tensor(0.25))
    monkeypatch.setattr(torch, "randperm", lambda n, device=None: torch.arange(n - 1, -1, -1))
    black = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    white = torch.full((1, 3, 8, 8), 200, dtype=torch.uint8)
    loss = module.training_step((torch.cat([black, white]), torch.tensor([0, 4])), 0)
    # Each photo blended with the other: 0.25 of itself, 0.75 of its partner.
    assert seen[0][0].unique().tolist() == [150.0] and seen[0][1].unique().tolist() == [50.0]
    # A prediction of 2 against grades 0 and 4 (squared error 4 each), mixed 0.25 / 0.75.
    assert float(loss) == pytest.approx(0.25 * 4 + 0.75 * 4)


def test_without_mixup_the_photos_go_in_as_they_are(monkeypatch):
    module = module_of()
    seen = []
    monkeypatch.setattr(GraderModule, "_raw", lambda self, pixels: seen.append(pixels) or torch.full((len(pixels), 1), 1.0))
    pixels = torch.randint(0, 255, (2, 3, 8, 8), dtype=torch.uint8)
    loss = module.training_step((pixels, torch.tensor([0, 3])), 0)
    assert torch.equal(seen[0], pixels) and float(loss) == pytest.approx((1 + 4) / 2)


@pytest.mark.slow
def test_progressive_resizing_trains_small_first_then_at_full_size(synth_dir, tmp_path, monkeypatch):
    from drgrader.workflows.train import train

    sizes: dict[int, set] = {}
    original = GraderModule._raw

    def recording(self, pixels):
        if self.training:
            sizes.setdefault(self.current_epoch, set()).add(pixels.shape[-1])
        return original(self, pixels)

    monkeypatch.setattr(GraderModule, "_raw", recording)
    cfg = tiny_config(synth_dir, **{"train.epochs": 4, "train.progressive_start_size": 32,
                                    "train.progressive_until": 0.5, "eval.bootstrap": 0})
    train(cfg, out=tmp_path / "run", progress=False)
    assert sizes == {0: {32}, 1: {32}, 2: {48}, 3: {48}}

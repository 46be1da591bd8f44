"""Averaged weights kept beside the trained ones, at no extra training cost: an exponential moving
average (EMA) of the weights over the optimiser steps, and the plain average of the weights at
the end of the last few epochs (SWA-style, on the run's own schedule). Both are measured by the
lab (:mod:`drgrader.workflows.lab`) against the checkpoint the run keeps.

Buffers are averaged too (BatchNorm's running statistics): timm's ``ModelEmaV3`` does the same,
and it spares a pass over the training data to recompute them. The averages are callback state,
so a resumed run continues them.
"""

from __future__ import annotations

import lightning as L
import torch


def _float_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().float() if v.is_floating_point() else v.detach().clone() for k, v in state.items()}


class WeightAverages(L.Callback):
    def __init__(self, *, ema_decay: float | None, average_last: int):
        self.ema_decay = ema_decay
        self.average_last = average_last
        self.ema: dict[str, torch.Tensor] | None = None
        self.ema_steps = 0
        self.recent: list[dict[str, torch.Tensor]] = []  # weights at the end of the last epochs

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.ema_decay is None:
            return
        state = pl_module.scoring.state_dict()
        if self.ema is None:
            self.ema = _float_copy(state)
        # Warm-up of the decay (as timm's EMA): early steps are not averaged with the random head.
        self.ema_steps += 1
        decay = min(self.ema_decay, (1 + self.ema_steps) / (10 + self.ema_steps))
        with torch.no_grad():
            for key, value in state.items():
                if value.is_floating_point():
                    self.ema[key].mul_(decay).add_(value.detach().float(), alpha=1 - decay)
                else:
                    self.ema[key].copy_(value)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.average_last < 2:
            return
        self.recent = (self.recent + [_float_copy(pl_module.scoring.state_dict())])[-self.average_last :]

    def averaged(self) -> dict[str, dict[str, torch.Tensor]]:
        """``{"ema": state, "average_last": state}`` for those the run kept (scoring-net keys)."""
        out = {}
        if self.ema is not None:
            out["ema"] = self.ema
        if len(self.recent) >= 2:
            out["average_last"] = {
                key: torch.stack([s[key] for s in self.recent]).mean(0) if self.recent[0][key].is_floating_point()
                else self.recent[-1][key]
                for key in self.recent[0]
            }
        return out

    def state_dict(self) -> dict:
        return {"ema": self.ema, "ema_steps": self.ema_steps, "recent": self.recent}

    def load_state_dict(self, state_dict: dict) -> None:
        self.ema = state_dict.get("ema")
        self.ema_steps = state_dict.get("ema_steps", 0)
        self.recent = list(state_dict.get("recent", []))

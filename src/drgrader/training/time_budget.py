"""``train.budget_minutes``: plan the number of epochs so that training ends at the budget on the
machine it runs on.

After every epoch (its validation included) the callback takes the median epoch time so far (or
the latest epoch's, if slower) and plans as many more whole epochs as the rest of the budget holds; the cosine schedule follows the
plan (:attr:`GraderModule.schedule_epochs`), so the learning rate reaches its floor in the last
planned epoch instead of being cut off mid-curve. ``train.epochs`` is only the first guess, used
until the first epoch has been timed. ``max_minutes`` stays the hard stop.

The measured epoch times and the plan are callback state: a resumed run continues the same
budget (the time already spent counts).
"""

from __future__ import annotations

import logging
import math
import statistics
import time

import lightning as L

log = logging.getLogger("drgrader")


def planned_epochs(budget_s: float, spent_s: float, done: int, epoch_s: float) -> int:
    """Whole epochs in all: those done, plus as many more as ``budget_s - spent_s`` holds at
    ``epoch_s`` each (at least the ones done; never fewer than one)."""
    more = math.floor(max(0.0, budget_s - spent_s) / epoch_s) if epoch_s > 0 else 0
    return max(1, done + more)


class TimeBudget(L.Callback):
    def __init__(self, budget_minutes: float):
        self.budget_s = budget_minutes * 60.0
        self.epoch_seconds: list[float] = []
        self.planned: int | None = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._started = time.monotonic()

    # Runs after this epoch's validation (Lightning calls it once the epoch's loop is done).
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epoch_seconds.append(time.monotonic() - getattr(self, "_started", time.monotonic()))
        done = trainer.current_epoch + 1
        spent = sum(self.epoch_seconds)
        # The slower of the typical epoch and the latest one: after progressive resizing switches
        # to the full size, the small epochs before it must not promise time that is not there.
        epoch_s = max(statistics.median(self.epoch_seconds), self.epoch_seconds[-1])
        plan = planned_epochs(self.budget_s, spent, done, epoch_s)
        if plan != self.planned:
            log.info("time budget %.3g min: %.1f s an epoch, %d epochs in all", self.budget_s / 60, epoch_s, plan)
        self.apply(trainer, pl_module, plan)
        if done >= plan:
            trainer.should_stop = True

    def apply(self, trainer, pl_module, plan: int) -> None:
        self.planned = plan
        trainer.fit_loop.max_epochs = plan
        pl_module.schedule_epochs = plan

    def on_train_start(self, trainer, pl_module) -> None:
        if self.planned is not None:  # resumed: the plan made before the interruption
            self.apply(trainer, pl_module, self.planned)

    def state_dict(self) -> dict:
        return {"epoch_seconds": self.epoch_seconds, "planned": self.planned}

    def load_state_dict(self, state_dict: dict) -> None:
        self.epoch_seconds = list(state_dict.get("epoch_seconds", []))
        self.planned = state_dict.get("planned")

    def record(self) -> dict:
        """What the run reports: the budget, the epoch times and the epochs it planned."""
        return {"budget_minutes": round(self.budget_s / 60, 2), "planned_epochs": self.planned,
                "epoch_seconds": [round(s, 3) for s in self.epoch_seconds]}

"""Losses for each task, built from the config. Targets are always the integer grade (0..4);
each loss turns it into what its head needs (class index, binary label, ordinal levels)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from coral_pytorch.dataset import levels_from_labelbatch
from coral_pytorch.losses import coral_loss, corn_loss
from torch import nn
from torchvision.ops import sigmoid_focal_loss

from drgrader.grading import NUM_GRADES, SCREENS


def binary_target(grades: torch.Tensor, task: str) -> torch.Tensor:
    """any_dr: grade >= 1 (seed 001); referable: grade >= 2."""
    return (grades >= SCREENS[task][1]).float()


class TaskLoss(nn.Module):
    def __init__(
        self,
        task: str,
        loss: str,
        *,
        label_smoothing: float = 0.0,
        class_weights: torch.Tensor | None = None,
        focal_gamma: float = 1.5,
        focal_alpha: float = 0.5,
    ):
        super().__init__()
        self.task, self.loss = task, loss
        self.label_smoothing = label_smoothing
        self.focal_gamma, self.focal_alpha = focal_gamma, focal_alpha
        self.register_buffer("class_weights", class_weights if class_weights is not None else None)

    def _sample_weights(self, grades: torch.Tensor) -> torch.Tensor | None:
        return None if self.class_weights is None else self.class_weights[grades]

    def forward(self, raw: torch.Tensor, grades: torch.Tensor) -> torch.Tensor:
        raw = raw.float()
        weights = self._sample_weights(grades)
        if self.task != "grade":
            y = binary_target(grades, self.task)
            logit = raw.reshape(-1)
            if self.loss == "focal":
                # torchvision's focal loss: alpha weights positives, (1 - alpha) negatives (seed 001).
                per = sigmoid_focal_loss(logit, y, alpha=self.focal_alpha, gamma=self.focal_gamma)
            else:
                per = F.binary_cross_entropy_with_logits(logit, y, reduction="none")
            return _weighted_mean(per, weights)
        if self.loss == "ce":
            per = F.cross_entropy(raw, grades, label_smoothing=self.label_smoothing, reduction="none")
        elif self.loss == "focal":
            logp = F.log_softmax(raw, dim=1).gather(1, grades[:, None]).squeeze(1)
            per = -((1 - logp.exp()) ** self.focal_gamma) * logp
        elif self.loss in ("mse", "smooth_l1"):
            fn = F.mse_loss if self.loss == "mse" else F.smooth_l1_loss
            per = fn(raw.reshape(-1), grades.float(), reduction="none")
        elif self.loss == "coral":
            levels = levels_from_labelbatch(grades, NUM_GRADES).to(raw.device)
            if weights is None:
                return coral_loss(raw, levels)
            per = coral_loss(raw, levels, reduction=None)
        elif self.loss == "corn":
            # corn_loss has no per-sample form; class weights are not applied to it.
            return corn_loss(raw, grades, NUM_GRADES)
        elif self.loss == "multitask":
            # Regression, ordinal and referable targets on one network, summed with equal weights
            # (each starts near 1); class weights apply to the squared error and the referable term.
            squared = F.mse_loss(raw[:, 0], grades.float(), reduction="none")
            referable = F.binary_cross_entropy_with_logits(raw[:, 5], binary_target(grades, "referable"), reduction="none")
            return _weighted_mean(squared + referable, weights) + corn_loss(raw[:, 1:5], grades, NUM_GRADES)
        else:
            raise ValueError(f"unknown loss {self.loss!r}")
        return _weighted_mean(per, weights)


def _weighted_mean(per: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return per.mean()
    return (per * weights).sum() / weights.sum().clamp_min(1e-8)


def inverse_frequency_weights(grades, task: str) -> torch.Tensor:
    """Per-grade weights so that each class (grade, or binary class) contributes equally."""
    grades = torch.as_tensor(grades, dtype=torch.long)
    total = float(len(grades))
    if task == "grade":
        # An absent grade gets the weight of a grade seen once; it never occurs in the loss.
        counts = torch.bincount(grades, minlength=NUM_GRADES).float().clamp_min(1)
        return total / (NUM_GRADES * counts)
    pos = binary_target(grades, task).long()
    counts = torch.bincount(pos, minlength=2).float().clamp_min(1)
    per_binary = total / (2 * counts)
    # Expand to per-grade weights so the loss indexes them by grade like the grade task.
    return per_binary[binary_target(torch.arange(NUM_GRADES), task).long()]

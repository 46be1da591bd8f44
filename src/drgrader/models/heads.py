"""Classification heads and how their raw outputs decode into grades and screening scores.

Every model ends in one of five output kinds, fixed by task and loss:

========== ============ ================================================================
kind       outputs      decoding
========== ============ ================================================================
softmax5   5 logits     class probabilities by softmax (ce, focal on grades)
regression 1 value      the grade itself as a real number (mse, smooth_l1)
coral      4 logits     P(grade > k) = sigmoid(logit_k), rank-consistent (CORAL)
corn       4 logits     P(grade > k) = prod_{j<=k} sigmoid(logit_j) (CORN)
multitask  6 outputs    a regression value, 4 CORN logits and a referable logit, trained
                        together; the grade is the mean of the regression value and the
                        CORN expected grade (one score, like regression); the referable
                        logit only shapes the shared features
binary     1 logit      P(positive) by sigmoid (any_dr, referable)
========== ============ ================================================================
"""

from __future__ import annotations

import torch
from torch import nn

from drgrader.grading import NUM_GRADES, SCREENS


def output_kind(task: str, loss: str) -> str:
    if task != "grade":
        return "binary"
    return {
        "ce": "softmax5",
        "focal": "softmax5",
        "mse": "regression",
        "smooth_l1": "regression",
        "coral": "coral",
        "corn": "corn",
        "multitask": "multitask",
    }[loss]


def output_size(kind: str) -> int:
    return {"softmax5": 5, "regression": 1, "coral": 4, "corn": 4, "multitask": 6, "binary": 1}[kind]


class CoralLayer(nn.Module):
    """CORAL: one shared weight vector and 4 ordered biases (Cao et al., 2020)."""

    def __init__(self, in_features: int, num_classes: int = NUM_GRADES):
        super().__init__()
        self.fc = nn.Linear(in_features, 1, bias=False)
        self.biases = nn.Parameter(torch.arange(num_classes - 1, 0, -1).float() / (num_classes - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) + self.biases


def make_head(kind: str, in_features: int, style: str, drop_rate: float = 0.0) -> nn.Module:
    """A linear head, or seed 001's MLP head (BN, dropout .5, 256, BN, dropout .3, 128, dropout .2)."""
    out = output_size(kind)
    final: nn.Module
    if style == "seed001":
        final_in = 128
    else:
        final_in = in_features
    final = CoralLayer(final_in) if kind == "coral" else nn.Linear(final_in, out)
    if style == "seed001":
        return nn.Sequential(
            nn.BatchNorm1d(in_features),
            nn.Dropout(0.5),
            nn.Linear(in_features, 256),
            nn.ReLU(inplace=True),
            nn.BatchNorm1d(256),
            nn.Dropout(0.3),
            nn.Linear(256, 128),
            nn.ReLU(inplace=True),
            nn.Dropout(0.2),
            final,
        )
    return nn.Sequential(nn.Dropout(drop_rate), final) if drop_rate > 0 else final


def decode(kind: str, raw: torch.Tensor, task: str = "grade") -> dict[str, torch.Tensor]:
    """Turn raw outputs into ``probs`` (N,5, when the kind has them), ``expected_grade`` (N,),
    ``score_any`` and ``score_referable`` (N,), all monotone in the disease risk.
    A binary model only has the score of its own task."""
    raw = raw.float()
    if kind == "binary":
        p = torch.sigmoid(raw.reshape(-1))
        return {SCREENS[task][0]: p}
    if kind == "regression":
        g = raw.reshape(-1)
        return {"expected_grade": g, "score_any": g, "score_referable": g}
    if kind == "multitask":
        ordinal = decode("corn", raw[:, 1:5])["expected_grade"]
        g = (raw[:, 0] + ordinal) / 2
        return {"expected_grade": g, "score_any": g, "score_referable": g}
    if kind == "softmax5":
        probs = torch.softmax(raw, dim=1)
    else:
        if kind == "coral":
            greater = torch.sigmoid(raw)
        else:  # corn: conditional probabilities chain into P(y > k)
            # exp(cumsum(log sigmoid)) rather than cumprod(sigmoid): ONNX has CumSum but no CumProd.
            greater = torch.exp(torch.cumsum(torch.nn.functional.logsigmoid(raw), dim=1))
        # P(y > k) for k = -1..4 is 1, greater..., 0; class probabilities are its differences.
        ones = torch.ones_like(greater[:, :1])
        zeros = torch.zeros_like(greater[:, :1])
        cum = torch.cat([ones, greater, zeros], dim=1)
        probs = (cum[:, :-1] - cum[:, 1:]).clamp_min(0)
        probs = probs / probs.sum(dim=1, keepdim=True).clamp_min(1e-8)
    grades = torch.arange(NUM_GRADES, device=probs.device, dtype=probs.dtype)
    return {
        "probs": probs,
        "expected_grade": (probs * grades).sum(dim=1),
        "score_any": 1.0 - probs[:, 0],
        "score_referable": probs[:, 2:].sum(dim=1),
    }

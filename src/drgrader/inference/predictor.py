"""From pixels to a predictions table, with test-time augmentation. NumPy only: the same code
serves PyTorch and ONNX Runtime backends (a *runner* maps float pixels N x 3 x H x W, 0..255,
to decoded scores N x 8)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
import pandas as pd

SCORE_COLUMNS = ["p0", "p1", "p2", "p3", "p4", "expected_grade", "score_any", "score_referable"]
Runner = Callable[[np.ndarray], np.ndarray]


def apply_view(batch: np.ndarray, view: str) -> np.ndarray:
    """One TTA view of a uint8 batch N x H x W x 3 (seed 001's five plus rotations and a zoom)."""
    if view == "orig":
        return batch
    if view == "hflip":
        return batch[:, :, ::-1]
    if view == "vflip":
        return batch[:, ::-1]
    if view == "hvflip":
        return batch[:, ::-1, ::-1]
    if view == "bright":  # seed 001: x1.1, clipped
        return np.clip(batch.astype(np.float32) * 1.1, 0, 255).astype(np.uint8)
    if view == "rot90":
        return np.rot90(batch, 1, axes=(1, 2))
    if view == "rot270":
        return np.rot90(batch, 3, axes=(1, 2))
    if view == "zoom":  # central 90%, back to full size
        n, h, w, _ = batch.shape
        dy, dx = int(round(h * 0.05)), int(round(w * 0.05))
        return np.stack([cv2.resize(img[dy : h - dy, dx : w - dx], (w, h), interpolation=cv2.INTER_LINEAR) for img in batch])
    raise ValueError(f"unknown TTA view {view!r}")


def score_batch(runner: Runner, batch: np.ndarray, views: Sequence[str] = ("orig",)) -> np.ndarray:
    """Mean of the decoded scores over the TTA views (averaging probabilities, not logits)."""
    outs = []
    for view in views or ("orig",):
        pixels = np.ascontiguousarray(apply_view(batch, view).transpose(0, 3, 1, 2), dtype=np.float32)
        outs.append(runner(pixels))
    return np.mean(outs, axis=0)


def decide(scores: np.ndarray, thresholds: dict | None) -> pd.DataFrame:
    """Scores (N x 8) -> table with predicted grade and screening decisions.

    The grade comes from the fitted cut-points on the expected grade when there are any,
    else from the most probable class (or the rounded regression value)."""
    thresholds = thresholds or {}
    df = pd.DataFrame(scores, columns=SCORE_COLUMNS)
    expected = df["expected_grade"].to_numpy()
    cut = thresholds.get("cutpoints")
    if np.isnan(expected).all():
        pred = np.full(len(df), np.nan)
    elif cut is not None:
        pred = np.digitize(expected, np.asarray(cut, dtype=float)).astype(float)
    elif not np.isnan(df["p0"]).all():
        pred = df[["p0", "p1", "p2", "p3", "p4"]].to_numpy().argmax(axis=1).astype(float)
    else:
        pred = np.clip(np.rint(expected), 0, 4)
    df["pred_grade"] = pred
    for name, col in (("any_dr", "score_any"), ("referable", "score_referable")):
        thr = thresholds.get(name)
        score = df[col].to_numpy()
        if thr is None:
            # No fitted threshold: fall back on the predicted grade, else 0.5 for probabilities.
            if not np.isnan(pred).all():
                decision = (pred >= (1 if name == "any_dr" else 2)).astype(float)
            else:
                decision = np.where(np.isnan(score), np.nan, (score >= 0.5).astype(float))
        else:
            decision = np.where(np.isnan(score), np.nan, (score >= thr).astype(float))
        df[f"{name}_pred"] = decision
    return df

"""From pixels to scores, with test-time augmentation. NumPy only: the same code serves PyTorch
and ONNX Runtime backends (a *runner* maps float pixels N x 3 x H x W, 0..255, to decoded
scores N x 8, the columns of :data:`drgrader.grading.SCORE_COLUMNS`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

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
    if view == "transpose":  # mirror about the main diagonal: with the seven above, the 8 dihedral views
        return batch.transpose(0, 2, 1, 3)
    if view == "antitranspose":
        return batch[:, ::-1, ::-1].transpose(0, 2, 1, 3)
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

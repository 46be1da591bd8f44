"""Torch datasets over the preprocessed cache, augmentation, and class-balancing samplers."""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from drgrader.config import AugmentConfig


def build_augmentation(cfg: AugmentConfig, size: int) -> A.Compose | None:
    """Training-time augmentation (albumentations). Validation and test use none."""
    steps: list[A.BasicTransform] = []
    if cfg.random_resized_crop > 0:
        steps.append(A.RandomResizedCrop(size=(size, size), scale=(1 - cfg.random_resized_crop, 1.0), p=1.0))
    if cfg.hflip:
        steps.append(A.HorizontalFlip(p=cfg.hflip))
    if cfg.vflip:
        steps.append(A.VerticalFlip(p=cfg.vflip))
    if cfg.rotate or cfg.scale:
        steps.append(
            A.Affine(
                rotate=(-cfg.rotate, cfg.rotate),
                scale=(1 - cfg.scale, 1 + cfg.scale),
                border_mode=0,  # cv2.BORDER_CONSTANT: black, like the fundus surround
                p=1.0,
            )
        )
    if cfg.brightness or cfg.contrast:
        steps.append(
            A.RandomBrightnessContrast(brightness_limit=cfg.brightness, contrast_limit=cfg.contrast, p=1.0)
        )
    if cfg.color_jitter:
        steps.append(A.ColorJitter(brightness=0, contrast=0, saturation=cfg.color_jitter, hue=cfg.color_jitter / 4, p=0.8))
    if cfg.blur:
        steps.append(A.GaussianBlur(blur_limit=(3, 5), p=cfg.blur))
    if cfg.clahe:
        steps.append(A.CLAHE(clip_limit=(1.0, 3.0), tile_grid_size=(8, 8), p=cfg.clahe))
    return A.Compose(steps) if steps else None


class FundusDataset(Dataset):
    """Preprocessed fundus images (uint8 HxWx3 in the cache) with their grades.

    Returns ``(uint8 tensor 3xHxW, grade)``, or the distillation target in place of the grade:
    normalisation happens in the model module, on the whole batch, so that the bundle's
    inference applies exactly the same arithmetic.
    """

    def __init__(self, cache_paths: Sequence[str], grades: Sequence[int], augment: A.Compose | None = None,
                 *, targets: Sequence[float] | None = None):
        if len(cache_paths) != len(grades) or (targets is not None and len(targets) != len(grades)):
            raise ValueError("cache_paths, grades and targets differ in length")
        self.cache_paths = list(cache_paths)
        self.grades = np.asarray(grades, dtype=np.int64)
        # A distillation target (grade blended with a teacher's score) replaces the grade as label.
        self.targets = None if targets is None else np.asarray(targets, dtype=np.float32)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.cache_paths)

    def __getitem__(self, item):
        from drgrader.data.cache import load_cached

        # Training samplers yield (index, seed): the augmentation of a sample depends only on
        # that seed, not on worker count or on whether the run was resumed.
        i, seed = item if isinstance(item, tuple) else (item, None)
        img = load_cached(self.cache_paths[i])
        if self.augment is not None:
            if seed is not None:
                self.augment.set_random_seed(seed)
            img = self.augment(image=img)["image"]
        tensor = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        return tensor, int(self.grades[i]) if self.targets is None else float(self.targets[i])


def sampler_classes(grades: np.ndarray, task: str) -> np.ndarray:
    """The classes a sampler balances: grades, or the binary label of a screening task."""
    grades = np.asarray(grades)
    if task == "grade":
        return grades
    return (grades >= (1 if task == "any_dr" else 2)).astype(np.int64)


class EpochSampler(Sampler[tuple[int, int]]):
    """Epoch-aware sampling of a training set, yielding ``(index, augmentation seed)``.

    - ``natural``: a shuffle of the data set.
    - ``oversample``: seed 001: every minority class is drawn with replacement up to the size of
      the largest class; the majority is used once (an epoch is n_classes x largest class).
    - ``balanced``: each class drawn equally often, epoch length = data set length.
    - ``schedule``: class weights move from balanced towards natural frequencies,
      w_c(epoch) = balanced_c ** (decay ** epoch) (Kaggle 2015 practice).
    Call ``set_epoch`` each epoch (done by the training loop); deterministic for a seed.
    """

    def __init__(self, classes: np.ndarray, mode: str, *, seed: int = 0, decay: float = 0.8):
        self.classes = np.asarray(classes)
        self.mode, self.seed, self.decay = mode, seed, decay
        self.epoch = 0
        uniq, counts = np.unique(self.classes, return_counts=True)
        self.counts = dict(zip(uniq.tolist(), counts.tolist()))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self.mode == "oversample":
            return max(self.counts.values()) * len(self.counts)
        return len(self.classes)

    def _weights(self) -> np.ndarray:
        per_class = {c: 1.0 / n for c, n in self.counts.items()}
        if self.mode == "schedule":
            power = self.decay**self.epoch
            per_class = {c: w**power for c, w in per_class.items()}
        w = np.array([per_class[c] for c in self.classes.tolist()])
        return w / w.sum()

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.mode == "natural":
            order = rng.permutation(len(self.classes))
        elif self.mode == "oversample":
            target = max(self.counts.values())
            parts = []
            for c, n in self.counts.items():
                idx = np.flatnonzero(self.classes == c)
                parts.append(idx if n == target else rng.choice(idx, size=target, replace=True))
            order = np.concatenate(parts)
            rng.shuffle(order)
        else:
            order = rng.choice(len(self.classes), size=len(self.classes), replace=True, p=self._weights())
        seeds = rng.integers(0, 2**31 - 1, size=len(order))
        return iter(zip(order.tolist(), seeds.tolist()))

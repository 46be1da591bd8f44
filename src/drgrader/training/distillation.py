"""Distillation: a single network learns from a teacher (e.g. the fold ensemble) as well as from
the graders, so that it can deploy at one model's cost.

The teacher's scores come as a CSV (``image_id``, ``expected_grade``): a ``drgrader cv``
folder's ``predictions_oof.csv`` is one, each photo scored by the fold model that never saw its
patient. The regression target of a training photo becomes ``(1 - w) * grade + w * teacher``
(for the squared error, the same gradient as ``w`` of the teacher's loss and ``1 - w`` of the
grade's). Validation keeps the graders' grades: checkpoints and thresholds are chosen on them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from drgrader.data.label_files import DataError
from drgrader.outputs import read_back

TEACHER_COLUMNS = ("image_id", "expected_grade")


def read_teacher_scores(file: Path) -> pd.Series:
    """image_id -> the teacher's expected grade, checked (columns, numbers, one row per photo)."""
    table = read_back(pd.read_csv(file, dtype={"image_id": str}, keep_default_na=False))
    missing = [c for c in TEACHER_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{file}: a teacher's scores need the columns {', '.join(TEACHER_COLUMNS)}; missing {', '.join(missing)}")
    scores = pd.to_numeric(table["expected_grade"], errors="coerce")
    if bad := np.flatnonzero(~np.isfinite(scores.to_numpy(float))).tolist():
        row = bad[0]
        raise DataError(f"{file} row {row + 1} (image {table['image_id'].iloc[row]!r}): expected_grade "
                        f"{table['expected_grade'].iloc[row]!r} is not a number")
    if dup := table["image_id"][table["image_id"].duplicated()].tolist():
        raise DataError(f"{file}: image {dup[0]!r} is scored twice")
    return pd.Series(scores.to_numpy(float), index=table["image_id"])


def distillation_targets(rows: pd.DataFrame, file: Path, weight: float) -> np.ndarray:
    """The blended targets of the training ``rows`` (image_id, grade); every photo needs a score."""
    teacher = read_teacher_scores(file)
    unscored = rows.loc[~rows["image_id"].isin(teacher.index), "image_id"]
    if len(unscored):
        raise DataError(f"{file}: no teacher score for {len(unscored)} of {len(rows)} training photos "
                        f"(e.g. {unscored.iloc[0]!r}): the teacher must have scored the same data set")
    return (1 - weight) * rows["grade"].to_numpy(float) + weight * teacher.loc[rows["image_id"]].to_numpy(float)

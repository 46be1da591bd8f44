"""Patient-level bootstrap confidence intervals: whole patients are resampled, so the two eyes
of one person (correlated) never count as independent evidence."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import sklearn

from drgrader.evaluation.metrics import MetricFn

# Below this many patients a resample is nearly the data itself (one patient: every resample the
# same, a CI of zero width that reads as certainty; probe 43 CG8): no interval is given.
MIN_PATIENTS_FOR_CI = 5
# Below this many resamples the 2.5th and 97.5th percentiles are the few extreme draws (one
# resample: an interval of zero width that may exclude its own estimate; probe 58 CV3): the
# intervals are given, with a warning first in console, report and card.
MIN_RESAMPLES_FOR_CI = 200


def _group_rows(df: pd.DataFrame, group: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows sorted by group, and each group's start and size in that order."""
    if group not in df.columns:
        raise ValueError(f"predictions table lacks the {group!r} column needed to resample")
    codes, uniques = pd.factorize(df[group], sort=False)
    if (codes < 0).any():
        bad = df.index[np.flatnonzero(codes < 0)[0]]
        raise ValueError(f"predictions table row {bad!r}: {group} is missing")
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=len(uniques))
    starts = np.cumsum(sizes) - sizes
    return order, starts, sizes


def _draw_rows(
    order: np.ndarray, starts: np.ndarray, sizes: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of one resample of groups, and the draw number of each row."""
    drawn = rng.integers(0, sizes.size, sizes.size)
    n_rows = sizes[drawn]
    first_row_of_draw = np.repeat(np.cumsum(n_rows) - n_rows, n_rows)
    offset_in_group = np.arange(n_rows.sum()) - first_row_of_draw
    rows = order[np.repeat(starts[drawn], n_rows) + offset_in_group]
    return rows, np.repeat(np.arange(drawn.size), n_rows)


def resample_patients(
    df: pd.DataFrame, rng: np.random.Generator, group: str = "patient_id"
) -> pd.DataFrame:
    """One bootstrap resample: patients drawn with replacement, each with all its images.

    The ``group`` column of the result holds the draw number (0..n_patients-1), so a patient
    drawn twice counts as two patients in patient-level metrics.
    """
    rows, draw = _draw_rows(*_group_rows(df, group), rng)
    out = df.iloc[rows].reset_index(drop=True)
    out[group] = draw
    return out


def bootstrap_cis(
    fns: dict[str, MetricFn],
    df: pd.DataFrame,
    *,
    group: str = "patient_id",
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, tuple[float, float, float]]:
    """Percentile bootstrap CIs of several metrics over the same patient resamples.

    Returns ``{name: (estimate on df, lo, hi)}``. Resamples where a metric is NaN (e.g. one
    class only) are skipped for that metric; with none left (or ``n == 0``, or fewer than
    :data:`MIN_PATIENTS_FOR_CI` groups) lo/hi are NaN.
    """
    estimates = {name: float(fn(df)) for name, fn in fns.items()}
    values = np.full((n, len(fns)), np.nan)
    if n > 0 and df[group].nunique() >= MIN_PATIENTS_FOR_CI:
        order, starts, sizes = _group_rows(df, group)
        rng = np.random.default_rng(seed)
        # The inputs were already checked on df; skipping sklearn's per-call validation
        # roughly halves the time of sklearn metrics over a thousand resamples.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            for i in range(n):
                rows, draw = _draw_rows(order, starts, sizes, rng)
                sample = df.iloc[rows].reset_index(drop=True)
                sample[group] = draw
                values[i] = [fn(sample) for fn in fns.values()]
    out = {}
    for j, name in enumerate(fns):
        valid = values[:, j][~np.isnan(values[:, j])]
        if valid.size == 0 or df[group].nunique() < MIN_PATIENTS_FOR_CI:
            out[name] = (estimates[name], math.nan, math.nan)
            continue
        if valid.size < 0.5 * n:
            warnings.warn(
                f"bootstrap of {name}: only {valid.size}/{n} resamples defined; CI is unreliable",
                stacklevel=2,
            )
        lo, hi = np.percentile(valid, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        out[name] = (estimates[name], float(lo), float(hi))
    return out


def bootstrap_ci(
    fn: MetricFn,
    df: pd.DataFrame,
    *,
    group: str = "patient_id",
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """``(fn(df), lo, hi)``: percentile CI from ``n`` resamples of whole patients."""
    return bootstrap_cis({"value": fn}, df, group=group, n=n, seed=seed, alpha=alpha)["value"]

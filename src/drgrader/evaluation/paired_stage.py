"""Fit the paired-eye stage on labelled single-eye predictions, with honest figures for it.

One function for every place that fits the stage: ``train`` on its validation patients, ``cv``
on the pooled out-of-fold predictions, the lab on each variant's."""

from __future__ import annotations

import pandas as pd

from drgrader.config import EvalConfig
from drgrader.evaluation.thresholds import fit_thresholds
from drgrader.inference.paired_eyes import cross_fit_paired_eyes, fit_paired_eyes, fused_table


def fit_paired_stage(single: pd.DataFrame, eval_cfg: EvalConfig, *, patients: str = "patients") -> tuple[dict, pd.DataFrame]:
    """``(stage, decided)``: the stage (``{"model", "thresholds"}``) fitted on every eye of
    ``single`` (true ``grade``, scores, ``patient_id``, ``eye``), and those eyes decided by a
    cross-fitted copy of it: each eye's fused grade comes from a stage fitted without its patient
    (patient-grouped 5-fold), so the figures on ``decided`` are not in-sample. The thresholds and
    cut-points are fitted on those cross-fitted fused grades (before the guard that keeps a severe
    eye severe, ``inference.paired_eyes.guarded``). Raises ValueError when too few eyes
    have their fellow eye, or when the stage's weight on the eye's own score is not positive
    (``patients`` names the patients in its message: "validation patients")."""
    fused, own, paired = cross_fit_paired_eyes(single)
    # Thresholds on the stage's own output; the guard then only lifts eyes above grade 3's cut-point.
    thresholds = fit_thresholds(fused_table(single, fused, paired, None), eval_cfg, "grade")
    model = fit_paired_eyes(single)
    inverted = model.inverted()
    if inverted:  # a tiny or poor first stage: the fellow eye's score ruled, against the eye's own
        raise ValueError(f"the stage fitted on {single['patient_id'].nunique()} {patients} weighs the eye's own score "
                         f"{inverted}: a higher score would not give a higher grade")
    stage = {"model": model.to_dict(), "thresholds": thresholds}
    return stage, fused_table(single, fused, paired, thresholds, own)

"""The per-patient decision (``inference.patient_decision``) fitted and measured.

Fitted on validation (``train``) or out-of-fold predictions (``cv``), beside the thresholds:
the urgent threshold, for ``urgent_sensitivity`` of grade 3-4 eyes, and the uncertainty band,
the cut-off that sends ``refer_share`` of the patients to a human grader (and those of other
shares, so ``predict --refer-share`` can choose another).

Measured on the evaluated patients (:func:`patient_decision_section`, ``metrics.json`` ->
``test.patient_decision``): each outcome's count by the patient's true grade (worst eye), the
grade 3-4 patients called negative, and the *referral curve*: sensitivity and specificity for
referable DR of the automatic decisions when the 0%, 2.5%, ... 30% most uncertain patients go
to humans instead, with patient-bootstrap CIs (Leibig et al. 2017 reached the NHS targets by
referring the 20% most uncertain).
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd

from drgrader.evaluation.bootstrap import bootstrap_cis
from drgrader.evaluation.metrics import MetricFn
from drgrader.evaluation.results import jsonable
from drgrader.evaluation.thresholds import search_threshold
from drgrader.grading import GRADES
from drgrader.inference.patient_decision import OUTCOMES, DecisionPoints, decide_patients, decision_points, eye_uncertainty

BAND_SHARES = [round(0.01 * k, 2) for k in range(1, 51)]  # the stored band: 1% .. 50%
CURVE_SHARES = [round(0.025 * k, 3) for k in range(13)]  # the referral curve: 0% .. 30%
AUTOMATIC = ("negative", "refer", "urgent")  # the outcomes that decide without a human
SEVERE_GRADE = 3


def _band_cutoffs(candidate_uncertainty: np.ndarray, n_patients: int, shares: list[float]) -> list[float]:
    """For each share q, the cut-off that marks round(q * n_patients) of the candidates (the
    most uncertain): halfway between the last one in and the first one out."""
    u = np.sort(np.asarray(candidate_uncertainty, dtype=float))[::-1]
    cutoffs = []
    for share in shares:
        k = int(round(share * n_patients))
        if k == 0 or not u.size:
            cutoffs.append(1.0)
        elif k >= u.size:
            cutoffs.append(float(u[-1]))
        else:
            cutoffs.append(float((u[k - 1] + u[k]) / 2))
    return cutoffs


def _urgent_threshold(table: pd.DataFrame, points: DecisionPoints, sensitivity: float, fitted_on: str) -> tuple[float | None, str]:
    """The urgent threshold for ``sensitivity`` of gradable grade 3-4 eyes, or the default
    (grade-3 cut-point, else 2.5) when the table cannot fit one; and how it was set, in words."""
    if points.urgent_score is None:
        return None, "no grade score (a screening-only model): no urgent outcome"
    default = f"the grade-3 cut-point: the {fitted_on} had {{}}, too few to fit one"
    usable = ~np.isnan(eye_uncertainty(table, points))
    score = table[points.urgent_score].to_numpy(dtype=float)
    keep = usable & ~np.isnan(score)
    severe = table["grade"].to_numpy()[keep] >= SEVERE_GRADE
    if severe.all() or not severe.any():
        return points.urgent_threshold, default.format(f"{int(severe.sum())} gradable grade 3-4 eyes of {int(keep.sum())}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a target out of reach takes the lowest score: said below
        threshold = search_threshold(severe, score[keep], "sensitivity", lo=None, hi=None, target_sensitivity=sensitivity)
    # Never below the grade-3 cut-point: "urgent" always comes with a predicted grade of 3 or
    # more. A weak grader reaches the target only far lower (on the 2026-11-30 eyepacs-256
    # out-of-fold predictions: 0.48 on the grade scale), which called every referral urgent.
    floor = points.urgent_threshold
    held = floor is not None and threshold < floor
    threshold = max(threshold, floor) if floor is not None else threshold
    reached = float(np.mean(score[keep][severe] >= threshold))
    rule = f"{reached:.0%} sensitivity to grade 3-4 eyes on the {fitted_on} (target {sensitivity:.0%})"
    if held:
        rule += f": held at the grade-3 cut-point {floor:.2f}, below which urgent would contradict the predicted grade"
    return threshold, rule


def fit_patient_decision(
    table: pd.DataFrame, thresholds: dict | None, *, refer_share: float, urgent_sensitivity: float, fitted_on: str
) -> dict:
    """A bundle's ``patient_decision`` from labelled predictions (one row per photo, with
    ``grade``, ``patient_id`` and the scores; a paired-eye table carries the fused grade in
    its score columns) decided by ``thresholds``."""
    points = decision_points(thresholds, None, table=table)
    urgent, rule = _urgent_threshold(table, points, urgent_sensitivity, fitted_on)
    points = decision_points(thresholds, {"urgent_threshold": urgent}, table=table)
    patients = decide_patients(table, points)
    candidates = patients["decision"].isin(["negative", "refer"]).to_numpy()
    cutoffs = _band_cutoffs(patients["uncertainty"].to_numpy()[candidates], len(patients), BAND_SHARES)
    band = [[share, cut] for share, cut in zip(BAND_SHARES, cutoffs)]
    return {
        "urgent_threshold": urgent,
        "urgent_rule": rule,
        "refer_share": refer_share,
        "uncertainty_cutoff": None if refer_share == 0 else _band_cutoffs(
            patients["uncertainty"].to_numpy()[candidates], len(patients), [refer_share])[0],
        "band": band,
        "fitted_on": fitted_on,
    }


def patient_outcomes(table: pd.DataFrame, points: DecisionPoints) -> pd.DataFrame:
    """Per patient: the band-free automatic outcome, the outcome with the band, uncertainty,
    true worst-eye grade."""
    plain = decide_patients(table, replace(points, uncertainty_cutoff=None))
    banded = decide_patients(table, points)
    truth = table.assign(patient_id=table["patient_id"].astype(str)).groupby("patient_id")["grade"].max()
    return pd.DataFrame({
        "patient_id": plain["patient_id"].to_numpy(),
        "plain": plain["decision"].to_numpy(),
        "decision": banded["decision"].to_numpy(),
        "uncertainty": plain["uncertainty"].to_numpy(dtype=float),
        "grade": truth.reindex(plain["patient_id"]).to_numpy(dtype=int),
    })


def _automatic_figures(d: pd.DataFrame, share: float | None) -> tuple[float, float]:
    """(sensitivity, specificity) for referable DR of the automatic decisions of a patient table
    when the ``share`` most uncertain go to humans (None: the band's own ``decision``)."""
    if share is None:
        decision = d["decision"].to_numpy()
    else:
        decision = d["plain"].to_numpy().copy()
        candidate = np.isin(decision, ["negative", "refer"])
        k = min(int(round(share * len(d))), int(candidate.sum()))
        if k:
            u = np.where(candidate, d["uncertainty"].to_numpy(dtype=float), -np.inf)
            decision[np.argsort(-u, kind="stable")[:k]] = "uncertain"
    automatic = np.isin(decision, AUTOMATIC)
    positive = np.isin(decision, ["refer", "urgent"])
    diseased = d["grade"].to_numpy() >= 2
    n_pos, n_neg = int((automatic & diseased).sum()), int((automatic & ~diseased).sum())
    sens = (automatic & diseased & positive).sum() / n_pos if n_pos else np.nan
    spec = (automatic & ~diseased & ~positive).sum() / n_neg if n_neg else np.nan
    return float(sens), float(spec)


def _figure_fn(share: float | None, index: int) -> MetricFn:
    """Sensitivity (0) or specificity (1) at ``share`` as a bootstrap metric."""
    return lambda d: _automatic_figures(d, share)[index]


def referral_point(d: pd.DataFrame, share: float | None) -> dict:
    """One point of the referral curve: share sent to humans, counts and the two figures."""
    sens, spec = _automatic_figures(d, share)
    if share is None:
        sent = int((d["decision"] == "uncertain").sum())
    else:
        candidates = int(d["plain"].isin(["negative", "refer"]).sum())
        sent = min(int(round(share * len(d))), candidates)
    return {"share": share, "sent": sent, "sent_share": sent / len(d) if len(d) else np.nan,
            "sensitivity": sens, "specificity": spec}


def outcome_table(d: pd.DataFrame) -> dict:
    """Counts of each outcome by true (worst-eye) grade: ``{grade: {outcome: n}}``."""
    counts = pd.crosstab(d["grade"], d["decision"]).reindex(index=GRADES, columns=OUTCOMES, fill_value=0)
    return {str(g): {o: int(counts.loc[g, o]) for o in OUTCOMES} for g in GRADES}


def patient_decision_section(
    table: pd.DataFrame, points: DecisionPoints, *, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> dict:
    """The per-patient decisions of a labelled predictions table, measured (see the module)."""
    d = patient_outcomes(table, points)
    by_grade = outcome_table(d)
    severe = d["grade"] >= SEVERE_GRADE
    fns: dict[str, MetricFn] = {f"curve.{share}.{key}": _figure_fn(share, j)
                                for share in CURVE_SHARES for j, key in enumerate(("sensitivity", "specificity"))}
    if points.uncertainty_cutoff is not None:
        fns.update({f"band.{key}": _figure_fn(None, j) for j, key in enumerate(("sensitivity", "specificity"))})
    with warnings.catch_warnings(record=True) as unreliable:  # one warning, not one per point of the curve
        warnings.simplefilter("always")
        cis = bootstrap_cis(fns, d, n=n_boot, seed=seed, alpha=alpha) if len(d) else {}
    if unreliable:
        warnings.warn(f"per-patient decisions: {len(unreliable)} of {len(fns)} CIs rest on fewer than half of the "
                      "bootstrap resamples (few patients of one kind): they are unreliable", stacklevel=2)

    def with_ci(point: dict, prefix: str) -> dict:
        for key in ("sensitivity", "specificity"):
            _, lo, hi = cis.get(f"{prefix}.{key}", (None, np.nan, np.nan))
            point[f"{key}_ci"] = [lo, hi] if n_boot > 0 else None
        return point

    section = {
        "rules": {
            "referable_score": points.referable_score, "referable_threshold": points.referable_threshold,
            "urgent_score": points.urgent_score, "urgent_threshold": points.urgent_threshold,
            "refer_share": points.refer_share, "uncertainty_cutoff": points.uncertainty_cutoff,
        },
        "n_patients": int(len(d)),
        "outcomes": {o: int((d["decision"] == o).sum()) for o in OUTCOMES},
        "by_grade": by_grade,
        "severe_patients": int(severe.sum()),
        "severe_called_negative": int((severe & (d["decision"] == "negative")).sum()),
        "severe_called_urgent": int((severe & (d["decision"] == "urgent")).sum()),
        "referral_curve": [with_ci(referral_point(d, share), f"curve.{share}") for share in CURVE_SHARES],
        "at_cutoff": with_ci(referral_point(d, None), "band") if points.uncertainty_cutoff is not None else None,
    }
    section["warnings"] = (
        [f"{section['severe_called_negative']} of {section['severe_patients']} patients with severe or proliferative DR "
         "(grade 3-4, worse eye) were called negative by the per-patient decision"]
        if section["severe_called_negative"] else []
    )
    return jsonable(section)


def with_patient_decisions(
    result: dict, table: pd.DataFrame, thresholds: dict | None, spec: dict | None, *, n_boot: int, seed: int = 0
) -> dict:
    """An evaluation result (of :func:`~drgrader.evaluation.results.evaluate_table` on ``table``)
    with its ``patient_decision`` section by ``thresholds`` and a bundle's ``spec``, and that
    section's warnings added to the result's."""
    points = decision_points(thresholds, spec, table=table)
    section = patient_decision_section(table, points, n_boot=n_boot, seed=seed)
    return {**result, "patient_decision": section, "warnings": [*result.get("warnings", []), *section["warnings"]]}

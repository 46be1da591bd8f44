"""Compare variants of one cross-validation on the same out-of-fold eyes: the figures of each
(quadratic kappa, referable AUC with patient-bootstrap CIs, recall per grade) and, what decides
between two of them, the **paired** patient-bootstrap CI of their difference: both variants are
measured on the same resampled patients, so the patients' own difficulty cancels out.

Every variant gets its thresholds, cut-points and paired-eye stage fitted on its own out-of-fold
scores, exactly as ``drgrader cv`` fits the shipped ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from drgrader.config import EvalConfig
from drgrader.evaluation.bootstrap import bootstrap_cis
from drgrader.evaluation.metrics import quadratic_weighted_kappa, roc_auc
from drgrader.grading import GRADES, SCORE_COLUMNS, decide

STAGES = ("single eye", "paired eyes")
ROW_KEYS = ["image_id", "patient_id", "eye", "grade"]


def kappa(d: pd.DataFrame) -> float:
    return quadratic_weighted_kappa(d["grade"], d["pred_grade"])


def referable_auc(d: pd.DataFrame) -> float:
    return roc_auc(d["grade"].to_numpy() >= 2, d["score_referable"].to_numpy(dtype=float))


def variant_scores(lab: pd.DataFrame, weights: str, views: list[str], image_ids: pd.Series) -> np.ndarray:
    """Scores (N x 8) of ``image_ids`` with ``weights``, averaged over ``views`` (as TTA does)."""
    chosen = lab[(lab["weights"] == weights) & lab["view"].isin(views)]
    counts = chosen.groupby("image_id")["view"].nunique()
    incomplete = sorted(set(image_ids) - set(counts[counts == len(set(views))].index))
    if incomplete:
        raise ValueError(f"lab scores lack {weights} weights with views {views} for {len(incomplete)} images "
                         f"(first: {incomplete[0]})")
    return chosen.groupby("image_id")[SCORE_COLUMNS].mean().loc[image_ids.to_numpy()].to_numpy(dtype=float)


def decided_tables(rows: pd.DataFrame, scores: np.ndarray, eval_cfg: EvalConfig) -> dict[str, pd.DataFrame]:
    """The eyes decided single-eye and with a cross-fitted paired-eye stage, each with thresholds
    fitted on these scores."""
    from drgrader.evaluation.paired_stage import fit_paired_stage
    from drgrader.evaluation.thresholds import fit_thresholds

    rows = rows.reset_index(drop=True)
    thresholds = fit_thresholds(pd.concat([rows, decide(scores, None)], axis=1), eval_cfg, "grade")
    single = pd.concat([rows, decide(scores, thresholds)], axis=1)
    try:
        return {"single eye": single, "paired eyes": fit_paired_stage(single, eval_cfg)[1]}
    except ValueError as exc:  # refused for this variant (too few pairs, the eye's own score not weighed up)
        return {"single eye": single, "refused": str(exc)}


def figures(table: pd.DataFrame, *, n_boot: int, seed: int) -> dict:
    cis = bootstrap_cis({"kappa": kappa, "referable_auc": referable_auc}, table, n=n_boot, seed=seed)
    grade, pred = table["grade"].to_numpy(), table["pred_grade"].to_numpy()
    recall = [float((pred[grade == g] == g).mean()) if (grade == g).any() else None for g in GRADES]
    return {**{k: list(v) for k, v in cis.items()}, "recall_by_grade": recall}


def paired_difference(a: pd.DataFrame, b: pd.DataFrame, *, n_boot: int, seed: int) -> dict:
    """``a - b`` of kappa and referable AUC with a CI from the same patient resamples."""
    if not (a["image_id"].to_numpy() == b["image_id"].to_numpy()).all():
        raise ValueError("a paired difference needs the same eyes in the same order")
    both = a[["patient_id", "grade", "pred_grade", "score_referable"]].assign(
        pred_b=b["pred_grade"].to_numpy(), score_b=b["score_referable"].to_numpy())

    def diff(fn):
        return lambda d: fn(d) - fn(d.assign(pred_grade=d["pred_b"], score_referable=d["score_b"]))

    cis = bootstrap_cis({"kappa": diff(kappa), "referable_auc": diff(referable_auc)}, both, n=n_boot, seed=seed)
    return {k: list(v) for k, v in cis.items()}


def compare_variants(oof: pd.DataFrame, lab: pd.DataFrame, variants: dict[str, tuple[str, list[str]]],
                     eval_cfg: EvalConfig, *, n_boot: int, seed: int) -> dict:
    """Figures of every variant ({label: (weights, views)}) on the out-of-fold eyes, and each one's
    paired difference against the first (the shipped variant), stage by stage; plus what the
    paired-eye stage adds to the shipped variant."""
    rows = oof[[c for c in ROW_KEYS if c in oof]].reset_index(drop=True)
    reference = next(iter(variants))
    tables = {label: decided_tables(rows, variant_scores(lab, w, v, rows["image_id"]), eval_cfg)
              for label, (w, v) in variants.items()}
    out: dict = {"reference": reference, "eyes": len(rows), "patients": int(rows["patient_id"].nunique()),
                 "bootstrap": n_boot, "variants": {}}
    for label, (weights, views) in variants.items():
        entry: dict = {"weights": weights, "views": list(views)}
        for stage in STAGES:
            if stage not in tables[label]:
                entry[stage] = {"refused": tables[label]["refused"]}
                continue
            entry[stage] = figures(tables[label][stage], n_boot=n_boot, seed=seed)
            if label != reference and stage in tables[reference]:
                entry[stage]["vs_reference"] = paired_difference(tables[label][stage], tables[reference][stage],
                                                                 n_boot=n_boot, seed=seed)
        out["variants"][label] = entry
    shipped = tables[reference]
    out["paired_eyes_vs_single"] = (paired_difference(shipped["paired eyes"], shipped["single eye"], n_boot=n_boot, seed=seed)
                                    if "paired eyes" in shipped else None)
    return out


def _ci(v) -> str:
    return "—" if v is None else f"{v[0]:.3f} ({v[1]:.3f} to {v[2]:.3f})"


def _diff(v) -> str:
    return "(reference)" if v is None else f"{v[0]:+.3f} ({v[1]:+.3f} to {v[2]:+.3f})"


def lab_markdown(result: dict) -> str:
    """The lab table for people: one row per variant and stage."""
    lines = [
        f"Out-of-fold predictions of {result['eyes']} eyes of {result['patients']} patients; 95% CIs from "
        f"{result['bootstrap']} patient-bootstrap resamples; differences are paired (same resampled patients) "
        f"against **{result['reference']}**.",
        "",
        "| variant | eyes decided | kappa | referable AUC | kappa vs shipped | referable AUC vs shipped | recall of grades 0-4 |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, entry in result["variants"].items():
        for stage in STAGES:
            f = entry[stage]
            if "refused" in f:
                lines.append(f"| {label} | {stage} | not fitted: {f['refused']} | | | | |")
                continue
            vs = f.get("vs_reference") or {}
            recall = " ".join("—" if r is None else f"{r:.2f}" for r in f["recall_by_grade"])
            lines.append(f"| {label} | {stage} | {_ci(f['kappa'])} | {_ci(f['referable_auc'])} | "
                         f"{_diff(vs.get('kappa'))} | {_diff(vs.get('referable_auc'))} | {recall} |")
    p = result["paired_eyes_vs_single"]
    if p is not None:
        lines += ["", f"Paired-eye stage against single eye (shipped weights and views): kappa {_diff(p['kappa'])}, "
                      f"referable AUC {_diff(p['referable_auc'])}."]
    return "\n".join(lines) + "\n"

"""Does the severe-eye guard cost anything? With a paired-eye stage, an eye whose own grade
alone reaches the grade-3 cut-point keeps at least that grade, so that a clean fellow eye never
talks a severe eye out of it (``inference.paired_eyes.guarded``). Measured here against the
unguarded stage on a recorded recipe's out-of-fold grades of every eye
(``results/lab_oof/<label>.csv``), both through the product's own path: the cross-fitted
paired-eye stage and its thresholds (``evaluation.paired_stage``), the urgent threshold fitted for
``eval.urgent_sensitivity`` of grade 3-4 eyes and the per-patient outcomes
(``evaluation.patient_decisions``).

Figures for each: kappa and referable AUC with the paired patient-bootstrap difference, recall by
grade, how well the grade ranks grade 3-4 eyes and patients (AUC), the patients called urgent and
how many of them are grade 3-4, the grade 3-4 patients called negative; and the unilateral
severe eyes in the data (grade 3-4 beside a fellow of grade 0-1), the case the guard exists for.

    python benchmarks/bench_urgent_guard.py multitask-b19

Writes results/urgent_guard_<label>.json and prints a table.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd

from bench_lab import EYE_SCORES, with_eye_scores
from common import RESULTS, machine_info, now

SEVERE = 3


def urgent_figures(table: pd.DataFrame, thresholds: dict, eval_cfg, *, n_boot: int) -> dict:
    """Grade figures and the per-patient decision fitted and measured on ``table``."""
    from drgrader.evaluation.lab import figures
    from drgrader.evaluation.metrics import roc_auc
    from drgrader.evaluation.patient_decisions import fit_patient_decision, patient_decision_section
    from drgrader.inference.patient_decision import decide_patients, decision_points

    spec = fit_patient_decision(table, thresholds, refer_share=eval_cfg.refer_share,
                                urgent_sensitivity=eval_cfg.urgent_sensitivity, fitted_on="out-of-fold predictions")
    points = decision_points(thresholds, spec, table=table)
    section = patient_decision_section(table, points, n_boot=0, seed=0)
    score = table["expected_grade"].to_numpy(dtype=float)
    severe = table["grade"].to_numpy() >= SEVERE
    worst = pd.DataFrame({"p": table["patient_id"], "s": score, "severe": severe}).groupby("p").max()
    decided = decide_patients(table, points)
    truth = table.groupby("patient_id")["grade"].max().reindex(decided["patient_id"]).to_numpy() >= SEVERE
    urgent = decided["decision"].to_numpy() == "urgent"
    return {**figures(table, n_boot=n_boot, seed=0), "urgent_threshold": points.urgent_threshold,
            "severe_eye_auc": roc_auc(severe, score), "severe_patient_auc": roc_auc(worst["severe"].to_numpy(), worst["s"].to_numpy()),
            "patients": int(len(decided)), "severe_patients": int(truth.sum()),
            "called_urgent": int(urgent.sum()), "called_urgent_severe": int((urgent & truth).sum()),
            "severe_called_negative": section["severe_called_negative"], "outcomes": section["outcomes"]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("label", nargs="?", default="multitask-b19", help="a recorded recipe (lab_oof/<label>.csv)")
    parser.add_argument("--bootstrap", type=int, default=200, help="resamples of the patient figures")
    args = parser.parse_args(argv)

    from drgrader.config import load_config
    from drgrader.evaluation.lab import decided_tables, paired_difference
    from drgrader.evaluation.thresholds import fit_thresholds
    from drgrader.grading import SCORE_COLUMNS
    from drgrader.inference.paired_eyes import cross_fit_paired_eyes, fellow_index, fused_table

    oof = with_eye_scores(pd.read_csv(RESULTS / "lab_oof" / f"{args.label}.csv", dtype={"image_id": str, "patient_id": str}))
    scores = np.full((len(oof), len(SCORE_COLUMNS)), np.nan)
    for name in EYE_SCORES:
        scores[:, SCORE_COLUMNS.index(name)] = oof[name].to_numpy(dtype=float)
    eval_cfg = load_config("cpu_grade").eval
    single = decided_tables(oof[["image_id", "patient_id", "eye", "grade"]], scores, eval_cfg)["single eye"]
    # As evaluation.paired_stage.fit_paired_stage, once without the guard and once with it.
    fused, own, paired = cross_fit_paired_eyes(single)
    thresholds = fit_thresholds(fused_table(single, fused, paired, None), eval_cfg, "grade")
    plain, guarded = fused_table(single, fused, paired, thresholds), fused_table(single, fused, paired, thresholds, own)
    grade = single["grade"].to_numpy()
    fellow = fellow_index(single)
    fellow_grade = np.where(fellow >= 0, grade[np.maximum(fellow, 0)], -1)
    unilateral = (grade >= SEVERE) & (fellow >= 0) & (fellow_grade <= 1)
    result = {
        "date": now(), "machine": machine_info(), "recipe": args.label, "eyes": int(len(single)),
        "unilateral_severe_eyes": single.loc[unilateral, ["image_id", "grade", "expected_grade"]].assign(
            fellow_grade=fellow_grade[unilateral], unguarded=plain["expected_grade"][unilateral],
            guarded=guarded["expected_grade"][unilateral]).to_dict("records"),
        "eyes_lifted": int((guarded["expected_grade"] != plain["expected_grade"]).sum()),
        "unguarded": urgent_figures(plain, thresholds, eval_cfg, n_boot=args.bootstrap),
        "guarded": urgent_figures(guarded, thresholds, eval_cfg, n_boot=args.bootstrap),
        "guarded_minus_unguarded": paired_difference(guarded, plain, n_boot=args.bootstrap, seed=0),
    }
    out = RESULTS / f"urgent_guard_{args.label}.json"
    out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    d = result["guarded_minus_unguarded"]
    print(f"{args.label}: {result['eyes']} eyes out of fold; {int(unilateral.sum())} unilateral severe eyes; "
          f"{result['eyes_lifted']} eyes lifted by the guard; guarded - unguarded: kappa {d['kappa'][0]:+.4f} "
          f"({d['kappa'][1]:+.4f} to {d['kappa'][2]:+.4f}), referable AUC {d['referable_auc'][0]:+.4f} "
          f"({d['referable_auc'][1]:+.4f} to {d['referable_auc'][2]:+.4f})")
    print("| stage | kappa | referable AUC | recall by grade | grade 3-4 eyes AUC | patients AUC | urgent threshold | "
          "called urgent (grade 3-4) | grade 3-4 patients called negative |")
    for name in ("unguarded", "guarded"):
        r = result[name]
        print(f"| {name} | {r['kappa'][0]:.3f} | {r['referable_auc'][0]:.3f} | {' '.join(f'{x:.2f}' for x in r['recall_by_grade'])} | "
              f"{r['severe_eye_auc']:.4f} | {r['severe_patient_auc']:.4f} | {r['urgent_threshold']:.2f} | "
              f"{r['called_urgent']} ({r['called_urgent_severe']} of {r['severe_patients']}) | {r['severe_called_negative']} |")
    print(f"written {out}")
    return result


if __name__ == "__main__":
    main()

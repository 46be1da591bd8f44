"""Can a recipe's scores tell each grade from the one below it? Why grade 1 is never called.

No recipe of the lab calls grade 1 (mild NPDR): the any-DR threshold lands next to the referable
one. Before blaming the thresholds, this asks the scores: for each grade k, the AUC of the eyes
of grade k against those of grade k - 1 (how often a grade-k eye scores above a grade-(k-1) eye),
with a patient-bootstrap CI, on the single-eye expected grade and on the paired-eye stage's fused
grade (cross-fitted, as `drgrader cv` fits it); the quartiles of each grade's score; and the
recall by grade at the fitted thresholds. An AUC near 0.5 means no cut-point can find that grade.

    python benchmarks/bench_grade_separation.py multitask-hour multitask-b19

Reads results/lab_oof/<label>.csv (every fold recorded); writes results/grade_separation.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from bench_lab import with_eye_scores
from common import RESULTS, command_line, merge_results, now

GRADES = range(5)


def separation(table: pd.DataFrame, *, n_boot: int) -> dict:
    """Per grade: quartiles of ``expected_grade``, the AUC against the grade below (CI), recall."""
    from drgrader.evaluation.bootstrap import bootstrap_cis
    from drgrader.evaluation.metrics import roc_auc

    def auc_above(k: int):
        def fn(df: pd.DataFrame) -> float:
            pair = df[df["grade"].isin((k - 1, k))]
            return roc_auc(pair["grade"].to_numpy() == k, pair["expected_grade"].to_numpy(dtype=float)) if len(pair) else np.nan
        return fn

    cis = bootstrap_cis({f"grade {k} vs {k - 1}": auc_above(k) for k in GRADES if k}, table, n=n_boot, seed=0)
    out = {}
    for k in GRADES:
        eyes = table[table["grade"] == k]
        out[str(k)] = {
            "eyes": int(len(eyes)),
            "score_quartiles": [round(float(q), 3) for q in np.quantile(eyes["expected_grade"], [0.25, 0.5, 0.75])],
            "recall": float((eyes["pred_grade"] == k).mean()),
            "auc_vs_grade_below": None if k == 0 else [round(v, 4) for v in cis[f"grade {k} vs {k - 1}"]],
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labels", nargs="+", help="recorded recipes (results/lab_oof/<label>.csv)")
    parser.add_argument("--results", type=Path, default=RESULTS / "levers.json", help="lab_oof/ is beside it")
    args = parser.parse_args(argv)

    from drgrader.config import load_config
    from drgrader.evaluation.lab import decided_tables
    from drgrader.grading import SCORE_COLUMNS

    eval_cfg = load_config("cpu_grade").eval
    results = {}
    for label in args.labels:
        oof = with_eye_scores(pd.read_csv(args.results.parent / "lab_oof" / f"{label}.csv",
                                          dtype={"image_id": str, "patient_id": str}))
        scores = np.full((len(oof), len(SCORE_COLUMNS)), np.nan)
        for column in ("expected_grade", "score_any", "score_referable"):
            scores[:, SCORE_COLUMNS.index(column)] = oof[column].to_numpy(dtype=float)
        tables = decided_tables(oof[["image_id", "patient_id", "eye", "grade"]], scores, eval_cfg)
        results[label] = {"date": now(), "command": command_line(), "folds": sorted(int(f) for f in oof["fold"].unique()),
                          "eyes": int(len(oof)), **{stage: separation(t, n_boot=eval_cfg.bootstrap) for stage, t in tables.items()}}
        print(f"{label}: folds {results[label]['folds']}, {len(oof)} eyes")
        for stage in tables:
            print(f"  {stage}")
            for k, row in results[label][stage].items():
                auc = row["auc_vs_grade_below"]
                auc_text = "" if auc is None else f"; AUC against grade {int(k) - 1}: {auc[0]:.3f} ({auc[1]:.3f}-{auc[2]:.3f})"
                q = row["score_quartiles"]
                print(f"    grade {k} ({row['eyes']} eyes): score {q[1]:.2f} ({q[0]:.2f}-{q[2]:.2f}), recall {row['recall']:.2f}{auc_text}")
    merge_results(RESULTS / "grade_separation.json", results)
    return results


if __name__ == "__main__":
    main()

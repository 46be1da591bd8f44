"""Does a model uncertainty find the per-patient decision's misses better than the distance from
the threshold? Measured on the out-of-fold predictions of a ``drgrader cv`` run made with
``eval.lab=true`` (its folds' ``lab_scores.csv``).

The per-patient decision sends the ``--share`` most uncertain patients to a human grader and
decides the rest automatically. Today "uncertain" is the closeness of the deciding eye's score
to the referable threshold (``inference.patient_decision.eye_uncertainty``). Compared here, each
per patient as the largest of its eyes':

- ``distance``: today's closeness to the threshold (the reference);
- ``tta spread``: the standard deviation of the eye's expected grade over the 8 dihedral views
  of the shipped weights (test-time-augmentation uncertainty, Ayhan & Berens 2018);
- ``snapshot spread``: its standard deviation over the weight sets one run kept (best, last,
  EMA, average of the last epochs): a free snapshot ensemble;
- ``distance in spreads``: the distance to the threshold divided by the TTA spread (how many
  spreads the score sits from the other side), smaller = more uncertain.

Figures: referable sensitivity and specificity of the automatic decisions with the share sent to
humans, patient-bootstrap CIs, the paired difference against ``distance``, and the share of the
band-free decision's errors that each band catches.

    python benchmarks/bench_uncertainty.py /work/exp/lab-lite2-256-b19 --share 0.1

Writes ``--out`` (default benchmarks/results/uncertainty_<cv folder name>.json) and prints a table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from common import RESULTS, ci_text, command_line, diff_text, now

EPS = 1e-6


def eye_spreads(cv_dir: Path, folds: int, shipped_views: list[str]) -> pd.DataFrame:
    """Per image: TTA spread (8 views of the shipped weights) and snapshot spread (weight sets)."""
    lab = pd.concat([pd.read_csv(cv_dir / f"fold-{i}" / "lab_scores.csv", dtype={"image_id": str}) for i in range(folds)])
    best = lab[lab["weights"] == "best"]
    tta = best.groupby("image_id")["expected_grade"].std(ddof=0)
    shipped = lab[lab["view"].isin(shipped_views)]
    per_set = shipped.groupby(["image_id", "weights"])["expected_grade"].mean().unstack()
    return pd.DataFrame({"tta_spread": tta, "snapshot_spread": per_set.std(axis=1, ddof=0)})


def patient_uncertainties(decided: pd.DataFrame, spreads: pd.DataFrame, points) -> pd.DataFrame:
    """Per patient: the outcomes and every uncertainty measure (larger = more uncertain)."""
    from drgrader.evaluation.patient_decisions import patient_outcomes

    eyes = decided.assign(patient_id=decided["patient_id"].astype(str)).join(spreads, on="image_id")
    distance_in_spreads = np.abs(eyes[points.referable_score] - points.referable_threshold) / (eyes["tta_spread"] + EPS)
    per_patient = eyes.assign(z=-distance_in_spreads).groupby("patient_id")[["tta_spread", "snapshot_spread", "z"]].max()
    d = patient_outcomes(decided, points)
    d["patient_id"] = d["patient_id"].astype(str)
    measures = {"distance": d["uncertainty"].to_numpy(dtype=float)}
    joined = per_patient.reindex(d["patient_id"])
    measures["tta spread"] = joined["tta_spread"].to_numpy()
    measures["snapshot spread"] = joined["snapshot_spread"].to_numpy()
    measures["distance in spreads"] = joined["z"].to_numpy()
    return d, measures


def caught_errors(d: pd.DataFrame, share: float) -> float:
    """Share of the band-free automatic decision's referable errors that the band sends to humans
    (the same choice of patients as ``patient_decisions._automatic_figures``)."""
    plain = d["plain"].to_numpy()
    wrong = np.isin(plain, ["refer", "urgent"]) != (d["grade"].to_numpy() >= 2)
    candidate = np.isin(plain, ["negative", "refer"])
    k = min(int(round(share * len(d))), int(candidate.sum()))
    u = np.where(candidate, d["uncertainty"].to_numpy(dtype=float), -np.inf)
    sent = np.zeros(len(d), bool)
    sent[np.argsort(-u, kind="stable")[:k]] = True
    return float((sent & wrong).sum() / max(1, wrong.sum()))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cv_dir", type=Path, help="a finished drgrader cv folder made with eval.lab=true")
    parser.add_argument("--share", type=float, default=0.1, help="share of patients sent to a human grader")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    from drgrader.evaluation.bootstrap import bootstrap_cis
    from drgrader.evaluation.patient_decisions import _automatic_figures
    from drgrader.inference.patient_decision import decision_points
    from drgrader.io import atomic_write_json

    metrics = json.loads((args.cv_dir / "metrics.json").read_text())
    folds = int(metrics["folds"])
    decided = pd.read_csv(args.cv_dir / "predictions_test.csv", dtype={"image_id": str, "patient_id": str})
    points = decision_points(metrics["thresholds"], metrics["patient_decision"], table=decided)
    spreads = eye_spreads(args.cv_dir, folds, list(metrics.get("tta_views") or ["orig"]))
    d, measures = patient_uncertainties(decided, spreads, points)

    tables = {name: d.assign(uncertainty=u) for name, u in measures.items()}
    reference = tables["distance"]
    rows = {}
    for name, table in tables.items():
        both = table.assign(ref_uncertainty=reference["uncertainty"].to_numpy())

        def figure(index: int, use_reference: bool = False):
            return lambda t: _automatic_figures(t.assign(uncertainty=t["ref_uncertainty"]) if use_reference else t,
                                                args.share)[index]

        fns = {"sensitivity": figure(0), "specificity": figure(1),
               "sensitivity_vs_distance": lambda t: figure(0)(t) - figure(0, True)(t),
               "specificity_vs_distance": lambda t: figure(1)(t) - figure(1, True)(t)}
        cis = bootstrap_cis(fns, both, n=args.bootstrap, seed=0)
        rows[name] = {**{k: list(v) for k, v in cis.items()}, "errors_caught": caught_errors(table, args.share)}
    none = _automatic_figures(reference, 0.0)
    report = {"date": now(), "command": command_line(), "cv_dir": str(args.cv_dir), "share": args.share,
              "patients": int(len(d)), "without_band": {"sensitivity": none[0], "specificity": none[1]},
              "measures": rows}
    out = args.out or RESULTS / f"uncertainty_{args.cv_dir.name}.json"
    atomic_write_json(out, report)

    print(f"{len(d)} patients, {args.share:.0%} sent to a human; without a band: sensitivity {none[0]:.3f}, "
          f"specificity {none[1]:.3f}")
    print("| uncertainty | sensitivity | specificity | sensitivity vs distance | specificity vs distance | errors caught |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {ci_text(r['sensitivity'])} | {ci_text(r['specificity'])} | {diff_text(r['sensitivity_vs_distance'])} | "
              f"{diff_text(r['specificity_vs_distance'])} | {r['errors_caught']:.0%} |")
    print(f"(written to {out})")
    return report


if __name__ == "__main__":
    main()

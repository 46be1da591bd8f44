"""Record one lever, measured on one or more folds of a cross-fitting, against an earlier recipe
on the same eyes: the lab's screening step, one fold at a time.

A 5-fold lab run of a 19-minute recipe is two hours of the two cores; one fold is 20 minutes.
So a lever is first screened on one fold (about 744 eyes of 372 patients, out of fold for the
model), paired against the recorded recipe's out-of-fold grades of the same eyes
(``results/lab_oof/<earlier>.csv``): a lever that moves the paired difference clearly is worth
the other folds. Each recording adds the fold's out-of-fold grades to ``lab_oof/<label>.csv``, so
the folds of one recipe can be run in different sessions (the lab folder need not survive) and,
once all are there, the row covers every eye. The split is the cv's (patient-level, seeded), so
fold i holds the same eyes in every run of ``drgrader cv --folds 5``; this is checked.

``source`` is a cv fold folder (``<cv>/fold-i``: its ``predictions_val.csv`` and ``metrics.json``)
or a predictions CSV of a model that never saw fold i's patients (e.g. ``drgrader predict`` of
that fold's bundle), restricted to fold i's eyes.

    python benchmarks/bench_lever.py /work/exp/lever-lite1/fold-0 --fold 0 --label lite1-256-b19 \\
        --lever "Lite1 instead of Lite2, 19 min" --command "drgrader cv cpu_grade --folds 5 --fold 0 ..."

Figures: kappa and referable AUC, single eye and with the paired-eye stage, each model's
thresholds fitted on these eyes (both alike), with 95% patient-bootstrap CIs; the difference is
paired (same resampled patients).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from bench_lab import EYE_SCORES, decided_pair, git_commit, record_row, with_eye_scores
from common import RESULTS, ci_text, diff_text, machine_info, now

OOF_COLUMNS = ["image_id", "patient_id", "eye", "grade", "fold", *EYE_SCORES]


def fold_grades(source: Path, fold: int, reference: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Fold ``fold``'s out-of-fold scores (expected grade and both screens) from ``source``, on the
    reference's eyes of that fold, with the fold's training record (minutes, epochs) when the
    source is a fold folder."""
    training: dict = {}
    if source.is_dir():
        table = pd.read_csv(source / "predictions_val.csv", dtype={"image_id": str, "patient_id": str})
        metrics = json.loads((source / "metrics.json").read_text())
        fit = metrics.get("training") or metrics
        training = {k: fit.get(k) for k in ("wall_time_s", "epochs_run", "best_epoch", "precision") if k in fit}
    else:
        table = pd.read_csv(source, dtype={"image_id": str, "patient_id": str})
    eyes = reference.loc[reference["fold"] == fold, ["image_id", "patient_id", "eye", "grade"]]
    if source.is_dir() and set(table["image_id"]) != set(eyes["image_id"]):
        raise SystemExit(f"{source}: its validation eyes are not fold {fold} of the reference split "
                         f"({len(table)} against {len(eyes)} eyes): another --folds or seed?")
    scored = eyes.merge(with_eye_scores(table)[["image_id", *EYE_SCORES]], on="image_id", how="left")
    if scored["expected_grade"].isna().any():
        missing = scored.loc[scored["expected_grade"].isna(), "image_id"]
        raise SystemExit(f"{source}: no expected_grade for {len(missing)} of fold {fold}'s eyes (e.g. {missing.iloc[0]!r})")
    return scored.assign(fold=fold)[OOF_COLUMNS], training


def compare(mine: pd.DataFrame, theirs: pd.DataFrame, eval_cfg, n_boot: int) -> dict:
    """Figures of both on the same eyes, and the paired difference (mine - theirs), per stage."""
    from drgrader.evaluation.lab import STAGES, figures, paired_difference

    both, a, b = decided_pair(mine, theirs, eval_cfg)
    return {"eyes": int(len(both)), "patients": int(both["patient_id"].nunique()),
            **{stage: {"lever": figures(a[stage], n_boot=n_boot, seed=0), "earlier": figures(b[stage], n_boot=n_boot, seed=0),
                       "difference": paired_difference(a[stage], b[stage], n_boot=n_boot, seed=0)} for stage in STAGES}}


def render(results: dict) -> str:
    lines = ["# Levers screened fold by fold, paired against an earlier recipe on the same eyes", "",
             "Written by `benchmarks/bench_lever.py` from `levers.json`; do not edit by hand. Each row: one recipe's "
             "out-of-fold grades on the folds recorded so far, against the earlier recipe's grades of the same eyes; "
             "thresholds fitted on these eyes for both; 95% patient-bootstrap CIs, differences paired.", "",
             "| recipe | lever | folds (eyes) | minutes, epochs per fold | eyes decided | kappa | vs earlier | referable AUC | vs earlier | earlier |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label, run in results.items():
        c = run["comparison"]
        minutes = "; ".join(f"{f}: {t.get('minutes', '?')} min, {t.get('epochs_run', '?')} ep" for f, t in run["training"].items())
        for stage in ("single eye", "paired eyes"):
            s = c[stage]
            lines.append(f"| {label} | {run['lever']} | {','.join(map(str, run['folds']))} ({c['eyes']}) | {minutes} | {stage} | "
                         f"{ci_text(s['lever']['kappa'])} | {diff_text(s['difference']['kappa'])} | "
                         f"{ci_text(s['lever']['referable_auc'])} | {diff_text(s['difference']['referable_auc'])} | {run['against']} |")
    lines += ["", "Details (commands, machine, commit, the earlier recipe's figures on the same eyes, recall by grade) "
              "are in `levers.json`."]
    for label, run in results.items():
        lines += ["", f"- **{label}** against {run['against']}: `{run['command']}`; {run['machine']}; commit {run['commit']}"
                  + (f"; {run['note']}" if run.get("note") else "")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a cv fold folder (fold-i) or a predictions CSV")
    parser.add_argument("--fold", type=int, required=True)
    parser.add_argument("--label", required=True, help="the recipe's name; its folds accumulate under it")
    parser.add_argument("--lever", required=True, help="what differs from the earlier recipe, in a few words")
    parser.add_argument("--against", default="lite2-256-budget19", help="a recorded recipe (lab_oof/<label>.csv)")
    parser.add_argument("--command", default="", help="the command that made the fold")
    parser.add_argument("--commit", default=None, help="the commit the fold was made with (default: HEAD)")
    parser.add_argument("--note", default="", help="e.g. 'cores shared with other work'")
    parser.add_argument("--minutes", type=float, help="training minutes, for a CSV source (a fold folder records its own)")
    parser.add_argument("--epochs", type=int, help="epochs trained, for a CSV source")
    parser.add_argument("--bootstrap", type=int, help="patient resamples (default: cpu_grade's eval.bootstrap)")
    parser.add_argument("--results", type=Path, default=RESULTS / "levers.json")
    args = parser.parse_args(argv)

    from drgrader.config import load_config
    from drgrader.io import atomic_write_text

    oof_dir = args.results.parent / "lab_oof"
    reference = pd.read_csv(oof_dir / f"{args.against}.csv", dtype={"image_id": str, "patient_id": str})
    grades, training = fold_grades(args.source, args.fold, reference)
    if "wall_time_s" in training:
        training["minutes"] = round(training.pop("wall_time_s") / 60, 1)
    training.update({k: v for k, v in (("minutes", args.minutes), ("epochs_run", args.epochs)) if v is not None})
    mine_file = oof_dir / f"{args.label}.csv"
    mine = grades
    if mine_file.is_file():
        recorded = pd.read_csv(mine_file, dtype={"image_id": str, "patient_id": str})
        mine = pd.concat([with_eye_scores(recorded[recorded["fold"] != args.fold]), grades], ignore_index=True)
    mine = mine.sort_values(["fold", "image_id"], ignore_index=True)
    atomic_write_text(mine_file, mine.to_csv(index=False, float_format="%.5f"))

    eval_cfg = load_config("cpu_grade").eval
    earlier = json.loads(args.results.read_text()).get(args.label, {}) if args.results.is_file() else {}
    row = {"date": now(), "machine": machine_info()["summary"], "commit": args.commit or git_commit(),
           "lever": args.lever, "against": args.against, "command": args.command or earlier.get("command", ""),
           "note": "; ".join(dict.fromkeys(n for n in (earlier.get("note"), args.note) if n)),
           "folds": sorted(int(f) for f in mine["fold"].unique()),
           "training": {**earlier.get("training", {}), str(args.fold): training},
           "comparison": compare(mine, reference, eval_cfg, args.bootstrap or eval_cfg.bootstrap)}
    return record_row(args.results, args.label, row, render)


if __name__ == "__main__":
    main()

"""Record a finished lab run (``drgrader cv CONFIG --set eval.lab=true``) in the benchmarks: its
variant table, how it was made, and the paired difference against earlier recipes.

For every recorded run this keeps, in ``benchmarks/results/``:

- ``lab.json``: the run's ``lab.json`` (every variant: weights x TTA views, single eye and paired
  eyes, figures with patient-bootstrap CIs and the paired difference against its shipped variant),
  with the config overrides, the command, the commit, the machine, minutes and epochs per fold,
  and the paired differences against the runs named by ``--against``;
- ``lab_oof/<label>.csv`` (beside ``lab.json``): the shipped variant's out-of-fold expected grade per eye (no paths,
  no images), so that a later recipe can be compared with this one on the same eyes;
- ``lab.md``: all of it for people.

    python benchmarks/bench_lab.py /work/exp/lab-lite2-256-b19 --label lite2-256-b19 \\
        --command "drgrader cv cpu_grade --folds 5 --set train.budget_minutes=19 ..." --commit 5dd7956
    python benchmarks/bench_lab.py /work/exp/next-run --label next --against lite2-256-b19
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import pandas as pd

from common import REPO, RESULTS, machine_info, merge_results, now


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


EYE_SCORES = ["expected_grade", "score_any", "score_referable"]


def with_eye_scores(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with all three scores of each eye. Recipes recorded with their expected grade
    alone were regressions, whose screening scores are that grade: it fills in for them."""
    return table.assign(**{c: table[c].fillna(table["expected_grade"]) if c in table else table["expected_grade"]
                           for c in EYE_SCORES[1:]})


def shipped_oof(cv_dir: Path) -> pd.DataFrame:
    """The shipped variant's out-of-fold single-eye scores of every eye."""
    oof = with_eye_scores(pd.read_csv(cv_dir / "predictions_oof.csv", dtype={"image_id": str, "patient_id": str}))
    return oof[["image_id", "patient_id", "eye", "grade", "fold", *EYE_SCORES]]


def decided_pair(mine: pd.DataFrame, theirs: pd.DataFrame, eval_cfg) -> tuple[pd.DataFrame, dict, dict]:
    """The eyes both recipes graded (the three scores per eye each), and each recipe's decided
    tables (:func:`drgrader.evaluation.lab.decided_tables`: thresholds fitted on these eyes), each
    from its own scores as the pipeline would use them (an ordinal head's screens are its
    probabilities, not its expected grade)."""
    import numpy as np

    from drgrader.evaluation.lab import decided_tables
    from drgrader.grading import SCORE_COLUMNS

    both = with_eye_scores(mine).merge(with_eye_scores(theirs)[["image_id", *EYE_SCORES]], on="image_id",
                                       suffixes=("", "_earlier"))

    def scores(suffix: str) -> np.ndarray:
        out = np.full((len(both), len(SCORE_COLUMNS)), np.nan)
        for name in EYE_SCORES:
            out[:, SCORE_COLUMNS.index(name)] = both[name + suffix].to_numpy(dtype=float)
        return out

    rows = both[["image_id", "patient_id", "eye", "grade"]]
    return both, decided_tables(rows, scores(""), eval_cfg), decided_tables(rows, scores("_earlier"), eval_cfg)


def against(oof: pd.DataFrame, oof_dir: Path, earlier: str, eval_cfg, n_boot: int) -> dict:
    """Paired difference (this run - ``earlier``) of the shipped variants on the eyes both graded."""
    from drgrader.evaluation.lab import STAGES, paired_difference

    other = pd.read_csv(oof_dir / f"{earlier}.csv", dtype={"image_id": str, "patient_id": str})
    both, mine, theirs = decided_pair(oof, other, eval_cfg)
    return {"eyes": int(len(both)), **{stage: paired_difference(mine[stage], theirs[stage], n_boot=n_boot, seed=0)
                                       for stage in STAGES}}


def fold_summary(metrics: dict) -> dict:
    folds = metrics.get("fold_training") or {}
    return {"minutes": [round((f.get("wall_time_s") or 0) / 60, 1) for f in folds.values()],
            "epochs": [f.get("epochs_run") for f in folds.values()],
            "best_epochs": [f.get("best_epoch") for f in folds.values()],
            "precision": sorted({str(f.get("precision", "32-true")) for f in folds.values()})}


def render(results: dict) -> str:
    from drgrader.evaluation.lab import lab_markdown

    lines = ["# The lab: variants measured on the same out-of-fold eyes", "",
             "Written by `benchmarks/bench_lab.py` from `lab.json`; do not edit by hand. Each run is one "
             "`drgrader cv --set eval.lab=true` over all of eyepacs-256 (5 patient-level folds); every figure "
             "is on out-of-fold predictions with 95% patient-bootstrap CIs.", ""]
    for label, run in results.items():
        folds = run["folds"]
        lines += [f"## {label}", "",
                  f"- made {run['date']} on {run['machine']}; commit {run['commit']}{'; ' + run['note'] if run.get('note') else ''}",
                  f"- command: `{run['command']}`",
                  f"- training minutes per fold {folds['minutes']}, epochs {folds['epochs']} (best {folds['best_epochs']}), "
                  f"precision {', '.join(folds['precision'])}", "", lab_markdown(run["lab"])]
        for earlier, diff in (run.get("against") or {}).items():
            lines += [f"Against **{earlier}** (shipped variants, paired on {diff['eyes']} eyes): " + "; ".join(
                f"{stage}: kappa {d['kappa'][0]:+.3f} ({d['kappa'][1]:+.3f} to {d['kappa'][2]:+.3f}), referable AUC "
                f"{d['referable_auc'][0]:+.3f} ({d['referable_auc'][1]:+.3f} to {d['referable_auc'][2]:+.3f})"
                for stage, d in diff.items() if stage != "eyes"), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cv_dir", type=Path)
    parser.add_argument("--label", required=True)
    parser.add_argument("--command", help="the command that made the run (default: read from its report)")
    parser.add_argument("--commit", default=None, help="the commit the run was made with (default: HEAD)")
    parser.add_argument("--note", default="", help="e.g. 'cores shared with other work during fold 1'")
    parser.add_argument("--against", nargs="*", default=[], help="labels of earlier recorded runs")
    parser.add_argument("--results", type=Path, default=RESULTS / "lab.json")
    args = parser.parse_args(argv)

    from drgrader.config import load_config
    from drgrader.io import atomic_write_text

    lab = json.loads((args.cv_dir / "lab.json").read_text())
    metrics = json.loads((args.cv_dir / "metrics.json").read_text())
    cfg = load_config(args.cv_dir / "config.yaml")
    oof = shipped_oof(args.cv_dir)
    oof_dir = args.results.parent / "lab_oof"
    oof_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(oof_dir / f"{args.label}.csv", oof.to_csv(index=False, float_format="%.5f"))
    row = {"date": now(), "machine": machine_info()["summary"], "commit": args.commit or git_commit(),
           "command": args.command or f"drgrader cv {args.cv_dir / 'config.yaml'} --folds {metrics['folds']}",
           "note": args.note, "folds": fold_summary(metrics), "lab": lab,
           "against": {e: against(oof, oof_dir, e, cfg.eval, cfg.eval.bootstrap) for e in args.against}}
    return record_row(args.results, args.label, row, render)


def record_row(results: Path, label: str, row: dict, render) -> dict:
    """Merge ``row`` into ``results`` under ``label``, rewrite its Markdown beside it with
    ``render`` (all rows), and print this row's rendering."""
    from drgrader.io import atomic_write_text

    merged = merge_results(results, {label: row})
    atomic_write_text(results.with_suffix(".md"), render(merged))
    print(render({label: row}))
    return row


if __name__ == "__main__":
    main()

"""Two recorded recipes, paired on the eyes of the folds both have (``results/lab_oof``): kappa
and referable AUC of each, single eye and with the paired-eye stage, and the paired
patient-bootstrap difference (first - second), as ``bench_lever.py`` computes it. For recipes
recorded against different baselines, e.g. the shipped hour against the MSE hour it replaced:

    python benchmarks/bench_pair.py multitask-hour lite2-256-hour
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from bench_lab import with_eye_scores
from bench_lever import compare
from common import RESULTS, ci_text, diff_text


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", help="a recorded recipe (lab_oof/<label>.csv)")
    parser.add_argument("second")
    parser.add_argument("--results", type=Path, default=RESULTS / "levers.json", help="lab_oof/ is beside it")
    args = parser.parse_args(argv)

    from drgrader.config import load_config

    def read(label: str) -> pd.DataFrame:
        return with_eye_scores(pd.read_csv(args.results.parent / "lab_oof" / f"{label}.csv", dtype={"image_id": str, "patient_id": str}))

    first, second = read(args.first), read(args.second)
    folds = sorted(set(first["fold"]) & set(second["fold"]))
    if not folds:
        raise SystemExit(f"{args.first} and {args.second} have no fold in common")
    eval_cfg = load_config("cpu_grade").eval
    result = compare(first[first["fold"].isin(folds)], second[second["fold"].isin(folds)], eval_cfg, eval_cfg.bootstrap)
    print(f"{args.first} against {args.second}: folds {', '.join(map(str, folds))} ({result['eyes']} eyes, "
          f"{result['patients']} patients)")
    for stage in ("single eye", "paired eyes"):
        mine, theirs, diff = (result[stage][k] for k in ("lever", "earlier", "difference"))
        print(f"  {stage}: kappa {ci_text(mine['kappa'])} against {ci_text(theirs['kappa'])}, {diff_text(diff['kappa'])}; "
              f"referable AUC {ci_text(mine['referable_auc'])} against {ci_text(theirs['referable_auc'])}, {diff_text(diff['referable_auc'])}")
    return result


if __name__ == "__main__":
    main()

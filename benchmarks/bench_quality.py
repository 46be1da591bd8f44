"""Quality of drgrader's configs: train each, measure it on its held-out split and on an external
data set it never saw, and keep the figures with their 95% CIs in one JSON + Markdown table.

For each ``--config``: train (``drgrader train``'s pipeline, data.root from ``--data``; the split
is the config's, fixed by its seed), time it, then evaluate the run on ``--external`` (``drgrader
evaluate RUN --data FOLDER``: thresholds stay those fitted on the run's validation split).
Figures: quadratic-weighted kappa, grade accuracy, any-DR AUC, referable-DR AUC and referable
sensitivity at 90% specificity, each with a patient-level bootstrap 95% CI.

With ``--cv K`` a config is measured by cross-fitting instead (``drgrader cv CONFIG --folds K``):
the internal figures are the pooled out-of-fold ones (with the paired-eye stage when fitted;
single-eye figures beside them), the training time is the sum over folds, and the external
set is graded by the fold ensemble. Rows also carry issue 12's patient-level figure: referable
sensitivity at >= 85% specificity with each patient judged by the worse eye.

Rows merge into ``--out`` keyed by ``--label`` (so runs can be added one at a time), and the
Markdown table next to it (same name, .md) is regenerated from the whole JSON each time.

    python benchmarks/bench_quality.py --config seed000_resnet_grades
    python benchmarks/bench_quality.py --config seed001_mobilenetv2_binary \\
        --set data.split.method=patient --label seed001-patient-split
    python benchmarks/bench_quality.py --config cpu_grade_cv --cv 5
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from common import RESULTS, SHARED_DATA, command_line, machine_info, merge_results, now

if TYPE_CHECKING:
    from drgrader.config import ExperimentConfig

# name in the results -> (section of metrics.json's "test", metric); CIs are in section["ci"].
FIGURES = {
    "kappa": ("grade", "kappa"),
    "accuracy": ("grade", "accuracy"),
    "any_dr_auc": ("any_dr", "auc"),
    "referable_auc": ("referable", "auc"),
}
SENS_AT_SPEC = "referable_sens_at_90_spec"
PATIENT_SENS_AT_SPEC = "patient_referable_sens_at_85_spec"
COLUMNS = {  # table heading of each figure, in table order
    "kappa": "kappa",
    "accuracy": "accuracy",
    "any_dr_auc": "any-DR AUC",
    "referable_auc": "referable AUC",
    SENS_AT_SPEC: "referable sens. @ 90% spec.",
    PATIENT_SENS_AT_SPEC: "patient referable sens. @ 85% spec.",
}


def sensitivity_at_specificity(d, specificity: float, per_patient: bool) -> float:
    """Referable sensitivity at the lowest threshold with specificity >= ``specificity``, per eye
    or per patient (worse eye: highest score, highest grade)."""
    import numpy as np

    from drgrader.evaluation.metrics import roc_curve_points
    from drgrader.grading import SCREENS

    column, min_grade = SCREENS["referable"]
    if per_patient:
        d = d.groupby("patient_id", sort=False).agg(grade=("grade", "max"), **{column: (column, "max")})
    curve = roc_curve_points(d["grade"].to_numpy() >= min_grade, d[column].to_numpy())
    if curve.empty:
        return math.nan
    ok = np.flatnonzero(1.0 - curve["fpr"].to_numpy() >= specificity)
    return float(curve["tpr"].to_numpy()[ok[-1]])


def sensitivity_at_specificity_figure(predictions: Path, specificity: float, per_patient: bool, n_boot: int, seed: int) -> dict:
    """The figure with a 95% CI, its operating point re-found in every patient resample
    (metrics.json reports the eye-level 90% point itself but no CI for it)."""
    import pandas as pd

    from drgrader.evaluation.bootstrap import bootstrap_ci
    from drgrader.grading import SCREENS

    column = SCREENS["referable"][0]
    table = pd.read_csv(predictions, usecols=["patient_id", "grade", column], dtype={"patient_id": str})
    table = table.dropna(subset=[column])

    def figure(d: pd.DataFrame) -> float:
        return sensitivity_at_specificity(d, specificity, per_patient)

    if n_boot == 0:
        return {"value": figure(table), "ci": None}
    value, lo, hi = bootstrap_ci(figure, table, n=n_boot, seed=seed)
    return {"value": value, "ci": [None if math.isnan(v) else v for v in (lo, hi)]}


def quality_figures(metrics: dict, predictions: Path, n_boot: int, seed: int) -> dict:
    """{figure: {"value": v, "ci": [lo, hi] or None}} from a metrics.json (figures the model
    cannot give, e.g. kappa of an any-DR screener, are left out)."""
    test = metrics["test"]
    out = {}
    for name, (section_name, metric) in FIGURES.items():
        section = test.get(section_name) or {}
        if section.get(metric) is not None:
            out[name] = {"value": section[metric], "ci": (section.get("ci") or {}).get(metric)}
    if test.get("referable"):
        out[SENS_AT_SPEC] = sensitivity_at_specificity_figure(predictions, 0.90, False, n_boot, seed)
        out[PATIENT_SENS_AT_SPEC] = sensitivity_at_specificity_figure(predictions, 0.85, True, n_boot, seed)
    return out


def single_eye_figures(metrics: dict) -> dict:
    """The figures of ``test_single_eye`` (a bundle with a paired-eye stage, graded eye by eye)."""
    single = metrics["test_single_eye"]
    return {
        name: {"value": (single.get(section) or {}).get(metric), "ci": ((single.get(section) or {}).get("ci") or {}).get(metric)}
        for name, (section, metric) in FIGURES.items()
    }


def evaluate_external(cfg: ExperimentConfig, run_dir: Path, external: Path) -> dict:
    """``drgrader evaluate RUN --data <external>`` with the run's cache folder and eval settings."""
    from drgrader.config import DataConfig, save_config
    from drgrader.workflows.evaluate import evaluate_command

    # A YAML rather than the bare folder keeps data.cache_dir / workers and the eval section.
    # The bundle's own input size, normalisation and preprocessing written out: evaluate refuses other values it would drop.
    data = DataConfig(root=external.resolve(), cache_dir=cfg.data.cache_dir, workers=cfg.data.workers,
                      image_size=cfg.data.image_size, normalize=cfg.data.normalize, preprocess=cfg.data.preprocess)
    save_config(cfg.model_copy(update={"data": data}), run_dir / "external.yaml")
    eval_dir = evaluate_command(run_dir, data=str(run_dir / "external.yaml"))
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    return {
        "data": str(external),
        "evaluated_on": metrics["evaluated_on"],
        "eval_dir": str(eval_dir),
        "n_images": metrics["test"]["n_images"],
        "n_patients": metrics["test"]["n_patients"],
        "figures": quality_figures(metrics, eval_dir / "predictions_test.csv", cfg.eval.bootstrap, cfg.train.seed),
        **({"single_eye_figures": single_eye_figures(metrics)} if metrics.get("test_single_eye") else {}),
    }


def run_config(
    cfg: ExperimentConfig, config_path: str, label: str, external: Path | None, runs: Path, progress: bool,
    existing: Path | None = None, cv: int | None = None,
) -> dict:
    """Train one config (or take an ``existing`` run of it; with ``cv``, cross-fit it, resuming
    an ``existing`` cv folder), evaluate it internally and externally; one result row."""
    from drgrader.workflows.cv import run_cv
    from drgrader.workflows.train import train

    started = time.time()
    if cv and existing and (Path(existing) / "metrics.json").is_file():
        run_dir = Path(existing)  # finished and pooled: measured as it is (a newer drgrader need not resume it)
    elif cv:
        run_dir = run_cv(cfg, folds=cv, out=Path(existing) if existing else runs / label, progress=progress)
    else:
        run_dir = Path(existing) if existing else train(cfg, out=runs / label, progress=progress)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    trainings = list(metrics["fold_training"].values()) if cv else [metrics["training"]]
    row = {
        "label": label,
        "config": config_path,
        "task": cfg.model.task,
        "backbone": cfg.model.backbone,
        "image_size": cfg.data.image_size,
        "data": str(cfg.data.root),
        "split": {"method": f"{cv}-fold cross-fitting" if cv else cfg.data.split.method, "seed": cfg.data.split.seed},
        "run_dir": str(run_dir),
        "evaluated_on": metrics["evaluated_on"],
        "n_images": metrics["test"]["n_images"],
        "n_patients": metrics["test"]["n_patients"],
        "epochs_run": max(t["epochs_run"] for t in trainings),
        "best_epoch": trainings[0]["best_epoch"] if not cv else None,
        "train_wall_s": round(sum(t["wall_time_s"] for t in trainings), 1),  # trainer.fit only
        "figures": quality_figures(metrics, run_dir / "predictions_test.csv", cfg.eval.bootstrap, cfg.train.seed),
        "external": None,
    }
    if metrics.get("test_single_eye"):
        row["single_eye_figures"] = single_eye_figures(metrics)
    if external is not None:
        row["external"] = evaluate_external(cfg, run_dir, external)
    row["total_wall_s"] = round(time.time() - started, 1)  # data preparation + fit + evaluations
    return row


# ------------------------------------------------------------------------------ Markdown
def fmt_figure(figure: dict | None) -> str:
    if not figure or figure.get("value") is None:
        return "—"
    text = f"{figure['value']:.3f}"
    ci = figure.get("ci")
    if ci and None not in ci:
        text += f" ({ci[0]:.3f}–{ci[1]:.3f})"
    return text


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def render_markdown(results: dict) -> str:
    """The Markdown report of a whole quality.json (one row per label, in file order)."""
    figure_heads = list(COLUMNS.values())
    internal, external, provenance = [], [], []
    for label, r in results.items():
        figs = [fmt_figure(r["figures"].get(name)) for name in COLUMNS]
        minutes = f"{r['train_wall_s'] / 60:.1f} min" if r.get("train_wall_s") is not None else "—"
        internal.append([label, r["evaluated_on"], str(r["n_images"]), *figs, str(r["epochs_run"]), minutes])
        if r.get("single_eye_figures"):
            single = [fmt_figure(r["single_eye_figures"].get(name)) for name in COLUMNS]
            internal.append([f"{label}, single eye", r["evaluated_on"], str(r["n_images"]), *single, "", ""])
        if r.get("external"):
            ext = r["external"]
            ext_figs = [fmt_figure(ext["figures"].get(name)) for name in COLUMNS]
            external.append([label, Path(ext["data"]).name, str(ext["n_images"]), *ext_figs])
            if ext.get("single_eye_figures"):
                single = [fmt_figure(ext["single_eye_figures"].get(name)) for name in COLUMNS]
                external.append([f"{label}, single eye", Path(ext["data"]).name, str(ext["n_images"]), *single])
        provenance.append(
            f"- **{label}**: {r['date']}, {r['machine']['summary']}; run folder `{r['run_dir']}`  \n"
            f"  `{r['command']}`"
        )
    lines = [
        "# drgrader quality benchmark",
        "",
        "Written by `benchmarks/bench_quality.py` from `quality.json`; do not edit by hand.",
        "Each figure: estimate (95% CI, bootstrap over patients). Referable sens. @ 90% spec. is the",
        "sensitivity for referable DR (grade >= 2) at the lowest threshold giving >= 90% specificity;",
        "the patient figure judges each patient by the worse eye, at >= 85% specificity. A cross-fitted",
        "row (`out-of-fold`) is graded with both eyes (paired-eye stage); its `single eye` row beside it",
        "grades each eye alone. Rows measured before a figure existed show it as —.",
        "",
        "## Held-out split of the training data",
        "",
        "`val` means the config has no test split: the figures are on the validation split, which",
        "also chose the checkpoint and the thresholds, so they flatter the model.",
        "",
        *table(["run", "evaluated on", "images", *figure_heads, "epochs", "training time"], internal),
        "",
        "## External data set (never trained on; thresholds from the run's validation split)",
        "",
        *(table(["run", "data", "images", *figure_heads], external) if external else ["(none)"]),
        "",
        "## How each row was produced",
        "",
        *provenance,
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append", required=True, help="shipped config name or experiment YAML (repeatable)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every config")
    parser.add_argument("--data", help="training data-set folder (default: each config's data.root)")
    parser.add_argument(
        "--external", default=str(SHARED_DATA / "rahim-originals"),
        help="external data-set folder to evaluate on, or 'none' (default: %(default)s)",
    )
    parser.add_argument("--label", action="append", help="row name, one per --config (default: config file name)")
    parser.add_argument("--out", type=Path, default=RESULTS / "quality.json", help="JSON merged into; .md beside it")
    parser.add_argument("--runs", type=Path, default=Path("runs") / "bench", help="where the run folders go")
    parser.add_argument("--existing", type=Path, help="a finished run (or cv folder) of the (single) --config: skip training")
    parser.add_argument("--cv", type=int, metavar="K", help="measure by K-fold cross-fitting (drgrader cv) instead of one split")
    args = parser.parse_args(argv)

    from drgrader.config import load_config
    from drgrader.io import atomic_write_text
    from drgrader.runtime import tune_malloc

    tune_malloc()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric"):  # as drgrader's CLI
        logging.getLogger(noisy).setLevel(logging.WARNING)
    labels = args.label or [Path(c).stem for c in args.config]
    if len(labels) != len(args.config) or len(set(labels)) != len(labels):
        parser.error(f"give one distinct --label per --config (got {len(labels)} for {len(args.config)} configs)")
    external = None if args.external.lower() == "none" else Path(args.external)
    if external is not None and not external.is_dir():
        parser.error(f"--external {external}: no such folder (use --external none to skip)")
    if args.existing and len(args.config) != 1:
        parser.error("--existing takes exactly one --config")
    overrides = args.set + ([f"data.root={args.data}"] if args.data else [])
    # Validate every config before hours of training start.
    configs = [load_config(path, overrides) for path in args.config]
    for cfg in configs:
        if external is not None and cfg.data.root is not None and Path(cfg.data.root).resolve() == external.resolve():
            print(f"warning: --external {external} is the training data: its figures are not external", file=sys.stderr)

    machine, command = machine_info(), command_line()
    results: dict = {}
    for path, cfg, label in zip(args.config, configs, labels):
        row = run_config(cfg, path, label, external, args.runs, progress=sys.stderr.isatty(), existing=args.existing, cv=args.cv)
        row.update({"date": now(), "machine": machine, "command": command, "overrides": args.set})
        results = merge_results(args.out, {label: row})
        atomic_write_text(args.out.with_suffix(".md"), render_markdown(results))
        print(f"{label}: {', '.join(f'{k} {fmt_figure(v)}' for k, v in row['figures'].items())}")
    print(render_markdown(results))
    print(f"written to {args.out} and {args.out.with_suffix('.md')}")
    return results


if __name__ == "__main__":
    main()

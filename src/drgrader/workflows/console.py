"""What the commands print when a run or an evaluation is finished."""

from __future__ import annotations

from pathlib import Path


def print_run(run_dir: Path) -> None:
    """The run folder, the headline figures with their CIs, warnings, and where the report is."""
    import json

    metrics_file = Path(run_dir) / "metrics.json"
    print(f"\nrun folder: {run_dir}")
    if metrics_file.is_file():
        from drgrader.evaluation.results import headline_with_ci

        metrics = json.loads(metrics_file.read_text())
        print(f"evaluated on: {_evaluated_on(metrics)}")
        for name, value in headline_with_ci(metrics.get("test", {})).items():
            print(f"  {name}: {fmt_figure(value)}")
        for warning in metrics.get("test", {}).get("warnings", []):
            print(f"  WARNING: {warning}")
    for report in ("report.html", "report.md"):
        if (Path(run_dir) / report).is_file():
            print(f"report: {Path(run_dir) / report}")


def _evaluated_on(metrics: dict) -> str:
    """metrics.json's ``evaluated_on``, except that a data set the model was partly trained or
    tuned on is not called external (the warning printed before it says so)."""
    from drgrader.evaluation.training_overlap import unchecked_copies
    from drgrader.reporting.run_data import on_own_training_data

    where = str(metrics.get("evaluated_on"))
    overlap = metrics.get("training_overlap") or {}
    if on_own_training_data(metrics):
        return (f"{where.split(':', 1)[1]} (not external: {overlap['photos']} of {overlap['of']} "
                "photos trained or tuned the model)")
    if where.startswith("external:") and metrics.get("training_overlap", {}) is None:  # no record to check
        return f"{where} (not checked against the model's training photos: it has no record of them)"
    if where.startswith("external:") and overlap.get("held_out"):  # probe 45 CI1
        return (f"{where} (not an outside data set: {overlap['held_out']} of {overlap['of']} photos are the model's own "
                "run's held-out test split)")
    if where.startswith("external:") and (caveat := unchecked_copies(metrics.get("training_overlap"))):  # probe 43 CG1
        return f"{where} ({caveat})"
    return where


def fmt_figure(value) -> str:
    """``(estimate, [lo, hi] or None)`` as ``0.612 (95% CI 0.527-0.688)``."""
    estimate, ci = value
    text = f"{estimate:.3f}" if isinstance(estimate, float) else str(estimate)
    if ci and None not in ci:
        text += f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})"
    return text

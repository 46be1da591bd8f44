"""The report of a ``drgrader cv`` folder: pooled out-of-fold figures, single eye beside paired
eyes, the consistency of grades and screening decisions, and the per-fold spread."""

from __future__ import annotations

from pathlib import Path

from drgrader.io import atomic_write_text

ROWS = [  # (label, section, metric key, CI key)
    ("quadratic weighted kappa", "grade", "kappa", "kappa"),
    ("grade accuracy", "grade", "accuracy", "accuracy"),
    ("referable AUC (eye)", "referable", "auc", "auc"),
    ("referable sensitivity (eye, chosen threshold)", "referable", "chosen.sensitivity", "sensitivity"),
    ("referable specificity (eye, chosen threshold)", "referable", "chosen.specificity", "specificity"),
    ("any-DR AUC (eye)", "any_dr", "auc", "auc"),
    ("referable sensitivity (patient, worst eye)", "patient_level.referable", "sensitivity", None),
    ("referable specificity (patient, worst eye)", "patient_level.referable", "specificity", None),
]


def _lookup(result: dict, section: str, key: str):
    node = result
    for part in section.split("."):
        node = (node or {}).get(part)
    if key.startswith("chosen."):
        node = ((node or {}).get("operating_points") or {}).get("chosen")
        key = key.split(".", 1)[1]
    return (node or {}).get(key)


def _cell(result: dict | None, section: str, key: str, ci_key: str | None) -> str:
    if not result:
        return "-"
    value = _lookup(result, section, key)
    if value is None:
        return "-"
    text = f"{value:.3f}"
    ci = ((_lookup(result, section, "ci") or {}).get(ci_key) if ci_key else None) or None
    if ci and None not in ci:
        text += f" ({ci[0]:.3f}-{ci[1]:.3f})"
    return text


def consistency_lines(result: dict) -> list[str]:
    """Does "grade >= k" make the same call as the screening threshold? Per-grade recall."""
    grade, lines = result.get("grade"), []
    if not grade:
        return lines
    for name, label in (("referable", "referable (grade >= 2)"), ("any_dr", "any DR (grade >= 1)")):
        from_grades = grade.get("screening_from_grades", {}).get(name)
        chosen = (result.get(name, {}).get("operating_points") or {}).get("chosen")
        if from_grades and chosen:
            lines.append(
                f"| {label} | {from_grades['sensitivity']:.3f} / {from_grades['specificity']:.3f} "
                f"| {chosen['sensitivity']:.3f} / {chosen['specificity']:.3f} |"
            )
    return lines


def per_grade_recall(result: dict) -> str:
    per_grade = (result.get("grade") or {}).get("per_grade", {})
    return " / ".join(f"{g}: {v['recall']:.2f} (n={v['support']})" for g, v in per_grade.items())


def cv_report_markdown(metrics: dict) -> str:
    single, paired = metrics.get("single_eye"), metrics.get("paired_eyes")
    out = [
        f"# Cross-validation: {metrics['run']}",
        "",
        f"Evaluated {metrics['evaluated_on']}: every eye is predicted by the fold model that never saw its "
        f"patient; thresholds and cut-points are fitted on these pooled predictions (and so flatter them a "
        f"little), the paired-eye stage is itself cross-fitted. 95% CIs from "
        f"{single['bootstrap']['n']} bootstrap resamples of patients. "
        f"{single['n_images']} images of {single['n_patients']} patients.",
        "",
        "## Single eye and paired eyes",
        "",
        "| figure | single eye | paired eyes (fused with the fellow eye) |",
        "|---|---|---|",
    ]
    for label, section, key, ci_key in ROWS:
        out.append(f"| {label} | {_cell(single, section, key, ci_key)} | {_cell(paired, section, key, ci_key)} |")
    out += ["", "## One story: predicted grade against the screening threshold", ""]
    for name, result in (("single eye", single), ("paired eyes", paired)):
        if not result:
            continue
        out += [
            f"**{name}** (sensitivity / specificity):",
            "",
            "| decision | from the predicted grade | at the screening threshold |",
            "|---|---|---|",
            *consistency_lines(result),
            "",
            f"Recall per grade: {per_grade_recall(result)}",
            "",
        ]
    out += ["## Per fold (pooled thresholds)", "", "| fold | kappa | referable AUC | any-DR AUC |", "|---|---|---|---|"]
    per_fold = metrics.get("per_fold", {})

    def fmt(v):
        return "-" if v is None else f"{v:.3f}"

    for fold, fig in per_fold.get("folds", {}).items():
        out.append(f"| {fold} | {fmt(fig.get('kappa'))} | {fmt(fig.get('referable_auc'))} | {fmt(fig.get('any_dr_auc'))} |")
    summary = per_fold.get("summary", {})
    if summary:
        cells = [f"{summary[k]['mean']:.3f} +- {summary[k]['sd']:.3f}" if k in summary else "-" for k in ("kappa", "referable_auc", "any_dr_auc")]
        out.append(f"| mean +- sd | {' | '.join(cells)} |")
    minutes = [t.get("wall_time_s") for t in metrics.get("training", {}).values() if t.get("wall_time_s")]
    if minutes:
        out += ["", f"Training: {sum(minutes) / 60:.1f} minutes in all ({', '.join(f'{m / 60:.1f}' for m in minutes)} per fold)."]
    for warning in (paired or single).get("warnings", []):
        out.append(f"\n- WARNING: {warning}")
    return "\n".join(out) + "\n"


def write_cv_report(cv_dir: Path, metrics: dict) -> Path:
    path = Path(cv_dir) / "report.md"
    atomic_write_text(path, cv_report_markdown(metrics))
    return path

"""The sections made of tables and text: per-grade and patient-level results, the data set,
the ensemble's members, the configuration and how to reproduce the run.
"""

from __future__ import annotations

import json
import shlex

from drgrader.evaluation.metrics import IDX_DR_SENSITIVITY, IDX_DR_SPECIFICITY
from drgrader.grading import GRADE_NAMES, GRADES
from drgrader.reporting.document import (
    HEADLINE_LABELS,
    SCREEN_LABELS,
    SCREEN_SHORT,
    Alert,
    Code,
    Note,
    Para,
    Section,
    Table,
    below_bar,
    fmt,
    fmt_ci,
    fmt_num,
    fmt_pct,
)
from drgrader.reporting.run_data import RunData, left_out_text, split_sentence


def per_grade_section(run: RunData) -> Section:
    grade = run.test.get("grade")
    if not grade:
        return Section("per-grade", "Per-grade results", [Note(
            "Binary screening model: no per-grade precision / recall.")])
    rows = []
    for key, g in grade["per_grade"].items():
        rows.append([g["name"], fmt_num(g["precision"], 2), fmt_num(g["recall"], 2), fmt_num(g["f1"], 2), str(g["support"])])
    for label, g in (("macro avg", grade["macro_avg"]), ("weighted avg", grade["weighted_avg"])):
        rows.append([label, fmt_num(g["precision"], 2), fmt_num(g["recall"], 2), fmt_num(g["f1"], 2), str(g["support"])])
    source = grade.get("prediction")
    cut = (run.metrics.get("thresholds") or {}).get("cutpoints")
    how = ("the expected grade cut at " + ", ".join(f"{c:.2f}" for c in cut) + " (cut-points fitted on validation)"
           if source == "expected_grade+cutpoints" and cut else "the most probable grade")
    blocks: list = [
        Para(f"The predicted grade is {how}. Recall of a grade is the share of its eyes given that grade "
             "(its sensitivity); precision is the share of eyes given that grade that truly have it. "
             f"Mean absolute error: {fmt_num(grade['mean_absolute_error'], 2)} grades."),
        Table(["Grade", "precision", "recall", "F1", "support (eyes)"], rows, align="lrrrr"),
    ]
    screening = grade.get("screening_from_grades") or {}
    if screening:
        srows = [[SCREEN_LABELS[name], below_bar(f["sensitivity"], IDX_DR_SENSITIVITY),
                  below_bar(f["specificity"], IDX_DR_SPECIFICITY), str(f["fn"]), str(f["fp"])]
                 for name, f in screening.items()]
        blocks += [Para("Screening decisions read from the predicted grade (instead of the screening score):"),
                   Table(["Screen", "sensitivity", "specificity", "missed", "false alarms"], srows, align="lrrrr")]
    agreement = grade.get("agreement_with_screens") or {}
    if agreement:
        same = ", ".join(f"{SCREEN_SHORT[name]} {fmt_pct(share)}" for name, share in agreement.items())
        blocks.append(Para(f"Eyes on which the predicted grade and the screening threshold make the same call: {same} "
                           "(100% when the cut-points are tied to the screening thresholds)."))
    for g in grade.get("unreachable_grades") or []:
        blocks.append(Alert("warning", f"Grade {GRADE_NAMES[g]} is never predicted correctly (recall 0)."))
    return Section("per-grade", "Per-grade results", blocks)


def patient_section(run: RunData) -> Section:
    patients = run.test.get("patient_level") or {}
    if not patients:
        return Section("patients", "Patient level", [Note("No patient-level results.")])
    rows = []
    for name, p in patients.items():
        has_threshold = "sensitivity" in p
        rows.append([SCREEN_LABELS.get(name, name), str(p["n_patients"]), fmt_pct(p["prevalence"]), fmt_num(p["auc"]),
                     below_bar(p["sensitivity"], IDX_DR_SENSITIVITY) if has_threshold else "n/a",
                     below_bar(p["specificity"], IDX_DR_SPECIFICITY) if has_threshold else "n/a",
                     str(p.get("fn", "n/a")), str(p.get("fp", "n/a"))])
    return Section("patients", "Patient level (worse eye)", [
        Para("A screening programme refers people, not eyes: here a patient counts as diseased when either eye "
             "is, and is referred when either eye is flagged."),
        Table(["Screen", "patients", "prevalence", "AUC", "sensitivity", "specificity", "missed patients",
               "unneeded referrals"], rows, align="lrrrrrrr"),
    ])


def data_section(run: RunData) -> Section:
    data = run.metrics.get("data") or {}
    summary = data.get("summary")
    if not summary:
        return Section("data", "Data", [Note("No data summary in metrics.json.")])
    splits = summary.get("splits") or {}
    header = ["Grade", "all"] + list(splits)
    rows = []
    for g in GRADES:
        row = [GRADE_NAMES[g], _count(summary["grades"].get(str(g), summary["grades"].get(g, 0)), summary["images"])]
        row += [_count(s["grades"].get(str(g), s["grades"].get(g, 0)), s["images"]) for s in splits.values()]
        rows.append(row)
    rows.append(["images", str(summary["images"])] + [str(s["images"]) for s in splits.values()])
    rows.append(["patients", str(summary["patients"])] + [str(s["patients"]) for s in splits.values()])
    sources = ", ".join(f"{k} ({v} images)" for k, v in (summary.get("sources") or {}).items())
    eyes = summary.get("eyes") or {}
    text = (f"{summary['images']} images of {summary['patients']} patients from {sources or 'an unknown source'}; "
            f"{eyes.get('left', 0)} left, {eyes.get('right', 0)} right, {eyes.get('unknown', 0)} unknown eyes.")
    if len(splits) > 1:
        method = run.config.data.split.method if run.config is not None else None
        text += " " + split_sentence(summary, method)
    if left_out := left_out_text(data.get("skipped")):
        text += f" Left out: {left_out}."
    blocks: list = [Para(text), Table(header, rows, align="l" + "r" * (len(header) - 1))]
    q = summary.get("gradability")
    if q:
        blocks.append(Para(f"Quality check: {q['gradable']} gradable, {q['ungradable']} ungradable, "
                           f"{q['not_assessed']} not assessed."
                           + ("" if not q.get("reasons") else " Reasons: "
                              + ", ".join(f"{k} ({v})" for k, v in q["reasons"].items()) + ".")))
    dup = summary.get("duplicates")
    if dup and dup.get("groups"):
        blocks.append(Para(f"Duplicate files: {len(dup['groups'])} groups of identical photos "
                           f"({dup['conflicting_grades']} with different grades, {dup['crossing_splits']} crossing splits)."))
    if data.get("manifest_sha256"):
        blocks.append(Note(f"Manifest checksum: {data['manifest_sha256']}"))
    return Section("data", "Data", blocks)


def _count(n: int, total: int) -> str:
    return f"{n} ({100 * n / total:.1f}%)" if total else str(n)


def members_section(run: RunData) -> Section | None:
    members = run.metrics.get("members")
    if not members:
        return None
    keys = [k for k in ("kappa", "grade_accuracy", "any_dr_auc", "referable_auc", "referable_sensitivity",
                        "referable_specificity") if any(k in m for m in members.values())]
    head = run.test.get("headline") or {}
    rows = [["ensemble"] + [fmt(head.get(k), HEADLINE_LABELS[k][1]) for k in keys]]
    for name, m in members.items():
        cells = [name]
        for k in keys:
            value = m.get(k)
            v, ci = (value[0], value[1]) if isinstance(value, list) else (value, None)
            percent = HEADLINE_LABELS[k][1]
            cells.append(fmt(v, percent) + (f" ({fmt_ci(ci, percent)})" if fmt_ci(ci) != "–" else ""))
        rows.append(cells)
    return Section("members", "Ensemble members", [
        Para("Each member alone on the same eyes (with its own thresholds), next to the ensemble:"),
        Table(["Model"] + [HEADLINE_LABELS[k][0] for k in keys], rows, align="l" + "r" * len(keys)),
    ])


def config_section(run: RunData) -> Section:
    if not run.config_text:
        return Section("config", "Configuration", [Note(
            "No configuration in this folder (evaluation-only): see the model's run folder.")])
    thresholds = run.metrics.get("thresholds")
    blocks: list = [Code(run.config_text, summary="Resolved experiment configuration (YAML)", language="yaml")]
    if thresholds:
        blocks.append(Code(json.dumps(thresholds, indent=2), summary="Fitted thresholds", language="json"))
    return Section("config", "Configuration", blocks)


def reproduce_section(run: RunData) -> Section:
    q = shlex.quote
    run_dir = str(run.run_dir)
    where = run.metrics.get("evaluated_on") or "test"
    lines = []
    if run.metrics.get("folds") and (run.run_dir / "config.yaml").is_file():
        lines += ["# cross-fit again (finished folds in this folder are kept; a new --out trains anew)",
                  f"drgrader cv {q(str(run.run_dir / 'config.yaml'))} --folds {run.metrics['folds']} --out {q(run_dir)}"]
    elif run.metrics.get("training") is not None and (run.run_dir / "config.yaml").is_file():
        split = run.run_dir / "split.csv"
        extra = f" --set data.split.file={q(str(split))}" if split.is_file() else ""
        same_split = " and the same patients in each split" if split.is_file() else ""
        lines += [f"# train again with the same configuration{same_split}",
                  f"drgrader train {q(str(run.run_dir / 'config.yaml'))}{extra}",
                  "# re-score this run's held-out split", f"drgrader evaluate {q(run_dir)}"]
    elif run.metrics.get("model"):
        data = f" --data {q(where.split(':', 1)[1])}" if where.startswith(("external:", "not-external:")) else ""
        lines += ["# evaluate the same model on the same data", f"drgrader evaluate {q(run.metrics['model'])}{data} --out {q(run_dir)}"]
    lines += ["# rewrite this report", f"drgrader report {q(run_dir)}"]
    blocks: list = [Code("\n".join(lines), language="sh")]
    versions = run.metrics.get("versions") or {}
    if versions:
        blocks.append(Table(["Software", "version"], [[k, str(v)] for k, v in versions.items()], align="ll"))
    return Section("reproduce", "How to reproduce", blocks)

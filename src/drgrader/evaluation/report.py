"""The run report a clinician can read: ``report.html`` (self-contained) and ``report.md``.

Seed 001's screener looked fine at 77% accuracy while it missed 75% of diseased eyes. This
report therefore opens with the automatic warnings and a plain-language paragraph in counts of
eyes ("of 120 referable eyes the grader found 30"), puts sensitivity and specificity with their
confidence intervals next to the IDx-DR bar, and shows accuracy only beside what a constant
answer would score.

The report is built once as a list of sections made of simple blocks (paragraphs, tables,
figures, ...) and rendered twice: to HTML (figures embedded as base64 PNG data URIs, inline CSS,
no external resources) and to Markdown (figures referenced in ``figures/``). Every section
works from what the run folder holds: binary-task runs have no grade section, evaluation-only
folders have no training log or config; missing parts become a short note.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import re
import shlex
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from drgrader.grading import GRADE_NAMES
from drgrader.config import ExperimentConfig, PreprocessConfig, config_to_dict, load_config
from drgrader.evaluation import plots
from drgrader.evaluation.metrics import (
    IDX_DR_SENSITIVITY,
    IDX_DR_SPECIFICITY,
    SCREENS,
    roc_curve_points,
)
from drgrader.io import atomic_write_bytes, atomic_write_text

log = logging.getLogger("drgrader")

SCREEN_LABELS = {"any_dr": "Any DR (grade ≥ 1)", "referable": "Referable DR (grade ≥ 2, moderate or worse)"}
SCREEN_SHORT = {"any_dr": "any-DR", "referable": "referable"}
SCREEN_TITLE = {"any_dr": "Any-DR", "referable": "Referable"}
POINT_LABELS = {
    "chosen": "chosen threshold (fitted on validation)",
    "youden": "Youden point (max sensitivity + specificity)",
    "high_sensitivity": "high-sensitivity point (≥ 90%)",
    "high_specificity": "high-specificity point (≥ 90%)",
}
# Headline keys (metrics.evaluate_table "headline" and evaluate.headline) -> (label, percent?).
HEADLINE_LABELS = {
    "kappa": ("quadratic weighted kappa", False),
    "grade_accuracy": ("exact-grade accuracy", True),
    "accuracy": ("exact-grade accuracy", True),
    "any_dr_auc": ("any-DR AUC", False),
    "any_dr_sensitivity": ("any-DR sensitivity", True),
    "any_dr_specificity": ("any-DR specificity", True),
    "any_dr_accuracy": ("any-DR accuracy", True),
    "referable_auc": ("referable AUC", False),
    "referable_sensitivity": ("referable sensitivity", True),
    "referable_specificity": ("referable specificity", True),
    "referable_accuracy": ("referable accuracy", True),
    "any_dr_sensitivity_from_grades": ("any-DR sensitivity from predicted grades", True),
    "any_dr_specificity_from_grades": ("any-DR specificity from predicted grades", True),
    "referable_sensitivity_from_grades": ("referable sensitivity from predicted grades", True),
    "referable_specificity_from_grades": ("referable specificity from predicted grades", True),
}
GALLERY_SIZE = 8
THUMBNAIL_PX = 224
IDX_BAR_TEXT = f"IDx-DR bar: sensitivity > {IDX_DR_SENSITIVITY:.0%}, specificity > {IDX_DR_SPECIFICITY:.1%}"


# =========================================================================== blocks
@dataclass
class Para:
    """A paragraph; ``**text**`` is bold, ```text``` is code."""

    text: str


@dataclass
class Note:
    """A remark in grey, e.g. why a section is left out."""

    text: str


@dataclass
class Alert:
    """A coloured box: level is ``warning``, ``ok`` or ``info``."""

    level: str
    title: str
    items: list[str] = field(default_factory=list)


@dataclass
class Table:
    """Cells are strings or (text, css class) with class ``bad`` / ``good``. ``align`` has
    one letter per column (l/r)."""

    header: list[str]
    rows: list[list]
    align: str = ""
    caption: str = ""


@dataclass
class Fig:
    """A figure stored as ``figures/<name>``."""

    name: str
    alt: str
    caption: str = ""


@dataclass
class Gallery:
    """Thumbnails (``figures/<name>``) with captions (lines of text)."""

    items: list[tuple[str, list[str]]]


@dataclass
class Code:
    """Preformatted text, collapsible when ``summary`` is given."""

    text: str
    summary: str = ""
    language: str = ""


@dataclass
class Section:
    id: str
    title: str
    blocks: list


# ======================================================================= formatting
def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt_num(x, digits: int = 3) -> str:
    return "n/a" if _missing(x) else f"{x:.{digits}f}"


def fmt_pct(x, digits: int = 1) -> str:
    return "n/a" if _missing(x) else f"{100 * x:.{digits}f}%"


def fmt_ci(ci, percent: bool = False) -> str:
    """``[lo, hi]`` as ``0.612–0.744`` (or percentages); an en dash alone when absent."""
    if not ci or any(_missing(v) for v in ci):
        return "–"
    if percent:
        return f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}%"
    return f"{ci[0]:.3f}–{ci[1]:.3f}"


def _fmt(x, percent: bool) -> str:
    return fmt_pct(x) if percent else fmt_num(x)


def _threshold_text(x) -> str:
    return "n/a" if _missing(x) else f"{x:.3g}"


def _below_bar(value, bar: float):
    """A table cell flagged ``bad`` (with a text mark, not colour alone) when value <= bar."""
    if _missing(value):
        return "n/a"
    if value <= bar:
        return (f"{fmt_pct(value)} ✗", "bad")
    return (f"{fmt_pct(value)} ✓", "good")


def _date(created: str | None) -> str:
    if not created:
        return "unknown date"
    try:
        return datetime.fromisoformat(created).strftime("%Y-%m-%d %H:%M %Z").strip()
    except ValueError:
        return created


# =========================================================================== inputs
@dataclass
class RunData:
    """Everything the report reads from a run folder."""

    run_dir: Path
    metrics: dict
    config: ExperimentConfig | None
    config_text: str | None
    predictions: pd.DataFrame | None
    training_log: pd.DataFrame | None

    @property
    def test(self) -> dict:
        return self.metrics.get("test") or {}

    def screens(self) -> list[str]:
        """Screening sections present in the test metrics, referable first."""
        return [name for name in ("referable", "any_dr") if name in self.test]


def _read_csv(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path, dtype={"image_id": str, "patient_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        log.warning("report: cannot read %s: %s", path, exc)
        return None


def load_run(run_dir: Path, config: ExperimentConfig | None = None) -> RunData:
    """Read metrics.json (required), predictions_test.csv, logs/metrics.csv and config.yaml."""
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{run_dir} has no metrics.json: train or evaluate a model first")
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{metrics_path} is not valid JSON: {exc}") from None
    config_text = None
    config_path = run_dir / "config.yaml"
    if config is not None:
        config_text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    elif config_path.is_file():
        config_text = config_path.read_text(encoding="utf-8")
        try:
            config = load_config(config_path)
        except ValueError as exc:  # ConfigError: shown as text, thumbnails use defaults
            log.warning("report: %s", exc)
    return RunData(
        run_dir=run_dir,
        metrics=metrics,
        config=config,
        config_text=config_text,
        predictions=_read_csv(run_dir / "predictions_test.csv"),
        training_log=_read_csv(run_dir / "logs" / "metrics.csv"),
    )


def _evaluated_on(run: RunData) -> tuple[str, str]:
    """(short name, sentence) of what the figures were measured on."""
    where = run.metrics.get("evaluated_on") or "test"
    if where == "test":
        return "test split", (
            "the held-out test split: patients whose eyes were not used for training, for "
            "choosing the checkpoint or for fitting the decision thresholds"
        )
    if where == "val":
        return "validation split", (
            "the validation split, because the run had no test split. The same patients chose "
            "the checkpoint and fitted the thresholds, so these figures are optimistic"
        )
    if where.startswith("out-of-fold"):
        return "out-of-fold predictions", (
            f"{where}: every labelled eye, each predicted by the fold model that never saw its patient. "
            "The decision thresholds were fitted on these same predictions, so they flatter them a little"
        )
    if where.startswith("external:"):
        path = where.split(":", 1)[1]
        return f"external data set {path}", (
            f"an external data set ({path}) that the model never saw, with the decision "
            "thresholds fitted beforehand on the model's own validation split"
        )
    return where, where


def _data_root(run: RunData) -> Path | None:
    where = run.metrics.get("evaluated_on") or ""
    if where.startswith("external:"):
        return Path(where.split(":", 1)[1])
    if run.config is not None and run.config.data.root is not None:
        return Path(run.config.data.root)
    return None


def _is_synthetic(run: RunData) -> bool:
    from drgrader.synth import MARKER_NAME

    root = _data_root(run)
    return root is not None and (root / MARKER_NAME).is_file()


# ======================================================================== sections
def _main_screen(run: RunData) -> tuple[str, dict] | None:
    """(screen name, figures with tp/fn/...) the summary paragraph speaks about: referable at
    the chosen threshold, else any DR, else the predicted grades' screening figures."""
    for name in run.screens():
        chosen = run.test[name].get("operating_points", {}).get("chosen")
        if chosen is not None:
            return name, {**chosen, "ci": run.test[name].get("ci") or {}}
    grade = run.test.get("grade") or {}
    for name in ("referable", "any_dr"):
        figures = (grade.get("screening_from_grades") or {}).get(name)
        if figures is not None:
            return name, {**figures, "ci": {}, "from_grades": True}
    return None


def summary_section(run: RunData) -> Section:
    """Warnings box and the plain-language paragraphs."""
    test = run.test
    blocks: list = []
    warnings = list(test.get("warnings") or [])
    if warnings:
        blocks.append(Alert("warning", f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}: "
                            "read these before any other figure", warnings))
    else:
        blocks.append(Alert("ok", "No automatic warnings",
                            [f"No sensitivity or specificity at or below the {IDX_BAR_TEXT}, and no accuracy "
                             "within 5 points of what a constant answer would get. This says nothing about "
                             "data the model has not seen (see the limits below)."]))

    _, where = _evaluated_on(run)
    n_images, n_patients = test.get("n_images"), test.get("n_patients")
    text = f"These figures were measured on {where}: {n_images} eyes (images) of {n_patients} patients."
    main = _main_screen(run)
    if main is not None:
        name, f = main
        pos, neg = f["tp"] + f["fn"], f["tn"] + f["fp"]
        what = "referable DR (moderate or worse, grade ≥ 2)" if name == "referable" else "any DR (grade ≥ 1)"
        how = "by its predicted grade" if f.get("from_grades") else "at the chosen threshold"
        sens_ci = fmt_ci(f["ci"].get("sensitivity"), percent=True)
        spec_ci = fmt_ci(f["ci"].get("specificity"), percent=True)
        sens_part = f"sensitivity {fmt_pct(f['sensitivity'])}" + (f", 95% CI {sens_ci}" if sens_ci != "–" else "")
        spec_part = f"specificity {fmt_pct(f['specificity'])}" + (f", 95% CI {spec_ci}" if spec_ci != "–" else "")
        text += (
            f" Of **{pos} eyes with {what}**, the grader {how} flagged **{f['tp']}** ({sens_part}) "
            f"and **missed {f['fn']}**. Of {neg} eyes without it, it correctly cleared {f['tn']} "
            f"({spec_part}); "
            + (f"the other {f['fp']} would be referred unnecessarily." if f["fp"] else "none would be referred unnecessarily.")
        )
        if not f.get("from_grades"):
            section = test[name]
            text += (f" Its accuracy for this decision, {fmt_pct(f['accuracy'])}, should be read against the "
                     f"{fmt_pct(section['accuracy_baseline'])} that calling every eye {_constant_answer(section)} "
                     "would get.")
    grade = test.get("grade")
    if grade:
        ci = (grade.get("ci") or {}).get("kappa")
        text += (
            f" On the five-grade scale, agreement with the reference grades is a quadratic weighted "
            f"kappa of **{fmt_num(grade['kappa'])}**"
            + (f" (95% CI {fmt_ci(ci)})" if fmt_ci(ci) != "–" else "")
            + "; 1 is perfect agreement, 0 is chance. Kappa, not accuracy, is the measure for "
            f"ordered grades: it counts a grade-4 eye called 0 as worse than one called 3. Exact-grade "
            f"accuracy is {fmt_pct(grade['accuracy'])}, while always answering the most common grade "
            f"would score {fmt_pct(grade['accuracy_baseline'])}."
        )
    blocks.append(Para(text))

    limits = []
    boot = test.get("bootstrap") or {}
    if boot.get("n"):
        limits.append(
            f"The 95% confidence intervals come from {boot['n']} bootstrap resamples of patients (both eyes "
            "of a patient stay together). They cover the chance of which patients ended up in this "
            "set, not differences between clinics, cameras or populations."
        )
    else:
        limits.append("No confidence intervals were computed (bootstrap off), so the figures' uncertainty is unknown.")
    if _is_synthetic(run):
        limits.append(
            "**The images are synthetic** (made by drgrader synth). The figures show that the software works "
            "end to end; they say nothing about how the grader would do on real patients."
        )
    if main is not None:
        name, f = main
        pos = f["tp"] + f["fn"]
        ci = f["ci"].get("sensitivity")
        width = None if not ci or any(_missing(v) for v in ci) else ci[1] - ci[0]
        if pos < 100 or (width is not None and width > 0.15):
            limits.append(
                f"The set is small: only {pos} {SCREEN_SHORT[name]} eyes"
                + (f": the 95% CI of sensitivity spans {100 * width:.0f} percentage points" if width else "")
                + "."
            )
    sources = (run.metrics.get("data", {}).get("summary") or {}).get("sources") or {}
    external = (run.metrics.get("evaluated_on") or "").startswith("external:")
    if len(sources) == 1 and not external:
        limits.append(
            f"All images come from a single source ({next(iter(sources))}). Performance on other cameras "
            "and populations is unknown until the model is evaluated on them "
            "(`drgrader evaluate RUN --data OTHER_DATA_SET`)."
        )
    if run.metrics.get("evaluated_on") == "val":
        limits.append("There was no test split: the validation patients also chose the checkpoint and thresholds.")
    if any(name in test for name in SCREENS):
        limits.append(
            "Only the chosen thresholds were fixed before looking at these eyes; the Youden, high-sensitivity "
            "and high-specificity points below were read off this same set's ROC curve and are optimistic."
        )
    blocks.append(Para("**Limits.** " + " ".join(limits)))
    return Section("summary", "Summary", blocks)


def headline_section(run: RunData) -> Section:
    """Headline table with 95% CIs and the IDx-DR verdict."""
    test = run.test
    rows: list[list] = []
    grade = test.get("grade")
    if grade:
        ci = grade.get("ci") or {}
        rows.append(["Quadratic weighted kappa (5 grades)", fmt_num(grade["kappa"]), fmt_ci(ci.get("kappa")),
                     "1 = perfect agreement, 0 = chance"])
        accuracy = grade["accuracy"]
        cell = (fmt_pct(accuracy) + " ✗", "bad") if accuracy - grade["accuracy_baseline"] < 0.05 else fmt_pct(accuracy)
        rows.append(["Exact-grade accuracy", cell, fmt_ci(ci.get("accuracy"), percent=True),
                     f"always answering the most common grade scores {fmt_pct(grade['accuracy_baseline'])}"])
    for name in ("referable", "any_dr"):
        section = test.get(name)
        if not section:
            continue
        short = SCREEN_TITLE[name]
        ci = section.get("ci") or {}
        rows.append([f"{short} AUC", fmt_num(section["auc"]), fmt_ci(ci.get("auc")),
                     f"0.5 = chance, 1 = perfect ranking; prevalence {fmt_pct(section['prevalence'])}"])
        points = section.get("operating_points") or {}
        chosen = points.get("chosen")
        if chosen is not None:
            thr = _threshold_text(chosen["threshold"])
            rows.append([f"{short} sensitivity at chosen threshold {thr}",
                         _below_bar(chosen["sensitivity"], IDX_DR_SENSITIVITY),
                         fmt_ci(ci.get("sensitivity"), percent=True),
                         f"IDx-DR bar > {IDX_DR_SENSITIVITY:.0%}; missed {chosen['fn']} of {chosen['tp'] + chosen['fn']}"])
            rows.append([f"{short} specificity at chosen threshold {thr}",
                         _below_bar(chosen["specificity"], IDX_DR_SPECIFICITY),
                         fmt_ci(ci.get("specificity"), percent=True),
                         f"IDx-DR bar > {IDX_DR_SPECIFICITY:.1%}; {chosen['fp']} of {chosen['tn'] + chosen['fp']} "
                         "healthy eyes flagged"])
            accuracy, baseline = chosen["accuracy"], section["accuracy_baseline"]
            cell = (fmt_pct(accuracy) + " ✗", "bad") if accuracy - baseline < 0.05 else fmt_pct(accuracy)
            rows.append([f"{short} accuracy at chosen threshold {thr}", cell, "",
                         f"calling every eye {_constant_answer(section)} scores {fmt_pct(baseline)}"])
            met = section.get("idx_dr_bar")
            rows.append([f"{short}: meets the IDx-DR bar at the chosen threshold?",
                         ("YES ✓", "good") if met else ("NO ✗", "bad"), "",
                         "both sensitivity > 85% and specificity > 82.5%"])
        else:
            rows.append([f"{short} sensitivity / specificity", "n/a", "",
                         "no threshold was fitted on validation"])
        for key in ("high_sensitivity", "high_specificity"):
            point = points.get(key)
            if point is None or _missing(point.get("sensitivity")):
                continue
            rows.append([f"{short} at the {POINT_LABELS[key]}",
                         f"sens {fmt_pct(point['sensitivity'])} · spec {fmt_pct(point['specificity'])}", "",
                         f"threshold {_threshold_text(point['threshold'])}, read off this set's ROC (optimistic)"])
    if not rows:
        return Section("headline", "Headline figures", [Note("The metrics hold no graded or screening results.")])
    return Section("headline", "Headline figures", [
        Table(["Measure", "Value", "95% CI", "Reference / meaning"], rows, align="lrrl",
              caption=f"✓/✗ compare with the {IDX_BAR_TEXT} (Abràmoff et al. 2018); "
                      "✗ on accuracy: within 5 points of a constant answer."),
    ])


def _constant_answer(section: dict) -> str:
    return "healthy" if section["prevalence"] <= 0.5 else "diseased"


def _compared_keys(headline: dict) -> list[str]:
    """The headline figures worth comparing between two evaluations, most important first;
    decisions from predicted grades only when no screening threshold was fitted."""
    keys = ["kappa", "grade_accuracy"]
    for name in ("referable", "any_dr"):
        keys.append(f"{name}_auc")
        if f"{name}_sensitivity" in headline:
            keys += [f"{name}_sensitivity", f"{name}_specificity"]
        else:
            keys += [f"{name}_sensitivity_from_grades", f"{name}_specificity_from_grades"]
    return [k for k in keys if k in headline]


def _headline_rows(columns: dict[str, dict]) -> list[list]:
    """Rows of headline figures, one column per evaluation (keys of the first one)."""
    rows = []
    for key in _compared_keys(next(iter(columns.values()))):
        label, percent = HEADLINE_LABELS[key]
        rows.append([label] + [_fmt(col.get(key), percent) for col in columns.values()])
    return rows


def _comparison_table(headline: dict, other: dict, columns: list[str]) -> Table:
    """Headline figures of this evaluation beside another of the same eyes, with the difference."""
    rows = []
    for key in _compared_keys(headline):
        label, percent = HEADLINE_LABELS[key]
        value, second = headline[key], other.get(key)
        diff = "n/a" if _missing(value) or _missing(second) else (
            f"{100 * (value - second):+.1f} points" if percent else f"{value - second:+.3f}")
        rows.append([label, _fmt(value, percent), _fmt(second, percent), diff])
    return Table(["Measure", *columns, "difference"], rows, align="lrrr")


def tta_section(run: RunData) -> Section | None:
    plain = run.metrics.get("test_no_tta")
    if not plain:
        return None
    views = ", ".join(run.metrics.get("tta_views") or [])
    return Section("tta", "Test-time augmentation", [
        Para(f"The scores above average {len(run.metrics.get('tta_views') or [])} views of each photo ({views}). "
             "The same eyes scored from the original photo only, with the same thresholds:"),
        _comparison_table(run.test.get("headline") or {}, plain.get("headline") or {}, ["with TTA", "without TTA"]),
    ])


def paired_eyes_section(run: RunData) -> Section | None:
    single = run.metrics.get("test_single_eye")
    if not single:
        return None
    measures = [("quadratic weighted kappa", "grade", "kappa"), ("referable AUC", "referable", "auc"),
                ("referable sensitivity", "referable", "sensitivity"), ("referable specificity", "referable", "specificity"),
                ("any-DR AUC", "any_dr", "auc")]

    def cell(result: dict, section: str, key: str) -> str:
        figures = result.get(section) or {}
        value = figures.get(key) if key in ("kappa", "auc") else (figures.get("operating_points") or {}).get("chosen", {}).get(key)
        return f"{fmt_num(value)} ({fmt_ci((figures.get('ci') or {}).get(key))})"

    rows = [[label, cell(run.test, section, key), cell(single, section, key)] for label, section, key in measures]
    return Section("paired-eyes", "Paired eyes", [
        Para("Above, each eye is graded from its own photo and its fellow eye's (the paired-eye stage, fitted on "
             "out-of-fold predictions); an eye without a gradable fellow gets the single-eye fallback. The same "
             "eyes graded from their own photo alone, with the single-eye thresholds (95% CIs over patients):"),
        Table(["Measure", "paired eyes", "single eye"], rows, align="lrr"),
    ])


def folds_section(run: RunData) -> Section | None:
    per_fold = run.metrics.get("per_fold")
    if not per_fold:
        return None
    keys = [("kappa", "kappa"), ("referable_auc", "referable AUC"), ("any_dr_auc", "any-DR AUC")]
    training = run.metrics.get("fold_training") or {}
    rows = [[fold, *[fmt_num(figures.get(k)) for k, _ in keys], _duration((training.get(fold) or {}).get("wall_time_s"))]
            for fold, figures in per_fold["folds"].items()]
    summary = per_fold.get("summary") or {}
    rows.append(["mean ± sd", *[f"{fmt_num(summary[k]['mean'])} ± {fmt_num(summary[k]['sd'])}" if k in summary else "n/a"
                                 for k, _ in keys], ""])
    return Section("folds", "Cross-validation folds", [
        Para("Every eye above was predicted by the fold model that never saw its patient. Each fold's own "
             "patients, with the pooled thresholds (the spread is what one validation split would have shown):"),
        Table(["Fold", *[label for _, label in keys], "training"], rows, align="lrrrr"),
    ])


def training_section(run: RunData, figures: dict[str, bytes]) -> Section:
    training = run.metrics.get("training")
    if run.training_log is None and training is None:
        return Section("training", "Training", [Note(
            "Evaluation-only folder: no training log. See the model's own run folder for its training.")])
    blocks: list = []
    if training:
        best = training.get("best_epoch")
        blocks.append(Para(
            f"Trained for {training.get('epochs_run')} epochs in {_duration(training.get('wall_time_s'))}; "
            f"the checkpoint with the best validation metric ({fmt_num(training.get('best_val_metric'))}) "
            f"from epoch {best} was kept. Initial weights: {training.get('weights') or 'random'}."
        ))
    if run.training_log is not None:
        epochs = plots.epoch_table(run.training_log)
        fig = plots.learning_curves_figure(epochs, (training or {}).get("best_epoch"))
        if fig is not None:
            figures["learning_curves.png"] = plots.figure_png(fig)
            blocks.append(Fig("learning_curves.png", "Learning curves",
                              "Loss on training and validation data, the validation metric that picks the "
                              "checkpoint, and the learning rate, per epoch (dashed line: kept checkpoint). "
                              "Validation loss rising while training loss falls means over-fitting."))
        else:
            blocks.append(Note("The training log has no loss or metric columns to plot."))
    else:
        blocks.append(Note("No training log (logs/metrics.csv) in this folder."))
    return Section("training", "Training", blocks)


def _duration(seconds) -> str:
    if _missing(seconds):
        return "an unknown time"
    minutes = seconds / 60
    return f"{seconds:.0f} s" if minutes < 1 else f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def confusion_section(run: RunData, figures: dict[str, bytes]) -> Section:
    grade = run.test.get("grade")
    if grade:
        figures["confusion.png"] = plots.figure_png(plots.confusion_figure(grade["confusion"], GRADE_NAMES))
        return Section("confusion", "Confusion matrix", [Fig(
            "confusion.png", "Confusion matrix of grades",
            "Rows: reference grade; columns: predicted grade. Each cell shows the number of eyes and the "
            "share of that row; the diagonal (bold) is correct. Errors far from the diagonal matter most.")])
    blocks: list = [Note("No grade predictions (binary screening model): the five-grade confusion matrix is "
                         "left out; below is the 2 × 2 table at the chosen threshold.")]
    for name in run.screens():
        chosen = run.test[name].get("operating_points", {}).get("chosen")
        if chosen is None:
            continue
        file = f"confusion_{name}.png"
        labels = ["no", "yes"]
        counts = [[chosen["tn"], chosen["fp"]], [chosen["fn"], chosen["tp"]]]
        figures[file] = plots.figure_png(plots.confusion_figure(
            counts, labels, xlabel=f"predicted {SCREEN_SHORT[name]}", ylabel=f"true {SCREEN_SHORT[name]}",
            colour_label="share of the true class's eyes"))
        blocks.append(Fig(file, f"{SCREEN_LABELS[name]} confusion", f"{SCREEN_LABELS[name]} at the chosen threshold."))
    return Section("confusion", "Confusion matrix", blocks)


def _operating_table(section: dict) -> Table:
    rows = []
    for key, point in (section.get("operating_points") or {}).items():
        if _missing(point.get("sensitivity")):
            continue
        rows.append([POINT_LABELS.get(key, key), _threshold_text(point["threshold"]),
                     _below_bar(point["sensitivity"], IDX_DR_SENSITIVITY),
                     _below_bar(point["specificity"], IDX_DR_SPECIFICITY),
                     fmt_pct(point["ppv"]), fmt_pct(point["npv"]),
                     str(point["tp"]), str(point["fn"]), str(point["fp"]), str(point["tn"])])
    return Table(["Operating point", "threshold", "sensitivity", "specificity", "PPV", "NPV",
                  "found (TP)", "missed (FN)", "false alarms (FP)", "cleared (TN)"], rows, align="lrrrrrrrrr")


def roc_section(run: RunData, figures: dict[str, bytes]) -> Section:
    screens = run.screens()
    if not screens:
        return Section("roc", "ROC curves and operating points", [Note("No screening scores in these metrics.")])
    blocks: list = []
    curves = {}
    pred = run.predictions
    for name in ("any_dr", "referable"):
        if name not in screens:
            continue
        column, min_grade = SCREENS[name]
        if pred is None or column not in pred or "grade" not in pred:
            continue
        scores = pd.to_numeric(pred[column], errors="coerce")
        keep = scores.notna().to_numpy()
        curve = roc_curve_points(pred["grade"].to_numpy()[keep] >= min_grade, scores.to_numpy()[keep])
        if curve.empty:
            continue
        curves[SCREEN_LABELS[name]] = {
            "fpr": curve["fpr"].to_numpy(), "tpr": curve["tpr"].to_numpy(), "auc": _nan(run.test[name]["auc"]),
            "colour": plots.SCREEN_COLOURS[name], "points": run.test[name].get("operating_points") or {},
        }
    if curves:
        figures["roc.png"] = plots.figure_png(plots.roc_figure(curves))
        blocks.append(Fig("roc.png", "ROC curves",
                          "Each curve shows every trade-off between finding diseased eyes (up) and flagging "
                          "healthy ones (right). Marked: the threshold fixed on validation and three points "
                          "read off this curve (optimistic for these eyes)."))
    else:
        blocks.append(Note("ROC curves need predictions_test.csv with both diseased and healthy eyes; not available."))
    for name in screens:
        blocks.append(Para(f"**{SCREEN_LABELS[name]}**: AUC {fmt_num(run.test[name]['auc'])} "
                           f"(95% CI {fmt_ci((run.test[name].get('ci') or {}).get('auc'))}), "
                           f"{run.test[name]['n']} eyes, prevalence {fmt_pct(run.test[name]['prevalence'])}."))
        blocks.append(_operating_table(run.test[name]))
    return Section("roc", "ROC curves and operating points", blocks)


def _nan(x) -> float:
    return math.nan if x is None else float(x)


def calibration_section(run: RunData, figures: dict[str, bytes]) -> Section:
    series = {}
    for name in ("any_dr", "referable"):
        section = run.test.get(name) or {}
        if section.get("reliability"):
            series[SCREEN_SHORT[name]] = {"bins": section["reliability"], "ece": _nan(section.get("ece")),
                                          "colour": plots.SCREEN_COLOURS[name]}
    if not series:
        return Section("calibration", "Calibration", [Note(
            "No probability scores between 0 and 1 (e.g. a regression model): no reliability diagram.")])
    figures["reliability.png"] = plots.figure_png(plots.reliability_figure(series))
    ece = ", ".join(f"{label} {fmt_num(s['ece'])}" for label, s in series.items())
    return Section("calibration", "Calibration", [
        Fig("reliability.png", "Reliability diagram",
            "When the model says 30%, about 30% of those eyes should be diseased: points on the dotted diagonal. "
            "Points below it mean over-confident disease scores, above it under-confident. Bars: eyes per bin."),
        Para(f"Expected calibration error (mean gap between predicted and observed, weighted by eyes): {ece}. "
             "Calibration matters when the score itself is shown to a clinician; the yes/no decisions depend "
             "only on the ranking and the threshold."),
    ])


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
        srows = [[SCREEN_LABELS[name], _below_bar(f["sensitivity"], IDX_DR_SENSITIVITY),
                  _below_bar(f["specificity"], IDX_DR_SPECIFICITY), str(f["fn"]), str(f["fp"])]
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
                     _below_bar(p["sensitivity"], IDX_DR_SENSITIVITY) if has_threshold else "n/a",
                     _below_bar(p["specificity"], IDX_DR_SPECIFICITY) if has_threshold else "n/a",
                     str(p.get("fn", "n/a")), str(p.get("fp", "n/a"))])
    return Section("patients", "Patient level (worse eye)", [
        Para("A screening programme refers people, not eyes: here a patient counts as diseased when either eye "
             "is, and is referred when either eye is flagged."),
        Table(["Screen", "patients", "prevalence", "AUC", "sensitivity", "specificity", "missed patients",
               "unneeded referrals"], rows, align="lrrrrrrr"),
    ])


def gradability_section(run: RunData) -> Section:
    g = run.test.get("gradability")
    if not g:
        return Section("gradability", "Gradability", [Note("The predictions carry no gradability flags.")])
    blocks: list = [Para(
        f"The image-quality check flagged {g['n_ungradable']} of {run.test.get('n_images')} eyes "
        f"({fmt_pct(g['share_ungradable'])}) as ungradable (blurred, dark or no visible fundus). They are "
        "included in every figure above.")]
    if g.get("gradable_only"):
        rows = _headline_rows({"all eyes": run.test.get("headline") or {}, "gradable eyes only": g["gradable_only"]})
        blocks.append(Table(["Measure", "all eyes", "gradable eyes only"], rows, align="lrr"))
    else:
        blocks.append(Note("No figures without them: every eye is gradable (or none is)."))
    return Section("gradability", "Gradability", blocks)


# -------------------------------------------------------------------------- gallery
def _floats(pred: pd.DataFrame, column: str) -> np.ndarray:
    """A predictions column as floats; all NaN when the column is absent."""
    if column not in pred:
        return np.full(len(pred), np.nan)
    return pd.to_numeric(pred[column], errors="coerce").to_numpy(dtype=float)


def select_errors(pred: pd.DataFrame, thresholds: dict | None = None, n: int = GALLERY_SIZE) -> pd.DataFrame:
    """The ``n`` most confident errors, worst first, with a ``severity`` column.

    Grade models: eyes whose predicted grade is wrong, by |expected grade - true grade| (else
    |predicted - true|). Binary models: wrong screening decisions, by the distance of the
    score from the threshold (referable when the model has that score, else any DR).
    """
    thresholds = thresholds or {}
    grade, predicted = _floats(pred, "grade"), _floats(pred, "pred_grade")
    if not np.isnan(predicted).all():
        expected = _floats(pred, "expected_grade")
        severity = np.where(np.isnan(expected), np.abs(predicted - grade), np.abs(expected - grade))
        wrong = ~np.isnan(predicted) & (predicted != grade)
    else:
        for name in ("referable", "any_dr"):
            column, min_grade = SCREENS[name]
            score, decision = _floats(pred, column), _floats(pred, f"{name}_pred")
            if np.isnan(score).all():
                continue
            threshold = 0.5 if thresholds.get(name) is None else thresholds[name]
            wrong = ~np.isnan(decision) & ((decision >= 0.5) != (grade >= min_grade))
            severity = np.abs(score - threshold)
            break
        else:
            return pred.iloc[:0].assign(severity=pd.Series(dtype=float))
    out = pred.assign(severity=severity)[wrong]
    return out.sort_values("severity", ascending=False, kind="stable").head(n)


def _error_caption(row: pd.Series) -> list[str]:
    """Lines under a gallery thumbnail: id, true and predicted grade, scores, what went wrong."""
    true = int(row["grade"])
    lines = [str(row.get("image_id", ""))]
    predicted = row.get("pred_grade", np.nan)
    lines.append(f"true: {GRADE_NAMES[true]}"
                 + ("" if pd.isna(predicted) else f" · predicted: {GRADE_NAMES[int(predicted)]}"))
    scores = []
    expected = row.get("expected_grade", np.nan)
    if not pd.isna(expected):
        scores.append(f"expected grade {expected:.2f}")
    for name, (column, _) in SCREENS.items():
        score = row.get(column, np.nan)
        if not pd.isna(score) and score != expected:  # regression models score with the expected grade
            scores.append(f"{SCREEN_SHORT[name]} score {score:.2f}")
    if scores:
        lines.append(", ".join(scores))
    referable = row.get("referable_pred", np.nan)
    any_dr = row.get("any_dr_pred", np.nan)
    if not pd.isna(referable):
        if true >= 2 and not referable:
            lines.append("MISSED referable DR")
        elif true < 2 and referable:
            lines.append("false alarm: referred without referable DR")
    elif not pd.isna(any_dr):
        if true >= 1 and not any_dr:
            lines.append("MISSED DR")
        elif true < 1 and any_dr:
            lines.append("false alarm: flagged without DR")
    return lines


def _load_explainer(run: RunData):
    """(bundle, explain_image) for Grad-CAM overlays, or None when unavailable."""
    from drgrader.inference.bundle import MANIFEST, load_bundle

    candidates = [run.run_dir / "bundle"]
    if run.metrics.get("model"):  # evaluation folders name the bundle they scored
        candidates.append(Path(run.metrics["model"]))
    bundle_dir = next((c for c in candidates if (c / MANIFEST).is_file()), None)
    if bundle_dir is None:
        return None
    try:  # only now: it imports PyTorch and pytorch-grad-cam (seconds)
        from drgrader.inference.explain import explain_image
    except ImportError as exc:
        log.info("report: no Grad-CAM (%s)", exc)
        return None
    try:
        return load_bundle(bundle_dir), explain_image
    except Exception as exc:  # a broken bundle must not stop the report: plain thumbnails instead
        log.warning("report: cannot load bundle %s for Grad-CAM: %s", bundle_dir, exc)
        return None


def _thumbnail(path: str, run: RunData, explainer) -> tuple[np.ndarray | None, bool]:
    """(picture, has Grad-CAM): the preprocessed photo, next to its Grad-CAM overlay when a
    bundle is available. None when the photo cannot be read."""
    from drgrader.data.images import read_image

    try:
        rgb = read_image(path, min_side=2 * THUMBNAIL_PX)
    except (ValueError, OSError) as exc:
        log.warning("report: gallery: %s", exc)
        return None, False
    if explainer is not None:
        bundle, explain_image = explainer
        try:
            result = explain_image(bundle, rgb)
            cam = result.get("overlay_referable")
            cam = result.get("overlay_grade") if cam is None else cam
            if cam is not None:
                return plots.side_by_side([result["preprocessed"], cam], THUMBNAIL_PX), True
        except Exception as exc:  # Grad-CAM is a bonus; the thumbnail alone still helps
            log.warning("report: Grad-CAM failed for %s: %s", path, exc)
    try:
        from drgrader.data.preprocess import preprocess_image

        data = run.config.data if run.config is not None else None
        cfg = data.preprocess if data is not None else PreprocessConfig()
        return preprocess_image(rgb, cfg, THUMBNAIL_PX), False
    except Exception as exc:  # preprocessing failure: show the raw photo
        log.warning("report: preprocessing failed for %s: %s", path, exc)
        return plots.side_by_side([rgb], THUMBNAIL_PX), False


def gallery_section(run: RunData, figures: dict[str, bytes]) -> Section:
    title = "Most confident errors"
    pred = run.predictions
    if pred is None or "grade" not in pred:
        return Section("gallery", title, [Note("No predictions_test.csv: no error gallery.")])
    errors = select_errors(pred, run.metrics.get("thresholds"))
    if errors.empty:
        return Section("gallery", title, [Note("No wrong predictions on this set.")])
    explainer = _load_explainer(run)
    items, missing, with_cam = [], [], 0
    for i, (_, row) in enumerate(errors.iterrows(), start=1):
        picture, cam = _thumbnail(str(row.get("path", "")), run, explainer) if "path" in row else (None, False)
        if picture is None:
            missing.append(str(row.get("image_id")))
            continue
        with_cam += cam
        name = f"error_{i:02d}.png"
        figures[name] = plots.image_png(picture)
        items.append((name, _error_caption(row)))
    kind = "grade" if "pred_grade" in pred and pred["pred_grade"].notna().any() else "screening decision"
    blocks: list = [Para(
        f"The {len(errors)} eyes where the {kind} was wrong by the largest margin, worst first"
        + (" (left: the model's input; right: Grad-CAM, where the model looked for referable DR)" if with_cam else
           " (the model's input after preprocessing)")
        + ". Look for a pattern: image quality, a lesion type, a camera.")]
    if items:
        blocks.append(Gallery(items))
    if missing:
        blocks.append(Note(f"Photos not found or unreadable for {len(missing)} of them: {', '.join(missing)}."))
    return Section("gallery", title, blocks)


# ----------------------------------------------------------------------------- data
def data_section(run: RunData) -> Section:
    data = run.metrics.get("data") or {}
    summary = data.get("summary")
    if not summary:
        return Section("data", "Data", [Note("No data summary in metrics.json.")])
    splits = summary.get("splits") or {}
    header = ["Grade", "all"] + list(splits)
    rows = []
    for g in range(5):
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
        text += " The splits are by patient: no patient has eyes in two of them."
    skipped = {k: v for k, v in (data.get("skipped") or {}).items() if v}
    if skipped:
        text += " Left out: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in skipped.items()) + "."
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
    keys = [k for k in ("kappa", "accuracy", "any_dr_auc", "referable_auc", "referable_sensitivity",
                        "referable_specificity") if any(k in m for m in members.values())]
    head = run.test.get("headline") or {}
    ensemble = {"kappa": head.get("kappa"), "accuracy": head.get("grade_accuracy"),
                **{k: head.get(k) for k in keys if k not in ("kappa", "accuracy")}}
    rows = [["ensemble"] + [_fmt(ensemble.get(k), HEADLINE_LABELS[k][1]) for k in keys]]
    for name, m in members.items():
        cells = [name]
        for k in keys:
            value = m.get(k)
            v, ci = (value[0], value[1]) if isinstance(value, list) else (value, None)
            percent = HEADLINE_LABELS[k][1]
            cells.append(_fmt(v, percent) + (f" ({fmt_ci(ci, percent)})" if fmt_ci(ci) != "–" else ""))
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
    if run.metrics.get("training") is not None and (run.run_dir / "config.yaml").is_file():
        split = run.run_dir / "split.csv"
        extra = f" --set data.split.file={q(str(split))}" if split.is_file() else ""
        same_split = " and the same patients in each split" if split.is_file() else ""
        lines += [f"# train again with the same configuration{same_split}",
                  f"drgrader train {q(str(run.run_dir / 'config.yaml'))}{extra}",
                  "# re-score this run's held-out split", f"drgrader evaluate {q(run_dir)}"]
    elif run.metrics.get("model"):
        data = f" --data {q(where.split(':', 1)[1])}" if where.startswith("external:") else ""
        lines += ["# evaluate the same model on the same data", f"drgrader evaluate {q(run.metrics['model'])}{data} --out {q(run_dir)}"]
    lines += ["# rewrite this report", f"drgrader report {q(run_dir)}"]
    blocks: list = [Code("\n".join(lines), language="sh")]
    versions = run.metrics.get("versions") or {}
    if versions:
        blocks.append(Table(["Software", "version"], [[k, str(v)] for k, v in versions.items()], align="ll"))
    return Section("reproduce", "How to reproduce", blocks)


# ======================================================================== rendering
CSS = """
body { font-family: "Segoe UI", "Helvetica Neue", "DejaVu Sans", Arial, sans-serif; font-size: 16px;
       line-height: 1.5; color: #1b1b1b; max-width: 1120px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 22px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid #d0d7de; }
.meta { color: #444; margin: 0 0 12px; }
nav { font-size: 14px; color: #444; margin: 8px 0 16px; }
nav a { color: #0b5394; margin-right: 12px; white-space: nowrap; }
table { border-collapse: collapse; margin: 8px 0 6px; font-size: 15px; }
th, td { border: 1px solid #c8cdd2; padding: 5px 10px; vertical-align: top; }
th { background: #eef1f4; text-align: left; }
tr:nth-child(even) td { background: #f7f9fa; }
td.r { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.bad, tr:nth-child(even) td.bad { background: #fbe0cf; color: #7a2800; font-weight: 600; }
td.good, tr:nth-child(even) td.good { background: #dcefe7; color: #00513a; }
.caption { font-size: 14px; color: #555; margin: 0 0 14px; }
.alert { border-left: 8px solid; border-radius: 4px; padding: 10px 18px; margin: 14px 0; }
.alert h3 { margin: 0 0 6px; font-size: 18px; }
.alert ul { margin: 4px 0; padding-left: 22px; }
.alert.warning { border-color: #d55e00; background: #fff0e6; }
.alert.ok { border-color: #009e73; background: #e9f6f1; }
.alert.info { border-color: #0072b2; background: #e8f2f9; }
.note { color: #555; font-style: italic; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e6e9; }
figcaption { font-size: 14px; color: #444; margin-top: 4px; max-width: 900px; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 14px; }
.gallery figure { margin: 0; padding: 8px; border: 1px solid #d0d7de; border-radius: 4px; background: #fafbfc; }
.gallery figure.wide { grid-column: span 2; }
.gallery img { width: 100%; border: none; }
.gallery figcaption { font-size: 13px; line-height: 1.35; }
.gallery .alarm { color: #7a2800; font-weight: 700; }
pre { background: #f4f6f8; border: 1px solid #d8dde2; padding: 12px; overflow-x: auto; font-size: 13px; }
p code, li code { font-size: 14px; background: #f0f2f4; padding: 1px 4px; border-radius: 3px; white-space: nowrap; }
details summary { cursor: pointer; font-weight: 600; margin: 6px 0; }
@media print { nav { display: none; } details { display: block; } }
"""


def _inline(text: str) -> str:
    """Escaped HTML with ``**bold**`` and ```code``` spans."""
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def _cell_html(cell, align: str, header: bool = False) -> str:
    text, cls = (cell if isinstance(cell, tuple) else (cell, ""))
    classes = " ".join(c for c in (cls, "r" if align == "r" else "") if c)
    tag = "th" if header else "td"
    attribute = f' class="{classes}"' if classes else ""
    return f"<{tag}{attribute}>{_inline(str(text))}</{tag}>"


def _img_html(name: str, figures: dict[str, bytes], alt: str) -> str:
    data = base64.b64encode(figures[name]).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _block_html(block, figures: dict[str, bytes]) -> str:
    if isinstance(block, Para):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Note):
        return f'<p class="note">{_inline(block.text)}</p>'
    if isinstance(block, Alert):
        items = "".join(f"<li>{_inline(i)}</li>" for i in block.items)
        return f'<div class="alert {block.level}"><h3>{_inline(block.title)}</h3><ul>{items}</ul></div>'
    if isinstance(block, Table):
        align = block.align.ljust(len(block.header), "l")
        head = "".join(_cell_html(h, "l", header=True) for h in block.header)
        body = "".join("<tr>" + "".join(_cell_html(c, a) for c, a in zip(row, align)) + "</tr>" for row in block.rows)
        caption = f'<p class="caption">{_inline(block.caption)}</p>' if block.caption else ""
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{caption}"
    if isinstance(block, Fig):
        caption = f"<figcaption>{_inline(block.caption)}</figcaption>" if block.caption else ""
        return f"<figure>{_img_html(block.name, figures, block.alt)}{caption}</figure>"
    if isinstance(block, Gallery):
        items = []
        for name, lines in block.items:
            text = "<br>".join(
                f'<span class="alarm">{html.escape(line)}</span>' if line.startswith(("MISSED", "false alarm"))
                else html.escape(line) for line in lines)
            wide = ' class="wide"' if _png_width(figures[name]) > 1.5 * THUMBNAIL_PX else ""
            items.append(f"<figure{wide}>{_img_html(name, figures, lines[0])}<figcaption>{text}</figcaption></figure>")
        return f'<div class="gallery">{"".join(items)}</div>'
    if isinstance(block, Code):
        pre = f"<pre><code>{html.escape(block.text)}</code></pre>"
        return f"<details><summary>{html.escape(block.summary)}</summary>{pre}</details>" if block.summary else pre
    raise TypeError(f"unknown report block {type(block).__name__}")


def _png_width(data: bytes) -> int:
    return int.from_bytes(data[16:20], "big")  # IHDR width


def render_html(title: str, meta: str, sections: list[Section], figures: dict[str, bytes]) -> str:
    """The report as one self-contained HTML page."""
    nav = " ".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in sections)
    body = []
    for s in sections:
        body.append(f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>')
        body += [_block_html(b, figures) for b in s.blocks]
        body.append("</section>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class=\"meta\">{_inline(meta)}</p><nav>{nav}</nav>"
        + "\n".join(body) + "</body></html>\n"
    )


def _md_cell(cell) -> str:
    text = cell[0] if isinstance(cell, tuple) else cell
    return str(text).replace("|", "\\|").replace("\n", " ")


def _block_md(block) -> str:
    if isinstance(block, Para):
        return block.text
    if isinstance(block, Note):
        return f"_{block.text}_"
    if isinstance(block, Alert):
        mark = {"warning": "⚠ ", "ok": "✓ ", "info": ""}.get(block.level, "")
        return "\n".join([f"> **{mark}{block.title}**", ">"] + [f"> - {i}" for i in block.items])
    if isinstance(block, Table):
        align = block.align.ljust(len(block.header), "l")
        lines = ["| " + " | ".join(_md_cell(h) for h in block.header) + " |",
                 "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
        if block.caption:
            lines += ["", f"_{block.caption}_"]
        return "\n".join(lines)
    if isinstance(block, Fig):
        return f"![{block.alt}](figures/{block.name})" + (f"\n\n_{block.caption}_" if block.caption else "")
    if isinstance(block, Gallery):
        return "\n\n".join(f"![{lines[0]}](figures/{name})<br>" + "<br>".join(lines) for name, lines in block.items)
    if isinstance(block, Code):
        fence = f"```{block.language}\n{block.text.rstrip()}\n```"
        return f"<details><summary>{block.summary}</summary>\n\n{fence}\n\n</details>" if block.summary else fence
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_markdown(title: str, meta: str, sections: list[Section]) -> str:
    """The report as Markdown; figures are referenced in ``figures/``."""
    parts = [f"# {title}", meta]
    for s in sections:
        parts.append(f"## {s.title}")
        parts += [_block_md(b) for b in s.blocks]
    return "\n\n".join(parts) + "\n"


# ============================================================================= main
def build_sections(run: RunData, figures: dict[str, bytes]) -> list[Section]:
    """Every section in report order; a section that fails becomes a note (and a log
    warning) rather than losing the whole report at the end of a long run."""
    builders = [
        lambda: summary_section(run),
        lambda: headline_section(run),
        lambda: tta_section(run),
        lambda: paired_eyes_section(run),
        lambda: folds_section(run),
        lambda: training_section(run, figures),
        lambda: confusion_section(run, figures),
        lambda: roc_section(run, figures),
        lambda: calibration_section(run, figures),
        lambda: per_grade_section(run),
        lambda: patient_section(run),
        lambda: gradability_section(run),
        lambda: gallery_section(run, figures),
        lambda: data_section(run),
        lambda: members_section(run),
        lambda: config_section(run),
        lambda: reproduce_section(run),
    ]
    names = ["summary", "headline", "tta", "paired-eyes", "folds", "training", "confusion", "roc", "calibration", "per-grade",
             "patients", "gradability", "gallery", "data", "members", "config", "reproduce"]
    sections = []
    for name, build in zip(names, builders):
        try:
            section = build()
        except Exception as exc:  # noqa: BLE001 - see docstring
            log.exception("report: section %s failed", name)
            section = Section(name, name.capitalize(), [Note(f"This section could not be rendered: {exc!r}")])
        if section is not None:
            sections.append(section)
    return sections


def write_report(run_dir: Path, config: ExperimentConfig | None = None) -> Path:
    """Write ``report.html``, ``report.md`` and ``figures/*.png`` for a run or evaluation
    folder; returns the HTML path. ``config`` is used when the folder has no config.yaml
    (external evaluations); otherwise config.yaml is read."""
    run_dir = Path(run_dir)
    run = load_run(run_dir, config)
    figures: dict[str, bytes] = {}
    sections = build_sections(run, figures)

    figure_dir = run_dir / "figures"
    figure_dir.mkdir(parents=True, exist_ok=True)
    for stale in figure_dir.glob("error_*.png"):  # an earlier report's gallery may have had more
        stale.unlink()
    for name, data in figures.items():
        atomic_write_bytes(figure_dir / name, data)

    name = run.metrics.get("run") or run_dir.name
    title = f"DR grader report: {name}"
    evaluated, _ = _evaluated_on(run)
    task = "5-grade" if run.test.get("grade") else ", ".join(SCREEN_SHORT[s] for s in run.screens()) or "unknown"
    meta = (f"Created {_date(run.metrics.get('created'))} · evaluated on the **{evaluated}** · "
            f"model output: {task} · folder {run_dir}")
    atomic_write_text(run_dir / "report.md", render_markdown(title, meta, sections))
    html_path = run_dir / "report.html"
    atomic_write_text(html_path, render_html(title, meta, sections, figures))
    return html_path

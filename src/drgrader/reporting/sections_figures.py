"""The sections drawn as figures: learning curves, confusion matrix, ROC curves with their
operating points, and the reliability diagram. Each builder adds its PNG bytes to ``figures``
(name -> bytes) and refers to them by name in a :class:`Fig` block.
"""

from __future__ import annotations

import math

import pandas as pd

from drgrader.evaluation.metrics import IDX_DR_SENSITIVITY, IDX_DR_SPECIFICITY, roc_curve_points
from drgrader.grading import GRADE_NAMES, SCREENS
from drgrader.reporting import plots
from drgrader.reporting.document import (
    POINT_LABELS,
    SCREEN_LABELS,
    SCREEN_SHORT,
    Fig,
    Note,
    Para,
    Section,
    Table,
    below_bar,
    duration,
    fmt_ci,
    fmt_num,
    fmt_pct,
    missing,
    threshold_text,
)
from drgrader.reporting.run_data import RunData


def training_section(run: RunData, figures: dict[str, bytes]) -> Section:
    training = run.metrics.get("training")
    if run.metrics.get("fold_training"):
        return Section("training", "Training", [Note(
            f"{len(run.metrics['fold_training'])} fold models, each an ordinary run folder (fold-<i>/) with its own "
            "learning curves and report; their training times are in the folds table above.")])
    if run.training_log is None and training is None:
        return Section("training", "Training", [Note(
            "Evaluation-only folder: no training log. See the model's own run folder for its training.")])
    blocks: list = []
    if training:
        best = training.get("best_epoch")
        blocks.append(Para(
            f"Trained for {training.get('epochs_run')} epochs in {duration(training.get('wall_time_s'))}"
            + (f" (the epochs a time budget of {training['budget_minutes']} min held on this machine)"
               if training.get("budget_minutes") else "") + "; "
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
        if missing(point.get("sensitivity")):
            continue
        rows.append([POINT_LABELS.get(key, key), threshold_text(point["threshold"]),
                     below_bar(point["sensitivity"], IDX_DR_SENSITIVITY),
                     below_bar(point["specificity"], IDX_DR_SPECIFICITY),
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

"""The warnings an evaluation's figures carry into metrics.json, the report and the model card:
what to read before any figure (too few patients, ungradable photos, a label scale that is not
ICDR's, grades never reached, screening figures below the IDx-DR bar)."""

from __future__ import annotations

import math

from drgrader.evaluation.bootstrap import MIN_PATIENTS_FOR_CI, MIN_RESAMPLES_FOR_CI
from drgrader.evaluation.metrics import IDX_DR_SENSITIVITY, IDX_DR_SPECIFICITY
from drgrader.grading import GRADE_NAMES, SCREEN_NAMES, SCREENS


def _screen_warnings(label: str, figures: dict) -> list[str]:
    """Plain-language alarms for one set of screening figures (NaN figures raise none)."""
    notes = []
    sens, spec, acc = figures["sensitivity"], figures["specificity"], figures["accuracy"]
    if sens <= IDX_DR_SENSITIVITY:
        notes.append(
            f"{label}: sensitivity {sens:.3f} misses {1 - sens:.0%} of diseased eyes "
            f"(IDx-DR bar: > {IDX_DR_SENSITIVITY})"
        )
    if spec <= IDX_DR_SPECIFICITY:
        notes.append(f"{label}: specificity {spec:.3f} (IDx-DR bar: > {IDX_DR_SPECIFICITY})")
    n = figures["tp"] + figures["fp"] + figures["tn"] + figures["fn"]
    prevalence = (figures["tp"] + figures["fn"]) / n if n else math.nan
    baseline = max(prevalence, 1.0 - prevalence)
    if acc - baseline < 0.05:  # "within 0.05" of it only when not far below (probe 48 CL3)
        how = f"is within 0.05 of the {baseline:.3f}" if acc > baseline - 0.05 else f"is below the {baseline:.3f}"
        notes.append(f"{label}: accuracy {acc:.3f} {how} a constant answer gets")
    return notes


def _backwards_warning(name: str, figures: dict) -> str | None:
    """An AUC below 0.5 beyond chance (its CI wholly below; without CIs, under 0.4): the score ranks
    diseased eyes below healthy ones, as a label scale written backwards does (probe 48 CL4)."""
    auc = figures.get("auc")
    high = ((figures.get("ci") or {}).get("auc") or [None, None])[1]
    if auc is None or not auc < 0.5 or not (high < 0.5 if high is not None and not math.isnan(high) else auc < 0.4):
        return None
    return (f"{SCREEN_NAMES[name]}: AUC {auc:.3f} is below 0.5: the score ranks diseased eyes below healthy ones. A label "
            "scale written backwards (4 = healthy), or labels matched to the wrong photos?")


def ungradable_warning(result: dict) -> str | None:
    """Half the eyes or more ungradable by the grader's own photo check (red-free or greyscale
    photos, another modality): the figures describe photos it says it cannot grade (probe 39 CC11)."""
    g = result.get("gradability") or {}
    share = g.get("share_ungradable")
    if share is None or not share >= 0.5:  # NaN (no eyes) too
        return None
    return (f"{share:.0%} of the eyes ({g['n_ungradable']}) are ungradable by the grader's own photo check, and every "
            "figure counts them: see the report's gradability section (why they are) before reading them")


def grade_scale_warning(result: dict) -> str | None:
    """The true grades of many eyes all 0 or 1 (a yes/no label read as ICDR's none and mild), or
    none of them 0 (a scale from 1 read as 0-4): said by data summary and train on the console,
    and here in the report and model card, which outlive the console (probe 42 CF2)."""
    support = {int(g): row["support"] for g, row in (result.get("grade") or {}).get("per_grade", {}).items()}
    n = sum(support.values())
    if n < 20:
        return None
    if support.get(0) and support.get(1) and not any(support.get(g) for g in (2, 3, 4)):
        return (f"every true grade is 0 or 1 ({n} eyes, {support[1] / n:.0%} of them 1): a yes/no label (any DR, "
                "referable) read as the ICDR grades 0 and 1? If so, every grade and referable figure is wrong; if these "
                "are ICDR grades, no eye here is moderate or worse")
    if not support.get(0):
        return (f"no true grade 0 among {n} eyes: a grade scale that starts at 1 read as the ICDR grades 0-4, every eye "
                "a step too high? If these are ICDR grades (eyes chosen for disease), nothing is wrong")
    return None


def result_warnings(result: dict) -> list[str]:
    """The plain-language warnings of one evaluation (:func:`~drgrader.evaluation.results.evaluate_table`'s
    result): what to read before any figure."""
    notes = [w for w in (ungradable_warning(result), grade_scale_warning(result)) if w]
    if result["n_patients"] < MIN_PATIENTS_FOR_CI:  # probe 43 CG8
        notes.insert(0, f"only {result['n_patients']} patient(s): too few to resample, so no confidence intervals; these "
                        "figures describe these photos, not how the model does")
    elif 0 < (n_boot := (result.get("bootstrap") or {}).get("n") or 0) < MIN_RESAMPLES_FOR_CI:  # probe 58 CV3
        notes.insert(0, f"the 95% confidence intervals rest on only {n_boot} bootstrap resample(s) (eval.bootstrap): too "
                        f"few for a 95% interval, so they are not ones (they can have zero width or exclude their own "
                        f"figure); use at least {MIN_RESAMPLES_FOR_CI} (1000 is usual), or 0 to give none")
    if "grade" in result:
        for g in result["grade"]["unreachable_grades"]:
            n = result["grade"]["per_grade"][str(g)]["support"]
            notes.append(f"grade {GRADE_NAMES[g]} ({n} eyes) is never predicted correctly (recall 0)")
        for name, share in result["grade"]["agreement_with_screens"].items():
            if share < 1.0:
                notes.append(
                    f"{SCREEN_NAMES[name]}: the predicted grade and the screening threshold disagree "
                    f"on {1 - share:.0%} of eyes"
                )
        for name, figures in result["grade"]["screening_from_grades"].items():
            notes += _screen_warnings(f"{SCREEN_NAMES[name]} from the predicted grades", figures)
    for name in SCREENS:
        if backwards := _backwards_warning(name, result.get(name) or {}):
            notes.append(backwards)
        chosen = result.get(name, {}).get("operating_points", {}).get("chosen")
        if chosen is not None:
            notes += _screen_warnings(f"{SCREEN_NAMES[name]} at the chosen threshold", chosen)
    return notes

"""The sections that open the report and set its headline figures beside others of the same
eyes: the summary, the headline table, and the comparisons with test-time augmentation off,
with single-eye grading, per cross-validation fold and without the ungradable eyes.

Seed 001's screener looked fine at 77% accuracy while it missed 75% of diseased eyes. The
report therefore opens with the automatic warnings and a plain-language paragraph in counts of
eyes ("of 120 referable eyes the grader found 30"), puts sensitivity and specificity with their
confidence intervals next to the IDx-DR bar, and shows accuracy only beside what a constant
answer would score.
"""

from __future__ import annotations

from drgrader.evaluation.bootstrap import MIN_PATIENTS_FOR_CI
from drgrader.evaluation.metrics import IDX_DR_SENSITIVITY, IDX_DR_SPECIFICITY
from drgrader.grading import SCREENS
from drgrader.reporting.document import (
    HEADLINE_LABELS,
    POINT_LABELS,
    SCREEN_SHORT,
    Alert,
    Note,
    Para,
    Section,
    Table,
    below_bar,
    duration,
    fmt,
    fmt_ci,
    fmt_num,
    fmt_pct,
    fmt_spread,
    missing,
    threshold_text,
)
from drgrader.reporting.run_data import (
    RunData,
    evaluated_on,
    is_synthetic,
    labelled_left_out,
    left_out_text,
    reading_warnings,
    stage_fitted_on,
)

SCREEN_TITLE = {"any_dr": "Any-DR", "referable": "Referable"}
IDX_BAR_TEXT = f"IDx-DR bar: sensitivity > {IDX_DR_SENSITIVITY:.0%}, specificity > {IDX_DR_SPECIFICITY:.1%}"


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


def _data_warnings(run: RunData) -> list[str]:
    """What ``evaluate`` found wrong with the data it was given (metrics.json), as the log said it."""
    warnings = []
    changed = run.metrics.get("data_changed_since_training") or []
    if changed:
        warnings.append("The data set changed since the model was trained: " + "; ".join(map(str, changed))
                        + ". The figures use today's labels and photos; the training section the old ones.")
    copies = run.metrics.get("copies_across_patients") or []
    if copies:
        shown = " = ".join(f"'{i}'" for i in copies[0]["image_ids"])
        warnings.append(f"{len(copies)} picture(s) appear under more than one patient (e.g. {shown}, grades "
                        f"{', '.join(map(str, copies[0]['grades']))}): the figures count each once per patient, "
                        "each time with its own grade.")
    as_eyes = run.metrics.get("one_picture_as_two_eyes") or []
    if as_eyes:
        shown = " = ".join(f"'{i}'" for i in as_eyes[0]["image_ids"])
        warnings.append(f"{len(as_eyes)} patient(s) have one picture as both eyes (e.g. {shown}, grades "
                        f"{', '.join(map(str, as_eyes[0]['grades']))}): the figures count it as two eyes, paired.")
    return warnings + reading_warnings(run.metrics)


def summary_section(run: RunData) -> Section:
    """Warnings box and the plain-language paragraphs."""
    test = run.test
    blocks: list = []
    warnings = _data_warnings(run) + list(test.get("warnings") or [])
    if warnings:
        blocks.append(Alert("warning", f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}: "
                            "read these before any other figure", warnings))
    else:
        blocks.append(Alert("ok", "No automatic warnings",
                            [f"No sensitivity or specificity at or below the {IDX_BAR_TEXT}, and no accuracy "
                             "below or within 5 points of what a constant answer would get. This says nothing about "
                             "data the model has not seen (see the limits below)."]))

    _, where = evaluated_on(run)
    n_images, n_patients = test.get("n_images"), test.get("n_patients")
    text = f"These figures were measured on {where}: {n_images} eyes (images) of {n_patients} patients."
    if run.config is not None and run.config.data.limit is not None:  # probe 43 CG2: half a data set read as the whole
        text += f" The data set was cut to its first {run.config.data.limit} patients (data.limit): the rest are not in these figures."
    skipped = (run.metrics.get("data") or {}).get("skipped")
    if left_out := labelled_left_out(skipped):  # probe 33 BV9: a labelled photo skipped as unreadable was not counted
        text += f" {left_out} labelled photo(s) are not counted ({left_out_text(skipped, labelled_only=True)})."
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
    if boot.get("n") and (test.get("n_patients") or 0) < MIN_PATIENTS_FOR_CI:
        limits.append(f"No confidence intervals: {test.get('n_patients')} patient(s) are too few to resample.")
    elif boot.get("n"):
        limits.append(
            f"The 95% confidence intervals come from {boot['n']} bootstrap resamples of patients (both eyes "
            "of a patient stay together). They cover the chance of which patients ended up in this "
            "set, not differences between clinics, cameras or populations."
        )
    else:
        limits.append("No confidence intervals were computed (bootstrap off), so the figures' uncertainty is unknown.")
    if is_synthetic(run):
        limits.append(
            "**The images are synthetic** (made by drgrader synth). The figures show that the software works "
            "end to end; they say nothing about how the grader would do on real patients."
        )
    if main is not None:
        name, f = main
        pos = f["tp"] + f["fn"]
        ci = f["ci"].get("sensitivity")
        width = None if not ci or any(missing(v) for v in ci) else ci[1] - ci[0]
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
            thr = threshold_text(chosen["threshold"])
            rows.append([f"{short} sensitivity at chosen threshold {thr}",
                         below_bar(chosen["sensitivity"], IDX_DR_SENSITIVITY),
                         fmt_ci(ci.get("sensitivity"), percent=True),
                         f"IDx-DR bar > {IDX_DR_SENSITIVITY:.0%}; missed {chosen['fn']} of {chosen['tp'] + chosen['fn']}"])
            rows.append([f"{short} specificity at chosen threshold {thr}",
                         below_bar(chosen["specificity"], IDX_DR_SPECIFICITY),
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
            if point is None or missing(point.get("sensitivity")):
                continue
            rows.append([f"{short} at the {POINT_LABELS[key]}",
                         f"sens {fmt_pct(point['sensitivity'])} · spec {fmt_pct(point['specificity'])}", "",
                         f"threshold {threshold_text(point['threshold'])}, read off this set's ROC (optimistic)"])
    if not rows:
        return Section("headline", "Headline figures", [Note("The metrics hold no graded or screening results.")])
    return Section("headline", "Headline figures", [
        Table(["Measure", "Value", "95% CI", "Reference / meaning"], rows, align="lrrl",
              caption=f"✓/✗ compare with the {IDX_BAR_TEXT} (Abràmoff et al. 2018); "
                      "✗ on accuracy: below or within 5 points of a constant answer."),
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
        rows.append([label] + [fmt(col.get(key), percent) for col in columns.values()])
    return rows


def _comparison_table(headline: dict, other: dict, columns: list[str]) -> Table:
    """Headline figures of this evaluation beside another of the same eyes, with the difference."""
    rows = []
    for key in _compared_keys(headline):
        label, percent = HEADLINE_LABELS[key]
        value, second = headline[key], other.get(key)
        diff = "n/a" if missing(value) or missing(second) else (
            f"{100 * (value - second):+.1f} points" if percent else f"{value - second:+.3f}")
        rows.append([label, fmt(value, percent), fmt(second, percent), diff])
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
    fitted = stage_fitted_on(run.metrics.get("patient_decision"), run.metrics.get("evaluated_on"))  # probe 58 CV9
    return Section("paired-eyes", "Paired eyes", [
        Para(f"Above, each eye is graded from its own photo and its fellow eye's (the paired-eye stage, {fitted}); "
             "an eye without a gradable fellow gets the single-eye fallback. The same "
             "eyes graded from their own photo alone, with the single-eye thresholds (95% CIs over patients):"),
        Table(["Measure", "paired eyes", "single eye"], rows, align="lrr"),
    ])


def folds_section(run: RunData) -> Section | None:
    per_fold = run.metrics.get("per_fold")
    if not per_fold:
        return None
    keys = [("kappa", "kappa"), ("referable_auc", "referable AUC"), ("any_dr_auc", "any-DR AUC")]
    training = run.metrics.get("fold_training") or {}
    rows = [[fold, *[fmt_num(figures.get(k)) for k, _ in keys], duration((training.get(fold) or {}).get("wall_time_s"))]
            for fold, figures in per_fold["folds"].items()]
    summary = per_fold.get("summary") or {}
    rows.append(["mean ± sd", *[fmt_spread(summary[k], len(per_fold["folds"])) if k in summary else "n/a"
                                 for k, _ in keys], ""])
    return Section("folds", "Cross-validation folds", [
        Para("Every eye above was predicted by the fold model that never saw its patient. Each fold's own "
             "patients, with the pooled thresholds (the spread is what one validation split would have shown):"),
        Table(["Fold", *[label for _, label in keys], "training"], rows, align="lrrrr"),
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

"""The model card's measured sections: figures with 95% CIs, operating points in plain words,
known limits and provenance (see :mod:`.model_card`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from drgrader.evaluation.bootstrap import MIN_PATIENTS_FOR_CI
from drgrader.evaluation.results import PRINTED_HEADLINE, headline_with_ci
from drgrader.grading import GRADE_NAMES, GRADES, ONE_SCORE_KINDS
from drgrader.reporting.document import (
    HEADLINE_LABELS,
    SCREEN_LABELS,
    Alert,
    Note,
    Para,
    Section,
    Table,
    fmt,
    fmt_ci,
    fmt_pct,
    fmt_spread,
    missing,
    threshold_text,
)
from drgrader.reporting.model_card_about import BAND_SHARES, OBJECTIVE_WORDS, SCREEN_GRADE, data_summary_of
from drgrader.reporting.run_data import RunData, evaluated_on, reading_warnings


def _figures_table(result: dict) -> Table:
    """Kappa, AUCs, sensitivity and specificity at the chosen thresholds, with their 95% CIs."""
    rows = []
    figures = headline_with_ci(result)
    for key, (value, ci) in figures.items():
        label, percent = HEADLINE_LABELS[key]
        if key.endswith(("_sensitivity", "_specificity")):
            threshold = (result.get(key.rsplit("_", 1)[0]) or {}).get("threshold")
            label += f" at threshold {threshold_text(threshold)}"
        rows.append([label, fmt(value, percent), fmt_ci(ci, percent)])
    head = result.get("headline") or {}
    for screen in ("referable", "any_dr"):
        if f"{screen}_sensitivity" in figures:
            continue
        for part in ("sensitivity", "specificity"):
            key = f"{screen}_{part}_from_grades"
            if key in head:
                label, percent = HEADLINE_LABELS[key]
                rows.append([label, fmt(head[key], percent), "–"])
    return Table(["Measure", "Value", "95% CI"], rows, align="lrr")


def _per_grade_table(result: dict) -> Table | None:
    grade = result.get("grade") or {}
    per_grade = grade.get("per_grade") or {}
    if not per_grade:
        return None
    rows = []
    for g in GRADES:
        row = per_grade.get(str(g)) or per_grade.get(g)
        if not row:
            continue
        n, recall = row.get("support", 0), row.get("recall")
        found = "–" if not n or missing(recall) else f"{round(recall * n)} of {n}"
        rows.append([GRADE_NAMES[g], str(n), found, fmt_pct(recall) if n else "n/a (no eyes)"])
    return Table(["Grade", "eyes", "given this grade", "recall"], rows, align="lrrr",
                 caption="Recall: the share of a grade's eyes given exactly that grade.")


def quality_blocks(result: dict, summary: dict | None = None) -> list:
    """What the image-quality check found among the evaluated eyes, and how the figures treat
    them (as metrics.json's ``gradability`` and the report say): ``summary`` is the data summary
    when it covers exactly these eyes (its reasons are then named)."""
    g = result.get("gradability")
    if not isinstance(g, dict) or g.get("n_ungradable") is None:
        return []
    n, bad = result.get("n_images"), g["n_ungradable"]
    if not bad:
        return [Para(f"Quality check: all {n} photos gradable.")]
    reasons = ((summary or {}).get("gradability") or {}).get("reasons") or {}
    why = "; ".join(f"{str(reason).split(':', 1)[0]}: {count}" for reason, count in reasons.items())
    text = (f"Quality check: {bad} of {n} photos ({fmt_pct(g.get('share_ungradable'))}) ungradable"
            + (f" ({why})" if why else "") + "; they are included in every figure above.")
    outcomes = ((result.get("patient_decision") or {}).get("outcomes") or {})
    if outcomes.get("ungradable") is not None:
        patients = (result.get("patient_decision") or {}).get("n_patients") or result.get("n_patients")
        text += (f" Patients: {outcomes['ungradable']} of {patients} ungradable (photograph again: "
                 "no eye could be graded, or one could not and no other is referable).")
    blocks: list = [Para(text)]
    only = g.get("gradable_only") or {}
    head = result.get("headline") or {}
    rows = [[HEADLINE_LABELS[k][0], fmt(head.get(k), HEADLINE_LABELS[k][1]), fmt(only[k], HEADLINE_LABELS[k][1])]
            for k in PRINTED_HEADLINE if only.get(k) is not None]
    if rows:
        blocks.append(Table(["Measure", "all photos", "gradable photos only"], rows, align="lrr",
                            caption="Without the ungradable photos (no confidence intervals)."))
    return blocks


def evaluation_blocks(result: dict, where: str, summary: dict | None = None) -> list:
    """Figures of one evaluation: a sentence on the eyes, the headline table, per-grade recall,
    the quality check (``summary``: see :func:`quality_blocks`)."""
    boot = (result.get("bootstrap") or {}).get("n")
    too_few = (result.get("n_patients") or 0) < MIN_PATIENTS_FOR_CI  # probe 44 CH4: "from 1000 resamples" above dashes
    ci_text = ("no confidence intervals (too few patients to resample)" if boot and too_few else
               f"95% confidence intervals from {boot} bootstrap resamples of patients (both eyes of a patient "
               "stay together)" if boot else "no confidence intervals (bootstrap off)")
    blocks: list = [Para(f"Measured on {where}: {result.get('n_images')} eyes of {result.get('n_patients')} "
                         f"patients; {ci_text}."), _figures_table(result)]
    per_grade = _per_grade_table(result)
    if per_grade is not None:
        blocks.append(per_grade)
    return blocks + quality_blocks(result, summary)


def _where(metrics: dict) -> tuple[str, str]:
    return evaluated_on(RunData(run_dir=Path("."), metrics=metrics, config=None, config_text=None, predictions=None,
                                training_log=None))


def _validation(manifest: dict, metrics: dict) -> dict | None:
    """The validation figures (no CIs: the same eyes fitted the thresholds)."""
    val = metrics.get("val") or manifest.get("validation") or {}
    if val.get("headline"):
        return val
    return None


def performance_section(manifest: dict, metrics: dict) -> Section:
    test = metrics.get("test") or {}
    blocks: list = []
    if test:
        _, where = _where(metrics)
        blocks += evaluation_blocks(test, where)
        if metrics.get("test_single_eye"):
            blocks.append(Note("These figures use the paired-eye stage (each eye graded with its fellow eye); "
                               "the report beside this bundle has the single-eye figures too."))
        summary = (metrics.get("per_fold") or {}).get("summary") or {}
        if summary:
            spread = ", ".join(f"{HEADLINE_LABELS[k][0]} {fmt_spread(v, metrics.get('folds'))}" for k, v in summary.items())
            blocks.append(Para(f"Per fold (each fold's own patients; mean ± sd over {metrics.get('folds')} folds): {spread}."))
    else:
        blocks.append(Note("No held-out figures: this bundle was found without the metrics.json of the run that made "
                           "it. `drgrader evaluate BUNDLE --data DATA_SET` measures it."))
    val = _validation(manifest, metrics)
    if val is not None and metrics.get("evaluated_on") != "val" and "headline" in val:
        head = val["headline"]
        rows = [[HEADLINE_LABELS[k][0], fmt(head[k], HEADLINE_LABELS[k][1])] for k in PRINTED_HEADLINE if head.get(k) is not None]
        if rows:
            blocks += [Para(f"Validation split ({val.get('n_images', '?')} eyes): these patients chose the checkpoint and "
                            "fitted the thresholds, so the figures are optimistic and have no CIs."),
                       Table(["Measure", "Value"], rows, align="lr")]
    return Section("performance", "Performance", blocks)


def _score_words(manifest: dict, screen: str) -> str:
    kind = manifest.get("kind")
    if manifest.get("members"):
        return "the members' average score"
    if kind in ONE_SCORE_KINDS:
        return "the predicted continuous grade"
    return f"the model's probability of grade ≥ {SCREEN_GRADE[screen]}"


def _threshold_lines(manifest: dict, metrics: dict, thresholds: dict) -> list[str]:
    short, _ = _where(metrics) if metrics.get("test") else ("", "")
    lines = []
    for screen in ("referable", "any_dr"):
        t = thresholds.get(screen)
        if t is None:
            continue
        words = "refer" if screen == "referable" else "flag as showing DR"
        line = (f"- **{SCREEN_LABELS[screen]}**: {words} when {_score_words(manifest, screen)} is ≥ **{threshold_text(t)}**.")
        chosen = ((metrics.get("test") or {}).get(screen) or {}).get("operating_points", {}).get("chosen")
        if chosen and chosen.get("threshold") is not None and abs(chosen["threshold"] - t) < 1e-9:
            pos, neg = chosen["tp"] + chosen["fn"], chosen["tn"] + chosen["fp"]
            line += (f" On the {short} it found {chosen['tp']} of {pos} such eyes (sensitivity {fmt_pct(chosen['sensitivity'])}; "
                     f"missed {chosen['fn']}) and cleared {chosen['tn']} of {neg} without "
                     f"(specificity {fmt_pct(chosen['specificity'])}; {chosen['fp']} flagged unnecessarily).")
        lines.append(line)
    return lines


def _cutpoint_words(cuts) -> str:
    bounds = [f"below {threshold_text(cuts[0])}: {GRADE_NAMES[0]}"]
    bounds += [f"{threshold_text(lo)}–{threshold_text(hi)}: {GRADE_NAMES[g + 1]}" for g, (lo, hi) in enumerate(zip(cuts, cuts[1:]))]
    bounds.append(f"{threshold_text(cuts[-1])} and above: {GRADE_NAMES[4]}")
    return "; ".join(bounds)


def operating_points_section(manifest: dict, metrics: dict) -> Section:
    thresholds = manifest.get("thresholds") or {}
    where = metrics.get("evaluated_on") or ""
    if where.startswith("out-of-fold"):
        fitted = "on the out-of-fold predictions of the cross-validation"
    else:
        fitted = "on the validation split of the training run (never on the test eyes)"
    blocks: list = []
    if not any(thresholds.get(k) is not None for k in ("any_dr", "referable", "cutpoints")):
        blocks.append(Para("**No thresholds fitted**: decisions use the predicted grade and 0.5 on the screening scores. "
                           "`drgrader evaluate RUN` fits them on a run's validation split; `drgrader cv` fits an "
                           "ensemble's on out-of-fold predictions."))
    else:
        eval_cfg = (manifest.get("config") or {}).get("eval") or {}
        objective = OBJECTIVE_WORDS.get(eval_cfg.get("threshold_objective"), "")
        how = f", choosing {objective.format(target=eval_cfg.get('target_sensitivity', 0.9))}," if objective else ""
        blocks.append(Para(f"A screening score is positive when it is at or above its threshold. The thresholds were "
                           f"fitted {fitted}{how} and are applied unchanged by `predict`, `serve` and `evaluate`:"))
        lines = _threshold_lines(manifest, metrics, thresholds)
        if lines:
            blocks.append(Para("\n".join(lines)))
        cuts = thresholds.get("cutpoints")
        if cuts:
            blocks.append(Para("**Grade**: the expected grade (a continuous 0–4 score) is cut at "
                               + ", ".join(threshold_text(c) for c in cuts) + ": " + _cutpoint_words(cuts) + "."))
        elif manifest.get("task") == "grade":
            blocks.append(Para("**Grade**: the most probable grade (no cut-points fitted)."))
    stage = manifest.get("paired_eyes")
    if stage and stage.get("thresholds"):
        paired = stage["thresholds"]
        parts = [f"{SCREEN_LABELS[k]} {threshold_text(paired[k])}" for k in ("referable", "any_dr") if paired.get(k) is not None]
        if paired.get("cutpoints"):
            parts.append("grade cut-points " + ", ".join(threshold_text(c) for c in paired["cutpoints"]))
        blocks.append(Para("With both eyes of a patient, the paired-eye stage decides on the fused scores with its own "
                           "thresholds: " + "; ".join(parts) + ". A photo given alone (or an eye without a usable fellow) is "
                           "graded by the stage's single-eye part, from its own scores alone, with these same thresholds."))
    not_fitted = thresholds.get("not_fitted") or []
    if not_fitted:  # probe 33 BV11: the card said "fitted" of thresholds the validation eyes could not fit
        blocks.insert(0, Para("**Not fitted on the validation eyes**: " + "; ".join(not_fitted) + ". Those decisions use "
                              "defaults (or follow the grade) and are not calibrated; train on data with every grade "
                              "in the validation split."))
    adjusted = [*thresholds.get("adjusted", []), *((stage or {}).get("thresholds") or {}).get("adjusted", [])]
    if adjusted:  # the fit changed a threshold so that the decisions agree: the card says which
        blocks.append(Para("**Adjusted so that the decisions agree**: " + "; ".join(adjusted) + "."))
    blocks += _patient_decision_blocks(manifest.get("patient_decision"), task=manifest.get("task"))
    blocks.append(Para("A patient is referable when either eye is. A higher threshold misses more disease and refers "
                       "fewer people; the report beside the run shows the whole ROC curve."))
    return Section("operating-points", "Operating points", blocks)


def _flatten(value, prefix: str = "") -> Iterator[tuple[str, object]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        yield prefix, ", ".join(threshold_text(v) if isinstance(v, float) else str(v) for v in value)
    elif not isinstance(value, list):
        yield prefix, value


def _patient_decision_blocks(decision, *, task: str | None = None) -> list:
    """The per-patient decision's operating points (``patient_decision`` in bundle.json, when the
    bundle has one): the urgent threshold and the uncertainty band in words, other keys listed."""
    if not isinstance(decision, dict) or not decision:
        return []
    d = dict(decision)
    # an any-DR screener refers any DR, at its any-DR threshold (probe 36 AZ11)
    which, what = ("any-DR", "any DR") if task == "any_dr" else ("referable", "referable DR")
    lines = [f"- **negative** (rescreen as usual) and **refer** ({what}) follow the {which} threshold above, "
             "applied to the patient's worse eye."]
    urgent, rule = d.pop("urgent_threshold", None), d.pop("urgent_rule", "")
    if urgent is not None:
        lines.append(f"- **urgent** (vision-threatening DR: refer quickly) when the patient's expected grade is ≥ "
                     f"**{threshold_text(urgent)}**" + (f" ({rule})" if rule else "") + ".")
    share, cutoff, band = d.pop("refer_share", None), d.pop("uncertainty_cutoff", None), d.pop("band", None) or []
    if share:
        # A few other shares of the band (it may hold one per percent), for a programme choosing its own.
        others = [(s, c) for s, c in band if any(abs(s - w) < 0.005 for w in BAND_SHARES) and abs(s - share) >= 0.005]
        lines.append(f"- **uncertain** (a human grader decides): the {fmt_pct(share, 0)} of patients the model is least "
                     f"sure about, those with an uncertainty ≥ **{threshold_text(cutoff)}**"
                     + (" (other shares: " + ", ".join(f"{fmt_pct(s, 0)} at {threshold_text(c)}" for s, c in others) + ")"
                        if others else "") + ". `predict --refer-share` changes the share.")
    elif share is not None:
        lines.append("- **uncertain**: none (no share of patients is set aside for a human grader).")
    lines.append("- **ungradable** (photograph again) when no eye of the patient is gradable.")
    fitted = d.pop("fitted_on", "")
    rest = [f"`{k}` = {threshold_text(v) if isinstance(v, float) else v}" for k, v in _flatten(d)]
    if rest:
        lines.append("- other settings: " + "; ".join(rest))
    return [Para("**Per-patient decision** from both eyes" + (f" (operating points fitted on {fitted})" if fitted else "")
                 + ":\n" + "\n".join(lines))]


def limits_section(manifest: dict, metrics: dict, synthetic: bool) -> Section:
    items = []
    # An ensemble's input_size is its largest member's; each member grades at its own (probe 58 CV10).
    sizes = sorted({int(m["input_size"]) for m in manifest.get("member_info") or [] if m.get("input_size")})
    size = sizes[0] if sizes else manifest.get("input_size")
    if size:
        um = 13000 / size  # a 45° field is about 13 mm of retina
        reduced = (f"every photo is reduced to {size} × {size} px before grading, so one pixel covers" if len(sizes) < 2 else
                   "each member reduces every photo to its own size before grading ("
                   + ", ".join(f"{s} × {s} px" for s in sizes) + f"): at the smallest, {size} × {size} px, one pixel covers")
        items.append(f"**Resolution**: {reduced} "
                     f"roughly {um:.0f} µm of a 45° fundus field. A microaneurysm, the only lesion of mild DR, is "
                     f"10–100 µm across: {10 / um:.1f}–{100 / um:.1f} pixels at this size; smaller lesions are lost.")
    sources = list((data_summary_of(manifest, metrics).get("sources") or {}))
    if sources:
        items.append(f"**Cameras and populations**: trained on {', '.join(sources)} only. Other cameras, fields of "
                     "view, image compression, ethnicities and grading protocols change the figures, by an amount "
                     "unknown until measured (see External evaluations).")
    grade = (metrics.get("test") or {}).get("grade") or {}
    mild = (grade.get("per_grade") or {}).get("1") or (grade.get("per_grade") or {}).get(1)
    short = _where(metrics)[0] if metrics.get("test") else ""
    if mild and mild.get("support"):
        n = mild["support"]
        items.append(f"**Grade 1 (mild) sensitivity**: on the {short}, {round(mild['recall'] * n)} of {n} mild eyes were "
                     f"graded mild (recall {fmt_pct(mild['recall'])}). Mild DR is the grade models and graders "
                     "disagree on most.")
    elif manifest.get("task") == "grade":
        why = "no mild eyes among the held-out ones" if grade else "no held-out figures here"
        items.append(f"**Grade 1 (mild) sensitivity**: not measured ({why}).")
    else:
        items.append("**Grades**: a binary screening model; it says nothing about the grade, including mild DR.")
    test = metrics.get("test") or {}
    n_pos = ((test.get("referable") or {}).get("operating_points") or {}).get("chosen") or {}
    if n_pos:
        positives = n_pos["tp"] + n_pos["fn"]
        if positives < 100:
            with_cis = (test.get("bootstrap") or {}).get("n") and (test.get("n_patients") or 0) >= MIN_PATIENTS_FOR_CI
            why = "the CIs above are wide for that reason" if with_cis else "the figures above may be far from the truth"
            items.append(f"**Small evaluation**: only {positives} referable eyes were held out; {why}.")
    if metrics.get("evaluated_on") == "val":
        items.append("**No test split**: the figures are on the validation patients, who also chose the checkpoint and "
                     "the thresholds; they are optimistic.")
    if synthetic:
        items.append("**Synthetic training data**: no figure here applies to real photos.")
    blocks: list = [Para("\n".join(f"- {item}" for item in items))]
    warnings = list(test.get("warnings") or []) + reading_warnings(metrics)
    if warnings:
        held_out = "validation" if metrics.get("evaluated_on") == "val" else "held-out"  # probe 46 CJ8
        blocks.append(Alert("warning", f"{len(warnings)} automatic warning{'s' if len(warnings) != 1 else ''} on the "
                                       f"{held_out} figures", warnings))
    return Section("limits", "Known limits", blocks)


def provenance_section(manifest: dict, metrics: dict, command: str | None, version: str, date: str) -> Section:
    rows = [["drgrader version", version], ["Made", date]]
    rows.append(["Command", f"`{command}`" if command else "not recorded (called from Python)"])
    config = manifest.get("config") or {}
    if config.get("name"):
        rows.append(["Experiment", f"{config['name']} (the whole resolved configuration is `config` in bundle.json)"])
    training = metrics.get("training") or {}
    if training:
        budget = (f" (planned for a budget of {training['budget_minutes']} min from the measured epoch time)"
                  if training.get("budget_minutes") else "")
        rows.append(["Training", f"{training.get('epochs_run')} epochs{budget}, best epoch {training.get('best_epoch')}, "
                                 f"{training.get('wall_time_s')} s on {training.get('world_size', 1)} process(es), "
                                 f"precision {training.get('precision', '32-true')}"])
    if metrics.get("folds"):
        rows.append(["Cross-validation", f"{metrics['folds']} patient-level folds; the ensemble averages the fold models"])
    checksum = (metrics.get("data") or {}).get("manifest_sha256")
    if checksum:
        rows.append(["Data manifest checksum", checksum])
    for name, value in (metrics.get("versions") or {}).items():
        if name != "drgrader":
            rows.append([name, str(value)])
    return Section("provenance", "Provenance", [Table(["What", "Value"], rows, align="ll")])

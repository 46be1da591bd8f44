"""The per-patient decisions section: what drgrader would tell each patient (negative, refer,
urgent, ungradable, or uncertain: a human grader decides), the referral curve, and the outcomes
by true grade, with the number a screening programme cares about most first: patients with
severe or proliferative DR who were told they were negative.
"""

from __future__ import annotations

from drgrader.evaluation.metrics import IDX_DR_SENSITIVITY, IDX_DR_SPECIFICITY
from drgrader.grading import GRADE_NAMES, GRADES
from drgrader.inference.patient_decision import OUTCOMES
from drgrader.reporting import plots
from drgrader.reporting.document import Alert, Fig, Note, Para, Section, Table, fmt_ci, fmt_pct, threshold_text
from drgrader.reporting.run_data import RunData

OUTCOME_WORDS = {
    "negative": "negative (rescreen in 12 months)",
    "refer": "refer (referable DR)",
    "urgent": "urgent (vision-threatening DR)",
    "uncertain": "uncertain (a human grader decides)",
    "ungradable": "ungradable (photograph again)",
}
SEVERE = 3
TABLE_SHARES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)


def _rules_text(section: dict, spec: dict) -> str:
    rules = section.get("rules") or {}
    column = str(rules.get("referable_score"))
    score = {"score_referable": "referable score", "fused_grade": "fused grade", "score_any": "any-DR score"}.get(column, column)
    # an any-DR screener refers any DR, at its any-DR threshold (probe 35 AY12)
    which = "any-DR" if column == "score_any" else "referable"
    urgent = rules.get("urgent_threshold")
    # a screening-only model has no grade score: no urgent outcome (probe 36 AZ11: "reaches n/a")
    urgent_text = ("**Urgent** is not decided (the model gives no grade score)" if urgent is None else
                   f"**Urgent** when an eye's expected grade reaches {threshold_text(urgent)}"
                   + (f" ({spec['urgent_rule']})" if spec.get("urgent_rule") else ""))
    text = (
        "A screening programme answers per patient, so drgrader does too, from all of a patient's photos. "
        "Each eye is judged by its gradable photo with the highest score; the worst gradable eye decides. " + urgent_text
        + f"; **refer** when an eye's {score} reaches the {which} threshold {threshold_text(rules.get('referable_threshold'))}; "
        "**ungradable** (photograph again) when no eye could be graded, or one could not and no other is referable, "
        "because the unseen eye may hide disease; otherwise **negative**. "
    )
    if rules.get("uncertainty_cutoff") is None:
        return text + ("No uncertainty band was fitted (a bundle made before drgrader had one, or a share of 0): "
                       "no patient is sent to a human grader, and the curve below shows what a band would do.")
    return text + (
        f"A patient whose decision rests on an eye scored close to the {which} threshold is **uncertain** and goes "
        f"to a human grader instead: the programme chose to send {fmt_pct(rules.get('refer_share'), 0)} of patients "
        f"(`eval.refer_share`), and the cut-off that does so was fitted on the {spec.get('fitted_on') or 'validation data'}. "
        "Uncertainty here is the distance of the score from its threshold (ensemble and TTA spread are not used)."
    )


def _outcome_rows(section: dict) -> list[list]:
    rows = []
    for g in GRADES:
        counts = section["by_grade"][str(g)]
        cells: list = []
        for outcome in OUTCOMES:
            n = counts[outcome]
            bad = g >= SEVERE and outcome == "negative" and n > 0
            cells.append((f"{n} ✗", "bad") if bad else str(n))
        rows.append([GRADE_NAMES[g], *cells, str(sum(counts.values()))])
    totals = section["outcomes"]
    rows.append(["all patients", *[str(totals[o]) for o in OUTCOMES], str(section["n_patients"])])
    return rows


def _curve_rows(curve: list[dict]) -> list[list]:
    rows = []
    for point in curve:
        if not any(abs(point["share"] - s) < 1e-9 for s in TABLE_SHARES):
            continue
        rows.append([fmt_pct(point["share"], 0), str(point["sent"]),
                     f"{fmt_pct(point['sensitivity'])} ({fmt_ci(point.get('sensitivity_ci'), percent=True)})",
                     f"{fmt_pct(point['specificity'])} ({fmt_ci(point.get('specificity_ci'), percent=True)})"])
    return rows


def decisions_section(run: RunData, figures: dict[str, bytes]) -> Section | None:
    section = run.test.get("patient_decision")
    if not section:
        return None
    spec = run.metrics.get("patient_decision") or {}
    n = section["n_patients"]
    counts = ", ".join(f"{section['outcomes'][o]} {OUTCOME_WORDS[o]}" for o in OUTCOMES)
    blocks: list = [Para(_rules_text(section, spec)), Para(f"Of the {n} patients: {counts}.")]

    severe, missed = section["severe_patients"], section["severe_called_negative"]
    if missed:
        blocks.append(Alert("warning", f"{missed} of {severe} patients with severe or proliferative DR (grade 3-4 in the "
                            "worse eye) were called negative: they would wait 12 months for their next screening."))
    elif severe:
        title = ("The patient with severe or proliferative DR was not called negative" if severe == 1 else
                 f"None of the {severe} patients with severe or proliferative DR was called negative")
        blocks.append(Alert("ok", title, [f"Called urgent: {section['severe_called_urgent']} of {severe}."]))

    band = section.get("at_cutoff")
    if band:
        blocks.append(Para(
            f"With the fitted band, {band['sent']} patients ({fmt_pct(band['sent_share'])}) went to a human grader. On the "
            f"others, the automatic decisions found referable DR with sensitivity {fmt_pct(band['sensitivity'])} (95% CI "
            f"{fmt_ci(band.get('sensitivity_ci'), percent=True)}) and cleared healthy patients with specificity "
            f"{fmt_pct(band['specificity'])} ({fmt_ci(band.get('specificity_ci'), percent=True)}); ungradable patients "
            "count in neither."))
    curve = section.get("referral_curve") or []
    if curve:
        figures["referral_curve.png"] = plots.figure_png(
            plots.referral_curve_figure(curve, bars=(IDX_DR_SENSITIVITY, IDX_DR_SPECIFICITY), band=band))
        blocks.append(Fig("referral_curve.png", "Referral curve",
                          "Sensitivity and specificity for referable DR (per patient, worse eye) of the decisions made "
                          "automatically, when the most uncertain patients of this set go to a human grader instead "
                          "(shaded: 95% CIs over patients; dotted: the IDx-DR bars). Rising lines mean the model knows "
                          "when it is unsure (Leibig et al. 2017 met the NHS targets by referring their 20% most uncertain)."))
        blocks.append(Table(["sent to humans", "patients", "sensitivity (95% CI)", "specificity (95% CI)"],
                            _curve_rows(curve), align="lrrr"))
    blocks.append(Table(["True grade (worse eye)", *OUTCOMES, "patients"], _outcome_rows(section), align="lrrrrrr",
                        caption="Outcomes by the patient's true grade. ✗: severe or proliferative DR called negative."))
    if not curve:
        blocks.append(Note("No referral curve: no patients."))
    return Section("decisions", "Per-patient decisions", blocks)

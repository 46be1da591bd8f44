"""``MODEL_CARD.md``: the page every bundle folder carries, so that a bundle copied to another
machine explains itself: what the model is for and not for, what it was trained on, how a photo
is prepared, how well it did and on which eyes (95% CIs), what its thresholds mean, its known
limits, and which drgrader version and command made it.

:func:`build_model_card` is pure (bundle manifest + metrics + external evaluations -> Markdown)
and uses the report's words and number formats (:mod:`.document`), so the card and the report
print a figure the same way. The writers around it:

- :func:`write_bundle_card` (training, ``drgrader cv`` with the ensemble's out-of-fold figures,
  ``drgrader ensemble``) through :func:`write_model_card`: a rewritten card keeps the external
  entries the old one had.
- :func:`record_evaluation` (``drgrader evaluate --data``) through
  :func:`record_external_evaluation`: one dated entry under "External evaluations" naming the
  data set. Entries are keyed by evaluation folder: the same folder evaluated again replaces its
  entry, every other entry stays. Only the card of the bundle changes, never bundle.json or the
  weights; a read-only bundle folder is left as it is, with a warning.

Files are written atomically (:func:`drgrader.io.atomic_write_text`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from drgrader.evaluation.results import PRINTED_HEADLINE, headline_with_ci
from drgrader.grading import GRADE_NAMES, GRADES
from drgrader.io import atomic_write_text
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
    fmt_num,
    fmt_pct,
    missing,
    threshold_text,
)
from drgrader.reporting.render import _block_md, render_markdown
from drgrader.reporting.run_data import RunData, evaluated_on

log = logging.getLogger("drgrader")

CARD_FILE = "MODEL_CARD.md"
EXTERNAL_TITLE = "External evaluations"
NO_EXTERNAL = ("None yet. `drgrader evaluate BUNDLE --data OTHER_DATA_SET` measures the model on a data set it "
               "never saw and adds the figures here.")
_BEGIN = "<!-- drgrader:external {key} -->"
_END = "<!-- /drgrader:external -->"
_ENTRY = re.compile(r"<!-- drgrader:external (\S+) -->\n.*?<!-- /drgrader:external -->\n?", re.S)

KIND_WORDS = {
    "softmax5": "five grade probabilities (softmax)",
    "regression": "one continuous grade (regression)",
    "coral": "ordinal grade probabilities (CORAL)",
    "corn": "ordinal grade probabilities (CORN)",
    "binary": "one screening probability",
}
TASK_WORDS = {
    "grade": "the five grades of the International Clinical DR scale (0 none, 1 mild, 2 moderate, "
             "3 severe non-proliferative, 4 proliferative) and two screening scores (any DR, referable DR)",
    "any_dr": "one screening decision: any DR (grade ≥ 1) or not; no grade",
    "referable": "one screening decision: referable DR (grade ≥ 2, moderate or worse) or not; no grade",
}
OBJECTIVE_WORDS = {
    "youden": "the threshold with the highest sensitivity + specificity",
    "accuracy": "the threshold with the highest accuracy",
    "sensitivity": "the highest threshold whose sensitivity reaches {target:.0%}",
}
TTA_WORDS = {"orig": "the photo as is", "hflip": "mirrored left-right", "vflip": "mirrored top-bottom",
             "hvflip": "rotated 180°", "bright": "brightened", "rot90": "rotated 90°", "rot270": "rotated 270°",
             "zoom": "zoomed in"}
SCREEN_GRADE = {"any_dr": 1, "referable": 2}
BAND_SHARES = (0.05, 0.1, 0.2, 0.3)  # shares of patients sent to a human shown beside the bundle's own


@dataclass
class ExternalEvaluation:
    """One ``drgrader evaluate --data`` result for the card: its ``metrics.json``, the folder it
    was written to (the entry's identity), and the command that made it."""

    metrics: dict
    folder: str
    command: str | None = None
    synthetic: bool = False

    @property
    def key(self) -> str:
        return quote(str(self.folder), safe="/._~:+=,@")  # no spaces or "-->" inside the marker


# ==================================================================== the whole card
def build_model_card(
    manifest: dict,
    metrics: dict | None = None,
    *,
    externals: Sequence[ExternalEvaluation] = (),
    command: str | None = None,
    synthetic: bool = False,
) -> str:
    """The card of a bundle as Markdown.

    ``manifest`` is its ``bundle.json``; ``metrics`` the ``metrics.json`` of the run (or cv)
    that made it, may be empty (the card then says what it lacks). ``command`` is the command
    line that made it; ``synthetic`` says the training photos were made by ``drgrader synth``.
    """
    metrics = metrics or {}
    version = manifest.get("drgrader_version") or (metrics.get("versions") or {}).get("drgrader") or "?"
    date = _date(metrics.get("created"))
    what = f"ensemble of {len(manifest['members'])} models" if manifest.get("members") else "single model"
    meta = f"drgrader {version} · {date} · {what} · task `{manifest.get('task')}`"
    sections = [
        _intended_use(manifest, metrics, synthetic),
        _model(manifest, metrics),
        _training_data(manifest, metrics),
        _preprocessing(manifest),
        _performance(manifest, metrics),
        _operating_points(manifest, metrics),
        _limits(manifest, metrics, synthetic),
        _provenance(manifest, metrics, command, version, date),
    ]
    text = render_markdown(f"Model card: {_name(manifest, metrics)}", meta, sections)
    return add_externals(text, externals)


def _name(manifest: dict, metrics: dict) -> str:
    return str((manifest.get("config") or {}).get("name") or metrics.get("run") or manifest.get("backbone") or "drgrader model")


def _date(created: str | None) -> str:
    return str(created)[:10] if created else "date unknown"


def _summary(manifest: dict, metrics: dict) -> dict:
    return manifest.get("data_summary") or (metrics.get("data") or {}).get("summary") or {}


def _count(mapping: dict, key) -> int:
    """A count from a dict whose integer keys may have become strings in JSON."""
    return int(mapping.get(str(key), mapping.get(key, 0)) or 0)


def _sources(summary: dict) -> str:
    sources = summary.get("sources") or {}
    return ", ".join(f"{k} ({v} images)" for k, v in sources.items()) or "an unrecorded source"


# ======================================================================== sections
def _intended_use(manifest: dict, metrics: dict, synthetic: bool) -> Section:
    task = manifest.get("task")
    sources = ", ".join((_summary(manifest, metrics).get("sources") or {}))
    trained_on = f"it was trained on {sources} only" if sources else "see its training data"
    blocks: list = []
    if synthetic:
        blocks.append(Alert("warning", "Trained on synthetic photos", [
            "The training photos were made by `drgrader synth`. This model shows that the software works end "
            "to end; its figures say nothing about real patients and it must not grade real photos."]))
    blocks += [
        Para(f"**A research tool, not a medical device.** It grades colour fundus photographs (one photo of one "
             f"eye at a time) for diabetic retinopathy: {TASK_WORDS.get(task, task)}. It is meant for research "
             "(comparing models and training recipes, retrospective studies on data like its training data) and, "
             "at best, as a **second reader** beside a qualified human grader who makes every decision."),
        Para("**Not for:**\n"
             "- diagnosing, treating or screening a person without a qualified grader: it has no regulatory "
             "clearance (unlike the cleared screening devices IDx-DR and EyeArt) and was not validated "
             "prospectively;\n"
             f"- photos from cameras, clinics or populations it was never evaluated on ({trained_on}; "
             f"*{EXTERNAL_TITLE}* lists the other data sets it was measured on);\n"
             "- anything but colour fundus photographs (OCT, angiography, ultra-widefield, photos of a screen) "
             "or any other eye disease: it knows DR grades only and grades whatever it is given;\n"
             "- photos the quality check calls ungradable: take them again instead."),
    ]
    return Section("intended-use", "Intended use", blocks)


def _model(manifest: dict, metrics: dict) -> Section:
    rows = [["Task", TASK_WORDS.get(manifest.get("task"), str(manifest.get("task")))]]
    members = manifest.get("member_info") or []
    if manifest.get("members"):
        rows.append(["Ensemble", f"{len(manifest['members'])} members whose scores are averaged; each keeps its "
                                 "own preprocessing, input size and test-time views (each member folder has its "
                                 "own card)"])
        for info in members:
            rows.append([f"member {info.get('folder')}", f"{info.get('backbone')}, {KIND_WORDS.get(info.get('kind'), info.get('kind'))}, "
                                                           f"{info.get('input_size')} px input"])
    else:
        rows += [
            ["Network", f"{manifest.get('backbone')} (timm), {manifest.get('head')} head, "
                        f"output: {KIND_WORDS.get(manifest.get('kind'), manifest.get('kind'))}"],
            ["Input", f"{manifest.get('input_size')} × {manifest.get('input_size')} px RGB"],
        ]
        weights = (metrics.get("training") or {}).get("weights")
        if weights:
            rows.append(["Initial weights", str(weights)])
    views = manifest.get("tta") or ["orig"]
    rows.append(["Test-time views", ", ".join(TTA_WORDS.get(v, v) for v in views)
                 + (" (scores averaged)" if len(views) > 1 else "")])
    if manifest.get("paired_eyes"):
        rows.append(["Paired eyes", "when both eyes of a patient are given, each eye's grade also uses its fellow "
                                    "eye's scores (a stage fitted on out-of-fold predictions)"])
    if manifest.get("onnx"):
        rows.append(["ONNX", f"model.onnx (opset {manifest['onnx'].get('opset')}), same scores as PyTorch within "
                             f"{manifest['onnx'].get('parity_max_abs_diff', 0):.1e}"])
    return Section("model", "Model", [Table(["What", "Value"], rows, align="ll")])


def _training_data(manifest: dict, metrics: dict) -> Section:
    summary = _summary(manifest, metrics)
    if not summary:
        text = "No training data summary in this bundle."
        if manifest.get("members"):
            text += " Each member's own card (members/*/MODEL_CARD.md) describes its training data."
        return Section("training-data", "Training data", [Note(text)])
    eyes = summary.get("eyes") or {}
    text = (f"{summary.get('images')} photos of {summary.get('patients')} patients from {_sources(summary)}; "
            f"{eyes.get('left', 0)} left, {eyes.get('right', 0)} right and {eyes.get('unknown', 0)} unknown eyes.")
    splits = summary.get("splits") or {}
    if len(splits) > 1:
        text += (" Patients were split into " + ", ".join(splits) + " sets; no patient has photos in two of them. "
                 "Training learnt from `train`; `val` chose the checkpoint and fitted the thresholds.")
    skipped = {k: v for k, v in ((metrics.get("data") or {}).get("skipped") or summary.get("skipped") or {}).items() if v}
    if skipped:
        text += " Left out: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in skipped.items()) + "."
    header = ["Grade", "all"] + list(splits)
    rows = [[GRADE_NAMES[g], str(_count(summary.get("grades") or {}, g))]
            + [str(_count(s.get("grades") or {}, g)) for s in splits.values()] for g in GRADES]
    rows.append(["patients", str(summary.get("patients"))] + [str(s.get("patients")) for s in splits.values()])
    blocks: list = [Para(text), Table(header, rows, align="l" + "r" * (len(header) - 1), caption="Photos per grade")]
    sizes = summary.get("image_sizes") or {}
    if sizes.get("most_common"):
        common = ", ".join(f"{s['size']} ({s['count']})" for s in sizes["most_common"])
        blocks.append(Para(f"Photo sizes (width × height in pixels, before preprocessing): {common}; smallest "
                           f"{sizes.get('min')}, largest {sizes.get('max')}."))
    else:
        blocks.append(Para("Photo sizes before preprocessing: not recorded."))
    quality = summary.get("gradability")
    if quality:
        blocks.append(Para(f"Quality check: {quality.get('gradable')} gradable, {quality.get('ungradable')} ungradable, "
                           f"{quality.get('not_assessed')} not assessed."))
    return Section("training-data", "Training data", blocks)


def _preprocess_words(pre: dict, size, manifest: dict) -> str:
    steps = ["the fundus (the round field of view) is found in the photo"]
    if pre.get("crop", True):
        steps.append("the photo is cropped to it and padded to a square (a photo without a visible fundus is "
                     "centre-cropped)")
    else:
        steps.append("the photo is padded to a square (no cropping)")
    steps.append(f"resized to {size} × {size} px")
    if pre.get("mask", True):
        steps.append("everything outside the fundus circle is blacked out")
    if pre.get("ben_graham"):
        steps.append(f"the local average colour is subtracted (Graham 2015; Gaussian sigma {pre.get('ben_graham_sigma')} "
                     "at a 300 px fundus radius, scaled to the image)")
    if pre.get("clahe"):
        steps.append(f"contrast is equalised with CLAHE on the lightness channel (clip {pre.get('clahe_clip')}, "
                     f"{pre.get('clahe_tiles')} × {pre.get('clahe_tiles')} tiles)")
    text = "; ".join(steps) + "."
    mean, std = manifest.get("mean"), manifest.get("std")
    if mean and std:
        normalize = ((manifest.get("config") or {}).get("data") or {}).get("normalize")
        how = {"model": "the backbone's own", "imagenet": "ImageNet's", "unit": "none: pixels scaled to 0-1"}.get(normalize)
        text += (" The network then scales each channel by mean (" + ", ".join(f"{m:.3f}" for m in mean) + ") and std ("
                 + ", ".join(f"{s:.3f}" for s in std) + ") of the 0-1 pixel range" + (f" ({how})" if how else "") + ".")
    return text[0].upper() + text[1:]


def _preprocessing(manifest: dict) -> Section:
    blocks: list = []
    if manifest.get("members"):
        same: dict[str, list[str]] = {}  # members preprocessing alike (the folds of a cv) share one paragraph
        for info in manifest.get("member_info") or []:
            if info.get("preprocess"):
                same.setdefault(_preprocess_words(info["preprocess"], info.get("input_size"), {}), []).append(str(info.get("folder")))
        blocks += [Para(f"**{', '.join(folders)}**: {words}") for words, folders in same.items()]
        if not blocks:
            blocks.append(Note("See each member's card."))
    elif manifest.get("preprocess"):
        blocks.append(Para(_preprocess_words(manifest["preprocess"], manifest.get("input_size"), manifest)))
    else:
        blocks.append(Note("No preprocessing settings in bundle.json."))
    blocks.append(Para("`drgrader predict`, `serve` and `evaluate` apply exactly these steps from the settings in "
                       "bundle.json: give them the original photos (JPEG, PNG, TIFF or DICOM), never photos "
                       "preprocessed some other way."))
    return Section("preprocessing", "Preprocessing", blocks)


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


def _evaluation_blocks(result: dict, where: str) -> list:
    """Figures of one evaluation: a sentence on the eyes, the headline table, per-grade recall."""
    boot = (result.get("bootstrap") or {}).get("n")
    ci_text = (f"95% confidence intervals from {boot} bootstrap resamples of patients (both eyes of a patient "
               "stay together)" if boot else "no confidence intervals (bootstrap off)")
    blocks: list = [Para(f"Measured on {where}: {result.get('n_images')} eyes of {result.get('n_patients')} "
                         f"patients; {ci_text}."), _figures_table(result)]
    per_grade = _per_grade_table(result)
    if per_grade is not None:
        blocks.append(per_grade)
    return blocks


def _where(metrics: dict) -> tuple[str, str]:
    return evaluated_on(RunData(run_dir=Path("."), metrics=metrics, config=None, config_text=None, predictions=None,
                                training_log=None))


def _validation(manifest: dict, metrics: dict) -> dict | None:
    """The validation figures (no CIs: the same eyes fitted the thresholds)."""
    val = metrics.get("val") or manifest.get("validation") or {}
    if val.get("headline"):
        return val
    return None


def _performance(manifest: dict, metrics: dict) -> Section:
    test = metrics.get("test") or {}
    blocks: list = []
    if test:
        _, where = _where(metrics)
        blocks += _evaluation_blocks(test, where)
        if metrics.get("test_single_eye"):
            blocks.append(Note("These figures use the paired-eye stage (each eye graded with its fellow eye); "
                               "the report beside this bundle has the single-eye figures too."))
        summary = (metrics.get("per_fold") or {}).get("summary") or {}
        if summary:
            spread = ", ".join(f"{HEADLINE_LABELS[k][0]} {fmt_num(v['mean'])} ± {fmt_num(v['sd'])}" for k, v in summary.items())
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
    if kind == "regression":
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


def _operating_points(manifest: dict, metrics: dict) -> Section:
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
                           "thresholds: " + "; ".join(parts) + ". A photo given alone uses the thresholds above."))
    blocks += _patient_decision_blocks(manifest.get("patient_decision"))
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


def _patient_decision_blocks(decision) -> list:
    """The per-patient decision's operating points (``patient_decision`` in bundle.json, when the
    bundle has one): the urgent threshold and the uncertainty band in words, other keys listed."""
    if not isinstance(decision, dict) or not decision:
        return []
    d = dict(decision)
    lines = ["- **negative** (rescreen as usual) and **refer** (referable DR) follow the referable threshold above, "
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


def _limits(manifest: dict, metrics: dict, synthetic: bool) -> Section:
    items = []
    size = manifest.get("input_size")
    if size:
        um = 13000 / size  # a 45° field is about 13 mm of retina
        items.append(f"**Resolution**: every photo is reduced to {size} × {size} px before grading, so one pixel covers "
                     f"roughly {um:.0f} µm of a 45° fundus field. A microaneurysm, the only lesion of mild DR, is "
                     f"10–100 µm across: {10 / um:.1f}–{100 / um:.1f} pixels at this size; smaller lesions are lost.")
    sources = list((_summary(manifest, metrics).get("sources") or {}))
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
            items.append(f"**Small evaluation**: only {positives} referable eyes were held out; the CIs above are wide "
                         "for that reason.")
    if metrics.get("evaluated_on") == "val":
        items.append("**No test split**: the figures are on the validation patients, who also chose the checkpoint and "
                     "the thresholds; they are optimistic.")
    if synthetic:
        items.append("**Synthetic training data**: no figure here applies to real photos.")
    blocks: list = [Para("\n".join(f"- {item}" for item in items))]
    warnings = list(test.get("warnings") or [])
    if warnings:
        blocks.append(Alert("warning", f"{len(warnings)} automatic warning{'s' if len(warnings) != 1 else ''} on the "
                                       "held-out figures", warnings))
    return Section("limits", "Known limits", blocks)


def _provenance(manifest: dict, metrics: dict, command: str | None, version: str, date: str) -> Section:
    rows = [["drgrader version", version], ["Made", date]]
    rows.append(["Command", f"`{command}`" if command else "not recorded (called from Python)"])
    config = manifest.get("config") or {}
    if config.get("name"):
        rows.append(["Experiment", f"{config['name']} (the whole resolved configuration is `config` in bundle.json)"])
    training = metrics.get("training") or {}
    if training:
        rows.append(["Training", f"{training.get('epochs_run')} epochs, best epoch {training.get('best_epoch')}, "
                                 f"{training.get('wall_time_s')} s on {training.get('world_size', 1)} process(es)"])
    if metrics.get("folds"):
        rows.append(["Cross-validation", f"{metrics['folds']} patient-level folds; the ensemble averages the fold models"])
    checksum = (metrics.get("data") or {}).get("manifest_sha256")
    if checksum:
        rows.append(["Data manifest checksum", checksum])
    for name, value in (metrics.get("versions") or {}).items():
        if name != "drgrader":
            rows.append([name, str(value)])
    return Section("provenance", "Provenance", [Table(["What", "Value"], rows, align="ll")])


# ============================================================ external evaluations
def external_entry(evaluation: ExternalEvaluation) -> str:
    """One dated entry of "External evaluations", between markers that name its folder."""
    metrics = evaluation.metrics
    where = (metrics.get("evaluated_on") or "").split(":", 1)[-1]
    name = Path(where).name or where or "external data"
    summary = (metrics.get("data") or {}).get("summary") or {}
    blocks: list = []
    if evaluation.synthetic:
        blocks.append(Note("Synthetic photos (drgrader synth): a software check, not a clinical figure."))
    facts = [f"data set `{where}`", f"evaluation folder `{evaluation.folder}`"]
    if summary:
        grades = ", ".join(f"{_count(summary.get('grades') or {}, g)} × grade {g}" for g in GRADES)
        facts.append(f"{summary.get('images')} photos of {summary.get('patients')} patients ({grades}) from {_sources(summary)}")
    if evaluation.command:
        facts.append(f"command `{evaluation.command}`")
    version = (metrics.get("versions") or {}).get("drgrader")
    if version:
        facts.append(f"drgrader {version}")
    blocks.append(Para("; ".join(facts) + ". Thresholds as fitted on the model's own validation data (above)."))
    test = metrics.get("test") or {}
    if test:
        blocks += _evaluation_blocks(test, "this data set")
        if test.get("warnings"):
            blocks.append(Alert("warning", "Automatic warnings", list(test["warnings"])))
    body = "\n\n".join(_block_md(b) for b in blocks)
    return (_BEGIN.format(key=evaluation.key) + f"\n### {name} ({_date(metrics.get('created'))})\n\n"
            + body + "\n" + _END + "\n")


def _split_externals(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(the card up to "External evaluations", its entries as (key, text))."""
    head, _, tail = text.partition(f"\n## {EXTERNAL_TITLE}\n")
    return head.rstrip("\n") + "\n", [(m.group(1), m.group(0).rstrip("\n") + "\n") for m in _ENTRY.finditer(tail)]


def _join(head: str, entries: list[tuple[str, str]]) -> str:
    body = "\n".join(entry for _, entry in entries) if entries else NO_EXTERNAL + "\n"
    return f"{head}\n## {EXTERNAL_TITLE}\n\n{body}"


def add_externals(text: str, externals: Sequence[ExternalEvaluation]) -> str:
    """The card with these evaluations' entries: an entry of the same folder is replaced in
    place, a new one appended; the other entries are kept."""
    head, entries = _split_externals(text)
    for evaluation in externals:
        entry = (evaluation.key, external_entry(evaluation))
        same = [i for i, (key, _) in enumerate(entries) if key == evaluation.key]
        if same:
            entries[same[0]] = entry
        else:
            entries.append(entry)
    return _join(head, entries)


def keep_externals(new: str, old: str | None) -> str:
    """``new`` card with the external entries of ``old`` that ``new`` lacks (a rewritten card
    never loses what ``evaluate`` added)."""
    if not old:
        return new
    head, entries = _split_externals(new)
    keys = {key for key, _ in entries}
    entries += [(key, entry) for key, entry in _split_externals(old)[1] if key not in keys]
    return _join(head, entries)


# ========================================================================= writers
@contextmanager
def _card_lock(bundle_dir: Path) -> Iterator[None]:
    """An exclusive lock on the bundle folder while its card is read and rewritten, so two
    evaluations finishing together do not drop each other's entry (POSIX only)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    import os

    fd = os.open(bundle_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_model_card(bundle_dir: str | Path, text: str) -> Path:
    """Write ``MODEL_CARD.md`` into the bundle atomically, keeping the external entries of the card
    it replaces."""
    bundle_dir = Path(bundle_dir)
    file = bundle_dir / CARD_FILE
    with _card_lock(bundle_dir):
        old = file.read_text(encoding="utf-8") if file.is_file() else None
        atomic_write_text(file, keep_externals(text, old))
    return file


def record_external_evaluation(bundle_dir: str | Path, evaluation: ExternalEvaluation, *, base: str) -> Path:
    """Add (or replace) ``evaluation``'s entry in the bundle's card; ``base`` is the card to
    start from when the bundle has none yet (a bundle made before cards existed)."""
    bundle_dir = Path(bundle_dir)
    file = bundle_dir / CARD_FILE
    with _card_lock(bundle_dir):
        text = file.read_text(encoding="utf-8") if file.is_file() else base
        atomic_write_text(file, add_externals(text, [evaluation]))
    return file


def _synthetic(data_root) -> bool:
    from drgrader.synth import MARKER_NAME

    return data_root is not None and (Path(data_root) / MARKER_NAME).is_file()


def write_bundle_card(bundle_dir: str | Path, metrics: dict, *, data_root=None) -> Path:
    """Build and write the card of a bundle just made (training, ``drgrader cv``, ``drgrader
    ensemble``) from its bundle.json and ``metrics``; ``data_root`` is the training data set."""
    from datetime import datetime, timezone

    from drgrader.inference.bundle_spec import read_manifest
    from drgrader.runtime import command_line

    metrics = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **metrics}
    text = build_model_card(read_manifest(bundle_dir), metrics, command=command_line(), synthetic=_synthetic(data_root))
    file = write_model_card(bundle_dir, text)
    log.info("model card: %s", file)
    return file


def record_evaluation(bundle_dir: str | Path, eval_dir: str | Path, metrics: dict, *, run_dir=None, data_root=None) -> Path | None:
    """``drgrader evaluate --data``: add the evaluation in ``eval_dir`` to the card of the bundle it
    measured (only the card changes; a bundle without one gets one first, from its bundle.json and
    the run's metrics.json when the run folder is known). A bundle folder that cannot be written
    (a shared, read-only model folder) keeps its card, with a warning: the figures are in eval_dir."""
    import json

    from drgrader.inference.bundle_spec import read_manifest
    from drgrader.runtime import command_line

    run_metrics = {}
    if run_dir is not None and (Path(run_dir) / "metrics.json").is_file():
        try:
            run_metrics = json.loads((Path(run_dir) / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # the card then says it has no held-out figures
            log.warning("model card: %s not read: %s", Path(run_dir) / "metrics.json", exc)
        if not isinstance(run_metrics, dict):
            run_metrics = {}
    manifest = read_manifest(bundle_dir)
    train_root = ((manifest.get("config") or {}).get("data") or {}).get("root")
    base = build_model_card(manifest, run_metrics, synthetic=_synthetic(train_root))
    evaluation = ExternalEvaluation(metrics, str(Path(eval_dir).resolve()), command_line(), _synthetic(data_root))
    try:
        file = record_external_evaluation(bundle_dir, evaluation, base=base)
    except OSError as exc:
        log.warning("%s not updated (%s); the figures are in %s", Path(bundle_dir) / CARD_FILE, exc, eval_dir)
        return None
    log.info("model card updated: %s", file)
    return file

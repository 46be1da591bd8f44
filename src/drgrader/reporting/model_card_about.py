"""The model card's first sections: what the model is for and not for, the model, the training
data and how a photo is prepared (see :mod:`.model_card`)."""

from __future__ import annotations

import re

from drgrader.grading import GRADE_NAMES, GRADES
from drgrader.inference.int8_figures import gate_figures_text, kept_attempt, recipe_choice, speed_text, unmeasured
from drgrader.reporting.document import (
    Alert,
    Note,
    Para,
    Section,
    Table,
)
from drgrader.reporting.run_data import left_out_text, split_sentence, stage_fitted_on

EXTERNAL_TITLE = "External evaluations"


KIND_WORDS: dict[object, str] = {
    "softmax5": "five grade probabilities (softmax)",
    "regression": "one continuous grade (regression)",
    "coral": "ordinal grade probabilities (CORAL)",
    "corn": "ordinal grade probabilities (CORN)",
    "multitask": "one continuous grade (mean of a regression and a CORN head, trained with a referable head)",
    "binary": "one screening probability",
}
TASK_WORDS: dict[object, str] = {
    "grade": "the five grades of the International Clinical DR scale (0 none, 1 mild, 2 moderate, "
             "3 severe non-proliferative, 4 proliferative) and two screening scores (any DR, referable DR)",
    "any_dr": "one screening decision: any DR (grade ≥ 1) or not; no grade",
    "referable": "one screening decision: referable DR (grade ≥ 2, moderate or worse) or not; no grade",
}
OBJECTIVE_WORDS: dict[object, str] = {
    "youden": "the threshold with the highest sensitivity + specificity",
    "accuracy": "the threshold with the highest accuracy",
    "sensitivity": "the highest threshold whose sensitivity reaches {target:.0%}",
}
TTA_WORDS = {"orig": "the photo as is", "hflip": "mirrored left-right", "vflip": "mirrored top-bottom",
             "hvflip": "rotated 180°", "bright": "brightened", "rot90": "rotated 90°", "rot270": "rotated 270°",
             "transpose": "mirrored about the diagonal", "antitranspose": "mirrored about the other diagonal",
             "zoom": "zoomed in"}
SCREEN_GRADE = {"any_dr": 1, "referable": 2}
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[^\s/()]+/)+([^\s/()]+)")


def without_folders(text: str) -> str:
    """``text`` with every absolute path cut to its file name: a card travels with the bundle and
    must not name the folders of the machine that built it."""
    return _ABSOLUTE_PATH.sub(r"\1", text)
BAND_SHARES = (0.05, 0.1, 0.2, 0.3)  # shares of patients sent to a human shown beside the bundle's own


def card_name(manifest: dict, metrics: dict) -> str:
    return str((manifest.get("config") or {}).get("name") or metrics.get("run") or manifest.get("backbone") or "drgrader model")


def card_date(created: str | None) -> str:
    return str(created)[:10] if created else "date unknown"


def data_summary_of(manifest: dict, metrics: dict) -> dict:
    return manifest.get("data_summary") or (metrics.get("data") or {}).get("summary") or {}


def count_in(mapping: dict, key) -> int:
    """A count from a dict whose integer keys may have become strings in JSON."""
    return int(mapping.get(str(key), mapping.get(key, 0)) or 0)


def sources_text(summary: dict) -> str:
    sources = summary.get("sources") or {}
    return ", ".join(f"{k} ({v} images)" for k, v in sources.items()) or "an unrecorded source"


# ======================================================================== sections
def intended_use_section(manifest: dict, metrics: dict, synthetic: bool) -> Section:
    task = manifest.get("task")
    sources = ", ".join((data_summary_of(manifest, metrics).get("sources") or {}))
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


def model_section(manifest: dict, metrics: dict) -> Section:
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
            rows.append(["Initial weights", without_folders(str(weights))])
    views = manifest.get("tta") or ["orig"]
    rows.append(["Test-time views", ", ".join(TTA_WORDS.get(v, v) for v in views)
                 + (" (scores averaged)" if len(views) > 1 else "")])
    if manifest.get("paired_eyes"):
        fitted = stage_fitted_on(manifest.get("patient_decision"), metrics.get("evaluated_on"))  # probe 58 CV9
        rows.append(["Paired eyes", "when both eyes of a patient are given, each eye's grade also uses its fellow "
                                    f"eye's scores (a stage {fitted}); an eye whose own score "
                                    "says grade 3 or more keeps that grade whatever its fellow shows"])
    if manifest.get("onnx"):
        rows.append(["ONNX", f"model.onnx (opset {manifest['onnx'].get('opset')}), same scores as PyTorch within "
                             f"{manifest['onnx'].get('parity_max_abs_diff', 0):.1e}"])
    int8 = manifest.get("int8")
    if int8:
        last = kept_attempt(int8)
        verdict = "passed its gate" if int8.get("passed_gate") else "**kept although it failed its gate**"
        if unmeasured(last):  # the gate checked only what the validation photos could measure
            checked = ["grade agreement"] + [name for name in ("kappa", "referable AUC") if name not in unmeasured(last)]
            verdict += f" on what could be measured ({' and '.join(checked)})"
        rows.append(["int8", f"{int8['file']} ({int8['recipe']}; {recipe_choice(int8)}; {int8['calibration_photos']} "
                             f"calibration photos) {verdict}: {gate_figures_text(last)}; {speed_text(int8)}"])
    return Section("model", "Model", [Table(["What", "Value"], rows, align="ll")])


def training_data_section(manifest: dict, metrics: dict) -> Section:
    summary = data_summary_of(manifest, metrics)
    if not summary:
        text = "No training data summary in this bundle."
        if manifest.get("members"):
            text += " Each member's own card (members/*/MODEL_CARD.md) describes its training data."
        return Section("training-data", "Training data", [Note(text)])
    eyes = summary.get("eyes") or {}
    text = (f"{summary.get('images')} photos of {summary.get('patients')} patients from {sources_text(summary)}; "
            f"{eyes.get('left', 0)} left, {eyes.get('right', 0)} right and {eyes.get('unknown', 0)} unknown eyes.")
    splits = summary.get("splits") or {}
    if len(splits) > 1:
        fitted = ("fitted the thresholds it could (not all: see Operating points)"
                  if (manifest.get("thresholds") or {}).get("not_fitted") else "fitted the thresholds")
        method = (((manifest.get("config") or {}).get("data") or {}).get("split") or {}).get("method")
        text += f" {split_sentence(summary, method)} Training learnt from `train`; `val` chose the checkpoint and {fitted}."
    left_out = left_out_text((metrics.get("data") or {}).get("skipped") or summary.get("skipped"))
    if left_out:
        text += f" Left out: {left_out}."
    header = ["Grade", "all"] + list(splits)
    rows = [[GRADE_NAMES[g], str(count_in(summary.get("grades") or {}, g))]
            + [str(count_in(s.get("grades") or {}, g)) for s in splits.values()] for g in GRADES]
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
        how = {"model": "the backbone's own", "imagenet": "ImageNet's", "unit": "none: pixels scaled to 0-1"}.get(str(normalize))
        text += (" The network then scales each channel by mean (" + ", ".join(f"{m:.3f}" for m in mean) + ") and std ("
                 + ", ".join(f"{s:.3f}" for s in std) + ") of the 0-1 pixel range" + (f" ({how})" if how else "") + ".")
    return text[0].upper() + text[1:]


def preprocessing_section(manifest: dict) -> Section:
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

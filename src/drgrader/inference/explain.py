"""Grad-CAM heat maps (pytorch-grad-cam) over the preprocessed fundus the model actually sees.

Two maps per photo, both at ``GraderNet.cam_target_layer()``:

- **grade**: the evidence for the predicted grade. Target: that class's logit (softmax5), the
  output itself (regression), the sum of the logits (coral/corn: every logit rises with the
  grade), or the logit (binary models).
- **referable**: the evidence for referable DR (grade >= 2). Target: the decoded
  ``score_referable`` of the :class:`ScoringNet` (gradients flow through the decoding), or the
  logit of a binary referable model. None for binary any-DR models (they have no such score).

An ensemble is explained through its first member (each member has its own preprocessing, so
their maps do not overlay one image); the prediction shown is the ensemble's.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from torch import nn

from drgrader.data.identity_notes import identity_summary
from drgrader.data.images import ImageReadError, drawing_png, is_drawing
from drgrader.data.inputs import collect_inputs
from drgrader.data.manifest import DataError
from drgrader.data.quality import Quality, assess_quality
from drgrader.grading import ONE_SCORE_KINDS, SCREENS, column_index
from drgrader.inference.bundle import Bundle, BundleError, load_bundle
from drgrader.inference.predict import describe_prediction
from drgrader.io import atomic_write_bytes
from drgrader.models.heads import decode
from drgrader.outputs import OutputError, claim_dir, fitting_name, unique_names

log = logging.getLogger("drgrader")

REFERABLE_COLUMN = column_index("score_referable")
# Grad-CAM hooks live on the shared network: one explanation at a time per process.
_CAM_LOCK = threading.Lock()


class _RawOutputs(nn.Module):
    """Pixels (0..255) -> the head's raw outputs, normalised exactly as ScoringNet does."""

    def __init__(self, scoring: nn.Module):
        super().__init__()
        self.scoring = scoring

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.scoring.net(self.scoring.normalise(pixels))


def _cam_network(leaf: Bundle) -> nn.Module:
    """The PyTorch ScoringNet of a single-model bundle (loaded from the weights for ONNX bundles)."""
    net = getattr(leaf.runner, "scoring_net", None)
    if net is not None:
        return net
    if not (leaf.path / "model.safetensors").is_file():
        raise BundleError(f"{leaf.path}: Grad-CAM needs the PyTorch weights (model.safetensors); this bundle has only ONNX")
    return load_bundle(leaf.path, "torch").runner.scoring_net


def _grade_target(kind: str, grade: int):
    """What the grade map explains, as a function of one image's raw outputs."""
    if kind == "softmax5":
        return lambda raw: raw[grade]
    if kind in ("coral", "corn"):
        return lambda raw: raw.sum()
    if kind in ONE_SCORE_KINDS:  # the one score the model grades by (multitask: not its first output alone)
        return lambda raw: decode(kind, raw[None])["expected_grade"][0]
    return lambda raw: raw[0]  # binary logit


def _grad_cam(model: nn.Module, layer: nn.Module, pixels: torch.Tensor, target) -> np.ndarray:
    """One Grad-CAM map (H x W, 0..1) for a batch of one."""
    with GradCAM(model=model, target_layers=[layer]) as cam:
        return cam(input_tensor=pixels, targets=[target])[0]


def overlay(image: np.ndarray, cam: np.ndarray, weight: float = 0.5) -> np.ndarray:
    """A heat map (H x W, 0..1) blended over an RGB uint8 image -> RGB uint8."""
    # viridis rather than the default jet: readable by colour-blind viewers.
    return show_cam_on_image(
        image.astype(np.float32) / 255.0, cam, use_rgb=True, colormap=cv2.COLORMAP_VIRIDIS, image_weight=weight
    )


def explain_file(bundle: Bundle, path, *, orig_size: tuple[int, int] | None = None, max_pixels: int | None = None,
                 header=None) -> dict:
    """:func:`explain_image` of a photo file, decoded for each model as ``predict`` decodes it
    (:meth:`~drgrader.inference.bundle.Bundle.prepare_photo`), so the panel's scores are predict's
    (probe 48 CL2: a full decode put them up to 0.18 grade units apart)."""
    from drgrader.data.images import read_image_size

    orig_size = orig_size or read_image_size(path, **({} if max_pixels is None else {"max_pixels": max_pixels}), header=header)
    prepared, rgb, quality = bundle.read_photo(path, orig_size=orig_size, max_pixels=max_pixels, header=header)
    return explain_image(bundle, rgb, prepared=prepared, quality=quality)


def explain_image(bundle: Bundle, rgb: np.ndarray, *, tta: list[str] | None = None, quality: Quality | None = None,
                  prepared=None) -> dict:
    """Prediction and Grad-CAM maps of one raw RGB photo.

    Returns ``preprocessed`` (the model input, RGB uint8), ``cam_grade`` / ``cam_referable``
    (H x W, 0..1, or None), ``overlay_grade`` / ``overlay_referable`` (RGB uint8 or None),
    ``prediction`` (JSON-ready: task, grade, grade_name, probabilities, expected_grade,
    score_any, score_referable, any_dr, referable), ``quality`` (gradable, score, reason) and
    ``cam_bundle`` (the bundle folder whose network the maps come from). ``quality``: the photo's,
    when its file was assessed (:func:`~drgrader.data.photo.photo_quality`), else from ``rgb``.
    ``prepared``: the bundle's input made from its file (:func:`explain_file`), else from ``rgb``.
    """
    leaf = bundle.leaves()[0]
    scoring = _cam_network(leaf)
    prepared = bundle.prepare(rgb) if prepared is None else prepared
    preprocessed = prepared
    while isinstance(preprocessed, list):  # an ensemble's: its first model's input
        preprocessed = preprocessed[0]
    scores = bundle.score_prepared([prepared], tta)
    prediction = describe_prediction(bundle, scores[0])
    quality = quality or assess_quality(rgb, input_size=bundle.input_size)

    kind = leaf.manifest["kind"]
    layer = scoring.net.cam_target_layer()
    pixels = torch.from_numpy(np.ascontiguousarray(preprocessed.transpose(2, 0, 1)[None], dtype=np.float32))
    with _CAM_LOCK:
        # Binary models: explain their one logit; others need a predicted grade.
        grade = 0 if kind == "binary" else prediction["grade"]
        cam_grade = None if grade is None else _grad_cam(_RawOutputs(scoring), layer, pixels, _grade_target(kind, grade))
        if kind == "binary":
            cam_referable = cam_grade if leaf.task == "referable" else None
        else:
            cam_referable = _grad_cam(scoring, layer, pixels, lambda scores: scores[REFERABLE_COLUMN])
    return {
        "preprocessed": preprocessed,
        "cam_grade": cam_grade,
        "cam_referable": cam_referable,
        "overlay_grade": None if cam_grade is None else overlay(preprocessed, cam_grade),
        "overlay_referable": None if cam_referable is None else overlay(preprocessed, cam_referable),
        "prediction": prediction,
        "quality": {"gradable": quality.gradable, "score": quality.score, "reason": quality.reason},
        "cam_bundle": str(leaf.path),
    }


# ---------------------------------------------------------------------------- panels
def _put_text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.5) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def caption(result: dict) -> str:
    """One line saying what the model predicted from this photo alone, e.g. ``photo alone: grade 2
    moderate | referable: yes (0.71)`` (predict may grade an eye differently with its fellow)."""
    pred = result["prediction"]
    parts = []
    if pred["grade"] is not None:
        parts.append(f"grade {pred['grade_name']}")
    for name, (column, _) in SCREENS.items():
        score = pred[column]
        if pred[name] is not None and score is not None:
            parts.append(f"{name.replace('_', ' ')}: {'yes' if pred[name] else 'no'} ({score:.2f})")
    if not result["quality"]["gradable"]:
        parts.append(f"UNGRADABLE: {result['quality']['reason']}")
    return "photo alone: " + " | ".join(parts)


def explanation_panel(result: dict, title: str = "", tile: int = 256) -> np.ndarray:
    """Side by side: preprocessed input | grade Grad-CAM | referable Grad-CAM, with the
    prediction in a caption bar on top. RGB uint8."""
    pred = result["prediction"]
    labels = ["input (preprocessed)", f"Grad-CAM: grade {pred['grade'] if pred['grade'] is not None else ''}", "Grad-CAM: referable"]
    images = [result["preprocessed"], result["overlay_grade"], result["overlay_referable"]]
    tiles = []
    for image, label in zip(images, labels):
        if image is None:
            image = np.full((tile, tile, 3), 40, dtype=np.uint8)
            _put_text(image, "not available", (10, tile // 2))
        image = cv2.resize(image, (tile, tile), interpolation=cv2.INTER_LINEAR)
        strip = np.zeros((22, tile, 3), dtype=np.uint8)
        _put_text(strip, label, (6, 16), 0.45)
        tiles.append(np.vstack([image, strip]))
    body = np.hstack(tiles)
    bar = np.zeros((48, body.shape[1], 3), dtype=np.uint8)
    _put_text(bar, title, (8, 18))
    _put_text(bar, caption(result), (8, 40), 0.45)
    return np.vstack([bar, body])


def explain_command(bundle: str | Path | Bundle, images: Sequence[str | Path], out: str | Path) -> Path:
    """``drgrader explain``: one PNG per image (``<image_id>_gradcam.png``) in ``out``.
    ``images``: files, folders or a CSV, as for ``drgrader predict``. Unreadable images are
    reported and skipped."""
    # A folder of heat maps: a new or plain folder, never a photo, a run, a bundle or an input folder.
    out = claim_dir(Path(out), inputs=[Path(i) for i in images], may_reuse=("a folder",))
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle, "auto")
    bundle.warn_if_synthetic()
    table = collect_inputs(images)
    if table.empty:
        raise DataError(f"no images found in {', '.join(str(i) for i in images)}")
    noted = table[table["identity_note"] != ""]
    if len(noted):  # a panel titled by a contested id (a shifted CSV cell) must not pass for that patient's eye
        first = noted.iloc[0]
        log.warning("%s; a panel is titled by its image id as given: e.g. %s: %s", identity_summary(table["identity_note"]),
                    first["image_id"], first["identity_note"])
    if bundle.paired_eyes:
        both = table[table["eye"] != ""].groupby("patient_id")["eye"].nunique()
        if (both > 1).any():
            log.warning("explain grades each photo alone; predict grades an eye together with its fellow (the bundle's "
                        "paired-eye stage), so for the %d patient(s) with both eyes here its grades may differ", int((both > 1).sum()))
    written = 0
    # clinicA/10_left.jpeg and clinicB/10_left.jpeg must not share one heat map file.
    # A leading dot (an id '../base/10_left' from a list) would hide the panel (probe 53 BQ6).
    names = unique_names(re.sub(r"[^\w.-]+", "_", image_id).lstrip("._") or "photo" for image_id in table["image_id"])
    for name in names:  # a panel replaces an earlier panel, never a file of the user's under its name
        panel = out / fitting_name(name, "_gradcam.png")
        if panel.exists() and not is_drawing(panel):
            raise OutputError(f"--out {out} holds {panel.name}, which drgrader did not draw: it would be replaced by "
                              "that photo's panel; choose another --out")
    for row, name in zip(table.itertuples(), names):
        try:
            result = explain_file(bundle, row.path)
        except ImageReadError as exc:
            log.error("%s", exc)
            continue
        # A 244-character photo name is a heat-map name over 255 bytes: cut, kept unique.
        atomic_write_bytes(out / fitting_name(name, "_gradcam.png"), drawing_png(explanation_panel(result, title=row.image_id), "explain's Grad-CAM panel"))
        written += 1
    log.info("Grad-CAM panels for %d of %d images: %s", written, len(table), out)
    return out

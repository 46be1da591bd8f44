"""``bundle.json``: its schema, its consistency, and the one reader and the one writer of it.

Training (``save_bundle``), ensembles (``make_ensemble``), ONNX export and ``drgrader cv`` all
write through :func:`write_manifest` (validated before it is written); :func:`read_manifest`
checks every bundle before anything is loaded, so a truncated, hand-edited or foreign
``bundle.json`` is one clear error naming the file and the field, never a KeyError deep inside
prediction. Both go through :func:`check_bundle`, which also refuses a bundle whose parts
disagree (a threshold against the cut-points, the input size, normalisation and preprocessing
against the training record, the input size against the ONNX graph's, the urgent or uncertain
band against the thresholds): such a bundle would not fail, it would give answers that
contradict each other.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drgrader import __version__
from drgrader.config import FIXED_NORMALIZE, PreprocessConfig
from drgrader.config_values import TtaViews
from drgrader.grading import GRADE_NAMES, NUM_GRADES, ONE_SCORE_KINDS, SCORE_COLUMNS
from drgrader.io import atomic_write_json

BUNDLE_FORMAT = 1
MANIFEST = "bundle.json"

__all__ = ["BUNDLE_FORMAT", "MANIFEST", "BundleError", "BundleSpec", "check_bundle", "read_manifest", "update_manifest",
           "write_manifest"]


class BundleError(ValueError):
    """A bundle that cannot be used (missing files, incompatible format, invalid bundle.json)."""


class Thresholds(BaseModel):
    """Decision thresholds on the score columns and the grade cut-points (None: not fitted)."""

    model_config = ConfigDict(extra="forbid")

    cutpoints: list[float] | None = None
    any_dr: float | None = None
    referable: float | None = None
    adjusted: list[str] = []  # what the fit changed so that the decisions agree, in words
    not_fitted: list[str] = []  # what the validation eyes could not fit (a grade missing), in words

    @field_validator("cutpoints")
    @classmethod
    def _four_increasing(cls, cuts: list[float] | None) -> list[float] | None:
        if cuts is None:
            return None
        if len(cuts) != NUM_GRADES - 1:
            raise ValueError(f"needs {NUM_GRADES - 1} cut-points, got {len(cuts)}")
        if any(not math.isfinite(c) for c in cuts) or cuts != sorted(cuts):
            raise ValueError(f"cut-points must be finite and increasing, got {cuts}")
        return cuts

    @field_validator("any_dr", "referable")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"threshold must be finite, got {value}")
        return value


class PairedEyeStage(BaseModel):
    """The paired-eye stage of a cross-fitted bundle (see ``inference.paired_eyes``)."""

    model_config = ConfigDict(extra="forbid")

    model: dict
    thresholds: Thresholds

    @field_validator("model")
    @classmethod
    def _model(cls, model: dict) -> dict:
        from drgrader.inference.paired_eyes import PairedEyeModel

        stage = PairedEyeModel.from_dict(model)  # raises ValueError naming what is malformed
        for key in ("coef", "intercept", "single_coef", "single_intercept"):
            value = getattr(stage, key)
            if not all(math.isfinite(v) for v in (value if isinstance(value, list) else [value])):
                # a NaN would leave every eye it touches without a grade, and its patient "ungradable"
                raise ValueError(f"{key} must be finite, got {value}")
        inverted = stage.inverted()
        if inverted:
            raise ValueError(f"the weight on the eye's own score must be positive, got {inverted}: "
                             "a higher score would not give a higher grade")
        return model


class PatientDecisionSpec(BaseModel):
    """The per-patient decision's own operating points (see ``inference.patient_decision``),
    fitted on validation or out-of-fold predictions: the urgent threshold on the (fused)
    expected grade, and the uncertainty cut-off sending ``refer_share`` of patients to a human
    grader, with the cut-offs of other shares (``band``: ``[[share, cutoff], ...]``)."""

    model_config = ConfigDict(extra="forbid")

    urgent_threshold: float | None = None
    urgent_rule: str = ""
    refer_share: float = Field(ge=0.0, le=0.5)
    uncertainty_cutoff: float | None = Field(None, ge=0.0, le=1.0)
    band: list[tuple[float, float]] = []
    fitted_on: str = ""

    @field_validator("urgent_threshold")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"threshold must be finite, got {value}")
        return value

    @field_validator("band")
    @classmethod
    def _band(cls, band: list[tuple[float, float]]) -> list[tuple[float, float]]:
        shares, cutoffs = [s for s, _ in band], [c for _, c in band]
        if any(not 0 < s <= 1 for s in shares) or shares != sorted(set(shares)):
            raise ValueError(f"band shares must be increasing within (0, 1], got {shares}")
        if any(not 0 <= c <= 1 for c in cutoffs) or cutoffs != sorted(cutoffs, reverse=True):
            raise ValueError(f"band cut-offs must lie in 0..1 and fall as the share grows, got {cutoffs}")
        return band

    @model_validator(mode="after")
    def _cutoff_with_share(self) -> "PatientDecisionSpec":
        if (self.uncertainty_cutoff is None) != (self.refer_share == 0):
            raise ValueError(f"refer_share {self.refer_share} needs an uncertainty cut-off (and share 0 none)")
        return self


class BundleSpec(BaseModel):
    """``bundle.json``. A single model has its network (``kind``, ``head``, normalisation,
    preprocessing); an ensemble has ``members`` (sub-folders, each a bundle) instead."""

    # Unknown keys are kept (a newer drgrader may add some); known ones must be right.
    model_config = ConfigDict(extra="allow")

    format: Literal[1]
    drgrader_version: str = "?"
    task: Literal["grade", "any_dr", "referable"]
    backbone: str
    input_size: int = Field(ge=16, le=2048)
    outputs: list[str] = Field(default_factory=lambda: list(SCORE_COLUMNS))
    class_names: list[str] = Field(default_factory=lambda: list(GRADE_NAMES))  # what every output shows
    weights_dtype: Literal["float32", "float16"] = "float32"  # of model.safetensors (float16: the built-in grader)
    thresholds: Thresholds | None = None
    tta: TtaViews = ["orig"]
    paired_eyes: PairedEyeStage | None = None
    patient_decision: PatientDecisionSpec | None = None
    # single model
    kind: Literal["softmax5", "regression", "coral", "corn", "multitask", "binary"] | None = None
    head: Literal["linear", "seed001"] | None = None
    drop_rate: float | None = Field(None, ge=0.0, lt=1.0)
    mean: list[float] | None = None
    std: list[float] | None = None
    preprocess: PreprocessConfig | None = None
    # ensemble
    ensemble: bool = False
    members: list[str] | None = None

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, outputs: list[str]) -> list[str]:
        if outputs != SCORE_COLUMNS:
            raise ValueError(f"must be {SCORE_COLUMNS}, got {outputs}")
        return outputs

    @field_validator("class_names")
    @classmethod
    def _class_names(cls, names: list[str]) -> list[str]:
        # Every table and page names the grades as drgrader does: other names would be shown beside the wrong grade.
        if names != list(GRADE_NAMES):
            raise ValueError(f"must be {list(GRADE_NAMES)}, got {names}")
        return names

    @field_validator("mean", "std")
    @classmethod
    def _three_channels(cls, values: list[float] | None) -> list[float] | None:
        if values is not None and (len(values) != 3 or any(not math.isfinite(v) for v in values)):
            raise ValueError(f"needs 3 finite values (R, G, B), got {values}")
        return values

    @model_validator(mode="after")
    def _single_or_ensemble(self) -> "BundleSpec":
        if self.members is not None:
            if len(self.members) < 2:
                raise ValueError(f"an ensemble needs at least two members, got {len(self.members)}")
            return self
        missing = [k for k in ("kind", "head", "drop_rate", "mean", "std", "preprocess") if getattr(self, k) is None]
        if missing:
            raise ValueError(f"a single-model bundle needs {', '.join(missing)}")
        if (self.kind == "binary") != (self.task != "grade"):
            raise ValueError(f"output kind {self.kind!r} does not fit task {self.task!r}")
        if std_zero := [s for s in self.std or [] if s <= 0]:
            raise ValueError(f"std must be positive, got {std_zero}")
        return self


def check_bundle(manifest: dict[str, Any], file: Path, *, onnx_input: list | None = None) -> None:
    """The one validation of a bundle, on every read and every write: ``bundle.json`` against
    :class:`BundleSpec`, then its parts against each other (:func:`inconsistency`), and, given
    ``onnx_input`` (the graph's input shape, when ONNX Runtime opens it), the input size against
    the graph. Any fault is one :class:`BundleError` naming ``file``."""
    try:
        spec = BundleSpec.model_validate(manifest)
    except ValidationError as err:
        first = err.errors()[0]
        # a key of the file may hold anything, line breaks included: quoted then, so the
        # message stays one line
        field = ".".join(str(p) if str(p).isprintable() else repr(str(p)) for p in first["loc"]) or "(top level)"
        raise BundleError(f"{file} is not a valid bundle: {field}: {first['msg']}") from None
    fault = inconsistency(spec, onnx_input)
    if fault:
        raise BundleError(f"{file} is inconsistent: {fault}")


def inconsistency(spec: BundleSpec, onnx_input: list | None = None) -> str | None:
    """What in a bundle contradicts the rest, in words (None: nothing)."""
    fault = _training_record_fault(spec) if spec.members is None else None
    if fault:
        return fault
    if onnx_input is not None:
        expected = ["batch", 3, spec.input_size, spec.input_size]
        if len(onnx_input) != 4 or any(isinstance(d, int) and d != e for d, e in zip(onnx_input[1:], expected[1:])):
            graph = Path(str(_extra(spec, "onnx", "file") or "model.onnx")).name
            shape = " x ".join(str(d) for d in onnx_input)
            return f"input_size {spec.input_size} does not fit {graph}, whose input is {shape}"
    if spec.paired_eyes is not None and spec.task != "grade":
        return f"paired_eyes is a grading stage, but the task is {spec.task!r}"
    members = _extra(spec, "member_info")
    member_kinds = {m.get("kind") if isinstance(m, dict) else None for m in members} if isinstance(members, list) else {None}
    if spec.members is not None and isinstance(members, list):
        described = [m.get("folder") if isinstance(m, dict) else None for m in members]
        if described != spec.members:  # members reordered, dropped or added by hand: the card would name other models
            return f"members {spec.members} are not the ones member_info describes ({described})"
        fault = mixed_score_scales({str(m.get("folder")): m.get("kind") for m in members if isinstance(m, dict)})
        if fault:
            return fault
    one_score = spec.kind in ONE_SCORE_KINDS or (spec.members is not None and bool(member_kinds) and member_kinds <= ONE_SCORE_KINDS)
    fault = _screens_fault(spec.thresholds, one_score=one_score, where="thresholds")
    if fault or spec.paired_eyes is None:
        return fault or _patient_fault(spec.patient_decision, spec.thresholds)
    # The paired-eye stage's fused grade is one score: grade, screens and urgent all on it.
    stage = spec.paired_eyes.thresholds
    return _screens_fault(stage, one_score=True, where="paired_eyes.thresholds") or _patient_fault(spec.patient_decision, stage)


def mixed_score_scales(kinds: dict[str, str | None]) -> str | None:
    """Ensemble members (name -> output kind) whose screening scores are on two scales, in words:
    a regression or multitask model's ``score_any`` / ``score_referable`` is its grade (0-4), every
    other kind's a probability (0-1); their average is neither, and no calibration maps one onto
    the other without labelled photos. None when the scales agree (or a kind is not known)."""
    grade_valued = [f"{name} ({kind})" for name, kind in kinds.items() if kind in ONE_SCORE_KINDS]
    probability = [f"{name} ({kind})" for name, kind in kinds.items() if kind and kind not in ONE_SCORE_KINDS]
    if not grade_valued or not probability:
        return None
    return (f"the members' screening scores are on different scales: a grade (0-4) from {', '.join(grade_valued)}, "
            f"a probability (0-1) from {', '.join(probability)}; an ensemble averages models of one scale")


def _training_record_fault(spec: BundleSpec) -> str | None:
    """A single model's input settings against its training record (``config``, when kept): an
    edited input size, normalisation or preprocessing would not fail, it would change the grades
    (and ONNX, which has the normalisation inside its graph, would disagree with torch)."""
    trained = _extra(spec, "config", "data", "image_size")
    if isinstance(trained, int) and trained != spec.input_size:
        # The network itself accepts any size (global pooling).
        return f"input_size {spec.input_size} is not the size the model was trained at (config.data.image_size {trained})"
    normalize = _extra(spec, "config", "data", "normalize")
    if isinstance(normalize, str) and normalize in FIXED_NORMALIZE:  # "model": timm's, not imported to read a bundle
        for name, trained_values, values in zip(("mean", "std"), FIXED_NORMALIZE[normalize], (spec.mean, spec.std)):
            if values is not None and any(abs(v - t) > NORMALIZE_TOLERANCE for v, t in zip(values, trained_values)):
                return f"{name} {values} is not how the model was trained (config.data.normalize {normalize!r}: {trained_values})"
    recorded = _extra(spec, "config", "data", "preprocess")
    if spec.preprocess is not None and isinstance(recorded, dict):
        try:
            trained_pre = PreprocessConfig.model_validate(recorded)
        except ValidationError:
            return None  # a record that is not a preprocessing: nothing to compare with
        for key in PreprocessConfig.model_fields:
            value, was = getattr(spec.preprocess, key), getattr(trained_pre, key)
            if value != was:
                return (f"preprocess.{key} {json.dumps(value)} is not how the model was trained "
                        f"(config.data.preprocess.{key} {json.dumps(was)})")
    return None


def _extra(spec: BundleSpec, *keys: str) -> Any:
    """A value under keys the schema does not type (``config``, ``onnx``, ...), or None."""
    value: Any = spec.model_extra or {}
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


TOLERANCE = 1e-9
NORMALIZE_TOLERANCE = 1e-6  # bundle.json's mean and std went through float32 (the network's buffers)


def _screens_fault(thresholds: Thresholds | None, *, one_score: bool, where: str) -> str | None:
    """The screening thresholds against each other and, when the grade and both screens are one
    score (``one_score``: a regression output, the fused grade), against the cut-points."""
    if thresholds is None:
        return None
    any_dr, referable, cuts = thresholds.any_dr, thresholds.referable, thresholds.cutpoints
    # score_any >= score_referable for every photo (1 - p0 >= p2 + p3 + p4, or one score), so
    # any_dr <= referable is what makes every referable photo an any-DR one.
    if any_dr is not None and referable is not None and any_dr > referable + TOLERANCE:
        return f"{where}.any_dr {any_dr:g} is above {where}.referable {referable:g}: a photo could be referable but not any DR"
    if not (one_score and cuts):
        return None
    for screen, value, grade in (("any_dr", any_dr, 1), ("referable", referable, 2)):
        cut = cuts[grade - 1]
        if value is not None and abs(value - cut) > TOLERANCE:
            return (f"{where}.{screen} {value:g} is not the grade-{grade} cut-point {cut:g} on the same score: a photo "
                    f"scored between them would get a grade and a {screen} decision that disagree")
    return None


def _patient_fault(spec: PatientDecisionSpec | None, thresholds: Thresholds | None) -> str | None:
    """The per-patient decision against the thresholds it decides with, and its band fields
    against each other."""
    from drgrader.inference.patient_decision import DEFAULT_URGENT_GRADE

    if spec is None:
        return None
    cuts = thresholds.cutpoints if thresholds else None
    floor = cuts[2] if cuts else DEFAULT_URGENT_GRADE
    if spec.urgent_threshold is not None and spec.urgent_threshold < floor - TOLERANCE:
        return (f"patient_decision.urgent_threshold {spec.urgent_threshold:g} is below the grade-3 cut-point {floor:g}: "
                "a patient could be urgent with no eye graded 3 or more")
    top = NUM_GRADES - 1  # the urgent threshold is on the (fused) expected grade, 0 .. 4
    if spec.urgent_threshold is not None and spec.urgent_threshold > top + TOLERANCE:
        return (f"patient_decision.urgent_threshold {spec.urgent_threshold:g} is above the top of the grade scale ({top}): "
                "no patient could ever be urgent")
    if spec.uncertainty_cutoff is None or not spec.band:
        return None
    share, cutoff = spec.refer_share, spec.uncertainty_cutoff
    if share > spec.band[-1][0] + TOLERANCE:
        return f"patient_decision.refer_share {share:g} is beyond its band (shares up to {spec.band[-1][0]:g})"
    # The band's cut-offs fall as the share grows; the share's own cut-off lies between its
    # neighbours' ("nobody": cut-off 1), or `predict --refer-share` would send another share.
    below = max(((s, c) for s, c in spec.band if s <= share + TOLERANCE), default=(0.0, 1.0))
    above = min((s, c) for s, c in spec.band if s >= share - TOLERANCE)
    if not above[1] - TOLERANCE <= cutoff <= below[1] + TOLERANCE:
        return (f"patient_decision.uncertainty_cutoff {cutoff:g} for refer_share {share:g} is outside its band "
                f"({above[1]:g} at share {above[0]:g} .. {below[1]:g} at share {below[0]:g})")
    return None


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The bundle's ``bundle.json``, checked against :class:`BundleSpec`: any fault is one
    :class:`BundleError` naming the file and the field."""
    path = Path(path)
    file = path / MANIFEST if path.is_dir() else path
    if not file.is_file():
        inside = path / "bundle" / MANIFEST  # a run folder given for its bundle (probe 36 AZ11)
        hint = f"; a training run's folder: give {path / 'bundle'}" if path.is_dir() and inside.is_file() else ""
        raise BundleError(f"{path} is not a drgrader bundle (no {MANIFEST}){hint}")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{file} is damaged: not valid JSON ({exc})") from None
    except RecursionError:  # [[[[... a hundred thousand deep
        raise BundleError(f"{file} is damaged: not valid JSON (nested too deeply)") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{file} is damaged: expected a JSON object, got {type(manifest).__name__}")
    fmt = manifest.get("format")
    if fmt != BUNDLE_FORMAT:
        raise BundleError(
            f"{file}: bundle format {fmt!r} (drgrader {manifest.get('drgrader_version', '?')}) "
            f"is not supported by drgrader {__version__} (format {BUNDLE_FORMAT})"
        )
    check_bundle(manifest, file)
    return manifest


def write_manifest(folder: str | Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write ``folder/bundle.json`` atomically (format and drgrader version stamped on a new
    manifest, kept on an updated one); a manifest that :class:`BundleSpec` rejects is never
    written (BundleError)."""
    file = Path(folder) / MANIFEST
    manifest = {"format": BUNDLE_FORMAT, "drgrader_version": __version__, **manifest}
    check_bundle(manifest, file)
    atomic_write_json(file, manifest)
    return manifest


def update_manifest(folder: str | Path, **changes: Any) -> dict[str, Any]:
    """Read, change some keys of, validate and rewrite a bundle's ``bundle.json``."""
    return write_manifest(folder, {**read_manifest(folder), **changes})

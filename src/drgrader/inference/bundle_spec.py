"""``bundle.json``: its schema, and the one reader and the one writer of it.

Training (``save_bundle``), ensembles (``make_ensemble``), ONNX export and ``drgrader cv`` all
write through :func:`write_manifest` (validated before it is written); :func:`read_manifest`
checks every bundle against :class:`BundleSpec` before anything is loaded, so a truncated,
hand-edited or foreign ``bundle.json`` is one clear error naming the file and the field, never
a KeyError deep inside prediction.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drgrader import __version__
from drgrader.config import PreprocessConfig, TtaView
from drgrader.grading import GRADE_NAMES, NUM_GRADES, SCORE_COLUMNS
from drgrader.io import atomic_write_json

BUNDLE_FORMAT = 1
MANIFEST = "bundle.json"

__all__ = ["BUNDLE_FORMAT", "MANIFEST", "BundleError", "BundleSpec", "read_manifest", "update_manifest", "write_manifest"]


class BundleError(ValueError):
    """A bundle that cannot be used (missing files, incompatible format, invalid bundle.json)."""


class Thresholds(BaseModel):
    """Decision thresholds on the score columns and the grade cut-points (None: not fitted)."""

    model_config = ConfigDict(extra="forbid")

    cutpoints: list[float] | None = None
    any_dr: float | None = None
    referable: float | None = None

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

        PairedEyeModel.from_dict(model)  # raises ValueError naming what is malformed
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
    class_names: list[str] = Field(default_factory=lambda: list(GRADE_NAMES))
    thresholds: Thresholds | None = None
    tta: list[TtaView] = ["orig"]
    paired_eyes: PairedEyeStage | None = None
    patient_decision: PatientDecisionSpec | None = None
    # single model
    kind: Literal["softmax5", "regression", "coral", "corn", "binary"] | None = None
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


def _validate(manifest: dict[str, Any], file: Path) -> None:
    try:
        BundleSpec.model_validate(manifest)
    except ValidationError as err:
        first = err.errors()[0]
        # a key of the file may hold anything, line breaks included: quoted then, so the
        # message stays one line
        field = ".".join(str(p) if str(p).isprintable() else repr(str(p)) for p in first["loc"]) or "(top level)"
        raise BundleError(f"{file} is not a valid bundle: {field}: {first['msg']}") from None


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The bundle's ``bundle.json``, checked against :class:`BundleSpec`: any fault is one
    :class:`BundleError` naming the file and the field."""
    path = Path(path)
    file = path / MANIFEST if path.is_dir() else path
    if not file.is_file():
        raise BundleError(f"{path} is not a drgrader bundle (no {MANIFEST})")
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
    _validate(manifest, file)
    return manifest


def write_manifest(folder: str | Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write ``folder/bundle.json`` atomically (format and drgrader version stamped on a new
    manifest, kept on an updated one); a manifest that :class:`BundleSpec` rejects is never
    written (BundleError)."""
    file = Path(folder) / MANIFEST
    manifest = {"format": BUNDLE_FORMAT, "drgrader_version": __version__, **manifest}
    _validate(manifest, file)
    atomic_write_json(file, manifest)
    return manifest


def update_manifest(folder: str | Path, **changes: Any) -> dict[str, Any]:
    """Read, change some keys of, validate and rewrite a bundle's ``bundle.json``."""
    return write_manifest(folder, {**read_manifest(folder), **changes})

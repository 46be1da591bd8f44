"""The one configuration schema of a drgrader experiment.

An experiment is one YAML file with four sections (``data``, ``model``, ``train``,
``eval``) validated by :class:`ExperimentConfig`. Unknown keys and ill-typed values are
errors that name the offending field; values are typed strictly (``on`` is not a boolean,
``010`` not an integer: :mod:`drgrader.config_yaml` reads the YAML). Command-line overrides use
dotted paths (``--set train.epochs=3``) and go through the same validation.

The value types and checks the fields use (paths, column names, plain names, test-time views)
are in :mod:`drgrader.config_values`; the recipes drgrader ships, and which file a config name
means, in :mod:`drgrader.config_recipes`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationError, model_validator

from drgrader.config_recipes import resolve_config
from drgrader.config_values import MAX_REFER_SHARE, ColumnName, ConfigPath, TtaViews, plain_name
from drgrader.config_yaml import ConfigError, apply_overrides, check_size, dump_yaml, echo, load_yaml


class Section(BaseModel):
    # extra="forbid" turns a typo in a YAML key into an error instead of a silent default;
    # strict: a boolean, integer or float field takes only that type (never "on", "010", 1.0
    # for an integer, true for a number), whatever the YAML said.
    # allow_inf_nan=False: a float is finite (`train.lr=.inf` would pass `gt=0`, `.nan` every bound).
    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True, allow_inf_nan=False)


# ----------------------------------------------------------------------------- data
class Columns(Section):
    """Column names of a generic label CSV (``data.format: csv``)."""

    image: ColumnName = "image"
    grade: ColumnName = "level"
    patient: ColumnName | None = None
    eye: ColumnName | None = None


class SplitConfig(Section):
    """How the manifest is split into train / val / test."""

    method: Literal["patient", "image", "official", "kfold"] = "patient"
    val: float = Field(0.2, ge=0.0, lt=1.0, description="fraction of patients for validation")
    test: float = Field(0.2, ge=0.0, lt=1.0, description="fraction of patients for test")
    folds: int = Field(5, ge=2, description="number of folds when method=kfold")
    fold: int = Field(0, ge=0, description="which fold is validation when method=kfold")
    seed: int = Field(42, ge=0, lt=2**32, description="0 to 2**32-1, as numpy takes it")  # probe 38 CB2
    file: ConfigPath | None = Field(None, description="reuse a split written by an earlier run")

    @model_validator(mode="after")
    def _fractions(self) -> "SplitConfig":
        if self.val + self.test >= 1.0:
            raise ValueError(f"split.val + split.test must be < 1 (got {self.val} + {self.test})")
        if self.method == "kfold" and self.fold >= self.folds:
            raise ValueError(f"split.fold={self.fold} must be < split.folds={self.folds}")
        return self


class PreprocessConfig(Section):
    """Fundus preprocessing applied once, before caching (pure functions in data.preprocess)."""

    crop: bool = Field(True, description="crop to the circular field of view and pad to square")
    mask: bool = Field(True, description="black out everything outside the fundus circle")
    ben_graham: bool = Field(False, description="subtract the local average colour (Graham 2015)")
    ben_graham_sigma: float = Field(
        10.0, gt=0, description="Gaussian sigma at 300 px fundus radius (scaled to the image)"
    )
    clahe: bool = Field(False, description="CLAHE on the LAB L channel (seed 001)")
    clahe_clip: float = Field(2.0, gt=0)
    clahe_tiles: int = Field(8, ge=1)


# data.normalize's fixed scalings (mean, std per channel, 0-1 units), which bundle.json's mean and
# std must match; "model", the backbone's own, only timm knows (models.factory.input_mean_std).
FIXED_NORMALIZE = {"imagenet": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]), "unit": ([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])}


class DataConfig(Section):
    root: ConfigPath | None = Field(None, description="data-set folder; None means the built-in demo data")
    format: Literal[
        "auto", "kaggle", "aptos", "idrid", "messidor2", "deepdrid", "ddr", "csv", "folders"
    ] = "auto"
    labels: ConfigPath | None = Field(None, description="label file, relative to root (csv format)")
    images: ConfigPath | None = Field(None, description="image folder, relative to root (csv format)")
    columns: Columns = Columns()
    skip_missing: bool = Field(False, description="skip label rows whose image is missing")
    limit: int | None = Field(None, ge=1, description="use only the first N patients (smoke runs)")
    split: SplitConfig = SplitConfig()
    image_size: int = Field(224, ge=16, le=2048)
    normalize: Literal["model", "imagenet", "unit"] = Field(
        "model",
        description="input scaling: the backbone's own mean/std (timm), ImageNet's, or [0,1] (seed 001)",
    )
    preprocess: PreprocessConfig = PreprocessConfig()
    exclude_ungradable: bool = Field(False, description="drop images the quality check flags")
    cache_dir: ConfigPath | None = Field(None, description="preprocessed cache; default ./.drgrader-cache")
    workers: int = Field(0, ge=0, description="processes for preprocessing/loading; 0 = all cores")


# ---------------------------------------------------------------------------- model
class ModelConfig(Section):
    backbone: str = Field("resnet18", description="any timm model name")
    pretrained: str = Field(
        "none",
        description="none | imagenet (offline package or hub) | hub:<timm-or-hf-name> | "
        "file:<path.pth|.safetensors> | bundle:<drgrader bundle> | checkpoint:<lightning .ckpt>",
    )
    task: Literal["grade", "any_dr", "referable"] = "grade"
    head: Literal["linear", "seed001"] = "linear"
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0)
    trainable_layers: int | None = Field(
        None, ge=1, description="freeze all but the last N parameterised layers (seed 001: 50)"
    )
    unfreeze_epoch: int | None = Field(None, ge=1, description="unfreeze everything at this epoch")


# ---------------------------------------------------------------------------- train
class AugmentConfig(Section):
    hflip: float = Field(0.5, ge=0, le=1)
    vflip: float = Field(0.0, ge=0, le=1)
    rotate: float = Field(0.0, ge=0, le=180, description="max rotation in degrees")
    scale: float = Field(0.0, ge=0, lt=1, description="max zoom in/out, e.g. 0.1 = +-10%")
    brightness: float = Field(0.0, ge=0, lt=1)
    contrast: float = Field(0.0, ge=0, lt=1)
    color_jitter: float = Field(0.0, ge=0, lt=1, description="hue/saturation jitter strength")
    blur: float = Field(0.0, ge=0, le=1, description="probability of a Gaussian blur")
    random_resized_crop: float = Field(0.0, ge=0, lt=1, description="min area lost, 0 = off")
    clahe: float = Field(0.0, ge=0, le=1, description="probability of a CLAHE jitter")


class TrainConfig(Section):
    loss: Literal["ce", "focal", "mse", "smooth_l1", "coral", "corn", "multitask", "bce"] = "ce"
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    class_weights: bool = Field(False, description="weight the loss by inverse class frequency")
    focal_gamma: float = Field(1.5, ge=0)
    focal_alpha: float = Field(0.5, ge=0, le=1)
    sampler: Literal["natural", "oversample", "balanced", "schedule"] = "natural"
    sampler_decay: float = Field(
        0.8, gt=0, le=1, description="schedule: per-epoch move from balanced to natural"
    )
    augment: AugmentConfig = AugmentConfig()
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    scheduler: Literal["none", "plateau", "cosine"] = "cosine"
    plateau_factor: float = Field(0.5, gt=0, lt=1)
    plateau_patience: int = Field(3, ge=0)
    warmup_epochs: float = Field(0.0, ge=0)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)
    early_stopping: int | None = Field(None, ge=1, description="patience in epochs; None = off")
    seed: int = Field(42, ge=0, lt=2**32, description="0 to 2**32-1, as numpy takes it")  # probe 38 CB2
    max_minutes: float | None = Field(None, gt=0, description="stop training after this long")
    budget_minutes: float | None = Field(
        None, gt=0,
        description="plan the epochs (and the cosine schedule) to end training at this many minutes on this "
        "machine, from the measured epoch time; train.epochs is then only the first guess",
    )
    mixup: float = Field(
        0.0, ge=0, description="mixup's Beta(a, a) parameter a (0: off): pairs of photos blended, losses weighted alike",
    )
    progressive_start_size: int | None = Field(
        None, ge=32, description="progressive resizing: train at this size first, then at data.image_size",
    )
    progressive_until: float = Field(
        0.5, gt=0, le=1, description="share of the (planned) epochs trained at progressive_start_size",
    )
    ema_decay: float | None = Field(
        None, gt=0, lt=1, description="keep an exponential moving average of the weights (per step) for the lab",
    )
    average_last: int = Field(
        0, ge=0, description="keep the average of the weights at the end of the last N epochs for the lab (0: off)",
    )
    distill_from: ConfigPath | None = Field(
        None, description="distillation: a CSV of teacher scores (image_id, expected_grade), e.g. a cv folder's "
        "predictions_oof.csv; the regression target becomes a blend of the grade and the teacher's score",
    )
    distill_weight: float = Field(0.5, ge=0, le=1, description="the teacher's share of the blended target")
    limit_train_batches: int | None = Field(None, ge=1, description="batches per epoch (smoke runs)")
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = Field(1, ge=1)
    strategy: str = Field("auto", description="auto | ddp | ddp_spawn | fsdp ... (Lightning names)")
    precision: str = Field(
        "auto", description="auto (bf16-mixed on a CUDA GPU with bf16, else 32-true: the faster where measured) "
        "or a Lightning precision, e.g. 32-true, 16-mixed, bf16-mixed",
    )
    channels_last: bool = True
    deterministic: bool = True


# ----------------------------------------------------------------------------- eval
class EvalConfig(Section):
    tta: TtaViews = Field(["orig"], min_length=1, description="test-time views, averaged (at least one)")
    threshold_objective: Literal["accuracy", "youden", "sensitivity"] = "youden"
    target_sensitivity: float = Field(0.9, gt=0, lt=1)
    # the thresholds searched for a screening score that lies within it; a score beyond it (a regression's
    # expected grade) is searched over its own values, with a warning when the range was changed
    threshold_range: Annotated[tuple[float, float], Strict(False)] = (0.0, 1.0)  # a YAML list
    fit_cutpoints: bool = Field(True, description="fit the 4 grade cut-points on validation")
    consistent_cutpoints: bool = Field(
        True,
        description="regression: the first two cut-points are the any-DR and referable thresholds, "
        "so grade >= 1 / >= 2 are the screening decisions (false: all four cut-points maximise kappa "
        "and the two thresholds are taken from them, with a warning)",
    )
    bootstrap: int = Field(
        1000, ge=0,
        description="bootstrap resamples (of patients) for CIs; 0 gives none, fewer than 200 are warned of as too few",
    )
    lab: bool = Field(
        False,
        description="also score the validation patients with every weight set the run kept (best, last, EMA, "
        "average of the last epochs) and each of the 8 dihedral views, for `drgrader cv`'s lab table",
    )
    refer_share: float = Field(
        0.1, ge=0, le=MAX_REFER_SHARE,
        description="share of patients the programme sends to a human grader (the most uncertain): "
        "the per-patient decision's 'uncertain' band, fitted on validation",
    )
    urgent_sensitivity: float = Field(
        0.9, gt=0, lt=1, description="sensitivity to grade 3-4 eyes of the 'urgent' (vision-threatening) threshold",
    )

    @model_validator(mode="after")
    def _range_in_order(self) -> "EvalConfig":
        lo, hi = self.threshold_range
        if not lo < hi:  # probe 38 CB9: a reversed range was accepted and dropped
            raise ValueError(f"eval.threshold_range must be [low, high] with low < high (got [{lo:g}, {hi:g}])")
        return self


class ExperimentConfig(Section):
    name: Annotated[str, AfterValidator(plain_name)] = Field("experiment", min_length=1,
                                                             description="names the run folder (one folder name)")
    out_dir: ConfigPath = Path("runs")
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _loss_fits_task(self) -> "ExperimentConfig":
        binary_losses = {"bce", "focal"}
        grade_losses = {"ce", "focal", "mse", "smooth_l1", "coral", "corn", "multitask"}
        allowed = grade_losses if self.model.task == "grade" else binary_losses
        if self.train.loss not in allowed:
            raise ValueError(
                f"train.loss={self.train.loss!r} does not fit model.task={self.model.task!r}; "
                f"use one of {sorted(allowed)}"
            )
        if self.train.distill_from is not None and (self.train.loss not in ("mse", "smooth_l1") or self.train.class_weights):
            raise ValueError("train.distill_from blends the regression target: it needs train.loss mse or smooth_l1 "
                             "and no train.class_weights")
        return self


# ----------------------------------------------------------------------- load/save
_HINTS = {  # what to write instead, after a strict field refused a value of another type
    "bool_type": "write true or false",
    "int_type": "write a whole number in plain decimal, e.g. 10",
    "float_type": "write a number, e.g. 0.5 or 1e-3",
}


def _format_errors(err: ValidationError, source: str, overridden: frozenset[str] = frozenset()) -> str:
    """Every field error on one line: ``invalid configuration in X: a.b: why (got ...); c: ...``; a field
    given by ``--set`` (``overridden``) is named so, and when every error is one, X is the --set values
    (probe 59 CW8: a bad --set on train --resume blamed the run's config.yaml)."""
    problems, fields = [], []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(top level)"
        fields.append(field)
        field = f"--set {field}" if field in overridden else field
        if e["type"] == "extra_forbidden":
            problems.append(f"{field}: unknown field")
        else:
            got = e.get("input")
            hint = f"; {_HINTS[e['type']]}" if e["type"] in _HINTS else ""
            problems.append(f"{field}: {e['msg']} (got {echo(got)}{hint})")
    shown = problems[:5] + ([f"and {len(problems) - 5} more"] if len(problems) > 5 else [])
    if fields and all(f in overridden for f in fields):
        return "invalid --set value: " + "; ".join(p.removeprefix("--set ") for p in shown)
    return f"invalid configuration in {source}: " + "; ".join(shown)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment (a path or a shipped name), apply ``--set`` overrides and validate it."""
    raw: dict = {}
    source = "defaults"
    if path is not None:
        file = resolve_config(path)
        source = str(path) if isinstance(file, Path) else f"{path} (shipped {file.name})"
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{source} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
        raw = load_yaml(text, source)
        if raw is None:  # an empty file, or only comments
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{source} must hold a mapping of sections, not {type(raw).__name__}")
        _warn_paths_beside(raw, file, source)
    raw = apply_overrides(raw, list(overrides or []))
    check_size(raw, source)
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        overridden = frozenset(o.partition("=")[0].strip() for o in overrides or ())
        raise ConfigError(_format_errors(err, source, overridden)) from None


# A config's paths read from the working folder (data.labels and data.images are read from data.root).
_WORKING_FOLDER_PATHS = (("data", "root"), ("data", "split", "file"), ("data", "cache_dir"), ("train", "distill_from"))


def _warn_paths_beside(raw: dict, file: object, source: str) -> None:
    """A relative path in a config (``data.root``, ``data.split.file``, ...) is read from the working
    folder, as every relative path given to drgrader is; when one of that name also lies beside
    the config file (and is another), say which is read (probe 34 BX8, probe 35 BY3: the other was
    read without a word)."""
    import logging

    if not isinstance(file, Path):
        return
    for keys in _WORKING_FOLDER_PATHS:
        value: object = raw
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, str) or not value or Path(value).expanduser().is_absolute():
            continue
        beside, here = file.parent / value, Path(value)
        if beside.exists() and beside.resolve() != here.resolve():
            logging.getLogger("drgrader").warning(
                "%s: %s %r is read from the working folder (%s), as relative paths are; %s beside the config is not "
                "read (give an absolute path to read that one)", source, ".".join(keys), value, here.resolve(), beside)


def config_to_dict(cfg: ExperimentConfig) -> dict:
    return json.loads(cfg.model_dump_json())


def config_yaml(cfg: ExperimentConfig) -> str:
    """Every field of ``cfg`` (defaults filled) as YAML that loads back to the same config."""
    return dump_yaml(config_to_dict(cfg))


def save_config(cfg: ExperimentConfig, path: Path) -> None:
    from drgrader.io import atomic_write_text

    atomic_write_text(path, config_yaml(cfg))

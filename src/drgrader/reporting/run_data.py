"""What the report reads from a run or evaluation folder, and what it can tell from it.

Only ``metrics.json`` is required: ``predictions_test.csv``, ``logs/metrics.csv`` and
``config.yaml`` are read when present (an evaluation-only folder has no training log or
config), and the sections leave out what is missing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from drgrader.config import ExperimentConfig, config_to_dict, load_config
from drgrader.evaluation.training_overlap import unchecked_copies
from drgrader.outputs import read_back

log = logging.getLogger("drgrader")


class RunError(ValueError):
    """A run or evaluation folder whose metrics.json cannot be reported on; names the file."""


# The top-level fields of metrics.json the report reads, and the JSON type each must have
# (or null): checked when the folder is opened, so a damaged file is one line, not a crash.
_METRICS_FIELDS: dict[str, type] = {
    **dict.fromkeys(("run", "model", "created", "evaluated_on"), str),
    **dict.fromkeys(("test", "val", "test_no_tta", "test_single_eye", "data", "training", "thresholds", "versions",
                     "per_fold", "fold_training", "predictions_sha256"), dict),
    "tta_views": list,
}
_JSON_TYPES: dict[type, str] = {str: "a string", dict: "an object", list: "a list"}


@dataclass
class RunData:
    """Everything the report reads from a run folder."""

    run_dir: Path
    metrics: dict
    config: ExperimentConfig | None
    config_text: str | None
    predictions: pd.DataFrame | None
    training_log: pd.DataFrame | None

    @property
    def test(self) -> dict:
        return self.metrics.get("test") or {}

    def screens(self) -> list[str]:
        """Screening sections present in the test metrics, referable first."""
        return [name for name in ("referable", "any_dr") if name in self.test]


def _read_csv(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return read_back(pd.read_csv(path, dtype={"image_id": str, "patient_id": str}))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        log.warning("report: cannot read %s: %s", path, exc)
        return None


def read_metrics(path: Path) -> dict:
    """A run's metrics.json, checked: a JSON object whose fields the report reads have their
    types. Anything else is a RunError naming the file (and the field)."""
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise RunError(f"{path} is damaged: not valid JSON ({problem})") from None
    if not isinstance(metrics, dict):
        raise RunError(f"{path} is damaged: expected a JSON object, got {type(metrics).__name__}")
    for field, kind in _METRICS_FIELDS.items():
        value = metrics.get(field)
        if value is not None and not isinstance(value, kind):
            raise RunError(f"{path} is damaged: {field!r} should be {_JSON_TYPES[kind]}, got {type(value).__name__}")
    return metrics


def check_predictions(run_dir: Path, metrics: dict) -> None:
    """Refuse a predictions_test.csv that is not the one metrics.json was computed from (its
    sha256, recorded by evaluate): its gallery and ROC curves would contradict the tables. A
    metrics.json without the checksums (an older run) is reported as before, and says so."""
    from drgrader.io import sha256_file

    path = run_dir / "predictions_test.csv"
    recorded = metrics.get("predictions_sha256")
    if not path.is_file():
        return
    if recorded is None:
        log.warning("report: %s records no checksum of %s (an older run): the figures drawn from it are not checked "
                    "against the tables", run_dir / "metrics.json", path)
        return
    expected = recorded.get(path.name)
    if expected is None:
        raise RunError(f"{path} was not written with {run_dir / 'metrics.json'}: the report would mix two evaluations; "
                       f"restore the file as the run wrote it (or remove {path.name}), or evaluate again into a new folder "
                       "(drgrader evaluate ... --out NEW) and report that")
    if sha256_file(path) != expected:
        raise RunError(f"{path} changed since {run_dir / 'metrics.json'} was written: its gallery and ROC curves would "
                       "disagree with the tables; restore the file as the run wrote it, or evaluate again into a new folder "
                       "(drgrader evaluate ... --out NEW) and report that")


def load_run(run_dir: Path, config: ExperimentConfig | None = None) -> RunData:
    """Read metrics.json (required), predictions_test.csv, logs/metrics.csv and config.yaml."""
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{run_dir} has no metrics.json: train or evaluate a model first")
    metrics = read_metrics(metrics_path)
    check_predictions(run_dir, metrics)
    config_text = None
    config_path = run_dir / "config.yaml"
    if config is not None:
        config_text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    elif config_path.is_file():
        config_text = config_path.read_text(encoding="utf-8", errors="replace")
        try:
            config = load_config(config_path)
        except ValueError as exc:  # ConfigError: shown as text, thumbnails use defaults
            log.warning("report: %s", exc)
    elif isinstance(metrics.get("config"), dict):  # an evaluation folder keeps its configuration in metrics.json
        config_text = yaml.safe_dump(metrics["config"], sort_keys=False)
        try:
            config = ExperimentConfig.model_validate(metrics["config"])
        except ValueError as exc:
            log.warning("report: %s metrics.json's config: %s", run_dir, exc)
    return RunData(
        run_dir=run_dir,
        metrics=metrics,
        config=config,
        config_text=config_text,
        predictions=_read_csv(run_dir / "predictions_test.csv"),
        training_log=_read_csv(run_dir / "logs" / "metrics.csv"),
    )


# Labelled photos the figures do not count: the label file names them, the data set has no photo to grade.
LABELLED_LEFT_OUT = ("missing_image", "unreadable_image", "ungradable")


def reading_warnings(metrics: dict) -> list[str]:
    """What reading the data set warned of on the console (metrics.json's ``data.warnings``: a column
    not read that changes what a figure means, a split column, ...; probe 45 CI6), for the report and card."""
    said = (metrics.get("data") or {}).get("warnings") or []
    return [f"Reading the data set: {w}" for w in said[:8]] + (
        [f"... and {len(said) - 8} more warnings of reading the data set (see the log)"] if len(said) > 8 else [])


def left_out_text(skipped: dict | None, *, labelled_only: bool = False) -> str:
    """``1 unreadable image, 3 unlabelled files``: what a data set left out (empty when nothing);
    ``labelled_only``: the labelled photos only (:data:`LABELLED_LEFT_OUT`; probe 43 CG7: "16
    labelled photos (16 missing image, 16 unlabelled files)")."""
    return ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in (skipped or {}).items()
                     if v and (not labelled_only or k in LABELLED_LEFT_OUT))


def labelled_left_out(skipped: dict | None) -> int:
    """How many labelled photos the figures do not count (:data:`LABELLED_LEFT_OUT`)."""
    return sum(int((skipped or {}).get(k) or 0) for k in LABELLED_LEFT_OUT)


def on_own_training_data(metrics: dict) -> bool:
    """Whether an evaluation's data set held photos the model was trained or tuned on: metrics.json
    says ``not-external:D``, or (written before it said so) ``external:D`` beside a training overlap."""
    where = str(metrics.get("evaluated_on") or "")
    overlap = metrics.get("training_overlap") or {}
    return where.startswith("not-external:") or (where.startswith("external:") and bool(overlap.get("photos")))


def stage_fitted_on(patient_decision: dict | None, evaluated_on: str | None) -> str:
    """What the paired-eye stage was fitted on: the eyes the patient decision beside it records (both are fitted on
    the same ones: train's validation split, cv's out-of-fold predictions); "out-of-fold" was said of both (probe 58 CV9)."""
    fitted = (patient_decision or {}).get("fitted_on") or (
        "out-of-fold predictions" if str(evaluated_on or "").startswith("out-of-fold") else "")
    return f"fitted on the {fitted}" if fitted else "fitted when the model was made"


def split_sentence(summary: dict, method: str | None = None) -> str:
    """What the split kept apart, from the counts the run recorded (``method``: data.split.method, for a
    record without them): "no patient has photos in two of them" was said of a split by photo too (probe 58 CV8)."""
    splits = ", ".join(summary.get("splits") or {})
    across = summary.get("patients_across_splits")
    if across is None and method != "image" or across is not None and not across.get("patients"):
        return f"Patients were split into {splits} sets; no patient has photos in two of them."
    if across is None:
        count = "a patient's photos can be in two of them"
    else:
        in_test = (f"; {across['test']} of the {summary['splits']['test'].get('patients')} test patients have photos in "
                   "train or val" if across.get("test") and "test" in summary["splits"] else "")
        count = f"{across['patients']} of {summary.get('patients')} patients have photos in two of them{in_test}"
    return (f"The photos were split into {splits} sets by photo, not by patient: {count}, so the held-out figures are "
            "flattered (the model is measured on patients whose other photos it learnt from or was tuned on).")


def _test_split_text(run: RunData) -> str:
    summary = (run.metrics.get("data") or {}).get("summary") or {}
    across = summary.get("patients_across_splits")
    if across is None and run.config is not None and run.config.data.split.method == "image":  # recorded before probe 58 CV8
        return "the held-out test split, split by photo (not by patient), so these figures are flattered"
    if across and across.get("test"):  # probe 58 CV8: "patients whose eyes were not used for training"
        of = ((summary.get("splits") or {}).get("test") or {}).get("patients")
        return (f"the held-out test split, split by photo (not by patient): {across['test']} of its {of} patients have "
                "photos in train or val, so these figures are flattered")
    return ("the held-out test split: patients whose eyes were not used for training, for choosing the checkpoint or "
            "for fitting the decision thresholds")


def evaluated_on(run: RunData) -> tuple[str, str]:
    """(short name, sentence) of what the figures were measured on."""
    where = run.metrics.get("evaluated_on") or "test"
    if where == "test":
        return "test split", _test_split_text(run)
    if where == "val":
        return "validation split", (
            "the validation split, because the run had no test split. The same patients chose "
            "the checkpoint and fitted the thresholds, so these figures are optimistic"
        )
    if where.startswith("out-of-fold"):
        return "out-of-fold predictions", (
            f"{where}: every labelled eye, each predicted by the fold model that never saw its patient. "
            "The decision thresholds were fitted on these same predictions, so they flatter them a little"
        )
    overlap = run.metrics.get("training_overlap") or {}
    if on_own_training_data(run.metrics):
        path = where.split(":", 1)[1]
        return f"model's own training data ({path})", (
            f"a data set ({path}) of which {overlap['photos']} of {overlap['of']} photos were used to train or tune "
            "the model: not an external evaluation, and its figures flatter the model (the count is of the copies "
            "found: one edited in brightness, contrast or colour is not counted)"
        )
    decided = ("the decision thresholds fitted beforehand on the model's own validation split" if run.metrics.get("thresholds", True)
               else "the default cut-points (the model has no fitted thresholds)")
    if where.startswith("external:") and run.metrics.get("training_overlap", {}) is None:  # no record to check
        path = where.split(":", 1)[1]
        return f"external data set {path}", (
            f"a data set ({path}) given as external, with {decided}; the model carries no record of its training "
            "photos, so that it never saw these could not be checked"
        )
    if where.startswith("external:") and overlap.get("held_out"):  # probe 45 CI1: the run's own test split again
        path = where.split(":", 1)[1]
        return f"the model's own held-out test split ({path})", (
            f"a data set ({path}) given as external, with {decided}; {overlap['held_out']} of {overlap['of']} of its photos "
            "are the model's own run's held-out test split, whose figures it gives already: not an outside data set")
    if where.startswith("external:"):
        path = where.split(":", 1)[1]
        if caveat := unchecked_copies(run.metrics.get("training_overlap")):  # probe 42 CF6, probe 43 CG10
            return f"external data set {path}", (
                f"a data set ({path}) given as external, with {decided}; none of its photos is one the model was trained "
                f"or tuned on, {caveat}")
        return f"external data set {path}", f"a data set ({path}) given as external, with {decided}"  # an old metrics.json
    return where, where


def _data_root(run: RunData) -> Path | None:
    where = run.metrics.get("evaluated_on") or ""
    if where.startswith(("external:", "not-external:")):
        return Path(where.split(":", 1)[1])
    if run.config is not None and run.config.data.root is not None:
        return Path(run.config.data.root)
    return None


def is_synthetic(run: RunData) -> bool:
    from drgrader.synth import made_by_synth

    return made_by_synth(_data_root(run))

"""``evaluate BUNDLE --data D``: the config of an external evaluation (and the ``--set`` fields
``evaluate RUN`` refuses). The bundle decides its
input size, normalisation, preprocessing and TTA, every photo of D is graded (no split, no
photo left out), and no threshold is fitted; a ``--set`` of any of these, or a YAML writing one
with another value than the bundle's, which would be dropped unsaid, is refused."""

from __future__ import annotations

import logging
from pathlib import Path

from drgrader.config import ConfigError, DataConfig, ExperimentConfig, PreprocessConfig, config_to_dict, load_config

log = logging.getLogger("drgrader")

# set from the bundle, not the data
BUNDLE_DECIDES = ("data.image_size", "data.normalize", "data.preprocess", "data.split", "eval.tta")
# evaluate --data fits no thresholds, cut-points or patient decisions: the bundle's are used
FITTING = ("threshold_objective", "target_sensitivity", "threshold_range", "fit_cutpoints", "consistent_cutpoints",
           "refer_share", "urgent_sensitivity")
NEVER_FITTED = tuple(f"eval.{name}" for name in FITTING)


# probe 34 BX5: the ungradable photos of an external data set were left out of every figure
EVERY_PHOTO = "evaluate grades every photo of the data set and counts the ungradable ones, never leaves them out"


def _why_not_used(key: str) -> str:
    if key in NEVER_FITTED:
        return "evaluate --data fits no thresholds (the bundle's own are used)"
    return "evaluate --data takes it from the bundle (or, for data.split, grades every photo)"


def _leaves(section: object, key: str) -> list[tuple[str, object]]:
    """(dotted key, value) of every leaf under ``key`` of a config's nested dict."""
    if isinstance(section, dict):
        return [leaf for name, value in section.items() for leaf in _leaves(value, f"{key}.{name}")]
    return [(key, section)]


def _at(tree: dict, key: str) -> object:
    for name in key.split("."):
        tree = tree.get(name) if isinstance(tree, dict) else None
    return tree


def _written(cfg: ExperimentConfig, key: str) -> bool:
    """Whether the YAML wrote the field ``key`` (dotted), whatever its value: a default written
    out (``eval.tta: [orig]``, to evaluate without TTA) is a setting too."""
    node: object = cfg
    for name in key.split("."):
        if name not in getattr(node, "model_fields_set", ()):
            return False
        node = getattr(node, name)
    return True


def _dropped_yaml_field(cfg: ExperimentConfig, bundle_manifest: dict) -> tuple[str, object] | None:
    """A field the bundle decides (or one evaluate --data never uses) that the YAML writes, to
    another value than the bundle's own: it would be dropped unsaid."""
    given, defaults = config_to_dict(cfg), config_to_dict(ExperimentConfig())
    trained = bundle_manifest.get("config") or {}
    preprocess = bundle_manifest.get("preprocess")
    bundles = {"data": {"image_size": bundle_manifest.get("input_size"), "normalize": (trained.get("data") or {}).get("normalize"),
                        "preprocess": PreprocessConfig.model_validate(preprocess).model_dump(mode="json") if preprocess else None},
               "eval": {"tta": bundle_manifest.get("tta"), **{k: (trained.get("eval") or {}).get(k) for k in FITTING}}}
    for key in (*BUNDLE_DECIDES, *NEVER_FITTED):
        for leaf, value in _leaves(_at(given, key), key):
            # data.split: every photo is graded, so a training config's split (the default) drops nothing
            written = value != _at(defaults, leaf) if key == "data.split" else _written(cfg, leaf)
            if written and value != _at(bundles, leaf):
                return leaf, value
    return None


# evaluate RUN re-scores the run's own split with its model as trained: these would change the
# photos the model sees, or name a model or training the evaluation does not have
RUN_FIXES = ("data.image_size", "data.normalize", "data.preprocess", "data.split", "data.limit", "model", "train")


def refuse_run_overrides(overrides: list[str]) -> None:
    """``evaluate RUN --set``: a field the run's bundle fixes (probe 36 BZ4: ``data.image_size``
    or ``data.preprocess.clahe`` re-graded the test split with a preprocessing the model never
    saw, exit 0); ``train.seed`` seeds the bootstrap and stays."""
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if key != "train.seed" and any(key == k or key.startswith(k + ".") for k in RUN_FIXES):
            what = ("the run's own split.csv" if key.startswith(("data.split", "data.limit"))
                    else "the model as trained" if key.startswith(("model", "train")) else "the bundle's own preprocessing")
            raise ConfigError(f"--set {key}: evaluate RUN re-scores the run's held-out split with {what}; drop it "
                              "(to grade with other settings, train a run with them)")


def external_config(data: str, bundle_manifest: dict, overrides: list[str]) -> ExperimentConfig:
    """Data to evaluate on: a YAML experiment (its data section) or a data-set folder. The
    preprocessing, input size, TTA and split (all of it is test) are the bundle's, and no
    thresholds are fitted; a ``--set`` of one of them, or a YAML writing one with another value
    than the bundle's, which would be ignored, is refused."""
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if any(key == k or key.startswith(k + ".") for k in (*BUNDLE_DECIDES, *NEVER_FITTED)):
            raise ConfigError(f"--set {key}: {_why_not_used(key)}; drop it")
        if key == "data.exclude_ungradable":
            raise ConfigError(f"--set {key}: {EVERY_PHOTO}; drop it")
        if key.startswith(("model.", "train.")) and key != "train.seed":  # probe 35 BY5: dropped unsaid
            raise ConfigError(f"--set {key}: evaluate --data grades with the bundle's own model and trains nothing "
                              "(train.seed seeds its bootstrap); drop it")
    path = Path(data)
    if path.suffix in (".yaml", ".yml"):
        cfg = load_config(path, overrides)
        dropped = _dropped_yaml_field(cfg, bundle_manifest)
        if dropped is not None:
            raise ConfigError(f"{data} sets {dropped[0]} to {dropped[1]!r}: {_why_not_used(dropped[0])}; "
                              "drop it from the file")
    elif path.is_dir():
        cfg = load_config(None, overrides)
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"root": path})})
    else:
        raise ConfigError(f"--data {data}: not a YAML config or a data-set folder")
    if cfg.data.root is None:
        raise ConfigError(f"--data {data}: data.root is not set (the folder of the data set to evaluate on)")
    if cfg.data.exclude_ungradable:  # a training YAML reused: its training option is not applied here
        log.info("data.exclude_ungradable (a training option) is not applied: %s", EVERY_PHOTO)
    data_cfg = cfg.data.model_copy(
        update={
            "exclude_ungradable": False,
            "image_size": bundle_manifest.get("input_size", cfg.data.image_size),
            "preprocess": PreprocessConfig.model_validate(bundle_manifest["preprocess"])
            if "preprocess" in bundle_manifest
            else cfg.data.preprocess,
            "split": cfg.data.split.model_copy(update={"method": "image", "val": 0.0, "test": 0.0}),
        }
    )
    eval_cfg = cfg.eval.model_copy(update={"tta": bundle_manifest.get("tta") or cfg.eval.tta})
    return cfg.model_copy(update={"data": DataConfig.model_validate(data_cfg.model_dump()), "eval": eval_cfg})

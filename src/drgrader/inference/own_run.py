"""Whether a run folder is the one a bundle was trained in: its config.yaml's data (and, for what shows
the run's own model, model and training) settings against the bundle's ``bundle.json``. Used by
``evaluate RUN``, ``export --int8`` and the report's Grad-CAM gallery (so it sits below both)."""

from __future__ import annotations

from pathlib import Path

from drgrader.config import ExperimentConfig, config_to_dict, load_config

# What a resumed run may change: how and where it runs, and when it stops (more epochs: the run
# goes on from its checkpoint); never what it learns from or at what size.
RESUMABLE_KEYS = {"train.epochs", "train.max_minutes", "train.accelerator", "train.devices", "train.num_nodes",
                  "train.strategy", "data.workers", "data.cache_dir"}


def flat_settings(value: object, prefix: str = "") -> dict[str, object]:
    """A nested config dict as ``{"train.epochs": 20, ...}`` (keys under ``prefix``)."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flat_settings(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}



# The data settings that choose a run's photos and their split: a bundle's run folder has the
# same in its config.yaml as the bundle's bundle.json (its config), or it is another run's.
_DATA_KEYS = ("root", "format", "labels", "images", "columns", "skip_missing", "limit", "split", "exclude_ungradable")


def _data_settings(data: object) -> dict:
    from drgrader.config import DataConfig

    if not isinstance(data, dict):
        return {}
    try:  # filled with the defaults, so an older bundle's config compares like a new one
        data = DataConfig.model_validate(data).model_dump(mode="json")
    except ValueError:
        pass
    return {key: data.get(key) for key in _DATA_KEYS}


def _model_settings(config: object) -> dict:
    """The settings that make a model (its data, model and training sections, not how or where it
    ran: :data:`RESUMABLE_KEYS`), flat, filled with the defaults; {} for no valid configuration."""
    if not isinstance(config, dict):
        return {}
    try:
        full = config_to_dict(ExperimentConfig.model_validate(config))
    except ValueError:
        return {}
    made = flat_settings({section: full.get(section) for section in ("data", "model", "train")})
    return {key: value for key, value in made.items() if key not in RESUMABLE_KEYS}


def check_own_run(bundle_dir: Path, manifest: dict, run_dir: Path, *, uses: str, strict: bool = True,
                  whole: bool = False) -> None:
    """Refuse a run folder that is not the one the bundle was trained in: its data settings (data
    set, labels, limit, split) in config.yaml differ from those in the bundle's ``bundle.json``
    (another run's bundle copied in). ``uses``: what would go wrong, for the message; without
    ``strict``, a bundle or run that records no data settings is not checked. ``whole``: its model
    and training settings too (image size, backbone, seed ...), for what shows the run's own
    model beside its figures (the report's Grad-CAM, probe 59 CW3), not another of its data."""
    from drgrader.config_yaml import ConfigError as YamlError
    from drgrader.inference.bundle_spec import BundleError

    own = _data_settings((manifest.get("config") or {}).get("data"))
    config_file = run_dir / "config.yaml"
    try:
        run_config = config_to_dict(load_config(config_file)) if config_file.is_file() else {}
    except YamlError:
        run_config = {}
    found = _data_settings(run_config.get("data"))
    if not own or not found:
        if not strict:
            return
        missing = config_file if not found else bundle_dir / "bundle.json"
        raise BundleError(f"{run_dir} cannot be told to be the run {bundle_dir} was trained in ({missing} gives no data "
                          f"settings): {uses}")
    own, found = flat_settings(own, "data."), flat_settings(found, "data.")
    if whole and (made := _model_settings(manifest.get("config"))) and (ran := _model_settings(run_config)):
        own, found = made | own, ran | found
    differ = [key for key in sorted(own.keys() | found.keys()) if own.get(key) != found.get(key)]
    if differ:
        key = differ[0]
        raise BundleError(f"{run_dir} is not the run {bundle_dir} was trained in ({key}: the bundle's {own.get(key)!r}, "
                          f"the run's {found.get(key)!r}): {uses}")

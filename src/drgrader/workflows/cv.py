"""``drgrader cv``: k-fold cross-fitting, the yardstick for recipes and the source of thresholds.

Patients are split into K stratified folds; fold i trains on the others and predicts its own
patients, so every labelled eye gets an *out-of-fold* (OOF) prediction from a model that never
saw its patient. On the pooled OOF predictions drgrader then fits the screening thresholds,
the grade cut-points and the paired-eye stage, measures everything with patient-bootstrap CIs
(plus per-fold figures, mean +- sd), and saves the K fold models as one ensemble bundle.

Layout of a cv folder::

    config.yaml, cv.json          the resolved config and the number of folds
    fold-<i>/                     an ordinary run folder (train.log, checkpoints, bundle, ...)
    predictions_oof.csv           one row per labelled image, single-eye and fused
    metrics.json, report.md       pooled and per-fold figures
    bundle/                       the fold ensemble with OOF thresholds and the paired-eye stage

Each fold is resumable: a finished fold (its metrics.json) is kept, an interrupted one resumes
from its last checkpoint. ``--fold i`` runs one fold only (one machine per fold; the folder
must be shared), and the last call, with every fold finished, pools them.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from drgrader.config import ConfigError, ExperimentConfig, config_to_dict, load_config, save_config
from drgrader.io import atomic_write_json, atomic_write_text
from drgrader.outputs import read_back, table_csv

log = logging.getLogger("drgrader")

CV_FILE = "cv.json"
PER_FOLD_METRICS = {"kappa": ("grade", "kappa"), "referable_auc": ("referable", "auc"), "any_dr_auc": ("any_dr", "auc")}


def fold_config(cfg: ExperimentConfig, folds: int, fold: int) -> ExperimentConfig:
    """The config of fold ``fold``: patient-level k-fold split, this fold as validation. A
    ``{fold}`` in ``train.distill_from`` names each fold's own teacher (one that never saw the
    fold's patients), so a distilled recipe is cross-fitted honestly."""
    split = cfg.data.split.model_copy(update={"method": "kfold", "folds": folds, "fold": fold, "test": 0.0, "file": None})
    data = cfg.data.model_copy(update={"split": split})
    train = cfg.train
    if train.distill_from is not None and "{fold}" in str(train.distill_from):
        train = train.model_copy(update={"distill_from": Path(str(train.distill_from).replace("{fold}", str(fold)))})
    return cfg.model_copy(update={"data": data, "train": train, "name": f"{cfg.name}-fold{fold}"})


def open_cv_dir(cfg: ExperimentConfig, folds: int, out: Path | None) -> Path:
    """The cv folder: new, or an earlier one of the same config and folds (to resume)."""
    cv_dir = Path(out) if out is not None else Path(cfg.out_dir) / f"{cfg.name}-cv"
    settings = {"folds": folds, "config": config_to_dict(cfg)}
    marker = cv_dir / CV_FILE
    if marker.is_file():
        saved = json.loads(marker.read_text())
        if saved != json.loads(json.dumps(settings)):
            raise ConfigError(
                f"{cv_dir} holds a cross-validation of another config or fold count; "
                "give another --out (or the same config and --folds to resume it)"
            )
        log.info("resuming cross-validation in %s", cv_dir)
        return cv_dir
    if cv_dir.exists() and (not cv_dir.is_dir() or any(cv_dir.iterdir())):
        raise ConfigError(f"{cv_dir} exists and is not a drgrader cv folder; give another --out")
    cv_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, cv_dir / "config.yaml")
    atomic_write_json(marker, settings)
    return cv_dir


def _check_patients(cfg: ExperimentConfig, folds: int, progress: bool = True) -> str:
    """Every fold needs patients of its own: refuse more folds than the data set has patients,
    counted as the folds count them (patients linked by a copied photo, in bytes or re-saved, as
    one: the cache, which every fold needs, is built first for its fingerprints). Returns the
    labelled data's checksum (``workflows.records.manifest_checksum``) and each photo's picture
    fingerprint by image id."""
    from drgrader.data.cache import build_cache
    from drgrader.data.manifest import read_manifest
    from drgrader.data.prepare import copied_pictures
    from drgrader.data.split import split_units
    from drgrader.workflows.records import manifest_checksum

    table = read_manifest(cfg.data).table
    index = build_cache(table, cfg.data, progress=progress)
    pictures = copied_pictures(index)
    patients, units = table["patient_id"].nunique(), split_units(table, pictures).nunique()
    if units < folds:
        linked = f", {units} once patients linked by a copied photo are kept together" if units < patients else ""
        raise ConfigError(f"--folds {folds} needs at least {folds} patients (one per fold); "
                          f"the data set ({cfg.data.root}) has {patients}{linked}")
    return manifest_checksum(table), dict(zip(index["image_id"].astype(str), index["picture"].astype(str)))


def _check_same_data(cv_dir: Path, folds: int, checksum: str, pictures: dict[str, str] | None = None) -> None:
    """Folds run in different sessions are pooled as one cross-fitting: refuse to go on when a
    fold already there read other labelled data (its ``manifest.csv``: a grade, patient or photo
    changed since) or another picture under a photo's name (its ``pictures.csv``)."""
    from drgrader.workflows.run_folder import check_same_data

    for fold in range(folds):
        check_same_data(cv_dir / f"fold-{fold}", checksum, pictures=pictures,
                        why="and the folds would be pooled as one cross-fitting; "
                        "restore the data, or remove that fold's folder to train it again")


def run_fold(cfg: ExperimentConfig, cv_dir: Path, folds: int, fold: int, *, progress: bool = True) -> Path:
    """Train fold ``fold`` into ``cv_dir/fold-<fold>``, or resume it, or keep it if finished."""
    from drgrader.workflows.train import train

    fold_dir = cv_dir / f"fold-{fold}"
    if (fold_dir / "metrics.json").is_file():
        log.info("fold %d/%d already finished: %s", fold + 1, folds, fold_dir)
        return fold_dir
    log.info("fold %d/%d: training in %s", fold + 1, folds, fold_dir)
    if (fold_dir / "checkpoints" / "last.ckpt").is_file():
        return train(load_config(fold_dir / "config.yaml"), resume=fold_dir, progress=progress)
    if fold_dir.exists():  # killed before its first checkpoint: nothing worth keeping
        shutil.rmtree(fold_dir)
    return train(fold_config(cfg, folds, fold), out=fold_dir, progress=progress)


def out_of_fold_predictions(cv_dir: Path, folds: int) -> pd.DataFrame:
    """Each fold's scores of its own validation patients, pooled: one row per labelled image."""
    from drgrader.evaluation.evaluate import ROW_COLUMNS
    from drgrader.grading import SCORE_COLUMNS

    parts = []
    for fold in range(folds):
        table = read_back(pd.read_csv(cv_dir / f"fold-{fold}" / "predictions_val.csv", dtype={"patient_id": str, "image_id": str}))
        keep = [c for c in ROW_COLUMNS if c in table and c != "split"]
        parts.append(table[keep + SCORE_COLUMNS].assign(fold=fold))
    oof = pd.concat(parts, ignore_index=True)
    if oof["image_id"].duplicated().any():
        raise ValueError(f"{cv_dir}: an image is in more than one fold's validation set")
    return oof


def pool_folds(cfg: ExperimentConfig, cv_dir: Path, folds: int) -> dict:
    """Fit thresholds, cut-points and the paired-eye stage on the OOF predictions and measure
    them: single-eye and paired-eye figures, per fold, and the tables :func:`write_pooled` writes."""
    from drgrader.evaluation.paired_stage import fit_paired_stage
    from drgrader.evaluation.patient_decisions import fit_patient_decision, with_patient_decisions
    from drgrader.evaluation.results import evaluate_table
    from drgrader.evaluation.thresholds import fit_thresholds
    from drgrader.grading import SCORE_COLUMNS, decide

    oof = out_of_fold_predictions(cv_dir, folds)
    task, n_boot, seed = cfg.model.task, cfg.eval.bootstrap, cfg.train.seed
    rows = oof.drop(columns=SCORE_COLUMNS)
    scores = oof[SCORE_COLUMNS].to_numpy(dtype=float)
    thresholds = fit_thresholds(pd.concat([rows, decide(scores, None)], axis=1), cfg.eval, task)
    single = pd.concat([rows, decide(scores, thresholds)], axis=1)
    result = {"single_eye": evaluate_table(single, thresholds, n_boot=n_boot, seed=seed)}
    result["per_fold"] = per_fold_figures(single, thresholds, folds, seed)

    paired_stage, decided, used = None, single, thresholds
    if task == "grade":
        try:
            # Honest figures: the fused grade of each eye from a stage that did not see its patient.
            paired_stage, fused_oof = fit_paired_stage(single, cfg.eval, patients="out-of-fold patients")
            paired_thresholds = paired_stage["thresholds"]
            result["paired_eyes"] = evaluate_table(fused_oof, paired_thresholds, n_boot=n_boot, seed=seed)
            decided, used = fused_oof, paired_thresholds
            single = single.assign(fused_grade=fused_oof["expected_grade"].to_numpy(), paired=fused_oof["paired"].to_numpy(),
                                   fused_pred_grade=fused_oof["pred_grade"].to_numpy())
        except ValueError as exc:
            log.warning("paired-eye stage not fitted: %s", exc)
    # The per-patient decision on the eyes as the bundle will decide them (paired when it can).
    spec = fit_patient_decision(decided, used, refer_share=cfg.eval.refer_share, urgent_sensitivity=cfg.eval.urgent_sensitivity,
                                fitted_on="out-of-fold predictions")
    key = "paired_eyes" if paired_stage else "single_eye"
    result[key] = with_patient_decisions(result[key], decided, used, spec, n_boot=n_boot, seed=seed)
    return {"oof": single, "decided": decided, "thresholds": thresholds, "paired_stage": paired_stage,
            "patient_decision": spec, **result}


def per_fold_figures(single: pd.DataFrame, thresholds: dict, folds: int, seed: int) -> dict:
    """Headline figures of each fold's own patients (pooled thresholds), with mean and sd."""
    from drgrader.evaluation.results import evaluate_table

    table = {}
    for fold in range(folds):
        res = evaluate_table(single[single["fold"] == fold], thresholds, n_boot=0, seed=seed)
        table[str(fold)] = {name: res.get(sec, {}).get(key) for name, (sec, key) in PER_FOLD_METRICS.items()}
    summary = {}
    for name in PER_FOLD_METRICS:
        values = np.array([v[name] for v in table.values() if v[name] is not None], dtype=float)
        if values.size:  # over the folds with a value; no sd of one (probe 44 CH9: "0.500 ± 0.000" was one fold's)
            summary[name] = {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if values.size > 1 else None,
                             "n": int(values.size)}
    return {"folds": table, "summary": summary}


def run_cv(cfg: ExperimentConfig, *, folds: int, out: Path | None = None, fold: int | None = None, progress: bool = True) -> Path:
    """Train the K folds (or only ``fold``), then, once all are finished, pool them."""
    if folds < 2:
        raise ConfigError(f"--folds must be at least 2 (got {folds})")
    if fold is not None and not 0 <= fold < folds:
        raise ConfigError(f"--fold must be in 0..{folds - 1} (got {fold})")
    if cfg.data.split.method == "official":  # probe 35 BY2: the published test part went into the folds
        raise ConfigError("data.split.method=official: cv draws its own patient folds over every labelled photo, the "
                          "published test part included; drop it (to keep a published test set out, give cv the "
                          "training and validation photos only, and evaluate the cv bundle on the test set)")
    if cfg.data.split.file is not None:  # probe 34 BX2: ignored, its test patients went into the folds
        raise ConfigError(f"data.split.file={cfg.data.split.file}: cv draws its own patient folds over every labelled "
                          "photo and does not read a split file; drop it (to keep a test set out, give cv a data set "
                          "without it, and evaluate the cv bundle on it with `drgrader evaluate BUNDLE --data TEST`)")
    given = cfg.data.split.model_fields_set  # probe 38 CB8, probe 39 CC6 (a patient split's folds): dropped unsaid
    if cfg.data.split.folds != folds and (cfg.data.split.method == "kfold" or "folds" in given):
        log.warning("data.split.folds=%d is not used: cv trains the --folds %d folds (give --folds %d for the config's)",
                    cfg.data.split.folds, folds, cfg.data.split.folds)
    if cfg.data.split.test > 0:  # probe 37 CA8: dropped unsaid
        log.info("data.split.test=%g is not used: cv draws its folds over every labelled photo and its out-of-fold "
                 "figures cover them all (to keep a test set out, evaluate the cv bundle on it with --data)", cfg.data.split.test)
    checksum, pictures = _check_patients(cfg, folds, progress)  # before the cv folder exists: a refused command leaves nothing
    cv_dir = open_cv_dir(cfg, folds, out)
    _check_same_data(cv_dir, folds, checksum, pictures)
    for i in [fold] if fold is not None else range(folds):
        run_fold(cfg, cv_dir, folds, i, progress=progress)
    missing = [i for i in range(folds) if not (cv_dir / f"fold-{i}" / "metrics.json").is_file()]
    if missing:
        log.info("folds %s are not finished yet; the last of them pools the out-of-fold predictions", missing)
        return cv_dir
    pooled = pool_folds(cfg, cv_dir, folds)
    write_pooled(cfg, cv_dir, folds, pooled)
    if cfg.eval.lab and cfg.model.task == "grade":
        from drgrader.workflows.lab import write_lab

        write_lab(cfg, cv_dir, folds, pooled["oof"])
    return cv_dir


def write_pooled(cfg: ExperimentConfig, cv_dir: Path, folds: int, pooled: dict) -> None:
    """predictions_oof.csv, the ensemble bundle (OOF thresholds, paired-eye stage), metrics.json, report."""
    from drgrader.evaluation.evaluate import write_metrics
    from drgrader.inference.bundle_spec import MANIFEST, update_manifest
    from drgrader.inference.ensemble import make_ensemble
    from drgrader.reporting import write_report
    from drgrader.reporting.model_card import write_bundle_card
    from drgrader.workflows.records import run_header

    atomic_write_text(cv_dir / "predictions_oof.csv", table_csv(pooled["oof"]))
    bundle_dir = cv_dir / "bundle"
    if not (bundle_dir / MANIFEST).is_file():
        make_ensemble([cv_dir / f"fold-{i}" / "bundle" for i in range(folds)], bundle_dir)
    update_manifest(bundle_dir, thresholds=pooled["thresholds"], paired_eyes=pooled["paired_stage"],
                    patient_decision=pooled["patient_decision"], validation={"out_of_fold": pooled["single_eye"]["headline"]})
    paired = pooled.get("paired_eyes")
    # The data as fold 0 saw it (every labelled eye) and what reading it warned of (probe 46 CJ5: only the folds'
    # own metrics.json had the warnings, not cv's report and card).
    data = json.loads((cv_dir / "fold-0" / "metrics.json").read_text()).get("data") or {}
    summary = {k: v for k, v in (data.get("summary") or {}).items() if k not in ("splits", "patients_across_splits")}
    metrics = {
        **run_header(cv_dir.name),
        "evaluated_on": f"out-of-fold ({folds} folds)",
        "folds": folds,
        "tta_views": list(cfg.eval.tta),
        "thresholds": pooled["paired_stage"]["thresholds"] if paired else pooled["thresholds"],
        "single_eye_thresholds": pooled["thresholds"],
        "paired_stage": pooled["paired_stage"],
        "patient_decision": pooled["patient_decision"],
        "test": paired or pooled["single_eye"],
        **({"test_single_eye": pooled["single_eye"]} if paired else {}),
        "per_fold": pooled["per_fold"],
        "data": {**data, "summary": summary},
        "fold_training": {
            str(i): json.loads((cv_dir / f"fold-{i}" / "metrics.json").read_text()).get("training", {}) for i in range(folds)
        },
    }
    # The report reads the eyes it shows from predictions_test.csv: here, the out-of-fold ones.
    atomic_write_text(cv_dir / "predictions_test.csv", table_csv(pooled["decided"]))
    write_metrics(cv_dir / "metrics.json", metrics)
    write_report(cv_dir)
    write_bundle_card(bundle_dir, metrics, data_root=cfg.data.root)  # out-of-fold figures

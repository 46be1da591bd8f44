"""``train``: the whole run, from a config to a run folder with a bundle, metrics and report."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

from drgrader.config import ConfigError, ExperimentConfig, config_to_dict, save_config
from drgrader.progress import bar_wanted
from drgrader.runtime import process_ranks, resolve_precision, setup_torch_threads, tune_malloc
from drgrader.workflows.records import data_record, run_header
from drgrader.workflows.run_folder import check_resumed_config, check_same_data, forget_rendezvous, new_run_dir

log = logging.getLogger("drgrader")


_RESUME_WHY = "and the run would go on learning from both; restore the data, or train a new run"


def add_file_log(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("drgrader").addHandler(handler)
    return handler


def train(cfg: ExperimentConfig, out: Path | None = None, *, resume: Path | None = None, progress: bool = True) -> Path:
    """Train, evaluate and bundle one experiment. Returns the run folder.

    With ``resume`` (a run folder), training continues from its last checkpoint with the
    config and split saved there, on the labelled data it started with (else ConfigError).
    """
    tune_malloc()
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from drgrader.data.prepare import prepare_data
    from drgrader.data.summary import summarize
    from drgrader.evaluation.evaluate import evaluate_split_pair, write_metrics
    from drgrader.inference.bundle import load_bundle, save_bundle
    from drgrader.inference.bundle_spec import update_manifest
    from drgrader.models.factory import create_model, input_mean_std
    from drgrader.models.losses import inverse_frequency_weights
    from drgrader.training.callbacks import EpochSummary, RunFolderCheckpoint, SameRunFolder
    from drgrader.training.datamodule import FundusDataModule
    from drgrader.training.module import AtomicCheckpointIO, GraderModule
    from drgrader.training.sampler_epoch import SamplerEpoch
    from drgrader.training.time_budget import TimeBudget
    from drgrader.training.weight_averages import WeightAverages

    rank = process_ranks().rank
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "checkpoints" / "last.ckpt").is_file():
            raise FileNotFoundError(f"cannot resume {run_dir}: no checkpoints/last.ckpt")
        from drgrader.data.manifest import read_manifest
        from drgrader.workflows.records import manifest_checksum

        # Before any work: the epochs so far learnt from the data in manifest.csv.
        checksum = manifest_checksum(read_manifest(cfg.data).table)
        check_same_data(run_dir, checksum, why=_RESUME_WHY)
        check_resumed_config(run_dir, cfg)
    else:
        from drgrader.data.prepare import read_and_split

        _, _, split = read_and_split(cfg.data)  # the data set and its split checked before the run folder exists
        if not (split == "val").any():  # probe 35 BY8: a traceback after every photo was cached
            counts = ", ".join(f"{n} {side}" for side, n in split.value_counts().items())
            raise ConfigError(f"train needs validation photos to choose the best epoch and fit the thresholds; the split "
                              f"has none ({counts}): give a data.split.val large enough for one patient at least, or a split "
                              "file with val rows")
        run_dir = new_run_dir(cfg, out)  # one folder for all ranks of a multi-process run
        if rank == 0:
            save_config(cfg, run_dir / "config.yaml")
    handler = add_file_log(run_dir) if rank == 0 else None  # the other ranks log to the console only
    try:
        threads = setup_torch_threads()
        L.seed_everything(cfg.train.seed, workers=True, verbose=False)
        if cfg.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        log.info("run folder: %s (torch threads: %d)", run_dir, threads)

        split_file = run_dir / "split.csv" if resume is not None else None
        writes_files = resume is None and rank == 0
        data = prepare_data(cfg.data, run_dir if writes_files else None, split_file=split_file, progress=progress)
        if resume is not None:  # probe 58 CV2: and from the pictures in its pictures.csv (the cache's fingerprints), as cv checks
            check_same_data(run_dir, checksum, why=_RESUME_WHY, pictures=data.pictures)
        if cfg.data.split.file is not None:  # probe 58 CV1: copies the user's split puts on two sides are said
            from drgrader.data.prepare import say_copies_across_splits

            say_copies_across_splits(data, cfg.data.split.file)
        table = data.table
        counts = table.groupby("split")["grade"].value_counts().unstack(fill_value=0)
        log.info("images per split and grade:\n%s", counts.to_string())

        net = create_model(cfg.model, cfg.train.loss)
        mean, std = input_mean_std(cfg.model.backbone, cfg.data.normalize)
        weights = None
        if cfg.train.class_weights:
            weights = inverse_frequency_weights(table.loc[table["split"] == "train", "grade"].to_numpy(), cfg.model.task)
        module = GraderModule(cfg, net, mean, std, weights)
        datamodule = FundusDataModule(cfg, table)

        t = cfg.train
        precision = resolve_precision(t.precision, t.accelerator)
        budget = TimeBudget(t.budget_minutes) if t.budget_minutes else None
        log.info("precision: %s (train.precision: %s)", precision, t.precision)
        callbacks = [
            RunFolderCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor="val_metric", mode="max"),
            # last.ckpt after every epoch, for --resume (Lightning's save_last=True only writes it
            # when the monitored metric improves, so a crash would lose the epochs since then).
            RunFolderCheckpoint(dirpath=run_dir / "checkpoints", filename="last", enable_version_counter=False),
            LearningRateMonitor(logging_interval="epoch"),
            EpochSummary(),
            SamplerEpoch(),  # a new order each epoch under DDP, whatever the Lightning version
            SameRunFolder(run_dir),
        ]
        if t.early_stopping:
            callbacks.append(EarlyStopping(monitor="val_metric", mode="max", patience=t.early_stopping))
        averages = WeightAverages(ema_decay=t.ema_decay, average_last=t.average_last)
        callbacks.append(averages)
        if budget is not None:  # first, so the epoch line shows the plan it has just made
            callbacks.insert(0, budget)
        trainer = L.Trainer(
            default_root_dir=run_dir,
            max_epochs=t.epochs,
            max_time=timedelta(minutes=t.max_minutes) if t.max_minutes else None,
            accelerator=t.accelerator,
            devices=t.devices,
            num_nodes=t.num_nodes,
            strategy=t.strategy,
            precision=precision,
            # flush every step: a killed run keeps its learning curve up to the kill
            logger=[CSVLogger(run_dir, name="logs", version="", flush_logs_every_n_steps=1),
                    TensorBoardLogger(run_dir, name="logs", version="tb")],
            callbacks=callbacks,
            plugins=[AtomicCheckpointIO()],
            limit_train_batches=t.limit_train_batches,
            enable_progress_bar=progress and bar_wanted(),  # else EpochSummary's line per epoch
            log_every_n_steps=1,
            deterministic=False,  # set above with warn_only, so CPU ops without a deterministic kernel still run
            num_sanity_val_steps=0,
        )
        stashed = stash_epoch_log(run_dir) if resume is not None and rank == 0 else None
        started = time.time()
        trainer.fit(module, datamodule=datamodule, ckpt_path="last" if resume is not None else None)
        wall = time.time() - started
        if resume is None:
            forget_rendezvous(run_dir, cfg, out)  # every rank has passed it by now
        if stashed is not None:
            merge_epoch_log(run_dir, stashed)
        if trainer.global_rank != 0:
            return run_dir

        # The weight sets the lab compares with the best checkpoint, taken before it replaces them.
        weight_sets = ({"last": {k: v.detach().clone() for k, v in module.scoring.state_dict().items()},
                        **averages.averaged()} if cfg.eval.lab else {})
        best_checkpoint = next(c for c in callbacks if isinstance(c, ModelCheckpoint))
        best = best_checkpoint.best_model_path or str(run_dir / "checkpoints" / "last.ckpt")
        ckpt = torch.load(best, map_location="cpu", weights_only=True)
        module.load_state_dict(ckpt["state_dict"])
        module.scoring.eval()

        summary = summarize(table, table["split"], table, check_images=False, skipped=data.skipped)
        config = config_to_dict(cfg)
        bundle_dir = save_bundle(run_dir / "bundle", module.scoring, config=config, thresholds={}, data_summary=summary)
        # Its train and validation photos by their bytes: evaluated away from this run folder
        # (a copied bundle, a copied data set), the bundle still knows its own training data.
        from drgrader.evaluation.training_overlap import write_training_digests

        write_training_digests(run_dir, bundle_dir)
        bundle = load_bundle(bundle_dir, backend="torch")
        val_rows, test_rows = data.rows("val"), data.rows("test")
        evaluated_on = "test"
        if test_rows.empty:
            log.warning("no test split: reporting on validation, which also chose the checkpoint")
            test_rows, evaluated_on = val_rows, "val"
        result = evaluate_split_pair(bundle, val_rows, test_rows, cfg.eval, run_dir, seed=cfg.train.seed)
        # The weights are written once; the fitted thresholds join them in bundle.json.
        update_manifest(bundle_dir, thresholds=result["thresholds"], validation=result.get("val", {}),
                        patient_decision=result["patient_decision"], paired_eyes=result.get("paired_stage"))
        metrics = {
            **run_header(run_dir.name),
            "data": data_record(table, data.skipped, summary, data.warnings),
            "training": {
                "best_checkpoint": best,
                "best_epoch": ckpt.get("epoch"),
                "epochs_run": trainer.current_epoch,
                "world_size": trainer.world_size,
                "strategy": type(trainer.strategy).__name__,
                "best_val_metric": _to_float(best_checkpoint.best_model_score),
                "wall_time_s": round(wall, 1),
                "weights": getattr(net, "weights_source", ""),
                "precision": precision,
                **(budget.record() if budget is not None else {}),
            },
            "evaluated_on": evaluated_on,
            **result,
        }
        if cfg.eval.lab and not val_rows.empty:
            from drgrader.workflows.lab import score_weight_sets

            score_weight_sets(bundle_dir, weight_sets, val_rows, list(cfg.eval.tta) or ["orig"], run_dir)
        write_metrics(run_dir / "metrics.json", metrics)
        from drgrader.reporting.model_card import write_bundle_card

        write_bundle_card(bundle_dir, metrics, data_root=cfg.data.root)  # MODEL_CARD.md: the bundle explains itself
        try:
            from drgrader.reporting import write_report

            report = write_report(run_dir)
            log.info("report: %s", report)
        except ImportError:
            log.warning("report module not available; metrics.json written")
        return run_dir
    finally:
        if handler is not None:
            logging.getLogger("drgrader").removeHandler(handler)
            handler.close()


def stash_epoch_log(run_dir: Path) -> Path | None:
    """Lightning's CSV logger deletes an existing metrics.csv; keep it aside when resuming."""
    log_file = run_dir / "logs" / "metrics.csv"
    if not log_file.is_file():
        return None
    n = 1
    while (stashed := log_file.with_name(f"metrics.part{n}.csv")).exists():
        n += 1
    log_file.rename(stashed)
    return stashed


def merge_epoch_log(run_dir: Path, stashed: Path) -> None:
    """metrics.csv = the epochs before the interruption + those after it."""
    import pandas as pd

    from drgrader.io import atomic_write_text

    log_file = run_dir / "logs" / "metrics.csv"
    try:
        before = pd.read_csv(stashed)
    except (pd.errors.EmptyDataError, pd.errors.ParserError):  # a kill cut it short
        before = pd.DataFrame()
    after = pd.read_csv(log_file) if log_file.is_file() else before.iloc[:0]
    if "epoch" in after and len(after) and "epoch" in before:
        before = before[before["epoch"] < after["epoch"].min()]
    atomic_write_text(log_file, pd.concat([before, after], ignore_index=True).to_csv(index=False))


def _to_float(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if np.isnan(value) else value


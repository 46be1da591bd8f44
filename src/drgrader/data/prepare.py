"""manifest -> split -> preprocessed cache: the data steps every command shares."""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from drgrader.config import DataConfig

log = logging.getLogger("drgrader")


@dataclass
class PreparedData:
    """The manifest with its split and cache columns, plus what was left out and why, and each
    photo's picture fingerprint by image id (the cache's, :mod:`drgrader.data.same_picture`)."""

    table: pd.DataFrame
    skipped: dict = field(default_factory=dict)
    pictures: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # what reading the data set warned of (for the report and card)

    def rows(self, split: str) -> pd.DataFrame:
        return self.table[self.table["split"] == split].reset_index(drop=True)


def read_and_split(data: DataConfig, *, split_file: Path | None = None) -> tuple[pd.DataFrame, dict, pd.Series]:
    """The manifest, what it left out, and its split: every check of the data set but reading
    the photos, cheap enough to run before a command makes its output folder."""
    from drgrader.data.manifest import DataError, read_manifest
    from drgrader.data.split import across_splits_warning, assert_no_patient_leak, make_split, patients_across_splits

    if data.root is None:
        raise DataError("data.root is not set: point it at a data set folder (or run `drgrader demo`)")
    found = read_manifest(data)
    split_cfg = data.split
    if split_file is not None:
        split_cfg = split_cfg.model_copy(update={"file": Path(split_file)})
    else:
        _say_unused_split_options(data)
    split = make_split(found.table, split_cfg)
    if split_cfg.method in ("patient", "kfold", "official"):
        assert_no_patient_leak(found.table, split)
    elif (across := patients_across_splits(found.table, split))["patients"]:  # probe 58 CV8: said nowhere but the YAML
        log.warning(across_splits_warning(across, found.table["patient_id"].nunique()))
    return found.table, found.skipped.as_dict(), split


def _say_unused_split_options(data: DataConfig) -> None:
    """Name the split options the chosen split does not use (probe 34 BX9: dropped unsaid)."""
    split = data.split
    if split.file is not None:
        log.info("data.split.file: the split is read from %s; data.split.method, val, test, folds and seed do not apply",
                 split.file)
    elif split.method == "kfold":
        if split.test > 0:
            log.warning("data.split.test=%g is not used: kfold splits the patients into train and val (fold %d of %d, "
                        "1/%d of them) and has no test split; data.split.test=0 says so", split.test, split.fold, split.folds,
                        split.folds)
        if abs(split.val - 1 / split.folds) > 1e-9:  # probe 37 CA4; said, not warned: cv's folds keep a recipe's val
            log.info("data.split.val=%g is not used: kfold's validation part is fold %d of %d (1/%d of the patients)",
                     split.val, split.fold, split.folds, split.folds)
    elif split.method in ("patient", "image") and (split.fold, split.folds) != (0, 5):  # probe 38 CB5
        log.info("data.split.fold=%d, folds=%d are not used: the %s split draws val and test fractions (kfold, or "
                 "`drgrader cv`, uses folds)", split.fold, split.folds, split.method)
    elif split.method == "official" and split.test > 0:
        log.info("data.split.test=%g is not used: the official split's test part is the data set's own (data.split.val "
                 "and seed carve a validation part from its training part only when it has none)", split.test)


def copied_pictures(index: pd.DataFrame) -> list[list[int]]:
    """Groups of rows of a cache index (:func:`~drgrader.data.cache.build_cache`, in manifest
    order) that are one picture though their files differ (a JPEG re-save, a PNG, a resized or
    mirrored copy), by the fingerprints the cache stores: what a patient-level split links."""
    from drgrader.data.same_picture import same_pictures

    return [positions for positions, _ in same_pictures(index["picture"].tolist())]


def copies_across_splits(table: pd.DataFrame, pictures: dict[str, str]) -> list[list[tuple[str, str]]]:
    """Groups of photos of ``table`` (with its ``split``) that are copies (the same bytes, or the
    same picture re-saved: ``pictures``, the cache's fingerprints by image id) on two or more
    sides of the split, each as (image id, split) sorted by id; what ``data summary`` counts as
    crossing splits. A patient-level split without a split file never makes them (split_units)."""
    from drgrader.data.image_files import identical_files

    rows = table.reset_index(drop=True)
    prints = rows.assign(picture=rows["image_id"].astype(str).map(pictures).fillna(""))
    groups = {frozenset(g) for g in [*identical_files(rows["path"].astype(str).tolist()), *copied_pictures(prints)]}
    crossing = [g for g in groups if rows["split"].iloc[sorted(g)].nunique() > 1]
    kept = [g for g in crossing if not any(g < other for other in crossing)]  # a byte group inside its picture group
    return sorted([sorted((str(rows["image_id"].iat[i]), str(rows["split"].iat[i])) for i in g) for g in kept])


def say_copies_across_splits(prepared: PreparedData, split_file: Path) -> None:
    """A split file stands as the user gave it, but copies it puts on two sides make the held-out
    figures count a photo the model learnt from or was tuned on: warned, and kept with the data
    warnings for the report and card (probe 58 CV1: said by data summary only)."""
    groups = copies_across_splits(prepared.table, prepared.pictures)
    if not groups:
        return
    example = next((g for g in groups if {"train", "test"} <= {s for _, s in g}), groups[0])
    sides = {s for _, s in example}
    counted = ("the test figures count a training photo" if {"train", "test"} <= sides else
               "the validation figures that chose the checkpoint and thresholds count a training photo" if "train" in sides
               else "the test figures count a photo that tuned the thresholds")
    said = (f"data.split.file {split_file} puts copies (the same bytes, or the same picture re-saved) on two sides of the "
            f"split: {len(groups)} photo(s) have a copy in another split (e.g. {' = '.join(f'{i!r} in {s}' for i, s in example)}), "
            f"so {counted}; the split stands as given (without a split file, train keeps copies on one side; "
            "`drgrader data summary` lists them)")
    log.warning(said)
    prepared.warnings.append(said)


PICTURES_FILE = "pictures.csv"  # in a run folder: image_id, picture fingerprint (data.same_picture)


def prepare_data(
    data: DataConfig,
    run_dir: Path | None = None,
    *,
    split_file: Path | None = None,
    progress: bool = True,
) -> PreparedData:
    """Read the data set, split it by patient (or reuse ``split_file``), and preprocess every
    image into the cache. Writes ``manifest.csv`` and ``split.csv`` into ``run_dir``."""
    from drgrader.data.cache import build_cache
    from drgrader.data.manifest import DataError
    from drgrader.data.split import assert_no_patient_leak, make_split, save_split

    with said_warnings() as said:  # the console's warnings outlive it in the report and card (probe 45 CI6)
        manifest, skipped, split = read_and_split(data, split_file=split_file)
    index = build_cache(manifest, data, progress=progress)
    if split_file is None and data.split.file is None and data.split.method in ("patient", "kfold"):
        # The same picture re-saved (a PNG of a JPEG, a resized copy) under two patients: linked as
        # byte copies are, now that the cache has every photo's fingerprint (a file of copies is
        # not decoded twice for it). Without such copies the split is the one read_and_split made.
        copies = copied_pictures(index)
        if copies:
            split = make_split(manifest, data.split, pictures=copies)
            assert_no_patient_leak(manifest, split)
    table = manifest.assign(split=split.values)
    if run_dir is not None:
        from drgrader.io import atomic_write_text

        atomic_write_text(Path(run_dir) / "manifest.csv", manifest.to_csv(index=False))
        # Each photo's picture as this run read it: a fold run later (cv --fold) must see the same.
        atomic_write_text(Path(run_dir) / PICTURES_FILE, index[["image_id", "picture"]].to_csv(index=False))
        save_split(Path(run_dir) / "split.csv", manifest, split)

    table = table.merge(index.drop(columns="picture"), on="image_id", how="left", validate="one_to_one")
    failed = table[~table["ok"].fillna(False).astype(bool)]
    if len(failed):
        skipped["unreadable_image"] = len(failed)
        for _, row in failed.head(10).iterrows():
            log.warning("skipped unreadable image %s: %s", row["path"], row["error"])
        if len(failed) > 10:
            log.warning("... and %d more unreadable images", len(failed) - 10)
    table = table[table["ok"].fillna(False).astype(bool)].reset_index(drop=True)
    table["gradable"] = table["gradable"].fillna(True).astype(bool)
    if data.exclude_ungradable:
        # Ungradable images leave training only; evaluation reports metrics with and without them.
        drop = (table["split"] == "train") & ~table["gradable"]
        skipped["ungradable_excluded_from_training"] = int(drop.sum())
        table = table[~drop].reset_index(drop=True)
    if table.empty:
        raise DataError(f"no usable images in {data.root}")
    pictures = dict(zip(index["image_id"].astype(str), index["picture"].fillna("").astype(str)))
    return PreparedData(table, skipped, pictures, said)


class _Said(logging.Handler):
    def __init__(self, said: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.said = said

    def emit(self, record: logging.LogRecord) -> None:
        self.said.append(record.getMessage())


@contextmanager
def said_warnings():
    """The warnings given while the block runs, as text: drgrader's log warnings and Python
    warnings (these shown as they would be, too)."""
    said: list[str] = []
    caught: list[warnings.WarningMessage] = []
    handler = _Said(said)
    log.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as recorded:
            warnings.simplefilter("always")
            try:
                yield said
            finally:
                caught = list(recorded or [])
    finally:  # shown even when the block failed: what went before an error may explain it
        log.removeHandler(handler)
        for w in caught:
            if issubclass(w.category, UserWarning) and str(w.message) not in said:  # not a library's deprecation
                said.append(str(w.message))
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

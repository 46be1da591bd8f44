"""Train / validation / test splits of a manifest, at patient level by default.

Both eyes of a patient look alike and usually share a grade: an image-level split puts the
same person in training and test and inflates every metric. ``method="patient"`` keeps each
patient in one split, stratified by the patient's worst grade; ``method="image"`` is the naive
image-level split of seed 001, kept to measure that leakage.

The same photograph can also sit under two patients (a file copied into a second record): the
patient-level splits keep such patients together, on one side of every split, so that no model
is measured on a copy of a photo it trained on (:func:`split_units`); one warning says so.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from drgrader.config import SplitConfig
from drgrader.data.image_files import identical_files
from drgrader.io import atomic_write_text

SPLITS = ("train", "val", "test")

log = logging.getLogger("drgrader")


class SplitError(ValueError):
    """A split that cannot be made or does not fit the manifest."""


def patient_worst_grades(manifest: pd.DataFrame) -> pd.Series:
    """Worst (highest) grade of each patient, indexed by patient id, sorted by id."""
    return manifest.groupby("patient_id")["grade"].max().sort_index()


def _systematic_picks(n: int, fraction: float, start: float) -> np.ndarray:
    # Unit i is picked when start + fraction * i crosses an integer: about fraction * n picks,
    # evenly spread along the order, and never none when fraction * n >= 1.
    i = np.arange(n)
    return np.floor(start + fraction * (i + 1)) > np.floor(start + fraction * i)


def stratified_assign(strata: pd.Series, val: float, test: float, seed: int) -> pd.Series:
    """Assign each unit (the index of ``strata``) to train / val / test, stratified by value.

    Units are ordered by stratum and randomly within it; test and then val are taken by
    systematic sampling along that order, so each stratum gets its share rounded up or down
    and the totals are within one unit of the fractions. sklearn's stratified splitters refuse
    strata with fewer members than splits; this works for any size. Deterministic for ``seed``.
    """
    rng = np.random.default_rng(seed)
    units = strata.sort_index()  # independent of the manifest's row order
    order = (
        pd.DataFrame({"stratum": units.to_numpy(), "key": rng.permutation(len(units))}, index=units.index)
        .sort_values(["stratum", "key"])
        .index
    )
    result = pd.Series("train", index=order, dtype=object)
    is_test = _systematic_picks(len(order), test, rng.random())
    result[order[is_test]] = "test"
    rest = order[~is_test]
    is_val = _systematic_picks(len(rest), val / (1.0 - test), rng.random())
    result[rest[is_val]] = "val"
    return result.reindex(units.index)


def _official_split(manifest: pd.DataFrame, cfg: SplitConfig) -> pd.Series:
    if "split" not in manifest.columns:
        sources = sorted(manifest["source"].unique()) if "source" in manifest.columns else []
        raise SplitError(f"split.method=official, but the data set {sources} publishes no split; "
                         "use split.method=patient or kfold")
    split = manifest["split"].astype(str).astype(object)
    unknown = sorted(set(split) - set(SPLITS))
    if unknown:
        raise SplitError(f"manifest column 'split' holds {unknown}; expected {list(SPLITS)}")
    if cfg.val > 0 and not (split == "val").any():
        # IDRiD publishes only train and test: carve a patient-level validation set out of
        # the official training set (cfg.val of its patients) so training can be monitored.
        train = manifest[split == "train"]
        carved = stratified_assign(patient_worst_grades(train), cfg.val, 0.0, cfg.seed)
        split[train.index] = train["patient_id"].map(carved).to_numpy()
    return split


def _kfold_split(manifest: pd.DataFrame, cfg: SplitConfig) -> pd.Series:
    worst = patient_worst_grades(manifest)
    if len(worst) < cfg.folds:
        raise SplitError(f"split.folds={cfg.folds} needs at least {cfg.folds} patients; the data set has {len(worst)} "
                         "(patients linked by a copied photo count as one)")
    # StratifiedKFold needs one stratum with at least `folds` patients; tiny data gets KFold.
    if worst.value_counts().max() >= cfg.folds:
        splitter = StratifiedKFold(n_splits=cfg.folds, shuffle=True, random_state=cfg.seed)
    else:
        splitter = KFold(n_splits=cfg.folds, shuffle=True, random_state=cfg.seed)
    with warnings.catch_warnings():
        # "The least populated class has only N members": expected for rare grades.
        warnings.simplefilter("ignore", UserWarning)
        folds = list(splitter.split(np.zeros(len(worst)), worst.to_numpy()))
    val_patients = set(worst.index[folds[cfg.fold][1]])
    return manifest["patient_id"].map(lambda p: "val" if p in val_patients else "train")


def copies_sentence(linked: Sequence[Sequence[str]]) -> str:
    """The start of the warning about photos that are one picture under different patients
    (``linked``: their image ids, a group each), the same for a split and an evaluation."""
    return (f"{len(linked)} photo(s) are copies (the same bytes, or the same picture re-saved) under different "
            f"patients (e.g. {' = '.join(map(repr, linked[0]))})")


def split_units(manifest: pd.DataFrame, pictures: Sequence[Sequence[int]] = ()) -> pd.Series:
    """Per row, the unit a patient-level split assigns: its patient, or, for patients linked by
    byte-identical photos (or by ``pictures``: groups of row positions known to be one picture,
    from the cache's fingerprints), the first of them by id (so they land on one side). Warns
    when any are linked; the patients themselves are left as they are."""
    patients = manifest["patient_id"].astype(str)
    unit = {p: p for p in patients}

    def root(p: str) -> str:
        while unit[p] != p:
            p = unit[p]
        return p

    linked, as_eyes, graded_apart = [], {}, []
    copies = identical_files(manifest["path"].astype(str).tolist()) if "path" in manifest else []
    eyes = manifest["eye"].astype(str) if "eye" in manifest else pd.Series("", index=manifest.index)
    for positions in [*copies, *pictures]:
        group = sorted({root(p) for p in patients.iloc[positions]})
        if len(group) > 1:
            linked.append(manifest["image_id"].iloc[positions].tolist())
            if "grade" in manifest and manifest["grade"].iloc[positions].nunique() > 1:
                graded_apart.append(positions)
            for p in group[1:]:
                unit[p] = group[0]
        # one patient's "two eyes" are one picture (not two patients' copies already linked by their bytes: probe 49 CM4)
        elif patients.iloc[positions].nunique() == 1 and len(set(eyes.iloc[positions]) - {""}) > 1:
            ids = tuple(sorted(manifest["image_id"].iloc[positions].astype(str)))
            grades = sorted(set(manifest["grade"].iloc[positions].astype(int))) if "grade" in manifest else []
            as_eyes[ids] = (patients.iloc[positions[0]], grades)
    if linked:
        log.warning("%s: their patients are kept together on one side of the split, so no model is measured on a "
                    "copy of a photo it trained on", copies_sentence(linked))
    if graded_apart:  # probe 48 CL5: as evaluate says it
        first = graded_apart[0]
        log.warning("%d of them carry different grades (e.g. %s: grades %s): training learns one picture as each; "
                    "correct the grade of the copy, or remove it", len(graded_apart),
                    " = ".join(map(repr, manifest["image_id"].iloc[first].tolist())),
                    ", ".join(map(str, sorted(set(manifest["grade"].iloc[first].astype(int))))))
    if as_eyes:  # probe 32 B17: evaluate said so, data summary and train did not
        ids = next(iter(as_eyes))
        patient, grades = as_eyes[ids]
        graded = f", graded {' and '.join(map(str, grades))}" if len(grades) > 1 else ""  # probe 49 CM5
        log.warning("%d patient(s) have one picture as both eyes (e.g. %s of patient %r: the same bytes or picture%s): "
                    "training and the paired-eye stage take it as two eyes; remove one, or correct its name",
                    len({p for p, _ in as_eyes.values()}), " = ".join(map(repr, ids)), patient, graded)
    return patients.map(root)


def make_split(manifest: pd.DataFrame, cfg: SplitConfig, *, pictures: Sequence[Sequence[int]] = ()) -> pd.Series:
    """Split values ("train"/"val"/"test") for every manifest row, index aligned to it.

    Methods: ``patient`` (patient-level, stratified by worst grade, fractions ``cfg.val`` and
    ``cfg.test`` of patients), ``image`` (image-level stratified by grade: leaks patients),
    ``official`` (the data set's own split; if it has no validation part, ``cfg.val`` of the
    training patients become validation), ``kfold`` (patient-level stratified folds: fold
    ``cfg.fold`` is val, the rest train, no test); the patient-level ones keep patients whose
    photos are copies of each other together (``pictures``: :func:`split_units`). ``cfg.file`` reuses
    a saved split.
    """
    if cfg.file is not None:
        return load_split(cfg.file, manifest)
    if len(manifest) == 0:
        raise SplitError("cannot split an empty manifest")
    if cfg.method in ("patient", "kfold"):  # patient-level: copies of one photo stay on one side
        manifest = manifest.assign(patient_id=split_units(manifest, pictures))
    if cfg.method == "patient":
        by_patient = stratified_assign(patient_worst_grades(manifest), cfg.val, cfg.test, cfg.seed)
        split = manifest["patient_id"].map(by_patient)
    elif cfg.method == "image":
        by_image = stratified_assign(manifest.set_index("image_id")["grade"], cfg.val, cfg.test, cfg.seed)
        split = manifest["image_id"].map(by_image)
    elif cfg.method == "official":
        split = _official_split(manifest, cfg)
    else:
        split = _kfold_split(manifest, cfg)
    return pd.Series(split.to_numpy(dtype=object), index=manifest.index, name="split")


def save_split(path: str | Path, manifest: pd.DataFrame, split: pd.Series) -> None:
    """Write ``image_id,patient_id,split`` to a CSV (atomically)."""
    if not split.index.equals(manifest.index):
        raise SplitError("split index does not match the manifest index")
    table = pd.DataFrame({"image_id": manifest["image_id"], "patient_id": manifest["patient_id"],
                          "split": split})
    atomic_write_text(path, table.to_csv(index=False))


def run_split_table(run_dir: str | Path) -> pd.DataFrame:
    """A run folder's ``manifest.csv`` with each photo's split from its ``split.csv`` (the split the
    run trained on: a published split the manifest keeps, DDR's or IDRiD's, is replaced)."""
    ids = {"image_id": str, "patient_id": str}
    manifest = pd.read_csv(Path(run_dir) / "manifest.csv", dtype=ids)
    split = pd.read_csv(Path(run_dir) / "split.csv", dtype=ids)[["image_id", "split"]]
    return manifest.drop(columns="split", errors="ignore").merge(split, on="image_id")


def load_split(path: str | Path, manifest: pd.DataFrame) -> pd.Series:
    """Read a split written by :func:`save_split`; its images and patients must match the manifest."""
    path = Path(path)
    if not path.is_file():
        raise SplitError(f"split file not found: {path}")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SplitError(f"{path} cannot be read as CSV: {str(exc).strip().splitlines()[0]}") from None
    missing_cols = [c for c in ("image_id", "patient_id", "split") if c not in table.columns]
    if missing_cols:
        raise SplitError(f"{path}: missing column(s) {missing_cols}; found {list(table.columns)}")
    duplicated = table["image_id"][table["image_id"].duplicated()]
    if len(duplicated):
        raise SplitError(f"{path}: image id {duplicated.iloc[0]!r} appears more than once")
    bad = table[~table["split"].isin(SPLITS)]
    if len(bad):
        row = bad.index[0]
        raise SplitError(f"{path} row {row + 1} (image {bad['image_id'].iloc[0]!r}): split "
                         f"{bad['split'].iloc[0]!r} is not one of {list(SPLITS)}")
    saved = table.set_index("image_id")
    ids = set(manifest["image_id"])
    not_saved = sorted(ids - set(saved.index))
    extra = sorted(set(saved.index) - ids)
    if not_saved or extra:
        raise SplitError(f"{path} does not match the data set: {len(not_saved)} manifest images are "
                         f"not in it (e.g. {not_saved[:3]}), {len(extra)} of its images are not in "
                         f"the manifest (e.g. {extra[:3]})")
    patients = manifest["image_id"].map(saved["patient_id"])
    changed = manifest[patients != manifest["patient_id"]]
    if len(changed):
        image_id = changed["image_id"].iloc[0]
        raise SplitError(f"{path}: image {image_id!r} belongs to patient "
                         f"{saved.loc[image_id, 'patient_id']!r} there but to "
                         f"{changed['patient_id'].iloc[0]!r} in the manifest")
    return pd.Series(manifest["image_id"].map(saved["split"]).to_numpy(dtype=object),
                     index=manifest.index, name="split")


def _patients_in_two_splits(manifest: pd.DataFrame, split: pd.Series) -> pd.Series:
    """The splits of each patient with photos in more than one, by patient id."""
    per_patient = pd.DataFrame({"patient": manifest["patient_id"].to_numpy(),
                                "split": split.reindex(manifest.index).to_numpy()})
    splits_of = per_patient.groupby("patient")["split"].unique()
    return splits_of[splits_of.map(len) > 1]


def patients_across_splits(manifest: pd.DataFrame, split: pd.Series) -> dict[str, int]:
    """``{"patients": n, "test": m}``: the patients with photos in two splits (an image-level split's,
    or a split file's), and how many of them have photos in the test split: what the log, report
    and card say of a split that is not by patient (probe 58 CV8)."""
    across = _patients_in_two_splits(manifest, split)
    return {"patients": int(len(across)), "test": int(sum("test" in set(s) for s in across))}


def across_splits_warning(counts: dict[str, int], n_patients: int) -> str:
    """The log's warning for a split that puts patients on two sides (``counts``: :func:`patients_across_splits`)."""
    test = f" ({counts['test']} of them in the test split)" if counts.get("test") else ""
    return (f"the split is by photo, not by patient: {counts['patients']} of {n_patients} patients have photos in two "
            f"splits{test}, so the held-out figures are flattered (the model is measured on patients whose other "
            "photos it learnt from or was tuned on); data.split.method=patient keeps each patient on one side")


def assert_no_patient_leak(manifest: pd.DataFrame, split: pd.Series) -> None:
    """Raise :class:`SplitError` if any patient has images in more than one split."""
    leaking = _patients_in_two_splits(manifest, split)
    if len(leaking):
        examples = ", ".join(f"{p} ({'/'.join(sorted(s))})" for p, s in leaking.head(5).items())
        raise SplitError(f"{len(leaking)} patients have images in more than one split, e.g. {examples}")

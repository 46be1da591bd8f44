"""The lab: one cross-validation answers several questions at once.

With ``eval.lab`` each fold scores its validation patients (out-of-fold in ``drgrader cv``) with
every weight set the run kept (the best checkpoint it ships, the last epoch's weights, the EMA
and the average of the last epochs when ``train.ema_decay`` / ``train.average_last`` are set)
and, for the best checkpoint, each of the 8 dihedral views on its own. ``fold-<i>/lab_scores.csv``
holds one row per image, weight set and view. Once every fold is done, ``drgrader cv`` pools them
(:func:`write_lab`): each variant (weights x TTA views, single eye and with the paired-eye stage)
gets its figures with patient-bootstrap CIs and the paired difference against the shipped one,
in ``lab.json`` and ``lab.md``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from drgrader.config import ExperimentConfig
from drgrader.config_values import DIHEDRAL_VIEWS
from drgrader.io import atomic_write_json, atomic_write_text

log = logging.getLogger("drgrader")

LAB_SCORES = "lab_scores.csv"
SHIPPED = "best"


def score_weight_sets(bundle_dir: Path, weight_sets: dict, rows: pd.DataFrame, tta: list[str], run_dir: Path) -> Path:
    """Score ``rows`` with the bundle's weights (every dihedral view) and each of ``weight_sets``
    ({name: scoring-net state}; the views in ``tta``); write ``run_dir/lab_scores.csv``."""
    from drgrader.evaluation.evaluate import score_rows
    from drgrader.grading import SCORE_COLUMNS
    from drgrader.inference.bundle import load_bundle

    bundle = load_bundle(bundle_dir, backend="torch")
    best_state = {k: v.clone() for k, v in bundle.runner.scoring_net.state_dict().items()}
    plan = [(SHIPPED, best_state, DIHEDRAL_VIEWS)] + [(name, state, tta) for name, state in weight_sets.items()]
    parts = []
    for name, state, views in plan:
        bundle.runner.scoring_net.load_state_dict(state)
        for view in views:
            scores = score_rows(bundle, rows, [view], desc=f"lab: {name} weights, {view}")
            part = pd.DataFrame(scores, columns=SCORE_COLUMNS)
            part.insert(0, "view", view)
            part.insert(0, "weights", name)
            part.insert(0, "image_id", rows["image_id"].to_numpy())
            parts.append(part)
    path = run_dir / LAB_SCORES
    atomic_write_text(path, pd.concat(parts, ignore_index=True).to_csv(index=False))
    log.info("lab scores (%d weight sets, %d views of the best) written to %s", len(plan), len(DIHEDRAL_VIEWS), path)
    return path


def lab_variants(tta: list[str], weight_sets: list[str]) -> dict[str, tuple[str, list[str]]]:
    """The variants one lab run measures: {label: (weights, views)}; the first is the shipped one."""
    views = {1: ["orig"], 2: ["orig", "hflip"], 4: ["orig", "hflip", "vflip", "hvflip"], 8: DIHEDRAL_VIEWS}
    variants = {f"best, {len(tta)}-view TTA (shipped)": (SHIPPED, tta)}
    for n, chosen in views.items():
        if chosen != tta:
            variants[f"best, {n}-view TTA"] = (SHIPPED, chosen)
    for name in weight_sets:
        if name != SHIPPED:
            variants[f"{name} weights, {len(tta)}-view TTA"] = (name, tta)
    return variants


def write_lab(cfg: ExperimentConfig, cv_dir: Path, folds: int, oof: pd.DataFrame) -> dict:
    """Pool the folds' lab scores and compare the variants: ``lab.json`` and ``lab.md``."""
    from drgrader.evaluation.lab import compare_variants, lab_markdown

    lab = pd.concat([pd.read_csv(cv_dir / f"fold-{i}" / LAB_SCORES, dtype={"image_id": str}) for i in range(folds)],
                    ignore_index=True)
    tta = list(cfg.eval.tta) or ["orig"]
    variants = lab_variants(tta, list(dict.fromkeys(lab["weights"])))
    result = compare_variants(oof, lab, variants, cfg.eval, n_boot=cfg.eval.bootstrap, seed=cfg.train.seed)
    atomic_write_json(cv_dir / "lab.json", result)
    atomic_write_text(cv_dir / "lab.md", lab_markdown(result))
    log.info("lab: %d variants compared, written to %s", len(variants), cv_dir / "lab.md")
    return result

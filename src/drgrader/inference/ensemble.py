"""``drgrader ensemble``: several bundles as one. Each member keeps its own preprocessing, input
size and TTA; the ensemble averages their decoded scores (``Bundle.score_prepared``). Thresholds
are left empty: an average of scores needs its own, fitted by ``drgrader evaluate``."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from drgrader.grading import SCORE_COLUMNS
from drgrader.inference.builtin import resolve_bundle
from drgrader.inference.bundle import check_recorded_files
from drgrader.inference.bundle_spec import BundleError, mixed_score_scales, read_manifest, write_manifest
from drgrader.inference.ensemble_members import WEIGHTS_KEY, single_models, weights_digest
from drgrader.io import atomic_dir

MEMBERS_DIR = "members"


def _member_summary(name: str, manifest: dict, leaves: list[tuple[Path, dict]]) -> dict:
    keys = ("backbone", "task", "kind", "input_size", "preprocess", "tta", "validation")
    summary = {"folder": name, **{k: manifest.get(k) for k in keys}}
    # what the loader checks the member folder against (ensemble_members.check_members)
    summary[WEIGHTS_KEY] = [weights_digest(leaf) for leaf, _ in leaves]
    kinds = {leaf["kind"] for _, leaf in leaves}
    if len(kinds) == 1:  # a nested ensemble's kind is its models' (the scale check of bundle_spec reads it)
        summary["kind"] = kinds.pop()
    return summary


def _member_name(path: Path) -> str:
    """A member's folder name: the bundle's; for a run's ``bundle/`` the run's (``r2``, ``fold-0``),
    so the card tells the members apart."""
    path = path.resolve()
    return path.parent.name if path.name == "bundle" else path.name


def _refuse_repeated_members(sources: list[tuple[Path, list[tuple[Path, dict]]]]) -> None:
    """One model given twice (or a copy of it), directly or inside an ensemble given as a member
    (a cv bundle and one of its folds), would weigh double in the average while the card counts
    it as another model: refused. Models are compared leaf by leaf, by their weights."""
    folders: dict[Path, Path] = {}
    seen: dict[str, tuple[Path, Path]] = {}  # weights digest -> (bundle given, its model holding them)
    for path, leaves in sources:
        if path.resolve() in folders:
            raise BundleError(f"{path} is given twice: an ensemble's members must be different models")
        folders[path.resolve()] = path
        for leaf, _ in leaves:
            key = weights_digest(leaf)
            if key in seen and seen[key][0] != path:
                raise BundleError(f"{_repeated(path, leaf, *seen[key])}: an ensemble's members must be different models")
            seen.setdefault(key, (path, leaf))


def _repeated(path: Path, leaf: Path, other: Path, other_leaf: Path) -> str:
    """How bundle ``path`` repeats ``other``, in words: the same model, or one inside the other."""
    if leaf == path and other_leaf == other:
        return f"{path} has the same weights as {other}"
    if leaf == path:
        return f"{path} is already a member of {other} (its {other_leaf.relative_to(other)} has the same weights)"
    if other_leaf == other:
        return f"{other} is already a member of {path} (its {leaf.relative_to(path)} has the same weights)"
    return f"{other} and {path} share a model ({other_leaf} has the same weights as {leaf})"


def make_ensemble(bundles: list[str | Path], out: str | Path) -> Path:
    """Copy the member bundles into ``out/members/<i>-<name>/`` and write the ensemble manifest.

    All members must have the same task. ``out`` must not exist yet (or be an empty folder).
    """
    if len(bundles) < 2:
        raise BundleError(f"an ensemble needs at least two bundles, got {len(bundles)}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BundleError(f"{out} already exists and is not empty; choose another --out")
    sources = []
    for item in bundles:
        path = resolve_bundle(item)  # a path, or a built-in grader's name: the one lookup of every command
        if out.resolve().is_relative_to(path.resolve()):  # probe 35 BY6: it copied itself into itself
            raise BundleError(f"--out {out} lies inside the member {path}; choose a folder outside it")
        manifest = read_manifest(path)
        if not manifest.get("members") and not any((path / f).is_file() for f in ("model.safetensors", "model.onnx")):
            raise BundleError(f"{path}: bundle has neither model.safetensors nor model.onnx")
        leaves = single_models(path)
        for leaf, leaf_manifest in leaves:  # another model's weights or graph copied in: refused now, not by predict later
            check_recorded_files(leaf, leaf_manifest)
        sources.append((path, manifest, leaves))
    _refuse_repeated_members([(path, leaves) for path, _, leaves in sources])
    tasks = {m["task"] for _, m, _ in sources}
    if len(tasks) > 1:
        listing = ", ".join(f"{p} ({m['task']})" for p, m, _ in sources)
        raise BundleError(f"ensemble members must share one task; got {listing}")
    # Averaged, a probability and a grade would mix in score_any / score_referable (probe 29).
    scales = mixed_score_scales({str(leaf): m["kind"] for _, _, leaves in sources for leaf, m in leaves})
    if scales:
        raise BundleError(scales)

    first = sources[0][1]
    # Built beside the target and renamed: an interrupted copy never looks like a bundle.
    with atomic_dir(out) as staging:
        members, summaries = [], []
        for i, (path, manifest, leaves) in enumerate(sources):
            safe = re.sub(r"[^\w.-]+", "_", _member_name(path))
            name = f"{MEMBERS_DIR}/{i}-{safe}"
            shutil.copytree(path, staging / name)
            members.append(name)
            summaries.append(_member_summary(name, manifest, leaves))
        write_manifest(staging, {
            "ensemble": True,
            "members": members,
            "member_info": summaries,
            "task": first["task"],
            "backbone": " + ".join(str(m.get("backbone")) for _, m, _ in sources),
            "outputs": SCORE_COLUMNS,
            "class_names": first.get("class_names"),
            "thresholds": None,  # refitted on validation by `drgrader evaluate`
            "tta": first.get("tta"),  # informational: each member applies its own
            # Each member uses its own; the largest is the ensemble's for the photo-size check (Bundle.input_size).
            "input_size": max(int(m["input_size"]) for _, m, _ in sources),
        })
    return out

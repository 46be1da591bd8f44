"""``drgrader ensemble``: several bundles as one. Each member keeps its own preprocessing, input
size and TTA; the ensemble averages their decoded scores (``Bundle.score_prepared``). Thresholds
are left empty: an average of scores needs its own, fitted by ``drgrader evaluate``."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

from drgrader.grading import SCORE_COLUMNS
from drgrader.inference.bundle_spec import BundleError, read_manifest, write_manifest
from drgrader.io import atomic_dir

MEMBERS_DIR = "members"


def _member_summary(name: str, manifest: dict) -> dict:
    keys = ("backbone", "task", "kind", "input_size", "preprocess", "tta", "validation")
    return {"folder": name, **{k: manifest.get(k) for k in keys}}


def _member_name(path: Path) -> str:
    """A member's folder name: the bundle's; for a run's ``bundle/`` the run's (``r2``, ``fold-0``),
    so the card tells the members apart."""
    path = path.resolve()
    return path.parent.name if path.name == "bundle" else path.name


def _weights_digest(path: Path) -> str:
    """A digest of a bundle's weights (a nested ensemble's: of its members'): its PyTorch weights
    when it has them, so an ONNX or int8 export of a bundle (which keeps them) is that bundle;
    else its ONNX graph."""
    digest = hashlib.sha256()
    for file in sorted(path.rglob("model.safetensors")) or sorted(path.rglob("model.onnx")):
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _refuse_repeated_members(paths: list[Path]) -> None:
    """One bundle given twice (or a copy of it) would weigh double in the average while the card
    counts it as another model: refused."""
    seen: dict[str, Path] = {}
    for path in paths:
        for key in (f"folder {path.resolve()}", f"weights {_weights_digest(path)}"):
            if key in seen:
                same = "is given twice" if key.startswith("folder") else f"has the same weights as {seen[key]}"
                raise BundleError(f"{path} {same}: an ensemble's members must be different models")
            seen[key] = path


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
        path = Path(item)
        path = path.parent if path.is_file() else path
        manifest = read_manifest(path)
        if not manifest.get("members") and not any((path / f).is_file() for f in ("model.safetensors", "model.onnx")):
            raise BundleError(f"{path}: bundle has neither model.safetensors nor model.onnx")
        sources.append((path, manifest))
    _refuse_repeated_members([path for path, _ in sources])
    tasks = {m["task"] for _, m in sources}
    if len(tasks) > 1:
        listing = ", ".join(f"{p} ({m['task']})" for p, m in sources)
        raise BundleError(f"ensemble members must share one task; got {listing}")

    first = sources[0][1]
    # Built beside the target and renamed: an interrupted copy never looks like a bundle.
    with atomic_dir(out) as staging:
        members, summaries = [], []
        for i, (path, manifest) in enumerate(sources):
            safe = re.sub(r"[^\w.-]+", "_", _member_name(path))
            name = f"{MEMBERS_DIR}/{i}-{safe}"
            shutil.copytree(path, staging / name)
            members.append(name)
            summaries.append(_member_summary(name, manifest))
        write_manifest(staging, {
            "ensemble": True,
            "members": members,
            "member_info": summaries,
            "task": first["task"],
            "backbone": " + ".join(str(m.get("backbone")) for _, m in sources),
            "outputs": SCORE_COLUMNS,
            "class_names": first.get("class_names"),
            "thresholds": None,  # refitted on validation by `drgrader evaluate`
            "tta": first.get("tta"),  # informational: each member applies its own
            # Each member uses its own; the largest is the ensemble's for the photo-size check (Bundle.input_size).
            "input_size": max(int(m["input_size"]) for _, m in sources),
        })
    return out

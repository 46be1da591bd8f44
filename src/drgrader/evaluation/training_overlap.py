"""Which photos of an evaluation the model was trained or tuned on.

``evaluate BUNDLE --data D`` calls its figures external; they are not when D holds photos the
model learnt from or chose its checkpoint and thresholds on. What the bundle's training record
says, in this order:

- its run folder (the bundle inside it): ``manifest.csv`` and ``split.csv``, each photo's path
  and split (a test-split photo was not seen), and ``pictures.csv``, each photo's picture
  fingerprint (data.same_picture); a cross-validation's folds saw every photo;
- :data:`TRAINING_DIGESTS` in the bundle folder (the built-in grader ships one): the sha256 of
  each photo it was trained or validated on, for a bundle without its run folder or data;
- else the folder it was trained on (its bundle.json's ``config.data.root``) when it is here:
  every photo under it counts, as the record cannot tell its splits apart.

A photo is one of them by its path (links resolved), by its bytes (a copy) or, against a run
folder's fingerprints, by its picture (:func:`~drgrader.data.same_picture.one_picture_with_any`:
a PNG of a JPEG, a re-saved, resized or mirrored copy). With :data:`TRAINING_DIGESTS` or the
data folder only, a re-saved copy (other bytes, the same picture) is not found.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from drgrader.data.manifest import IMAGE_EXTENSIONS
from drgrader.data.prepare import PICTURES_FILE
from drgrader.data.same_picture import one_picture_with_any
from drgrader.data.split import run_split_table
from drgrader.io import sha256_file

log = logging.getLogger("drgrader")

TRAINING_DIGESTS = "training_photos.sha256"  # one sha256 (first 16 hex digits) per line
HELD_OUT_DIGESTS = "held_out_photos.sha256"  # the run's test split, alike (probe 45 CI1: a bundle away from its run)
SEEN_SPLITS = ("train", "val")


@dataclass
class TrainingPhotos:
    """The photos a model learnt from or was tuned on: by path and, where known, by bytes and
    by picture."""

    source: str  # where the record comes from, in words
    paths: set[Path] = field(default_factory=set)
    digests: set[str] = field(default_factory=set)
    pictures: list[str] = field(default_factory=list)  # fingerprints (data.same_picture)
    # the run's held-out test photos (by path and picture): not trained on, but no outside data (probe 45 CI1)
    held_out: set[Path] = field(default_factory=set)
    held_out_pictures: list[str] = field(default_factory=list)
    held_out_digests: set[str] = field(default_factory=set)

    def compared_by(self) -> str:
        """How an evaluated photo is compared with these, in words: ``path, bytes or picture``."""
        ways = (["path"] if self.paths else []) + (["bytes"] if self.paths or self.digests else []) + (
            ["picture"] if self.pictures else [])
        return ", ".join(ways[:-1]) + " or " + ways[-1] if len(ways) > 1 else "".join(ways)


def unchecked_copies(overlap: dict | None) -> str | None:
    """What an external evaluation's check against the training photos (metrics.json's
    ``training_overlap``) could not see, in words; None without a record (nothing was checked).
    By picture, a cropped, padded, rotated or colour-processed copy of a training photo is not
    found (probe 43 CG10, probe 44 CH5); by
    bytes only (a bundle's own record, the built-in grader's), a re-saved copy is not found
    either (probe 42 CF6). Said in the report, the model card and on the console (probe 43 CG1)."""
    if overlap is None:
        return None
    compared = overlap.get("compared_by") or "bytes"
    if "picture" in compared:  # probe 44 CH5: a colour-processed copy (Ben Graham's filter) passed as "not found"
        return (f"checked against the model's training photos by {compared}: only a copy that keeps the whole picture "
                "(re-saved, resized, mirrored or turned by right angles) is found, not one cropped, padded, rotated by "
                "another angle or colour-processed")
    return (f"checked against the model's training photos by {compared} only: a copy of one in other bytes (re-saved, "
            "resized, cropped or colour-processed) would not be found")


def digest(path: str | Path) -> str:
    return sha256_file(path)[:16]


def _resolved(path: str | Path) -> Path:
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError, ValueError):
        return Path(path).absolute()


def _pictures(run_dir: Path, image_ids) -> list[str]:
    """The fingerprints a run folder's ``pictures.csv`` records for ``image_ids`` (none without one)."""
    record = run_dir / PICTURES_FILE
    if not record.is_file():
        return []
    table = pd.read_csv(record, dtype=str, keep_default_na=False)
    return [p for i, p in zip(table["image_id"], table["picture"]) if p and i in image_ids]


def _from_run(run_dir: Path) -> TrainingPhotos | None:
    """A run's train and validation photos; every photo of a cross-validation's folds."""
    folds = sorted(run_dir.glob("fold-*/manifest.csv")) if (run_dir / "cv.json").is_file() else []
    if folds:
        tables = [(f.parent, pd.read_csv(f, dtype=str)) for f in folds]
        paths = {_resolved(p) for _, table in tables for p in table["path"].dropna()}
        pictures = [p for fold, table in tables for p in _pictures(fold, set(table["image_id"]))]
        return TrainingPhotos(f"its cross-validation folder {run_dir} (each photo trained a fold model)", paths,
                              pictures=pictures)
    manifest, split = run_dir / "manifest.csv", run_dir / "split.csv"
    if not (manifest.is_file() and split.is_file()):
        return None
    table = run_split_table(run_dir)
    seen = table[table["split"].isin(SEEN_SPLITS)]
    test = table[table["split"] == "test"]
    return TrainingPhotos(f"its run folder {run_dir} (train and validation splits)", {_resolved(p) for p in seen["path"]},
                          pictures=_pictures(run_dir, set(seen["image_id"])), held_out={_resolved(p) for p in test["path"]},
                          held_out_pictures=_pictures(run_dir, set(test["image_id"])))


def recorded_digests(bundle_dir: Path, name: str = TRAINING_DIGESTS) -> set[str] | None:
    """The digests a bundle's own :data:`TRAINING_DIGESTS` (or ``name``) lists (None without the file)."""
    listed = Path(bundle_dir) / name
    if not listed.is_file():
        return None
    return {line.strip() for line in listed.read_text(encoding="utf-8").splitlines() if line.strip()}


def training_photos(bundle_dir: Path, run_dir: Path | None, manifest: dict) -> TrainingPhotos | None:
    """The bundle's training photos from its record (see the module docstring); None when it has none here."""
    found = _from_run(Path(run_dir)) if run_dir is not None else None
    digests = recorded_digests(bundle_dir)
    held_out = recorded_digests(bundle_dir, HELD_OUT_DIGESTS) or set()
    if digests is not None:
        own = f"{TRAINING_DIGESTS} of the bundle (its training and validation photos)"
        if found is None:
            return TrainingPhotos(own, digests=digests, held_out_digests=held_out)
        found.held_out_digests = held_out
        # Both: the bundle's own record joined to its run folder's (a bundle copied into another run
        # folder would otherwise be checked against that run's photos only; probe 34 BX13).
        found.source, found.digests = f"{found.source} and {own}", found.digests | digests
    if found is not None:
        return found
    root = ((manifest.get("config") or {}).get("data") or {}).get("root")
    if root and Path(root).is_absolute() and Path(root).is_dir():
        paths = {_resolved(p) for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()}
        return TrainingPhotos(f"the folder it was trained on, {root}", paths)
    return None


def _found(paths: set[Path], digests: set[str], known: list[str], evaluated: list[str], pictures: list[str] | None) -> list[str]:
    """The evaluated photos (paths; ``pictures``: their fingerprints) that are one of ``paths``
    (links resolved), of ``digests`` or of ``paths``' bytes, or one picture with ``known``."""
    sizes: dict[int, list[Path]] = {}
    for path in paths:
        try:
            sizes.setdefault(path.stat().st_size, []).append(path)
        except OSError:
            continue
    by_bytes: dict[Path, str] = {}  # files of a size an evaluated photo has, hashed once

    def seen(path: str) -> bool:
        real = _resolved(path)
        if real in paths:
            return True
        try:
            size = real.stat().st_size
        except OSError:
            return False
        if not digests and size not in sizes:
            return False
        mine = digest(real)
        if mine in digests:
            return True
        for other in sizes.get(size, []):
            if other not in by_bytes:
                by_bytes[other] = digest(other)
            if by_bytes[other] == mine:
                return True
        return False

    same_picture = one_picture_with_any(pictures, known) if pictures else [False] * len(evaluated)
    return [path for path, picture in zip(evaluated, same_picture) if picture or seen(path)]


def training_overlap(photos: TrainingPhotos, evaluated: list[str], pictures: list[str] | None = None) -> dict:
    """``{"photos": n, "of": m, "source": ..., "compared_by": ..., "examples": [...], "held_out": k}``:
    how many of the evaluated photos (paths; ``pictures``: their fingerprints, in the same order)
    are training photos, by path, by bytes or by picture; and how many others are the run's own
    held-out test photos (``held_out``: figures the run already gives, no outside data)."""
    hits = _found(photos.paths, photos.digests, photos.pictures, evaluated, pictures)
    held = [p for p in _found(photos.held_out, photos.held_out_digests, photos.held_out_pictures, evaluated, pictures)
            if p not in set(hits)] if photos.held_out or photos.held_out_digests else []
    return {"photos": len(hits), "of": len(evaluated), "source": photos.source, "compared_by": photos.compared_by(),
            "examples": [Path(p).name for p in hits[:5]], "held_out": len(held)}


def overlap_sentence(overlap: dict) -> str:
    """One line for the log, the report and the card's refusal: what the figures are not."""
    return (f"{overlap['photos']} of {overlap['of']} evaluated photos were used to train or tune this model "
            f"(found by {overlap.get('compared_by') or 'path or bytes'} in {overlap['source']}; "
            f"e.g. {', '.join(overlap['examples'])}): these figures are on its own "
            "training data, not an external evaluation (the count is of the copies found: one edited in brightness, "
            "contrast or colour is not counted)")  # probe 44 CH6


def write_training_digests(run_dir: Path, bundle_dir: Path) -> Path | None:
    """Write :data:`TRAINING_DIGESTS` into ``bundle_dir`` from its run folder's record (its train
    and validation photos), for a bundle that travels without its run (the built-in grader)."""
    from drgrader.io import atomic_write_text

    photos = _from_run(Path(run_dir))
    if photos is None:
        return None
    digests = sorted({digest(path) for path in photos.paths if path.is_file()})
    atomic_write_text(Path(bundle_dir) / TRAINING_DIGESTS, "".join(d + "\n" for d in digests))
    held_out = sorted({digest(path) for path in photos.held_out if path.is_file()})
    if held_out:  # and its held-out test photos (probe 45 CI1)
        atomic_write_text(Path(bundle_dir) / HELD_OUT_DIGESTS, "".join(d + "\n" for d in held_out))
    return Path(bundle_dir) / TRAINING_DIGESTS

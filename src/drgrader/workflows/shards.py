"""The shards of one ``predict --shard i/n`` run, and the record that lets the merge trust them.

Each shard writes ``<out stem>_shard.json`` beside its part: which shard it is (i/n), the run
(a checksum of the bundle's ``bundle.json`` and weights, the TTA views and the refer share), the
inputs (how many photos the whole run has, and a checksum of their paths, patients and eyes:
the shards' deal depends on them), and for the part and its ``_patients.csv`` their row counts
and content checksums, and the versions that grade a photo (:func:`grading_versions`).
``merge-predictions`` verifies every part against its record
(:func:`check_parts`): a part changed since (a row missing or edited), a part of another run,
bundle or inputs, a missing or repeated shard, a part without a record: all refused, the last
one unless the user says ``--unverified``; parts graded by two drgrader versions are refused too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import pandas as pd

from drgrader import __version__
from drgrader.data.cache import CACHE_VERSION, shard_of
from drgrader.data.dicom import split_frame_ref
from drgrader.data.manifest import DataError
from drgrader.inference.bundle import Bundle
from drgrader.io import atomic_write_json, sha256_file
from drgrader.outputs import FILE_NAME_ERRORS, OutputError, csv_bytes

log = logging.getLogger("drgrader")

RECORD_FORMAT = "drgrader predict --shard record 2"


def shard_rows(table: pd.DataFrame, shard: tuple[int, int]) -> pd.DataFrame:
    """The input rows of shard ``i`` of ``n``: by patient id when known, else by path."""
    i, n = shard
    keys = table["patient_id"].where(table["patient_id"].astype(str) != "", table["path"]).astype(str)
    return table[[shard_of(key, n) == i for key in keys]].reset_index(drop=True)


def shard_note(out: Path) -> Path:
    """The record beside a part: ``<out stem>_shard.json``."""
    return Path(out).with_name(f"{Path(out).stem}_shard.json")


def patients_file(out: Path) -> Path:
    return Path(out).with_name(f"{Path(out).stem}_patients.csv")


def bundle_checksum(bundle: Bundle) -> str:
    """SHA-256 over the bundle's ``bundle.json`` and model files (and each member's, for an
    ensemble), by their names inside the bundle: a copy elsewhere has the same checksum."""
    digest = hashlib.sha256()
    todo = [(bundle, "")]
    while todo:
        part, where = todo.pop(0)
        folder = Path(part.path)
        onnx = Path((part.manifest.get("onnx") or {}).get("file") or "model.onnx").name
        for name in dict.fromkeys(("bundle.json", "model.safetensors", "model.onnx", onnx)):
            if (folder / name).is_file():
                digest.update(f"{where}{name}:{sha256_file(folder / name)}\n".encode())
        todo += [(member, f"{where}{member_name}/") for member, member_name in zip(part.members, part.manifest.get("members") or [])]
    return digest.hexdigest()


def effective_views(bundle: Bundle, tta: list[str] | None) -> list:
    """The TTA views a run scores with, sorted (their scores are averaged): ``--tta`` as given,
    else the bundle's own, so one scoring spelled two ways is one run. An ensemble without
    ``--tta`` scores each member with its own views: one list when they agree, else one per member."""
    if tta is not None:
        return sorted(tta)
    if bundle.members:
        per_member = [effective_views(member, None) for member in bundle.members]
        return per_member[0] if all(views == per_member[0] for views in per_member) else per_member
    return sorted(bundle.tta)


def grading_versions() -> dict:
    """What else a photo's row depends on besides the bundle: the drgrader release and the version
    of its photo checks and preprocessing (data.cache.CACHE_VERSION, bumped whenever they change:
    an upgrade's compression check turns a `gradable` copy ungradable)."""
    return {"drgrader": __version__, "photo_checks": CACHE_VERSION}


def versions_text(versions: object) -> str:
    """``drgrader 0.1.0, photo checks 8``; a record written before versions were recorded: unknown."""
    if not isinstance(versions, dict):
        return "an unknown drgrader version (its record names none: written before versions were recorded)"
    return f"drgrader {versions.get('drgrader')}, photo checks {versions.get('photo_checks')}"


def run_identity(bundle: Bundle, tta: list[str] | None, refer_share: float | None) -> dict:
    """What every shard of one run shares: bundle files and manifest as loaded (a Bundle object
    may differ from its files), the TTA views it scores with, refer share."""
    manifest = json.dumps(bundle.manifest, sort_keys=True, default=str).encode()
    return {"bundle_sha256": bundle_checksum(bundle), "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
            "tta": effective_views(bundle, tta), "backend": bundle.backend, "refer_share": refer_share}


def _file_size(path: str) -> int:
    try:
        return os.stat(split_frame_ref(path)[0]).st_size
    except (OSError, ValueError):
        return -1  # not there: its row says why


def inputs_identity(table: pd.DataFrame) -> dict:
    """The whole run's inputs (before the deal): count, and checksum of path, patient, eye and file size
    (a photo replaced between two shards' runs is another input: probe 59 CW4; a size is one stat per
    photo, where a checksum of the contents would read every photo on every node)."""
    text = table[["path", "patient_id", "eye"]].assign(size=table["path"].map(_file_size)).to_csv(index=False)
    return {"photos": len(table), "sha256": hashlib.sha256(csv_bytes(text)).hexdigest()}


def _file_record(file: Path) -> dict:
    rows = len(pd.read_csv(file, dtype=str, keep_default_na=False, encoding_errors=FILE_NAME_ERRORS)) if file.stat().st_size else 0
    return {"rows": rows, "sha256": sha256_file(file)}


def refuse_other_shards_part(out: Path, shard: tuple[int, int] | None, *, overwrite: bool = False) -> None:
    """An ``--out`` that holds another shard's finished part (its record beside it says so), given to
    another shard of the run or to a run without shards: refused, as the part is that shard's work
    (probe 50 BN3: two array tasks with one ``--out`` lost the first's rows); ``overwrite`` replaces it."""
    note = shard_note(out)
    if overwrite or not Path(out).is_file() or not note.is_file():
        return
    try:
        recorded = json.loads(note.read_text(encoding="utf-8")).get("shard")
        i, n = (int(v) for v in recorded)
    except (OSError, ValueError, TypeError, AttributeError):
        return  # not a record this drgrader wrote: claim_file judges the file itself
    if shard is None or (i, n) != tuple(shard):
        example = Path(out).with_name(f"{Path(out).stem}-{shard[0] if shard else 'all'}{Path(out).suffix}")
        raise OutputError(f"--out {out} holds the part of shard {i}/{n} (its record {note.name}): give each shard its own "
                          f"--out (e.g. {example.name}), or --overwrite to replace that part")


def write_shard_record(out: Path, *, shard: tuple[int, int], run: dict, inputs: dict) -> Path:
    """Record the finished part ``out`` (and its patients file, when written) of shard i/n."""
    patients = patients_file(out)
    record = {
        "format": RECORD_FORMAT,
        "shard": list(shard),
        "run": run,
        "inputs": inputs,
        "versions": grading_versions(),
        "part": _file_record(out),
        "patients": _file_record(patients) if patients.is_file() else None,
    }
    atomic_write_json(shard_note(out), record)
    return shard_note(out)


def _read_record(part: Path) -> dict | None:
    """The part's record, None when there is none; a record this drgrader cannot read is refused."""
    note = shard_note(part)
    if not note.is_file():
        return None
    try:
        record = json.loads(note.read_text(encoding="utf-8"))
        i, n = record["shard"]
        ok = record["format"] == RECORD_FORMAT and 0 <= int(i) < int(n) and all(k in record for k in ("run", "inputs", "part"))
    except (OSError, ValueError, TypeError, KeyError):
        ok = False
    if not ok:
        raise DataError(f"merge-predictions: {note} is not a shard record this drgrader wrote (damaged, or from an older "
                        f"version); run that shard again, or pass --unverified to merge {part} unchecked")
    return record


def _verify_files(part: Path, record: dict, rows: int) -> None:
    """The part and its patients file are what its shard wrote."""
    expected = record["part"]
    if rows != expected.get("rows") or sha256_file(part) != expected.get("sha256"):
        change = f"{rows} rows, its record says {expected.get('rows')}" if rows != expected.get("rows") else "its content changed"
        raise DataError(f"merge-predictions: {part} is not what shard {record['shard'][0]}/{record['shard'][1]} wrote "
                        f"({change}; record {shard_note(part).name}); run that shard again")
    patients = patients_file(part)
    if record.get("patients") is None:
        if patients.is_file():
            raise DataError(f"merge-predictions: {patients} was not written by the shard of {part} (its record has no "
                            "patients file); remove it or run that shard again")
    elif not patients.is_file() or sha256_file(patients) != record["patients"].get("sha256"):
        state = "missing" if not patients.is_file() else "changed since its shard wrote it"
        raise DataError(f"merge-predictions: {patients} is {state} (record {shard_note(part).name}); run that shard again")


def check_parts(parts: list[Path], rows: list[int], *, partial: bool = False, unverified: bool = False) -> None:
    """Every part verified against its shard record, all of one run, each shard once, none
    missing (``partial``: a warning). ``rows``: each part's data rows. Parts without a record
    are refused unless ``unverified``."""
    given: dict[Path, Path] = {}
    for part in parts:
        if (same := given.setdefault(part.resolve(), part)) is not part:
            raise DataError(f"merge-predictions: {part} given twice" + (f" (as {same})" if same != part else "")
                            + "; give each part once")
    records = {part: _read_record(part) for part in parts}
    unrecorded = [p for p, r in records.items() if r is None]
    if unrecorded and not unverified:
        raise DataError(f"merge-predictions: {unrecorded[0]} has no shard record ({shard_note(unrecorded[0]).name}): it is "
                        "not a part of a predict --shard run, or its record was lost; merge the parts of one run, or pass "
                        "--unverified to merge parts without a record unchecked")
    recorded = [(p, r, n) for (p, r), n in zip(records.items(), rows) if r is not None]
    for part, record, count in recorded:
        _verify_files(part, record, count)
    if recorded:
        _check_one_run(recorded, partial, complete=not unrecorded)
    if unrecorded:
        log.warning("merged %d part(s) without a shard record unchecked (--unverified): %s; nothing says they are "
                    "whole, unchanged or of one run", len(unrecorded), ", ".join(map(str, unrecorded[:5])))


def _check_one_run(recorded: list[tuple[Path, dict, int]], partial: bool, complete: bool) -> None:
    first_part, first, _ = recorded[0]
    count = first["shard"][1]
    other = next(((p, r) for p, r, _ in recorded if r.get("versions") != first.get("versions")), None)
    if other is not None:  # the same photo can be gradable in one and a flagged copy in the other
        raise DataError(f"merge-predictions: {first_part} ({versions_text(first.get('versions'))}) and {other[0]} "
                        f"({versions_text(other[1].get('versions'))}) were graded by two drgrader versions, whose photo "
                        "checks may differ; grade every shard again with this drgrader")
    if "versions" not in first:
        log.warning("the shard records name no drgrader version (written before versions were recorded): nothing "
                    "says every shard was graded by one version")
    seen: dict[int, Path] = {}
    for part, record, _ in recorded:
        index, n = record["shard"]
        same = n == count and record["run"] == first["run"] and record["inputs"] == first["inputs"]
        if not same:
            differs = [what for what, a, b in (("bundle, backend, TTA or refer share", record["run"], first["run"]),
                                               ("inputs", record["inputs"], first["inputs"]), ("number of shards", n, count)) if a != b]
            raise DataError(f"merge-predictions: {part} (shard {index}/{n}) and {first_part} (shard {first['shard'][0]}/{count}) "
                            f"differ in {' and '.join(differs)}; merge the shards of one run (same inputs, bundle, backend, TTA and n)")
        if index in seen:
            raise DataError(f"merge-predictions: shard {index}/{count} given twice ({seen[index]} and {part})")
        seen[index] = part
    missing = sorted(set(range(count)) - set(seen))
    if missing:
        listing = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        message = f"shard(s) {listing} of {count} missing: their photos are not in the merge"
        if not partial and complete:  # with parts unrecorded (--unverified) nobody knows what they hold
            raise DataError(f"merge-predictions: {message} (give every part, or --partial)")
        log.warning("%s%s", message, "" if complete else ", unless the parts without a record hold them")
    elif complete and sum(r["part"]["rows"] for _, r, _ in recorded) != first["inputs"]["photos"]:
        raise DataError(f"merge-predictions: the {count} shards hold {sum(r['part']['rows'] for _, r, _ in recorded)} "
                        f"photos, their run had {first['inputs']['photos']}; run the shards again")

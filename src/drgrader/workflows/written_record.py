"""What predict and merge-predictions wrote, by content: a rerun onto the same ``--out`` never
replaces a file someone edited since (a decision overridden, a grade corrected in a spreadsheet).

The header check in :func:`drgrader.outputs.claim_file` knows a file of drgrader's kind; an edit
that keeps every column passes it. So each command records, in a hidden
``.<out name>.written.json`` beside its output, the SHA-256 of each CSV it wrote; a file that no
longer matches its record is the user's, replaced only with ``--overwrite``. A file without a
record (written by an older drgrader, or copied here alone) is judged by its header, and a copy
of it kept before it is replaced.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd

from drgrader.io import atomic_write_bytes, atomic_write_json, sha256_file
from drgrader.outputs import OutputError, OwnCsv, csv_bytes, fresh_name, table_csv
from drgrader.workflows.shards import patients_file

log = logging.getLogger("drgrader")

RECORD_FORMAT = "drgrader written record 1"


def written_record(out: Path) -> Path:
    """``.<out name>.written.json`` beside ``out``."""
    return Path(out).with_name(f".{Path(out).name}.written.json")


def record_written(out: Path, files: list[Path]) -> None:
    """Record the content of the CSVs a command just wrote at ``out`` (those that exist)."""
    atomic_write_json(written_record(out), {"format": RECORD_FORMAT,
                                            "files": {f.name: sha256_file(f) for f in files if f.is_file()}})


def _recorded(out: Path) -> dict:
    try:
        recorded = json.loads(written_record(out).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def refuse_edited(out: Path, own: dict[str, OwnCsv], *, overwrite: bool) -> None:
    """Refuse (:class:`OutputError`), before any work, when one of the command's own CSVs at
    ``out`` changed since drgrader wrote it: someone's edits, lost to a rerun."""
    recorded = {} if overwrite else _recorded(out)
    for what, own_csv in own.items():
        file = own_csv.file
        if file.is_file() and file.name in recorded and sha256_file(file) != recorded[file.name]:
            where = f"--out {out} exists" if file == Path(out) else f"--out {out} would replace {file}, which exists"
            raise OutputError(f"{where} and was changed since drgrader wrote it (edited by hand or in a spreadsheet?): "
                              f"this {what} would lose those changes; choose another --out, or --overwrite to replace it")


def keep_unrecorded(out: Path, files: list[Path], *, overwrite: bool) -> None:
    """Just before a command replaces its CSVs: one without a record of what was written (an older
    drgrader's, or copied here without its hidden record: probe 37 BA3) cannot be told from an
    edited one, so a copy is kept beside it (``o.previous.csv``), with a warning."""
    if overwrite:
        return
    recorded = _recorded(out)
    for file in files:
        if file.is_file() and file.name not in recorded:
            kept = fresh_name(file.with_name(f"{file.stem}.previous{file.suffix}"))
            shutil.copy2(file, kept)
            log.warning("%s has no record of what drgrader wrote there (an older drgrader's, or copied without its hidden "
                        "%s): a copy is kept as %s before it is replaced", file, written_record(out).name, kept)


def write_own_csvs(out: Path, predictions: pd.DataFrame, patients: pd.DataFrame | None, *, overwrite: bool) -> None:
    """The predictions at ``out`` and the patients file beside it, spreadsheet-safe, and their
    record. Without patients, an older patients file is removed: it must not pass for this one's."""
    keep_unrecorded(out, [out, patients_file(out)], overwrite=overwrite)
    atomic_write_bytes(out, csv_bytes(table_csv(predictions)))
    if patients is not None and len(patients):
        atomic_write_bytes(patients_file(out), csv_bytes(table_csv(patients)))
    else:
        patients_file(out).unlink(missing_ok=True)
    record_written(out, [out, patients_file(out)])

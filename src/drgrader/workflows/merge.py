"""``drgrader merge-predictions``: the shards' prediction files of one ``predict --shard`` run
joined into what one run would have written, each part verified against its shard record
(:mod:`drgrader.workflows.shards`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from drgrader.data.dicom import split_frame_ref
from drgrader.data.manifest import DataError
from drgrader.outputs import FILE_NAME_ERRORS, claim_file, exclusive, read_back
from drgrader.workflows.predict import own_csvs
from drgrader.workflows.shards import check_parts, patients_file, shard_note
from drgrader.workflows.written_record import refuse_edited, write_own_csvs, written_record

log = logging.getLogger("drgrader")


def merge_predictions(parts: Sequence[str | Path], out: str | Path, *, overwrite: bool = False, partial: bool = False,
                      unverified: bool = False) -> Path:
    """``drgrader merge-predictions``: the shards' prediction CSVs (and their ``_patients.csv``)
    into ``out`` (and ``<out stem>_patients.csv``), rows ordered by path as a run over a folder
    lists them; the cells are copied as written. Every part is verified against its shard record
    (:func:`~drgrader.workflows.shards.check_parts`); refused (exit 2): a part changed since its
    shard wrote it, parts of other inputs, bundle or TTA, a shard missing (``partial``: only a
    warning) or given twice, a photo or a patient in two parts, a part without a record (unless
    ``unverified``). A ``_patients.csv`` or ``_shard.json`` given beside its predictions file (``p-*``
    matches all three) is taken as that file's. ``out`` is held (``<out>.lock``) and written atomically."""
    given = [Path(p) for p in parts]
    chosen = {p.resolve() for p in given}
    # A part's own _patients.csv and _shard.json given beside it (``p-*`` matches all three) are that part's.
    files = [p for p in given if not any(p.name.endswith(suffix) and p.with_name(p.name.removesuffix(suffix) + ".csv").resolve() in chosen
                                         for suffix in ("_patients.csv", "_shard.json"))]
    if not files:
        raise DataError("merge-predictions: no prediction files given")
    for part in files:
        if not part.is_file():
            raise DataError(f"merge-predictions: {part} is not a file")
    out = claim_file(Path(out), inputs=[*given, *(patients_file(p) for p in files), *(shard_note(p) for p in files)],
                     overwrite=overwrite, beside={"patients file": patients_file(Path(out)),
                                                  "record of what it wrote": written_record(Path(out))}, own=own_csvs(Path(out)))
    refuse_edited(out, own_csvs(out), overwrite=overwrite)
    with exclusive(out):
        tables = [_read_part(p) for p in files]
        check_parts(files, [len(t) for t in tables], partial=partial, unverified=unverified)
        for part, table in zip(files, tables):
            if "path" not in table or list(table.columns) != list(tables[0].columns):
                raise DataError(f"{part}: its columns differ from {files[0]}'s; merge the outputs of one predict command")
        merged = pd.concat(tables, ignore_index=True)
        _refuse_repeats(merged, "path", files, tables, "photo")
        merged = merged.iloc[sorted(range(len(merged)), key=lambda k: _path_order(merged["path"].iat[k]))]

        per_patient = [(p, _read_part(patients_file(p))) for p in files if patients_file(p).is_file()]
        patients = None
        if per_patient:
            patients = pd.concat([t for _, t in per_patient], ignore_index=True)
            _refuse_repeats(patients, "patient_id", [p for p, _ in per_patient], [t for _, t in per_patient], "patient")
            patients = patients.sort_values("patient_id", kind="stable")
        write_own_csvs(out, merged, patients, overwrite=overwrite)
    log.info("merged %d parts: %d images%s into %s", len(files), len(merged),
             "" if patients is None else f", {len(patients)} patients", out)
    return out


def _read_part(file: Path) -> pd.DataFrame:
    try:  # every cell as text: written back exactly as the shard wrote it
        return read_back(pd.read_csv(file, dtype=str, keep_default_na=False, encoding_errors=FILE_NAME_ERRORS))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{file}: not a readable predictions CSV: {exc}") from None


def _path_order(path: str) -> tuple:
    """A folder's order (collect_inputs sorts paths), frames of a DICOM file by number."""
    source, frame = split_frame_ref(Path(path))
    return Path(source), frame or 0


def _refuse_repeats(merged: pd.DataFrame, column: str, parts: list[Path], tables: list[pd.DataFrame], what: str) -> None:
    repeated = merged.loc[merged[column].duplicated() & (merged[column] != ""), column]
    if len(repeated):
        value = repeated.iat[0]
        holders = [str(p) for p, t in zip(parts, tables) if (t[column] == value).any()]
        raise DataError(f"merge-predictions: {what} {value!r} is in {' and '.join(holders) or 'one part twice'} "
                        f"({len(repeated)} repeated); merge the shards of one run")

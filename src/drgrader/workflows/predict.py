"""``drgrader predict``: inputs -> bundle -> one CSV row per photo and one decision per patient,
resumable (finished rows are appended to ``<out>.partial.csv`` after every batch, each with its
file's size and modification time; rerunning the same command continues, and grades again the
photos that changed on disk meanwhile), written atomically at the end.

Many machines: ``--shard i/n`` grades only the photos of shard i (an array job's task), and
``drgrader merge-predictions`` joins the shards' files into what one run would have written.
Photos go to shards by patient when the patient is known (a patient's photos, both eyes, stay
together, so each shard's per-patient decisions and paired-eye grades are whole), else by path,
hashed as ``preprocess --shard`` hashes image ids (:func:`drgrader.data.cache.shard_of`). Each
shard also writes ``<out stem>_shard.json``, the record against which the merge verifies it
(:mod:`drgrader.workflows.shards`).

Patient and eye come from :mod:`drgrader.data.identity`; the conflicts it resolved are in the
``identity_note`` column of both files and summed up in one warning. Once every photo is graded,
those that are one picture though their files differ (a PNG of a JPEG, a re-saved copy, a mirror
image: :mod:`drgrader.data.same_picture`) are noted the same way
(:func:`~drgrader.inference.predict.with_same_pictures`); the resume file keeps each finished
photo's fingerprint for it. A shard compares only its own photos: a copy filed under a patient
of another shard is not found (a patient's own photos, both eyes, are in one shard)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from drgrader.config import ConfigError
from drgrader.config_values import check_refer_share
from drgrader.data.cache import source_fingerprint
from drgrader.data.dicom import split_frame_ref
from drgrader.data.identity_notes import warn_identity
from drgrader.data.inputs import INPUT_COLUMNS, collect_inputs
from drgrader.data.manifest import DataError
from drgrader.grading import SCORE_COLUMNS
from drgrader.inference.bundle import Bundle, load_bundle
from drgrader.inference.patient_decision import bundle_decision_points
from drgrader.inference.predict import (
    DEFAULT_OUT,
    OUTPUT_COLUMNS,
    PATIENT_COLUMNS,
    PICTURE_COLUMN,
    TEXT_COLUMNS,
    check_tta,
    patient_table,
    predict_images,
    ready_for_patients,
    typed_predictions,
    warn_other_tta,
)
from drgrader.io import atomic_write_json
from drgrader.outputs import FILE_NAME_ERRORS, OutputError, OwnCsv, claim_file, escape_name, exclusive, has_stray_bytes
from drgrader.workflows.shards import (
    effective_views,
    grading_versions,
    inputs_identity,
    patients_file,
    refuse_other_shards_part,
    run_identity,
    shard_note,
    shard_rows,
    versions_text,
    write_shard_record,
)
from drgrader.workflows.written_record import refuse_edited, write_own_csvs, written_record

log = logging.getLogger("drgrader")

STAT_COLUMN = "source_stat"  # in the partial file only: "<size>:<mtime_ns>" of the photo's file
PARTIAL_FORMAT = 3  # 2: rows carry STAT_COLUMN; 3: and PICTURE_COLUMN, the photo's fingerprint


def partial_file(out: Path) -> Path:
    """``<out>.partial.csv``: the finished rows of a run not yet done."""
    return Path(out).with_name(Path(out).name + ".partial.csv")


def resume_key_file(out: Path) -> Path:
    """``<out>.partial.json``: the run those rows belong to (:func:`_resume_key`)."""
    return Path(out).with_name(Path(out).name + ".partial.json")


def written_beside(out: Path, shard: tuple[int, int] | None) -> dict[str, Path]:
    """The files predict writes beside ``out``, by what they are (none may be an input)."""
    files = {"patients file": patients_file(out), "resume file": partial_file(out), "resume record": resume_key_file(out),
             "record of what it wrote": written_record(out)}
    if shard is not None:
        files["shard record"] = shard_note(out)
    return files


# The columns a later drgrader added: an older one's file lacks them.
LATER_PATIENT_COLUMNS = ("decision", "reason", "uncertainty", "fused_grade", "identity_note")
LATER_OUTPUT_COLUMNS = ("identity_note", "fused_grade", "paired", "uncertainty")


def own_csvs(out: Path) -> dict[str, OwnCsv]:
    """The CSVs predict and merge-predictions write, by the header every drgrader version gave
    them (the predictions file's identity_note came later): an existing file at either with
    another header is the user's, never replaced unasked."""
    first = ("path", "image_id", "patient_id", "eye")
    every_version = tuple(c for c in OUTPUT_COLUMNS if c not in (*first, *LATER_OUTPUT_COLUMNS))
    every_patients_version = tuple(c for c in PATIENT_COLUMNS if c not in LATER_PATIENT_COLUMNS)
    return {"predictions file": OwnCsv(out, first, every_version, LATER_OUTPUT_COLUMNS),
            "patients file": OwnCsv(patients_file(out), ("patient_id",), every_patients_version, LATER_PATIENT_COLUMNS)}


def _resume_key(bundle: Bundle, tta: list[str] | None) -> dict:
    """What must not change between an interrupted run and its continuation: the bundle, and the
    views it scores with (the bundle's own spelled out are the same run as ``--tta`` left out),
    and the drgrader and photo-check versions that graded the rows (:data:`GRADER_FIELDS`)."""
    manifest = json.dumps(bundle.manifest, sort_keys=True, default=str).encode()
    return {"bundle": str(Path(bundle.path).resolve()), "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
            "tta": effective_views(bundle, tta), "backend": bundle.backend, "partial_format": PARTIAL_FORMAT,
            "versions": grading_versions()}


# The fields of a resume key that say which drgrader wrote the rows: the same run by another one
# is graded again (its rows lack what this one keeps, or its photo checks differ), not refused.
GRADER_FIELDS = ("partial_format", "versions")


def _same_run_by_another_drgrader(old: dict | None, new: dict) -> bool:
    def run(key: dict) -> dict:
        return {k: v for k, v in key.items() if k not in GRADER_FIELDS}

    return old is not None and old != new and run(old) == run(new)


def _other_drgrader(old: dict) -> tuple[str, str]:
    """Who wrote an interrupted run's rows, and why they are graded again, in words."""
    if old.get("partial_format") == 2:
        return "an earlier drgrader that kept no picture fingerprints", "so that every photo is checked for copies"
    return (f"{versions_text(old.get('versions'))} (this is {versions_text(grading_versions())})",
            "so that every photo gets this version's photo checks")


def _read_key(key_file: Path, bundle: Bundle) -> dict | None:
    """The key an interrupted run wrote (None: missing or unreadable). An older drgrader wrote
    ``tta`` as given: None then meant the bundle's own views."""
    try:
        key = json.loads(key_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(key, dict):
        return None
    key.setdefault("backend", bundle.backend)  # written before it was recorded: not known to differ
    if key.get("tta") is None and key.get("manifest_sha256") == _resume_key(bundle, None)["manifest_sha256"]:
        key["tta"] = effective_views(bundle, None)
    elif isinstance(key.get("tta"), list) and all(isinstance(v, str) for v in key["tta"]):
        key["tta"] = sorted(key["tta"])
    return key


def _key_difference(old: dict | None, new: dict) -> str:
    """How the run that wrote a resume file differs from this one, in words."""
    if old is None:
        return "a run this drgrader has no record of (its .partial.json is missing or damaged)"
    if old.get("partial_format") != new["partial_format"]:
        return "another drgrader version"
    differs = []
    if old.get("bundle") != new["bundle"] or old.get("manifest_sha256") != new["manifest_sha256"]:
        differs.append(f"another bundle ({old.get('bundle')})")
    if old.get("tta") != new["tta"]:
        differs.append(f"--tta {_views_text(old.get('tta'))} (now {_views_text(new['tta'])})")
    if old.get("backend") != new["backend"]:  # probe 34 AX6: float16 torch rows beside float32 ONNX rows
        differs.append(f"--backend {old.get('backend') or 'unrecorded'} (now {new['backend']})")
    return " and ".join(differs) or "another run"


def _views_text(views: object) -> str:
    return " ".join(map(str, views)) if isinstance(views, list) else str(views)


def _refuse_or_discard(partial: Path, difference: str, overwrite: bool) -> None:
    """An interrupted run's rows that this run cannot continue: never deleted unasked."""
    rows = max(partial.read_bytes().count(b"\n") - 1, 0)
    if not overwrite:
        raise OutputError(f"{partial} holds {rows} finished rows of {difference}: rerun with that run's options to resume, "
                          f"or --overwrite (or delete {partial.name}) to start again")
    log.warning("--overwrite: discarding %s (%d finished rows of %s)", partial, rows, difference)
    partial.unlink()


def _file_stat(path: str) -> str:
    """Size and modification time (ns) of a photo's file (a DICOM frame's: its file's), by the
    preprocess cache's own fingerprint of a source: a finished row is reused only while both are
    unchanged ("-1:-1" when it cannot be read, so a file that appears later is graded)."""
    fingerprint = source_fingerprint(split_frame_ref(Path(path))[0])
    return f"{fingerprint['source_size']}:{fingerprint['source_mtime_ns']}"


def _read_partial(partial: Path) -> pd.DataFrame:
    data = partial.read_bytes()
    if data and not data.endswith(b"\n"):
        # Killed in the middle of a write: drop the incomplete last line.
        data = data[: data.rfind(b"\n") + 1]
        partial.write_bytes(data)
    if not data.strip():
        return pd.DataFrame(columns=[*OUTPUT_COLUMNS, PICTURE_COLUMN, STAT_COLUMN])
    return pd.read_csv(partial, dtype={c: str for c in [*TEXT_COLUMNS, PICTURE_COLUMN, STAT_COLUMN]},
                       encoding_errors=FILE_NAME_ERRORS)


def _default_out(shard: tuple[int, int] | None = None) -> Path:
    """``predictions.csv`` (``predictions-shard3of16.csv`` for a shard); when that exists, the
    interrupted run it belongs to, else a fresh name."""
    default = Path(DEFAULT_OUT)
    if shard is not None:
        default = default.with_name(f"{default.stem}-shard{shard[0]}of{shard[1]}{default.suffix}")
    candidate, n = default, 1
    while candidate.exists() and not partial_file(candidate).exists():
        n += 1
        candidate = default.with_name(f"{default.stem}-{n}{default.suffix}")
    return candidate


def predict_command(
    bundle: str | Path | Bundle,
    inputs: Sequence[str | Path],
    *,
    out: str | Path | None = None,
    backend: str = "auto",
    batch_size: int = 16,
    tta: list[str] | None = None,
    overwrite: bool = False,
    refer_share: float | None = None,
    shard: tuple[int, int] | None = None,
) -> Path:
    """``drgrader predict``: grade the inputs into ``out`` (CSV, ``OUTPUT_COLUMNS`` and each
    photo's ``uncertainty``) and ``<out stem>_patients.csv`` (every photo's patient: the
    per-patient decision, its reason and uncertainty, the worst eye, the identity notes; patients
    and eyes as :mod:`drgrader.data.identity` resolves them). ``refer_share``: the
    share of patients to send to a human grader (default: the bundle's). Resumable: rerun with
    the same ``out``; an interrupted run of another bundle or TTA is refused, never deleted
    (``overwrite``: discarded). Without ``out``: ``predictions.csv``, or a fresh ``predictions-2.csv`` ...
    when it exists (an interrupted default run is resumed). ``shard=(i, n)``: only the photos of
    shard i of n (see the module docstring); the default output is then
    ``predictions-shard<i>of<n>.csv``."""
    check_tta(tta)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    if refer_share is not None:
        check_refer_share(refer_share, "--refer-share")
    table = collect_inputs(inputs)
    if table.empty:
        raise DataError(f"no images found in {', '.join(str(i) for i in inputs)}")
    everything = table
    if shard is not None:
        table = shard_rows(table, shard)
        log.info("shard %d/%d: %d of %d images", shard[0], shard[1], len(table), len(everything))
    out = _default_out(shard) if out is None else Path(out).expanduser()  # pandas reads "~" so (probe 38 BB8)
    out = claim_file(out, inputs=[*map(Path, inputs), *map(Path, table["path"])], overwrite=overwrite,
                     beside=written_beside(out, shard), own=own_csvs(out))
    refuse_edited(out, own_csvs(out), overwrite=overwrite)
    refuse_other_shards_part(out, shard, overwrite=overwrite)
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle, backend)
    bundle.warn_if_unfitted()
    bundle.warn_if_synthetic()
    warn_other_tta(bundle, tta)
    try:  # before any work: a share the bundle has no band for
        bundle_decision_points(bundle.manifest, pd.DataFrame(columns=SCORE_COLUMNS), refer_share=refer_share)
    except ValueError as exc:
        raise ConfigError(f"--refer-share: {exc}") from None
    with exclusive(out):
        written, final = _predict_into(bundle, table, out, batch_size, tta, refer_share, overwrite)
        if shard is not None:
            write_shard_record(out, shard=shard, run=run_identity(bundle, tta, refer_share), inputs=inputs_identity(everything))
        warn_identity(final, str(out))  # the resolver's notes and those of the photos found to be one picture
        stray = [path for path in table["path"] if has_stray_bytes(path)]
        if stray:
            log.warning("%d photo name(s) are not UTF-8 (e.g. %s): the CSVs spell their stray bytes \\xNN, "
                        "and a list naming them so finds the files", len(stray), escape_name(stray[0]))
        return written


def _predict_into(
    bundle: Bundle, table: pd.DataFrame, out: Path, batch_size: int, tta: list[str] | None, refer_share: float | None = None,
    overwrite: bool = False,
) -> tuple[Path, pd.DataFrame]:
    partial, key_file = partial_file(out), resume_key_file(out)
    key = _resume_key(bundle, tta)
    stats = {path: _file_stat(path) for path in table["path"]}  # before any photo is read
    done = pd.DataFrame(columns=["path"])
    if partial.is_file():
        old_key = _read_key(key_file, bundle)
        if old_key == key:
            done = _read_partial(partial).drop_duplicates("path", keep="last")
            foreign = int((~done["path"].isin(stats)).sum())
            if foreign:  # finishing this run would drop that run's rows: they are its to resume
                _refuse_or_discard(partial, f"a run of other photos ({foreign} of them not among this run's inputs)", overwrite)
                done = done.iloc[:0]
            fresh = done["path"].map(stats) == done[STAT_COLUMN]
            changed = int((done["path"].isin(stats) & ~fresh).sum())
            done = done[fresh]
            log.info("resuming: %d of %d images already done in %s", table["path"].isin(done["path"]).sum(), len(table), partial)
            if changed:
                log.warning("%d photo(s) changed on disk (size or modification time) since the interrupted run: "
                            "graded again", changed)
        elif _same_run_by_another_drgrader(old_key, key):
            # Rows without fingerprints cannot be compared (same_picture); rows of other photo checks
            # (an upgrade's compression check) would keep the old verdicts: graded again, not kept.
            writer, why = _other_drgrader(old_key)
            log.warning("%s was written by %s: its %d finished rows are graded again, %s", partial, writer,
                        max(partial.read_bytes().count(b"\n") - 1, 0), why)
            partial.unlink()
        else:
            _refuse_or_discard(partial, _key_difference(old_key, key), overwrite)
    if not partial.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(key_file, key)
    todo = table[~table["path"].isin(done["path"])]

    with open(partial, "a", encoding="utf-8", errors=FILE_NAME_ERRORS, newline="") as fh:
        write_header = fh.tell() == 0

        def append(rows: pd.DataFrame) -> None:
            nonlocal write_header
            fh.write(rows.assign(**{STAT_COLUMN: rows["path"].map(stats)}).to_csv(index=False, header=write_header))
            write_header = False
            fh.flush()
            os.fsync(fh.fileno())

        predict_images(bundle, todo, batch_size=batch_size, tta=tta, on_batch=append)

    # Patient, eye and notes as resolved now, whatever an older partial file says; then the
    # photos that are one picture noted (ready_for_patients compares the fingerprints and drops them).
    rows = _read_partial(partial).drop_duplicates("path", keep="last").drop(columns=INPUT_COLUMNS[1:], errors="ignore")
    final = typed_predictions(table[INPUT_COLUMNS].merge(rows, on="path", how="left")[[*OUTPUT_COLUMNS, PICTURE_COLUMN]])
    final, points = ready_for_patients(bundle, final, refer_share=refer_share)
    patients = patient_table(final, points)
    write_own_csvs(out, final, patients, overwrite=overwrite)
    if len(patients):
        counts = patients["decision"].value_counts()
        log.info("per-patient decisions (%s): %s", ", ".join(f"{n} {o}" for o, n in counts.items()), patients_file(out))
    partial.unlink()
    key_file.unlink(missing_ok=True)
    failed = int((final["error"] != "").sum())
    ungradable = int((final["gradable"] == False).sum())  # noqa: E712 (nullable boolean)
    log.info("predicted %d images (%d unreadable, %d flagged ungradable): %s", len(final) - failed, failed, ungradable, out)
    return out, final

"""``drgrader predict``: inputs -> bundle -> one CSV row per photo and one decision per patient,
resumable (finished rows are appended to ``<out>.partial.csv`` after every batch; rerunning the
same command continues), written atomically at the end."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from drgrader.config import ConfigError
from drgrader.data.inputs import collect_inputs
from drgrader.data.manifest import DataError
from drgrader.grading import SCORE_COLUMNS
from drgrader.inference.bundle import Bundle, load_bundle
from drgrader.inference.patient_decision import bundle_decision_points, eye_uncertainty
from drgrader.inference.predict import (
    DEFAULT_OUT,
    OUTPUT_COLUMNS,
    TEXT_COLUMNS,
    check_tta,
    patient_table,
    predict_images,
    typed_predictions,
    with_paired_eyes,
)
from drgrader.io import atomic_write_json, atomic_write_text
from drgrader.outputs import claim_file, exclusive

log = logging.getLogger("drgrader")


def _resume_key(bundle: Bundle, tta: list[str] | None) -> dict:
    """What must not change between an interrupted run and its continuation."""
    manifest = json.dumps(bundle.manifest, sort_keys=True, default=str).encode()
    return {"bundle": str(Path(bundle.path).resolve()), "manifest_sha256": hashlib.sha256(manifest).hexdigest(), "tta": tta}


def _read_partial(partial: Path) -> pd.DataFrame:
    data = partial.read_bytes()
    if data and not data.endswith(b"\n"):
        # Killed in the middle of a write: drop the incomplete last line.
        data = data[: data.rfind(b"\n") + 1]
        partial.write_bytes(data)
    if not data.strip():
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    return pd.read_csv(partial, dtype={c: str for c in TEXT_COLUMNS})


def _default_out() -> Path:
    """``predictions.csv``; when that exists, the interrupted run it belongs to, else a fresh name."""
    default = Path(DEFAULT_OUT)
    candidate, n = default, 1
    while candidate.exists() and not candidate.with_name(candidate.name + ".partial.csv").exists():
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
) -> Path:
    """``drgrader predict``: grade the inputs into ``out`` (CSV, ``OUTPUT_COLUMNS`` and each
    photo's ``uncertainty``) and, when patient ids are known, ``<out stem>_patients.csv`` (the
    per-patient decision, its reason and uncertainty, and the worst eye). ``refer_share``: the
    share of patients to send to a human grader (default: the bundle's). Resumable: rerun with
    the same ``out``. Without ``out``: ``predictions.csv``, or a fresh ``predictions-2.csv`` ...
    when it exists (an interrupted default run is resumed)."""
    check_tta(tta)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    if refer_share is not None and not 0 <= refer_share <= 0.5:
        raise ConfigError(f"--refer-share must be between 0 and 0.5, got {refer_share}")
    table = collect_inputs(inputs)
    if table.empty:
        raise DataError(f"no images found in {', '.join(str(i) for i in inputs)}")
    out = claim_file(_default_out() if out is None else Path(out), inputs=[*inputs, *table["path"]], overwrite=overwrite)
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle, backend)
    try:  # before any work: a share the bundle has no band for
        bundle_decision_points(bundle.manifest, pd.DataFrame(columns=SCORE_COLUMNS), refer_share=refer_share)
    except ValueError as exc:
        raise ConfigError(f"--refer-share: {exc}") from None
    with exclusive(out):
        return _predict_into(bundle, table, out, batch_size, tta, refer_share)


def _predict_into(
    bundle: Bundle, table: pd.DataFrame, out: Path, batch_size: int, tta: list[str] | None, refer_share: float | None = None
) -> Path:
    partial = out.with_name(out.name + ".partial.csv")
    key_file = out.with_name(out.name + ".partial.json")
    key = _resume_key(bundle, tta)
    done = pd.DataFrame(columns=OUTPUT_COLUMNS)
    if partial.is_file():
        old_key = json.loads(key_file.read_text()) if key_file.is_file() else None
        if old_key == key:
            done = _read_partial(partial)
            log.info("resuming: %d of %d images already done in %s", table["path"].isin(done["path"]).sum(), len(table), partial)
        else:
            log.warning("ignoring %s: written with another bundle or TTA", partial)
            partial.unlink()
    if not partial.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(key_file, key)
    todo = table[~table["path"].isin(done["path"])]

    with open(partial, "a", encoding="utf-8", newline="") as fh:
        write_header = fh.tell() == 0

        def append(rows: pd.DataFrame) -> None:
            nonlocal write_header
            fh.write(rows.to_csv(index=False, header=write_header))
            write_header = False
            fh.flush()
            os.fsync(fh.fileno())

        predict_images(bundle, todo, batch_size=batch_size, tta=tta, on_batch=append)

    rows = _read_partial(partial).drop_duplicates("path", keep="last")
    final = typed_predictions(table[["path"]].merge(rows, on="path", how="left")[OUTPUT_COLUMNS])
    if bundle.paired_eyes:
        final = with_paired_eyes(final, bundle.paired_eyes)
    points = bundle_decision_points(bundle.manifest, final, refer_share=refer_share)
    final["uncertainty"] = eye_uncertainty(final, points)
    atomic_write_text(out, final.to_csv(index=False))
    patients = patient_table(final, points)
    if len(patients):
        patients_file = out.with_name(f"{out.stem}_patients.csv")
        atomic_write_text(patients_file, patients.to_csv(index=False))
        counts = patients["decision"].value_counts()
        log.info("per-patient decisions (%s): %s", ", ".join(f"{n} {o}" for o, n in counts.items()), patients_file)
    partial.unlink()
    key_file.unlink(missing_ok=True)
    failed = int((final["error"] != "").sum())
    ungradable = int((final["gradable"] == False).sum())  # noqa: E712 (nullable boolean)
    log.info("predicted %d images (%d unreadable, %d flagged ungradable): %s", len(final) - failed, failed, ungradable, out)
    return out

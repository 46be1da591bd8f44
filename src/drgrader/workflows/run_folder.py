"""The run folder of ``drgrader train``: one per run, the same for every process of a
multi-process run.

- One process: ``--out`` or ``<out_dir>/<name>``; an existing, non-empty folder is never reused
  silently: a numbered sibling (``-2``, ``-3`` ...) is made instead (``--resume`` continues a run).
- Lightning's own launcher (``drgrader train --devices 2 --strategy ddp``): rank 0 chooses and
  passes the folder in DRGRADER_RUN_DIR to the workers it spawns (they inherit its environment).
- torchrun or srun: every process starts the whole command on its own and nothing of rank 0's
  environment reaches the others. Rank 0 chooses and creates the folder as above and writes its
  path to a rendezvous file, ``.drgrader-launch/<launch id>.json`` beside the folder (under
  ``out_dir``, or beside ``--out``); the other ranks wait for that file and take the folder it
  names. The launch id (:func:`drgrader.runtime.process_ranks`) is the same in every process of
  one launch and new for the next: Slurm's job and step id, torchrun's rendezvous id (a fresh
  uuid with ``--standalone``; pass ``--rdzv-id`` with a static rendezvous, else every launch
  is ``none``), restart count and MASTER_PORT. A rendezvous file written well before this
  process started (left by a crashed launch that reused the id) is not taken. Rank 0 removes
  the file once training has started on every rank, and the ranks check, once their process
  group is up, that they all write to one folder (:class:`~drgrader.training.callbacks.SameRunFolder`).

So ``out_dir`` must be on a file system every process sees, as it must anyway for
checkpoints and ``--resume``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path

from drgrader.config import ConfigError, ExperimentConfig, config_to_dict, load_config, save_config
from drgrader.inference.own_run import RESUMABLE_KEYS, flat_settings
from drgrader.io import atomic_write_json
from drgrader.runtime import PROCESS_STARTED, Ranks, process_ranks

log = logging.getLogger("drgrader")

RUN_DIR_ENV = "DRGRADER_RUN_DIR"
RENDEZVOUS_DIR = ".drgrader-launch"
WAIT_ENV = "DRGRADER_RENDEZVOUS_TIMEOUT"  # seconds the other ranks wait for rank 0's folder
WAIT_S = 600.0
STALE_S = 600.0  # a rendezvous file older than this process by more is a leftover
_POLL_S = 0.2


def base_dir(cfg: ExperimentConfig, out: Path | None) -> Path:
    return Path(out) if out is not None else Path(cfg.out_dir) / cfg.name


def rendezvous_file(base: Path, ranks: Ranks) -> Path:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", ranks.launch_id or "unnamed")[:120]
    return base.parent / RENDEZVOUS_DIR / f"{name}.json"


def _fresh_dir(base: Path) -> Path:
    run_dir, n = base, 1
    while run_dir.exists() and any(run_dir.iterdir()):
        n += 1
        run_dir = base.with_name(f"{base.name}-{n}")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def new_run_dir(cfg: ExperimentConfig, out: Path | None, ranks: Ranks | None = None) -> Path:
    """The run folder of a new run: chosen and created by rank 0, learnt by the other ranks
    (see the module docstring)."""
    ranks = ranks or process_ranks()
    base = base_dir(cfg, out)
    if ranks.rank > 0:
        if ranks.launcher == "env" and os.environ.get(RUN_DIR_ENV):
            return Path(os.environ[RUN_DIR_ENV])
        if ranks.world_size > 1:
            return _wait_for_rank0(rendezvous_file(base, ranks), ranks)
    run_dir = _fresh_dir(base)
    if out is not None and run_dir != base:  # the folder the user named is not the one written (probe 43 CG6)
        log.warning("--out %s holds files already (an earlier run?): this run is written to %s instead (--resume %s "
                    "continues that one)", base, run_dir, base)
    os.environ[RUN_DIR_ENV] = str(run_dir.resolve())
    if ranks.world_size > 1:
        atomic_write_json(rendezvous_file(base, ranks), {"run_dir": str(run_dir.resolve()), "launch": ranks.launch_id,
                                                          "written": time.time()})
    return run_dir


def _wait_for_rank0(file: Path, ranks: Ranks) -> Path:
    timeout = float(os.environ.get(WAIT_ENV) or WAIT_S)
    deadline = time.monotonic() + timeout
    while True:
        try:
            note = json.loads(file.read_text(encoding="utf-8"))
            if note.get("launch") == ranks.launch_id and float(note.get("written", 0)) >= PROCESS_STARTED - STALE_S:
                run_dir = Path(note["run_dir"])
                if run_dir.is_dir():
                    log.info("rank %d: run folder %s (chosen by rank 0)", ranks.rank, run_dir)
                    return run_dir
        except (OSError, ValueError, KeyError, TypeError):
            pass  # not there yet (or being replaced)
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"rank {ranks.rank} waited {timeout:.0f} s for rank 0 to choose the run folder ({file} names it): "
                f"is rank 0 running, and do all processes see the same out_dir? ({WAIT_ENV} sets the wait)"
            )
        time.sleep(_POLL_S)


def check_same_data(run_dir: Path, checksum: str, *, why: str, pictures: dict[str, str] | None = None) -> None:
    """Refuse to continue a run folder that learnt from other labelled data than the data set
    holds now (``checksum``, ``workflows.records.manifest_checksum``; the folder's is that of its
    ``manifest.csv``): a grade, patient or photo changed since; or, given ``pictures`` (image id ->
    picture fingerprint, from the cache) and the folder's ``pictures.csv``, a photo replaced by
    another picture under its name. ``why``: why that matters to the caller and what to do, the
    end of the one-line message. No ``manifest.csv``: nothing to compare."""
    import pandas as pd

    from drgrader.workflows.records import manifest_checksum

    manifest = Path(run_dir) / "manifest.csv"
    if not manifest.is_file():
        return
    theirs = manifest_checksum(pd.read_csv(manifest, dtype={"image_id": str, "patient_id": str}))
    if theirs != checksum:
        raise ConfigError(f"{manifest.parent} learnt from other labelled data (checksum {theirs}; the data set's is now "
                          f"{checksum}: a grade, patient or photo changed since), {why}")
    replaced = replaced_pictures(run_dir, pictures or {})
    if replaced:
        raise ConfigError(f"{manifest.parent} learnt from other pictures: {len(replaced)} photo(s) replaced since under "
                          f"the same name ({', '.join(replaced[:5])}), {why}")


def replaced_pictures(run_dir: Path, pictures: dict[str, str]) -> list[str]:
    """Image ids whose picture (``pictures``: id -> fingerprint now) is not the one the run read
    (its ``pictures.csv``); none when the run has no such record."""
    import pandas as pd

    from drgrader.data.prepare import PICTURES_FILE

    record = Path(run_dir) / PICTURES_FILE
    if not pictures or not record.is_file():
        return []
    then = pd.read_csv(record, dtype=str, keep_default_na=False)
    return [i for i, p in zip(then["image_id"], then["picture"]) if i in pictures and pictures[i] != p]


def first_ids(ids: list[str], shown: int = 5) -> str:
    """The first ``shown`` image ids, and how many more: a message's list of photos."""
    return ", ".join(ids[:shown]) + (f", ... {len(ids) - shown} more" if len(ids) > shown else "")


def labels_changed(run_dir: Path, table) -> list[str]:
    """What changed in the labelled data since the run read it (its ``manifest.csv``): one phrase
    each for the first rows whose grade or patient changed, and the photos added or removed."""
    import pandas as pd

    manifest = Path(run_dir) / "manifest.csv"
    if not manifest.is_file():
        return []
    then = pd.read_csv(manifest, dtype={"image_id": str, "patient_id": str}).set_index("image_id")
    now = table.set_index("image_id")
    changes = []
    both = then.index.intersection(now.index)
    if "path" in then and "path" in now:  # probe 36 BZ7: a relative data.root read from another working folder
        moved = [i for i in both if os.path.abspath(str(then.at[i, "path"])) != os.path.abspath(str(now.at[i, "path"]))]
        if moved:
            changes.append(f"its photos are read from {os.path.dirname(os.path.abspath(str(now.at[moved[0], 'path'])))}, the run "
                           f"read them from {os.path.dirname(os.path.abspath(str(then.at[moved[0], 'path'])))} (a relative "
                           "data.root is read from the working folder)")
    for column in ("grade", "patient_id"):
        differ = [i for i in both if str(then.at[i, column]) != str(now.at[i, column])]
        changes += [f"{column} of {i} {then.at[i, column]} -> {now.at[i, column]}" for i in differ[:5]]
        if len(differ) > 5:
            changes.append(f"... {len(differ) - 5} more {column} changes")
    added, removed = now.index.difference(then.index), then.index.difference(now.index)
    if len(added):
        changes.append(f"{len(added)} photo(s) added ({', '.join(added[:3])})")
    if len(removed):
        changes.append(f"{len(removed)} photo(s) removed ({', '.join(removed[:3])})")
    return changes


def check_resumed_config(run_dir: Path, cfg: ExperimentConfig) -> None:
    """Refuse to resume ``run_dir`` with a config that changes what its checkpoint learnt (image
    size, epochs and schedule, data, model ...): its epochs so far and the rest would be two
    runs under one name, and its config.yaml would say neither. Changes of :data:`RESUMABLE_KEYS`
    are taken, logged and written to config.yaml, so the folder says how it ran."""
    saved_file = Path(run_dir) / "config.yaml"
    if not saved_file.is_file():
        return
    old, new = flat_settings(config_to_dict(load_config(saved_file))), flat_settings(config_to_dict(cfg))
    changed = {key: (old.get(key), new.get(key)) for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key)}
    refused = [f"{key} {a!r} -> {b!r}" for key, (a, b) in changed.items() if key not in RESUMABLE_KEYS]
    epochs = changed.get("train.epochs")
    if epochs and isinstance(epochs[0], int) and isinstance(epochs[1], int) and epochs[1] < epochs[0]:
        # Fewer epochs than planned: a finished run would train nothing while its config said fewer.
        refused.append(f"train.epochs {epochs[0]} -> {epochs[1]} (a resumed run's epochs may grow, not shrink; "
                       "train.max_minutes stops it earlier)")
    if refused:
        raise ConfigError(f"--resume continues {run_dir} as it was configured; {', '.join(refused[:4])} would change what its "
                          f"checkpoint learnt: train a new run (on resume only {', '.join(sorted(RESUMABLE_KEYS))} may change)")
    if changed and process_ranks().rank == 0:
        save_config(cfg, saved_file)
        log.info("resuming %s with %s (recorded in its config.yaml)", run_dir,
                 ", ".join(f"{key}={b!r} (was {a!r})" for key, (a, b) in changed.items()))


def forget_rendezvous(run_dir: Path, cfg: ExperimentConfig, out: Path | None, ranks: Ranks | None = None) -> None:
    """Rank 0, once every rank has its folder: remove the rendezvous file (and its folder when empty)."""
    ranks = ranks or process_ranks()
    if ranks.rank != 0 or ranks.world_size < 2:
        return
    file = rendezvous_file(base_dir(cfg, out), ranks)
    try:
        if json.loads(file.read_text(encoding="utf-8")).get("run_dir") == str(Path(run_dir).resolve()):
            file.unlink()
        file.parent.rmdir()  # only when empty: another launch may be using it
    except (OSError, ValueError):
        pass

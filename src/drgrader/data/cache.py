"""The preprocessed-image cache: every photo decoded, quality-checked and preprocessed once.

Layout: ``<cache root>/<key>/`` where the key hashes the preprocessing settings, the image
size and :data:`CACHE_VERSION`, so changed settings get a new folder and unchanged settings
reuse the old one. In the folder: ``settings.json``, and per image ``<image_id>-<source hash>.npy``
(the model input, RGB uint8) and ``<image_id>-<source hash>.json`` (its index row). Both are written atomically
(temporary name + rename), the image first: a run killed at any moment leaves only complete
files, and a row exists only for a finished image. Rerunning resumes where the last run
stopped, and the final index equals that of an uninterrupted run.

Building is parallel over processes, streams the work (bounded memory), and can be split
into shards (``shard=(i, n)``) for Slurm job arrays sharing one cache folder. A whole build
(no shard) holds a lock on the folder (``<key>.lock`` beside it): processes building one cache
at once, the ranks of a torchrun or Slurm training on a node among them, build it once; the
first to come builds, the others wait and then find every image done.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import multiprocessing
import os
import re
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from drgrader.config import DataConfig, PreprocessConfig
from drgrader.data.images import ImageReadError
from drgrader.data.manifest import DataError
from drgrader.data.photo import preprocess_file
from drgrader.io import atomic_write_bytes, atomic_write_json
from drgrader.progress import progress as progress_bar
from drgrader.runtime import cpu_count

log = logging.getLogger("drgrader")

CACHE_VERSION = 10  # bump when preprocessing code or file naming changes: old caches are not reused (2: the colour check; 3: red-free, tinted, too small; 4: reversed colours; 5: file names by source path; 6: enlarged thumbnails, the effective-resolution check; 7: each photo's picture fingerprint; 8: the compression check; 9: colour-reduced copies; 10: several fundi in one picture)
DEFAULT_CACHE_NAME = ".drgrader-cache"
SETTINGS_NAME = "settings.json"
# Uncompressed .npy rather than PNG: training reads every image every epoch, and at 512 px a
# .npy loads in 0.2 ms against 5-7 ms for a PNG (which also takes ~18 ms to encode), for
# 3x the disk space (768 KB against ~270 KB; see benchmarks/bench_preprocess.py).
IMAGE_SUFFIX = ".npy"
STALE_TEMP_SECONDS = 3600  # temporary files older than this are leftovers of killed runs

INDEX_COLUMNS = [
    "image_id",
    "cache_path",
    "ok",
    "error",
    "gradable",
    "quality_score",
    "quality_reason",
    "orig_height",
    "orig_width",
    "picture",
]
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


# ----------------------------------------------------------------------------- keys
def cache_settings(data_cfg: DataConfig) -> dict:
    """Everything the cached pixels depend on."""
    return {
        "version": CACHE_VERSION,
        "image_size": data_cfg.image_size,
        "preprocess": data_cfg.preprocess.model_dump(mode="json"),
    }


def cache_key(data_cfg: DataConfig) -> str:
    """Short hash of the preprocessing settings, image size and cache version."""
    text = json.dumps(cache_settings(data_cfg), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def cache_dir_for(data_cfg: DataConfig, root_fallback: Path | None = None) -> Path:
    """``<data.cache_dir>/<key>``, or ``<root_fallback>/.drgrader-cache/<key>`` when no
    cache_dir is set (``root_fallback`` defaults to the current working directory)."""
    base = data_cfg.cache_dir
    if base is None:
        base = Path(root_fallback if root_fallback is not None else Path.cwd()) / DEFAULT_CACHE_NAME
    return Path(base).expanduser() / cache_key(data_cfg)


def cache_file_stem(image_id: object, source: str | Path) -> str:
    """A file name for an image: its id (itself when a plain, safe name; otherwise cleaned up plus
    a short hash, so different ids never share a file) and a short hash of its source file's
    absolute path, so two data sets with the same ids (``1_left`` ...) in one cache folder never
    share a file either: a training reading its photos while the other set is cached reads its own."""
    text = str(image_id)
    where = hashlib.sha1(os.fsencode(os.path.abspath(source))).hexdigest()[:8]
    if _SAFE_NAME.fullmatch(text) and len(text) <= 150:
        return f"{text}-{where}"
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:100] or "image"
    return f"{cleaned}-{hashlib.sha1(text.encode('utf-8', 'surrogateescape')).hexdigest()[:10]}-{where}"


def shard_of(image_id: object, n: int) -> int:
    """Stable shard number of an image id in 0..n-1 (same on every machine and run); an id from
    a file name that is not UTF-8 is hashed by its own bytes."""
    digest = hashlib.sha1(str(image_id).encode("utf-8", "surrogateescape")).hexdigest()
    return int(digest[:12], 16) % n


def load_cached(path: str | Path) -> np.ndarray:
    """A cached image (``.npy``, or an image file such as ``.png``) as an RGB uint8 array."""
    path = Path(path)
    if path.suffix == ".npy":
        try:
            image = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ImageReadError(path, f"cached image missing or unreadable ({exc}); rebuild the cache") from None
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ImageReadError(path, f"cached image is {image.dtype} {image.shape}, not RGB uint8")
        return image
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageReadError(path, "cached image missing or unreadable; rebuild the cache")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _npy_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(image), allow_pickle=False)
    return buffer.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    """Temporary file + rename (drgrader.io's one path): a killed process never leaves a
    truncated file under ``path``.

    Without fsync (~13 ms per file on the development VM; with two files per image, a third of
    the per-image time): a killed process loses no written data anyway, and after an OS crash a
    short file fails the size check in _read_done_row (or the JSON parse) and the image is
    simply redone.
    """
    atomic_write_bytes(path, data, fsync=False)


def source_fingerprint(path: Path) -> dict:
    """Identifies the source photo, so a cache folder shared by two data sets with the same
    image ids (``1_left`` ...) never serves one set's image for the other, and a photo replaced
    by another of the same size (an uncompressed TIFF, BMP or DICOM of one camera) is redone
    (its modification time, as make and rsync judge a file; a copy that does not keep times is
    redone too, which costs time, never a wrong photo)."""
    try:
        stat = path.stat()
        size, mtime = stat.st_size, stat.st_mtime_ns
    except OSError:
        size, mtime = -1, -1
    return {"source_name": path.name, "source_size": size, "source_mtime_ns": mtime}


def _failed_row(image_id: str, error: str) -> dict:
    return {
        "image_id": image_id,
        "file": "",
        "ok": False,
        "error": error,
        "gradable": False,
        "quality_score": 0.0,
        "quality_reason": "unreadable",
        "orig_height": 0,
        "orig_width": 0,
        "picture": "",
    }


def _cache_one(task: tuple[str, str, str, dict, int]) -> dict:
    """Worker: preprocess one image into the cache folder and write its index row.

    Never raises for a bad image: the row then has ok=False and the error.
    """
    image_id, source, out_dir, preprocess_settings, size = task
    out = Path(out_dir)
    stem = cache_file_stem(image_id, source)
    source_path = Path(source)
    try:
        result = preprocess_file(source_path, PreprocessConfig.model_validate(preprocess_settings), size, fingerprint=True)
        data = _npy_bytes(result.image)
        _write_atomic(out / f"{stem}{IMAGE_SUFFIX}", data)
        row = {
            "image_id": image_id,
            "file": f"{stem}{IMAGE_SUFFIX}",
            "file_size": len(data),
            "ok": True,
            "error": "",
            "gradable": bool(result.quality.gradable),
            "quality_score": round(float(result.quality.score), 6),
            "quality_reason": result.quality.reason,
            "orig_height": int(result.orig_height),
            "orig_width": int(result.orig_width),
            "picture": result.picture,  # a split keeps the patients of one picture together (prepare.py)
        }
    except ImageReadError as exc:
        row = _failed_row(image_id, exc.reason)
    except OSError:
        raise  # disk full, permissions: stop the build instead of caching "unreadable" verdicts
    except Exception as exc:  # one odd photo must not stop a run over thousands
        row = _failed_row(image_id, f"{type(exc).__name__}: {exc}")
    row.update(source_fingerprint(source_path))
    _write_atomic(out / f"{stem}.json", (json.dumps(row, indent=1) + "\n").encode("utf-8"))
    return row


def _read_done_row(out: Path, image_id: str, source: Path) -> dict | None:
    """The stored row of an image when it is complete and belongs to this source, else None."""
    stem = cache_file_stem(image_id, source)
    try:
        row = json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(row, dict) or row.get("image_id") != image_id:
        return None
    fingerprint = source_fingerprint(source)
    if any(row.get(k) != v for k, v in fingerprint.items()):
        return None
    if row.get("ok"):
        try:
            if (out / str(row.get("file", ""))).stat().st_size != row.get("file_size"):
                return None
        except OSError:
            return None
    return row


def _remove_stale_temps(out: Path) -> None:
    """Delete temporary files left by killed runs (fresh ones may belong to a running shard)."""
    now = time.time()
    for entry in os.scandir(out):
        if entry.name.startswith(".") and entry.name.endswith(".tmp"):
            try:
                if now - entry.stat().st_mtime > STALE_TEMP_SECONDS:
                    os.unlink(entry.path)
            except OSError:
                pass


def _single_threaded_opencv() -> None:
    cv2.setNumThreads(1)  # one image per process: OpenCV's own threads would oversubscribe


def _run_pool(todo: list, workers: int, chunksize: int):
    """Yield _cache_one rows from a process pool, in completion order."""
    if sys.platform.startswith("linux"):
        # fork, as PyTorch's DataLoader: instant start-up, and no trap for scripts without an
        # ``if __name__ == "__main__"`` guard (spawn re-runs the script in every worker).
        # OpenCV goes single-threaded BEFORE forking: calling setNumThreads in a forked child
        # of a process that used OpenCV's thread pool deadlocks.
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                yield from pool.imap_unordered(_cache_one, todo, chunksize=chunksize)
        finally:
            cv2.setNumThreads(threads)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers, initializer=_single_threaded_opencv) as pool:
            yield from pool.imap_unordered(_cache_one, todo, chunksize=chunksize)


# ---------------------------------------------------------------------------- build
@contextlib.contextmanager
def _build_lock(out: Path):
    """Hold the cache folder's build lock (POSIX; elsewhere no lock: builders then duplicate work,
    still safely, as every file is written atomically)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(out.with_name(out.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race the next waiter)


def _check_manifest(manifest: pd.DataFrame) -> None:
    missing = [c for c in ("image_id", "path") if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest lacks column(s) {missing}; it has {list(manifest.columns)}")
    ids = manifest["image_id"].astype(str)
    duplicated = ids[ids.duplicated()].unique()
    if len(duplicated):
        rows = [int(i) for i in np.flatnonzero(ids.isin(duplicated[:3]).to_numpy())[:6]]
        raise ValueError(
            f"manifest has {len(duplicated)} duplicated image_id(s), e.g. {list(duplicated[:3])} "
            f"(rows {rows}); each image needs a unique id for its cache file"
        )


def build_cache(
    manifest: pd.DataFrame,
    data_cfg: DataConfig,
    *,
    workers: int | None = None,
    shard: tuple[int, int] | None = None,
    progress: bool = True,
    root_fallback: Path | None = None,
) -> pd.DataFrame:
    """Preprocess every manifest image (columns ``image_id``, ``path``) not yet cached.

    Returns the index, one row per image in manifest order (of this shard only when
    ``shard=(i, n)`` is given), with columns ``image_id, cache_path, ok, error, gradable,
    quality_score, quality_reason, orig_height, orig_width``. Unreadable images get
    ``ok=False`` and their error; they never stop the build. ``workers``: processes
    (default ``data_cfg.workers``, 0 = all cores; 1 = in this process).
    """
    _check_manifest(manifest)
    if shard is not None:
        index, count = shard
        if not (isinstance(index, int) and isinstance(count, int) and 0 <= index < count):
            raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard!r}")
        keep = manifest["image_id"].map(lambda v: shard_of(v, count) == index)
        manifest = manifest[keep.to_numpy()]
    out = cache_dir_for(data_cfg, root_fallback)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the cache folder {out} (data.cache_dir): {exc.strerror}") from None
    # A whole build under the folder's lock: concurrent builders (the ranks of one training) build once.
    with _build_lock(out) if shard is None else contextlib.nullcontext():
        settings = cache_settings(data_cfg)
        settings_path = out / SETTINGS_NAME
        if not settings_path.is_file():
            atomic_write_json(settings_path, settings)
        _remove_stale_temps(out)

        ids = manifest["image_id"].astype(str).tolist()
        paths = ["" if pd.isna(p) else str(p) for p in manifest["path"]]
        rows: dict[str, dict] = {}
        todo: list[tuple[str, str, str, dict, int]] = []
        for image_id, source in zip(ids, paths):
            row = _read_done_row(out, image_id, Path(source)) if source else None
            if row is not None:
                rows[image_id] = row
            elif not source:
                rows[image_id] = _failed_row(image_id, "no image path in the manifest")
            else:
                todo.append((image_id, source, str(out), settings["preprocess"], data_cfg.image_size))
        if todo:
            log.info("caching %d of %d images in %s", len(todo), len(ids), out)

        if workers is None:
            workers = data_cfg.workers
        workers = workers or cpu_count()
        workers = max(1, min(workers, len(todo)))
        with progress_bar(total=len(todo), desc="preprocess", unit="img", disable=not progress or not todo) as bar:
            if workers == 1:
                for task in todo:
                    row = _cache_one(task)
                    rows[row["image_id"]] = row
                    bar.update()
            else:
                chunksize = max(1, min(16, len(todo) // (workers * 8)))
                for row in _run_pool(todo, workers, chunksize):
                    rows[row["image_id"]] = row
                    bar.update()

    table = pd.DataFrame([rows[i] for i in ids])
    if table.empty:
        return pd.DataFrame(columns=INDEX_COLUMNS)
    table["cache_path"] = [str(out / f) if f else "" for f in table["file"]]
    table["image_id"] = manifest["image_id"].to_numpy()  # the caller's ids and dtype, for merges
    table = table[INDEX_COLUMNS].astype(
        {"ok": bool, "gradable": bool, "quality_score": float, "orig_height": int, "orig_width": int}
    )
    return table.reset_index(drop=True)

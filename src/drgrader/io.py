"""Small file helpers: every file drgrader writes goes through a temporary name and a rename,
so an interrupted write never leaves a truncated file that looks complete.

One path does it, :func:`atomic_path`: JSON, text, cache images, bundle weights, ONNX models and
checkpoints all get the permissions a plain ``open()`` would give them (0666 minus the umask),
so a bundle copied to a shared model folder is readable by the service that serves it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _create_beside(path: Path) -> tuple[Path, int]:
    """A new, empty temporary file next to ``path`` and its mode. Created with mode 0666 so the
    kernel applies the umask (and a folder's default ACL) exactly as for a plain open();
    tempfile.mkstemp would create it 0600."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        try:
            return tmp, os.fstat(fd).st_mode & 0o777
        finally:
            os.close(fd)


@contextmanager
def atomic_path(path: str | Path, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary file name beside ``path`` for a writer that wants a file name
    (safetensors, torch.save, the ONNX exporter); when the block succeeds the file is flushed to
    disk (``fsync``), given a plain open()'s mode and renamed onto ``path``; when it fails it is
    removed and ``path`` keeps its previous content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, mode = _create_beside(path)
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if os.stat(tmp).st_mode & 0o777 != mode:  # a writer that replaced the file by its own
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a new, empty hidden folder beside ``path`` to build a folder in (a bundle, an
    export); when the block succeeds it replaces ``path`` (an empty folder, or whatever the caller
    was allowed to replace) in one rename; when it fails (an error, Ctrl-C) it is removed and
    ``path`` is untouched, so an interrupted command leaves nothing that looks complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = _folder_beside(path)
    try:
        yield staging
        if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
            path.rmdir()
        if os.path.lexists(path):  # replaced: moved aside first, so a failed rename keeps it
            old = _folder_beside(path)
            os.replace(path, old / path.name)
            try:
                os.replace(staging, path)
            except BaseException:
                os.replace(old / path.name, path)
                raise
            finally:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _folder_beside(path: Path) -> Path:
    """A new, empty hidden folder next to ``path``, made with mode 0777 so the kernel applies the
    umask as for a plain mkdir (tempfile.mkdtemp would make it 0700: unreadable to a service)."""
    while True:
        name = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.mkdir(name, 0o777)
            return name
        except FileExistsError:
            continue


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = True) -> None:
    with atomic_path(path, fsync=fsync) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _json_default(obj: Any) -> Any:
    # numpy scalars/arrays and paths appear in metrics; make them plain JSON.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")

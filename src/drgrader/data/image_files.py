"""A photo file: the error for one that cannot be used, the check that it is a regular file, and
the files that are byte-identical copies of each other.

Shared by :mod:`drgrader.data.images` and :mod:`drgrader.data.dicom` (which images uses), so the
imports go one way: images -> dicom -> image_files.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

__all__ = ["ImageReadError", "check_regular_file", "identical_files"]


class ImageReadError(ValueError):
    """An image file that cannot be used; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")

    def __reduce__(self):  # picklable, so it can cross from a worker process
        return type(self), (self.path, self.reason)


def _not_a_file_reason(path: Path) -> str:
    """Why ``path`` is not a regular file we may open (opening a FIFO or device could block)."""
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except RuntimeError:  # Python < 3.13 reports a loop this way
            return "symbolic link loop"
        except OSError as exc:
            return "symbolic link loop" if exc.errno == errno.ELOOP else "broken symbolic link"
    if not os.path.lexists(path):
        return "file not found"
    if path.is_dir():
        return "a folder, not an image file"
    return "not a regular file (FIFO, socket or device)"


def check_regular_file(path: Path) -> None:
    """Refuse what is not a non-empty regular file (opening a FIFO or device could block)."""
    if not path.is_file():
        raise ImageReadError(path, _not_a_file_reason(path))
    if path.stat().st_size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")


def identical_files(paths: Sequence[str | Path]) -> list[list[int]]:
    """Groups (positions in ``paths``, two or more each) of regular files with identical bytes.
    Sizes first, so only files that share one are read (a data set of camera originals is not
    read whole); what cannot be read is in no group."""
    by_size: dict[int, list[int]] = defaultdict(list)
    for i, path in enumerate(paths):
        try:
            info = os.stat(path)
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(info.st_mode):  # a FIFO would block the read
            by_size[info.st_size].append(i)
    groups: dict[str, list[int]] = defaultdict(list)
    for positions in by_size.values():
        if len(positions) < 2:
            continue
        for i in positions:
            try:
                groups[hashlib.sha256(Path(paths[i]).read_bytes()).hexdigest()].append(i)
            except OSError:
                continue
    return sorted(group for group in groups.values() if len(group) > 1)

"""A photo file: the error for one that cannot be used, and the check that it is a regular file.

Shared by :mod:`drgrader.data.images` and :mod:`drgrader.data.dicom` (which images uses), so the
imports go one way: images -> dicom -> image_files.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = ["ImageReadError", "check_regular_file"]


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

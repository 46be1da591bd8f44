"""Errors a user can fix by changing their input: the CLI prints these as one line."""

from __future__ import annotations

import errno
import re
import sys

# (module, class) of each user-facing error. Looked up only in modules already imported: an
# exception of that class can only come from a loaded module, and importing them all up front
# would make every command pay for importing PyTorch.
_USER_ERROR_CLASSES = (
    ("drgrader.config_yaml", "ConfigError"),
    ("drgrader.data.label_files", "DataError"),
    ("drgrader.data.split", "SplitError"),
    ("drgrader.data.image_files", "ImageReadError"),
    ("drgrader.extras", "MissingExtraError"),
    ("drgrader.inference.bundle_spec", "BundleError"),
    ("drgrader.models.pretrained", "PretrainedError"),
    ("drgrader.outputs", "OutputError"),
    ("drgrader.reporting.run_data", "RunError"),
)


# OSErrors that say a path given is not what it should be (missing, a folder where a file
# belongs or the other way round, a file in the way of a folder, a symbolic link loop, a name
# too long): the user fixes those (exit 2); the others (disk full, permission denied) are the
# system refusing (exit 1).
_INPUT_ERRNOS = {errno.ENOENT, errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.ELOOP, errno.ENAMETOOLONG}

MAX_MESSAGE = 600  # characters of an error line
_LONG_RUN = re.compile(r"\S{201,}")  # an echoed input (a path, a cell, a value) past 200 characters


def is_input_error(exc: OSError) -> bool:
    return exc.errno in _INPUT_ERRNOS


def one_line(message: object) -> str:
    """An error message as the command line prints it: one line (a message of several lines is
    joined with "; "), an echoed input longer than 200 characters shortened in the middle, and
    at most ``MAX_MESSAGE`` characters in all, whatever layer wrote it."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    text = "; ".join(lines).replace(":;", ":")
    text = _LONG_RUN.sub(lambda m: f"{m[0][:120]}...[{len(m[0]) - 160:,} more characters]...{m[0][-40:]}", text)
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 30] + f"... ({len(text):,} characters)"


def user_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [FileNotFoundError]
    for module, name in _USER_ERROR_CLASSES:
        loaded = sys.modules.get(module)
        if loaded is not None and hasattr(loaded, name):
            errors.append(getattr(loaded, name))
    return tuple(errors)

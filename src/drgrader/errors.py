"""Errors a user can fix by changing their input: the CLI prints these as one line."""

from __future__ import annotations

import sys

# (module, class) of each user-facing error. Looked up only in modules already imported: an
# exception of that class can only come from a loaded module, and importing them all up front
# would make every command pay for importing PyTorch.
_USER_ERROR_CLASSES = (
    ("drgrader.config", "ConfigError"),
    ("drgrader.data.label_files", "DataError"),
    ("drgrader.data.split", "SplitError"),
    ("drgrader.data.images", "ImageReadError"),
    ("drgrader.inference.bundle_spec", "BundleError"),
    ("drgrader.models.pretrained", "PretrainedError"),
    ("drgrader.outputs", "OutputError"),
)


def user_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [FileNotFoundError]
    for module, name in _USER_ERROR_CLASSES:
        loaded = sys.modules.get(module)
        if loaded is not None and hasattr(loaded, name):
            errors.append(getattr(loaded, name))
    return tuple(errors)

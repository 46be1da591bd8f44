"""Errors a user can fix by changing their input: the CLI prints these as one line."""

from __future__ import annotations


def _user_errors() -> tuple[type[BaseException], ...]:
    from drgrader.config import ConfigError

    errors: list[type[BaseException]] = [ConfigError, FileNotFoundError]
    for module, name in (
        ("drgrader.data.manifest", "DataError"),
        ("drgrader.data.split", "SplitError"),
        ("drgrader.data.images", "ImageReadError"),
        ("drgrader.inference.bundle", "BundleError"),
        ("drgrader.models.pretrained", "PretrainedError"),
    ):
        try:
            errors.append(getattr(__import__(module, fromlist=[name]), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


USER_ERRORS = _user_errors()

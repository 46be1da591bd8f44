"""The value types and checks of the configuration schema (:mod:`drgrader.config`), shared with
the places that take the same values outside a config file (``bundle.json``, ``predict``'s
options, :func:`drgrader.grade`): paths from YAML text, column names, plain names, test-time
views, the share of patients referred to a human grader.

Each either raises ``ValueError`` (inside a pydantic field, which names the field) or
:class:`~drgrader.config_yaml.ConfigError` naming what was given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Strict

from drgrader.config_yaml import MAX_ECHO, ConfigError


def _not_empty(value: object) -> object:
    if isinstance(value, str) and not value.strip():  # Path("") would be ".", the current folder
        raise ValueError("empty path: give a path, or leave the field out for its default")
    return value


# A path from YAML text (strict mode would take only Path objects); never empty, which would be
# the current folder; "~" is the home folder, as in the shell the user typed it for.
ConfigPath = Annotated[Path, Strict(False), BeforeValidator(_not_empty), AfterValidator(Path.expanduser)]


def distinct_views(views: list) -> list:
    """Test-time views, each given once: the one check of ``eval.tta``, ``bundle.json``'s ``tta``,
    ``predict --tta`` and ``drgrader.grade(tta=...)``."""
    if repeated := sorted({v for v in views if views.count(v) > 1}):
        raise ValueError(f"view {repeated[0]!r} given twice: each view counts once in the average")
    return views


MAX_NAME = 200  # characters of a name that becomes a file or folder name (255 is the usual limit, suffixes follow)


def plain_name(name: str) -> str:
    """A name that becomes one file or folder name (a run's ``name``, a photo's name in
    ``drgrader.grade``): never a path, which could write outside the folder meant."""
    if not name:
        raise ValueError("empty name")
    if "/" in name or "\\" in name or "\0" in name or name in (".", ".."):
        raise ValueError(f"{name[:MAX_ECHO]!r} is not one plain name (no /, \\, .. or NUL)")
    if len(name) > MAX_NAME:
        raise ValueError(f"{name[:MAX_ECHO]!r}... has {len(name)} characters, more than {MAX_NAME}")
    return name


MAX_REFER_SHARE = 0.5  # of patients sent to a human grader: eval.refer_share, --refer-share, grade(refer_share=)


def check_refer_share(share: float, what: str) -> None:
    """A share of patients for the uncertain band: 0 .. ``MAX_REFER_SHARE`` (NaN refused too)."""
    if not 0 <= share <= MAX_REFER_SHARE:
        raise ConfigError(f"{what} must be between 0 and {MAX_REFER_SHARE:g}, got {share}")


def _not_empty_column(value: object) -> object:
    if isinstance(value, str) and not value.strip():  # '' would silently mean "no such column"
        raise ValueError("empty column name: give the column's header, or leave the field out for its default")
    return value


ColumnName = Annotated[str, BeforeValidator(_not_empty_column)]


TtaView = Literal["orig", "hflip", "vflip", "hvflip", "bright", "rot90", "rot270", "transpose", "antitranspose", "zoom"]
TtaViews = Annotated[list[TtaView], AfterValidator(distinct_views)]
DIHEDRAL_VIEWS = ["orig", "hflip", "vflip", "hvflip", "rot90", "rot270", "transpose", "antitranspose"]

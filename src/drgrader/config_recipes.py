"""The experiment recipes drgrader ships, and which YAML file a config name means.

The recipes live in the package (``drgrader/configs/*.yaml``) and are read through
``importlib.resources``, so ``drgrader train cpu_grade`` works from a wheel as from a clone.
:func:`drgrader.config.load_config` reads the file :func:`resolve_config` finds.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from drgrader.config_yaml import MAX_ECHO, ConfigError

if TYPE_CHECKING:  # Python >= 3.11 only; a name for type checkers
    from importlib.resources.abc import Traversable


def shipped_configs() -> dict[str, Traversable]:
    """The recipes shipped in the package, by name (the file name without ``.yaml``). Read as
    package resources, never relative to a source tree, so an installed drgrader finds them."""
    folder = resources.files("drgrader") / "configs"
    files = (f for f in folder.iterdir() if f.name.endswith(".yaml") and not f.name.startswith("."))
    return {f.name.removesuffix(".yaml"): f for f in sorted(files, key=lambda f: f.name)}


def describe_config(text: str) -> str:
    """The first sentence of a YAML's leading comment (its description), or "" without one."""
    words: list[str] = []
    for line in text.splitlines():
        if not line.startswith("#") or (words and not line.strip("# \t")):
            break
        words += line.lstrip("#").split()
    first, stop, _ = " ".join(words).partition(". ")
    return first + ("." if stop else "")


def resolve_config(spec: str | Path) -> Path | Traversable:
    """The YAML file meant by ``spec``: an existing file, else a shipped name (``cpu_grade``).

    Anything else is a ConfigError listing the shipped names: a typo must never train on the
    generic defaults. A file of the same name in the working folder wins over a shipped one.
    """
    path = Path(spec)
    if path.is_file():
        return path
    shipped = shipped_configs()
    if str(spec) in shipped:
        return shipped[str(spec)]
    names = ", ".join(shipped)
    if path.is_dir():
        raise ConfigError(f"config {path} is a folder, not a YAML file; shipped configs: {names}")
    if len(path.parts) > 1 or path.suffix:
        raise ConfigError(f"config file not found: {path}; shipped configs: {names}")
    raise ConfigError(f"config {str(spec)[:MAX_ECHO]!r} is neither a shipped config nor a file; shipped configs: {names}")

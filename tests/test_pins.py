"""The pin files say what pyproject.toml says: constraints-min.txt pins every direct dependency
at its floor, constraints.txt at a tested version at or above it. The core floors are installed
and run by tests/test_core_install.py (test_core_floors_grade_without_pytorch, slow); installing
the extras' floors (a second, older torch) is a manual step (README, "Install")."""

import re
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
REPO = Path(__file__).resolve().parents[1]


def runtime_groups() -> dict[str, list[str]]:
    """The core dependencies ("") and each extra's (dev's test tools aside), without the
    extras' references to each other ("drgrader[torch]")."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    groups = {"": project["dependencies"], **project["optional-dependencies"]}
    return {name: [d for d in deps if not d.startswith("drgrader[")] for name, deps in groups.items() if name != "dev"}


def floors() -> dict[str, str]:
    deps = [d for group in runtime_groups().values() for d in group]
    pairs = [re.fullmatch(r"([A-Za-z0-9_.\-]+)>=([0-9][0-9A-Za-z.]*)", d) for d in deps]
    assert all(pairs), [d for d, m in zip(deps, pairs) if not m]  # every dependency has a plain floor
    assert len({m[1] for m in pairs}) == len(pairs)  # each in one group only
    return {m[1]: m[2] for m in pairs}


def test_extras_py_checks_what_the_extras_install():
    from drgrader.extras import EXTRAS

    groups = runtime_groups()
    for extra, modules in EXTRAS.items():
        named = {re.split(">=", d)[0] for d in groups[extra] + (groups["torch"] if extra != "torch" else [])}
        assert set(modules.values()) <= named, extra


def pins(name: str) -> dict[str, str]:
    lines = [line for line in (REPO / name).read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("==") for line in lines)


def test_constraints_min_pins_every_dependency_at_its_floor():
    assert pins("constraints-min.txt") == floors()


def test_constraints_pins_every_dependency_at_or_above_its_floor():
    tested, floor = pins("constraints.txt"), floors()
    assert tested.keys() == floor.keys()
    assert [name for name in floor if Version(tested[name]) < Version(floor[name])] == []


def test_the_installed_versions_meet_the_floors():
    assert [name for name, low in floors().items() if Version(version(name)) < Version(low)] == []

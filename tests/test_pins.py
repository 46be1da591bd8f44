"""The pin files say what pyproject.toml says: constraints-min.txt pins every direct dependency
at its floor, constraints.txt at a tested version at or above it. Installing the floors is a
manual / CI-job step (README, "Install"), too slow for the suite."""

import re
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
REPO = Path(__file__).resolve().parents[1]


def floors() -> dict[str, str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pairs = [re.fullmatch(r"([A-Za-z0-9_.\-]+)>=([0-9][0-9A-Za-z.]*)", d) for d in deps]
    assert all(pairs), [d for d, m in zip(deps, pairs) if not m]  # every dependency has a plain floor
    return {m[1]: m[2] for m in pairs}


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

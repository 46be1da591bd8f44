"""Shipped configs are package data, found by name or path (`drgrader train cpu_grade`), from an
installed wheel as from the source tree; a config that does not exist is exit 2, never the
generic defaults; `drgrader config show` prints the resolved YAML, `config list` the names."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from drgrader.cli import main
from drgrader.config import ConfigError, load_config
from drgrader.config_recipes import resolve_config, shipped_configs

SRC = Path(__file__).resolve().parents[1] / "src"
SHIPPED = ["cpu_grade", "cpu_grade_cv", "demo", "gpu_grade", "seed000_resnet_grades", "seed001_mobilenetv2_binary"]


def test_every_shipped_config_is_found_by_name_and_by_path(tmp_path):
    assert list(shipped_configs()) == SHIPPED
    for name, file in shipped_configs().items():
        copy = tmp_path / f"{name}.yaml"
        copy.write_text(file.read_text(encoding="utf-8"), encoding="utf-8")
        assert load_config(name) == load_config(copy) == load_config(str(copy))


def test_a_file_in_the_working_folder_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("demo").write_text("name: mine\n")
    assert load_config("demo").name == "mine"


@pytest.mark.parametrize("spec", ["x.yaml", "cpu_grad", "configs/cpu_grade.yaml", "cpu_grade.yml"])
def test_a_missing_config_names_the_shipped_ones(spec):
    with pytest.raises(ConfigError) as err:
        resolve_config(spec)
    message = str(err.value)
    assert "\n" not in message and spec in message
    assert message.endswith("shipped configs: " + ", ".join(SHIPPED))


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--config", "x.yaml"],
        ["train", "x.yaml"],
        ["train", "cpu_grad"],
        ["cv", "x.yaml", "--folds", "2"],
        ["preprocess", "x.yaml"],
        ["data", "summary", "x.yaml"],
        ["config", "show", "x.yaml"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_every_command_taking_a_config_exits_2_on_a_missing_one(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # nothing may be written: no demo data, no runs/
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: config ") and "\n" not in err and err.endswith(", ".join(SHIPPED))
    assert list(tmp_path.iterdir()) == []


def test_a_folder_is_not_a_config(tmp_path, capsys):
    assert main(["config", "show", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_config_show_prints_every_field_validated_and_loadable(tmp_path, capsys):
    assert main(["config", "show", "cpu_grade", "--set", "train.epochs=2"]) == 0
    text = capsys.readouterr().out
    raw = yaml.safe_load(text)
    assert set(raw) == {"name", "out_dir", "data", "model", "train", "eval"}
    assert raw["train"]["epochs"] == 2 and raw["train"]["warmup_epochs"] is not None  # defaults filled
    shown = tmp_path / "shown.yaml"
    shown.write_text(text)
    assert load_config(shown) == load_config("cpu_grade", ["train.epochs=2"])

    assert main(["config", "show", "demo", "--set", "train.epochs=0"]) == 2
    assert "train.epochs" in capsys.readouterr().err


def test_config_list_gives_names_and_descriptions(capsys):
    assert main(["config", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == SHIPPED
    assert "recommended 5-grade recipe" in lines[0]


def test_configs_are_found_in_an_installed_wheel(tmp_path):
    """Build a wheel from a copy of the project, install it elsewhere: the shipped configs come
    with it (package data) and are found through importlib.resources, not the source tree."""
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(SRC.parent / name, project / name)
    shutil.copytree(SRC / "drgrader", project / "src" / "drgrader", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", project], check=True)
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", site, *(tmp_path / "dist").glob("*.whl")], check=True)
    shutil.rmtree(project)

    env = {**os.environ, "PYTHONPATH": str(site)}  # ahead of the editable install
    run = subprocess.run(
        [sys.executable, "-c", "import drgrader, runpy, sys; print(drgrader.__file__, flush=True); "
         "sys.argv = ['drgrader', 'config', 'show', 'cpu_grade']; runpy.run_module('drgrader', run_name='__main__')"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    where, _, shown = run.stdout.partition("\n")
    assert Path(where).is_relative_to(site)
    assert yaml.safe_load(shown)["name"] == "cpu_grade"

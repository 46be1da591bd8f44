"""The built-in grader: shipped in the package, found by name, used when no bundle is given."""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_config

import drgrader
from drgrader.cli import main
from drgrader.inference.builtin import DEFAULT_GRADER, builtin_graders, resolve_bundle
from drgrader.inference.bundle import load_bundle
from drgrader.inference.bundle_spec import BundleError

REPO = Path(__file__).resolve().parents[2]
RAHIM = REPO.parent / "shared" / "data" / "rahim-originals"


def _build_script():
    spec = importlib.util.spec_from_file_location("build_builtin_grader", REPO / "benchmarks" / "build_builtin_grader.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_builtin_grader", module)
    spec.loader.exec_module(module)
    return module


def test_the_package_ships_its_default_grader_in_reasonable_size():
    folder = builtin_graders()[DEFAULT_GRADER]
    manifest = load_bundle(folder, "onnx").manifest
    megabytes = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
    assert megabytes <= 30, f"the built-in grader adds {megabytes:.1f} MB to the wheel"
    assert manifest["weights_dtype"] == "float16" and manifest["builtin"]["name"] == DEFAULT_GRADER
    card = (folder / "MODEL_CARD.md").read_text()
    # The card tells where it came from and what it may be used for, and no path of the builder's machine.
    assert "EyePACS" in card and "research use only" in card and "not a medical device" in card
    for text in (card, (folder / "bundle.json").read_text()):
        assert not re.search(r"(/work/|/home/|/tmp/|site-packages|\.\./)", text)


def test_a_path_or_a_name_and_an_unknown_or_empty_name_is_refused(tiny_bundle):
    assert resolve_bundle(tiny_bundle) == tiny_bundle
    assert resolve_bundle(tiny_bundle / "bundle.json") == tiny_bundle
    assert resolve_bundle(None) == resolve_bundle(DEFAULT_GRADER) == builtin_graders()[DEFAULT_GRADER]
    with pytest.raises(BundleError, match=rf"no-such-grader: no such bundle folder, and not a built-in grader \(built-in: .*{DEFAULT_GRADER}"):
        resolve_bundle("no-such-grader")
    # An empty name is no grader (before: drgrader.load_grader('') loaded the current folder; probe 29).
    for empty in ("", " "):
        with pytest.raises(BundleError, match="an empty grader name"):
            resolve_bundle(empty)
        with pytest.raises(ValueError, match="an empty grader name"):
            drgrader.load_grader(empty)


def test_a_folder_here_named_like_a_built_in_grader_is_refused_until_one_is_chosen(tiny_bundle, synth_dir, tmp_path,
                                                                                    monkeypatch, capsys, caplog):
    # Before (probe 29): the folder answered for --bundle NAME, `models NAME` and load_grader(NAME) without a word.
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_bundle, tmp_path / DEFAULT_GRADER)
    here, builtin = (tmp_path / DEFAULT_GRADER).resolve(), builtin_graders()[DEFAULT_GRADER]
    said = f"{DEFAULT_GRADER} is both a built-in grader and a folder here: give {here} for the folder, or {builtin} for the built-in"
    for name in (DEFAULT_GRADER, Path(DEFAULT_GRADER)):
        with pytest.raises(BundleError, match=re.escape(said)):
            resolve_bundle(name)
    with pytest.raises(ValueError, match=re.escape(said)):
        drgrader.load_grader(DEFAULT_GRADER)
    photo = str(sorted((synth_dir / "images").iterdir())[0])
    for argv in (["predict", photo, "--bundle", DEFAULT_GRADER, "--out", "p.csv"], ["models", DEFAULT_GRADER]):
        assert main(argv) == 2
        assert said in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()
    # Each is reached by a path: ./NAME (or its full path) the folder, the package's folder the built-in, said so.
    assert resolve_bundle(f"./{DEFAULT_GRADER}") == Path(DEFAULT_GRADER)
    assert resolve_bundle(here) == here
    with caplog.at_level("INFO", logger="drgrader"):
        assert resolve_bundle(builtin) == builtin
    assert f"grader: built-in {DEFAULT_GRADER}" in caplog.text
    assert resolve_bundle(None) == builtin  # no name given: the default built-in, as always


def test_export_and_ensemble_find_a_bundle_by_the_one_lookup(tiny_bundle, other_tiny_bundle, tmp_path, monkeypatch, capsys):
    # Before (probe 30 W2): export and ensemble took a folder here named like the built-in grader without a word,
    # and refused the built-in grader's name (`is not a drgrader bundle`), which every other command takes.
    from drgrader.inference.export import export_target

    monkeypatch.chdir(tmp_path)
    builtin = builtin_graders()[DEFAULT_GRADER]
    # by name: the built-in grader; its export goes to the current folder, never into the installed package
    assert export_target(DEFAULT_GRADER, None) == (builtin, Path(f"{DEFAULT_GRADER}-onnx"))
    assert main(["ensemble", DEFAULT_GRADER, str(other_tiny_bundle), "--out", "e"]) == 2
    assert f"a grade (0-4) from {builtin} (multitask)" in capsys.readouterr().err  # the built-in grader was opened
    shutil.copytree(tiny_bundle, tmp_path / DEFAULT_GRADER)
    said = f"{DEFAULT_GRADER} is both a built-in grader and a folder here"
    for argv in (["export", DEFAULT_GRADER, "--out", "x"], ["ensemble", DEFAULT_GRADER, str(other_tiny_bundle), "--out", "e"]):
        assert main(argv) == 2
        assert said in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "e").exists()


def test_predict_without_a_bundle_uses_the_built_in_grader_and_says_so(synth_dir, tmp_path, caplog):
    photos = sorted((synth_dir / "images").iterdir())[:6]
    with caplog.at_level("INFO", logger="drgrader"):
        assert main(["predict", *map(str, photos), "--out", str(tmp_path / "p.csv")]) == 0
    assert f"grader: built-in {DEFAULT_GRADER}" in caplog.text
    rows = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert len(rows) == 6 and (rows["error"] == "").all()
    # --bundle NAME gives the same table as no bundle; the older form BUNDLE PHOTOS still works.
    assert main(["predict", *map(str, photos), "--bundle", DEFAULT_GRADER, "--out", str(tmp_path / "q.csv")]) == 0
    pd.testing.assert_frame_equal(rows, pd.read_csv(tmp_path / "q.csv", keep_default_na=False))


def test_older_form_bundle_then_photos_and_a_bundle_alone_is_refused(tiny_bundle, synth_dir, tmp_path, capsys):
    photo = str(sorted((synth_dir / "images").iterdir())[0])
    assert main(["predict", str(tiny_bundle), photo, "--out", str(tmp_path / "old.csv")]) == 0
    assert main(["predict", str(tiny_bundle)]) == 2
    assert "is a bundle: give the photos to grade after it" in capsys.readouterr().err


def test_models_lists_the_grader_and_prints_its_card(capsys):
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert listing.startswith(f"{DEFAULT_GRADER} (default)") and " MB " in listing
    assert main(["models", DEFAULT_GRADER]) == 0
    assert capsys.readouterr().out.startswith("# Model card")


def test_python_api_loads_the_built_in_grader_by_default(synth_dir):
    grader = drgrader.load_grader()
    assert grader.path == builtin_graders()[DEFAULT_GRADER]
    photos, _ = drgrader.grade(None, [sorted((synth_dir / "images").iterdir())[0]])
    assert photos["grade"].between(0, 4).all()


@pytest.mark.skipif(not RAHIM.is_dir(), reason="needs ../shared/data/rahim-originals")
def test_the_built_in_grader_has_learnt_the_grades(tmp_path):
    """On camera originals it never saw, eyes with proliferative DR score far above healthy ones."""
    labels = pd.read_csv(RAHIM / "labels.csv")
    chosen = pd.concat([labels[labels["level"] == 0].head(10), labels[labels["level"] >= 3].head(10)])
    photos, _ = drgrader.grade(None, [RAHIM / "images" / name for name in chosen["image"]])
    expected = dict(zip(photos["path"].map(lambda p: Path(p).name), photos["expected_grade"]))
    healthy = [expected[i] for i in chosen.loc[chosen["level"] == 0, "image"]]
    severe = [expected[i] for i in chosen.loc[chosen["level"] >= 3, "image"]]
    assert np.mean(severe) - np.mean(healthy) > 1.0, (healthy, severe)


@pytest.mark.slow
def test_build_script_makes_a_built_in_grader_from_a_trained_bundle(synth_dir, tmp_path, monkeypatch):
    """benchmarks/build_builtin_grader.py on a tiny trained run: ONNX grades, weights halved for
    Grad-CAM, the card says what it is, and the folder is found by name."""
    from drgrader.workflows.train import train

    run = train(tiny_config(synth_dir, **{"train.epochs": 1, "eval.bootstrap": 0}), out=tmp_path / "run", progress=False)
    build = _build_script()
    out = build.build(run / "bundle", name="tiny-builtin", out_root=tmp_path / "graders", external=None, cv=None,
                      recipe_note="none", summary="a tiny test grader", rebuild="python benchmarks/build_builtin_grader.py ...")
    assert sorted(p.name for p in out.iterdir()) in (  # with its held-out test photos' digests when the run has a test split
        ["MODEL_CARD.md", "bundle.json", "held_out_photos.sha256", "model.onnx", "model.safetensors", "training_photos.sha256"],
        ["MODEL_CARD.md", "bundle.json", "held_out_photos.sha256", "model.int8.onnx", "model.safetensors", "training_photos.sha256"])
    # Its training and validation photos' digests travel with it (evaluate tells its own training data by them).
    split = pd.read_csv(run / "split.csv")
    assert len((out / "training_photos.sha256").read_text().split()) == split["split"].isin(["train", "val"]).sum()
    assert not list((tmp_path / "graders").glob(".*"))  # no staging folder left
    bundle = load_bundle(out)
    assert bundle.runner.__name__ == "run" and not hasattr(bundle.runner, "scoring_net")  # ONNX grades
    from safetensors.numpy import load_file

    assert {v.dtype for v in load_file(str(out / "model.safetensors")).values() if v.dtype.kind == "f"} == {np.dtype("float16")}
    card = (out / "MODEL_CARD.md").read_text()
    assert card.startswith("# Model card") and "## The built-in grader `tiny-builtin`" in card
    monkeypatch.setattr("drgrader.inference.builtin.builtin_graders", lambda: {"tiny-builtin": out})
    assert resolve_bundle("tiny-builtin") == out


def test_serve_takes_the_built_in_grader_a_name_or_a_folder(tiny_bundle, monkeypatch, capsys):
    served = []
    monkeypatch.setattr("drgrader.inference.serve.serve", lambda bundle, **options: served.append(bundle))
    assert main(["serve"]) == 0 and main(["serve", "--bundle", DEFAULT_GRADER]) == 0
    assert main(["serve", str(tiny_bundle)]) == 0 and main(["serve", "--bundle", str(tiny_bundle)]) == 0
    assert served == [builtin_graders()[DEFAULT_GRADER]] * 2 + [tiny_bundle] * 2
    assert main(["serve", str(tiny_bundle), "--bundle", DEFAULT_GRADER]) == 2
    assert "two bundles given" in capsys.readouterr().err

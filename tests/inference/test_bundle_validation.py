"""A bundle is validated when it is opened: a damaged or tampered one is one line naming the
bundle and the fault (exit 2), never a traceback, and nothing is written."""

import json
import shutil

import pytest

from drgrader.cli import main
from drgrader.synth import make_fundus


@pytest.fixture
def photo(tmp_path):
    import cv2
    import numpy as np

    path = tmp_path / "photos" / "1_left.jpeg"
    path.parent.mkdir()
    cv2.imwrite(str(path), cv2.cvtColor(make_fundus(2, np.random.default_rng(0), height=128), cv2.COLOR_RGB2BGR))
    return path


def damaged_copy(tiny_bundle, tmp_path, damage):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    damage(bundle)
    return bundle


def edit_manifest(change):
    def damage(bundle):
        manifest = json.loads((bundle / "bundle.json").read_text())
        change(manifest)
        (bundle / "bundle.json").write_text(json.dumps(manifest))
    return damage


def truncate(name, keep):
    def damage(bundle):
        data = (bundle / name).read_bytes()
        (bundle / name).write_bytes(data[:keep] if keep >= 0 else data[: len(data) // 2])
    return damage


CASES = {
    "bundle.json truncated": (truncate("bundle.json", -1), "not valid JSON"),
    "bundle.json not JSON": (lambda b: (b / "bundle.json").write_text("weights: yes"), "not valid JSON"),
    "bundle.json a list": (lambda b: (b / "bundle.json").write_text("[1, 2]"), "expected a JSON object"),
    "key missing": (edit_manifest(lambda m: m.pop("backbone")), "backbone"),
    "unknown task": (edit_manifest(lambda m: m.update(task="glaucoma")), "task"),
    "cut-points out of order": (edit_manifest(lambda m: m.update(thresholds={"cutpoints": [2.5, 0.5, 1.5, 3.5]})), "cutpoints"),
    "three cut-points": (edit_manifest(lambda m: m.update(thresholds={"cutpoints": [0.5, 1.5, 2.5]})), "cutpoints"),
    "unknown TTA view": (edit_manifest(lambda m: m.update(tta=["orig", "spin"])), "tta"),
    "weights truncated": (truncate("model.safetensors", -1), "model.safetensors is damaged"),
    "weights empty": (truncate("model.safetensors", 0), "model.safetensors is damaged"),
    "weights of another architecture": (edit_manifest(lambda m: m.update(backbone="resnet18")), "does not fit"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_damaged_bundle_is_one_line_naming_it(case, tiny_bundle, photo, tmp_path, capsys):
    damage, fault = CASES[case]
    bundle = damaged_copy(tiny_bundle, tmp_path, damage)
    out = tmp_path / "pred.csv"
    assert main(["predict", str(bundle), str(photo), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(bundle) in err and fault in err
    assert "\n" not in err and "Traceback" not in err
    assert not list(tmp_path.glob("pred.csv*"))  # refused before any work


def test_garbage_onnx_model_is_one_line(tiny_bundle, photo, tmp_path, capsys):
    bundle = damaged_copy(tiny_bundle, tmp_path, lambda b: (b / "model.onnx").write_bytes(b"\x00garbage" * 50))
    assert main(["predict", str(bundle), str(photo), "--backend", "onnx", "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert "model.onnx is damaged or not an ONNX model" in err and "\n" not in err


def test_a_run_folder_given_as_the_bundle_names_its_bundle(tiny_bundle, photo, tmp_path, capsys):
    # Probe 36 AZ11: `predict --bundle RUN` said only "not a drgrader bundle".
    run = tmp_path / "run"
    shutil.copytree(tiny_bundle, run / "bundle")
    assert main(["predict", "--bundle", str(run), str(photo), "--out", str(tmp_path / "p.csv")]) == 2
    assert f"{run} is not a drgrader bundle (no bundle.json); a training run's folder: give {run / 'bundle'}" in capsys.readouterr().err

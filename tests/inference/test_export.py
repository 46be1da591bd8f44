"""ONNX export: parity with PyTorch, the manifest record, NaN outputs, PyTorch-free use."""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from drgrader.config import ExperimentConfig, config_to_dict
from drgrader.inference import export
from drgrader.inference.bundle import load_bundle, save_bundle
from drgrader.inference.ensemble import make_ensemble
from drgrader.inference.export import ExportError, export_command, parity_samples
from drgrader.models.factory import GraderNet, ScoringNet, input_mean_std

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def onnx_bundle(tiny_bundle, tmp_path_factory):
    return export_command(tiny_bundle, out=tmp_path_factory.mktemp("export") / "tiny-onnx")


def binary_referable_bundle(path):
    cfg = ExperimentConfig.model_validate(
        {"data": {"image_size": 64}, "model": {"backbone": "test_resnet", "task": "referable"}, "train": {"loss": "bce"}}
    )
    torch.manual_seed(2)
    net = GraderNet("test_resnet", task="referable", kind="binary").eval()
    return save_bundle(path, ScoringNet(net, *input_mean_std("test_resnet", "model")), config=config_to_dict(cfg), thresholds={})


def test_export_writes_a_bundle_with_onnx_record(tiny_bundle, onnx_bundle):
    manifest = json.loads((onnx_bundle / "bundle.json").read_text())
    record = manifest["onnx"]
    assert record["file"] == "model.onnx" and (onnx_bundle / "model.onnx").is_file()
    assert record["opset"] == export.DEFAULT_OPSET
    assert record["exporter"] == "torchscript"
    assert 0 <= record["parity_max_abs_diff"] < 1e-3
    # The folder is a complete bundle: weights copied, everything else as in the source.
    assert (onnx_bundle / "model.safetensors").read_bytes() == (tiny_bundle / "model.safetensors").read_bytes()
    source = json.loads((tiny_bundle / "bundle.json").read_text())
    assert {k: v for k, v in manifest.items() if k != "onnx"} == source
    assert not (tiny_bundle / "model.onnx").exists()  # the source bundle is untouched


def test_onnx_matches_torch_at_batch_1_and_3(onnx_bundle):
    by_torch = load_bundle(onnx_bundle, "torch")
    by_onnx = load_bundle(onnx_bundle, "onnx")
    assert not hasattr(by_onnx.runner, "scoring_net")
    samples = parity_samples(by_torch)
    assert [len(s) for s in samples] == [1, 3]
    for pixels in samples:
        a, b = by_torch.runner(pixels), by_onnx.runner(pixels)
        assert a.shape == b.shape == (len(pixels), 8)
        assert np.abs(a - b).max() < 1e-3
    np.testing.assert_allclose(by_onnx.runner(samples[1])[:, :5].sum(axis=1), 1.0, atol=1e-5)


def test_nan_outputs_survive_export(tmp_path):
    src = binary_referable_bundle(tmp_path / "ref")
    out = export_command(src, out=tmp_path / "ref-onnx")
    scores = load_bundle(out, "onnx").runner(parity_samples(load_bundle(src))[1])
    assert np.isnan(scores[:, :7]).all()  # no probabilities, expected grade or any-DR score
    assert np.isfinite(scores[:, 7]).all() and ((scores[:, 7] > 0) & (scores[:, 7] < 1)).all()


def test_a_multitask_model_exports_its_one_score(tmp_path):
    cfg = ExperimentConfig.model_validate(
        {"data": {"image_size": 64}, "model": {"backbone": "test_resnet"}, "train": {"loss": "multitask"}})
    torch.manual_seed(3)
    net = GraderNet("test_resnet", task="grade", kind="multitask").eval()
    src = save_bundle(tmp_path / "mt", ScoringNet(net, *input_mean_std("test_resnet", "model")),
                      config=config_to_dict(cfg), thresholds={})
    out = export_command(src, out=tmp_path / "mt-onnx")  # raises when ONNX and PyTorch differ
    pixels = parity_samples(load_bundle(src))[1]
    by_torch, by_onnx = load_bundle(src, "torch").runner(pixels), load_bundle(out, "onnx").runner(pixels)
    np.testing.assert_allclose(by_onnx, by_torch, atol=1e-3)
    assert np.isnan(by_onnx[:, :5]).all()  # no class probabilities: the grade is one number
    np.testing.assert_allclose(by_onnx[:, 6], by_onnx[:, 5])  # both screens are that grade
    np.testing.assert_allclose(by_onnx[:, 7], by_onnx[:, 5])


def test_parity_failure_is_loud_and_keeps_nothing(tiny_bundle, tmp_path, monkeypatch):
    real_export = export._export

    def export_a_different_model(scoring, example, file, opset):
        wrong = copy.deepcopy(scoring)
        with torch.no_grad():
            wrong.net.head.bias[0] += 2.0  # favours grade 0: probabilities change
        return real_export(wrong, example, file, opset)

    monkeypatch.setattr(export, "_export", export_a_different_model)
    with pytest.raises(ExportError, match="differ from PyTorch"):
        export_command(tiny_bundle, out=tmp_path / "bad")
    assert not (tmp_path / "bad" / "model.onnx").exists()
    assert not (tmp_path / "bad" / "bundle.json").exists()


def test_ensemble_export_exports_every_member(tiny_bundle, other_tiny_bundle, tmp_path, caplog):
    ens = make_ensemble([tiny_bundle, other_tiny_bundle], tmp_path / "ens")
    (ens / "MODEL_CARD.md").write_text("# the ensemble's card\n")  # as `drgrader ensemble` and `cv` write it
    with caplog.at_level(logging.INFO, logger="drgrader"):
        out = export_command(ens)
    assert (out / "MODEL_CARD.md").read_text() == "# the ensemble's card\n"  # probe 55 CS3: it was left behind
    assert out == tmp_path / "ens-onnx"
    # The log names the files where they are (before, probe 29: in the staging folder, gone after the rename).
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ONNX model")]
    assert [m.rsplit(": ", 1)[1] for m in logged] == [str(out / m / "model.onnx") for m in ("members/0-tiny", "members/1-tiny2")]
    for member in ("members/0-tiny", "members/1-tiny2"):
        assert json.loads((out / member / "bundle.json").read_text())["onnx"]["opset"] == export.DEFAULT_OPSET
    loaded = load_bundle(out, "onnx")
    assert len(loaded.members) == 2


NO_TORCH_SCRIPT = """
import json, sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
import drgrader.data.images, drgrader.data.preprocess
import drgrader.inference.bundle, drgrader.inference.predictor, drgrader.inference.predict
from drgrader.inference.bundle import load_bundle
from drgrader.workflows.predict import predict_command
bundle_dir, image, out = sys.argv[1:4]
bundle = load_bundle(bundle_dir)  # auto: no PyTorch -> ONNX Runtime
assert not hasattr(bundle.runner, "scoring_net")
predict_command(bundle, [image], out=out, batch_size=1)
loaded = sorted(m for m, mod in sys.modules.items() if mod is not None and m.split(".")[0] in ("torch", "timm", "torchvision"))
print(json.dumps({"torch_modules": loaded}))
"""


@pytest.mark.parametrize("keep_weights", [True, False], ids=["with-safetensors", "onnx-only"])
def test_onnx_bundle_works_without_pytorch(onnx_bundle, tmp_path, keep_weights):
    import cv2

    from drgrader.synth import make_fundus

    folder = tmp_path / "deploy"
    folder.mkdir()
    for name in ("bundle.json", "model.onnx") + (("model.safetensors",) if keep_weights else ()):
        shutil.copy2(onnx_bundle / name, folder / name)
    image = tmp_path / "3_left.jpeg"
    cv2.imwrite(str(image), cv2.cvtColor(make_fundus(2, np.random.default_rng(3), height=128), cv2.COLOR_RGB2BGR))
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run(
        [sys.executable, "-c", NO_TORCH_SCRIPT, str(folder), str(image), str(tmp_path / "p.csv")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == {"torch_modules": []}

    import pandas as pd

    from drgrader.inference.predict import predict_images

    row = pd.read_csv(tmp_path / "p.csv", keep_default_na=False).iloc[0]
    assert row["error"] == "" and row["patient_id"] == 3
    expected = predict_images(load_bundle(onnx_bundle, "torch"), [image], progress=False).iloc[0]
    assert abs(row["score_referable"] - expected["score_referable"]) < 1e-3

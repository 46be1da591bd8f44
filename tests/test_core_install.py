"""The core install (``pip install drgrader``, no extras) grades with ONNX Runtime and no PyTorch.

The slow test installs the working tree, without extras and not editable, into a fresh virtual
environment and uses it as a clinic would: ``import torch`` fails there, ``drgrader predict``
grades a folder of photos (JPEG, PNG, DICOM) with an exported bundle exactly as the torch
backend does here, ``drgrader evaluate`` and ``drgrader serve`` work, and the commands that need
an extra exit 2 naming it. It prints the size of that environment (README, "Install")."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from drgrader.cli import main
from drgrader.extras import MissingExtraError, available, require
from drgrader.grading import SCORE_COLUMNS

REPO = Path(__file__).resolve().parents[1]
PIP_TIMEOUT = 1800  # seconds: a first install downloads ~150 MB of wheels; from pip's cache it takes 1-3 minutes
EXTRA_MODULES = ("torch", "torchvision", "timm", "lightning", "torchmetrics", "albumentations", "safetensors",
                 "pytorch_grad_cam", "onnx", "onnxscript", "coral_pytorch", "huggingface_hub", "tensorboard")


# ------------------------------------------------------------------ fast: the one check
def test_a_missing_extra_is_one_line_naming_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "lightning", None)  # `import lightning` now fails, as without the extra
    assert not available("train") and available("torch")
    with pytest.raises(MissingExtraError, match=r"^drgrader train needs the \[train\] extra: pip install 'drgrader\[train\]' "
                                                r"\(not installed: lightning\)$"):
        require("train", "drgrader train")
    assert main(["train", "no-such-config.yaml"]) == 2  # checked before anything else
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: drgrader train needs the [train] extra"), err


def test_a_bundle_with_weights_only_names_the_torch_extra(tiny_bundle, monkeypatch):
    from drgrader.inference.bundle import load_bundle

    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(MissingExtraError, match=r"a bundle without model.onnx, needs the \[torch\] extra"):
        load_bundle(tiny_bundle)


# ------------------------------------------------------------------ slow: a real core install
def _index_reachable() -> str | None:
    """None when pip's index answers, else why not."""
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    try:
        with urllib.request.urlopen(f"{index}/pip/", timeout=20):
            return None
    except (urllib.error.URLError, OSError) as exc:
        return f"{index} unreachable ({exc})"


def _core_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, "HF_HUB_OFFLINE": "1", "PYTHONNOUSERSITE": "1"}


def _size_mb(path: Path) -> int:
    return int(subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory):
    """A fresh virtual environment holding ``pip install <working tree>``: no extras, no editable
    link back to src/ (pip builds a wheel from a copy)."""
    why = _index_reachable()
    if why:
        pytest.skip(f"cannot test the core install: {why}")
    root = tmp_path_factory.mktemp("core-install")
    source = root / "drgrader-source"
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300, env=_core_env())
    started = time.monotonic()
    run = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q", str(source)],
                         capture_output=True, text=True, timeout=PIP_TIMEOUT, env=_core_env())
    if run.returncode != 0:
        network = ("NewConnectionError", "Network is unreachable", "Temporary failure in name resolution", "ConnectTimeout")
        if any(word in run.stderr for word in network):
            pytest.skip(f"cannot test the core install: PyPI unreachable ({run.stderr.strip().splitlines()[-1]})")
        pytest.fail(f"pip install of the core failed:\n{run.stderr[-4000:]}")
    return venv, time.monotonic() - started


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A small synthetic data set (Kaggle layout, JPEG) plus a PNG and two DICOM photos (JPEG
    baseline: Pillow; JPEG lossless: GDCM) in a folder to grade."""
    import cv2
    from dicom_files import transcode_with_gdcm, write_dicom, write_jpeg_dicom

    from drgrader.synth import make_dataset, make_fundus

    root = tmp_path_factory.mktemp("core-photos") / "data"
    make_dataset(root, 4, seed=5, height=160, progress=False)
    folder = root.parent / "to-grade"
    shutil.copytree(root / "images", folder)
    rng = np.random.default_rng(11)
    cv2.imwrite(str(folder / "21_left.png"), cv2.cvtColor(make_fundus(3, rng, height=160), cv2.COLOR_RGB2BGR))
    write_jpeg_dicom(folder / "22_right.dcm", [make_fundus(2, rng, height=160)], patient_id="22", laterality="R")
    plain = write_dicom(root.parent / "plain.dcm", make_fundus(4, rng, height=160), patient_id="23", laterality="L")
    transcode_with_gdcm(plain, folder / "23_left.dcm")
    return root, folder


@pytest.fixture(scope="module")
def exported(tiny_bundle, tmp_path_factory):
    """``drgrader export`` of the tiny bundle, made here (the core cannot export)."""
    out = tmp_path_factory.mktemp("core-bundle") / "tiny-onnx"
    assert main(["export", str(tiny_bundle), "--out", str(out)]) == 0
    return out


def _drgrader(venv: Path, *args: str, timeout: int = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "drgrader"), *args], capture_output=True, text=True, timeout=timeout,
                          env=_core_env(), cwd=cwd)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post_photo(url: str, path: Path) -> dict:
    boundary = "drgrader-core-test"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def _serve_and_post(venv: Path, bundle: Path, photo: Path) -> tuple[dict, dict]:
    port = _free_port()
    server = subprocess.Popen([str(venv / "bin" / "drgrader"), "serve", str(bundle), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_core_env())
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/health", timeout=5) as answer:
                    health = json.loads(answer.read())
                break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    pytest.fail(f"drgrader serve did not come up:\n{server.communicate()[0][-3000:]}")
                time.sleep(0.5)
        return health, _post_photo(f"{base}/api/predict", photo)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.slow
@pytest.mark.timeout(PIP_TIMEOUT + 900)
def test_core_install_grades_without_pytorch(core_venv, exported, photos, tmp_path, capsys):
    venv, install_seconds = core_venv
    data_root, folder = photos
    python = str(venv / "bin" / "python")

    # 1. No PyTorch, nor any other extra's module; drgrader is the installed copy, not src/.
    probe = subprocess.run([python, "-c", "import importlib.util as u, json, drgrader; print(json.dumps("
                            f"{{'file': drgrader.__file__, 'found': [m for m in {list(EXTRA_MODULES)!r} if u.find_spec(m)]}}))"],
                           capture_output=True, text=True, timeout=120, env=_core_env(), cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert found["found"] == [] and str(venv) in found["file"], found
    no_torch = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True, timeout=60, env=_core_env())
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr

    # 2. predict: the folder graded with ONNX Runtime, as the torch backend grades it here.
    core_csv = tmp_path / "core.csv"
    run = _drgrader(venv, "--progress", "log", "predict", str(exported), str(folder), "--out", str(core_csv))
    assert run.returncode == 0, run.stderr[-3000:]
    torch_csv = tmp_path / "torch.csv"
    assert main(["--progress", "log", "predict", str(exported), str(folder), "--out", str(torch_csv), "--backend", "torch"]) == 0
    core, torch = (pd.read_csv(p, keep_default_na=False).sort_values("path").reset_index(drop=True) for p in (core_csv, torch_csv))
    assert len(core) == len(list(folder.iterdir())) == 11 and (core["error"] == "").all(), core[["path", "error"]]
    assert core["path"].tolist() == torch["path"].tolist()
    scores = [c for c in [*SCORE_COLUMNS, "quality_score", "uncertainty"] if c in core]
    np.testing.assert_allclose(core[scores].to_numpy(float), torch[scores].to_numpy(float), atol=1e-4, rtol=0)
    decisions = [c for c in ("grade", "any_dr", "referable", "gradable", "quality_reason") if c in core]
    pd.testing.assert_frame_equal(core[decisions], torch[decisions])
    for patients in ("core_patients.csv", "torch_patients.csv"):
        assert (tmp_path / patients).is_file()

    # 3. evaluate on a labelled folder (with its report), and serve: health and one upload.
    run = _drgrader(venv, "--progress", "log", "evaluate", str(exported), "--data", str(data_root), "--out", str(tmp_path / "ev"),
                    "--set", "eval.bootstrap=50")
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "ev" / "metrics.json").is_file() and (tmp_path / "ev" / "report.html").is_file()
    photo = folder / "22_right.dcm"
    health, answer = _serve_and_post(venv, exported, photo)
    assert health["status"] == "ok" and health["explain"] is False  # Grad-CAM needs the [explain] extra
    expected = torch.loc[torch["path"] == str(photo), "score_referable"].item()
    assert abs(answer["score_referable"] - expected) < 1e-4, answer

    # 4. What needs an extra says which: exit 2, one line.
    for args, extra in ((["train"], "train"), (["cv", "x.yaml"], "train"), (["demo"], "train"),
                        (["explain", str(exported), str(photo)], "explain"), (["export", str(exported)], "export"),
                        (["predict", str(exported), str(photo), "--backend", "torch", "--out", str(tmp_path / "t.csv")], "torch")):
        run = _drgrader(venv, *args, timeout=120, cwd=tmp_path)
        err = run.stderr.strip()
        assert run.returncode == 2 and err.count("\n") == 0, (args, err)
        assert f"needs the [{extra}] extra: pip install 'drgrader[{extra}]'" in err, (args, err)
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "runs").exists()

    size = _size_mb(venv)
    with capsys.disabled():
        print(f"\ncore install (no extras): {size} MB virtual environment, pip install took {install_seconds:.0f} s")
    assert size < 1500, f"the core environment is {size} MB: did PyTorch or CUDA come back into the core?"

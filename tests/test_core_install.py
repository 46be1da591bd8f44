"""The core install (``pip install drgrader``, no extras) grades with ONNX Runtime and no PyTorch.

The slow test installs the working tree, without extras and not editable, into a fresh virtual
environment and uses it as a clinic would: ``import torch`` fails there, ``drgrader predict``
grades a folder of photos (JPEG, PNG, DICOM) with an exported bundle exactly as the torch
backend does here, ``drgrader evaluate`` and ``drgrader serve`` work, and the commands that need
an extra exit 2 naming it. It prints the size of that environment (README, "Install").

A second slow test makes the same install with the core floors (the core dependencies' lines of
constraints-min.txt, ``pip install -c``) and runs the fast subset: predict on JPEG, PNG and DICOM
as the torch backend grades, evaluate with its report, a missing extra's exit 2."""

from __future__ import annotations

import json
import os
import re
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
from packaging.version import Version

from drgrader.cli import main
from drgrader.extras import MissingExtraError, available, require
from drgrader.grading import SCORE_COLUMNS
from drgrader.inference.builtin import DEFAULT_GRADER

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


def _install_core(root: Path, constraints: Path | None = None) -> tuple[Path, float]:
    """A fresh virtual environment under ``root`` holding ``pip install <working tree>`` (with
    ``-c constraints`` if given): no extras, no editable link back to src/ (pip builds a wheel
    from a copy). Returns it and the seconds pip took."""
    why = _index_reachable()
    if why:
        pytest.skip(f"cannot test the core install: {why}")
    source = root / "drgrader-source"
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300, env=_core_env())
    started = time.monotonic()
    pin = ["-c", str(constraints)] if constraints else []
    run = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q", *pin, str(source)],
                         capture_output=True, text=True, timeout=PIP_TIMEOUT, env=_core_env())
    if run.returncode != 0:
        network = ("NewConnectionError", "Network is unreachable", "Temporary failure in name resolution", "ConnectTimeout")
        if any(word in run.stderr for word in network):
            pytest.skip(f"cannot test the core install: PyPI unreachable ({run.stderr.strip().splitlines()[-1]})")
        pytest.fail(f"pip install of the core{' at ' + constraints.name if constraints else ''} failed:\n{run.stderr[-4000:]}")
    return venv, time.monotonic() - started


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def core_floors() -> dict[str, str]:
    """The core dependencies' lines of constraints-min.txt (name: floor); the extras' floors
    (torch 2.5, ...) are left out, the core install has none of them."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    core = {_normalized(re.split(r"[<>=!~;\[ ]", d)[0]) for d in dependencies}
    lines = [line for line in (REPO / "constraints-min.txt").read_text().splitlines() if line and not line.startswith("#")]
    pins = {name: floor for name, floor in (line.split("==") for line in lines) if _normalized(name) in core}
    assert {_normalized(name) for name in pins} == core, "a core dependency without its floor in constraints-min.txt"
    return pins


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory):
    """The core install with the newest releases pip finds."""
    return _install_core(tmp_path_factory.mktemp("core-install"))


@pytest.fixture(scope="module")
def core_floors_venv(tmp_path_factory):
    """The core install with every core dependency at its floor (``pip install -c``)."""
    floors = core_floors()
    root = tmp_path_factory.mktemp("core-floors")
    constraints = root / "constraints-core-min.txt"
    constraints.write_text("".join(f"{name}=={floor}\n" for name, floor in floors.items()))
    venv, seconds = _install_core(root, constraints)
    return venv, seconds, floors


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


def _no_extras_installed(venv: Path, cwd: Path) -> None:
    """No PyTorch, nor any other extra's module; drgrader is the installed copy, not src/."""
    python = str(venv / "bin" / "python")
    probe = subprocess.run([python, "-c", "import importlib.util as u, json, drgrader; print(json.dumps("
                            f"{{'file': drgrader.__file__, 'found': [m for m in {list(EXTRA_MODULES)!r} if u.find_spec(m)]}}))"],
                           capture_output=True, text=True, timeout=120, env=_core_env(), cwd=cwd)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert found["found"] == [] and str(venv) in found["file"], found
    no_torch = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True, timeout=60, env=_core_env())
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr


def _predict_as_the_torch_backend(venv: Path, exported: Path, folder: Path, out: Path) -> pd.DataFrame:
    """``drgrader predict`` of the folder in the venv (ONNX Runtime) and here with the torch
    backend: the same photos, scores within 1e-4, the same decisions. Returns the torch rows."""
    core_csv = out / "core.csv"
    run = _drgrader(venv, "--progress", "log", "predict", str(exported), str(folder), "--out", str(core_csv))
    assert run.returncode == 0, run.stderr[-3000:]
    torch_csv = out / "torch.csv"
    assert main(["--progress", "log", "predict", str(exported), str(folder), "--out", str(torch_csv), "--backend", "torch"]) == 0
    core, torch = (pd.read_csv(p, keep_default_na=False).sort_values("path").reset_index(drop=True) for p in (core_csv, torch_csv))
    assert len(core) == len(list(folder.iterdir())) == 11 and (core["error"] == "").all(), core[["path", "error"]]
    assert set(core["path"].map(lambda p: Path(p).suffix)) == {".jpeg", ".png", ".dcm"}
    assert core["path"].tolist() == torch["path"].tolist()
    scores = [c for c in [*SCORE_COLUMNS, "quality_score", "uncertainty"] if c in core]
    np.testing.assert_allclose(core[scores].to_numpy(float), torch[scores].to_numpy(float), atol=1e-4, rtol=0)
    decisions = [c for c in ("grade", "any_dr", "referable", "gradable", "quality_reason") if c in core]
    pd.testing.assert_frame_equal(core[decisions], torch[decisions])
    for patients in ("core_patients.csv", "torch_patients.csv"):
        assert (out / patients).is_file()
    return torch


def _evaluate_with_its_report(venv: Path, exported: Path, data_root: Path, out: Path) -> None:
    run = _drgrader(venv, "--progress", "log", "evaluate", str(exported), "--data", str(data_root), "--out", str(out),
                    "--set", "eval.bootstrap=50")
    assert run.returncode == 0, run.stderr[-3000:]
    assert (out / "metrics.json").is_file() and (out / "report.html").is_file()


def _exits_2_naming(venv: Path, args: list[str], extra: str, cwd: Path) -> None:
    run = _drgrader(venv, *args, timeout=120, cwd=cwd)
    err = run.stderr.strip()
    assert run.returncode == 2 and err.count("\n") == 0, (args, err)
    assert f"needs the [{extra}] extra: pip install 'drgrader[{extra}]'" in err, (args, err)


@pytest.mark.slow
@pytest.mark.timeout(PIP_TIMEOUT + 900)
def test_core_install_grades_without_pytorch(core_venv, exported, photos, tmp_path, capsys):
    venv, install_seconds = core_venv
    data_root, folder = photos

    # 1. No PyTorch, nor any other extra's module; drgrader is the installed copy, not src/.
    _no_extras_installed(venv, tmp_path)

    # 2. predict: the folder graded with ONNX Runtime, as the torch backend grades it here.
    torch = _predict_as_the_torch_backend(venv, exported, folder, tmp_path)

    # 3. evaluate on a labelled folder (with its report), and serve: health and one upload.
    _evaluate_with_its_report(venv, exported, data_root, tmp_path / "ev")
    photo = folder / "22_right.dcm"
    health, answer = _serve_and_post(venv, exported, photo)
    assert health["status"] == "ok" and health["explain"] is False  # Grad-CAM needs the [explain] extra
    expected = torch.loc[torch["path"] == str(photo), "score_referable"].item()
    assert abs(answer["score_referable"] - expected) < 1e-4, answer

    # 4. What needs an extra says which: exit 2, one line.
    for args, extra in ((["train"], "train"), (["cv", "x.yaml"], "train"), (["demo"], "train"),
                        (["explain", str(exported), str(photo)], "explain"), (["export", str(exported)], "export"),
                        (["predict", str(exported), str(photo), "--backend", "torch", "--out", str(tmp_path / "t.csv")], "torch")):
        _exits_2_naming(venv, args, extra, tmp_path)
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "runs").exists()

    # 5. The built-in grader, straight after install: predict with no bundle, and `models`.
    run = _drgrader(venv, "--progress", "log", "predict", str(folder), "--out", str(tmp_path / "builtin.csv"))
    assert run.returncode == 0 and f"grader: built-in {DEFAULT_GRADER}" in run.stderr, run.stderr[-3000:]
    graded = pd.read_csv(tmp_path / "builtin.csv", keep_default_na=False)
    assert len(graded) == 11 and (graded["error"] == "").all() and graded["grade"].between(0, 4).all()
    listing = _drgrader(venv, "models", cwd=tmp_path)
    assert listing.returncode == 0 and listing.stdout.startswith(f"{DEFAULT_GRADER} (default)"), listing.stdout

    size = _size_mb(venv)
    with capsys.disabled():
        print(f"\ncore install (no extras): {size} MB virtual environment, pip install took {install_seconds:.0f} s")
    assert size < 1500, f"the core environment is {size} MB: did PyTorch or CUDA come back into the core?"


@pytest.mark.slow
@pytest.mark.timeout(PIP_TIMEOUT + 600)
def test_core_floors_grade_without_pytorch(core_floors_venv, exported, photos, tmp_path, capsys):
    """The core floors of pyproject.toml work: installed at exactly those versions, the core
    grades JPEG, PNG and DICOM as the torch backend does, evaluates with its report, and names
    a missing extra."""
    venv, install_seconds, floors = core_floors_venv
    data_root, folder = photos

    # 1. Every core dependency at its floor (pip took the constraints), no extra's module.
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import importlib.metadata as m, json; "
                            f"print(json.dumps({{n: m.version(n) for n in {list(floors)!r}}}))"],
                           capture_output=True, text=True, timeout=120, env=_core_env(), cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    installed = json.loads(probe.stdout)
    assert {n: v for n, v in installed.items() if Version(v) != Version(floors[n])} == {}, "not installed at the floor"
    _no_extras_installed(venv, tmp_path)

    # 2. predict, 3. evaluate with its report, 4. a missing extra: exit 2 naming it.
    _predict_as_the_torch_backend(venv, exported, folder, tmp_path)
    _evaluate_with_its_report(venv, exported, data_root, tmp_path / "ev")
    _exits_2_naming(venv, ["train"], "train", tmp_path)

    with capsys.disabled():
        print(f"\ncore install at the floors ({len(floors)} pins): pip install took {install_seconds:.0f} s")

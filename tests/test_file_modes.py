"""Every file drgrader writes goes through drgrader.io.atomic_path and gets the mode a plain
open() would give (0666 minus the umask), not tempfile.mkstemp's 0600: a bundle copied to a
shared model folder must be readable by the service account that serves it."""

import os
import stat
import tempfile
from pathlib import Path

import pytest
from conftest import tiny_config

from drgrader.io import atomic_path, atomic_write_bytes


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def modes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): oct(stat.S_IMODE(p.stat().st_mode)) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_atomic_writes_get_the_mode_of_a_plain_open(tmp_path, umask):
    old = os.umask(umask)
    try:
        with open(tmp_path / "plain", "wb"):
            pass
        atomic_write_bytes(tmp_path / "bytes", b"data")
        atomic_write_bytes(tmp_path / "unsynced", b"data", fsync=False)
        with atomic_path(tmp_path / "by-name") as tmp:
            tmp.write_bytes(b"data")
        with atomic_path(tmp_path / "replaced") as tmp:  # a writer that swaps in its own 0600 file
            fd, own = tempfile.mkstemp(dir=tmp_path)
            os.close(fd)
            os.replace(own, tmp)
    finally:
        os.umask(old)
    expected = oct(0o666 & ~umask)
    assert modes(tmp_path) == dict.fromkeys(["bytes", "by-name", "plain", "replaced", "unsynced"], expected)


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    atomic_write_bytes(tmp_path / "kept", b"old")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "kept") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert [p.name for p in tmp_path.iterdir()] == ["kept"] and (tmp_path / "kept").read_bytes() == b"old"


@pytest.mark.slow
def test_a_trained_run_its_cache_and_its_onnx_export_are_0644(synth_dir, tmp_path, umask_022, monkeypatch):
    from drgrader.inference.export import export_command
    from drgrader.workflows.train import train

    # The report (half a minute here) writes through atomic_write_bytes/_text, tested above.
    monkeypatch.setattr("drgrader.reporting.write_report", lambda run: run / "report.html")
    cfg = tiny_config(synth_dir, **{"train.epochs": 1, "data.cache_dir": str(tmp_path / "cache")})
    run = train(cfg, out=tmp_path / "run", progress=False)
    onnx = export_command(run / "bundle", out=tmp_path / "onnx")

    for folder, must_hold in ((run, ["bundle/model.safetensors", "bundle/bundle.json", "checkpoints/last.ckpt", "metrics.json"]),
                              (tmp_path / "cache", ["settings.json", ".npy"]),
                              (onnx, ["model.onnx", "model.safetensors", "bundle.json"])):
        found = modes(folder)
        assert all(any(name.endswith(end) for name in found) for end in must_hold), (folder, list(found))
        assert {name: mode for name, mode in found.items() if mode != "0o644"} == {}, folder

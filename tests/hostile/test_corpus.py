"""The hostile corpus (tests/hostile/corpus.py) against the real command line: every damaged
label file, config, bundle, run folder and special file-system entry, given to every command
that reads it. Whatever it is, the command either works (exit 0) or says what is wrong in one
line starting with ``error:`` (exit 2); never a traceback, a hang, or a change to a file that
was there before.

Each run is an in-process ``drgrader.cli.main([...])``. Training is stopped where the model
would be built and ``serve`` where uvicorn would start (both count as "worked": every input
was read and accepted by then). A run that blocks for ``HANG_SECONDS`` is reported as a hang.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import stat
from pathlib import Path

import pytest

from drgrader.cli import main

from . import corpus

HANG_SECONDS = 30
MAX_ERROR_CHARS = 1000


class Reached(BaseException):
    """The command got past every check of its inputs to the expensive part (training, serving)."""


class Hung(BaseException):
    pass


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under ``folder`` (links not followed, FIFOs never opened): what it is, and
    for a file its bytes' hash and modification time."""
    entries = {}
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(top) / name
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                entry = ("file", info.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
            elif stat.S_ISLNK(info.st_mode):
                entry = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                entry = ("folder",)
            else:
                entry = ("special", stat.S_IFMT(info.st_mode), info.st_mtime_ns)
            entries[str(path.relative_to(folder))] = entry
    return entries


def run_cli(argv: list[str]) -> tuple[int | str, str]:
    """(exit code, or the name of the exception that escaped main; a description of it)."""

    def alarm(signum, frame):
        raise Hung()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_SECONDS)
    try:
        return main(argv), ""
    except Reached:
        return 0, ""
    except SystemExit as exc:  # argparse: usage error
        return exc.code, ""
    except Hung:
        return "hang", f"still running after {HANG_SECONDS} s"
    except Exception as exc:  # what the user would see as a traceback
        return "traceback", f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


RUNS = corpus.runs()


@pytest.fixture
def stops(monkeypatch):
    """Stop training where the model is built and serving where uvicorn would start; reports
    without drawing (matplotlib and Grad-CAM thumbnails are most of an evaluation's time here,
    and they see only the evaluation's results, never the hostile input itself); one torch
    thread (tiny batches: more threads only spin against each other)."""
    import torch
    import uvicorn

    import drgrader.models.factory
    import drgrader.reporting.plots
    import drgrader.reporting.report

    def reached(*args, **kwargs):
        raise Reached()

    def no_png(fig) -> bytes:
        import matplotlib.pyplot as plt

        plt.close(fig)
        return b"\x89PNG\r\n\x1a\n"

    monkeypatch.setattr(drgrader.models.factory, "create_model", reached)
    monkeypatch.setattr(uvicorn, "run", reached)
    monkeypatch.setattr(drgrader.reporting.plots, "figure_png", no_png)
    monkeypatch.setattr(drgrader.reporting.report, "gallery_section", lambda run, figures: None)
    monkeypatch.setenv("DRGRADER_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(("case", "command"), RUNS, ids=[f"{case.id} | {command}" for case, command in RUNS])
def test_hostile_input(case, command, tiny_bundle, tmp_path, monkeypatch, capsys, caplog, stops):
    world, out = tmp_path / "world", tmp_path / "out"
    out.mkdir()
    corpus.build_world(world, out, tiny_bundle, corpus.parts_of(command))
    case.damage(world)
    monkeypatch.chdir(out)  # default outputs land here, not in the inputs
    before = snapshot(world)
    places = {"data": world / "data", "config": world / "exp.yaml", "photo": world / "photo.jpeg", "photos": world / "photos",
              "bundle": world / "bundle", "run": world / "run", "out": out, "labels": world / corpus.LABELS}
    argv = [arg.format(**places) for arg in corpus.command_line(command)]
    try:
        code, escaped = run_cli(argv)
    finally:
        corpus.release_fifos(world)
    err = capsys.readouterr().err
    assert code in (0, 2), f"drgrader {' '.join(argv)}: {code} {escaped}\n{err[-2000:]}"
    assert "Traceback" not in err, err[-3000:]
    logged = [r for r in caplog.records if r.exc_info and r.levelno >= logging.INFO]  # a traceback on stderr
    assert not logged, [r.getMessage() for r in logged]
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines and "error:" in lines[-1], err[-2000:]
        assert sum("error:" in line for line in lines) == 1, err[-2000:]
        assert len(lines[-1]) <= MAX_ERROR_CHARS, lines[-1][:2000]
    after = snapshot(world)
    allowed = corpus.MAY_CHANGE.get(command, set())
    changed = {name: (entry, after.get(name)) for name, entry in before.items() if after.get(name) != entry and name not in allowed}
    assert not changed, changed
    if code == 2:  # refused: nothing left behind among the inputs either (no partial files)
        assert set(after) == set(before), sorted(set(after) - set(before))

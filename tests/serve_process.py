"""`drgrader serve` as users run it: a subprocess on a free port of 127.0.0.1 (shared by the
load, browser and built-in grader tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

SRC = Path(__file__).resolve().parent.parent / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(bundle, root: Path, *options: str):
    """`drgrader serve [bundle] *options` (no bundle: the built-in grader) in a subprocess on a
    free port of 127.0.0.1, with TMPDIR and the working directory pointed at empty folders under
    ``root`` (so anything it writes shows) and its output in ``root/server.log``; yields the base
    url once /api/health answers. On the way out: no traceback in the log."""
    tmp, cwd = root / "tmp", root / "cwd"
    tmp.mkdir()
    cwd.mkdir()
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    log = open(root / "server.log", "w")
    given = [] if bundle is None else [str(bundle)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "drgrader", "serve", *given, "--host", "127.0.0.1", "--port", str(port), *options],
        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited ({proc.returncode}):\n{(root / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/api/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("server did not answer /api/health within 180 s")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    server_log = (root / "server.log").read_text()
    assert "Traceback" not in server_log, server_log[-3000:]

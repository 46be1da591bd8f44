"""The web demo under load, over real sockets: `drgrader serve` in a subprocess on 127.0.0.1,
50 concurrent uploads from local client threads. Every answer is a grade (200) or "busy" (503),
never a crash or a dropped connection; limits hold; uploads leave nothing behind.

All traffic goes to a port on 127.0.0.1 picked free by the OS; each request has a timeout and
the load is a fixed 50 requests, so the test stops by itself.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from serve_process import running_server

from drgrader.synth import make_fundus

LIMIT_MB = 1
MAX_PENDING = 4
CLIENTS = 50


@pytest.fixture(scope="module")
def server(tiny_bundle, tmp_path_factory):
    """(base url, the server's TMPDIR, its working folder)."""
    root = tmp_path_factory.mktemp("serve")
    with running_server(tiny_bundle, root, "--max-upload-mb", str(LIMIT_MB), "--max-pending", str(MAX_PENDING)) as url:
        yield url, root / "tmp", root / "cwd"


def photo(seed: int) -> bytes:
    rgb = cv2.resize(make_fundus(seed % 5, np.random.default_rng(seed), height=160), (720, 480))
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return data.tobytes()


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_fifty_concurrent_uploads_get_a_grade_or_busy(server):
    url, tmp, cwd = server
    before = listing(tmp)
    photos = [photo(i) for i in range(5)]
    start = threading.Barrier(CLIENTS)
    seen_in_tmp: set[str] = set()
    done = threading.Event()

    def watch_tmp() -> None:  # where do uploads go while they are being graded?
        while not done.is_set():
            seen_in_tmp.update(p.name for p in tmp.iterdir())
            time.sleep(0.001)

    def upload(i: int):
        with httpx.Client(timeout=120) as client:
            start.wait(timeout=60)
            try:
                res = client.post(f"{url}/api/predict", params={"explain": int(i % 10 == 0)},
                                  files={"file": (f"eye{i}.jpg", photos[i % 5], "image/jpeg")})
            except httpx.HTTPError as exc:  # a refused, reset or timed-out connection
                return type(exc).__name__, str(exc)
            return res.status_code, res.json()

    watcher = threading.Thread(target=watch_tmp)
    watcher.start()
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            results = list(pool.map(upload, range(CLIENTS), timeout=300))
    finally:
        done.set()
        watcher.join()

    statuses = [status for status, _ in results]
    assert set(statuses) <= {200, 503}, [r for r in results if r[0] not in (200, 503)][:3]
    graded = [body for status, body in results if status == 200]
    busy = [body for status, body in results if status == 503]
    assert graded and busy  # 50 at once against 4 slots: some graded, the rest told to retry
    assert all(body["grade"] in range(5) and len(body["probabilities"]) == 5 for body in graded)
    assert all(body == {"error": "busy, try again"} for body in busy)
    assert httpx.get(f"{url}/api/health", timeout=30).json()["status"] == "ok"
    # Uploads were written only into the temporary folder, and nothing of them is left.
    assert any(name.startswith("drgrader-tmp-upload-") for name in seen_in_tmp)
    assert listing(tmp) == before
    assert listing(cwd) == set()


def test_upload_limit_holds_over_real_sockets(server):
    url, tmp, _ = server
    before = listing(tmp)
    too_big = np.random.default_rng(0).integers(0, 256, LIMIT_MB * 2**20 + 200_000, dtype=np.uint8).tobytes()
    with httpx.Client(timeout=60) as client:
        res = client.post(f"{url}/api/predict", files={"file": ("big.jpg", too_big, "image/jpeg")})
        assert res.status_code == 413 and "too large" in res.json()["error"]

        # Chunked (no Content-Length): refused while it arrives, without storing it whole.
        boundary = "loadtestboundary"

        def body():
            yield (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
                   "Content-Type: image/jpeg\r\n\r\n").encode()
            for i in range(0, len(too_big), 65536):
                yield too_big[i : i + 65536]
            yield f"\r\n--{boundary}--\r\n".encode()

        res = client.post(f"{url}/api/predict", content=body(),
                          headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert res.status_code == 413 and "too large" in res.json()["error"]
        # The server carries on: a normal photo is graded.
        assert client.post(f"{url}/api/predict", files={"file": ("ok.jpg", photo(7), "image/jpeg")}).status_code == 200
        assert client.get(f"{url}/api/health").status_code == 200
    assert listing(tmp) == before

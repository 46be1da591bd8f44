"""The web demo's HTTP API: good and bad uploads, limits, busy answers, temp files."""

from __future__ import annotations

import base64
import tempfile
import warnings

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from drgrader.grading import GRADE_NAMES
from drgrader.inference.bundle import load_bundle
from drgrader.inference.predict import predict_images
from drgrader.inference.serve import DISCLAIMER, create_app
from drgrader.synth import make_fundus

LIMIT_MB = 0.25


def jpeg(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def photo() -> bytes:
    return jpeg(make_fundus(3, np.random.default_rng(7), height=192))


@pytest.fixture(scope="module")
def app(tiny_bundle):
    return create_app(tiny_bundle, max_upload_mb=LIMIT_MB, max_pixels=1_000_000, max_pending=2)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        yield c


def post(client, data: bytes, name: str = "eye.jpg", explain: bool = False):
    return client.post("/api/predict", params={"explain": int(explain)}, files={"file": (name, data, "image/jpeg")})


def test_health_and_page(client):
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["task"] == "grade" and health["explain"] is True
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert DISCLAIMER in page.text
    # Works offline: no external scripts, styles, fonts or images.
    assert "http://" not in page.text and "https://" not in page.text and "<link" not in page.text
    assert 'type="file"' in page.text


def test_good_photo_gets_a_grade(client, photo, tiny_bundle, tmp_path):
    res = post(client, photo)
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["grade"] in range(5) and body["grade_name"] == GRADE_NAMES[body["grade"]]
    assert len(body["probabilities"]) == 5 and sum(body["probabilities"]) == pytest.approx(1, abs=1e-5)
    assert isinstance(body["referable"], bool) and body["gradable"] is True and body["warning"] is None
    assert body["disclaimer"] == DISCLAIMER and (body["width"], body["height"]) == (288, 192)
    # The per-patient answer too (a photo of unknown side, one patient), the photo as its one eye.
    assert body["patient"]["decision"] in ("negative", "refer", "urgent", "uncertain", "ungradable")
    assert body["eyes"]["file"]["grade"] == body["grade"] and body["eyes"]["file"]["filename"] == "eye.jpg"
    assert "overlay_png" not in body  # only with ?explain=1
    # Same answer as batch prediction of the same file.
    path = tmp_path / "eye.jpg"
    path.write_bytes(photo)
    row = predict_images(load_bundle(tiny_bundle), [path], progress=False).iloc[0]
    assert body["grade"] == row["grade"]
    assert body["score_referable"] == pytest.approx(row["score_referable"], abs=1e-6)


def test_explain_adds_overlays(client, photo):
    body = post(client, photo, explain=True).json()
    for key in ("input_png", "overlay_png", "overlay_referable_png"):
        png = cv2.imdecode(np.frombuffer(base64.b64decode(body[key]), np.uint8), cv2.IMREAD_COLOR)
        assert png.shape == (64, 64, 3)
    overlay = cv2.imdecode(np.frombuffer(base64.b64decode(body["overlay_png"]), np.uint8), cv2.IMREAD_COLOR)
    assert overlay.std() > 10
    # Saved from the page and uploaded again, a heat map is refused, not graded as a photo.
    res = post(client, base64.b64decode(body["overlay_png"]), name="heatmap.png")
    assert res.status_code == 400 and "a picture drgrader drew (the web demo's Grad-CAM)" in res.json()["error"]


def test_bad_uploads_get_clear_errors_and_the_server_carries_on(client, photo):
    res = post(client, b"hello, I am a text file\n" * 10, name="notes.txt")
    assert res.status_code == 400 and "notes.txt" in res.json()["error"] and "not an image" in res.json()["error"]

    res = post(client, b"", name="empty.jpg")
    assert res.status_code == 400 and "empty" in res.json()["error"]

    res = post(client, photo[: len(photo) // 3], name="cut.jpg")
    assert res.status_code == 400 and "truncated" in res.json()["error"]

    res = post(client, jpeg(np.full((40, 40, 3), 90, np.uint8)), name="tiny.jpg")
    assert res.status_code == 400 and "too small" in res.json()["error"]

    big = np.random.default_rng(0).integers(0, 256, int(LIMIT_MB * 2**20) + 1000, dtype=np.uint8).tobytes()
    res = post(client, big, name="huge.jpg")
    assert res.status_code == 413 and "too large" in res.json()["error"]

    # Few bytes, many pixels (a decompression bomb in spirit): refused from the header.
    ok, black = cv2.imencode(".png", np.zeros((1200, 1000, 3), np.uint8))
    res = post(client, black.tobytes(), name="bomb.png")
    assert len(black) < 100_000 and res.status_code == 413 and "pixels" in res.json()["error"]

    res = client.post("/api/predict")
    assert res.status_code == 400 and "no file" in res.json()["error"]
    res = client.post("/api/predict", data={"note": "no file"})  # a field it does not read: named
    assert res.status_code == 400 and "unknown upload field 'note'" in res.json()["error"]

    assert post(client, photo).status_code == 200  # still serving


def test_chunked_upload_over_the_limit_is_refused(client):
    """Without Content-Length the body is counted while it arrives (and refused past the limit in
    all, two photos' worth)."""
    boundary = "drgraderboundary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'

    def body():
        yield head.encode()
        for _ in range(int(2 * LIMIT_MB * 2**20 / 65536) + 4):
            yield b"\xff" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    res = client.post("/api/predict", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert res.status_code == 413 and "more than" in res.json()["error"]


def test_non_fundus_photo_gets_a_gradability_warning(client):
    rng = np.random.default_rng(1)
    street = cv2.GaussianBlur(rng.integers(60, 200, (200, 300, 3), dtype=np.uint8), (0, 0), 3)
    res = post(client, jpeg(street), name="street.jpg")
    assert res.status_code == 200
    body = res.json()
    assert body["gradable"] is False and body["quality_reason"] == "no fundus detected"
    assert "No fundus detected" in body["warning"]


def test_busy_server_answers_503_instead_of_queueing(client, app, photo):
    slots = app.state.slots
    taken = 0
    while slots.acquire(blocking=False):  # occupy every slot, as long-running requests would
        taken += 1
    try:
        assert taken == 2
        res = post(client, photo)
        assert res.status_code == 503 and res.json() == {"error": "busy, try again"}
        assert client.get("/api/health").status_code == 200  # only predictions are bounded
    finally:
        for _ in range(taken):
            slots.release()
    assert post(client, photo).status_code == 200


def test_uploads_leave_no_temporary_files(client, photo, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert post(client, photo, explain=True).status_code == 200
    assert post(client, b"not an image").status_code == 400
    assert list(tmp_path.iterdir()) == []


def test_get_routes_answer_head(client):
    for route in ("/", "/api/health", "/api/examples"):
        response = client.head(route)
        assert response.status_code == 200 and response.content == b""


def test_the_api_schema_has_one_operation_id_per_operation(client):
    # Probe 29: a route of GET and HEAD gave both one operation id: /openapi.json wrote FastAPI's
    # "Duplicate Operation ID example_api_examples__name__get" warning to the server log.
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning fails the request
        schema = client.get("/openapi.json").json()
    ids = [op["operationId"] for path in schema["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids)) and "example_api_examples__name__get" in ids


def test_client_that_vanishes_mid_upload_is_one_log_line(app, caplog):
    import asyncio

    messages = [{"type": "http.request", "body": b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\nabc",
                 "more_body": True}, {"type": "http.disconnect"}]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/predict", "raw_path": b"/api/predict", "query_string": b"",
             "headers": [(b"content-type", b"multipart/form-data; boundary=x")], "client": ("10.0.0.9", 1234),
             "server": ("testserver", 80), "scheme": "http", "root_path": "", "http_version": "1.1"}
    with caplog.at_level("INFO", logger="drgrader"):
        asyncio.run(app(scope, receive, send))
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
    assert any("disconnected during its upload" in r.getMessage() for r in caplog.records)

"""Slow, stalled and vanished clients over real sockets (`drgrader serve` in a subprocess): a
client that stops sending mid-upload gets 408 within the read timeout and holds no grading slot
meanwhile; one that vanishes is one log line; a connection that never completes its request
head is closed. Every socket has a timeout, so the tests stop by themselves."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
from test_serve_load import photo, running_server

READ_TIMEOUT = 3.0
MAX_PENDING = 2
BOUNDARY = "stallboundary"


@pytest.fixture(scope="module")
def server(tiny_bundle, tmp_path_factory):
    """(base url, host, port, the server's log file)."""
    root = tmp_path_factory.mktemp("serve-clients")
    with running_server(tiny_bundle, root, "--max-pending", str(MAX_PENDING), "--read-timeout", str(READ_TIMEOUT)) as url:
        host, port = url.removeprefix("http://").split(":")
        yield url, host, int(port), root / "server.log"


def start_upload(host: str, port: int, data: bytes, *, send_fraction: float = 0.5) -> socket.socket:
    """A raw connection that sends the headers (with the full Content-Length) and only part of
    a multipart upload of ``data``, then goes quiet."""
    head = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="slow.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n").encode()
    body = head + data + f"\r\n--{BOUNDARY}--\r\n".encode()
    sock = socket.create_connection((host, port), timeout=30)
    sock.sendall((f"POST /api/predict HTTP/1.1\r\nHost: {host}:{port}\r\n"
                  f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n").encode())
    sock.sendall(body[: int(len(body) * send_fraction)])
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    """(status, headers, body) of the one answer on ``sock``, read until the server closes it."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed ``sock`` (reading and dropping anything it sends)."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - start


def log_lines(path) -> list[str]:
    return path.read_text().splitlines()


def test_stalled_uploads_get_408_and_hold_no_slot(server):
    url, host, port, _ = server
    picture = photo(3)
    # More stalled uploads than grading slots: while they sit there, a normal upload is graded.
    stalled = [start_upload(host, port, picture) for _ in range(MAX_PENDING + 1)]
    started = time.monotonic()
    try:
        res = httpx.post(f"{url}/api/predict", files={"file": ("ok.jpg", picture, "image/jpeg")}, timeout=60)
        assert res.status_code == 200 and res.json()["grade"] in range(5)
        assert time.monotonic() - started < READ_TIMEOUT  # graded while the others were still stalled
        for sock in stalled:
            status, headers, body = read_response(sock)
            waited = time.monotonic() - started
            assert status == 408 and headers.get("connection") == "close"
            assert json.loads(body)["error"].startswith(f"upload timed out: nothing received for {READ_TIMEOUT:g} s")
            assert READ_TIMEOUT - 0.5 < waited < READ_TIMEOUT + 15
    finally:
        for sock in stalled:
            sock.close()
    # Their places are free again: the server still grades.
    res = httpx.post(f"{url}/api/predict", files={"file": ("ok.jpg", picture, "image/jpeg")}, timeout=60)
    assert res.status_code == 200


def test_client_that_vanishes_mid_upload_is_one_log_line(server):
    url, host, port, log = server
    assert httpx.get(f"{url}/api/health", timeout=30).status_code == 200
    time.sleep(0.5)  # let the access-log line of that request reach the log file
    before = len(log_lines(log))
    sock = start_upload(host, port, photo(4))
    time.sleep(0.3)  # the server has the headers and is reading the body
    sock.close()
    deadline = time.monotonic() + 30
    while not any("disconnected during its upload" in line for line in log_lines(log)[before:]):
        assert time.monotonic() < deadline, log_lines(log)[before:]
        time.sleep(0.1)
    time.sleep(1)  # anything else it would log about this client comes now
    new = log_lines(log)[before:]
    assert len(new) == 1 and "client 127.0.0.1 disconnected during its upload" in new[0], new
    assert httpx.get(f"{url}/api/health", timeout=30).status_code == 200


@pytest.mark.parametrize("sends", [b"", b"POST /api/predict HTTP/1.1\r\nHost: x\r\n"], ids=["nothing", "half a request head"])
def test_connection_without_a_complete_request_head_is_closed(server, sends):
    _, host, port, _ = server
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(sends)
        assert closed_within(sock, READ_TIMEOUT + 15) > READ_TIMEOUT - 0.5


def test_keep_alive_connection_that_stalls_in_its_next_request_head_is_closed(server):
    """uvicorn's keep-alive timer stops at the first byte of the next request; the head timeout
    still closes the connection."""
    _, host, port, _ = server
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(f"GET /api/health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while not data.endswith(b"}"):
            data += sock.recv(65536)
        assert data.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /api/heal")
        assert READ_TIMEOUT - 0.5 < closed_within(sock, READ_TIMEOUT + 15) < READ_TIMEOUT + 15

"""The web demo in a real browser: Debian's headless Chromium driven by Playwright.

Needs /usr/bin/chromium (``make browser`` or ``apt-get install chromium``); Playwright's own
browser download is never used. Set DRGRADER_SCREENSHOT_DIR to keep the screenshot
(``demo-page.png``, e.g. for docs/images/).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_bundle):
    """The demo app on 127.0.0.1:<free port>, as `drgrader serve` runs it (uvicorn)."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium, or `make browser`)")
    pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")
    import uvicorn

    from drgrader.inference.serve import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(tiny_bundle), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the demo server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def screenshot_path(tmp_path: Path) -> Path:
    folder = os.environ.get("DRGRADER_SCREENSHOT_DIR")
    return (Path(folder) if folder else tmp_path) / "demo-page.png"


def test_upload_in_the_browser_shows_the_api_grade(server, tmp_path):
    from playwright.sync_api import sync_playwright

    from drgrader.synth import make_fundus

    photo = tmp_path / "12_left.jpeg"
    cv2.imwrite(str(photo), cv2.cvtColor(make_fundus(2, np.random.default_rng(12), height=384), cv2.COLOR_RGB2BGR))
    notes = tmp_path / "notes.txt"
    notes.write_text("this is not a photograph\n")
    api = httpx.post(f"{server}/api/predict", files={"file": (photo.name, photo.read_bytes(), "image/jpeg")}, timeout=60)
    assert api.status_code == 200, api.text
    expected = api.json()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            script_errors: list[str] = []
            page.on("pageerror", lambda exc: script_errors.append(str(exc)))
            page.goto(f"{server}/")
            assert "not a medical device" in page.text_content("#disclaimer")

            page.set_input_files("#file", str(photo))  # the page uploads on change
            page.wait_for_selector("#result", state="visible", timeout=45_000)
            assert page.text_content("#grade") == expected["grade_name"]
            assert page.get_attribute("#grade", "data-grade") == str(expected["grade"])
            assert page.text_content("#referable") == ("yes" if expected["referable"] else "no")
            assert page.locator("#probs li").count() == 5
            page.wait_for_function("document.getElementById('overlay').naturalWidth > 0")
            assert page.eval_on_selector("#overlay", "img => img.naturalWidth") == 64
            assert page.is_hidden("#error")
            page.wait_for_function("!document.getElementById('model').textContent.includes('loading')")
            shot = screenshot_path(tmp_path)
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)

            # A bad upload shows the server's message on the page; the page keeps working.
            page.set_input_files("#file", str(notes))
            page.wait_for_selector("#error", state="visible", timeout=30_000)
            assert "not an image" in page.text_content("#error")
            assert page.is_hidden("#result")
            page.set_input_files("#file", str(photo))
            page.wait_for_selector("#result", state="visible", timeout=45_000)
            assert page.text_content("#grade") == expected["grade_name"]
            assert script_errors == []
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000

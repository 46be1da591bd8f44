"""The web demo in a real browser: Debian's headless Chromium driven by Playwright.

Needs /usr/bin/chromium (``make browser`` or ``apt-get install chromium``); Playwright's own
browser download is never used. Set DRGRADER_SCREENSHOT_DIR to keep the screenshots of the
built-in grader served by ``drgrader serve`` (``web-demo-two-eyes.png`` at 1280 px,
``web-demo-narrow.png`` at 390 px; docs/images/ holds them:
``DRGRADER_SCREENSHOT_DIR=docs/images pytest -m browser tests/inference/test_browser.py``).
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
from serve_process import running_server

from drgrader.inference.builtin import DEFAULT_GRADER

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


def needs_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium, or `make browser`)")
    pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")


@pytest.fixture(scope="module")
def server(tiny_bundle):
    """The demo app on 127.0.0.1:<free port>, as `drgrader serve` runs it (uvicorn)."""
    needs_chromium()
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


@pytest.fixture(scope="module")
def builtin_server(tmp_path_factory):
    """`drgrader serve` with no bundle, in its own process: (base url, its log file)."""
    needs_chromium()
    root = tmp_path_factory.mktemp("builtin-serve")
    with running_server(None, root) as url:
        yield url, root / "server.log"


def screenshot_path(tmp_path: Path, name: str) -> Path:
    folder = os.environ.get("DRGRADER_SCREENSHOT_DIR")
    path = (Path(folder) if folder else tmp_path) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def page():
    """A fresh Chromium page; collects the page's script errors in ``page.script_errors``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.script_errors = []
            page.on("pageerror", lambda exc: page.script_errors.append(str(exc)))
            yield page
        finally:
            browser.close()


def write_photo(path: Path, grade: int, seed: int, eye: str) -> Path:
    from drgrader.synth import make_fundus

    rgb = make_fundus(grade, np.random.default_rng(seed), height=384, eye=eye)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def shows_image(page, selector: str) -> None:
    page.wait_for_function(f"(() => {{ const i = document.querySelector({selector!r}); return i && i.naturalWidth > 0; }})()")


def test_two_eyes_in_the_browser_show_the_patient_decision(server, page, tmp_path):
    right = write_photo(tmp_path / "P1_right.jpeg", 1, 12, "right")
    left = write_photo(tmp_path / "P1_left.jpeg", 3, 13, "left")
    notes = tmp_path / "notes.txt"
    notes.write_text("this is not a photograph\n")
    files = {eye: (path.name, path.read_bytes(), "image/jpeg") for eye, path in (("right", right), ("left", left))}
    api = httpx.post(f"{server}/api/predict", files=files, timeout=60)
    assert api.status_code == 200, api.text
    expected = api.json()

    page.goto(f"{server}/")
    assert "not a medical device" in page.text_content("#disclaimer")
    assert page.is_disabled("#grade-button")
    page.set_input_files("#right-file", str(right))
    page.set_input_files("#left-file", str(left))
    shows_image(page, "#preview-right")
    shows_image(page, "#preview-left")
    assert "P1_left.jpeg" in page.text_content("#left-name")
    page.click("#grade-button")
    page.wait_for_selector("#result", state="visible", timeout=45_000)

    patient = expected["patient"]
    assert page.get_attribute("#patient", "data-decision") == patient["decision"]
    assert page.text_content("#reason") == patient["reason"]
    assert page.locator("#eyes > article").count() == 2
    for eye in ("right", "left"):
        card = f"#eye-{eye}"
        assert page.text_content(f"{card} .grade") == expected["eyes"][eye]["grade_name"]
        assert page.get_attribute(f"{card} .grade", "data-grade") == str(expected["eyes"][eye]["grade"])
        assert page.text_content(f"{card} .referable") == ("yes" if expected["eyes"][eye]["referable"] else "no")
        assert page.locator(f"{card} .bars li").count() == 5
        shows_image(page, f"{card} .overlay")
        assert page.eval_on_selector(f"{card} .overlay", "img => img.naturalWidth") == 64
    assert page.is_hidden("#error")
    page.wait_for_function("!document.getElementById('model').textContent.includes('loading')")
    page.wait_for_function("document.querySelectorAll('button.example img').length === 4 && "
                           "[...document.querySelectorAll('button.example img')].every(i => i.complete && i.naturalWidth > 0)")
    wide = tmp_path / "two-eyes.png"
    page.screenshot(path=str(wide), full_page=True)

    # On a phone-sized screen everything fits the width (no sideways scrolling).
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    narrow = tmp_path / "narrow.png"
    page.screenshot(path=str(narrow), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    # A bad photo in one eye: the server's message names the eye; the page keeps working.
    page.set_input_files("#right-file", str(notes))
    page.click("#grade-button")
    page.wait_for_selector("#error", state="visible", timeout=30_000)
    assert page.text_content("#error").startswith("right eye: notes.txt") and "not an image" in page.text_content("#error")
    assert page.is_hidden("#result") and "invalid" in page.get_attribute("#drop-right", "class")
    page.set_input_files("#right-file", str(right))
    page.click("#grade-button")
    page.wait_for_selector("#result", state="visible", timeout=45_000)
    assert page.text_content("#reason") == patient["reason"]
    assert page.script_errors == []
    assert wide.stat().st_size > 10_000 and narrow.stat().st_size > 10_000


def test_example_photos_drop_and_paste_in_the_browser(server, page):
    page.goto(f"{server}/")
    page.wait_for_selector("button.example", timeout=30_000)
    examples = httpx.get(f"{server}/api/examples", timeout=30).json()
    assert page.locator("button.example").count() == len(examples)

    # Click an example: it lands in its eye's box and grades like the same file uploaded.
    first = examples[0]
    page.click(f"button.example[data-name='{first['name']}']")
    shows_image(page, f"#preview-{first['eye']}")
    assert first["name"] in page.text_content(f"#{first['eye']}-name")
    page.click("#grade-button")
    page.wait_for_selector("#result", state="visible", timeout=45_000)
    photo = httpx.get(f"{server}/{first['url']}", timeout=30).content
    expected = httpx.post(f"{server}/api/predict", files={first["eye"]: (first["name"], photo, "image/jpeg")}, timeout=60).json()
    assert page.locator("#eyes > article").count() == 1
    assert page.text_content(f"#eye-{first['eye']} .grade") == expected["eyes"][first["eye"]]["grade_name"]
    assert page.get_attribute("#patient", "data-decision") == expected["patient"]["decision"]

    # Drag-and-drop into the left box, paste into the focused right box: both eyes graded.
    page.click("#clear-right")
    page.evaluate("""async ([left, right]) => {
        const file = async (url, name) => new File([await (await fetch(url)).blob()], name, { type: "image/jpeg" });
        const dropped = new DataTransfer();
        dropped.items.add(await file(left.url, "dropped_left.jpg"));
        document.getElementById("drop-left").dispatchEvent(new DragEvent("drop", { dataTransfer: dropped, bubbles: true, cancelable: true }));
        const pasted = new DataTransfer();
        pasted.items.add(await file(right.url, "image.png"));
        document.getElementById("drop-right").focus();
        document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: pasted, bubbles: true, cancelable: true }));
    }""", [examples[3], examples[2]])
    shows_image(page, "#preview-left")
    shows_image(page, "#preview-right")
    assert "dropped_left.jpg" in page.text_content("#left-name") and "right-pasted" in page.text_content("#right-name")
    page.click("#grade-button")
    page.wait_for_selector("#result", state="visible", timeout=45_000)
    assert page.locator("#eyes > article").count() == 2
    assert page.get_attribute("#patient", "data-decision") in ("negative", "refer", "urgent", "uncertain", "ungradable")
    assert page.text_content("#reason")
    assert page.script_errors == []


def test_serve_without_a_bundle_shows_the_built_in_grader(builtin_server, page, tmp_path):
    """The README's screenshots: a real grader (the built-in one) on two synthetic photos."""
    url, log = builtin_server
    right = write_photo(tmp_path / "P7_right.jpeg", 0, 21, "right")
    left = write_photo(tmp_path / "P7_left.jpeg", 3, 22, "left")
    files = {eye: (path.name, path.read_bytes(), "image/jpeg") for eye, path in (("right", right), ("left", left))}
    expected = httpx.post(f"{url}/api/predict", files=files, timeout=120).json()
    assert f"grader: built-in {DEFAULT_GRADER}" in log.read_text()

    page.goto(f"{url}/")
    page.wait_for_function("!document.getElementById('model').textContent.includes('loading')")
    assert page.text_content("#model").startswith(f"{DEFAULT_GRADER} (built-in grader): tf_efficientnet_lite2")
    page.set_input_files("#right-file", str(right))
    page.set_input_files("#left-file", str(left))
    page.click("#grade-button")
    page.wait_for_selector("#result", state="visible", timeout=90_000)
    assert page.get_attribute("#patient", "data-decision") == expected["patient"]["decision"]
    for eye in ("right", "left"):
        answer = expected["eyes"][eye]
        assert page.text_content(f"#eye-{eye} .grade") == answer["grade_name"]
        if answer.get("paired"):  # the calls are the fused grade's, and the page says so
            assert f"on the fused grade {answer['fused_grade']:.2f}" in page.text_content(f"#eye-{eye} .referable-score")
        if answer.get("overlay_png"):  # Grad-CAM: the fp16 weights and the [explain] extra
            shows_image(page, f"#eye-{eye} .overlay")
    page.wait_for_function("[...document.querySelectorAll('button.example img')].length > 0 && "
                           "[...document.querySelectorAll('button.example img')].every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(screenshot_path(tmp_path, "web-demo-two-eyes.png")), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(screenshot_path(tmp_path, "web-demo-narrow.png")), full_page=True)
    assert page.script_errors == []

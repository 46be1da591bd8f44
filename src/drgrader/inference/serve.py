"""``drgrader serve``: a small web demo (FastAPI) around one bundle.

``GET /``             one self-contained HTML page (no external resources: works offline)
``GET /api/health``   {"status": "ok", model facts}
``POST /api/predict`` multipart field ``file`` -> grade, probabilities, screening decisions,
                      gradability; ``?explain=1`` adds Grad-CAM overlays as base64 PNGs.

Bad uploads get a JSON ``{"error": ...}`` with a 4xx status (400 not an image / empty / too
small, 413 too large) and the server carries on. At most ``max_pending`` requests are in
progress or waiting; beyond that the answer is 503 ``busy, try again`` instead of an unbounded
queue. Uploads are decoded from a ``TemporaryDirectory`` that is removed after each request.
"""

from __future__ import annotations

import base64
import logging
import tempfile
import threading
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect

from drgrader.data.images import ImageReadError, read_image, read_image_size
from drgrader.data.photo import decode_photo
from drgrader.data.preprocess import assess_quality
from drgrader.grading import GRADE_NAMES
from drgrader.inference.bundle import Bundle, load_bundle
from drgrader.inference.predict import describe_prediction

log = logging.getLogger("drgrader")

DISCLAIMER = "This is a research demo, not a medical device; it must not be used for diagnosis."
DEFAULT_MAX_UPLOAD_MB = 20.0
DEFAULT_MAX_PIXELS = 50_000_000  # ~ 8700 x 5800: larger than any fundus camera
DEFAULT_MAX_PENDING = 4
_MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file


class _BodyTooLarge(Exception):
    pass


def _limited_receive(receive, limit: int):
    """An ASGI receive that stops reading the request body after ``limit`` bytes, so a huge or
    chunked upload is refused without being spooled to disk first."""
    seen = 0

    async def wrapped():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge()
        return message

    return wrapped


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _can_explain(bundle: Bundle) -> bool:
    """Grad-CAM needs PyTorch and the weights of the (first) member."""
    leaf = bundle.leaves()[0]
    try:
        import pytorch_grad_cam  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        return False
    return (leaf.path / "model.safetensors").is_file()


def _png_b64(rgb) -> str:
    from drgrader.inference.explain import png_bytes

    return base64.b64encode(png_bytes(rgb)).decode("ascii")


def _quality_warning(quality: dict) -> str | None:
    if quality["gradable"]:
        return None
    if quality["reason"] == "no fundus detected":
        return "No fundus detected: this does not look like a retinal photograph, so the grade below is meaningless."
    return f"This photo may not be gradable ({quality['reason']}): the grade below is unreliable."


def analyse_photo(bundle: Bundle, path: Path, *, name: str, explain: bool, max_pixels: int) -> tuple[int, dict]:
    """Decode, grade (and explain) one uploaded file -> (HTTP status, JSON body)."""
    try:
        height, width = read_image_size(path, max_pixels=max_pixels)
        circle = None  # found by decode_photo; assess_quality finds it when left None
        if bundle.reads_cached_input:  # decoded exactly as the training cache and `drgrader predict` decode
            rgb, circle = decode_photo(path, bundle.input_size, (height, width), max_pixels=max_pixels)
        else:  # each member preprocesses the full photo its own way
            rgb = read_image(path, max_pixels=max_pixels)
    except ImageReadError as exc:
        status = 413 if exc.reason.startswith("image too large") else 400
        return status, {"error": f"{name}: {exc.reason}"}
    if explain:
        from drgrader.inference.explain import explain_image

        result = explain_image(bundle, rgb)
        prediction, quality = result["prediction"], result["quality"]
        images = {
            "input_png": _png_b64(result["preprocessed"]),
            "overlay_png": None if result["overlay_grade"] is None else _png_b64(result["overlay_grade"]),
            "overlay_referable_png": None if result["overlay_referable"] is None else _png_b64(result["overlay_referable"]),
        }
    else:
        prediction = describe_prediction(bundle, bundle.score_raw([rgb])[0])
        q = assess_quality(rgb, circle)
        quality, images = {"gradable": q.gradable, "score": q.score, "reason": q.reason}, {}
    body = {
        "filename": name,
        "height": int(height),
        "width": int(width),
        **prediction,
        "class_names": GRADE_NAMES,
        "gradable": quality["gradable"],
        "quality_score": quality["score"],
        "quality_reason": quality["reason"],
        "warning": _quality_warning(quality),
        "disclaimer": DISCLAIMER,
        **images,
    }
    return 200, body


def create_app(
    bundle: str | Path | Bundle,
    *,
    backend: str = "auto",
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_pending: int = DEFAULT_MAX_PENDING,
) -> FastAPI:
    """The demo app for one bundle (loaded once). ``app.state.slots`` is the semaphore that
    bounds requests in progress or waiting (``max_pending``)."""
    model = bundle if isinstance(bundle, Bundle) else load_bundle(bundle, backend)
    can_explain = _can_explain(model)
    limit = int(max_upload_mb * 1024 * 1024)
    page = resources.files("drgrader.inference").joinpath("static/index.html").read_text(encoding="utf-8")

    app = FastAPI(title="drgrader demo", description=DISCLAIMER, version="1")
    app.state.bundle = model
    app.state.slots = threading.BoundedSemaphore(max_pending)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("error while serving %s", request.url.path)
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")

    # GET routes answer HEAD too (uptime checks and proxies probe with HEAD).
    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.api_route("/api/health", methods=["GET", "HEAD"])
    def health() -> dict:
        return {
            "status": "ok",
            "bundle": Path(model.path).name,
            "task": model.task,
            "backbone": model.manifest.get("backbone"),
            "input_size": model.input_size,
            "explain": can_explain,
            "max_upload_mb": max_upload_mb,
            "disclaimer": DISCLAIMER,
        }

    @app.post("/api/predict")
    async def predict(request: Request, explain: bool = False) -> JSONResponse:
        if not app.state.slots.acquire(blocking=False):
            return _error(503, "busy, try again")
        try:
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > limit + _MULTIPART_OVERHEAD:
                return _error(413, f"upload too large: {int(length) / 2**20:.1f} MB > limit {max_upload_mb:g} MB")
            limited = Request(request.scope, _limited_receive(request.receive, limit + _MULTIPART_OVERHEAD))
            try:
                form = await limited.form(max_files=1, max_fields=5)
            except ClientDisconnect:  # the client went away mid-upload: nobody to answer
                log.info("client %s disconnected during its upload", request.client.host if request.client else "?")
                return _error(400, "upload interrupted")
            except _BodyTooLarge:
                return _error(413, f"upload too large: more than {max_upload_mb:g} MB")
            except MultiPartException as exc:
                return _error(400, f"malformed upload: {exc.message}")
            try:
                upload = form.get("file")
                if upload is None or isinstance(upload, str):
                    return _error(400, "no file uploaded: send the photo as the multipart field 'file'")
                name = Path(upload.filename or "upload").name
                data = await upload.read(limit + 1)
            finally:
                await form.close()
            if len(data) > limit:
                return _error(413, f"{name}: file too large (> {max_upload_mb:g} MB)")
            if not data:
                return _error(400, f"{name}: empty file (0 bytes)")
            with tempfile.TemporaryDirectory(prefix="drgrader-upload-") as tmp:
                path = Path(tmp) / "upload"
                path.write_bytes(data)
                del data
                status, body = await run_in_threadpool(
                    analyse_photo, model, path, name=name, explain=explain and can_explain, max_pixels=max_pixels
                )
            return JSONResponse(body, status_code=status)
        finally:
            app.state.slots.release()

    return app


def serve(bundle: str | Path, host: str = "127.0.0.1", port: int = 7860, **options) -> None:
    """``drgrader serve``: run the demo with uvicorn until interrupted."""
    import uvicorn

    app = create_app(bundle, **options)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: anyone who can reach this address can use the demo (no authentication)", host)
    print(f"drgrader demo: http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}/  ({DISCLAIMER})")
    uvicorn.run(app, host=host, port=port, log_level="info")

"""``drgrader serve``: a small web demo (FastAPI) around one bundle.

``GET /``             one self-contained HTML page (no external resources: works offline)
``GET /api/health``   {"status": "ok", model facts}
``POST /api/predict`` one patient's photos, multipart fields ``right`` and/or ``left`` (one
                      photo per eye; JPEG, PNG, TIFF, ..., DICOM), or ``file`` (one photo of
                      an eye of unknown side: the original field) -> ``patient``: the
                      per-patient ``decision`` (negative / refer / urgent / ungradable /
                      uncertain), its ``reason`` and ``uncertainty``, made as ``drgrader
                      predict`` makes it (both eyes through the bundle's paired-eye stage when
                      it has one); ``eyes``: per field, grade, probabilities, screening
                      decisions, gradability, uncertainty; a ``file`` upload also keeps that
                      photo's keys at the top level. ``?explain=1`` adds Grad-CAM overlays as
                      base64 PNGs (:mod:`.serve_patient`).
``GET /api/examples`` synthetic example photos (name, eye, drawn grade, url), each a small JPEG
                      at ``/api/examples/<name>``, rendered on first request (:mod:`.serve_examples`).

Bad uploads get a JSON ``{"error": ...}`` with a 4xx status (400 not an image / empty / too
small / a form field or query parameter the server does not read / two eye photos that cannot be
one patient's as their fields say, by name or DICOM header, 413 too large:
``max_upload_mb`` per photo, twice that in all) and the server carries on; with two photos, a
bad one fails the request and the message names its eye. At most ``max_pending`` requests are in
progress or waiting; beyond that the answer is 503 ``busy, try again`` instead of an unbounded
queue. Uploads are decoded from a ``TemporaryDirectory`` that is removed after each request.

Slow, stalled and vanished clients are normal. A grading slot is taken only once the whole
upload has arrived, so a client that is still sending (or has stopped) holds none; at most
``max_uploads`` uploads may be arriving at once. An upload that sends nothing for
``read_timeout`` seconds (or takes longer than ``UPLOAD_TIME_FACTOR`` times that in all) gets
408 and its connection is closed; a connection that has not sent a complete request head
within ``read_timeout`` is closed (uvicorn itself only times out idle keep-alive connections).
A client that disconnects mid-upload is one log line.
"""

from __future__ import annotations

import base64
import logging
import tempfile
import threading
from importlib import resources
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect

from drgrader.data.dicom import DicomHeader, header_or_none
from drgrader.data.identity_notes import TEMP_FOLDER_PREFIX
from drgrader.data.images import ImageReadError, drawing_png, read_image_size
from drgrader.data.same_picture import picture_print
from drgrader.grading import GRADE_NAMES
from drgrader.inference.bundle import Bundle, load_bundle
from drgrader.inference.predict import describe_prediction
from drgrader.inference.serve_examples import example_jpeg, example_list
from drgrader.inference.serve_patient import (
    FIELDS,
    FILE_FIELD,
    MAX_PHOTOS,
    eye_mix_up,
    field_error,
    one_picture,
    patient_answer,
    save_upload,
    unknown_fields,
    upload_name,
)
from drgrader.inference.serve_transport import (
    DEFAULT_READ_TIMEOUT,
    KEEP_ALIVE_TIMEOUT,
    MULTIPART_OVERHEAD,
    UPLOAD_TIME_FACTOR,
    BodyStalled,
    BodyTooLarge,
    guarded_receive,
    http_protocol,
)

log = logging.getLogger("drgrader")

DISCLAIMER = "This is a research demo, not a medical device; it must not be used for diagnosis."
DEFAULT_MAX_UPLOAD_MB = 20.0
DEFAULT_MAX_PIXELS = 50_000_000  # ~ 8700 x 5800: larger than any fundus camera
DEFAULT_MAX_PENDING = 4
# ?explain= takes what --set takes for a boolean: YAML 1.1 words (on, yes, y, off, ...) are refused.
EXPLAIN_VALUES = Literal["true", "false", "1", "0"]
def _error(status: int, message: str, *, close: bool = False) -> JSONResponse:
    """A JSON error; ``close`` ends the connection after it (the rest of the body is not read)."""
    return JSONResponse({"error": message}, status_code=status, headers={"connection": "close"} if close else None)


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def _can_explain(bundle: Bundle) -> bool:
    """Grad-CAM needs the [explain] extra and the weights of the (first) member."""
    from drgrader.extras import available

    return available("explain") and (bundle.leaves()[0].path / "model.safetensors").is_file()


def _png_b64(rgb, what: str) -> str:
    return base64.b64encode(drawing_png(rgb, what)).decode("ascii")


def _quality_warning(quality: dict) -> str | None:
    if quality["gradable"]:
        return None
    if quality["reason"] == "no fundus detected":
        return "No fundus detected: this does not look like a retinal photograph, so the grade below is meaningless."
    return f"This photo may not be gradable ({quality['reason']}): the grade below is unreliable."


def analyse_photo(bundle: Bundle, path: Path, *, name: str, explain: bool, max_pixels: int,
                  header: DicomHeader | None = None) -> tuple[int, dict, str]:
    """Decode, grade (and explain) one uploaded file (``header``: its DICOM header, already read)
    -> (HTTP status, JSON body, the photo's fingerprint: :func:`~drgrader.data.same_picture.picture_print`)."""
    try:
        height, width = read_image_size(path, max_pixels=max_pixels, header=header)
        # decoded exactly as the training cache and `drgrader predict` decode, for each model its own size
        prepared, rgb, q = bundle.read_photo(path, orig_size=(height, width), max_pixels=max_pixels, header=header)
    except ImageReadError as exc:
        status = 413 if exc.reason.startswith("image too large") else 400
        return status, {"error": f"{name}: {exc.reason}"}, ""
    if explain:
        from drgrader.inference.explain import explain_image

        result = explain_image(bundle, rgb, prepared=prepared, quality=q)
        prediction, quality = result["prediction"], result["quality"]
        images = {
            "input_png": _png_b64(result["preprocessed"], "the web demo's preprocessed input"),
            "overlay_png": None if result["overlay_grade"] is None else _png_b64(result["overlay_grade"], "the web demo's Grad-CAM"),
            "overlay_referable_png": None if result["overlay_referable"] is None else _png_b64(result["overlay_referable"], "the web demo's Grad-CAM"),
        }
    else:
        prediction = describe_prediction(bundle, bundle.score_prepared([prepared])[0])
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
    return 200, body, picture_print(rgb)


def analyse_patient(bundle: Bundle, photos: list[tuple[str, str, Path]], *, explain: bool, max_pixels: int) -> tuple[int, dict]:
    """Grade one patient's uploaded photos ``(field, file name, path)`` -> (HTTP status, JSON
    body): ``patient`` and ``eyes`` (:func:`~.serve_patient.patient_answer`); a lone ``file``
    upload keeps its photo's keys at the top level too. Photos that cannot be what their fields
    say (:func:`~.serve_patient.eye_mix_up` before they are read, :func:`~.serve_patient.one_picture`
    once they are: one picture as both eyes), or a photo that cannot be read, fail the request,
    the message naming the eye."""
    headers = {field: header_or_none(path) for field, _, path in photos}  # read once, for identity and grading
    mix_up = eye_mix_up(photos, headers)
    if mix_up:  # photos that cannot be one patient's eyes as their fields say are not graded as such
        return 400, {"error": mix_up}
    eyes, errors, prints = {}, [], []
    for field, name, path in photos:
        status, body, picture = analyse_photo(bundle, path, name=name, explain=explain, max_pixels=max_pixels, header=headers[field])
        if status == 200:
            eyes[field] = body
            prints.append(picture)
        else:
            errors.append((status, field_error(field, body["error"])))
    if errors:
        return errors[0][0], {"error": "; ".join(message for _, message in errors)}
    same = one_picture([(field, name) for field, name, _ in photos], prints)
    if same:  # one photo re-saved, mirrored or turned as the other eye: it would be its own fellow eye
        return 400, {"error": same}
    answer = patient_answer(bundle, eyes)
    return 200, {**answer, **answer["eyes"].get(FILE_FIELD, {}), "disclaimer": DISCLAIMER,
                 "model_warning": bundle.synthetic_warning()}


def create_app(
    bundle: str | Path | Bundle,
    *,
    backend: str = "auto",
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_pending: int = DEFAULT_MAX_PENDING,
    max_uploads: int | None = None,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
) -> FastAPI:
    """The demo app for one bundle (loaded once). ``app.state.slots`` is the semaphore that
    bounds requests in progress or waiting (``max_pending``), taken once an upload has fully
    arrived; ``app.state.uploads`` bounds the uploads arriving at once (``max_uploads``,
    default four per slot, at least 8), each given up after ``read_timeout`` s of silence."""
    model = bundle if isinstance(bundle, Bundle) else load_bundle(bundle, backend)
    model.warn_if_unfitted()
    model.warn_if_synthetic()
    can_explain = _can_explain(model)
    limit = int(max_upload_mb * 1024 * 1024)
    total = MAX_PHOTOS * (limit + MULTIPART_OVERHEAD)  # the whole request body
    page = resources.files("drgrader.inference").joinpath("static/index.html").read_text(encoding="utf-8")

    app = FastAPI(title="drgrader demo", description=DISCLAIMER, version="1")
    app.state.bundle = model
    app.state.slots = threading.BoundedSemaphore(max_pending)
    app.state.uploads = threading.BoundedSemaphore(max_uploads or max(8, 4 * max_pending))

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The app's one error shape ({"error": ...}), naming the parameter and the value it refused.
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        return _error(400, f"{where}={str(first.get('input'))[:40]!r}: {first.get('msg', 'not valid')}")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("error while serving %s", request.url.path)
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")

    def get_and_head(path: str, **options):
        """A GET route that answers HEAD too (uptime checks and proxies probe with HEAD): the HEAD
        route kept out of the API schema, where one route of both methods gave both one operation
        id (FastAPI's "Duplicate Operation ID" warning on /openapi.json)."""

        def register(handler):
            app.head(path, include_in_schema=False, **options)(handler)
            return app.get(path, **options)(handler)

        return register

    @get_and_head("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @get_and_head("/api/health")
    def health() -> dict:
        return {
            "status": "ok",
            "bundle": Path(model.path).name,
            # A built-in grader by its name, so that the page says which model answers.
            "builtin": (model.manifest.get("builtin") or {}).get("name"),
            "task": model.task,
            "backbone": model.manifest.get("backbone"),
            "input_size": model.input_size,
            "explain": can_explain,
            "max_upload_mb": max_upload_mb,
            "upload_fields": FIELDS,
            "disclaimer": DISCLAIMER,
            # A model trained on synthetic photos, said where the person at the browser reads (probe 36 AZ5).
            "model_warning": model.synthetic_warning(),
        }

    @get_and_head("/api/examples")
    def examples() -> list:
        return example_list()

    @get_and_head("/api/examples/{name}")
    def example(name: str) -> Response:
        data = example_jpeg(name)
        if data is None:
            return _error(404, f"no example photo called {name!r}")
        return Response(data, media_type="image/jpeg", headers={"cache-control": "max-age=3600"})

    async def receive_upload(request: Request):
        """The uploaded photos [(field, file name, bytes)], or the JSONResponse that answers instead."""
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > total:
            return _error(413, f"upload too large: {int(length) / 2**20:.1f} MB > limit {max_upload_mb:g} MB per photo")
        guarded = Request(request.scope, guarded_receive(request.receive, total,
                                                          read_timeout, read_timeout * UPLOAD_TIME_FACTOR))
        try:
            # More parts than the fields allow are read (the body's size is bounded all the same),
            # so that an unknown field is refused by its name, not counted.
            form = await guarded.form(max_files=len(FIELDS) + 3, max_fields=len(FIELDS) + 3)
        except ClientDisconnect:  # the client went away mid-upload: nobody to answer
            log.info("client %s disconnected during its upload", _client(request))
            return _error(400, "upload interrupted")
        except BodyStalled as exc:
            log.info("client %s stalled during its upload (%s): answered 408", _client(request), exc)
            return _error(408, f"upload timed out: {exc}", close=True)
        except BodyTooLarge:
            return _error(413, f"upload too large: more than {MAX_PHOTOS} x {max_upload_mb:g} MB")
        except (MultiPartException, HTTPException) as exc:
            return _error(400, f"malformed upload: {getattr(exc, 'message', None) or getattr(exc, 'detail', exc)}")
        uploads = []
        try:
            unknown = unknown_fields(form.keys())
            if unknown:  # a photo under a name the server does not read must not be answered without it
                return _error(400, unknown)
            for field in FIELDS:
                parts = form.getlist(field)
                if len(parts) > 1 or (parts and isinstance(parts[0], str)):
                    return _error(400, f"send one photo file as the field '{field}' ({len(parts)} parts sent)")
                if not parts:
                    continue
                name = upload_name(parts[0].filename or "upload")
                data = await parts[0].read(limit + 1)
                if len(data) > limit:
                    return _error(413, field_error(field, f"{name}: file too large (> {max_upload_mb:g} MB)"))
                if not data:
                    return _error(400, field_error(field, f"{name}: empty file (0 bytes)"))
                uploads.append((field, name, data))
        finally:
            await form.close()
        if not uploads:
            return _error(400, "no file uploaded: send the photos as the multipart fields 'right' and/or 'left' "
                               "(or one photo as 'file')")
        if len(uploads) > 1 and any(field == FILE_FIELD for field, _, _ in uploads):
            return _error(400, "send the photos as 'right' and/or 'left', or one photo as 'file', not both")
        return uploads

    @app.post("/api/predict")
    async def predict(request: Request, explain: EXPLAIN_VALUES = "false") -> JSONResponse:
        # A place to upload in (bounded, and given up on a silent client), then a grading slot
        # once the photo is here: a client that is not sending holds no slot.
        if not app.state.uploads.acquire(blocking=False):
            return _error(503, "busy, try again")
        try:
            received = await receive_upload(request)
        finally:
            app.state.uploads.release()
        if isinstance(received, JSONResponse):
            return received
        extra = sorted(set(request.query_params) - {"explain"})
        if extra:  # a misspelt ?explain must not be answered as if it were absent
            return _error(400, f"unknown query parameter {extra[0][:40]!r}: the only one is 'explain'")
        if len(request.query_params.getlist("explain")) > 1:  # which one would be meant?
            return _error(400, "explain is given more than once: give it once (true or false)")
        if not app.state.slots.acquire(blocking=False):
            return _error(503, "busy, try again")
        try:
            with tempfile.TemporaryDirectory(prefix=f"{TEMP_FOLDER_PREFIX}upload-") as tmp:
                photos = []
                for field, name, data in received:
                    photos.append((field, name, save_upload(Path(tmp), field, name, data)))
                del data, received
                status, body = await run_in_threadpool(
                    analyse_patient, model, photos, explain=explain in ("true", "1") and can_explain, max_pixels=max_pixels
                )
            return JSONResponse(body, status_code=status)
        finally:
            app.state.slots.release()

    return app


def serve(bundle: str | Path, host: str = "127.0.0.1", port: int = 7860, *,
          read_timeout: float = DEFAULT_READ_TIMEOUT, **options) -> None:
    """``drgrader serve``: run the demo with uvicorn until interrupted."""
    import uvicorn

    app = create_app(bundle, read_timeout=read_timeout, **options)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: anyone who can reach this address can use the demo (no authentication)", host)
    print(f"drgrader demo: http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}/  ({DISCLAIMER})")
    uvicorn.run(app, host=host, port=port, log_level="info", http=http_protocol(read_timeout),
                timeout_keep_alive=KEEP_ALIVE_TIMEOUT)

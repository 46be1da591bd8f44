"""The web demo's API for a patient: two eyes (fields ``right``/``left``), one eye, DICOM, a bad
photo among two, the size limits per photo and in all, and the example photos. The per-patient
decision is the one ``drgrader predict`` writes for the same photos of one patient."""

from __future__ import annotations

import tempfile

import cv2
import numpy as np
import pandas as pd
import pytest
from dicom_files import write_dicom
from fastapi.testclient import TestClient

from drgrader.grading import GRADE_NAMES
from drgrader.inference.bundle import load_bundle
from drgrader.inference.patient_decision import OUTCOMES
from drgrader.inference.serve import DISCLAIMER, create_app
from drgrader.inference.serve_examples import EXAMPLES
from drgrader.synth import make_fundus
from drgrader.workflows.predict import predict_command

LIMIT_MB = 0.25
# A paired-eye stage (issue 9) that averages the two eyes' expected grades: a fused grade that
# differs from either eye's, so the test sees whether the stage was used.
PAIRED_STAGE = {
    "model": {"inputs": ["expected_grade"], "coef": [0.5, 0.5, 0.0, 0.0], "intercept": 0.0,
              "single_coef": [1.0], "single_intercept": 0.0},
    "thresholds": {"cutpoints": [0.5, 1.5, 2.5, 3.5], "any_dr": 0.5, "referable": 1.5},
}


def jpeg(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


def fundus(grade: int, seed: int, eye: str = "right") -> np.ndarray:
    return make_fundus(grade, np.random.default_rng(seed), height=160, eye=eye)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict:
    """Two eyes of patient P1 (right grade 1, left grade 3) as files named as predict pairs them."""
    folder = tmp_path_factory.mktemp("patient")
    out = {}
    for eye, grade, seed in (("right", 1, 21), ("left", 3, 22)):
        path = folder / f"P1_{eye}.jpg"
        path.write_bytes(jpeg(fundus(grade, seed, eye)))
        out[eye] = path
    return out


@pytest.fixture(scope="module", params=["single-stage", "paired-eye stage"])
def bundle(request, tiny_bundle):
    model = load_bundle(tiny_bundle)
    if request.param == "paired-eye stage":
        model.manifest["paired_eyes"] = PAIRED_STAGE
    return model


@pytest.fixture(scope="module")
def client(tiny_bundle):
    with TestClient(create_app(tiny_bundle, max_upload_mb=LIMIT_MB, max_pixels=1_000_000, max_pending=2)) as c:
        yield c


def upload(path, name: str | None = None, kind: str = "image/jpeg") -> tuple:
    return (name or path.name, path.read_bytes(), kind)


def read_csv(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"patient_id": str, "image_id": str}, keep_default_na=False, na_values=[""])


def test_two_eyes_get_the_decision_predict_makes(bundle, photos, tmp_path):
    with TestClient(create_app(bundle)) as client:
        res = client.post("/api/predict", files={side: upload(photos[side]) for side in ("left", "right")})
    assert res.status_code == 200, res.text
    body = res.json()
    assert list(body)[:2] == ["patient", "eyes"] and "grade" not in body  # per patient; no single-eye keys
    assert list(body["eyes"]) == ["right", "left"] and body["disclaimer"] == DISCLAIMER

    out = predict_command(bundle, list(photos.values()), out=tmp_path / "p.csv")
    patient = read_csv(tmp_path / "p_patients.csv").set_index("patient_id").loc["P1"]
    decision = body["patient"]
    assert decision["decision"] in OUTCOMES and decision["decision"] == patient["decision"]
    assert decision["reason"] == patient["reason"]
    assert decision["uncertainty"] == pytest.approx(patient["uncertainty"], abs=1e-6)
    assert decision["eyes"] == ["right", "left"] and decision["deciding_eye"] in ("right", "left")
    assert decision["paired_eyes"] is bool(bundle.paired_eyes)

    rows = read_csv(out).set_index("eye")
    for side, eye in body["eyes"].items():
        row = rows.loc[side]
        assert eye["eye"] == side and eye["filename"] == f"P1_{side}.jpg"
        assert eye["grade"] == row["grade"] and eye["grade_name"] == GRADE_NAMES[eye["grade"]]
        assert eye["referable"] == bool(row["referable"]) and eye["any_dr"] == bool(row["any_dr"])
        assert eye["score_referable"] == pytest.approx(row["score_referable"], abs=1e-6)
        assert eye["uncertainty"] == pytest.approx(row["uncertainty"], abs=1e-6)
        assert len(eye["probabilities"]) == 5 and eye["gradable"] is bool(row["gradable"])
        if bundle.paired_eyes:  # each eye graded from both: the mean of the two expected grades here
            assert eye["paired"] is True
            assert eye["fused_grade"] == pytest.approx(rows["expected_grade"].mean(), abs=1e-6)
        else:
            assert "fused_grade" not in eye


def test_one_eye_is_a_patient_too(bundle, photos, tmp_path):
    with TestClient(create_app(bundle)) as client:
        body = client.post("/api/predict", files={"left": upload(photos["left"])}).json()
    assert list(body["eyes"]) == ["left"]
    out = predict_command(bundle, [photos["left"]], out=tmp_path / "p.csv")
    patient = read_csv(tmp_path / "p_patients.csv").iloc[0]
    assert (body["patient"]["decision"], body["patient"]["reason"]) == (patient["decision"], patient["reason"])
    assert "left eye" in body["patient"]["reason"]
    assert body["eyes"]["left"]["grade"] == read_csv(out).iloc[0]["grade"]
    if bundle.paired_eyes:
        assert body["eyes"]["left"]["paired"] is False and body["patient"]["paired_eyes"] is False


def test_file_field_keeps_the_single_photo_answer(client, photos):
    body = client.post("/api/predict", files={"file": upload(photos["right"], "eye.jpg")}).json()
    assert body["grade"] == body["eyes"]["file"]["grade"] and body["filename"] == "eye.jpg"
    assert body["eyes"]["file"]["eye"] is None and body["patient"]["decision"] in OUTCOMES
    assert "photo eye" in body["patient"]["reason"] or body["patient"]["decision"] == "ungradable"


def test_dicom_eyes_with_and_without_the_preamble(client, tiny_bundle, tmp_path):
    right = write_dicom(tmp_path / "P2_right.dcm", fundus(2, 31), patient_id="P2", laterality="R")
    left = write_dicom(tmp_path / "P2_left.dcm", fundus(0, 32, "left"), patient_id="P2", laterality="L")
    bare = tmp_path / "bare.dcm"  # no 128-byte preamble and no DICM marker: known by its name only
    bare.write_bytes(right.read_bytes()[132:])
    res = client.post("/api/predict", files={"right": upload(right, kind="application/dicom"),
                                             "left": upload(left, kind="application/dicom")})
    assert res.status_code == 200, res.text
    body = res.json()
    out = predict_command(tiny_bundle, [right, left], out=tmp_path / "p.csv")
    rows = read_csv(out).set_index("eye")
    patient = read_csv(tmp_path / "p_patients.csv").iloc[0]
    assert body["patient"]["decision"] == patient["decision"] and body["patient"]["reason"] == patient["reason"]
    for side in ("right", "left"):
        assert body["eyes"][side]["grade"] == rows.loc[side, "grade"]
        assert (body["eyes"][side]["height"], body["eyes"][side]["width"]) == (160, 240)

    res = client.post("/api/predict", files={"right": upload(bare, kind="application/dicom")})
    assert res.status_code == 200, res.text
    assert res.json()["eyes"]["right"]["score_referable"] == pytest.approx(body["eyes"]["right"]["score_referable"], abs=1e-6)


def test_a_bad_photo_among_two_fails_the_request_naming_its_eye(client, photos):
    good = upload(photos["left"])
    res = client.post("/api/predict", files={"left": good, "right": ("notes.txt", b"not a photo\n" * 20, "text/plain")})
    assert res.status_code == 400
    error = res.json()["error"]
    assert error.startswith("right eye: notes.txt:") and "not an image" in error and "left" not in error

    res = client.post("/api/predict", files={"left": ("empty.jpg", b"", "image/jpeg"), "right": upload(photos["right"])})
    assert res.status_code == 400 and res.json()["error"] == "left eye: empty.jpg: empty file (0 bytes)"

    res = client.post("/api/predict", files={"left": ("a.txt", b"x" * 300, "text/plain"), "right": ("b.txt", b"y" * 300, "text/plain")})
    assert res.status_code == 400 and "right eye: b.txt" in res.json()["error"] and "left eye: a.txt" in res.json()["error"]

    res = client.post("/api/predict", files={"file": good, "left": good})
    assert res.status_code == 400 and "not both" in res.json()["error"]

    res = client.post("/api/predict", files=[("left", good), ("left", good)])
    assert res.status_code == 400 and "one photo file as the field 'left'" in res.json()["error"]

    res = client.post("/api/predict", data={"left": "text, not a file"})
    assert res.status_code == 400 and "field 'left'" in res.json()["error"]

    assert client.post("/api/predict", files={"left": good}).status_code == 200  # still serving


def test_size_limits_per_photo_and_in_all(client, photos):
    """Two photos each under the limit pass though together they are over it; one over the limit
    is refused by name; a body over twice the limit is refused while it arrives."""
    rng = np.random.default_rng(5)
    noisy, other = (jpeg(rng.integers(0, 256, (470, 470, 3), dtype=np.uint8)) for _ in range(2))  # noise: barely compressible
    assert 0.6 * LIMIT_MB * 2**20 < min(len(noisy), len(other)) and max(len(noisy), len(other)) < LIMIT_MB * 2**20
    res = client.post("/api/predict", files={"left": ("l.jpg", noisy, "image/jpeg"), "right": ("r.jpg", other, "image/jpeg")})
    assert res.status_code == 200, res.text  # not fundus photos: graded, flagged ungradable
    assert res.json()["patient"]["decision"] == "ungradable"

    big = rng.integers(0, 256, int(LIMIT_MB * 2**20) + 1000, dtype=np.uint8).tobytes()
    res = client.post("/api/predict", files={"left": upload(photos["left"]), "right": ("huge.jpg", big, "image/jpeg")})
    assert res.status_code == 413 and res.json()["error"].startswith("right eye: huge.jpg: file too large")

    res = client.post("/api/predict", files={"left": ("a.jpg", big, "image/jpeg"), "right": ("b.jpg", big + big, "image/jpeg")})
    assert res.status_code == 413 and "upload too large" in res.json()["error"]


def test_two_eye_uploads_leave_no_temporary_files_and_respect_busy(client, photos, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    files = {side: upload(photos[side]) for side in ("left", "right")}
    assert client.post("/api/predict", params={"explain": 1}, files=files).status_code == 200
    assert client.post("/api/predict", files={"left": files["left"], "right": ("x.dcm", b"junk" * 100, "application/dicom")}).status_code == 400
    assert list(tmp_path.iterdir()) == []

    slots = client.app.state.slots
    taken = 0
    while slots.acquire(blocking=False):
        taken += 1
    try:
        res = client.post("/api/predict", files=files)
        assert res.status_code == 503 and res.json() == {"error": "busy, try again"}
    finally:
        for _ in range(taken):
            slots.release()


def test_explain_gives_each_eye_its_overlays(client, photos):
    body = client.post("/api/predict", params={"explain": 1}, files={s: upload(photos[s]) for s in ("left", "right")}).json()
    for side in ("left", "right"):
        assert body["eyes"][side]["overlay_png"] and body["eyes"][side]["input_png"]


def test_example_photos_are_small_cached_synthetic_jpegs(client):
    listed = client.get("/api/examples").json()
    assert [e["name"] for e in listed] == [e.name for e in EXAMPLES]
    assert {e["eye"] for e in listed} == {"left", "right"}
    first = client.get("/" + listed[0]["url"])
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    rgb = cv2.imdecode(np.frombuffer(first.content, np.uint8), cv2.IMREAD_COLOR)
    assert rgb.shape[0] == 256 and len(first.content) < 60_000
    assert client.get("/" + listed[0]["url"]).content == first.content  # rendered once, the same bytes
    assert client.head("/api/examples").status_code == 200
    missing = client.get("/api/examples/../../etc/passwd.jpg")
    assert missing.status_code == 404
    res = client.get("/api/examples/nope.jpg")
    assert res.status_code == 404 and "nope.jpg" in res.json()["error"]
    # An example grades like any upload.
    res = client.post("/api/predict", files={listed[0]["eye"]: (listed[0]["name"], first.content, "image/jpeg")})
    assert res.status_code == 200 and list(res.json()["eyes"]) == [listed[0]["eye"]]

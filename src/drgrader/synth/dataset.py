"""``make_dataset``: a synthetic data set in the Kaggle EyePACS layout, written in parallel,
reproducible from its seed, and reused when it already exists with the same settings."""

from __future__ import annotations

import json
import math
import multiprocessing
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from drgrader.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from drgrader.outputs import OutputError
from drgrader.progress import progress as progress_bar
from drgrader.synth.anatomy import EYES
from drgrader.synth.fundus import CAMERA_FRAMES, CAMERAS, make_fundus

GENERATOR_VERSION = 1  # bump when the images change, so old outputs are not reused
MARKER_NAME = ".drgrader-synth.json"


def made_by_synth(root: str | Path | None) -> bool:
    """Whether the data set folder ``root`` was written by ``drgrader synth`` (its marker file)."""
    return root is not None and (Path(root) / MARKER_NAME).is_file()
LABELS_NAME = "trainLabels.csv"
DEFAULT_GRADE_PROBS = (0.73, 0.07, 0.15, 0.025, 0.025)  # EyePACS-like class frequencies
SAME_GRADE_PROB = 0.7  # chance that a patient's second eye has the first eye's grade
JPEG_QUALITY = 90
IMAGE_NAME = re.compile(r"^\d+_(left|right)\.jpeg$")
# --------------------------------------------------------------------------- data set
@dataclass(frozen=True)
class _Task:
    path: str
    seed: int
    patient: int
    eye: str
    grade: int
    camera: str
    height: int


def _eye_rng(seed: int, patient: int, eye: str) -> np.random.Generator:
    # A 3-word entropy for every stream (tags 0 ids, 1 patient, 2/3 eyes) so none collide.
    return np.random.default_rng([seed, patient, 2 + EYES.index(eye)])


def _patient_ids(seed: int, patients: int) -> list[int]:
    """Increasing integer ids with small gaps, like Kaggle's (10, 13, 15, 16, ...)."""
    gaps = np.random.default_rng([seed, 0, 0]).integers(1, 4, size=patients)
    return (10 + np.cumsum(gaps) - gaps[0]).tolist()


def _patient_plan(seed: int, patient: int, probs: np.ndarray) -> tuple[dict[str, int], str]:
    """Grades of both eyes (correlated) and the camera of one patient."""
    rng = np.random.default_rng([seed, patient, 1])
    first = int(rng.choice(5, p=probs))
    second = first
    if rng.random() >= SAME_GRADE_PROB:
        second = int(np.clip(first + (1 if rng.random() < 0.5 else -1), 0, 4))
    first_eye = EYES[int(rng.integers(2))]
    grades = {first_eye: first, EYES[1 - EYES.index(first_eye)]: second}
    camera = sorted(CAMERAS)[int(rng.integers(len(CAMERAS)))]
    return grades, camera


def render_image_file(task: _Task) -> str:
    """Render one image of the data set and write it atomically as JPEG (worker entry point)."""
    aspect, clipped = CAMERA_FRAMES[task.camera]
    rgb = make_fundus(task.grade, _eye_rng(task.seed, task.patient, task.eye), height=task.height,
                      aspect=aspect, clipped=clipped, camera=CAMERAS[task.camera], eye=task.eye)
    ok, jpeg = cv2.imencode(".jpeg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {task.path}")
    atomic_write_bytes(task.path, jpeg.tobytes())
    return task.path


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core already


def _labels_text(settings: dict) -> str:
    """The trainLabels.csv that the synth run of ``settings`` writes."""
    probs = np.asarray(settings["grade_probs"], np.float64)
    rows = []
    for patient in _patient_ids(settings["seed"], settings["patients"]):
        grades, _ = _patient_plan(settings["seed"], patient, probs)
        rows += [f"{patient}_{eye},{grades[eye]}\n" for eye in EYES]
    return "image,level\n" + "".join(rows)


def _user_changes(out: Path, earlier: dict | None) -> str:
    """How the earlier output's trainLabels.csv differs from what synth wrote, in words ('' if not)."""
    if not earlier or earlier.get("version") != GENERATOR_VERSION:
        return ""  # not this generator's settings: refused as other settings, whatever the rows
    try:
        expected = _labels_text(earlier).splitlines()[1:]
        found = (out / LABELS_NAME).read_text().splitlines()[1:]
    except (OSError, UnicodeDecodeError, KeyError, TypeError, ValueError):
        return f"its {LABELS_NAME} is not the one synth wrote"
    added = [row for row in found if row not in set(expected)]
    removed = len(set(expected) - set(found))
    if not added and not removed:
        return ""
    parts = [f"{len(added)} row(s) not synth's ({', '.join(added[:3])})"] if added else []
    parts += [f"{removed} of synth's row(s) removed"] if removed else []
    return f"its {LABELS_NAME} was changed since synth wrote it: {'; '.join(parts)}"


def _describe(settings: dict) -> str:
    return f"{settings.get('patients')} patients, seed {settings.get('seed')}, {settings.get('height')} px"


def _check_replaceable(out: Path, earlier: dict | None, settings: dict) -> None:
    """Refuse to replace a finished earlier output whose labels the user changed or whose settings
    differ: runs may have learnt from it and rows may be the user's. An unfinished one (no labels
    yet) and a rerun that would write the very same files go on."""
    if not (out / LABELS_NAME).is_file():
        return
    changes = _user_changes(out, earlier)
    if earlier == settings and not changes:
        return
    images = sum(1 for f in (out / "images").glob("*.jpeg") if IMAGE_NAME.match(f.name)) if (out / "images").is_dir() else 0
    what = f"a synthetic data set of {_describe(earlier)}" if isinstance(earlier, dict) else f"a synth output with an unreadable {MARKER_NAME}"
    if earlier == settings:
        replaced = f"its {LABELS_NAME}"
    else:
        replaced = f"its {LABELS_NAME} and {images} image(s) with a data set of {_describe(settings)}"
    raise OutputError(f"--out {out} holds {what}{'; ' + changes if changes else ''}: this run would replace {replaced}; "
                      "rerun with --overwrite to replace it, or choose another --out")


def _claim_output(out: Path, settings: dict, overwrite: bool = False) -> bool:
    """Make ``out`` ready for a run; return True when existing images may be reused.

    Refuses a non-empty folder that is not an earlier synth output, and (unless ``overwrite``) a
    finished earlier output of other settings or with changed labels. An earlier output made
    with other settings loses its labels and images first, so files never mix.
    """
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"synth output {out} exists and is not a folder")
    marker = out / MARKER_NAME
    reuse = False
    if out.exists() and any(out.iterdir()):
        if not marker.is_file():
            raise FileExistsError(
                f"refusing to write synthetic data into {out}: the folder is not empty and has no "
                f"{MARKER_NAME}, so it is not an earlier 'drgrader synth' output; "
                "choose a new or empty folder"
            )
        try:
            earlier = json.loads(marker.read_text())
        except (OSError, ValueError):
            earlier = None
        earlier = earlier if isinstance(earlier, dict) else None
        if not overwrite:
            _check_replaceable(out, earlier, settings)
        reuse = earlier == settings
        # Labels go first, so an interrupted run never leaves labels without their images.
        (out / LABELS_NAME).unlink(missing_ok=True)
        images = out / "images"
        if images.is_dir():
            for f in images.iterdir():
                stale = not reuse and IMAGE_NAME.match(f.name)
                if stale or (f.name.startswith(".") and f.name.endswith(".tmp")):
                    f.unlink()
    (out / "images").mkdir(parents=True, exist_ok=True)
    atomic_write_json(marker, settings)
    return reuse


def make_dataset(
    out: str | Path,
    patients: int,
    *,
    seed: int = 0,
    height: int = 512,
    workers: int = 1,
    grade_probs: Sequence[float] | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic EyePACS-style data set and return the path of its trainLabels.csv.

    Layout: ``out/images/<patient>_<left|right>.jpeg`` (two eyes per patient, correlated
    grades) and ``out/trainLabels.csv`` with columns ``image,level``, written last.
    ``grade_probs`` are the per-patient grade probabilities (default EyePACS-like). The bytes
    depend only on (seed, patients, height, grade_probs), not on ``workers``. ``out`` must be
    new, empty or an earlier synth output; an earlier output with the same settings has its
    finished images reused. A finished earlier output of other settings, or whose labels were
    changed since, is replaced only with ``overwrite`` (else OutputError).
    """
    if patients < 1:
        raise ValueError(f"patients must be at least 1, got {patients}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if height < 64:
        raise ValueError(f"height must be at least 64 px, got {height}")
    probs = np.asarray(DEFAULT_GRADE_PROBS if grade_probs is None else grade_probs, np.float64)
    if probs.shape != (5,) or (probs < 0).any() or not math.isclose(probs.sum(), 1.0, abs_tol=1e-6):
        raise ValueError(f"grade_probs must be 5 non-negative numbers summing to 1, got {list(probs)}")
    probs = probs / probs.sum()

    out = Path(out)
    settings = {"generator": "drgrader.synth", "version": GENERATOR_VERSION, "seed": seed,
                "patients": patients, "height": height, "grade_probs": probs.tolist()}
    reuse = _claim_output(out, settings, overwrite)

    tasks: list[_Task] = []
    for patient in _patient_ids(seed, patients):
        grades, camera = _patient_plan(seed, patient, probs)
        for eye in EYES:
            path = out / "images" / f"{patient}_{eye}.jpeg"
            if not (reuse and path.is_file()):
                tasks.append(_Task(str(path), seed, patient, eye, grades[eye], camera, height))

    bar = progress_bar(total=len(tasks), desc="synth", unit="img", disable=not progress)
    if workers == 1 or len(tasks) < 2:
        for task in tasks:
            render_image_file(task)
            bar.update()
    else:
        # spawn, not fork: the caller may hold threads (PyTorch, OpenMP) that fork would break.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init) as pool:
            for _ in pool.map(render_image_file, tasks, chunksize=4):
                bar.update()
    bar.close()

    labels = out / LABELS_NAME
    atomic_write_text(labels, _labels_text(settings))
    return labels

"""Example photos for the web demo: synthetic fundus photographs (:mod:`drgrader.synth`, not real
patients) rendered on first request, small (256 px high JPEG, ~0.2 s each) and kept in memory.

Two example patients, both eyes each: one without retinopathy, one with referable disease.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

EXAMPLE_HEIGHT = 256


@dataclass(frozen=True)
class Example:
    name: str  # file name, also the URL's last part
    patient: str
    eye: str
    grade: int  # the grade it was drawn with (synthetic ground truth)
    seed: int


EXAMPLES = [
    Example("example-a_right.jpg", "A", "right", 0, 1501),
    Example("example-a_left.jpg", "A", "left", 0, 1502),
    Example("example-b_right.jpg", "B", "right", 2, 1503),
    Example("example-b_left.jpg", "B", "left", 3, 1504),
]
_BY_NAME = {e.name: e for e in EXAMPLES}
_RENDER = threading.Lock()  # one render at a time: a page load asks for all of them at once


def example_list(prefix: str = "api/examples/") -> list[dict]:
    """What the page lists: name, patient, eye, drawn grade and the URL of each example."""
    from drgrader.grading import GRADE_NAMES

    return [{"name": e.name, "patient": e.patient, "eye": e.eye, "grade": e.grade, "grade_name": GRADE_NAMES[e.grade],
             "url": prefix + e.name} for e in EXAMPLES]


@lru_cache(maxsize=len(EXAMPLES))
def _render(name: str) -> bytes:
    import cv2
    import numpy as np

    from drgrader.synth import make_fundus

    e = _BY_NAME[name]
    rgb = make_fundus(e.grade, np.random.default_rng(e.seed), height=EXAMPLE_HEIGHT, eye=e.eye)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError(f"could not encode the example {name}")
    return data.tobytes()


def example_jpeg(name: str) -> bytes | None:
    """The JPEG of the example called ``name``, or None for an unknown name."""
    if name not in _BY_NAME:
        return None
    with _RENDER:
        return _render(name)

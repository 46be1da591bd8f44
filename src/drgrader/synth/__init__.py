"""Synthetic colour fundus photographs with ICDR-graded diabetic retinopathy lesions.

Real fundus data cannot ship with drgrader, so demos and tests use images made here. They are
not medically accurate; they are made to exercise the real pipeline: a circular retina on a
black surround in frames of several aspect ratios (sometimes clipped top and bottom), uneven
illumination, an optic disc on the nasal side (mirrored between eyes), a darker macula, a
branching vessel tree, and lesions whose kind and number follow the ICDR grade:

* 1 mild: a few microaneurysms.
* 2 moderate: more microaneurysms, dot/blot/flame haemorrhages, hard exudates, cotton-wool spots.
* 3 severe NPDR: many haemorrhages in all four quadrants and venous beading.
* 4 proliferative: neovascularisation at the disc or elsewhere and/or a preretinal haemorrhage.

Lesion sizes scale with the fundus radius so that the grade stays visible after cropping the
fundus and shrinking it to 128 px (a microaneurysm is still about 2 px across there).

``make_dataset`` writes the Kaggle EyePACS layout (``images/<patient>_<eye>.jpeg`` and
``trainLabels.csv`` with columns ``image,level``).
"""


from drgrader.synth.dataset import (
    DEFAULT_GRADE_PROBS,
    GENERATOR_VERSION,
    IMAGE_NAME,
    LABELS_NAME,
    MARKER_NAME,
    made_by_synth,
    make_dataset,
)
from drgrader.synth.fundus import CAMERA_FRAMES, CAMERAS, DEFAULT_CAMERA, make_fundus

__all__ = ["CAMERAS", "CAMERA_FRAMES", "DEFAULT_CAMERA", "DEFAULT_GRADE_PROBS", "GENERATOR_VERSION", "IMAGE_NAME",
           "LABELS_NAME", "MARKER_NAME", "made_by_synth", "make_dataset", "make_fundus"]

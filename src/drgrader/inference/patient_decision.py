"""The per-patient decision: one screening outcome per patient from all of the patient's photos,
each with a one-line reason, the way certified screening systems answer (IDx-DR, EyeArt).

Outcomes (:data:`OUTCOMES`):

``negative``    no referable eye: rescreen in 12 months
``refer``       referable DR (grade >= 2) in a gradable eye
``urgent``      vision-threatening DR (grade 3-4) suspected: its own operating point
``ungradable``  no eye could be graded, or one could not and no other eye is referable:
                photograph again
``uncertain``   the referral call is too close to make automatically: a human grader decides

Rules, the first that applies (:func:`decide_patients`); an eye is *gradable* when one of its
photos was read, scored and passed the quality check, and each eye is judged by its worst
gradable photo (highest referable score):

1. no gradable eye -> ``ungradable``;
2. a gradable eye's urgent score >= the urgent threshold -> ``urgent`` (never sent to the human
   queue: a vision-threatening call goes to the eye clinic at once);
3. a gradable eye is referable -> ``refer``, or ``uncertain`` when the patient's uncertainty
   reaches the band's cut-off (an ungradable fellow eye does not matter: the patient is
   referred and the clinic examines both eyes);
4. an eye was photographed but is not gradable, and no eye is referable -> ``ungradable``: the
   eye nobody could see may hide disease, so "negative" would be a false reassurance (the NHS
   programme and EyeArt do the same);
5. otherwise ``negative``, or ``uncertain`` when the uncertainty reaches the cut-off.

A patient with one photo (one eye submitted) is decided from that eye alone; its reason says
so. The scores are the paired-eye stage's fused grade when the bundle has one (each eye already
informed by its fellow), else the model's own.

**Uncertainty** of an eye: how close its referable score lies to the referable threshold, as a
share of the room on that side: ``1 - |score - threshold| / room``, with ``room`` the distance
from the threshold to the end of the score's scale (0..1 for probabilities, 0..4 for grade
scores) on the score's side; 1 on the threshold, 0 at the end of the scale. The margin alone:
TTA views and ensemble members are averaged inside the scoring path and their spread could be
returned cheaply, but the band is fitted on validation or out-of-fold predictions, and those
come from single models (each out-of-fold eye from one fold model, which cannot disagree with
itself) scored before any paired-eye fusion, so a spread term at prediction time would have no
counterpart where the cut-off was fitted and would send more patients than the share asked
for. A *patient's* uncertainty is that of the eyes its decision stands on: a negative needs
every gradable eye negative, so it is the largest of theirs; a referral needs one referable
eye, so it is the smallest among the referable ones.

**The band**: the share of patients a programme is willing to send to humans (``refer_share``,
e.g. 10%). Fitted on validation or out-of-fold predictions as the uncertainty cut-off that
sends that share (``drgrader.evaluation.patient_decisions``), and stored in ``bundle.json``
(``patient_decision``) with the urgent threshold and the cut-offs of other shares (``band``),
so ``predict --refer-share`` can pick another share. A bundle without it (made before this
existed) gets no ``uncertain`` outcome, and its urgent threshold is the grade-3 cut-point on
the expected grade (2.5 without cut-points).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from drgrader.data.quality import COLOUR_REDUCED_COPY, COMPRESSED_COPY, SEVERAL_FUNDI
from drgrader.grading import NUM_GRADES, scores_are_the_grade

OUTCOMES = ["negative", "refer", "urgent", "uncertain", "ungradable"]
DECISION_COLUMNS = ["patient_id", "decision", "reason", "uncertainty", "deciding_image"]
DEFAULT_URGENT_GRADE = 2.5  # between grade 2 and grade 3 on the expected-grade scale
GRADE_SCALE = (0.0, float(NUM_GRADES - 1))
PROBABILITY_SCALE = (0.0, 1.0)
_SCORE_NAMES = {"score_referable": "referable score", "fused_grade": "fused grade", "expected_grade": "expected grade",
                "score_any": "any-DR score"}
_EYE_NAMES = {"right": "right eye", "left": "left eye"}


@dataclass(frozen=True)
class DecisionPoints:
    """Where the per-patient decision draws its lines, resolved for one predictions table."""

    referable_score: str  # column the referable threshold applies to
    referable_threshold: float
    scale: tuple[float, float]  # range of the referable score, for the uncertainty
    urgent_score: str | None  # column of the urgent threshold (a continuous grade), None: no urgent outcome
    urgent_threshold: float | None
    uncertainty_cutoff: float | None = None  # None: no ``uncertain`` outcome
    refer_share: float | None = None


def band_cutoff(band: list, share: float) -> float | None:
    """The uncertainty cut-off sending ``share`` of patients to humans, interpolated in a stored
    band (``[[share, cutoff], ...]``, shares increasing); None for share 0."""
    if share <= 0:
        return None
    shares = np.array([s for s, _ in band], dtype=float)
    cutoffs = np.array([c for _, c in band], dtype=float)
    if not shares.size or share > shares[-1] + 1e-9:
        top = shares[-1] if shares.size else 0
        raise ValueError(f"refer share {share:g} is beyond the fitted band (up to {top:g})")
    # Below the first stored share: between "nobody" (cut-off 1, the top of the scale) and it.
    return float(np.interp(share, np.r_[0.0, shares], np.r_[1.0, cutoffs]))


def decision_points(
    thresholds: dict | None, spec: dict | None, *, table: pd.DataFrame, fused: bool = False, refer_share: float | None = None
) -> DecisionPoints:
    """The operating points for ``table`` (one row per photo, with the score columns).

    ``thresholds``: those that made the eye decisions (the paired-eye stage's with ``fused``,
    whose ``fused_grade`` column is then the score); ``spec``: a bundle's ``patient_decision``
    (None: urgent at the grade-3 cut-point, no uncertain band); ``refer_share`` overrides the
    spec's share (its cut-off read from the stored band)."""
    thresholds = thresholds or {}
    cutpoints = thresholds.get("cutpoints")
    grade_score: str | None
    if fused:
        referable_score, grade_score = "fused_grade", "fused_grade"
        grade_scale = True
    else:
        referable_score, grade_score = "score_referable", "expected_grade"
        grade_scale = scores_are_the_grade(table)
    threshold = thresholds.get("referable")
    if not fused and _empty(table, "score_referable") and not _empty(table, "score_any"):
        # An any-DR screener (model.task=any_dr) has no referable score: it refers any DR, at its
        # own threshold (probe 34 AX8: every patient was "ungradable, photograph again").
        referable_score, threshold = "score_any", thresholds.get("any_dr")
    scale = GRADE_SCALE if grade_scale else PROBABILITY_SCALE
    if threshold is None:  # as grading.decide's fallback: grade >= 2, or 0.5 for probabilities
        threshold = (cutpoints[1] if cutpoints else 1.5) if grade_scale else 0.5
    spec = spec or {}
    urgent = spec.get("urgent_threshold")
    if urgent is None:
        urgent = cutpoints[2] if cutpoints else DEFAULT_URGENT_GRADE
    if grade_score not in table or table[grade_score].isna().all():
        grade_score, urgent = None, None  # a screening-only model has no grade: no urgent outcome
    if refer_share is None:
        cutoff, share = spec.get("uncertainty_cutoff"), spec.get("refer_share")
    elif not spec.get("band"):
        if refer_share > 0:
            raise ValueError(
                "this bundle has no fitted uncertainty band (patient_decision in bundle.json): it cannot send "
                "a share of patients to a human grader; retrain it or run drgrader cv with this drgrader"
            )
        cutoff, share = None, 0.0
    else:
        cutoff, share = band_cutoff(spec["band"], refer_share), refer_share
    return DecisionPoints(referable_score, float(threshold), scale, grade_score,
                          None if urgent is None else float(urgent), cutoff, share)


def _empty(table: pd.DataFrame, column: str) -> bool:
    return column not in table or bool(table[column].isna().all())


def bundle_decision_points(manifest: dict, table: pd.DataFrame, *, refer_share: float | None = None) -> DecisionPoints:
    """:func:`decision_points` of a bundle manifest for a predictions table as ``predict`` writes
    it (with ``fused_grade`` when the bundle's paired-eye stage decided the eyes)."""
    stage = manifest.get("paired_eyes")
    fused = bool(stage) and "fused_grade" in table
    thresholds = stage["thresholds"] if stage and fused else manifest.get("thresholds")
    return decision_points(thresholds, manifest.get("patient_decision"), table=table, fused=fused, refer_share=refer_share)


def usable_photos(photos: pd.DataFrame, points: DecisionPoints) -> np.ndarray:
    """Photos that were read, scored and passed the quality check."""
    usable = photos[points.referable_score].notna().to_numpy().copy()
    if "gradable" in photos:
        flags = photos["gradable"].map({True: True, False: False, "True": True, "False": False})
        usable &= flags.fillna(True).to_numpy(dtype=bool)
    if "error" in photos:
        usable &= (photos["error"].fillna("").astype(str) == "").to_numpy()
    return usable


def eye_uncertainty(photos: pd.DataFrame, points: DecisionPoints) -> np.ndarray:
    """Per photo: closeness of its referable score to the threshold, 1 on it, 0 at the end of the
    scale (NaN for a photo that is not gradable). Each side is at least an eighth of the scale wide
    (half a grade; 0.125 of a probability): a threshold fitted near or beyond an end of the scale (a
    weak model's, at 0.01 or below 0, where a regression head's scores still reach) left that side
    no room, every score there a certain decision however near (probe 47 CK1, probe 48 CL1)."""
    score = photos[points.referable_score].to_numpy(dtype=float)
    lo, hi = points.scale
    t = points.referable_threshold
    least = (hi - lo) / 8
    room = np.where(score >= t, max(hi - t, least), max(t - lo, least))
    with np.errstate(invalid="ignore", divide="ignore"):
        closeness = 1.0 - np.clip(np.abs(score - t) / np.maximum(room, 1e-9), 0.0, 1.0)
    return np.where(usable_photos(photos, points), closeness, np.nan)


def _text(photos: pd.DataFrame, column: str, default: str = "") -> np.ndarray:
    """A text column as strings ('' for missing), or ``default`` everywhere when absent."""
    if column not in photos:
        return np.full(len(photos), default, dtype=object)
    return photos[column].astype(object).where(photos[column].notna(), "").astype(str).to_numpy()


@dataclass(frozen=True)
class _Photos:
    """The columns the rules read, as arrays (one pandas pass, not one per patient)."""

    eye_name: np.ndarray
    image: np.ndarray
    why_not: np.ndarray  # why a photo is not gradable
    usable: np.ndarray
    score: np.ndarray
    urgent: np.ndarray
    uncertainty: np.ndarray

    @classmethod
    def of(cls, photos: pd.DataFrame, points: DecisionPoints) -> "_Photos":
        eye = np.char.lower(_text(photos, "eye").astype(str))
        image = _text(photos, "image_id")
        error, quality = _text(photos, "error"), _text(photos, "quality_reason")
        # np.char.add, not "text" + array: numpy 1.x has no string ufuncs (the core floor is 1.24.4).
        why = np.where(error != "", np.char.add("unreadable, ", error.astype(str)),
                       np.where(quality != "", np.char.add("ungradable, ", quality.astype(str)), "ungradable"))
        names = np.array([_EYE_NAMES.get(e) or f"photo {i}" for e, i in zip(eye, image)], dtype=object)
        urgent = photos[points.urgent_score].to_numpy(dtype=float) if points.urgent_score else np.full(len(photos), np.nan)
        return cls(names, image, why, usable_photos(photos, points), photos[points.referable_score].to_numpy(dtype=float),
                   urgent, eye_uncertainty(photos, points))


def _eyes(rows: np.ndarray, photos: _Photos) -> tuple[list[dict], list[str]]:
    """The patient's gradable eyes (the worst photo of each: highest referable score) and the
    reasons of its eyes that are not gradable; ``rows`` are the patient's photo positions."""
    gradable, unseen = [], []
    for name in dict.fromkeys(photos.eye_name[rows]):  # eyes in photo order; unknown ones by photo
        own = rows[photos.eye_name[rows] == name]
        usable = own[photos.usable[own]]
        if not usable.size:
            unseen.append(f"{name} {photos.why_not[own[0]]}")
            continue
        worst = usable[np.argmax(photos.score[usable])]
        urgent = photos.urgent[usable]
        gradable.append({"name": name, "image": photos.image[worst], "score": float(photos.score[worst]),
                         "uncertainty": float(photos.uncertainty[worst]),
                         "urgent": float(np.nanmax(urgent)) if not np.isnan(urgent).all() else np.nan})
    return sorted(gradable, key=lambda e: e["name"]), sorted(unseen)


def _again(unseen: list[str]) -> str:
    """What to do about the eyes not seen: a photo that is not there (a typo in a list, a moved
    file) is looked for, and a compressed or colour-reduced copy (an e-mail copy, a 256-colour
    export) replaced by its original, not retaken from the patient."""
    missing = sum(reason.endswith("unreadable, file not found") for reason in unseen)
    kinds = [kind for kind in (COMPRESSED_COPY, COLOUR_REDUCED_COPY) if any(f"ungradable, {kind}: " in r for r in unseen)]
    copies = sum(any(f"ungradable, {kind}: " in reason for kind in kinds) for reason in unseen)
    montages = sum(f"ungradable, {SEVERAL_FUNDI} " in reason for reason in unseen)  # both eyes in one picture
    advice = (["find the missing photo (file not found)"] if missing else []) + \
             ([f"ask for the original photo ({' or '.join(kinds)})"] if copies else []) + \
             ([f"grade each eye's own photo ({SEVERAL_FUNDI})"] if montages else [])
    if missing + copies + montages < len(unseen):
        advice.append("photograph again")
    return " or ".join(advice)


def _decide_one(gradable: list[dict], unseen: list[str], points: DecisionPoints, only: str) -> tuple:
    """(decision, reason, uncertainty, deciding image) of one patient, by the module's rules."""
    if not gradable:
        return "ungradable", f"no gradable photo ({'; '.join(unseen)}): {_again(unseen)}", np.nan, ""
    t, name = points.referable_threshold, _SCORE_NAMES.get(points.referable_score, points.referable_score)
    also = f"; {', '.join(unseen)}" if unseen else ""  # an eye not seen is named whatever the other decides (probe 57 BU2)
    if points.urgent_threshold is not None:
        urgent = [e for e in gradable if e["urgent"] >= points.urgent_threshold]
        if urgent:
            e = max(urgent, key=lambda e: e["urgent"])
            grade_name = _SCORE_NAMES.get(str(points.urgent_score), str(points.urgent_score))
            referable = [x["uncertainty"] for x in gradable if x["score"] >= t]
            u = min(referable) if referable else max(x["uncertainty"] for x in gradable)
            return ("urgent", f"{e['name']} vision-threatening: {grade_name} {e['urgent']:.2f} >= "
                    f"{points.urgent_threshold:.2f}; refer urgently{also}", u, e["image"])
    cutoff = points.uncertainty_cutoff
    referable = [e for e in gradable if e["score"] >= t]
    if referable:
        e = min(referable, key=lambda e: e["uncertainty"])
        if cutoff is not None and e["uncertainty"] >= cutoff:
            return ("uncertain", f"{e['name']} {name} {e['score']:.2f} is close to its threshold {t:.2f} (uncertainty "
                    f"{e['uncertainty']:.2f} >= {cutoff:.2f}): a human grader decides{also}", e["uncertainty"], e["image"])
        return "refer", f"{e['name']} {name} {e['score']:.2f} >= {t:.2f}: refer{also}", e["uncertainty"], e["image"]
    e = max(gradable, key=lambda e: e["uncertainty"])
    scores = ", ".join(f"{x['name']} {x['score']:.2f}" for x in sorted(gradable, key=lambda x: -x["score"]))
    if unseen:
        return ("ungradable", f"{', '.join(unseen)}; {scores} < {t:.2f} ({name}): {_again(unseen)}",
                e["uncertainty"], e["image"])
    if cutoff is not None and e["uncertainty"] >= cutoff:
        return ("uncertain", f"{e['name']} {name} {e['score']:.2f} is close to its threshold {t:.2f} (uncertainty "
                f"{e['uncertainty']:.2f} >= {cutoff:.2f}): a human grader decides", e["uncertainty"], e["image"])
    return "negative", f"no referable eye: {scores} < {t:.2f} ({name}){only}; rescreen in 12 months", e["uncertainty"], e["image"]


def _one_eye_only(photos: pd.DataFrame, rows_of: np.ndarray) -> str:
    """What a negative reason adds when the patient's photos show one eye only: ``, the only photo``,
    or ``, no photo of the right eye`` for several of the left (probe 35 AY11: said nothing)."""
    if len(rows_of) == 1:
        return ", the only photo"
    eyes = set(_text(photos, "eye")[rows_of])
    if len(eyes) == 1 and eyes <= {"left", "right"}:
        return f", no photo of the {'right' if eyes == {'left'} else 'left'} eye"
    return ""


def decide_patients(photos: pd.DataFrame, points: DecisionPoints) -> pd.DataFrame:
    """One row per patient (``DECISION_COLUMNS``) from a table of photos (``patient_id``, and
    ``eye``, ``image_id``, ``gradable``, ``error``, ``quality_reason`` when known, plus the score
    columns of ``points``); photos without a patient id are left out."""
    photos = photos.reset_index(drop=True)
    if points.urgent_score is not None and points.urgent_score not in photos:
        raise ValueError(f"the photos lack the {points.urgent_score!r} column")
    arrays = _Photos.of(photos, points)
    patient = _text(photos, "patient_id")
    known = np.flatnonzero(patient != "")
    order = known[np.argsort(patient[known], kind="stable")]
    ids, starts = np.unique(patient[order], return_index=True)
    rows = []
    for pid, rows_of in zip(ids, np.split(order, starts[1:])):
        gradable, unseen = _eyes(rows_of, arrays)
        rows.append((pid, *_decide_one(gradable, unseen, points, _one_eye_only(photos, rows_of))))
    return pd.DataFrame(rows, columns=DECISION_COLUMNS)

"""The report's document model and the words and number formats its sections share.

A report is a list of :class:`Section` made of simple blocks (paragraphs, notes, alerts,
tables, figures, a thumbnail gallery, code), built once by the section builders and rendered
twice by :mod:`drgrader.reporting.render`, to HTML and to Markdown. The blocks hold text and
figure names only, so a builder never knows which of the two it is writing for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

SCREEN_LABELS = {"any_dr": "Any DR (grade ≥ 1)", "referable": "Referable DR (grade ≥ 2, moderate or worse)"}
SCREEN_SHORT = {"any_dr": "any-DR", "referable": "referable"}
POINT_LABELS = {
    "chosen": "chosen threshold (fitted on validation)",
    "youden": "Youden point (max sensitivity + specificity)",
    "high_sensitivity": "high-sensitivity point (≥ 90%)",
    "high_specificity": "high-specificity point (≥ 90%)",
}
# Headline keys (results.evaluate_table's "headline") -> (label, percent?).
HEADLINE_LABELS = {
    "kappa": ("quadratic weighted kappa", False),
    "grade_accuracy": ("exact-grade accuracy", True),
    "any_dr_auc": ("any-DR AUC", False),
    "any_dr_sensitivity": ("any-DR sensitivity", True),
    "any_dr_specificity": ("any-DR specificity", True),
    "any_dr_accuracy": ("any-DR accuracy", True),
    "referable_auc": ("referable AUC", False),
    "referable_sensitivity": ("referable sensitivity", True),
    "referable_specificity": ("referable specificity", True),
    "referable_accuracy": ("referable accuracy", True),
    "any_dr_sensitivity_from_grades": ("any-DR sensitivity from predicted grades", True),
    "any_dr_specificity_from_grades": ("any-DR specificity from predicted grades", True),
    "referable_sensitivity_from_grades": ("referable sensitivity from predicted grades", True),
    "referable_specificity_from_grades": ("referable specificity from predicted grades", True),
}
# Side of a gallery thumbnail; one twice as wide holds the photo and its Grad-CAM overlay.
THUMBNAIL_PX = 224


# =========================================================================== blocks
@dataclass
class Para:
    """A paragraph; ``**text**`` is bold, ```text``` is code."""

    text: str


@dataclass
class Note:
    """A remark in grey, e.g. why a section is left out."""

    text: str


@dataclass
class Alert:
    """A coloured box: level is ``warning``, ``ok`` or ``info``."""

    level: str
    title: str
    items: list[str] = field(default_factory=list)


@dataclass
class Table:
    """Cells are strings or (text, css class) with class ``bad`` / ``good``. ``align`` has
    one letter per column (l/r)."""

    header: list[str]
    rows: list[list]
    align: str = ""
    caption: str = ""


@dataclass
class Fig:
    """A figure stored as ``figures/<name>``."""

    name: str
    alt: str
    caption: str = ""


@dataclass
class Gallery:
    """Thumbnails (``figures/<name>``) with captions (lines of text)."""

    items: list[tuple[str, list[str]]]


@dataclass
class Code:
    """Preformatted text, collapsible when ``summary`` is given."""

    text: str
    summary: str = ""
    language: str = ""


@dataclass
class Section:
    id: str
    title: str
    blocks: list


# ======================================================================= formatting
def missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt_num(x, digits: int = 3) -> str:
    return "n/a" if missing(x) else f"{x:.{digits}f}"


def fmt_spread(figure: dict, folds) -> str:
    """A per-fold figure's mean and sd (cv's ``per_fold.summary``), and how many folds had it when
    not all: ``0.812 ± 0.031``, ``0.500 (1 of 5 folds)``, ``0.250 ± 0.354 (2 of 5 folds)``."""
    n = figure.get("n")
    text = fmt_num(figure["mean"]) + (f" ± {fmt_num(figure['sd'])}" if figure.get("sd") is not None else "")
    return text + (f" ({n} of {folds} folds)" if n is not None and folds and n < int(folds) else "")


def fmt_pct(x, digits: int = 1) -> str:
    return "n/a" if missing(x) else f"{100 * x:.{digits}f}%"


def fmt_ci(ci, percent: bool = False) -> str:
    """``[lo, hi]`` as ``0.612–0.744`` (or percentages); an en dash alone when absent."""
    if not ci or any(missing(v) for v in ci):
        return "–"
    if percent:
        return f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}%"
    return f"{ci[0]:.3f}–{ci[1]:.3f}"


def fmt(x, percent: bool) -> str:
    return fmt_pct(x) if percent else fmt_num(x)


def threshold_text(x) -> str:
    return "n/a" if missing(x) else f"{x:.3g}"


def below_bar(value, bar: float):
    """A table cell flagged ``bad`` (with a text mark, not colour alone) when value <= bar."""
    if missing(value):
        return "n/a"
    if value <= bar:
        return (f"{fmt_pct(value)} ✗", "bad")
    return (f"{fmt_pct(value)} ✓", "good")


def duration(seconds) -> str:
    if missing(seconds):
        return "an unknown time"
    minutes = seconds / 60
    return f"{seconds:.0f} s" if minutes < 1 else f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.1f} h"

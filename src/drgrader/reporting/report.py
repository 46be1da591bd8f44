"""The run report a clinician can read: ``report.html`` (self-contained) and ``report.md``.

The report is built once as a list of sections made of simple blocks (paragraphs, tables,
figures, ...) and rendered twice: to HTML (figures embedded as base64 PNG data URIs, inline CSS,
no external resources) and to Markdown (figures referenced in ``figures/``). Every section
works from what the run folder holds: binary-task runs have no grade section, evaluation-only
folders have no training log or config; missing parts become a short note.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from drgrader.config import ExperimentConfig
from drgrader.io import atomic_write_bytes, atomic_write_text
from drgrader.reporting.document import SCREEN_SHORT, Note, Section
from drgrader.reporting.gallery import gallery_section
from drgrader.reporting.render import render_html, render_markdown
from drgrader.reporting.run_data import RunData, evaluated_on, load_run
from drgrader.reporting.sections_decisions import decisions_section
from drgrader.reporting.sections_figures import calibration_section, confusion_section, roc_section, training_section
from drgrader.reporting.sections_summary import (
    folds_section,
    gradability_section,
    headline_section,
    paired_eyes_section,
    summary_section,
    tta_section,
)
from drgrader.reporting.sections_tables import (
    config_section,
    data_section,
    members_section,
    patient_section,
    per_grade_section,
    reproduce_section,
)

log = logging.getLogger("drgrader")


def _date(created: str | None) -> str:
    if not created:
        return "unknown date"
    try:
        return datetime.fromisoformat(created).strftime("%Y-%m-%d %H:%M %Z").strip()
    except ValueError:
        return created


def build_sections(run: RunData, figures: dict[str, bytes]) -> list[Section]:
    """Every section in report order; a section that fails becomes a note (and a log
    warning) rather than losing the whole report at the end of a long run."""
    builders = [
        lambda: summary_section(run),
        lambda: headline_section(run),
        lambda: tta_section(run),
        lambda: paired_eyes_section(run),
        lambda: folds_section(run),
        lambda: training_section(run, figures),
        lambda: confusion_section(run, figures),
        lambda: roc_section(run, figures),
        lambda: calibration_section(run, figures),
        lambda: per_grade_section(run),
        lambda: patient_section(run),
        lambda: decisions_section(run, figures),
        lambda: gradability_section(run),
        lambda: gallery_section(run, figures),
        lambda: data_section(run),
        lambda: members_section(run),
        lambda: config_section(run),
        lambda: reproduce_section(run),
    ]
    names = ["summary", "headline", "tta", "paired-eyes", "folds", "training", "confusion", "roc", "calibration", "per-grade",
             "patients", "decisions", "gradability", "gallery", "data", "members", "config", "reproduce"]
    sections = []
    for name, build in zip(names, builders):
        try:
            section = build()
        except Exception as exc:  # noqa: BLE001 - see docstring
            # one line (the traceback only with --verbose): the report still gets written
            log.warning("report: section %s could not be rendered: %s: %s", name, type(exc).__name__, exc)
            log.debug("report: section %s failed", name, exc_info=True)
            section = Section(name, name.capitalize(), [Note(f"This section could not be rendered: {exc!r}")])
        if section is not None:
            sections.append(section)
    return sections


def write_report(run_dir: Path, config: ExperimentConfig | None = None) -> Path:
    """Write ``report.html``, ``report.md`` and ``figures/*.png`` for a run or evaluation
    folder; returns the HTML path. ``config`` is used when the folder has no config.yaml
    (external evaluations); otherwise config.yaml is read."""
    run_dir = Path(run_dir)
    run = load_run(run_dir, config)
    figures: dict[str, bytes] = {}
    sections = build_sections(run, figures)

    figure_dir = run_dir / "figures"
    figure_dir.mkdir(parents=True, exist_ok=True)
    for stale in figure_dir.glob("error_*.png"):  # an earlier report's gallery may have had more
        stale.unlink()
    for name, data in figures.items():
        atomic_write_bytes(figure_dir / name, data)

    name = run.metrics.get("run") or run_dir.name
    title = f"DR grader report: {name}"
    evaluated, _ = evaluated_on(run)
    task = "5-grade" if run.test.get("grade") else ", ".join(SCREEN_SHORT[s] for s in run.screens()) or "unknown"
    meta = (f"Created {_date(run.metrics.get('created'))} · evaluated on the **{evaluated}** · "
            f"model output: {task} · folder {run_dir}")
    atomic_write_text(run_dir / "report.md", render_markdown(title, meta, sections))
    html_path = run_dir / "report.html"
    atomic_write_text(html_path, render_html(title, meta, sections, figures))
    return html_path

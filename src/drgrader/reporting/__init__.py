"""The run report: ``report.html``, ``report.md`` and ``figures/`` written into a run or
evaluation folder.

- ``run_data.py``: what the report reads from the folder (``RunData``, ``load_run``).
- ``document.py``: the blocks a report is made of and the number formats its sections share.
- ``sections_summary.py``, ``sections_figures.py``, ``sections_tables.py``, ``gallery.py``:
  the section builders; ``plots.py`` draws their figures.
- ``render.py`` (with ``report.css``): the HTML and Markdown renderings.
- ``report.py``: ``build_sections`` in report order and ``write_report``.
"""

from drgrader.reporting.report import build_sections, write_report

__all__ = ["build_sections", "write_report"]

"""``drgrader models``: the built-in graders, one line each, or one grader's model card."""

from __future__ import annotations

from drgrader.inference.builtin import DEFAULT_GRADER, builtin_graders, resolve_bundle
from drgrader.inference.bundle_spec import read_manifest


def describe_models(name: str | None = None) -> str:
    """With ``name``: that built-in grader's MODEL_CARD.md. Without: a line per built-in grader
    (name, size on disk, the summary its builder wrote: backbone, figures, training data)."""
    if name:
        return (resolve_bundle(name) / "MODEL_CARD.md").read_text(encoding="utf-8")
    graders = builtin_graders()
    if not graders:
        return "no built-in grader in this installation\n"
    lines = []
    for grader, folder in graders.items():
        summary = read_manifest(folder).get("builtin", {}).get("summary", "")
        megabytes = sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6
        default = " (default)" if grader == DEFAULT_GRADER else ""
        lines.append(f"{grader}{default}  {megabytes:.0f} MB  {summary}".rstrip())
    lines.append("`drgrader models NAME` prints a grader's model card; predict, serve and explain take --bundle NAME")
    return "\n".join(lines) + "\n"

"""``drgrader models``: the built-in graders, one line each, or one grader's model card."""

from __future__ import annotations

from drgrader.inference.builtin import DEFAULT_GRADER, builtin_graders, resolve_bundle
from drgrader.inference.bundle_spec import MANIFEST, BundleError, read_manifest


def describe_models(name: str | None = None) -> str:
    """With ``name``: that built-in grader's MODEL_CARD.md. Without: a line per built-in grader
    (name, size on disk, the summary its builder wrote: backbone, figures, training data)."""
    if name is not None:
        folder = resolve_bundle(name)
        if (folder / MANIFEST).is_file():  # a card is only as good as its bundle: one predict refuses is refused here
            from drgrader.inference.bundle import check_recorded_files
            from drgrader.inference.ensemble_members import single_models

            # bundle.json checked, an ensemble's members against what it was made from, each model's files
            for leaf, manifest in single_models(folder):
                check_recorded_files(leaf, manifest)
        card = folder / "MODEL_CARD.md"
        if not card.is_file():  # a bundle folder given by path may have none; any other folder is no grader
            what = "a bundle without a MODEL_CARD.md" if (folder / MANIFEST).is_file() else "not a bundle folder"
            raise BundleError(f"{name}: {what}, and not a built-in grader (built-in: {', '.join(builtin_graders()) or 'none'})")
        return card.read_text(encoding="utf-8")
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

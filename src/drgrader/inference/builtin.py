"""The graders that ship inside drgrader, found by name (as timm finds its pretrained weights).

Each is a bundle folder in the package, ``drgrader/graders/<name>/``: ``bundle.json``, the ONNX
graph that grades (ONNX Runtime, no PyTorch needed), the weights in half precision for Grad-CAM
(the [explain] extra), and ``MODEL_CARD.md`` with its cross-fitted and external figures.
``benchmarks/build_builtin_grader.py`` writes one from a trained bundle; the README says how.
"""

from __future__ import annotations

import logging
from importlib.resources import files
from pathlib import Path

from drgrader.inference.bundle_spec import MANIFEST, BundleError

__all__ = ["DEFAULT_GRADER", "builtin_graders", "resolve_bundle"]

log = logging.getLogger("drgrader")

DEFAULT_GRADER = "eyepacs-lite2-256"


def builtin_graders() -> dict[str, Path]:
    """Name -> bundle folder of every grader in this installation, sorted by name."""
    root = Path(str(files("drgrader") / "graders"))
    if not root.is_dir():
        return {}
    return {d.name: d for d in sorted(root.iterdir()) if (d / MANIFEST).is_file()}


def resolve_bundle(bundle: str | Path | None) -> Path:
    """The bundle folder meant by ``bundle``: a path (folder or its ``bundle.json``), the name of
    a built-in grader, or None for the default built-in grader. The one lookup of a grader by name
    (predict, explain, serve, evaluate, models, ``load_grader``). A name that is also a folder here
    is refused (``./NAME`` as a string, or either folder's full path, says which); the built-in
    grader used is logged, so a user always sees which model answered."""
    graders = builtin_graders()
    if bundle is not None and not str(bundle).strip():  # '' as a path is '.', the current folder
        raise BundleError("an empty grader name; give a bundle folder or one of the names `drgrader models` lists")
    if bundle is not None and str(bundle) in graders and Path(bundle).exists() \
            and Path(bundle).resolve() != graders[str(bundle)].resolve():
        # Path-first or name-first, one of the two models would answer without a word (probe 29).
        # Full paths in the advice: `./NAME` would reach the same check again once made a Path.
        raise BundleError(f"{bundle} is both a built-in grader and a folder here: give {Path(bundle).resolve()} for the "
                          f"folder, or {graders[str(bundle)]} for the built-in grader (or rename the folder)")
    if bundle is not None and (Path(bundle).exists() or str(bundle) not in graders):
        path = Path(bundle)
        if not path.exists():
            names = ", ".join(graders) or "none in this installation"
            raise BundleError(f"{bundle}: no such bundle folder, and not a built-in grader (built-in: {names})")
        folder = path.parent if path.is_file() else path
    else:
        name = DEFAULT_GRADER if bundle is None else str(bundle)
        if name not in graders:
            raise BundleError(f"no built-in grader {name!r} in this installation; give a bundle folder (drgrader models lists them)")
        folder = graders[name]
    # A built-in grader given by its folder (as the message above advises) is said like one given by name.
    builtin = next((n for n, d in graders.items() if d.resolve() == folder.resolve()), None)
    if builtin is not None:
        log.info("grader: built-in %s (drgrader models %s shows its model card)", builtin, builtin)
    return folder

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
    a built-in grader, or None for the default built-in grader. A path wins over a name; the
    built-in grader used is logged, so a user always sees which model answered."""
    graders = builtin_graders()
    if bundle is not None and (Path(bundle).exists() or str(bundle) not in graders):
        path = Path(bundle)
        if not path.exists():
            names = ", ".join(graders) or "none in this installation"
            raise BundleError(f"{bundle}: no such bundle folder, and not a built-in grader (built-in: {names})")
        return path.parent if path.is_file() else path
    name = DEFAULT_GRADER if bundle is None else str(bundle)
    if name not in graders:
        raise BundleError(f"no built-in grader {name!r} in this installation; give a bundle folder (drgrader models lists them)")
    log.info("grader: built-in %s (drgrader models %s shows its model card)", name, name)
    return graders[name]

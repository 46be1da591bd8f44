"""drgrader: grade diabetic retinopathy from colour fundus photographs.

The Python API (:mod:`drgrader.api`): ``load_grader``, ``grade``, ``explain``, ``train``,
``evaluate``. They are imported on first use, so ``import drgrader`` (and the command line) stays
quick."""

__version__ = "0.1.0"

__all__ = ["load_grader", "grade", "explain", "train", "evaluate", "__version__"]


def __getattr__(name: str):
    if name in __all__:
        import importlib

        # Loaded by name on first use: every module imports the package (for __version__), and
        # a static import of the API here would make it depend on all of them.
        return getattr(importlib.import_module(f"{__name__}.api"), name)
    raise AttributeError(f"module 'drgrader' has no attribute {name!r}")

"""The optional parts of drgrader and the extra that installs each (pyproject.toml).

The core install (``pip install drgrader``) runs trained graders with ONNX Runtime: predict,
serve, evaluate, preprocess, reports. PyTorch and the rest come with an extra:

``[torch]``    run a bundle with PyTorch (``predict --backend torch``, a bundle without model.onnx)
``[train]``    train, cv, demo (torch, timm, Lightning, torchmetrics, albumentations, ...)
``[explain]``  Grad-CAM: ``drgrader explain``, the overlays in reports and the web demo
``[export]``   ``drgrader export`` to ONNX
``[all]``      everything (what ``make`` installs)

:func:`require` is the one check a command makes before it imports an extra's modules: a
missing extra is a :class:`MissingExtraError` naming the extra to install (exit 2).
"""

from __future__ import annotations

import importlib.util

# The modules each extra provides (import name -> distribution name), as pyproject.toml lists them.
_TORCH = {"torch": "torch", "torchvision": "torchvision", "timm": "timm", "safetensors": "safetensors"}
EXTRAS: dict[str, dict[str, str]] = {
    "torch": _TORCH,
    "train": {
        **_TORCH,
        "lightning": "lightning",
        "torchmetrics": "torchmetrics",
        "albumentations": "albumentations",
        "tensorboard": "tensorboard",
        "coral_pytorch": "coral-pytorch",
        "huggingface_hub": "huggingface-hub",
    },
    "explain": {**_TORCH, "pytorch_grad_cam": "grad-cam"},
    "export": {**_TORCH, "onnx": "onnx", "onnxscript": "onnxscript"},
}


class MissingExtraError(ImportError):
    """A feature whose extra is not installed (a user error: the message says what to install)."""


def missing(extra: str) -> list[str]:
    """The distributions of ``extra`` that are not installed (found without importing them)."""
    return [dist for module, dist in EXTRAS[extra].items() if not _installed(module)]


def available(extra: str) -> bool:
    return not missing(extra)


def require(extra: str, feature: str) -> None:
    """Raise :class:`MissingExtraError` unless every module of ``extra`` is installed, e.g.
    ``error: drgrader train needs the [train] extra: pip install 'drgrader[train]' (not installed: torch, ...)``."""
    absent = missing(extra)
    if absent:
        raise MissingExtraError(
            f"{feature} needs the [{extra}] extra: pip install 'drgrader[{extra}]' (not installed: {', '.join(absent)})"
        )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install, or sys.modules[module] set to None
        return False

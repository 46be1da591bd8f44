"""What every ``metrics.json`` opens with: which run, when, made with which software, on which
data. One builder for ``train``, ``evaluate`` and ``cv``, so the three files stay comparable."""

from __future__ import annotations

import hashlib
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata

import pandas as pd

from drgrader import __version__
from drgrader.runtime import cpu_count

_PACKAGES = ("torch", "timm", "lightning", "onnxruntime")


def _version(package: str) -> str | None:
    """The loaded module's own version (torch's names its build, e.g. ``+cu130``), else the
    installed package's; None for an optional extra that is not installed."""
    loaded = getattr(sys.modules.get(package), "__version__", None)
    if loaded is not None:
        return str(loaded)
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict:
    """drgrader's and its main libraries' versions, Python and the machine; read from package
    metadata, so recording them never imports PyTorch."""
    torch = sys.modules.get("torch")
    gpus = torch.cuda.device_count() if torch is not None else 0
    found = {name: v for name in _PACKAGES if (v := _version(name)) is not None}
    return {
        "drgrader": __version__,
        **found,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {cpu_count()} cores, gpus: {gpus}",
    }


def manifest_checksum(table: pd.DataFrame) -> str:
    """A checksum of the labelled data used (image ids, grades, patients): one changed grade changes it."""
    cols = [c for c in ("image_id", "grade", "patient_id") if c in table]
    return hashlib.sha256(table[cols].to_csv(index=False).encode()).hexdigest()[:16]


def run_header(name: str) -> dict:
    """The opening keys of a metrics.json: the run's name, when it was made, the software."""
    return {"run": name, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "versions": versions()}


def data_record(table: pd.DataFrame, skipped: dict, summary: dict, warnings: list[str] | None = None) -> dict:
    """metrics.json's ``data``: the summary, what was left out, the checksum of the labels, and
    what reading them warned of (``warnings``; shown in the report and model card)."""
    return {"summary": summary, "skipped": skipped, "manifest_sha256": manifest_checksum(table),
            **({"warnings": list(warnings)} if warnings else {})}

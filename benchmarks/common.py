"""Helpers shared by the benchmark scripts: where results go, what machine measured them, and
merging one result at a time into a JSON file."""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
SHARED_DATA = REPO.parent / "shared" / "data"


def now() -> str:
    """The current UTC time, to the second, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def command_line() -> str:
    """The command that started this process, as it could be typed again."""
    return "python " + shlex.join(sys.argv)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# The CPU flags that decide which kernels run: oneDNN's bf16/int8 ones, ONNX Runtime's int8 (VNNI).
CPU_FEATURES = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def cpu_features() -> list[str]:
    """Which of CPU_FEATURES this CPU has (/proc/cpuinfo's flags)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return [f for f in CPU_FEATURES if f in flags]
    except OSError:
        pass
    return []


def machine_info() -> dict:
    """Cores this process may use (sched_getaffinity), CPU model and features, GPU or "no GPU",
    versions."""
    import torch

    from drgrader.runtime import cpu_count

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return {
        "cores": cpu_count(),
        "cpu": cpu_model(),
        "cpu_features": cpu_features(),
        "gpu": gpu,
        "summary": f"{cpu_count()} cores ({cpu_model()}), {gpu}",
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB.

    Linux's VmHWM (/proc/self/status) belongs to the current address space; getrusage's
    ru_maxrss survives exec, so a spawned child would report its parent's size at fork time."""
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ci_text(v) -> str:
    """``[estimate, lo, hi]`` as "0.658 (0.612-0.702)"."""
    return f"{v[0]:.3f} ({v[1]:.3f}-{v[2]:.3f})"


def diff_text(v) -> str:
    """A paired difference ``[estimate, lo, hi]`` as "+0.041 (+0.013 to +0.069)"."""
    return f"{v[0]:+.3f} ({v[1]:+.3f} to {v[2]:+.3f})"


def merge_results(path: Path, rows: dict) -> dict:
    """Add ``rows`` ({label: result}) to the JSON object in ``path`` (replacing equal labels)
    and return the merged object. The read-merge-write runs under a lock, so two
    benchmark processes finishing together both keep their rows; the write is atomic."""
    from drgrader.io import atomic_write_json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Lock the folder, not the file: the atomic write replaces the file's inode.
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        merged = json.loads(path.read_text()) if path.is_file() else {}
        if not isinstance(merged, dict):
            raise ValueError(f"{path}: expected a JSON object keyed by label, found {type(merged).__name__}")
        merged.update(rows)
        atomic_write_json(path, merged)
    finally:
        os.close(folder)  # releases the lock
    return merged


def quantile_summary(values) -> dict:
    """n, min, the 0.1%, 1%, 50%, 99%, 99.9% quantiles and max of a measure: the margin a
    threshold keeps from what it must pass and what it must catch."""
    import numpy as np

    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    q = np.quantile(a, [0.001, 0.01, 0.5, 0.99, 0.999])
    return {"n": int(a.size), "min": float(a.min()), "q0.1%": float(q[0]), "q1%": float(q[1]), "median": float(q[2]),
            "q99%": float(q[3]), "q99.9%": float(q[4]), "max": float(a.max())}

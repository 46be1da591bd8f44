"""Process-wide settings: CPU tuning that makes CNNs fast on small machines, and where this
process stands in a multi-process run (:func:`process_ranks`).

glibc's malloc returns large buffers to the OS after every forward pass and then page-faults
them back in; on CPUs this makes convolution nets 1.5-4x slower. ``tune_malloc`` switches that
off with mallopt at start-up (the same effect as MALLOC_MMAP_MAX_=0 and a huge
MALLOC_TRIM_THRESHOLD_), before PyTorch allocates anything large.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_done = False


def tune_malloc() -> bool:
    """Disable mmap'd allocations and heap trimming in glibc. Returns True when applied."""
    global _done
    if _done:
        return True
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    try:
        libc = ctypes.CDLL(libc_name)
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1
        # mallopt takes an int: the largest one is as good as "never trim".
        ok &= libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):
        return False
    _done = bool(ok)
    return _done


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_precision(requested: str, accelerator: str) -> str:
    """``train.precision: auto`` -> what is faster and no worse where the run trains: bf16 mixed
    precision on a CUDA GPU that supports it; full fp32 on the CPU, where bf16 autocast was slower
    than fp32 even with AVX-512 BF16 (0.86x for Lite2 at 256 px; benchmarks/bench_precision.py).
    Any other value is Lightning's own name and is returned as given."""
    if requested != "auto":
        return requested
    import torch

    on_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if on_gpu and torch.cuda.is_bf16_supported() else "32-true"


def setup_torch_threads(threads: int | None = None) -> int:
    """Intra-op threads: all cores, or DRGRADER_THREADS (on a shared, busy machine one thread
    per process avoids OpenMP threads spinning against each other)."""
    import torch

    threads = threads or int(os.environ.get("DRGRADER_THREADS", 0)) or cpu_count()
    torch.set_num_threads(threads)
    return threads


def command_line() -> str | None:
    """The ``drgrader`` command this process runs, as one shell line (``drgrader train cpu_grade
    --set train.epochs=3``), for a model card's provenance; None when drgrader is used from
    Python (a script, a notebook, the tests) rather than from its command line."""
    import shlex
    import sys

    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if program is None or not (program.name in ("drgrader", "drgrader.exe") or program.parts[-2:] == ("drgrader", "__main__.py")):
        return None
    return shlex.join(["drgrader", *sys.argv[1:]])


# ----------------------------------------------------------------- multi-process runs
PROCESS_STARTED = time.time()  # about when this process started (drgrader's CLI imports this module first)


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in a multi-process run, as its launcher says.

    ``launcher``: ``torchrun`` (TORCHELASTIC_RUN_ID, with RANK, LOCAL_RANK, WORLD_SIZE), ``slurm``
    (``srun``: SLURM_PROCID, SLURM_LOCALID, SLURM_NTASKS; not in an interactive job named
    ``bash`` or ``interactive``, as Lightning decides), ``env`` (RANK or LOCAL_RANK without
    either: Lightning's own launcher gives the workers it spawns LOCAL_RANK and WORLD_SIZE), or
    ``""`` for a single process. torchrun wins over Slurm (``srun torchrun ...``), as in
    Lightning. ``launch_id`` is the same in every process of one launch and differs between
    launches (see :func:`process_ranks`); "" when the launcher gives nothing to build it from.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    launcher: str = ""
    launch_id: str = ""


def process_ranks(environ: Mapping[str, str] | None = None) -> Ranks:
    """This process's global rank, rank on its node and the world size, from the launcher's
    environment variables (the one place drgrader reads them).

    The launch id: torchrun's ``TORCHELASTIC_RUN_ID`` (a fresh uuid under ``--standalone``, the
    ``--rdzv-id`` given otherwise), its restart count and ``MASTER_PORT``; Slurm's
    ``SLURM_JOB_ID`` and ``SLURM_STEP_ID``."""
    env = os.environ if environ is None else environ

    def number(name: str, default: int) -> int:
        value = env.get(name, "").strip()
        return int(value) if value.isdigit() else default

    def joined(*parts: str) -> str:
        return "-".join(p for p in parts if p)

    if "TORCHELASTIC_RUN_ID" in env:
        launch = joined("torchrun", env["TORCHELASTIC_RUN_ID"], f"r{env.get('TORCHELASTIC_RESTART_COUNT', '0')}",
                        env.get("MASTER_PORT", ""), env.get("SLURM_JOB_ID", ""))
        return Ranks(number("RANK", 0), number("LOCAL_RANK", 0), number("WORLD_SIZE", 1), "torchrun", launch)
    if "SLURM_NTASKS" in env and env.get("SLURM_JOB_NAME") not in ("bash", "interactive"):
        launch = joined("slurm", env.get("SLURM_JOB_ID", ""), env.get("SLURM_STEP_ID", ""))
        return Ranks(number("SLURM_PROCID", 0), number("SLURM_LOCALID", 0), number("SLURM_NTASKS", 1), "slurm",
                     launch if env.get("SLURM_JOB_ID") else "")
    if "RANK" in env or "LOCAL_RANK" in env:
        local = number("LOCAL_RANK", 0)
        return Ranks(number("RANK", local), local, number("WORLD_SIZE", 1), "env", joined("env", env.get("MASTER_PORT", "")))
    return Ranks()

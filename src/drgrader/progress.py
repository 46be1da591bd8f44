"""Progress that suits where the output goes: a live bar on a terminal, plain lines elsewhere.

A tqdm bar redraws itself with carriage returns; written to a file, a batch-job log or CI it
becomes a wall of ``\\r`` redraws. ``--progress`` picks the form for the whole process:

- ``bar``: tqdm bars (and Lightning's bar in training);
- ``log``: one line through the ``drgrader`` logger per 10% of the items (at most one per
  ``MIN_GAP_S``, at least one per ``MAX_GAP_S`` while items finish), with counts and rate, and
  a last line with the totals; training logs one line per epoch instead of Lightning's bar;
- ``auto`` (the default): ``bar`` when stderr is a terminal, else ``log``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

MODES = ("auto", "bar", "log")
MIN_GAP_S = 10.0
MAX_GAP_S = 60.0

log = logging.getLogger("drgrader")
_mode = "auto"


def set_mode(mode: str) -> None:
    """Choose the progress form for this process (the CLI's ``--progress``)."""
    global _mode
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {', '.join(MODES)}, not {mode!r}")
    _mode = mode


def bar_wanted() -> bool:
    """Whether progress should be a redrawn bar: ``bar``, or ``auto`` on a terminal."""
    if _mode == "auto":
        return sys.stderr.isatty()
    return _mode == "bar"


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str, unit: str = "it",
             disable: bool = False, leave: bool = True):
    """A tqdm bar or a :class:`LogProgress` (same ``update``/``close``/iteration/``with``
    interface), as the mode says; ``disable`` shows nothing. ``leave=False``: a transient
    step that writes no closing line in ``log`` mode."""
    if disable or bar_wanted():
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=disable)
    return LogProgress(iterable, total=total, desc=desc, unit=unit, leave=leave)


class LogProgress:
    """Counts finished items and logs a plain line now and then (see the module docstring)."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str, unit: str = "it",
                 leave: bool = True, clock=time.monotonic):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit, self.leave = iterable, total, desc, unit, leave
        self.n, self._clock = 0, clock
        self._started = self._last_time = clock()
        self._last_n = 0
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable if self.iterable is not None else ():
            yield item
            self.update()
        self.close()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self._clock()
        gap = now - self._last_time
        step = max(1, (self.total or 0) // 10)
        if (self.total and self.n // step > self._last_n // step and gap >= MIN_GAP_S) or gap >= MAX_GAP_S:
            self._line(now)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.leave and self.n != self._last_n:
            self._line(self._clock())

    def _line(self, now: float) -> None:
        self._last_time, self._last_n = now, self.n
        seconds = now - self._started
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        rate = f"{self.n / seconds:.1f} {self.unit}/s" if seconds > 0 else f"- {self.unit}/s"
        log.info("%s: %s %s%s, %s, %.0f s", self.desc, done, self.unit, share, rate, seconds)

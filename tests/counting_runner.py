"""A bundle runner that counts model calls and can stop a run with a Ctrl-C at one of them:
what the resume tests of ``predict`` need."""

from __future__ import annotations


class CountingRunner:
    """Wraps a bundle's runner: counts model calls, optionally fails on call ``fail_at``."""

    def __init__(self, runner, fail_at: int | None = None):
        self.runner, self.fail_at, self.calls = runner, fail_at, 0

    def __call__(self, pixels):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        return self.runner(pixels)

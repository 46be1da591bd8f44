"""``drgrader preprocess`` and ``drgrader data summary``: the data stage on its own, for a config."""

from __future__ import annotations

import pandas as pd

from drgrader.config import ConfigError, ExperimentConfig
from drgrader.config_yaml import plain_number


def parse_shard(text: str) -> tuple[int, int]:
    """``"3/16"`` -> ``(3, 16)``: this machine's share of a job split across ``n`` machines."""
    i, slash, n = text.partition("/")
    # As config integers: '１/2', '00/2', '1/08' refused; and unsigned ('+1/2').
    shard, count = (plain_number(part, int) if part.isdigit() else None for part in (i, n))
    if not (slash and shard is not None and count is not None and shard < count):
        raise ConfigError(f"--shard {text[:40]!r} must look like i/n with 0 <= i < n, e.g. 3/16")
    return int(shard), int(count)


def preprocess(cfg: ExperimentConfig, *, workers: int | None = None, shard: tuple[int, int] | None = None) -> pd.DataFrame:
    """Every image of the data set into the cache (resumable); the cache index, one row per image."""
    from drgrader.data.cache import build_cache
    from drgrader.data.manifest import read_manifest

    return build_cache(read_manifest(cfg.data).table, cfg.data, workers=workers, shard=shard)


def data_summary(cfg: ExperimentConfig) -> str:
    """The data set described in plain text: counts per grade, split, eye, source; what was left out."""
    from drgrader.data.prepare import read_and_split
    from drgrader.data.summary import format_summary, summarize

    # The checks train makes before its first epoch: a split file putting a patient on two sides is refused here too.
    table, skipped, split = read_and_split(cfg.data)
    text = format_summary(summarize(table, split, skipped=skipped))
    if cfg.data.limit is not None:  # probe 44 CH7: a part of the data set read as the whole
        text += f"\nThe data set was cut to its first {cfg.data.limit} patients (data.limit): the rest are not counted above.\n"
    return text

"""Progress bars only on a terminal: written to a file (a batch job's log, CI) progress is plain
lines with counts and rate, never carriage-return redraws; ``--progress bar|log`` forces a form."""

import subprocess
import sys

import pytest
import yaml

from drgrader.cli import build_parser
from drgrader.progress import LogProgress


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    from drgrader.synth import make_dataset

    root = tmp_path_factory.mktemp("progress") / "data"
    make_dataset(root, 6, seed=1, height=128, progress=False)
    config = root.parent / "exp.yaml"
    config.write_text(yaml.safe_dump({"data": {"root": str(root), "format": "kaggle", "image_size": 48}}))
    return config


def preprocess_log(config, tmp_path, *flags) -> str:
    """``drgrader preprocess`` in a subprocess with stdout and stderr going to a file."""
    log = tmp_path / "job.log"
    with open(log, "wb") as out:
        subprocess.run([sys.executable, "-m", "drgrader", *flags[:2], "preprocess", str(config), "--workers", "1",
                        "--set", f"data.cache_dir={tmp_path / 'cache'}", *flags[2:]],
                       stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=True, timeout=300)
    return log.read_bytes().decode()  # not read_text: universal newlines would turn \r into \n


def test_preprocess_into_a_file_logs_plain_lines(small_set, tmp_path):
    text = preprocess_log(small_set, tmp_path)
    assert "\r" not in text
    line = next(line for line in text.splitlines() if "preprocess: " in line)
    assert line.startswith("INFO preprocess: 12/12 img (100%), ") and " img/s, " in line
    assert "preprocessed 12/12 images" in text


def test_progress_bar_is_forced_by_the_global_option(small_set, tmp_path):
    text = preprocess_log(small_set, tmp_path, "--progress", "bar")
    assert "\r" in text and "preprocess: 100%" in text


def test_progress_after_the_command_wins_over_the_global_option():
    parse = build_parser().parse_args
    assert parse(["--progress", "bar", "train", "demo", "--progress", "log"]).progress == "log"
    assert parse(["--progress", "bar", "cv", "demo"]).progress == "bar"
    assert parse(["predict", "b", "x.jpg"]).progress == "auto"
    with pytest.raises(SystemExit):
        parse(["preprocess", "demo", "--progress", "fancy"])


def test_log_lines_every_tenth_at_most_every_min_gap_and_a_closing_line(caplog):
    now = [0.0]
    caplog.set_level("INFO", logger="drgrader")
    bar = LogProgress(total=100, desc="work", unit="img", clock=lambda: now[0])
    for _ in range(100):
        now[0] += 1.0  # 1 s an item: a tenth takes 10 s, the minimum gap
        bar.update()
    bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 10 and lines[0] == "work: 10/100 img (10%), 1.0 img/s, 10 s"
    assert lines[-1] == "work: 100/100 img (100%), 1.0 img/s, 100 s"  # the closing line is not repeated

    caplog.clear()
    fast = LogProgress(range(100), desc="fast", unit="batch", leave=False, clock=lambda: 0.0)
    assert list(fast) == list(range(100)) and caplog.records == []  # quick and transient: silent

    slow = LogProgress(total=None, desc="open-ended", clock=lambda: now[0])
    now[0] += 61
    slow.update(5)
    slow.close()
    assert [r.getMessage() for r in caplog.records] == ["open-ended: 5 it, 0.1 it/s, 61 s"]

"""Why the compression check does not look for JPEG blocks in the pixels (probe 30, F1): a
q40 copy re-saved as a good JPEG passes the check (its quantisation tables are fine), so a
pixel-domain blockiness measure was tried, and it has no margin over real photos.

Blockiness: the mean absolute luma step across the 8 px JPEG grid over the mean step inside the
blocks (horizontal and vertical, averaged), within 0.9 of the fundus radius, decoded at full size.
Measured on every real photo in ../shared/data and on copies given on the command line (e.g. the
probe's q40 copies re-saved at q95). Writes benchmarks/results/blockiness.json.

    python benchmarks/bench_blockiness.py [--data ../shared/data] COPY_GLOB ...
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import numpy as np

from drgrader.data.fundus import find_fundus
from drgrader.data.images import read_image


def blockiness(rgb: np.ndarray) -> float:
    luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    c = find_fundus(rgb)
    yy, xx = np.mgrid[0 : luma.shape[0], 0 : luma.shape[1]]
    inside = (xx - c.cx) ** 2 + (yy - c.cy) ** 2 < (0.9 * c.r) ** 2 if c.found else luma > 20
    ratios = []
    for steps, both in ((np.abs(np.diff(luma, axis=1)), inside[:, 1:] & inside[:, :-1]),
                        (np.abs(np.diff(luma, axis=0)).T, (inside[1:] & inside[:-1]).T)):
        on_grid = ((np.arange(steps.shape[1]) + 1) % 8 == 0)[None, :]
        ratios.append(steps[on_grid & both].mean() / max(steps[~on_grid & both].mean(), 1e-6))
    return float(np.mean(ratios))


def summary(files: list[str]) -> dict:
    values = np.array([blockiness(read_image(f)) for f in files])
    return {"photos": len(values), "min": round(float(values.min()), 3), "median": round(float(np.median(values)), 3),
            "max": round(float(values.max()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("copies", nargs="*")
    args = parser.parse_args()
    result = {name: summary(sorted(glob.glob(f"{args.data}/{name}/images/*"))) for name in ("eyepacs-256", "rahim-originals")}
    for pattern in args.copies:
        result[pattern] = summary(sorted(glob.glob(pattern)))
    out = Path(__file__).parent / "results" / "blockiness.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

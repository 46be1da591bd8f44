"""Why the compression check does not look for JPEG blocks in the pixels (probe 30, F1): a
q40 copy re-saved as a good JPEG passes the check (its quantisation tables are fine), so a
pixel-domain blockiness measure was tried, and it has no margin over real photos.

Blockiness: the mean absolute luma step across the 8 px JPEG grid over the mean step inside the
blocks (horizontal and vertical, averaged), within 0.9 of the fundus radius, decoded at full size.
Measured on every real photo in ../shared/data and on copies of the 180 rahim-originals it makes
(under a temporary folder): reduced to 400 px and saved at JPEG quality 40 (flagged by the
compression check), that copy re-saved at quality 95 and 85 (passes it), and enlarged back to
1936 px at quality 90 (passes it). Writes benchmarks/results/blockiness.json.

    python benchmarks/bench_blockiness.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import glob
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

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


def copies(originals: list[str], work: Path) -> dict[str, list[str]]:
    """The e-mail copy (400 px, q40) of each original and what passes the check made from it."""
    out: dict[str, list[str]] = {}
    for name in ("400px_q40", "400px_q40_resaved_q95", "400px_q40_resaved_q85", "400px_q40_enlarged_q90"):
        (work / name).mkdir()
    for original in originals:
        im = Image.open(original).convert("RGB")
        size = (400, round(400 * im.height / im.width))
        stem = Path(original).stem
        im.resize(size, Image.Resampling.BICUBIC).save(work / "400px_q40" / f"{stem}.jpg", quality=40)
        small = Image.open(work / "400px_q40" / f"{stem}.jpg").convert("RGB")
        small.save(work / "400px_q40_resaved_q95" / f"{stem}.jpg", quality=95)
        small.save(work / "400px_q40_resaved_q85" / f"{stem}.jpg", quality=85)
        small.resize(im.size, Image.Resampling.BICUBIC).save(work / "400px_q40_enlarged_q90" / f"{stem}.jpg", quality=90)
    for folder in sorted(work.iterdir()):
        out[f"camera_{folder.name}"] = sorted(str(p) for p in folder.iterdir())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = parser.parse_args()
    result = {name: summary(sorted(glob.glob(f"{args.data}/{name}/images/*"))) for name in ("eyepacs-256", "rahim-originals")}
    with tempfile.TemporaryDirectory(prefix="blockiness-") as work:
        made = copies(sorted(glob.glob(f"{args.data}/rahim-originals/images/*")), Path(work))
        result.update({name: summary(files) for name, files in made.items()})
    out = Path(__file__).parent / "results" / "blockiness.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

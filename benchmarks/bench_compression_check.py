"""The compression check (``COMPRESSION_THRESHOLD``), measured: how far small, coarsely
compressed JPEG copies of real photos (an e-mail or messenger copy) move the built-in grader, and
the margin between real photos and the bar.

1. Every real photo in ../shared/data: its compression level (``quality.compression_level``:
   the file's mean luma quantisation step x (256 / fundus px) ** 1.5), as predict computes it.
2. Copies: each rahim-original (camera photos) reduced (PIL bicubic) to a long side of 256, 300,
   400, 600, 900 or 1300 px or kept at full size, saved as JPEG quality 30, 50, 75, 90 or as PNG
   (the lossless control); and eyepacs-256 photos (every 12th, 300) re-saved at the same
   qualities. Each copy and each original is graded with the built-in grader (``drgrader.grade``);
   per copy kind: the mean, mean absolute and 95th-percentile shift of the expected grade against
   the original, the eyes that turn referable and the referable ones that turn not, the mean
   compression level and how many copies the check flags.

Writes benchmarks/results/compression_check.json. The copies are written under ``--work``
(default a temporary folder) and re-used if there.

    python benchmarks/bench_compression_check.py [--data ../shared/data] [--work /tmp/compression]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from common import quantile_summary
from drgrader import grade
from drgrader.data.images import read_jpeg_step
from drgrader.data.photo import decode_photo
from drgrader.data.quality import COMPRESSION_THRESHOLD, compression_level

ROOT = Path(__file__).resolve().parent
INPUT = 256  # the built-in grader's input size
SIZES = (256, 300, 400, 600, 900, 1300, 0)  # long side of the camera copies, px (0: as is)
QUALITIES = (30, 50, 75, 90, "png")


def level(path: Path) -> float:
    step = read_jpeg_step(path)
    if step is None:
        return 0.0
    rgb, circle = decode_photo(path, INPUT)
    if not circle.found:
        return float("nan")
    with Image.open(path) as im:
        scale = max(im.size) / max(rgb.shape[:2])
    return compression_level(step, 2 * circle.r * scale, INPUT)


def make_copies(sources: list[Path], folder: Path, size: int, quality: int | str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for source in sources:
        path = folder / (source.stem + (".png" if quality == "png" else ".jpg"))
        if not path.exists():
            im = Image.open(source).convert("RGB")
            if size:
                w, h = im.size
                im = im.resize((round(w * size / max(w, h)), round(h * size / max(w, h))), Image.Resampling.BICUBIC)
            im.save(path, **({} if quality == "png" else {"quality": quality}))
        out.append(path)
    return out


def graded(paths: list[Path]) -> pd.DataFrame:
    photos, _ = grade(None, [str(p) for p in paths])
    photos["stem"] = [Path(p).stem for p in photos["path"]]
    return photos.set_index("stem")


def compare(copy: pd.DataFrame, original: pd.DataFrame) -> dict:
    original = original.loc[copy.index]
    shift = (copy["expected_grade"] - original["expected_grade"]).dropna()
    was, now = original["referable"] == 1, copy["referable"] == 1
    return {"n": len(copy), "mean_shift": round(float(shift.mean()), 3), "mean_abs_shift": round(float(shift.abs().mean()), 3),
            "shift_p95": round(float(shift.quantile(0.95)), 3),
            "turn_referable": f"{int((now & ~was).sum())} of {int((~was).sum())}", "turn_not_referable": int((was & ~now).sum()),
            "flagged": int((copy["quality_reason"].str.startswith("compressed copy")).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=None, help="folder for the copies (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "compression_check.json")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="compression-"))
    started = time.time()
    real = {}
    for folder in sorted(p for p in args.data.iterdir() if (p / "images").is_dir()):
        photos = sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        levels = [level(p) for p in photos]
        real[folder.name] = {**quantile_summary([v for v in levels if v == v]),
                             "flagged": int(sum(v > COMPRESSION_THRESHOLD for v in levels))}
        print(folder.name, real[folder.name], flush=True)
    camera = sorted((args.data / "rahim-originals" / "images").glob("*.jpg"))
    eyepacs = sorted((args.data / "eyepacs-256" / "images").glob("*.jpeg"))[::12][:300]
    copies = {}
    for name, sources, sizes in (("camera", camera, SIZES), ("eyepacs", eyepacs, (0,))):
        original = graded(sources)
        for size in sizes:
            for quality in QUALITIES:
                kind = f"{name}_{'full' if size == 0 else f'{size}px'}_{'png' if quality == 'png' else f'q{quality}'}"
                paths = make_copies(sources, work / kind, size, quality)
                copies[kind] = {**compare(graded(paths), original),
                                "mean_level": round(float(np.nanmean([level(p) for p in paths])), 2)}
                print(kind, copies[kind], flush=True)
    result = {"threshold": COMPRESSION_THRESHOLD, "input_size": INPUT, "real_photos": real, "copies": copies,
              "minutes": round((time.time() - started) / 60, 1), "command": " ".join(sys.argv)}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

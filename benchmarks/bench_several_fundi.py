"""The several-fundi check (``fundus.OTHER_FUNDUS_SHARE``), measured (probe 34, AX4): a picture
holding two or four fundi (both eyes side by side, a montage) was graded on its largest fundus.

1. Every real photo in ../shared/data, decoded as predict decodes it (``decode_photo``: JPEGs at
   reduced DCT scale): how many are called "several fundi" (each is one photo: it should be none).
2. Montages of them (every ``--every``-th photo of each set with the next one): side by side with
   a gap of 2% or 5% of the width, and a 2x2 grid, saved as JPEG q92; decoded the same way: how
   many the quality check calls "several fundi". Side by side with no gap at all, the two fields of
   view touch and look like one odd shape: not counted here.

Writes benchmarks/results/several_fundi.json.

    python benchmarks/bench_several_fundi.py [--data ../shared/data] [--every 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from PIL import Image

from common import SHARED_DATA, command_line, now
from drgrader.data.images import read_image_size
from drgrader.data.photo import decode_photo, photo_quality
from drgrader.data.quality import SEVERAL_FUNDI

ROOT = Path(__file__).resolve().parent
INPUT = 256  # the built-in grader's input size


def reason_of(path: Path) -> str:
    size = read_image_size(path)
    rgb, circle = decode_photo(path, INPUT, size)
    return photo_quality(path, rgb, circle, INPUT, size).reason if circle.found else "no fundus detected"


def side_by_side(a: Image.Image, b: Image.Image, gap: float) -> Image.Image:
    space = round(gap * (a.width + b.width))
    out = Image.new("RGB", (a.width + b.width + space, max(a.height, b.height)))
    out.paste(a, (0, 0))
    out.paste(b, (a.width + space, 0))
    return out


def grid(a: Image.Image, b: Image.Image) -> Image.Image:
    row = side_by_side(a, b, 0.02)
    out = Image.new("RGB", (row.width, 2 * row.height + round(0.02 * row.height)))
    out.paste(row, (0, 0))
    out.paste(row, (0, out.height - row.height))
    return out


MONTAGES = {"side_by_side_gap2": lambda a, b: side_by_side(a, b, 0.02),
            "side_by_side_gap5": lambda a, b: side_by_side(a, b, 0.05), "grid_2x2": grid}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--every", type=int, default=10, help="every n-th photo of each set starts a montage")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "several_fundi.json")
    args = parser.parse_args()
    started = time.time()
    sets = {folder.name: sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
            for folder in sorted(p for p in args.data.iterdir() if (p / "images").is_dir())}
    real = {}
    for name, photos in sets.items():
        reasons = [reason_of(p) for p in photos]
        flagged = [p.name for p, r in zip(photos, reasons) if r.startswith(SEVERAL_FUNDI)]
        real[name] = {"photos": len(photos), "several_fundi": len(flagged), "examples": flagged[:10]}
        print(name, real[name], flush=True)
    montages = {}
    with tempfile.TemporaryDirectory(prefix="montage-") as work:
        for kind, make in MONTAGES.items():
            counts = {"montages": 0, "several_fundi": 0, "other_reasons": {}}
            for name, photos in sets.items():
                for k in range(0, len(photos) - 1, args.every):
                    with Image.open(photos[k]) as a, Image.open(photos[k + 1]) as b:
                        file = Path(work) / f"{name}-{k}.jpg"
                        make(a.convert("RGB"), b.convert("RGB")).save(file, quality=92)
                    reason = reason_of(file)
                    counts["montages"] += 1
                    if reason.startswith(SEVERAL_FUNDI):
                        counts["several_fundi"] += 1
                    else:
                        counts["other_reasons"][reason or "gradable"] = counts["other_reasons"].get(reason or "gradable", 0) + 1
            montages[kind] = counts
            print(kind, counts, flush=True)
    result = {"created": now(), "command": command_line(), "input_size": INPUT, "real_photos": real,
              "montages": montages, "seconds": round(time.time() - started, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()

"""The colour-reduced copy check (``MAX_PALETTE_COLOURS``), measured (probe 32, A5): how many
distinct colours real photos have inside the fundus against palette copies of them.

1. Real photos in ../shared/data (every ``--every``-th eyepacs-256 photo and every
   rahim-original), decoded as predict decodes them (``decode_photo``: JPEGs at reduced DCT
   scale): ``quality.distinct_colours`` inside the fundus.
2. Palette copies of some of them (every ``--copies-every``-th of each set): the web palette,
   dithered (``convert('P')``, Pillow's default) or not, and an adaptive palette of 256 or 64
   colours, saved as PNG, GIF or BMP; decoded the same way: their colours and how many the
   quality check calls a colour-reduced copy.

Writes benchmarks/results/palette_check.json.

    python benchmarks/bench_palette_check.py [--data ../shared/data] [--every 8] [--copies-every 12]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from PIL import Image

from common import SHARED_DATA, command_line, now, quantile_summary
from drgrader.data.images import read_image_size
from drgrader.data.photo import decode_photo, photo_quality
from drgrader.data.quality import COLOUR_REDUCED_COPY, MAX_PALETTE_COLOURS, distinct_colours

ROOT = Path(__file__).resolve().parent
INPUT = 256  # the built-in grader's input size
# copy kind -> (how the palette image is made, file suffix)
KINDS = {
    "web_dithered_png": (lambda im: im.convert("P"), ".png"),
    "web_png": (lambda im: im.convert("P", dither=Image.Dither.NONE), ".png"),
    "web_dithered_bmp": (lambda im: im.convert("P"), ".bmp"),
    "adaptive256_png": (lambda im: im.convert("P", palette=Image.Palette.ADAPTIVE, colors=256), ".png"),
    "adaptive256_gif": (lambda im: im.convert("P", palette=Image.Palette.ADAPTIVE, colors=256), ".gif"),
    "adaptive64_png": (lambda im: im.convert("P", palette=Image.Palette.ADAPTIVE, colors=64), ".png"),
    "quantize256_dithered_png": (lambda im: im.quantize(256), ".png"),
}


def measure(path: Path) -> tuple[int | None, str]:
    """(distinct colours inside the fundus, quality reason) of a photo as predict decodes it;
    colours None when no fundus is found."""
    size = read_image_size(path)
    rgb, circle = decode_photo(path, INPUT, size)
    if not circle.found:
        return None, "no fundus detected"
    return distinct_colours(rgb, circle), photo_quality(path, rgb, circle, INPUT, size).reason


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--every", type=int, default=8, help="every n-th eyepacs-256 photo (all rahim-originals)")
    parser.add_argument("--copies-every", type=int, default=12, help="every n-th photo of each set sampled is copied")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "palette_check.json")
    args = parser.parse_args()
    started = time.time()
    sets = {folder.name: sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
            for folder in sorted(p for p in args.data.iterdir() if (p / "images").is_dir())}
    sets = {name: photos[:: args.every] if len(photos) > 1000 else photos for name, photos in sets.items()}
    real, least = {}, []
    for name, photos in sets.items():
        counted = [(measure(p)[0], p.name) for p in photos]
        counts = [c for c, _ in counted if c is not None]
        least += [(c, f"{name}/{n}") for c, n in counted if c is not None]
        real[name] = {**quantile_summary(counts), "no_fundus": len(photos) - len(counts),
                      "flagged": sum(c <= MAX_PALETTE_COLOURS for c in counts)}
        print(name, real[name], flush=True)
    copies = {}
    with tempfile.TemporaryDirectory(prefix="palette-") as work:
        for kind, (make, suffix) in KINDS.items():
            results = []
            for name, photos in sets.items():
                for source in photos[:: args.copies_every]:
                    path = Path(work) / f"{name}_{source.stem}{suffix}"
                    with Image.open(source) as im:
                        make(im.convert("RGB")).save(path)
                    results.append(measure(path))
                    path.unlink()
            counts = [c for c, _ in results if c is not None]
            copies[kind] = {"n": len(results), "max_colours": max(counts, default=0),
                            "flagged": sum(reason.startswith(COLOUR_REDUCED_COPY) for _, reason in results),
                            "other_reasons": sorted({r for _, r in results if r and not r.startswith(COLOUR_REDUCED_COPY)})}
            print(kind, copies[kind], flush=True)
    fewest = min(least, default=(0, ""))
    result = {"max_palette_colours": MAX_PALETTE_COLOURS, "input_size": INPUT, "real_photos": real,
              "fewest_real": {"colours": fewest[0], "photo": fewest[1],
                              "margin": round(fewest[0] / MAX_PALETTE_COLOURS, 1)},
              "copies": copies, "minutes": round((time.time() - started) / 60, 1), "date": now(), "command": command_line()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

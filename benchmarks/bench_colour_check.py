"""The colour and channel-order checks, measured on every real photo in ../shared/data and on
red-free / tinted copies made from them: the margin between real colour photos and what the
checks must catch.

For each real photo (read with drgrader's reader, fundus found as predict finds it):
- the quality measures of ``drgrader.data.quality.measure_photo``: colourfulness, mean red /
  mean green, the tint spread (colours off one hue line), the fundus diameter;
- the same on its copies: ``green_only`` (R = B = 0), ``red_removed`` (R = 0), ``sepia``
  (R, G, B = 1.0, 0.85, 0.65 x luma), each also through a JPEG q90 round trip;
- the channel-order measure of ``drgrader.api`` on the photo and on its reversed (BGR) array.

Writes benchmarks/results/colour_check.json: min, 0.1%, 1%, 50% quantiles (and max for
measures a check bounds from above) per set.

    python benchmarks/bench_colour_check.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from common import quantile_summary
from drgrader.api import channel_order_score
from drgrader.data.images import read_image
from drgrader.data.quality import MIN_FUNDUS_SHARE, RED_THRESHOLD, TINT_THRESHOLD, measure_photo

ROOT = Path(__file__).resolve().parent
MEASURES = ["colour", "red_to_green", "tint_spread", "diameter"]


def variants(rgb: np.ndarray) -> dict[str, np.ndarray]:
    green = rgb.copy()
    green[..., 0] = 0
    green[..., 2] = 0
    cyan = rgb.copy()
    cyan[..., 0] = 0
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    sepia = np.clip(np.stack([luma, luma * 0.85, luma * 0.65], -1), 0, 255).round().astype(np.uint8)
    out = {"green_only": green, "red_removed": cyan, "sepia": sepia}
    for name, image in list(out.items()):
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        out[f"{name}_jpeg90"] = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "colour_check.json")
    args = parser.parse_args()
    started = time.time()
    photos = sorted(p for p in args.data.glob("*/images/*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    sets: dict[str, dict[str, list[float]]] = {}
    least: dict[str, tuple[float, str]] = {}
    no_fundus = []

    def add(group: str, name: str, value: float) -> None:
        sets.setdefault(group, {}).setdefault(name, []).append(value)

    for path in photos:
        source = path.parent.parent.name
        rgb = read_image(path)
        m = measure_photo(rgb)
        if m is None:
            no_fundus.append(str(path.relative_to(args.data)))
            continue
        for name in MEASURES:
            add(f"real/{source}", name, getattr(m, name))
            add("real/all", name, getattr(m, name))
        for name in ("colour", "red_to_green", "tint_spread"):
            value = getattr(m, name)
            if name not in least or value < least[name][0]:
                least[name] = (value, str(path.relative_to(args.data)))
        add(f"real/{source}", "channel_order_rgb", channel_order_score(rgb))
        add(f"real/{source}", "channel_order_bgr", channel_order_score(np.ascontiguousarray(rgb[..., ::-1])))
        for variant, image in variants(rgb).items():
            v = measure_photo(image)
            if v is not None:
                for name in ("colour", "red_to_green", "tint_spread"):
                    add(f"variant/{variant}", name, getattr(v, name))
    result = {
        "what": "quality colour measures and the API's channel-order score over real photos and their red-free / tinted copies",
        "data": str(args.data),
        "photos": len(photos),
        "no_fundus": no_fundus,
        "thresholds": {"RED_THRESHOLD": RED_THRESHOLD, "TINT_THRESHOLD": TINT_THRESHOLD, "MIN_FUNDUS_SHARE": MIN_FUNDUS_SHARE},
        "least_colourful_real": {name: {"value": v, "photo": p} for name, (v, p) in least.items()},
        "sets": {group: {name: quantile_summary(values) for name, values in measures.items()} for group, measures in sorted(sets.items())},
        "seconds": round(time.time() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["sets"], indent=1))


if __name__ == "__main__":
    main()

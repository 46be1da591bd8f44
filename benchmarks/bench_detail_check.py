"""The effective-resolution check (``FINE_DETAIL_THRESHOLD``), measured on every real photo in
../shared/data and on copies made from them: the margin between real photos and thumbnails
enlarged back to full size, and what the check does to ordinary degradations.

For each real photo (read with drgrader's reader, fundus found as predict finds it), the quality
measures of ``drgrader.data.quality.measure_photo`` and from them what the check compares with
FINE_DETAIL_THRESHOLD: the least ``_fine_detail`` (the fundus's detail near the finest a photo
of a size can hold, against coarser detail, in decades of power) over the sizes ``_detail_held``
tries up to the bar, at the bar of the built-in 256 px grader (128 px), of a 128 px grader (64)
and of a >= 408 px grader (204); and the same, with the verdict ``assess_quality(...,
input_size=256)`` gives and the detail it says a flagged copy holds, on its copies:

- ``up<t>_<bicubic|lanczos>[_jpeg90]``: reduced (PIL LANCZOS) so that the fundus is t = 64, 96 or
  128 px across, enlarged back to the photo's size (PIL BICUBIC or LANCZOS), also through a JPEG
  q90 round trip: a thumbnail a viewer, a report or a screenshot gives back;
- ``jpeg50``: a JPEG q50 round trip; ``blur<s>``: a Gaussian blur of sigma s% of the fundus
  diameter (0.25, 0.35, 0.5: milder than the blur check catches; 1.0: about where it starts).

And drgrader.synth photos (the demo's and the tests' training data) rendered at several heights,
at the bars of 64, 128 and 256 px graders.

Writes benchmarks/results/detail_check.json: per set min, 0.1%, 1%, 50%, 99%, 99.9% quantiles
and max of each measure; per copy the verdicts' counts; the least detailed real photos; real
photos' least fine detail against the copies' most, per fundus size.

    python benchmarks/bench_detail_check.py [--data ../shared/data] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from common import quantile_summary
from drgrader.data.images import read_image
from drgrader.data.quality import (
    FINE_DETAIL_THRESHOLD,
    MIN_FUNDUS_SHARE,
    SHARPNESS_THRESHOLD,
    _detail_held,
    _detail_spectrum,
    assess_quality,
    measure_photo,
)

ROOT = Path(__file__).resolve().parent
SIZES = (64, 96, 128)  # fundus diameters of the thumbnails, px
BLURS = (0.25, 0.35, 0.5, 1.0)  # Gaussian sigma, % of the fundus diameter
BARS = {"grader128": 64, "grader256": 128, "grader408+": 204}  # the detail bar (half the input)
INPUT = 256  # the built-in grader's input: the verdicts


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def enlarged(rgb: np.ndarray, diameter: float, size: int, method: Image.Resampling) -> np.ndarray:
    """The photo reduced so that its fundus is ``size`` px across, enlarged back to its size."""
    h, w = rgb.shape[:2]
    factor = size / diameter
    small = Image.fromarray(rgb).resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.Resampling.LANCZOS)
    return np.asarray(small.resize((w, h), method))


def copies(rgb: np.ndarray, diameter: float) -> dict[str, np.ndarray]:
    out = {}
    for size in SIZES:
        for name, method in (("bicubic", Image.Resampling.BICUBIC), ("lanczos", Image.Resampling.LANCZOS)):
            image = enlarged(rgb, diameter, size, method)
            out[f"up{size}_{name}"] = image
            out[f"up{size}_{name}_jpeg90"] = jpeg(image, 90)
    out["jpeg50"] = jpeg(rgb, 50)
    for sigma in BLURS:
        out[f"blur{sigma}"] = cv2.GaussianBlur(rgb, (0, 0), sigma / 100 * diameter)
    return out


def verdict(reason: str) -> str:
    if not reason:
        return "gradable"
    if reason.startswith("resolution too low: the fundus holds"):
        return "detail"  # the new check
    if reason.startswith("resolution too low"):
        return "diameter"
    return reason.split(":")[0].split(" (")[0]



def synthetic(heights=(160, 192, 256, 384, 512), per_height: int = 20) -> dict:
    """drgrader.synth photos (JPEG q95, as make_dataset writes them) at the bars of 64, 128 and
    256 px graders."""
    from drgrader.synth import make_fundus

    out = {}
    for height in heights:
        values: dict[str, list[float]] = {}
        for seed in range(per_height):
            rgb = jpeg(make_fundus(seed % 5, np.random.default_rng(seed), height=height), 95)
            m = measure_photo(rgb)
            if m is None:
                continue
            for grader, bar in (("grader64", 32), ("grader128", 64), ("grader256", 128)):
                values.setdefault(grader, []).append(_detail_held(m.detail_spectrum, bar)[1])
        out[f"height{height}"] = {grader: quantile_summary(v) for grader, v in values.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "detail_check.json")
    parser.add_argument("--limit", type=int, default=0, help="at most this many photos per set (0: all)")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one worker process, one thread: the machine is shared
    started = time.time()
    photos = []
    for folder in sorted(p for p in args.data.iterdir() if (p / "images").is_dir()):
        found = sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        photos += found[: args.limit] if args.limit else found
    sets: dict[str, dict[str, list[float]]] = {}
    verdicts: dict[str, Counter] = {}
    held: dict[str, list[float]] = {}
    real_detail: list[tuple[float, str, float]] = []
    no_fundus = []
    spectrum_ms = []

    def add(group: str, name: str, value: float) -> None:
        sets.setdefault(group, {}).setdefault(name, []).append(value)

    for i, path in enumerate(photos):
        source = path.parent.parent.name
        name = str(path.relative_to(args.data))
        rgb = read_image(path)
        m = measure_photo(rgb)
        if m is None:
            no_fundus.append(name)
            continue
        least = {grader: _detail_held(m.detail_spectrum, bar)[1] for grader, bar in BARS.items()}
        real_detail.append((least["grader256"], name, m.diameter))
        for group in (f"real/{source}", "real/all"):
            for grader, value in least.items():
                add(group, f"least_detail_{grader}", value)
            add(group, "sharpness", m.sharpness)
            add(group, "diameter", m.diameter)
        verdicts.setdefault(f"real/{source}", Counter())[verdict(assess_quality(rgb, input_size=INPUT).reason)] += 1
        if i % 20 == 0:  # the cost of the new measure on the quality patch
            n = 256
            green = np.ascontiguousarray(cv2.resize(rgb[..., 1], (n, n), interpolation=cv2.INTER_AREA).astype(np.float32))
            mask = np.zeros((n, n), bool)
            cv2.circle(mask.view(np.uint8), (n // 2, n // 2), int(0.85 * n / 2), 1, -1)
            t0 = time.perf_counter()
            _detail_spectrum(green, mask)
            spectrum_ms.append((time.perf_counter() - t0) * 1000)
        for variant, image in copies(rgb, m.diameter).items():
            v = measure_photo(image)
            if v is None:
                verdicts.setdefault(f"copy/{variant}", Counter())["no fundus"] += 1
                continue
            detail, value = _detail_held(v.detail_spectrum, BARS["grader256"])
            for group in (f"copy/{variant}", f"copy/{variant}/{source}"):
                add(group, "least_detail_grader256", value)
                add(group, "sharpness", v.sharpness)
            verdicts.setdefault(f"copy/{variant}", Counter())[verdict(assess_quality(image, input_size=INPUT).reason)] += 1
            if variant.startswith("up") and detail < BARS["grader256"]:
                held.setdefault(variant, []).append(detail)
        if (i + 1) % 200 == 0:
            print(f"{i + 1}/{len(photos)} photos, {time.time() - started:.0f} s", flush=True)

    real_detail.sort()
    real_min = min(v for v, _, _ in real_detail)
    by_size = {}
    for size in SIZES:
        worst = max(max(sets[f"copy/up{size}_{kind}"]["least_detail_grader256"])
                    for kind in ("bicubic", "lanczos", "bicubic_jpeg90", "lanczos_jpeg90"))
        caught = {kind: float(np.mean(np.asarray(sets[f"copy/up{size}_{kind}"]["least_detail_grader256"]) < FINE_DETAIL_THRESHOLD))
                  for kind in ("bicubic", "lanczos", "bicubic_jpeg90", "lanczos_jpeg90")}
        by_size[f"fundus{size}px"] = {"real_min": real_min, "copies_max": worst, "real_min_minus_copies_max": real_min - worst,
                                      "share_below_threshold": caught}
    result = {
        "what": "the least fine detail up to the grader's bar (_detail_held, decades: what FINE_DETAIL_THRESHOLD bounds) "
                "over real photos, their enlarged thumbnails and ordinary degradations; verdicts of assess_quality at "
                "the built-in grader's 256 px input; the detail (px) a flagged thumbnail is said to hold",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "command": "python " + " ".join(sys.argv),
        "cores": len(os.sched_getaffinity(0)),
        "data": str(args.data),
        "photos": len(photos),
        "no_fundus": no_fundus,
        "thresholds": {"FINE_DETAIL_THRESHOLD": FINE_DETAIL_THRESHOLD, "MIN_FUNDUS_SHARE": MIN_FUNDUS_SHARE,
                       "SHARPNESS_THRESHOLD": SHARPNESS_THRESHOLD},
        "margin_by_fundus_size_grader256": by_size,
        "least_detailed_real": [{"photo": p, "least_detail_grader256": v, "diameter": d} for v, p, d in real_detail[:15]],
        "verdicts_at_256": {group: dict(sorted(c.items())) for group, c in sorted(verdicts.items())},
        "detail_held_by_flagged_thumbnails_px": {variant: quantile_summary(v) for variant, v in sorted(held.items())},
        "sets": {group: {name: quantile_summary(values) for name, values in measures.items()} for group, measures in sorted(sets.items())},
        "synthetic": synthetic(),
        "detail_spectrum_ms": quantile_summary(spectrum_ms),
        "seconds": round(time.time() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("margin_by_fundus_size_grader256", "verdicts_at_256")}, indent=1))


if __name__ == "__main__":
    main()

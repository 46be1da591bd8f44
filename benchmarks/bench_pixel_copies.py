"""The "same picture" check (``drgrader.data.same_picture``), measured on every real photo in
../shared/data: how far a photo's copies are from it, and how near different photos come.

Each photo is decoded as ``drgrader predict`` decodes it for a grader of input ``--size``
(``drgrader.data.photo.decode_photo``: JPEGs at a reduced DCT scale, other formats whole) and
fingerprinted (``picture_print``, as predict stores it). Sets:

- ``copies``: the photo written again and decoded the same way: ``png`` (lossless), ``jpeg_q90``,
  ``jpeg_q75``, ``half_size`` and ``size_70pct`` (INTER_AREA to half and to 70%, JPEG q90): its
  distance from the photo;
  ``mirror_q90`` and ``mirror_q75`` (flipped left to right, JPEG), ``flipped_q90`` (top to
  bottom), ``turned_90_q90``, ``turned_180_q90`` and ``turned_270_q90`` (the pixels turned, JPEG
  q90): its distance from the photo laid down the same way. All must be caught (under the
  threshold).
- ``fellow_eyes``: a patient's two eyes, ``mirrored`` (one flipped: a real left eye against a
  real right one, the hardest case for the mirror check), ``as_they_are`` and
  ``any_orientation`` (the nearest of the 8 ways one can be laid down, as the check compares
  them); must not be caught.
- ``other_patients``: ``random_pairs`` of photos of two patients and ``nearest`` (each photo's
  nearest photo of another patient), both the nearest of the 8 ways; must not be caught.

Writes benchmarks/results/pixel_copies.json: quantiles per set (min, 0.1%, 1%, median, 99%,
99.9%, max), the threshold, the margins (threshold / farthest copy, nearest non-copy /
threshold), the closest pairs of different photos and of fellow eyes by name, and the cost per
photo (decode, fingerprint) and of comparing all pairs. One worker: run with OMP_NUM_THREADS=1.

    python benchmarks/bench_pixel_copies.py [--data ../shared/data] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from common import command_line, machine_info, quantile_summary
from drgrader.data.images import read_image
from drgrader.data.photo import decode_photo
from drgrader.data.same_picture import (
    AS_IS,
    MIRRORED,
    ORIENTATIONS,
    SAME_PICTURE,
    close_pairs,
    oriented,
    picture_print,
    print_grid,
)

ROOT = Path(__file__).resolve().parent
# name: (suffix, JPEG quality, scale, orientation: an index of same_picture.ORIENTATIONS)
COPIES = {"png": (".png", None, 1.0, AS_IS), "jpeg_q90": (".jpg", 90, 1.0, AS_IS), "jpeg_q75": (".jpg", 75, 1.0, AS_IS),
          "half_size": (".jpg", 90, 0.5, AS_IS), "size_70pct": (".jpg", 90, 0.7, AS_IS),
          "mirror_q90": (".jpg", 90, 1.0, MIRRORED), "mirror_q75": (".jpg", 75, 1.0, MIRRORED),
          "flipped_q90": (".jpg", 90, 1.0, 2), "turned_180_q90": (".jpg", 90, 1.0, 3), "turned_90_q90": (".jpg", 90, 1.0, 4),
          "turned_270_q90": (".jpg", 90, 1.0, 5)}
_SIDE = re.compile(r"^(?P<patient>.+?)[_-](?P<eye>left|right|L|R)$")



def write_copy(folder: Path, rgb: np.ndarray, name: str) -> Path:
    suffix, quality, scale, orientation = COPIES[name]
    image = rgb
    if scale != 1.0:
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    # the pixels laid down as the grids are (on the last two axes): channels first, then back
    image = np.ascontiguousarray(np.moveaxis(oriented(np.moveaxis(image, -1, 0), orientation), 0, -1))
    path = folder / f"{name}{suffix}"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [] if quality is None else [cv2.IMWRITE_JPEG_QUALITY, quality])
    return path


def fingerprint(path: Path, size: int) -> tuple[str, float]:
    """(fingerprint as predict keeps it, seconds it took beside the decode)."""
    rgb, _ = decode_photo(path, size)
    started = time.perf_counter()
    text = picture_print(rgb)
    return text, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "pixel_copies.json")
    parser.add_argument("--size", type=int, default=256, help="the grader's input size the photos are decoded for")
    parser.add_argument("--limit", type=int, default=0, help="photos per data set (0: all)")
    parser.add_argument("--pairs", type=int, default=20000, help="random pairs of different patients")
    parser.add_argument("--compare", type=int, default=50000, help="unrelated fingerprints whose comparison is timed")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one worker
    started = time.time()
    sources = sorted(p for p in args.data.glob("*/images") if p.is_dir())
    photos = []
    for folder in sources:
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        photos += found[: args.limit] if args.limit else found
    names, patients, eyes, prints = [], [], [], []
    copies: dict[str, list[float]] = {name: [] for name in COPIES}
    missing: dict[str, int] = {}
    decode_s, print_s = [], []
    with tempfile.TemporaryDirectory(prefix="bench-pixel-copies-") as tmp:
        for path in photos:
            t0 = time.perf_counter()
            text, spent = fingerprint(path, args.size)
            decode_s.append(time.perf_counter() - t0 - spent)
            print_s.append(spent)
            grid = print_grid(text)
            side = _SIDE.match(path.stem)
            names.append(f"{path.parent.parent.name}/{path.stem}")
            patients.append(f"{path.parent.parent.name}/{side['patient'] if side else path.stem}")
            eyes.append(side["eye"].lower()[0] if side else "")
            prints.append(grid)
            if grid is None:
                missing["photos"] = missing.get("photos", 0) + 1
                continue
            full = read_image(path)
            for name, (_, _, _, orientation) in COPIES.items():
                copy = print_grid(fingerprint(write_copy(Path(tmp), full, name), args.size)[0])
                if copy is None:
                    missing[name] = missing.get(name, 0) + 1
                    continue
                copies[name].append(1.0 - float((oriented(grid, orientation) * copy).sum()))

    known = [k for k, g in enumerate(prints) if g is not None]
    stack = np.stack([prints[k] for k in known])
    grids = stack.reshape(len(known), -1)
    patient = np.array([patients[k] for k in known])
    # photo a against photo b as it is, mirrored, and laid down the nearest of the 8 ways (which)
    same = 1.0 - grids @ grids.T
    mirror = 1.0 - grids @ oriented(stack, MIRRORED).reshape(len(known), -1).T
    any_way, ways = same.copy(), np.zeros(same.shape, np.int8)
    for k in range(1, len(ORIENTATIONS)):
        distance = mirror if k == MIRRORED else 1.0 - grids @ oriented(stack, k).reshape(len(known), -1).T
        nearer = distance < any_way
        any_way[nearer], ways[nearer] = distance[nearer], k
    own = patient[:, None] == patient[None, :]
    fellows_mirrored, fellows_as_they_are, fellows_any, fellow_pairs = [], [], [], []
    for a, b in zip(*np.nonzero(np.triu(own, 1))):
        if {eyes[known[a]], eyes[known[b]]} == {"l", "r"}:
            fellows_mirrored.append(float(mirror[a, b]))
            fellows_as_they_are.append(float(same[a, b]))
            fellows_any.append(float(any_way[a, b]))
            fellow_pairs.append((any_way[a, b], a, b))
    closest_fellows = [{"photos": [names[known[a]], names[known[b]]], "distance": float(d),
                        "as": ORIENTATIONS[ways[a, b]][0]} for d, a, b in sorted(fellow_pairs)[:5]]
    either = any_way.copy()
    either[own] = np.inf  # a photo itself and its patient's other photos
    nearest = either.min(axis=1)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(known), (2, args.pairs * 2))
    keep = patient[a] != patient[b]
    random_pairs = either[a[keep][: args.pairs], b[keep][: args.pairs]]
    closest = []
    for k in np.argsort(nearest)[:10:2]:  # each pair appears twice, once from each side
        j = int(np.argmin(either[k]))
        closest.append({"photos": [names[known[k]], names[known[j]]], "distance": float(nearest[k]),
                        "as": ORIENTATIONS[ways[k, j]][0]})

    # The comparison's cost: all pairs of these photos, and of --compare unrelated fingerprints.
    t0 = time.perf_counter()
    found = close_pairs([prints[k] for k in known])
    compare_real_s = time.perf_counter() - t0
    noise = rng.standard_normal((args.compare, 32, 32)).astype(np.float32)
    noise -= noise.mean(axis=(1, 2), keepdims=True)
    noise /= np.linalg.norm(noise.reshape(len(noise), -1), axis=1)[:, None, None]
    t0 = time.perf_counter()
    close_pairs(list(noise))
    compare_many_s = time.perf_counter() - t0

    farthest_copy = max(max(v) for v in copies.values() if v)
    nearest_other = min(float(nearest.min()), float(random_pairs.min()))
    nearest_fellow = min(fellows_any) if fellows_any else float("inf")
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "command": command_line(),
        "machine": machine_info()["summary"],
        "photos": len(photos),
        "data_sets": [p.parent.name for p in sources],
        "decode_size": args.size,
        "without_fingerprint": missing,
        "threshold": SAME_PICTURE,
        "copies": {name: quantile_summary(v) for name, v in copies.items()},
        "fellow_eyes": {"mirrored": quantile_summary(fellows_mirrored), "as_they_are": quantile_summary(fellows_as_they_are),
                        "any_orientation": quantile_summary(fellows_any)},
        "other_patients": {"random_pairs": quantile_summary(random_pairs), "nearest": quantile_summary(nearest)},
        "closest_other_photos": closest,
        "closest_fellow_eyes": closest_fellows,
        "close_pairs_found_among_the_photos": [[names[i], names[j]] for i, j in
                                               ((known[i], known[j]) for i, j, _, _ in found)],
        "margins": {
            "farthest_copy": farthest_copy,
            "nearest_other_patient": nearest_other,
            "nearest_fellow_eye": nearest_fellow,
            "threshold_over_farthest_copy": SAME_PICTURE / farthest_copy if farthest_copy > 0 else None,
            "nearest_other_over_threshold": nearest_other / SAME_PICTURE,
            "nearest_fellow_over_threshold": nearest_fellow / SAME_PICTURE,
        },
        "cost": {
            "decode_ms_per_photo": 1000 * float(np.median(decode_s)),
            "fingerprint_ms_per_photo": 1000 * float(np.median(print_s)),
            "compare_all_pairs_s": {f"{len(known)}_photos": compare_real_s, f"{args.compare}_unrelated": compare_many_s},
            "threads": "one worker (OMP/BLAS threads as set in the environment)",
        },
        "wall_s": time.time() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["margins"], indent=2))
    print(f"wrote {args.out} ({result['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()

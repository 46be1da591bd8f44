"""Benchmark: building the preprocessed cache vs a plain decode-then-process pipeline.

Measures, on 3-5 MP JPEG originals (synthetic, or a folder of your own):

* ``cache``: images/s of one process running build_cache's per-image function
  (``drgrader.data.cache._cache_one``: scale-on-decode, fundus search, quality check,
  preprocessing, atomic .npy + index-row writes);
* ``plain``: images/s of the same steps after a full-size ``cv2.imread`` decode
  (what a straightforward pipeline does), same processing, same writes;
* ``build_cache`` with 1, 2, ... worker processes (scaling);
* the cache file format: .npy vs PNG load and encode times at the model input size;
* the peak memory (VmHWM) of one process running each pipeline over all the
  images, each in a fresh process (what one cache worker needs).

Usage::

    PYTHONPATH=src python benchmarks/bench_preprocess.py --images 8 --size 512 --workers 1 2
    PYTHONPATH=src python benchmarks/bench_preprocess.py --folder ../shared/data/rahim-originals/images

Results are merged, under ``--label`` (default: source and size), into ``--out`` (default
benchmarks/results/preprocess.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from common import RESULTS, command_line, machine_info, merge_results, now, peak_rss_mb
from drgrader.config import DataConfig
from drgrader.data import cache as cache_mod
from drgrader.data.fundus import find_fundus
from drgrader.data.preprocess import preprocess_image
from drgrader.data.quality import assess_quality

JPEG_QUALITY = 92  # typical of fundus camera exports


def make_originals(folder: Path, count: int, height: int, seed: int) -> list[Path]:
    """Synthetic camera originals: drgrader.synth fundus photos, or plain discs without it."""
    try:
        from drgrader.synth import make_fundus
    except ImportError:
        make_fundus = None
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        aspect = ("3:2", "4:3")[i % 2]
        if make_fundus is not None:
            rgb = make_fundus(i % 5, rng, height=height, aspect=aspect, clipped=i % 3 == 0)
        else:
            width = int(height * (1.5 if aspect == "3:2" else 4 / 3))
            rgb = np.zeros((height, width, 3), np.uint8)
            cv2.circle(rgb, (width // 2, height // 2), int(0.47 * height), (200, 110, 50), -1, cv2.LINE_AA)
            noise = rng.normal(0, 3, rgb.shape)
            rgb = np.clip(rgb + noise * (rgb > 0), 0, 255).astype(np.uint8)
        path = folder / f"{i}_left.jpeg"
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        paths.append(path)
    return paths


def plain_one(path: Path, out: Path, data_cfg: DataConfig) -> None:
    """The straightforward pipeline: full-size decode, then the same processing and writes."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    circle = find_fundus(rgb)
    quality = assess_quality(rgb, circle)
    image = preprocess_image(rgb, data_cfg.preprocess, data_cfg.image_size, circle)
    # The same writes as the cache, so that only decoding and processing differ.
    cache_mod._write_atomic(out / f"{path.stem}.npy", cache_mod._npy_bytes(image))
    row = {"gradable": quality.gradable, "score": quality.score}
    cache_mod._write_atomic(out / f"{path.stem}.json", json.dumps(row).encode("utf-8"))


def interleaved_rates(pipelines: dict, count: int, repeats: int) -> dict[str, float]:
    """Images per second of each pipeline (one process). The pipelines take turns image by
    image, and each image counts its fastest repeat: load from other processes on a shared
    machine then slows both alike instead of whichever happened to run at the busy moment."""
    best = {name: [float("inf")] * count for name in pipelines}
    for _ in range(repeats):
        for i in range(count):
            for name, fn in pipelines.items():
                start = time.perf_counter()
                fn(i)
                best[name][i] = min(best[name][i], time.perf_counter() - start)
    return {name: count / sum(times) for name, times in best.items()}


def cache_tasks(paths: list[Path], out: Path, data_cfg: DataConfig) -> list[tuple]:
    """build_cache's per-image task tuples (what ``cache._cache_one`` takes) for ``paths``."""
    settings = cache_mod.cache_settings(data_cfg)
    return [(p.stem, str(p), str(out), settings["preprocess"], data_cfg.image_size) for p in paths]


def pipeline_peak_mb(pipeline: str, paths: list[Path], out: Path, data_cfg: DataConfig) -> float:
    """Peak resident memory of a fresh process running one pipeline over all ``paths``."""
    cv2.setNumThreads(1)
    out.mkdir(parents=True, exist_ok=True)
    if pipeline == "cache":
        for task in cache_tasks(paths, out, data_cfg):
            cache_mod._cache_one(task)
    else:
        for path in paths:
            plain_one(path, out, data_cfg)
    return round(peak_rss_mb(), 1)


def format_benchmark(images: list[np.ndarray], repeats: int = 5) -> dict:
    """ms per image to write and read the cache file: .npy (chosen) vs PNG levels."""
    tmp = Path(tempfile.mkdtemp(prefix="drgrader-fmt-"))
    results = {}
    try:
        for name in ("npy", "png1", "png3"):
            encode = load = 0.0
            size = 0
            for i, image in enumerate(images):
                path = tmp / f"{i}.{name[:3]}"
                start = time.perf_counter()
                for _ in range(repeats):
                    if name == "npy":
                        data = cache_mod._npy_bytes(image)
                    else:
                        level = int(name[3:])
                        ok, buf = cv2.imencode(
                            ".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, level]
                        )
                        data = buf.tobytes()
                encode += (time.perf_counter() - start) / repeats
                path.write_bytes(data)
                size += len(data)
                start = time.perf_counter()
                for _ in range(repeats):
                    cache_mod.load_cached(path)
                load += (time.perf_counter() - start) / repeats
            n = len(images)
            results[name] = {
                "encode_ms": round(1000 * encode / n, 2),
                "load_ms": round(1000 * load / n, 2),
                "kb": round(size / n / 1024, 1),
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8, help="synthetic originals to generate")
    parser.add_argument("--height", type=int, default=1800, help="height of synthetic originals (px)")
    parser.add_argument("--folder", type=Path, help="use the JPEGs in this folder instead")
    parser.add_argument("--size", type=int, default=512, help="model input size")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="process counts to time")
    parser.add_argument("--repeats", type=int, default=3, help="timing passes (per image, the fastest counts)")
    parser.add_argument("--ben-graham", action="store_true", help="also apply Ben Graham's normalisation")
    parser.add_argument("--label", help="row name in the results file (default: source and size)")
    parser.add_argument("--out", type=Path, default=RESULTS / "preprocess.json", help="results JSON (merged by label)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="drgrader-bench-"))
    try:
        if args.folder:
            paths = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
            paths = paths[: args.images] if args.images else paths
        else:
            paths = make_originals(work / "originals", args.images, args.height, seed=0)
        if not paths:
            raise SystemExit("no JPEG images to benchmark")
        shapes = [cv2.imread(str(p), cv2.IMREAD_REDUCED_GRAYSCALE_8).shape for p in paths]
        megapixels = float(np.mean([64 * h * w for h, w in shapes]) / 1e6)

        preprocess = {"ben_graham": True} if args.ben_graham else {}
        data_cfg = DataConfig(image_size=args.size, preprocess=preprocess, cache_dir=work / "cache")
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)  # per-process rates: one OpenCV thread, as in the cache workers

        cache_out, plain_out = work / "one", work / "plain"
        cache_out.mkdir()
        plain_out.mkdir()
        tasks = cache_tasks(paths, cache_out, data_cfg)
        rates = interleaved_rates(
            {
                "cache": lambda i: cache_mod._cache_one(tasks[i]),
                "plain": lambda i: plain_one(paths[i], plain_out, data_cfg),
            },
            len(paths),
            args.repeats,
        )
        cache_rate, plain_rate = rates["cache"], rates["plain"]
        cv2.setNumThreads(threads)

        manifest = pd.DataFrame({"image_id": [p.stem for p in paths], "path": [str(p) for p in paths]})
        scaling = {}
        for workers in args.workers:
            run_cfg = data_cfg.model_copy(update={"cache_dir": work / f"cache-{workers}"})
            start = time.perf_counter()
            index = cache_mod.build_cache(manifest, run_cfg, workers=workers, progress=False)
            elapsed = time.perf_counter() - start
            if not index["ok"].all():
                raise SystemExit(f"build_cache failed on: {index.loc[~index['ok'], ['image_id', 'error']]}")
            scaling[str(workers)] = round(len(paths) / elapsed, 2)

        cached = [cache_mod.load_cached(p) for p in sorted(cache_out.glob("*.npy"))]
        formats = format_benchmark(cached)
        peak_mb = {}
        for pipeline in ("cache", "plain"):
            with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
                job = pool.submit(pipeline_peak_mb, pipeline, paths, work / f"peak-{pipeline}", data_cfg)
                peak_mb[pipeline] = job.result()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    source = str(args.folder) if args.folder else f"drgrader.synth, height {args.height}, JPEG q{JPEG_QUALITY}"
    label = args.label or f"{args.folder.parent.name if args.folder else 'synthetic'}-{megapixels:.1f}MP-{args.size}px"
    results = {
        "date": now(),
        "machine": machine_info(),
        "command": command_line(),
        "images": len(paths),
        "megapixels": round(megapixels, 2),
        "source": source,
        "size": args.size,
        "preprocess": data_cfg.preprocess.model_dump(),
        "per_process_images_per_s": {"cache": round(cache_rate, 2), "plain": round(plain_rate, 2)},
        "speedup": round(cache_rate / plain_rate, 2),
        "build_cache_images_per_s_by_workers": scaling,
        "cache_format_ms": formats,
        "peak_rss_mb_one_process": peak_mb,
    }
    print(f"{len(paths)} images, {megapixels:.1f} MP, model input {args.size} px")
    print(f"{'pipeline (1 process)':<28}{'images/s':>10}")
    print(f"{'plain (full decode)':<28}{plain_rate:>10.2f}")
    print(f"{'cache (scale-on-decode)':<28}{cache_rate:>10.2f}   speed-up x{cache_rate / plain_rate:.2f}")
    print(f"peak memory of one process: cache {peak_mb['cache']:.0f} MB, plain {peak_mb['plain']:.0f} MB")
    for workers, rate in scaling.items():
        print(f"{'build_cache, ' + workers + ' workers':<28}{rate:>10.2f}")
    print(f"{'cache file':<12}{'encode ms':>10}{'load ms':>10}{'KB':>8}")
    for name, row in formats.items():
        print(f"{name:<12}{row['encode_ms']:>10.2f}{row['load_ms']:>10.2f}{row['kb']:>8.0f}")
    merge_results(args.out, {label: results})
    print(f"written to {args.out} as {label!r}")


if __name__ == "__main__":
    main()

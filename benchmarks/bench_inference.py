"""Images per second of one bundle: PyTorch eager vs ONNX Runtime, at the bundle's input size.

Measures the model alone (float pixels in, scores out; no decoding or preprocessing), batch
after batch for ``--seconds`` per backend after a warm-up, on the CPU. Each backend runs in a
fresh process, so its peak memory (VmHWM: loading the bundle, the session and the
batches) is its own.

    python benchmarks/bench_inference.py                         # random-weight resnet18 at 224 px
    python benchmarks/bench_inference.py --bundle runs/x/bundle --batch-size 32 --seconds 20
    python benchmarks/bench_inference.py --backbone test_resnet --size 64 --seconds 2   # smoke

Writes a JSON file (``--out``, default benchmarks/results/bench_inference.json) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from common import command_line, machine_info, now, peak_rss_mb


def build_bundle(folder: Path, backbone: str, size: int) -> Path:
    """A random-weight grader bundle (speed does not depend on the weights)."""
    import torch

    from drgrader.config import ExperimentConfig, config_to_dict
    from drgrader.inference.bundle import save_bundle
    from drgrader.models.factory import GraderNet, ScoringNet, input_mean_std

    cfg = ExperimentConfig.model_validate({"data": {"image_size": size}, "model": {"backbone": backbone}})
    torch.manual_seed(0)
    net = GraderNet(backbone, task="grade", kind="softmax5").eval()
    return save_bundle(folder / "bundle", ScoringNet(net, *input_mean_std(backbone, "model")), config=config_to_dict(cfg), thresholds={})


def measure(runner, pixels: np.ndarray, seconds: float, warmup: int = 2) -> dict:
    for _ in range(warmup):
        runner(pixels)
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        t0 = time.perf_counter()
        runner(pixels)
        times.append(time.perf_counter() - t0)
    total = sum(times)
    return {
        "batches": len(times),
        "images_per_s": len(times) * len(pixels) / total,
        "ms_per_batch_median": 1000 * statistics.median(times),
        "ms_per_image": 1000 * total / (len(times) * len(pixels)),
    }


def measure_backend(folder: Path, backend: str, shape: tuple, seconds: float, threads: int | None) -> dict:
    """Throughput and peak memory of one backend; runs in a fresh process."""
    from drgrader.inference.bundle import load_bundle
    from drgrader.runtime import setup_torch_threads, tune_malloc

    tune_malloc()
    setup_torch_threads(threads)
    pixels = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
    result = measure(load_bundle(folder, backend).runner, pixels, seconds)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, help="bundle folder (default: build a random-weight one)")
    parser.add_argument("--backbone", default="resnet18", help="backbone of the built bundle")
    parser.add_argument("--size", type=int, default=224, help="input size of the built bundle")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per backend")
    parser.add_argument("--threads", type=int, help="PyTorch intra-op threads (default: all cores)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "bench_inference.json")
    args = parser.parse_args(argv)

    from drgrader.runtime import setup_torch_threads, tune_malloc

    tune_malloc()
    threads = setup_torch_threads(args.threads)

    import onnxruntime as ort

    from drgrader.inference.bundle import read_manifest
    from drgrader.inference.export import export_command

    with tempfile.TemporaryDirectory(prefix="drgrader-bench-") as tmp:
        bundle_dir = args.bundle or build_bundle(Path(tmp), args.backbone, args.size)
        manifest = read_manifest(bundle_dir)
        if manifest.get("members"):
            raise SystemExit("benchmark a single-model bundle, not an ensemble")
        onnx_dir = bundle_dir
        if not (bundle_dir / "model.onnx").is_file():
            onnx_dir = export_command(bundle_dir, out=Path(tmp) / "onnx")
        size = int(manifest["input_size"])
        shape = (args.batch_size, 3, size, size)
        results = {}
        for backend, folder in (("torch", bundle_dir), ("onnx", onnx_dir)):
            with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
                results[backend] = pool.submit(measure_backend, folder, backend, shape, args.seconds, threads).result()

    report = {
        "date": now(),
        "machine": machine_info(),
        "command": command_line(),
        "bundle": str(args.bundle) if args.bundle else f"random {args.backbone}",
        "backbone": manifest["backbone"],
        "input_size": size,
        "batch_size": args.batch_size,
        "threads": threads,
        "onnxruntime_version": ort.__version__,
        "results": results,
        "onnx_speedup": results["onnx"]["images_per_s"] / results["torch"]["images_per_s"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    print(f"{report['backbone']} at {size} px, batch {args.batch_size}, {threads} threads")
    print(f"{'backend':<8} {'images/s':>10} {'ms/batch':>10} {'ms/image':>10} {'peak MB':>10}")
    for backend, r in results.items():
        print(
            f"{backend:<8} {r['images_per_s']:>10.1f} {r['ms_per_batch_median']:>10.1f} {r['ms_per_image']:>10.2f}"
            f" {r['peak_rss_mb']:>10.0f}"
        )
    print(f"ONNX Runtime / PyTorch: {report['onnx_speedup']:.2f}x   (written to {args.out})")
    return report


if __name__ == "__main__":
    main()

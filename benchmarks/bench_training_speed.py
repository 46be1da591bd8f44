"""Training throughput of drgrader's full loop against the bare model, per backbone.

``loop``: ``drgrader train`` itself (the Lightning Trainer with GraderModule and
FundusDataModule: cached images, sampler, augmentation, loader workers, loggers, callbacks, LR
schedule), cut to one epoch of ``--warmup + --steps`` batches. The last ``--steps`` steps are
timed from the per-step wall times in the run's TensorBoard log, data loading included; the
run's validation and evaluation afterwards are not timed.
``bare``: the same network, loss and optimiser (same config, channels_last as training) doing
forward + backward + optimizer.step on one random batch of the same shape, in the same process.
``loop_vs_bare`` = loop images/s / bare images/s; the target is >= 0.9 (within 10%).

Each backbone runs in a fresh process, so its peak memory (VmHWM, after the bare
phase and after the loop) is its own. Weights are random (model.pretrained=none): speed does
not depend on them. CPU only; torch threads = the cores this process may use, as in training
(restrict them with ``taskset -c 0 python ...``).

    python benchmarks/bench_training_speed.py                      # resnet18, mobilenetv2_100 at 224
    python benchmarks/bench_training_speed.py --data ../shared/data/eyepacs-256 --steps 40
    python benchmarks/bench_training_speed.py --backbones test_resnet --size 48 --batch-size 4 --steps 2   # smoke

Writes ``--out`` (default benchmarks/results/training_speed.json) and prints a table.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING

from common import RESULTS, command_line, machine_info, now, peak_rss_mb

if TYPE_CHECKING:
    from drgrader.config import ExperimentConfig

TARGET = 0.9


def speed_config(
    config: str | None, sets: list[str], data: Path, backbone: str, size: int, batch_size: int, cache_dir: Path | None
) -> ExperimentConfig:
    """The experiment being timed: ``config`` (or the defaults) with the benchmark's settings."""
    from drgrader.config import load_config

    overrides = [
        f"data.root={data}",
        f"data.image_size={size}",
        f"model.backbone={backbone}",
        "model.pretrained=none",
        f"train.batch_size={batch_size}",
        "train.accelerator=cpu",
        "train.devices=1",
    ]
    if cache_dir is not None:
        overrides.append(f"data.cache_dir={cache_dir}")
    return load_config(config, list(sets) + overrides)


def measure_bare(cfg: ExperimentConfig, steps: int, warmup: int) -> dict:
    """forward + loss + backward + optimizer.step of the config's network on a random batch."""
    import torch

    from drgrader.models.factory import create_model, input_mean_std
    from drgrader.training.module import GraderModule

    # The module gives the same loss, optimiser and channels_last handling as training; without
    # the LR schedule, which needs a Trainer (stepping it is part of the loop's cost).
    no_schedule = cfg.model_copy(update={"train": cfg.train.model_copy(update={"scheduler": "none"})})
    net = create_model(cfg.model, cfg.train.loss)
    module = GraderModule(no_schedule, net, *input_mean_std(cfg.model.backbone, cfg.data.normalize))
    module.train()
    optimizer = module.configure_optimizers()
    size, batch = cfg.data.image_size, cfg.train.batch_size
    x = torch.randn(batch, 3, size, size)
    if cfg.train.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    grades = torch.randint(0, 5, (batch,))
    for step in range(warmup + steps):
        if step == warmup:
            started = time.perf_counter()
        loss = module.loss_fn(module.net(x), grades)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    elapsed = time.perf_counter() - started
    return {"steps": steps, "images": steps * batch, "seconds": elapsed, "images_per_s": steps * batch / elapsed}


def step_end_times(run_dir: Path) -> list[float]:
    """Wall-clock time each training step was logged (TensorBoard's train_loss_step events;
    Lightning logs them after the optimiser step, every step as ``train`` sets it up)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "logs" / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    return [e.wall_time for e in sorted(events.Scalars("train_loss_step"), key=lambda e: e.step)]


def measure_loop(cfg: ExperimentConfig, steps: int, warmup: int, workdir: Path) -> dict:
    """``drgrader train`` itself, cut to one epoch of ``warmup + steps`` batches; the timing of
    the last ``steps`` comes from its TensorBoard log, so it covers exactly the loop ``train``
    runs (data loading, loggers, callbacks, schedule) and nothing around it."""
    from drgrader.workflows.train import train

    short = cfg.model_copy(
        update={
            "train": cfg.train.model_copy(update={"epochs": 1, "limit_train_batches": warmup + steps}),
            # the run's evaluation is not timed; keep it quick
            "eval": cfg.eval.model_copy(update={"bootstrap": 0, "tta": ["orig"]}),
        }
    )
    run_dir = train(short, out=workdir / "run", progress=False)
    ends = step_end_times(run_dir)
    if len(ends) < warmup + steps:
        raise SystemExit(
            f"{cfg.data.root}: the train split gave {len(ends)} batches of {cfg.train.batch_size}, "
            f"fewer than --warmup + --steps = {warmup + steps}; use a larger data set or fewer steps"
        )
    elapsed = ends[warmup + steps - 1] - ends[warmup - 1]
    images = steps * cfg.train.batch_size
    return {"steps": steps, "images": images, "seconds": elapsed, "images_per_s": images / elapsed}


def measure_backbone(cfg: ExperimentConfig, steps: int, warmup: int) -> dict:
    """Bare then loop, in this (fresh) process; with their throughput ratio and peak memory."""
    from drgrader.runtime import setup_torch_threads, tune_malloc

    tune_malloc()
    import lightning as L
    import torch

    # As train() sets up its process, so the bare phase runs under the same settings.
    setup_torch_threads()
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    if cfg.train.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    bare = measure_bare(cfg, steps, warmup)
    rss_bare = peak_rss_mb()
    with tempfile.TemporaryDirectory(prefix="drgrader-speed-") as workdir:
        loop = measure_loop(cfg, steps, warmup, Path(workdir))
    ratio = loop["images_per_s"] / bare["images_per_s"]
    return {
        "bare": bare,
        "loop": loop,
        "loop_vs_bare": ratio,
        "within_target": ratio >= TARGET,
        "peak_rss_mb": {"after_bare": rss_bare, "after_loop": peak_rss_mb()},
        "torch_threads": torch.get_num_threads(),
    }


def synthesise(folder: Path, train_images: int, train_share: float, size: int, workers: int) -> Path:
    """A synthetic Kaggle-layout set whose train split (``train_share`` of the patients, two
    images each) holds at least about ``train_images`` images."""
    from drgrader.synth import make_dataset

    patients = math.ceil(1.1 * train_images / 2 / train_share) + 5
    make_dataset(folder, patients, seed=0, height=max(64, size), workers=workers, progress=False)
    return folder


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=["resnet18", "mobilenetv2_100"], help="timm model names")
    parser.add_argument("--size", type=int, default=224, help="input size in pixels")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="timed optimiser steps per mode")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (at least 1)")
    parser.add_argument("--data", type=Path, help="data-set folder (default: synthesise one in a temp folder)")
    parser.add_argument("--config", help="experiment YAML whose train/data settings to time (default: the defaults)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--out", type=Path, default=RESULTS / "training_speed.json")
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")

    from drgrader.config import load_config
    from drgrader.io import atomic_write_json
    from drgrader.runtime import cpu_count

    results = {}
    with tempfile.TemporaryDirectory(prefix="drgrader-speed-data-") as tmp:
        data, cache_dir = args.data, None
        if data is None:
            print("synthesising a data set ...", flush=True)
            split = load_config(args.config, args.set).data.split
            needed = (args.warmup + args.steps) * args.batch_size
            data = synthesise(Path(tmp) / "data", needed, 1 - split.val - split.test, args.size, cpu_count())
            cache_dir = Path(tmp) / "cache"
        for backbone in args.backbones:
            cfg = speed_config(args.config, args.set, data, backbone, args.size, args.batch_size, cache_dir)
            # spawn: a fresh process per backbone, so peak memory and thread pools are its own.
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                results[backbone] = pool.submit(measure_backbone, cfg, args.steps, args.warmup).result()
            print(f"{backbone}: loop/bare {results[backbone]['loop_vs_bare']:.2f}", flush=True)

    report = {
        "date": now(),
        "machine": machine_info(),
        "command": command_line(),
        "settings": {
            "size": args.size,
            "batch_size": args.batch_size,
            "steps": args.steps,
            "warmup": args.warmup,
            "data": str(args.data) if args.data else "synthetic (drgrader.synth)",
            "config": args.config or "defaults",
            "overrides": args.set,
            "target_loop_vs_bare": TARGET,
        },
        "results": results,
    }
    atomic_write_json(args.out, report)

    print(f"\ntraining at {args.size} px, batch {args.batch_size}, {report['machine']['summary']}")
    print(f"{'backbone':<18} {'bare img/s':>10} {'loop img/s':>10} {'loop/bare':>9} {'peak MB':>8}")
    for backbone, r in results.items():
        flag = "" if r["within_target"] else "  below target"
        print(
            f"{backbone:<18} {r['bare']['images_per_s']:>10.1f} {r['loop']['images_per_s']:>10.1f} "
            f"{r['loop_vs_bare']:>9.2f} {r['peak_rss_mb']['after_loop']:>8.0f}{flag}"
        )
    print(f"(written to {args.out})")
    return report


if __name__ == "__main__":
    main()

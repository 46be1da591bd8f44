"""Training-step speed of one backbone under each numeric setting: fp32 or bf16 autocast,
channels_last or not, eager or ``torch.compile``; on this machine's CPU.

The step is the bare one (forward + loss + backward + AdamW step on one random batch of the
recipe's shape, the recipe's loss), as ``bench_training_speed.py``'s ``bare``. bf16 runs the
step under ``torch.autocast("cpu", dtype=torch.bfloat16)``, which is what Lightning's
``precision="bf16-mixed"`` does on the CPU. Each setting runs in a fresh process. What the CPU
offers (AVX-512 BF16, VNNI, AMX) is recorded beside the figures: bf16 is only fast where oneDNN
has native bf16 kernels, so the measurement decides, not the expectation.

    python benchmarks/bench_precision.py --backbone tf_efficientnet_lite2 --size 256 --steps 12
    python benchmarks/bench_precision.py --backbone test_resnet --size 48 --batch-size 4 --steps 2   # smoke

Writes ``--out`` (default benchmarks/results/precision_speed.json) and prints a table.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from common import CPU_FEATURES, RESULTS, command_line, machine_info, now

SETTINGS = {
    "fp32, channels_last": {"bf16": False, "channels_last": True, "compile": False},
    "fp32, contiguous": {"bf16": False, "channels_last": False, "compile": False},
    "bf16 autocast, channels_last": {"bf16": True, "channels_last": True, "compile": False},
    "fp32, channels_last, torch.compile": {"bf16": False, "channels_last": True, "compile": True},
    "bf16 autocast, channels_last, torch.compile": {"bf16": True, "channels_last": True, "compile": True},
}


def measure(backbone: str, size: int, batch: int, steps: int, warmup: int, setting: dict) -> dict:
    """Seconds per step of one setting, in this (fresh) process."""
    from drgrader.runtime import setup_torch_threads, tune_malloc

    tune_malloc()
    import torch

    from drgrader.config import load_config
    from drgrader.models.factory import create_model

    setup_torch_threads()
    torch.manual_seed(0)
    cfg = load_config(None, [f"model.backbone={backbone}", "model.pretrained=none", "model.task=grade", "train.loss=mse"])
    net = create_model(cfg.model, cfg.train.loss)
    fmt = torch.channels_last if setting["channels_last"] else torch.contiguous_format
    net = net.to(memory_format=fmt)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    step_net = torch.compile(net) if setting["compile"] else net
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=fmt)
    target = torch.rand(batch) * 4
    net.train()
    compile_s = None
    for i in range(warmup + steps):
        if i == warmup:
            started = time.perf_counter()
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=setting["bf16"]):
            out = step_net(x)
        loss = torch.nn.functional.mse_loss(out.float().reshape(-1), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i == 0:
            compile_s = time.perf_counter() - t0
    elapsed = time.perf_counter() - started
    return {**setting, "steps": steps, "seconds": round(elapsed, 4), "images_per_s": round(steps * batch / elapsed, 2),
            "first_step_s": round(compile_s, 1), "torch_threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="tf_efficientnet_lite2")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--out", type=Path, default=RESULTS / "precision_speed.json")
    args = parser.parse_args(argv)

    from drgrader.io import atomic_write_json

    results = {}
    for name in args.settings:
        # spawn: a fresh process per setting, so thread pools and compiled graphs are its own
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            results[name] = pool.submit(measure, args.backbone, args.size, args.batch_size, args.steps, args.warmup,
                                        SETTINGS[name]).result()
        print(f"{name}: {results[name]['images_per_s']:.1f} images/s", flush=True)
    baseline = results.get("fp32, channels_last")
    for r in results.values():
        r["vs_fp32_channels_last"] = round(r["images_per_s"] / baseline["images_per_s"], 2) if baseline else None
    report = {
        "date": now(),
        "machine": machine_info(),
        "command": command_line(),
        "settings": {"backbone": args.backbone, "size": args.size, "batch_size": args.batch_size,
                     "steps": args.steps, "warmup": args.warmup},
        "results": results,
    }
    atomic_write_json(args.out, report)
    print(f"\n{args.backbone} at {args.size} px, batch {args.batch_size}; {report['machine']['summary']}, "
          f"CPU features: {', '.join(report['machine']['cpu_features']) or 'none of ' + ', '.join(CPU_FEATURES)}")
    print(f"{'setting':<46} {'images/s':>9} {'vs fp32':>8}")
    for name, r in results.items():
        print(f"{name:<46} {r['images_per_s']:>9.1f} {r['vs_fp32_channels_last']:>8.2f}")
    print(f"(written to {args.out})")
    return report


if __name__ == "__main__":
    main()

"""Can any int8 graph of a bundle run at twice the float graph's images/s on this CPU?

`drgrader export --int8` climbs a ladder of recipes until one keeps the float grades (the gate);
on the built-in grader the nearest recipe ran at 0.59x the float speed here. This benchmark asks
the other question first: how fast is each int8 graph, whatever its accuracy, from the fully
quantized one down to the ladder's rungs, so that quantization-aware fine-tuning (which could only
make a fast graph accurate, not a slow graph fast) is tried only where it could pay.

    python benchmarks/bench_int8_speed.py /work/exp/lever-mthour-f0/fold-0/bundle --label builtin-multitask

Each graph is calibrated on ``--calibration`` training photos of the bundle's run with MinMax (the
calibration method changes the ranges, not the graph's speed) and timed like the export's gate
(batch 16 of validation photos, 2-view TTA as the bundle predicts, ``--seconds`` each after a
warm-up), all in this one process. With ``--agreement`` each graph is also compared with the
float one on every validation photo (share of equal grades, kappa, referable AUC).
Results go to benchmarks/results/int8_speed.json under ``--label``; a table is printed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from common import RESULTS, command_line, machine_info, merge_results, now

VARIANTS = (  # (calibration, layers kept in float, operators quantized)
    ("minmax", (), "compute"),
    ("minmax", ("stem", "head"), "compute"),
    ("minmax", ("stem", "head", "depthwise"), "compute"),
    ("minmax", ("head",), "all"),
    ("minmax", ("stem", "head"), "all"),
    ("minmax", ("stem", "head", "depthwise"), "all"),
)


def main() -> None:
    import onnxruntime as ort

    from drgrader.inference.bundle import load_bundle
    from drgrader.inference.export import export_onnx
    from drgrader.inference.quantize import Recipe, images_per_s, quantize_onnx, session_runner
    from drgrader.workflows.int8 import compare, run_photos

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="the bundle/ folder of a training run (manifest.csv, split.csv beside it)")
    parser.add_argument("--label", required=True)
    parser.add_argument("--calibration", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--agreement", action="store_true", help="also compare every graph with float on the validation photos")
    args = parser.parse_args()

    bundle = load_bundle(args.bundle, "torch")
    calibration, photos, grades = run_photos(args.bundle, bundle, calibration=args.calibration)
    pixels = np.ascontiguousarray(calibration.transpose(0, 3, 1, 2), dtype=np.float32)
    batch = photos[:16]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as tmp:
        float_file = export_onnx(args.bundle, Path(tmp)) / "model.onnx"
        float_run = session_runner(float_file)
        float_speed = images_per_s(float_run, batch, args.seconds)
        rows.append({"recipe": "float", "images_per_s": round(float_speed, 1), "speedup": 1.0})
        print(f"float: {float_speed:.1f} images/s", flush=True)
        for calib, layers, ops in VARIANTS:
            recipe = Recipe(calib, layers, ops)
            graph = Path(tmp) / "int8.onnx"
            try:
                quantize_onnx(float_file, graph, pixels, recipe)
            except Exception as exc:  # ONNX Runtime's quantizer refuses some graphs: a row that says so
                rows.append({"recipe": recipe.describe(), **asdict(recipe), "error": f"{type(exc).__name__}: {exc}"[:300]})
                print(f"{recipe.describe()}: not quantized ({rows[-1]['error']})", flush=True)
                continue
            run = session_runner(graph)
            speed = images_per_s(run, batch, args.seconds)
            row = {"recipe": recipe.describe(), **asdict(recipe), "images_per_s": round(speed, 1),
                   "speedup": round(speed / float_speed, 2), "size_mb": round(graph.stat().st_size / 1e6, 1)}
            if args.agreement:
                row.update(compare(bundle, float_run, run, photos, grades))
            rows.append(row)
            print(f"{recipe.describe()}: {speed:.1f} images/s ({speed / float_speed:.2f}x)"
                  + (f", {row['agreement']:.1%} of grades equal" if args.agreement else ""), flush=True)
    result = {"date": now(), "command": command_line(), "machine": machine_info(), "onnxruntime_version": ort.__version__,
              "batch": int(len(batch)), "calibration_photos": int(len(calibration)), "validation_photos": int(len(photos)),
              "rows": rows}
    merge_results(RESULTS / "int8_speed.json", {args.label: result})
    print(json.dumps({"label": args.label, "fastest": max((r for r in rows if "speedup" in r), key=lambda r: r["speedup"])}, indent=1))


if __name__ == "__main__":
    main()

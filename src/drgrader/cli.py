"""The ``drgrader`` command. Each subcommand parses its arguments and calls one function of
the package; errors a user can fix are printed as one clear message (exit code 2)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from drgrader import __version__
from drgrader.extras import require
from drgrader.progress import MODES, set_mode

CONFIG_HELP = "experiment: a shipped name (drgrader config list) or a YAML file"


def _config(args, path=None):
    from drgrader.config import load_config

    overrides = list(args.set or [])
    for flag, key in (("devices", "train.devices"), ("num_nodes", "train.num_nodes"), ("strategy", "train.strategy")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={value}")
    return load_config(path or args.config, overrides)


def _port(text: str) -> int:
    """A TCP port for argparse (out of range: a usage error, exit 2)."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a port (1-65535)")
    return int(text)


def _positive(kind: type, what: str, below: float = float("inf"), *, low: float = 0):
    """An argparse type: a number of ``kind`` with low < value < ``below`` (else a usage error, exit 2)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not low < value < below:  # NaN fails too
            raise argparse.ArgumentTypeError(f"{text[:20]!r} is not {what}")
        return value

    return parse


COUNT = _positive(int, "a count (>= 1)")


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field, e.g. train.epochs=3")


PROGRESS_HELP = "progress bars (bar), plain log lines with counts and rate (log), or bars only on a terminal (auto, default)"


def _add_progress(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: given after the command it wins, else the global --progress (before the command) holds.
    p.add_argument("--progress", choices=MODES, default=argparse.SUPPRESS, help=PROGRESS_HELP)


# ------------------------------------------------------------------------ commands
def cmd_synth(args) -> None:
    from drgrader.synth import make_dataset

    labels = make_dataset(args.out, args.patients, seed=args.seed, height=args.height, workers=args.workers)
    print(f"synthetic data set written: {labels}")


def cmd_demo(args) -> None:
    require("train", "drgrader demo")
    from drgrader.config import load_config
    from drgrader.workflows.demo import run_demo

    cfg = load_config(args.config or "demo", list(args.set or []))
    run_demo(cfg, data_dir=Path(args.data), patients=args.patients, out=args.out)


def cmd_train(args) -> None:
    require("train", "drgrader train")
    from drgrader.workflows.console import print_run
    from drgrader.workflows.train import train

    if args.resume:
        from drgrader.config import ConfigError

        unused = [name for name, value in (("a config", args.config), ("--out", args.out)) if value is not None]
        if unused:  # the run's own config.yaml and folder are used: anything else would be ignored
            raise ConfigError(f"--resume continues {args.resume} with its own config and folder; drop {' and '.join(unused)}")
        run_dir = train(_config(args, Path(args.resume) / "config.yaml"), resume=Path(args.resume))
    else:
        run_dir = train(_config(args), out=args.out)
    from drgrader.runtime import process_ranks

    if process_ranks().rank == 0:  # under torchrun / srun every rank runs this command
        print_run(run_dir)


def cmd_cv(args) -> None:
    require("train", "drgrader cv")
    from drgrader.workflows.console import print_run
    from drgrader.workflows.cv import run_cv

    print_run(run_cv(_config(args), folds=args.folds, out=args.out, fold=args.fold))


def cmd_evaluate(args) -> None:
    from drgrader.workflows.console import print_run
    from drgrader.workflows.evaluate import evaluate_command

    out = evaluate_command(Path(args.model), data=args.data, out=args.out, overrides=list(args.set or []), overwrite=args.overwrite)
    print_run(out)


def cmd_preprocess(args) -> None:
    from drgrader.workflows.data import parse_shard, preprocess

    cfg = _config(args)
    index = preprocess(cfg, workers=args.workers, shard=parse_shard(args.shard) if args.shard else None)
    ok = int(index["ok"].sum())
    print(f"preprocessed {ok}/{len(index)} images; {len(index) - ok} unreadable")
    for _, row in index[~index["ok"]].head(20).iterrows():
        print(f"  unreadable: {row['image_id']}: {row['error']}")


def cmd_config_show(args) -> None:
    from drgrader.config import config_yaml

    print(f"# drgrader config show {args.config}: every field, defaults filled")
    print(config_yaml(_config(args)), end="")


def cmd_config_list(args) -> None:
    from drgrader.config import describe_config, shipped_configs

    shipped = shipped_configs()
    width = max(map(len, shipped))
    for name, file in shipped.items():
        print(f"{name:<{width}}  {describe_config(file.read_text(encoding='utf-8'))}".rstrip())


def cmd_data_summary(args) -> None:
    from drgrader.workflows.data import data_summary

    print(data_summary(_config(args)))


def cmd_report(args) -> None:
    from drgrader.reporting import write_report

    print(f"report: {write_report(Path(args.run))}")


def _bundle_and_inputs(args) -> tuple[Path, list[str]]:
    """The bundle a command uses and its photo inputs: ``--bundle NAME|PATH``; else a bundle
    folder given first (the older form ``predict BUNDLE PHOTOS``); else the built-in grader."""
    from drgrader.inference.builtin import resolve_bundle
    from drgrader.inference.bundle_spec import MANIFEST, BundleError

    inputs = list(args.inputs)
    if args.bundle is None and (Path(inputs[0]) / MANIFEST).is_file():
        if len(inputs) == 1:
            raise BundleError(f"{inputs[0]} is a bundle: give the photos to grade after it, or --bundle {inputs[0]} PHOTOS")
        return resolve_bundle(inputs[0]), inputs[1:]
    return resolve_bundle(args.bundle), inputs


def cmd_predict(args) -> None:
    from drgrader.workflows.data import parse_shard
    from drgrader.workflows.predict import predict_command

    bundle, inputs = _bundle_and_inputs(args)
    predict_command(
        bundle, inputs, out=args.out, backend=args.backend, batch_size=args.batch_size, tta=args.tta,
        overwrite=args.overwrite, refer_share=args.refer_share, shard=parse_shard(args.shard) if args.shard else None,
    )


def cmd_merge_predictions(args) -> None:
    from drgrader.workflows.predict import merge_predictions

    out = merge_predictions(args.parts, args.out, overwrite=args.overwrite, partial=args.partial, unverified=args.unverified)
    print(f"merged predictions: {out}")


def cmd_explain(args) -> None:
    require("explain", "drgrader explain")
    from drgrader.inference.explain import explain_command

    bundle, images = _bundle_and_inputs(args)
    explain_command(bundle, images, out=Path(args.out))


def cmd_export(args) -> None:
    require("export", "drgrader export")
    if args.int8 or args.int8_anyway:
        from drgrader.workflows.int8 import export_int8

        out = export_int8(args.bundle, args.out, overwrite=args.overwrite, force=args.int8_anyway)
    else:
        from drgrader.inference.export import export_command

        out = export_command(args.bundle, fmt=args.format, out=args.out, overwrite=args.overwrite)
    print(f"exported bundle: {out}")


def cmd_ensemble(args) -> None:
    from drgrader.workflows.bundles import ensemble_command

    print(f"ensemble bundle: {ensemble_command(args.bundles, args.out)}")


def cmd_serve(args) -> None:
    from drgrader.inference.builtin import resolve_bundle
    from drgrader.inference.bundle_spec import BundleError
    from drgrader.inference.serve import serve

    if args.bundle and args.bundle_option and args.bundle != args.bundle_option:
        raise BundleError(f"two bundles given: {args.bundle} and --bundle {args.bundle_option}")
    serve(resolve_bundle(args.bundle or args.bundle_option), host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, max_pending=args.max_pending,
          read_timeout=args.read_timeout)


def cmd_models(args) -> None:
    from drgrader.workflows.models import describe_models

    print(describe_models(args.name), end="")


BUNDLE_HELP = "a bundle folder or a built-in grader's name (drgrader models; default: the built-in grader)"


# -------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="drgrader",
        description="Grade diabetic retinopathy from colour fundus photographs.",
    )
    parser.add_argument("--version", action="version", version=f"drgrader {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--progress", choices=MODES, default="auto", help=PROGRESS_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="synthesise demo data, train a small grader, evaluate and report")
    p.add_argument("--config", help=f"{CONFIG_HELP} (default: demo)")
    p.add_argument("--data", default="demo-data", help="where the synthetic demo data set goes")
    p.add_argument("--patients", type=COUNT, default=300, help="synthetic patients (two eyes each)")
    p.add_argument("--out", type=Path, help="run folder (default runs/<name>)")
    _add_set(p)
    _add_progress(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("synth", help="make a synthetic fundus data set in the Kaggle layout")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--patients", type=COUNT, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--height", type=_positive(int, "a height in pixels (>= 64)", low=63), default=512, help="frame height in pixels")
    p.add_argument("--workers", type=COUNT, default=1)
    _add_progress(p)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("train", help="train a grader from an experiment config")
    p.add_argument("config", nargs="?", help=f"{CONFIG_HELP} (default: the generic defaults)")
    p.add_argument("--out", type=Path, help="run folder (default runs/<name>)")
    p.add_argument("--resume", type=Path, metavar="RUN", help="continue an interrupted run folder")
    p.add_argument("--devices", help="devices per node (Lightning), e.g. 2 or auto")
    p.add_argument("--num-nodes", dest="num_nodes", type=int, help="nodes for multi-node DDP")
    p.add_argument("--strategy", help="Lightning strategy, e.g. ddp")
    _add_set(p)
    _add_progress(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("cv", help="k-fold cross-fitting: out-of-fold figures, thresholds, paired eyes, fold ensemble")
    p.add_argument("config", help=CONFIG_HELP)
    p.add_argument("--folds", type=int, default=5, help="number of patient-level folds (default 5)")
    p.add_argument("--fold", type=int, help="run only this fold (0-based); the last fold to finish pools them")
    p.add_argument("--out", type=Path, help="cv folder (default runs/<name>-cv; rerun to resume)")
    _add_set(p)
    _add_progress(p)
    p.set_defaults(func=cmd_cv)

    p = sub.add_parser("evaluate", help="evaluate a run or bundle on its test split or another data set")
    p.add_argument("model", help="run folder or bundle folder")
    p.add_argument("--data", help="experiment YAML or data-set folder to evaluate on (external test)")
    p.add_argument("--out", type=Path, help="output folder (default <run>/eval-<data name>, numbered when it exists)")
    p.add_argument("--overwrite", action="store_true", help="allow --out to be a folder of another kind")
    _add_set(p)
    _add_progress(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("preprocess", help="preprocess a data set into the cache (parallel, resumable)")
    p.add_argument("config", help=CONFIG_HELP)
    p.add_argument("--shard", help="i/n: process only shard i of n (e.g. a Slurm array task)")
    p.add_argument("--workers", type=int, help="processes (default: all cores)")
    _add_set(p)
    _add_progress(p)
    p.set_defaults(func=cmd_preprocess)

    p = sub.add_parser("data", help="data-set tools")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    q = data_sub.add_parser("summary", help="counts per grade and split, patients, sizes, duplicates")
    q.add_argument("config", help=CONFIG_HELP)
    _add_set(q)
    q.set_defaults(func=cmd_data_summary)

    p = sub.add_parser("config", help="the shipped experiment configs; print a resolved config")
    config_sub = p.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    q = config_sub.add_parser("show", help="print a config as validated YAML, every field with defaults filled")
    q.add_argument("config", help=CONFIG_HELP)
    _add_set(q)
    q.set_defaults(func=cmd_config_show)
    q = config_sub.add_parser("list", help="the shipped config names, each with its one-line description")
    q.set_defaults(func=cmd_config_list)

    p = sub.add_parser("report", help="(re)write the HTML/Markdown report of a run")
    p.add_argument("run", type=Path)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("predict", help="grade images (files, folders or a CSV) into a CSV")
    p.add_argument("inputs", nargs="+", metavar="PHOTOS", help="image files, folders, or a CSV with an image column "
                                                               "(a bundle folder first: the older form BUNDLE PHOTOS)")
    p.add_argument("--bundle", help=BUNDLE_HELP)
    p.add_argument("--out", type=Path, help="CSV to write (default predictions.csv, or a fresh predictions-2.csv ... when it exists)")
    p.add_argument("--overwrite", action="store_true", help="allow --out to replace a file that is not a CSV")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"])
    p.add_argument("--batch-size", dest="batch_size", type=int, default=16)
    p.add_argument("--tta", nargs="*", help="TTA views (default: the bundle's)")
    p.add_argument("--refer-share", dest="refer_share", type=float,
                   help="share of patients (0..0.5) sent to a human grader as 'uncertain' (default: the bundle's, "
                        "fitted on validation; 0: none)")
    p.add_argument("--shard", help="i/n: grade only shard i of n, a patient's photos together (e.g. a Slurm array task); "
                                   "join the parts with merge-predictions")
    _add_progress(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("merge-predictions", help="join the CSVs of predict --shard runs into one (and the per-patient files)")
    p.add_argument("parts", nargs="+", type=Path, help="the shards' prediction CSVs (their _patients.csv are found beside them)")
    p.add_argument("--out", required=True, type=Path, help="the merged CSV")
    p.add_argument("--partial", action="store_true", help="merge even when shards are missing (a warning)")
    p.add_argument("--unverified", action="store_true",
                   help="also merge parts without a shard record (not from predict --shard), unchecked (a warning)")
    p.add_argument("--overwrite", action="store_true", help="allow --out to replace a file that is not a CSV")
    p.set_defaults(func=cmd_merge_predictions)

    p = sub.add_parser("explain", help="Grad-CAM heat maps over the preprocessed fundus")
    p.add_argument("inputs", nargs="+", metavar="PHOTOS", help="image files, folders or a CSV (a bundle folder first: BUNDLE PHOTOS)")
    p.add_argument("--bundle", help=BUNDLE_HELP)
    p.add_argument("--out", default="explain")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("export", help="export a bundle to ONNX (with a parity check)")
    p.add_argument("bundle")
    p.add_argument("--format", default="onnx", choices=["onnx"])
    p.add_argument("--out", type=Path, help="output bundle folder (default: alongside, <bundle>-onnx, numbered when it exists)")
    p.add_argument("--overwrite", action="store_true", help="allow --out to replace another bundle")
    p.add_argument("--int8", action="store_true",
                   help="also quantize to int8 (calibrated on the run's training photos), kept only when it keeps "
                        ">= 98%% of the grades and kappa/AUC within 0.01/0.005 on its validation photos")
    p.add_argument("--int8-anyway", dest="int8_anyway", action="store_true",
                   help="keep the int8 graph even when it fails that gate (marked so in bundle.json)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("ensemble", help="combine bundles into one ensemble bundle")
    p.add_argument("bundles", nargs="+")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_ensemble)

    p = sub.add_parser("serve", help="web demo: upload a fundus photo, see grade and Grad-CAM")
    p.add_argument("bundle", nargs="?", help=BUNDLE_HELP)
    p.add_argument("--bundle", dest="bundle_option", metavar="BUNDLE", help="the same, as an option")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=7860)
    p.add_argument("--max-upload-mb", dest="max_upload_mb", default=20, help="largest accepted upload",
                   type=_positive(float, "a size in MB (> 0)", 1e6))
    p.add_argument("--max-pending", dest="max_pending", type=COUNT, default=4,
                   help="requests in flight before answering busy")
    p.add_argument("--read-timeout", dest="read_timeout", type=_positive(float, "a number of seconds (0 < s < 86400)", 86400), default=30,
                   help="seconds a client may send nothing mid-request before it gets 408 (default 30)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("models", help="the built-in graders: name, size, figures; with a name, its model card")
    p.add_argument("name", nargs="?", help="a built-in grader's name")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    from drgrader.runtime import tune_malloc

    tune_malloc()
    args = build_parser().parse_args(argv)
    set_mode(args.progress)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(message)s",
    )
    for noisy in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from drgrader.errors import is_input_error, one_line, user_errors

    try:
        args.func(args)
    except user_errors() as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, permission denied: the system's message names the file
        if args.verbose:
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2 if is_input_error(exc) else 1
    except KeyboardInterrupt:
        print("interrupted; finished work is kept (rerun or --resume to continue)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

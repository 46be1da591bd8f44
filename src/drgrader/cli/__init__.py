"""The ``drgrader`` command: the argument parser and ``main``. Each subcommand parses its
arguments and calls its function in :mod:`drgrader.cli.commands`; errors a user can fix are
printed as one clear message (exit code 2)."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import warnings
from pathlib import Path

from drgrader import __version__
from drgrader.cli.commands import (
    cmd_config_list,
    cmd_config_show,
    cmd_cv,
    cmd_data_summary,
    cmd_demo,
    cmd_ensemble,
    cmd_evaluate,
    cmd_explain,
    cmd_export,
    cmd_merge_predictions,
    cmd_models,
    cmd_predict,
    cmd_preprocess,
    cmd_report,
    cmd_serve,
    cmd_synth,
    cmd_train,
)
from drgrader.config_yaml import plain_number
from drgrader.progress import MODES, set_mode

CONFIG_HELP = "experiment: a shipped name (drgrader config list) or a YAML file"


def _number(kind: type, what: str, low: float = -math.inf, below: float = math.inf):
    """An argparse type for every numeric option: a plain number of ``kind`` (:func:`~drgrader.config_yaml.plain_number`)
    with low < value < ``below``, else a usage error (exit 2)."""

    def parse(text: str):
        value = plain_number(text, kind)
        if value is None or not low < value < below:  # NaN fails too
            raise argparse.ArgumentTypeError(f"{text[:20]!r} is not {what}")
        return value

    return parse


INTEGER = _number(int, "a whole number (e.g. 3)")
NUMBER = _number(float, "a number (e.g. 0.1)")
COUNT = _number(int, "a count (>= 1)", low=0)
SEED = _number(int, "a seed, a whole number from 0 to 4294967295", low=-1, below=2**32)  # numpy's range (probe 39 CC1)


def _out_path(text: str) -> Path:
    """An output path, ``~`` expanded: a quoted ``"~/o.csv"`` is the home folder's, as pandas
    reads it too (probe 38 BB8: a folder named ``~`` was written, and the output lost); a ``..``
    after a folder that does not exist yet (``new/../x.csv``) taken away, so the checks of what
    exists at that path see ``x.csv`` (probe 51 BO2: they saw nothing, and it was replaced)."""
    path = Path(text).expanduser()
    return Path(os.path.normpath(path)) if ".." in path.parts and not path.parent.exists() else path


def _out_file(text: str) -> Path:
    """An output file's path (:func:`_out_path`); one ending in ``/`` names a folder (probe 43 BG9:
    ``--out p.csv/`` wrote the file ``p.csv``)."""
    if text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"{text[:80]!r} ends with '/', so it names a folder: give the file to write (e.g. p.csv)")
    return _out_path(text)


class _Views(argparse.Action):
    """``--tta VIEW ...``: each view once, checked as a config's and bundle.json's views are (a
    repeat would count twice in the average); a repeat is a usage error (exit 2)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from drgrader.config_values import distinct_views

        try:
            distinct_views(values)
        except ValueError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None
        setattr(namespace, self.dest, values)


_GIVEN = "_drgrader_given"  # the options given so far in one parse (removed before the namespace is returned)


class _StoreOnce(argparse._StoreAction):
    """argparse's ``store``, but an option given twice (``--bundle A ... --bundle B``) is a usage
    error: the last would win silently (probe 42 CF7), as a field set twice by ``--set`` is refused."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = vars(namespace).setdefault(_GIVEN, {})
        if option_string and self.dest in given:
            raise argparse.ArgumentError(self, f"given twice ('{given[self.dest]}' and '{values}'): give it once")
        given[self.dest] = values
        super().__call__(parser, namespace, values, option_string)


class _Parser(argparse.ArgumentParser):
    """The parser of ``drgrader`` and each of its commands (subparsers are made of the same class):
    every single-valued option is :class:`_StoreOnce`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("action", None, _StoreOnce)
        self.register("action", "store", _StoreOnce)

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        namespace, extras = super().parse_known_args(args, namespace)
        vars(namespace).pop(_GIVEN, None)
        return namespace, extras


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field, e.g. train.epochs=3")


PROGRESS_HELP = "progress bars (bar), plain log lines with counts and rate (log), or bars only on a terminal (auto, default)"


def _add_progress(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: given after the command it wins, else the global --progress (before the command) holds.
    p.add_argument("--progress", choices=MODES, default=argparse.SUPPRESS, help=PROGRESS_HELP)


BUNDLE_HELP = "a bundle folder or a built-in grader's name (drgrader models; default: the built-in grader)"


# -------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    p.add_argument("--out", type=_out_path, help="run folder (default runs/<name>)")
    _add_set(p)
    _add_progress(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("synth", help="make a synthetic fundus data set in the Kaggle layout")
    p.add_argument("--out", required=True, type=_out_path)
    p.add_argument("--patients", type=COUNT, default=100)
    p.add_argument("--seed", type=SEED, default=0)
    # above 8000 a frame (3:2) passes the 100-megapixel limit drgrader reads (probe 36 BZ8: killed for memory)
    p.add_argument("--height", type=_number(int, "a height in pixels (64 to 8000)", low=63, below=8001), default=512,
                   help="frame height in pixels")
    p.add_argument("--workers", type=COUNT, default=1)
    p.add_argument("--overwrite", action="store_true", help="allow --out to replace an earlier synth output of other "
                   "settings, or one whose trainLabels.csv was changed since")
    _add_progress(p)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("train", help="train a grader from an experiment config")
    p.add_argument("config", nargs="?", help=f"{CONFIG_HELP} (default: the generic defaults)")
    p.add_argument("--out", type=_out_path, help="run folder (default runs/<name>)")
    p.add_argument("--resume", type=Path, metavar="RUN", help="continue an interrupted run folder")
    p.add_argument("--devices", help="devices per node (Lightning), e.g. 2 or auto")
    p.add_argument("--num-nodes", dest="num_nodes", type=INTEGER, help="nodes for multi-node DDP")
    p.add_argument("--strategy", help="Lightning strategy, e.g. ddp")
    _add_set(p)
    _add_progress(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("cv", help="k-fold cross-fitting: out-of-fold figures, thresholds, paired eyes, fold ensemble")
    p.add_argument("config", help=CONFIG_HELP)
    p.add_argument("--folds", type=INTEGER, default=5, help="number of patient-level folds (default 5)")
    p.add_argument("--fold", type=INTEGER, help="run only this fold (0-based); the last fold to finish pools them")
    p.add_argument("--out", type=_out_path, help="cv folder (default runs/<name>-cv; rerun to resume)")
    _add_set(p)
    _add_progress(p)
    p.set_defaults(func=cmd_cv)

    p = sub.add_parser("evaluate", help="evaluate a run or bundle on its test split or another data set")
    p.add_argument("model", help="run folder or bundle folder")
    p.add_argument("--data", help="experiment YAML or data-set folder to evaluate on (external test)")
    p.add_argument("--out", type=_out_path, help="output folder (default <run>/eval-<data name>, numbered when it exists)")
    p.add_argument("--overwrite", action="store_true", help="allow --out to be a folder of another kind")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"],
                   help="what grades, as for predict (recorded in the metrics and the model card entry)")
    _add_set(p)
    _add_progress(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("preprocess", help="preprocess a data set into the cache (parallel, resumable)")
    p.add_argument("config", help=CONFIG_HELP)
    p.add_argument("--shard", help="i/n: process only shard i of n (e.g. a Slurm array task)")
    p.add_argument("--workers", type=INTEGER, help="processes (default: all cores)")
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
    p.add_argument("--out", type=_out_file, help="CSV to write (default predictions.csv, or a fresh predictions-2.csv ... when it exists)")
    p.add_argument("--overwrite", action="store_true", help="allow --out (and <out>_patients.csv) to replace a file that is not "
                   "one drgrader wrote (not a CSV, or a CSV without its columns), and discard "
                   "an interrupted run's rows (<out>.partial.csv) that this run cannot continue (another bundle or --tta)")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"])
    p.add_argument("--batch-size", dest="batch_size", type=INTEGER, default=16)
    p.add_argument("--tta", nargs="*", action=_Views, help="TTA views, each once (default: the bundle's)")
    p.add_argument("--refer-share", dest="refer_share", type=NUMBER,
                   help="share (0..0.5) of the bundle's validation patients its 'uncertain' cut-off sends to a human "
                        "grader: a batch sends more or less as its patients are harder or easier, not a quota per "
                        "batch (default: the bundle's; 0: none)")
    p.add_argument("--shard", help="i/n: grade only shard i of n, a patient's photos together (e.g. a Slurm array task); "
                                   "join the parts with merge-predictions")
    _add_progress(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("merge-predictions", help="join the CSVs of predict --shard runs into one (and the per-patient files)")
    p.add_argument("parts", nargs="+", type=Path, help="the shards' prediction CSVs (their _patients.csv are found beside them)")
    p.add_argument("--out", required=True, type=_out_file, help="the merged CSV")
    p.add_argument("--partial", action="store_true", help="merge even when shards are missing (a warning)")
    p.add_argument("--unverified", action="store_true",
                   help="also merge parts without a shard record (not from predict --shard), unchecked (a warning)")
    p.add_argument("--overwrite", action="store_true", help="allow --out (and <out>_patients.csv) to replace a file that is "
                   "not one drgrader wrote (not a CSV, or a CSV without its columns)")
    p.set_defaults(func=cmd_merge_predictions)

    p = sub.add_parser("explain", help="Grad-CAM heat maps over the preprocessed fundus")
    p.add_argument("inputs", nargs="+", metavar="PHOTOS", help="image files, folders or a CSV (a bundle folder first: BUNDLE PHOTOS)")
    p.add_argument("--bundle", help=BUNDLE_HELP)
    p.add_argument("--out", type=_out_path, default="explain")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("export", help="export a bundle to ONNX (with a parity check)")
    p.add_argument("bundle")
    p.add_argument("--format", default="onnx", choices=["onnx"])
    p.add_argument("--out", type=_out_path, help="output bundle folder (default: alongside, <bundle>-onnx, numbered when it exists)")
    p.add_argument("--overwrite", action="store_true", help="allow --out to replace another bundle")
    p.add_argument("--int8", action="store_true",
                   help="also quantize to int8 (calibrated on the run's training photos), kept only when it keeps "
                        ">= 98%% of the grades and kappa/AUC within 0.01/0.005 on its validation photos")
    p.add_argument("--int8-anyway", dest="int8_anyway", action="store_true",
                   help="keep the int8 graph even when it fails that gate (marked so in bundle.json)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("ensemble", help="combine bundles into one ensemble bundle")
    p.add_argument("bundles", nargs="+")
    p.add_argument("--out", type=_out_path, required=True)
    p.set_defaults(func=cmd_ensemble)

    p = sub.add_parser("serve", help="web demo: upload a fundus photo, see grade and Grad-CAM")
    p.add_argument("bundle", nargs="?", help=BUNDLE_HELP)
    p.add_argument("--bundle", dest="bundle_option", metavar="BUNDLE", help="the same, as an option")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_number(int, "a port (1-65535)", 0, 65536), default=7860)
    p.add_argument("--max-upload-mb", dest="max_upload_mb", default=20, help="largest accepted upload",
                   type=_number(float, "a size in MB (> 0)", 0, 1e6))
    p.add_argument("--max-pending", dest="max_pending", type=COUNT, default=4,
                   help="requests in flight before answering busy")
    p.add_argument("--read-timeout", dest="read_timeout", type=_number(float, "a number of seconds (0 < s < 86400)", 0, 86400), default=30,
                   help="seconds a client may send nothing mid-request before it gets 408 (default 30)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("models", help="the built-in graders: name, size, figures; with a name, its model card")
    p.add_argument("name", nargs="?", help="a built-in grader's name")
    p.set_defaults(func=cmd_models)
    return parser


_PACKAGE = str(Path(__file__).resolve().parents[1])
# What an interrupted command leaves, by command: the resumable ones keep their finished work.
_NOTHING_LEFT = "nothing half-written is left (rerun the command to start again)"
_AFTER_INTERRUPT = {
    "train": "finished epochs are kept (drgrader train --resume RUN continues)",
    **dict.fromkeys(("preprocess", "predict", "cv", "synth", "demo"),
                    "finished work is kept (rerun the same command to continue)"),
}


def _log_own_warnings() -> None:
    """drgrader's own warnings (a copied photo, an unreliable CI) as one ``WARNING ...`` line like
    every other message, not Python's two lines with a source path; other libraries' as Python shows them."""
    shown = warnings.showwarning
    if getattr(shown, "drgrader", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if str(filename).startswith(_PACKAGE):
            logging.getLogger("drgrader").warning("%s", message)
        else:
            shown(message, category, filename, lineno, file, line)

    show.drgrader = True  # type: ignore[attr-defined]
    warnings.showwarning = show


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
    _log_own_warnings()
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
        print(f"interrupted; {_AFTER_INTERRUPT.get(args.command, _NOTHING_LEFT)}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What each ``drgrader`` subcommand does with its parsed arguments: one call into the package
(a workflow, or a single-stage function). The parser in :mod:`drgrader.cli` maps each
subcommand to one of these."""

from __future__ import annotations

from pathlib import Path

from drgrader.extras import require


def _config(args, path=None):
    from drgrader.config import load_config

    overrides = list(args.set or [])
    for flag, key in (("devices", "train.devices"), ("num_nodes", "train.num_nodes"), ("strategy", "train.strategy")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={value}")
    return load_config(path or args.config, overrides)


def cmd_synth(args) -> None:
    from drgrader.synth import make_dataset

    labels = make_dataset(args.out, args.patients, seed=args.seed, height=args.height, workers=args.workers,
                          overwrite=args.overwrite)
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

    out = evaluate_command(Path(args.model), data=args.data, out=args.out, overrides=list(args.set or []), overwrite=args.overwrite,
                           backend=args.backend)
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
    from drgrader.config_recipes import describe_config, shipped_configs

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
    from drgrader.workflows.merge import merge_predictions

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

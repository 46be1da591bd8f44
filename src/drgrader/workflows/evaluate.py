"""``drgrader evaluate``: a run on its own held-out split, or any model on another data set."""

from __future__ import annotations

import logging
from pathlib import Path

from drgrader.config import ConfigError, ExperimentConfig, config_to_dict, load_config
from drgrader.inference.bundle import MANIFEST, load_bundle
from drgrader.inference.own_run import check_own_run
from drgrader.workflows.external_config import external_config, refuse_run_overrides
from drgrader.workflows.held_out import NOT_ITS_RUN, refuse_changed_split

log = logging.getLogger("drgrader")


def find_bundle(model: Path) -> tuple[Path, Path | None]:
    """(bundle folder, run folder or None) for a run folder or a bundle folder."""
    if (model / MANIFEST).is_file():
        run = model.parent if (model.parent / "config.yaml").is_file() else None
        return model, run
    if (model / "bundle" / MANIFEST).is_file():
        return model / "bundle", model
    raise FileNotFoundError(f"{model} is neither a run folder nor a drgrader bundle")


def _engine(bundle) -> str:
    """What graded: ``torch:float32`` or ``onnx:<graph>``; an ensemble's members' engines, joined."""
    return bundle.engine or ", ".join(dict.fromkeys(m.engine for m in bundle.members or ()))


def _say_unmeasured_int8(bundle) -> None:
    """A bundle that ships an int8 graph (``export --int8``) but is measured with its float weights (``auto``
    picks torch where it is installed): the graph that a core install and ``--backend onnx`` grade with is
    not the one measured, so say so (probe 58 CV5: 4 of 61 grades differed, the card did not say which)."""
    int8 = bundle.manifest.get("int8") or {}
    if int8.get("file") and not bundle.engine.startswith("onnx:"):
        log.warning("%s ships an int8 graph (%s), which a core install and --backend onnx grade with, but these figures "
                    "are of its float weights (%s): evaluate --backend onnx measures the int8 graph", bundle.path,
                    int8["file"], bundle.engine)


def evaluate_command(
    model: Path, *, data: str | None = None, out: Path | None = None, overrides: list[str] | None = None, overwrite: bool = False,
    backend: str = "auto",
) -> Path:
    from drgrader.data.prepare import prepare_data
    from drgrader.data.summary import summarize
    from drgrader.evaluation.evaluate import evaluate_split_pair, write_metrics
    from drgrader.evaluation.result_warnings import ungradable_warning
    from drgrader.inference.builtin import builtin_graders, resolve_bundle
    from drgrader.workflows.records import data_record, run_header

    overrides = overrides or []
    bundle_dir, run_dir = find_bundle(resolve_bundle(model))  # a path, or a built-in grader's name
    # A built-in grader is package data: its evaluations and their card go to the working folder.
    builtin = next((name for name, d in builtin_graders().items() if d.resolve() == bundle_dir.resolve()), None)
    bundle = load_bundle(bundle_dir, backend)
    _say_unmeasured_int8(bundle)
    overlap = None  # external data only: how many of its photos the model was trained or tuned on
    changed: list[str] = []  # a run's own data only: what changed in its labels or photos since it was trained
    copies: list[dict] = []  # external data only: one picture under two or more patients
    one_picture_as_two_eyes: list[dict] = []  # external data only: one picture as both eyes of a patient
    if data is None:
        if run_dir is None:
            raise ConfigError(f"{model} is a bare bundle: give --data to evaluate it on a data set")
        if (run_dir / "cv.json").is_file():
            raise ConfigError(
                f"{run_dir} is a cross-validation: its figures are the out-of-fold ones in its metrics.json; "
                "give --data to evaluate its ensemble bundle on another data set"
            )
        refuse_run_overrides(overrides)
        cfg = load_config(run_dir / "config.yaml", overrides)
        check_own_run(bundle_dir, bundle.manifest, run_dir, uses=NOT_ITS_RUN, strict=False)
        data_set = HELD_OUT
        out = _claim_out(out, run_dir / "evaluation", bundle_dir, overwrite)
        replaced = _check_same_evaluation(out, bundle_dir, data_set, overwrite)
        prepared = prepare_data(cfg.data, split_file=run_dir / "split.csv")
        changed = _data_changed(run_dir, prepared)
        if cfg.data.split.file is not None:  # probe 58 CV1: as train says it
            from drgrader.data.prepare import say_copies_across_splits

            say_copies_across_splits(prepared, cfg.data.split.file)
        val_rows, test_rows = prepared.rows("val"), prepared.rows("test")
        evaluated_on = "test"
        if test_rows.empty:
            test_rows, evaluated_on = val_rows, "val"
        refuse_changed_split(bundle_dir, run_dir, test_rows, evaluated_on, learnt=prepared.table[prepared.table["split"] != "test"])
        # Re-fitting on validation is only sound for a single model of this run.
        fit = not bundle.members
    else:
        cfg = external_config(data, bundle.manifest, overrides)
        name = f"eval-{Path(cfg.data.root).resolve().name}"
        # Beside the bundle, never inside it (a bundle folder holds a bundle only, and may be read-only).
        default = (run_dir / name if run_dir is not None else Path.cwd() / f"{builtin}-{name}" if builtin
                   else bundle_dir.resolve().with_name(f"{bundle_dir.resolve().name}-{name}"))
        data_set = _data_set(cfg)
        out = _claim_out(out, default, bundle_dir, overwrite)
        replaced = _check_same_evaluation(out, bundle_dir, data_set, overwrite)
        prepared = prepare_data(cfg.data)
        prepared.table["split"] = "test"
        val_rows, test_rows = None, prepared.rows("test")
        evaluated_on = f"external:{cfg.data.root}"
        fit = False  # thresholds stay those fitted on the model's own validation split
        overlap = _training_overlap(bundle, run_dir, test_rows, prepared.pictures)
        if overlap and overlap["photos"]:  # partly the model's own training data: not external (probe 33 BV3)
            evaluated_on = f"not-external:{cfg.data.root}"
        copies, one_picture_as_two_eyes = _copies_across_patients(prepared)
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale(out)
    if bundle.members and not bundle.thresholds and val_rows is None:
        log.warning("ensemble without fitted thresholds: decisions use the predicted grade / 0.5")
    result = evaluate_split_pair(bundle, val_rows, test_rows, cfg.eval, out, fit=fit, seed=cfg.train.seed)
    table = prepared.table
    metrics = {
        **run_header(out.name),
        "model": str(bundle_dir),
        "data": data_record(table, prepared.skipped,
                            summarize(table, table["split"], table, check_images=False, skipped=prepared.skipped),
                            prepared.warnings),
        "evaluated_on": evaluated_on,
        "data_set": data_set,
        "engine": _engine(bundle),  # the float weights or the int8 graph of one bundle grade apart (probe 58 CV5)
        # what its report shows as the resolved configuration, kept for `drgrader report` (probe 43 CG9)
        "config": config_to_dict(_model_config(cfg, bundle.manifest)),
        **result,
    }
    if data is not None:
        metrics["training_overlap"] = overlap  # null: the bundle has no record to check against
    if changed:
        metrics["data_changed_since_training"] = changed
    if copies:
        metrics["copies_across_patients"] = copies
    if one_picture_as_two_eyes:
        metrics["one_picture_as_two_eyes"] = one_picture_as_two_eyes
    if bundle.members:
        metrics["members"] = _member_metrics(bundle, val_rows, test_rows, cfg, out)
    write_metrics(out / "metrics.json", metrics)
    if warning := ungradable_warning(result["test"]):  # said in the report too; here, before anyone quotes a figure
        log.warning("%s: %s", out, warning)
    if data is not None and overlap is not None and overlap["photos"]:
        log.warning("MODEL_CARD.md of %s not updated: its external evaluations list only data it never saw", bundle_dir)
    elif data is not None and overlap is not None and overlap.get("held_out"):  # probe 45 CI1
        log.warning("MODEL_CARD.md of %s not updated: %d of %d evaluated photos are its own run's held-out test split, "
                    "whose figures it gives already (no outside data set)", bundle_dir, overlap["held_out"], overlap["of"])
    elif data is not None and cfg.data.limit is not None:  # probe 34 BX12: a smoke test replaced the full entry
        log.warning("MODEL_CARD.md of %s not updated: data.limit=%d evaluates a part of the data set only",
                    bundle_dir, cfg.data.limit)
    elif data is not None:  # an external data set: its figures join the bundle's MODEL_CARD.md
        from drgrader.reporting.model_card import record_evaluation

        record_evaluation(bundle_dir, out, metrics, run_dir=run_dir, data_root=cfg.data.root, data_set=data_set,
                          card_dir=out if builtin else None)
    if replaced is not None and replaced.resolve() != bundle_dir.resolve():
        # --overwrite over another bundle's evaluation: that bundle's card no longer points here.
        from drgrader.reporting.model_card import forget_evaluation_folder

        forget_evaluation_folder(replaced, out)
    try:
        from drgrader.reporting import write_report

        write_report(out, config=_model_config(cfg, bundle.manifest))
    except ImportError:
        pass
    return out


def _model_config(cfg: ExperimentConfig, manifest: dict) -> ExperimentConfig:
    """The report's configuration: this evaluation's data and eval sections, the model's own
    model and train sections from its bundle.json (probe 35 BY11: a run's config described
    another run's model copied in); ``cfg`` as it is for a bundle without a valid record."""
    try:
        own = ExperimentConfig.model_validate(manifest["config"])
    except (KeyError, TypeError, ValueError):
        return cfg
    return cfg.model_copy(update={"model": own.model, "train": own.train})


def _data_changed(run_dir: Path, prepared) -> list[str]:
    """A run evaluated on its own data after a grade (patient, photo) of it was corrected, or a
    photo replaced by another picture under its name (the run's ``pictures.csv`` against the
    cache's fingerprints; a run without that record: labels only): warned, naming the rows; the
    figures use today's data, the report's training section the old."""
    from drgrader.workflows.records import manifest_checksum
    from drgrader.workflows.run_folder import first_ids, labels_changed, replaced_pictures

    changed = labels_changed(run_dir, prepared.table)
    replaced = replaced_pictures(run_dir, prepared.pictures)
    if replaced:
        changed.append(f"{len(replaced)} photo(s) replaced by another picture under the same name ({first_ids(replaced)})")
    if changed:
        log.warning("the data set changed since %s was trained (its labels checksum is now %s): %s; the figures use "
                    "today's labels and photos", run_dir, manifest_checksum(prepared.table), "; ".join(changed))
    return changed


def _copies_across_patients(prepared) -> tuple[list[dict], list[dict]]:
    """One picture (the same bytes, or re-saved, mirrored, flipped or turned, by the cache's fingerprints) under
    two or more patients of the data to evaluate, and one picture as two eyes of one patient:
    the figures count it once per row, each with its own grade (the paired-eye figures as a pair).
    Warned (the first with the sentence a split uses: data summary, train); each group's image
    ids and grades returned for metrics.json."""
    from drgrader.data.prepare import copied_pictures
    from drgrader.data.split import copies_sentence

    table = prepared.table
    across, eyes = [], []
    for positions in copied_pictures(table.assign(picture=table["image_id"].astype(str).map(prepared.pictures))):
        rows = table.iloc[positions].sort_values("image_id")
        group = {"image_ids": rows["image_id"].tolist(), "grades": rows["grade"].astype(int).tolist()}
        if rows["patient_id"].nunique() > 1:
            across.append(group)
        elif len(set(rows["eye"].astype(str)) - {""}) > 1:
            eyes.append(group)
    if across:
        grades = ", ".join(map(str, across[0]["grades"]))
        log.warning("%s, grades %s: the figures count that picture once per patient, each time with its own grade; "
                    "remove the copies from the data set for figures on distinct photos",
                    copies_sentence([g["image_ids"] for g in across]), grades)
    if eyes:
        log.warning("%d patient(s) have one picture as both eyes (e.g. %s, grades %s: the same pixels, or one mirrored, flipped or turned): "
                    "the figures count it as two eyes, paired; remove one for figures on distinct eyes", len(eyes),
                    " = ".join(map(repr, eyes[0]["image_ids"])), ", ".join(map(str, eyes[0]["grades"])))
    return across, eyes


def _training_overlap(bundle, run_dir: Path | None, rows, pictures: dict[str, str]) -> dict | None:
    """How many of the photos to evaluate (``pictures``: their fingerprints by image id, from
    the cache) the bundle's training record says it was trained or tuned on
    (evaluation.training_overlap), warned when any; None when the bundle has no record (warned:
    "external" cannot be checked). An ensemble without its cv folder: its members' records together."""
    from drgrader.evaluation.training_overlap import (
        TRAINING_DIGESTS,
        TrainingPhotos,
        overlap_sentence,
        training_overlap,
        training_photos,
    )

    photos = training_photos(bundle.path, run_dir, bundle.manifest)
    if photos is None and bundle.members:
        found = [p for m in bundle.leaves() if (p := training_photos(m.path, None, m.manifest)) is not None]
        if found:
            photos = TrainingPhotos("the records of its members (" + "; ".join(dict.fromkeys(p.source for p in found)) + ")",
                                    set().union(*(p.paths for p in found)), set().union(*(p.digests for p in found)),
                                    [picture for p in found for picture in p.pictures])
    if photos is None:
        log.warning("%s carries no record of the photos it was trained on (its run folder, or %s): that this data "
                    "set is external to it is not checked", bundle.path, TRAINING_DIGESTS)
        return None
    overlap = training_overlap(photos, [str(p) for p in rows["path"]],
                               [pictures.get(str(i), "") for i in rows["image_id"]])
    if overlap["photos"]:
        log.warning(overlap_sentence(overlap))
    return overlap


def _data_set(cfg: ExperimentConfig) -> str:
    """What identifies an external data set on the model card: its folder and label file."""
    root = Path(cfg.data.root or ".").expanduser().resolve()
    return str(root) + (f" labels {cfg.data.labels}" if cfg.data.labels is not None else "")


HELD_OUT = "held-out split"  # the data_set of a run's evaluation on its own test (or val) split


def _evaluation_identity(metrics: dict) -> tuple[str, str]:
    """(bundle, data set) an earlier evaluation folder's metrics.json measured; a folder written
    before metrics.json named its data set is known by its ``evaluated_on``."""
    model = str(metrics.get("model") or "")
    data_set = metrics.get("data_set")
    if not isinstance(data_set, str) or not data_set:
        where = str(metrics.get("evaluated_on") or "")
        data_set = HELD_OUT if where in ("test", "val") else str(Path(where.split(":", 1)[-1]).expanduser().resolve())
    return (str(Path(model).expanduser().resolve()) if model else ""), data_set


def _check_same_evaluation(out: Path, bundle_dir: Path, data_set: str, overwrite: bool) -> Path | None:
    """An existing evaluation folder is replaced only by the evaluation that made it (the same
    bundle on the same data set); another bundle's or another data set's is refused unless
    ``overwrite``. Returns the bundle whose evaluation is replaced (None for a new folder)."""
    import json

    from drgrader.outputs import OutputError

    file = Path(out) / "metrics.json"
    if not file.is_file():
        return None
    try:
        old = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = None
    if not isinstance(old, dict):
        if overwrite:
            return None
        raise OutputError(f"--out {out} holds an evaluation whose metrics.json cannot be read; "
                          "choose another folder (or --overwrite)")
    model, old_data = _evaluation_identity(old)
    same_model = model == str(bundle_dir.resolve())
    if (same_model and old_data == data_set) or overwrite:
        return Path(model) if model else None
    what = (f"the evaluation of another model ({model})" if not same_model
            else f"the evaluation of another data set ({old_data})")
    raise OutputError(f"--out {out} holds {what}; choose another folder (or --overwrite to replace it)")


# What a run or cv folder writes of its own: an evaluation never goes into one of these.
RUN_OWN_FOLDERS = ("bundle", "checkpoints", "logs", "figures")
KEPT_KINDS = ("a run folder", "a model bundle", "a cross-validation folder")


def _claim_out(out: Path | None, default: Path, bundle_dir: Path, overwrite: bool) -> Path:
    """The evaluation folder, checked before any work: ``--out`` may be a new or earlier
    evaluation folder, never a run, a bundle or a cv folder, nor a folder inside one (a run's own
    evaluation folder, a new one directly in it, excepted), nor inside the bundle; the default
    gets a fresh name. ``--overwrite`` replaces an earlier evaluation, never a plain folder of
    other files. Either must be writable."""
    from drgrader.outputs import OutputError, check_writable, claim_dir, fresh_name, kind_of

    if out is None:
        return check_writable(fresh_name(default))
    out = Path(out)
    kind = kind_of(out)
    if kind in KEPT_KINDS:
        # --overwrite would write an evaluation's files among the run's own (its metrics, report, curves).
        raise OutputError(f"--out {out} is {kind}: an evaluation is never written into one, even with --overwrite "
                          "(which replaces evaluation folders); choose another folder")
    target = out.resolve()
    for depth, parent in enumerate(target.parents):
        parent_kind = kind_of(parent)
        if parent_kind not in KEPT_KINDS:
            continue
        # A run's evaluations sit directly in it (RUN/evaluation, RUN/eval-D); its own folders and
        # anything deeper (RUN/figures, RUN/checkpoints, RUN/fold-0/...) are the run's.
        own = target.name in RUN_OWN_FOLDERS or target.name.startswith("fold-")
        if depth > 0 or own or parent_kind == "a model bundle" or kind not in (None, "an evaluation folder"):
            raise OutputError(f"--out {out} is inside {parent_kind} ({parent}): an evaluation is never written among "
                              "its files, even with --overwrite; choose a folder outside it")
    if overwrite and kind == "a folder" and any(out.iterdir()):
        raise OutputError(f"--out {out} already exists and is a folder of other files: --overwrite replaces an earlier "
                          "evaluation folder only, never merges into another folder; choose another folder")
    return claim_dir(out, inputs=[bundle_dir], may_reuse=("an evaluation folder",), overwrite=overwrite,
                     replaces=("an evaluation folder",))


def _remove_stale(out: Path) -> None:
    """What an earlier evaluation in ``out`` wrote and this one may not write again (its ensemble's
    members, its validation predictions): it must not pass for this one's (probe 38 CB11)."""
    import shutil

    shutil.rmtree(out / "members", ignore_errors=True)
    (out / "predictions_val.csv").unlink(missing_ok=True)


def _member_metrics(bundle, val_rows, test_rows, cfg, out: Path) -> dict:
    """Each member of an ensemble on the same data, for the report's comparison."""
    from drgrader.evaluation.evaluate import evaluate_split_pair
    from drgrader.evaluation.results import headline_with_ci

    per = {}
    for member in bundle.members:
        sub = out / "members" / member.path.name
        sub.mkdir(parents=True, exist_ok=True)
        res = evaluate_split_pair(member, None, test_rows, cfg.eval.model_copy(update={"bootstrap": 200}), sub, fit=False)
        per[member.path.name] = headline_with_ci(res["test"])
    return per

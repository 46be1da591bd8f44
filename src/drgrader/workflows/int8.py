"""``drgrader export --int8``: the float ONNX bundle, then an int8 graph kept only behind a gate.

The int8 graph (:mod:`drgrader.inference.quantize`) is calibrated on photos of the run's training
split through the bundle's own preprocessing, then measured against the float graph on the run's
validation photos with the bundle's TTA and thresholds: the share of equal grades, kappa and
referable AUC of each, and the speed of both on this machine. It replaces the float graph for
inference (``bundle.json``'s ``onnx.file``) only when it passes :class:`Gate`; the float
``model.onnx`` stays beside it. Every attempt's figures and the recipe kept are in
``bundle.json`` (``int8``) and the model card.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd

from drgrader.data.split import run_split_table
from drgrader.inference.bundle import Bundle, load_bundle
from drgrader.inference.bundle_spec import BundleError, read_manifest, write_manifest
from drgrader.inference.int8_figures import gate_figures_text, measured, recipe_choice, speed_text
from drgrader.inference.own_run import check_own_run
from drgrader.inference.predictor import score_batch
from drgrader.inference.quantize import (
    INT8_FILE,
    LADDER,
    Recipe,
    images_per_s,
    quantize_onnx,
    session_runner,
)
from drgrader.io import sha256_file

log = logging.getLogger("drgrader")

CALIBRATION_PHOTOS = 200


@dataclass(frozen=True)
class Gate:
    """What int8 must keep of the float model on the validation photos."""

    agreement: float = 0.98  # share of photos given the same grade
    kappa_drop: float = 0.01  # kappa may be at most this much lower
    auc_drop: float = 0.005  # referable AUC may be at most this much lower

    def failures(self, figures: dict) -> list[str]:
        out = []
        if figures["agreement"] < self.agreement:
            out.append(f"{figures['agreement']:.1%} of grades equal (bar {self.agreement:.0%})")
        # A figure the validation photos cannot measure (None: see int8_figures.measured) has
        # no bar to check; the verdict then rests on the others, and the card says so.
        kappa, auc = (figures["kappa_float"], figures["kappa_int8"]), (figures["auc_float"], figures["auc_int8"])
        if None not in kappa and kappa[0] - kappa[1] > self.kappa_drop:
            out.append(f"kappa {figures['kappa_int8']:.3f} against {figures['kappa_float']:.3f} (bar: -{self.kappa_drop})")
        if None not in auc and auc[0] - auc[1] > self.auc_drop:
            out.append(f"referable AUC {figures['auc_int8']:.3f} against {figures['auc_float']:.3f} (bar: -{self.auc_drop})")
        return out


class Int8GateError(BundleError):
    """The int8 graph does not keep the float model's grades within the gate."""


def run_photos(bundle_dir: Path, bundle: Bundle, *, calibration: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model inputs of ``calibration`` photos of the training split and of every validation
    photo with its grade, from the run folder the bundle was trained in (manifest.csv and
    split.csv beside ``bundle/``), through the bundle's own preprocessing."""
    from drgrader.inference.predict import load_photo

    run_dir = bundle_dir.parent
    if not ((run_dir / "manifest.csv").is_file() and (run_dir / "split.csv").is_file()):
        raise BundleError(f"--int8 calibrates on the run's training photos and checks on its validation photos: "
                          f"{run_dir} lacks manifest.csv and split.csv (give the bundle/ folder of a training run)")
    check_own_run(bundle_dir, bundle.manifest, run_dir, uses="--int8 would calibrate and check on another run's photos; "
                  "export the bundle from its own run folder")
    table = run_split_table(run_dir)
    train, val = table[table["split"] == "train"], table[table["split"] == "val"]
    if train.empty or val.empty:
        raise BundleError(f"{run_dir}/split.csv has {len(train)} training and {len(val)} validation photos; --int8 needs both")
    train = train.sample(n=min(calibration, len(train)), random_state=seed)

    def prepared(rows: pd.DataFrame, loaded: list) -> tuple[np.ndarray, np.ndarray]:
        kept = [(x.prepared, g) for x, g in zip(loaded, rows["grade"]) if not x.error]
        return np.stack([p for p, _ in kept]), np.array([g for _, g in kept])

    checked = [load_photo(path, bundle) for path in val["path"]]  # checked, as graded; calibration reads no grade
    _refuse_replaced(run_dir, val["image_id"], checked)
    photos, grades = prepared(val, checked)
    calib, _ = prepared(train, [load_photo(path, bundle) for path in train["path"]])
    return calib, photos, grades


def _refuse_replaced(run_dir: Path, image_ids, loaded: list) -> None:
    """The gate pairs the validation photos on disk with the grades the run read (its
    manifest.csv): refuse when one was replaced since by another picture under its name (its
    fingerprint now against the run's pictures.csv), whose figures would pair a grade with
    another picture (probe 58 CV4: kappa 0.221 became 0.306, recorded on the card)."""
    from drgrader.workflows.run_folder import first_ids, replaced_pictures

    replaced = replaced_pictures(run_dir, {str(i): x.picture for i, x in zip(image_ids, loaded) if not x.error})
    if replaced:
        raise BundleError(f"--int8 checks its gate on {run_dir}'s validation photos with the grades the run read, but "
                          f"{len(replaced)} of them were replaced since by another picture under the same name ({first_ids(replaced)}): "
                          "restore them (the run's pictures.csv records what it read), or train a new run on today's photos")


def add_int8(bundle_dir: Path, out: Path, *, gate: Gate | None = None, force: bool = False, shown: Path | None = None) -> dict:
    """Quantize ``out``'s float ONNX graph behind the gate; when kept, ``bundle.json`` points ONNX
    Runtime at the int8 graph, and the model card (when the run's metrics are there) says so.
    ``shown``: the folder ``out`` becomes once renamed into place, the one the log names."""
    bundle = load_bundle(bundle_dir, "torch")
    calibration, photos, grades = run_photos(bundle_dir, bundle, calibration=CALIBRATION_PHOTOS)
    record = quantize_bundle(bundle, out, calibration, photos, grades, gate=gate or Gate(), force=force)
    manifest = read_manifest(out)
    digests = {**(manifest["onnx"].get("sha256") or {}), record["file"]: sha256_file(out / record["file"])}
    write_manifest(out, {**manifest, "onnx": {**manifest["onnx"], "file": record["file"], "sha256": digests}, "int8": record})
    kept = f"int8 graph kept ({record['recipe']}; {recipe_choice(record)})"
    if record["speedup"] < 1:  # kept for its grades, yet slower: the float graph would serve better here
        log.warning("%s, but it ran slower than the float graph: %.2fx the float images/s on this machine; the float "
                    "model.onnx is beside it (export without --int8 to grade with it)", kept, record["speedup"])
    else:
        log.info("%s: %s", kept, speed_text(record))
    metrics_file = bundle_dir.parent / "metrics.json"
    if metrics_file.is_file():
        from drgrader.reporting.model_card import write_bundle_card

        write_bundle_card(out, json.loads(metrics_file.read_text()), shown=shown)
    return record


def export_int8(bundle: str | Path, out: str | Path | None = None, *, overwrite: bool = False, force: bool = False) -> Path:
    """``drgrader export --int8``: the float ONNX bundle (``export_command``), then the int8 graph,
    both built beside ``out`` and renamed into place at the end (an interrupted export leaves
    nothing); when the gate refuses the int8 graph, the float bundle is still kept."""
    from drgrader.inference.export import export_into, export_target
    from drgrader.io import atomic_dir

    src, out_dir = export_target(bundle, out, overwrite=overwrite)
    if read_manifest(src).get("members"):
        raise BundleError(f"{src} is an ensemble: --int8 quantizes one model (export each member's run bundle)")
    if out_dir.resolve() == src.resolve():
        export_into(src, src)
        add_int8(src, src, force=force)
        return out_dir
    refused = None
    with atomic_dir(out_dir) as staging:
        export_into(src, staging, shown=out_dir)
        try:
            add_int8(src, staging, force=force, shown=out_dir)
        except Int8GateError as exc:  # the float ONNX bundle stands, as the error says
            refused = exc
    if refused is not None:
        raise refused
    return out_dir


def compare(bundle: Bundle, float_run, int8_run, photos: np.ndarray, grades: np.ndarray) -> dict:
    """Float against int8 on the validation photos (uint8 N x H x W x 3), with the bundle's TTA
    and thresholds."""
    from drgrader.evaluation.metrics import quadratic_weighted_kappa, roc_auc

    def decided(runner) -> pd.DataFrame:
        scores = np.concatenate([score_batch(runner, photos[i : i + 16], bundle.tta) for i in range(0, len(photos), 16)])
        return bundle.decide(scores)

    f, q = decided(float_run), decided(int8_run)
    referable = grades >= 2
    # a model of referral alone grades nothing: its decisions are compared, its kappa not measured (probe 55 CS2)
    graded = bool(f["pred_grade"].notna().any())
    decision, score = ("pred_grade", "expected_grade") if graded else ("referable_pred", "score_referable")
    return {
        "photos": int(len(photos)),
        "agreement": float((f[decision].to_numpy() == q[decision].to_numpy()).mean()),
        "mean_abs_score_diff": float(np.nanmean(np.abs(f[score] - q[score]))),
        # None, not NaN, when the photos cannot measure it (one class: no AUC): bundle.json stays JSON.
        "kappa_float": measured(quadratic_weighted_kappa(grades, f["pred_grade"])) if graded else None,
        "kappa_int8": measured(quadratic_weighted_kappa(grades, q["pred_grade"])) if graded else None,
        "auc_float": measured(roc_auc(referable, f["score_referable"].to_numpy(dtype=float))),
        "auc_int8": measured(roc_auc(referable, q["score_referable"].to_numpy(dtype=float))),
    }


def quantize_bundle(bundle: Bundle, out: Path, calibration: np.ndarray, validation: np.ndarray, grades: np.ndarray,
                    *, gate: Gate = Gate(), force: bool = False) -> dict:
    """Climb :data:`LADDER` until a recipe passes ``gate``; write ``out/model.int8.onnx`` and return
    the record for ``bundle.json``. Raises :class:`Int8GateError` when none passes (unless
    ``force``: then the attempt nearest the gate is kept, fewest failures then most grades equal,
    marked as failing it)."""
    float_file = out / "model.onnx"
    float_run = session_runner(float_file)
    pixels = np.ascontiguousarray(calibration.transpose(0, 3, 1, 2), dtype=np.float32)
    attempts, graphs = [], []
    for i, recipe in enumerate(LADDER):
        log.info("int8: quantizing with %s", recipe.describe())
        graphs.append(out / f".int8-attempt-{i}.onnx")
        quantize_onnx(float_file, graphs[-1], pixels, recipe)
        figures = compare(bundle, float_run, session_runner(graphs[-1]), validation, grades)
        failures = gate.failures(figures)
        attempts.append({"recipe": asdict(recipe), **figures, "passed": not failures, "failures": failures})
        log.info("int8: %s%s", gate_figures_text(figures), "" if not failures else " (fails: " + "; ".join(failures) + ")")
        if not failures:
            break
    kept = min(range(len(attempts)), key=lambda i: (len(attempts[i]["failures"]), -attempts[i]["agreement"]))
    passed = attempts[kept]["passed"]
    if passed or force:
        graphs[kept].replace(out / INT8_FILE)
    for graph in graphs:
        graph.unlink(missing_ok=True)
    if not passed and not force:
        raise Int8GateError(f"int8 not kept: {'; '.join(attempts[kept]['failures'])} on {len(validation)} validation "
                            f"photos after {len(attempts)} recipes; the float ONNX bundle is unchanged "
                            "(--int8-anyway keeps the nearest regardless)")
    if not passed:
        log.info("int8: none passed; kept the nearest, %s", Recipe(**attempts[kept]["recipe"]).describe())
    batch = validation[:16]
    speed = {"float": images_per_s(float_run, batch), "int8": images_per_s(session_runner(out / INT8_FILE), batch)}
    return {"file": INT8_FILE, "recipe": Recipe(**attempts[kept]["recipe"]).describe(), "passed_gate": passed,
            "gate": asdict(gate), "calibration_photos": int(len(calibration)), "attempts": attempts, "kept": kept,
            "images_per_s": {k: round(v, 1) for k, v in speed.items()}, "speedup": round(speed["int8"] / speed["float"], 2),
            "speed_batch": int(len(batch)), "onnxruntime_version": ort.__version__}

"""Build a built-in grader (drgrader/graders/<name>/) from a trained bundle.

    python benchmarks/build_builtin_grader.py RUN/bundle --name eyepacs-lite2-256 \
        --external ../shared/data/rahim-originals --cv CV_FOLDER \
        --out src/drgrader/graders

Steps, each with drgrader's own commands: ONNX export with its parity check; the int8 graph
behind its gate (kept only when it passes); the model card rewritten from the run's metrics
(no path of this machine) with an external evaluation (``drgrader evaluate``) and a section on
the built-in grader itself (cross-fitted figures of its recipe, training data and terms, how to
rebuild it); the weights stored in half precision (Grad-CAM only: the ONNX graph grades).
The folder is written beside its final place and renamed into it, so a failed build leaves the
shipped grader as it was.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
from pathlib import Path

from drgrader.evaluation.training_overlap import write_training_digests
from drgrader.inference.bundle_spec import MANIFEST, read_manifest, write_manifest
from drgrader.inference.export import export_command
from drgrader.io import atomic_write_text, sha256_file
from drgrader.reporting.model_card import write_bundle_card
from drgrader.reporting.model_card_about import without_folders
from drgrader.workflows.evaluate import evaluate_command
from drgrader.workflows.int8 import Int8GateError, add_int8

log = logging.getLogger("drgrader")

TERMS = ("Kaggle's Diabetic Retinopathy Detection data (EyePACS), research use only under the competition's "
         "terms; the weights inherit that restriction")
KEEP = (MANIFEST, "MODEL_CARD.md", "model.safetensors")


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cross_fitted_lines(cv: Path) -> list[str]:
    """The recipe's out-of-fold and fold-ensemble external figures from a ``drgrader cv`` folder."""
    metrics = json.loads((cv / "metrics.json").read_text())
    test = metrics["test"]
    kappa, auc = test["grade"]["kappa"], test["referable"]["auc"]
    (k_lo, k_hi), (a_lo, a_hi) = test["grade"]["ci"]["kappa"], test["referable"]["ci"]["auc"]
    lines = [f"- out of fold ({metrics['evaluated_on']}, {test['n_images']} eyes of {test['n_patients']} patients, "
             f"paired eyes): kappa {kappa:.3f} ({k_lo:.3f}-{k_hi:.3f}), referable AUC {auc:.3f} ({a_lo:.3f}-{a_hi:.3f})"]
    for external in sorted(cv.glob("eval-*/metrics.json")):
        ext = json.loads(external.read_text())["test"]
        lines.append(f"- {external.parent.name[5:]}, graded by the {len(list(cv.glob('fold-*')))}-fold ensemble: "
                     f"kappa {ext['grade']['kappa']:.3f}, referable AUC {ext['referable']['auc']:.3f}")
    return lines


def lab_lines(label: str, results: Path = Path(__file__).resolve().parent / "results" / "levers.json") -> list[str]:
    """The recipe's out-of-fold figures from the lab's record (``bench_lever.py``) when no pooled
    ``drgrader cv`` folder exists: the folds measured so far, paired against the earlier recipe."""
    row = json.loads(results.read_text())[label]
    comparison = row["comparison"]
    lines = []
    for stage in ("single eye", "paired eyes"):
        mine, diff = comparison[stage]["lever"], comparison[stage]["difference"]
        (k, k_lo, k_hi), (a, a_lo, a_hi) = mine["kappa"], mine["referable_auc"]
        lines.append(f"- out of fold, folds {', '.join(map(str, row['folds']))} of 5 ({comparison['eyes']:,} eyes of "
                     f"{comparison['patients']:,} patients), {stage}: kappa {k:.3f} ({k_lo:.3f}-{k_hi:.3f}), referable AUC "
                     f"{a:.3f} ({a_lo:.3f}-{a_hi:.3f}); against `{row['against']}` on the same eyes: kappa "
                     f"{diff['kappa'][0]:+.3f} ({diff['kappa'][1]:+.3f} to {diff['kappa'][2]:+.3f}), referable AUC "
                     f"{diff['referable_auc'][0]:+.3f} ({diff['referable_auc'][1]:+.3f} to {diff['referable_auc'][2]:+.3f})")
    return lines


def builtin_section(name: str, summary: str, recipe_note: str, cv_lines: list[str], rebuild: str, graph: str) -> str:
    return "\n".join([
        f"## The built-in grader `{name}`", "",
        f"{summary}. Shipped inside drgrader: `drgrader predict PHOTOS`, `drgrader serve` and "
        f"`drgrader.load_grader()` use it when no bundle is given. It grades with its {graph}; the weights are "
        "kept in half precision for Grad-CAM only.", "",
        f"**Training data and terms.** {TERMS}. It is a research tool, not a medical device.", "",
        f"**Cross-fitted figures of its recipe** ({recipe_note}):", "", *cv_lines, "",
        "The *Performance* section below is the one validation split of this model, which also chose its "
        "checkpoint and thresholds; each of the *External evaluations* says how its photos were checked against the "
        "training photos (the first, rahim-originals, is photos from another camera and clinic).", "",
        f"**Rebuild:** `{rebuild}`", "",
    ])


def build(bundle: Path, *, name: str, out_root: Path, external: Path | None, cv: Path | None, recipe_note: str,
          summary: str, rebuild: str, int8_skipped: str | None = None, lab: str | None = None) -> Path:
    work = out_root / f".{name}.building"
    shutil.rmtree(work, ignore_errors=True)
    staged = export_command(bundle, "onnx", work / "bundle")
    graph = f"float ONNX graph (no int8 graph: {int8_skipped})"
    if not int8_skipped:
        try:
            int8 = add_int8(bundle, staged)
            graph = f"int8 ONNX graph ({int8['recipe']}; {int8['speedup']:.2f}x the float graph's images/s; it passed the gate)"
        except Int8GateError as exc:
            log.warning("the float graph ships: %s", exc)
            graph = f"float ONNX graph (no int8 graph: {exc})"
    metrics = json.loads((bundle.parent / "metrics.json").read_text())
    onnx_file = read_manifest(staged).get("onnx", {}).get("file", "model.onnx")
    for stray in staged.iterdir():  # only what ships stays (the int8 export keeps the float graph beside)
        if stray.name not in (*KEEP, onnx_file):
            stray.unlink() if stray.is_file() else shutil.rmtree(stray)
    write_bundle_card(staged, metrics)
    # Its training photos' digests travel with it: evaluate then tells its own training data from external data.
    write_training_digests(bundle.parent, staged)
    if external is not None:
        evaluate_command(staged, data=str(external), out=work / "external")
    _half_weights(staged / "model.safetensors")
    cv_lines = cross_fitted_lines(cv) if cv else lab_lines(lab) if lab else []
    section = builtin_section(name, summary, recipe_note, cv_lines, rebuild, graph)
    card = (staged / "MODEL_CARD.md").read_text(encoding="utf-8")
    if external is not None:  # the card travels: the data set by its name, no folder of this machine
        card = card.replace(str(external), external.name)
    title, rest = without_folders(card).split("\n", 1)
    # Written as is: write_model_card would keep the external entry's old text, folders included.
    atomic_write_text(staged / "MODEL_CARD.md", f"{title}\n\n{section}{rest}")
    manifest = read_manifest(staged)
    data = manifest["config"]["data"]  # the builder's folders stay on the builder's machine
    data.update(root=Path(data["root"]).name, cache_dir=None)
    write_manifest(staged, {**manifest, "weights_dtype": "float16", "weights_sha256": sha256_file(staged / "model.safetensors"),
                            "builtin": {
        "name": name, "summary": summary, "data_terms": TERMS, "rebuild": rebuild, "commit": _commit()}})
    final = out_root / name
    old = out_root / f".{name}.old"
    if final.exists():
        final.rename(old)
    staged.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    return final


def _half_weights(file: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = {k: v.half() if v.is_floating_point() else v for k, v in load_file(str(file)).items()}
    save_file(state, str(file))
    file.chmod(0o644)  # package data: readable by every user of the installation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="the trained bundle folder (PyTorch weights and its run's metrics.json beside it)")
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "src/drgrader/graders")
    parser.add_argument("--external", type=Path, help="a labelled data folder from another source, evaluated into the card")
    parser.add_argument("--cv", type=Path, help="a finished `drgrader cv` folder of the same recipe: its figures go into the card")
    parser.add_argument("--lab", metavar="LABEL", help="no cv folder yet: the recipe's folds as bench_lever.py recorded them (results/levers.json)")
    parser.add_argument("--recipe-note", default="5-fold cross-fitting on all of eyepacs-256")
    parser.add_argument("--summary", required=True, help="one line for `drgrader models`")
    parser.add_argument("--skip-int8", dest="skip_int8", metavar="WHY", help="ship the float graph without trying int8, saying why in the card")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    rebuild = " ".join(["python benchmarks/build_builtin_grader.py", "<bundle>", "--name", args.name,
                        *(["--external", "<external data>"] if args.external else []), *(["--cv", "<cv folder>"] if args.cv else []),
                        *(["--lab", args.lab] if args.lab else [])])
    folder = build(args.bundle, name=args.name, out_root=args.out, external=args.external, cv=args.cv,
                   recipe_note=args.recipe_note, summary=args.summary, rebuild=rebuild,
                   int8_skipped=args.skip_int8, lab=args.lab)
    size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
    print(f"built-in grader {args.name}: {folder} ({size:.1f} MB)")


if __name__ == "__main__":
    main()

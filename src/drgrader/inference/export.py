"""``drgrader export``: a bundle's ScoringNet to ONNX, checked against PyTorch before it is kept.

The exported graph is the whole ScoringNet: input ``pixels`` (float32 N x 3 x S x S, 0..255,
dynamic batch), output ``scores`` (N x 8, ``SCORE_COLUMNS``, NaN where the task has no value).
Normalisation and decoding are inside, so ONNX Runtime needs nothing but NumPy around it.

The legacy TorchScript exporter (``dynamo=False``) is tried first: it handles every timm
backbone we use and writes one self-contained file. Since PyTorch 2.9 ``torch.onnx.export``
defaults to the dynamo exporter, which is the fallback here.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from drgrader.inference.builtin import builtin_graders, resolve_bundle
from drgrader.inference.bundle import Bundle, load_bundle
from drgrader.inference.bundle_spec import MANIFEST, BundleError, read_manifest, write_manifest
from drgrader.inference.ensemble_members import check_members
from drgrader.io import atomic_dir, atomic_path, sha256_file
from drgrader.outputs import claim_dir, fresh_name

log = logging.getLogger("drgrader")

ONNX_FILE = "model.onnx"
DEFAULT_OPSET = 17
PARITY_TOLERANCE = 1e-3


class ExportError(RuntimeError):
    """The exported model does not reproduce PyTorch's scores."""


def _export(scoring: torch.nn.Module, example: torch.Tensor, file: Path, opset: int) -> str:
    """Write the ONNX file; returns which exporter succeeded."""
    names = {"input_names": ["pixels"], "output_names": ["scores"]}
    try:
        with warnings.catch_warnings():
            # PyTorch >= 2.9 warns that the TorchScript exporter is deprecated.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            torch.onnx.export(
                scoring,
                (example,),
                str(file),
                dynamo=False,
                opset_version=opset,
                dynamic_axes={"pixels": {0: "batch"}, "scores": {0: "batch"}},
                do_constant_folding=True,
                **names,
            )
        return "torchscript"
    except Exception as exc:  # noqa: BLE001 - any failure: try the other exporter
        log.warning("TorchScript ONNX exporter failed (%s); trying the dynamo exporter", exc)
    torch.onnx.export(
        scoring,
        (example,),
        str(file),
        dynamo=True,
        opset_version=max(opset, 18),  # the dynamo exporter's minimum
        dynamic_shapes={"pixels": {0: torch.export.Dim("batch")}},
        external_data=False,
        verbose=False,
        **names,
    )
    return "dynamo"


def parity_samples(bundle: Bundle) -> list[np.ndarray]:
    """Model inputs for the parity check: a batch of 1 and a batch of 3 (synthetic fundus
    photos through the bundle's own preprocessing, and one image of random pixels)."""
    from drgrader.synth import make_fundus

    rng = np.random.default_rng(0)
    size = bundle.input_size
    fundus = [bundle.prepare(make_fundus(grade, rng, height=max(128, size))) for grade in (0, 2, 4)]
    noise = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    batches = [np.stack(fundus[:1]), np.stack([fundus[1], noise, fundus[2]])]
    return [np.ascontiguousarray(b.transpose(0, 3, 1, 2), dtype=np.float32) for b in batches]


def parity_max_abs_diff(scoring: torch.nn.Module, onnx_file: Path, samples: list[np.ndarray]) -> float:
    """Largest |PyTorch - ONNX Runtime| over the samples; NaN columns must be NaN in both."""
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    worst = 0.0
    for pixels in samples:
        with torch.inference_mode():
            expected = scoring(torch.from_numpy(pixels)).numpy()
        got = session.run(None, {"pixels": pixels})[0]
        if got.shape != expected.shape:
            raise ExportError(f"ONNX output shape {got.shape} != PyTorch {expected.shape} for batch {len(pixels)}")
        if not np.array_equal(np.isnan(got), np.isnan(expected)):
            raise ExportError(f"ONNX NaN pattern differs from PyTorch for batch {len(pixels)}")
        finite = ~np.isnan(expected)
        if finite.any():
            worst = max(worst, float(np.abs(got[finite] - expected[finite]).max()))
    return worst


def _onnx_opset(file: Path) -> int:
    model = onnx.load(str(file), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def export_onnx(bundle_dir: Path, out: Path, opset: int = DEFAULT_OPSET, *, shown: Path | None = None) -> Path:
    """Export one single-model bundle to ``out`` (which may be ``bundle_dir`` itself); ``shown``:
    the folder ``out`` becomes once renamed into place, the one the log names."""
    bundle = load_bundle(bundle_dir, "torch")
    scoring = bundle.runner.scoring_net.to(memory_format=torch.contiguous_format).eval()
    out.mkdir(parents=True, exist_ok=True)
    size = bundle.input_size
    example = torch.rand(2, 3, size, size) * 255  # batch 2: keeps the batch axis symbolic
    with atomic_path(out / ONNX_FILE) as tmp:  # renamed into place only once parity holds
        exporter = _export(scoring, example, tmp, opset)
        diff = parity_max_abs_diff(scoring, tmp, parity_samples(bundle))
        if diff > PARITY_TOLERANCE:
            raise ExportError(
                f"{bundle_dir}: ONNX scores differ from PyTorch by up to {diff:.2e} "
                f"(> {PARITY_TOLERANCE:g}); the ONNX model was not saved"
            )
        used_opset = _onnx_opset(tmp)
    if out.resolve() != bundle_dir.resolve():
        # The rest of the bundle (weights, notes) travels with it: one folder serves both backends.
        for file in bundle_dir.iterdir():
            if file.is_file() and file.name not in (MANIFEST, ONNX_FILE):
                shutil.copy2(file, out / file.name)
    write_manifest(out, {**bundle.manifest, "onnx": {
        "file": ONNX_FILE,
        "opset": used_opset,
        "exporter": exporter,
        "input": "pixels",
        "output": "scores",
        "parity_max_abs_diff": diff,
        # by file name (export --int8 adds its graph's): load_bundle refuses a graph put there by hand
        "sha256": {ONNX_FILE: sha256_file(out / ONNX_FILE)},
        "torch_version": torch.__version__,
        "onnxruntime_version": ort.__version__,
    }})
    # Named where it will be: a staging folder's path is gone once the export is renamed into place.
    log.info("ONNX model (opset %d, %s exporter, parity %.1e): %s", used_opset, exporter, diff, (shown or out) / ONNX_FILE)
    return out


def export_command(bundle: str | Path, fmt: str = "onnx", out: str | Path | None = None, *, overwrite: bool = False) -> Path:
    """``drgrader export``: write an ONNX bundle folder (default ``<bundle>-onnx`` alongside).

    The folder keeps the manifest (with an ``"onnx"`` record: file, opset, parity) and the
    safetensors weights, so ``load_bundle(out, backend="onnx")`` works without PyTorch while
    Grad-CAM can still use the weights. Ensembles export every member. Raises
    :class:`ExportError` when ONNX Runtime does not reproduce PyTorch within 1e-3. The folder is
    built beside ``out`` and renamed into place at the end: an interrupted or failed export
    leaves nothing behind.
    """
    if fmt != "onnx":
        raise BundleError(f"unknown export format {fmt!r}; supported: onnx")
    src, out = export_target(bundle, out, overwrite=overwrite)
    if out.resolve() == src.resolve():  # in place: model.onnx, then bundle.json, each replaced atomically
        export_into(src, out)
        return out
    with atomic_dir(out) as staging:
        export_into(src, staging, shown=out)
    return out


def export_target(bundle: str | Path, out: str | Path | None, *, overwrite: bool = False) -> tuple[Path, Path]:
    """(bundle folder, output folder) of an export, checked before any work."""
    src = resolve_bundle(bundle)  # a path, or a built-in grader's name: the one lookup of every command
    read_manifest(src)
    if out is None:
        # beside the bundle; a built-in grader's export in the current folder, never inside the installed package
        builtin = src.resolve() in {d.resolve() for d in builtin_graders().values()}
        return src, fresh_name(Path(f"{src.name}-onnx") if builtin else src.with_name(f"{src.name}-onnx"))
    if Path(out).resolve() == src.resolve():  # exporting in place adds model.onnx to the bundle itself
        return src, Path(out)
    return src, claim_dir(Path(out), inputs=[src], overwrite=overwrite, replaces=("a model bundle",))


def export_into(src: Path, out: Path, *, shown: Path | None = None) -> None:
    """Export the bundle ``src`` (every member of an ensemble) into the folder ``out`` (to be
    renamed ``shown``, the name the log gives)."""
    manifest = read_manifest(src)
    if not manifest.get("members"):
        export_onnx(src, out, shown=shown)
        return
    check_members(src, manifest)
    for member in manifest["members"]:
        export_into(src / member, out / member, shown=None if shown is None else shown / member)
    if out.resolve() != src.resolve():
        # the ensemble's own files (its MODEL_CARD.md: out-of-fold figures, external entries) travel too (probe 55 CS3)
        for file in src.iterdir():
            if file.is_file() and file.name != MANIFEST:
                shutil.copy2(file, out / file.name)
        write_manifest(out, manifest)

"""The model bundle: a folder holding everything needed to use a trained grader correctly.

``bundle.json``   architecture, task, preprocessing (exactly as in training), input size,
                  normalisation, thresholds/cut-points, TTA views, data summary, validation
                  figures, versions.
``model.safetensors``  weights (safetensors: loading never unpickles anything).
``model.onnx``    optional, written by ``drgrader export``; a bundle with only ONNX needs no PyTorch.

An ensemble bundle has ``"members": [<sub-folder>, ...]`` instead of weights; each member keeps
its own preprocessing and the ensemble averages their scores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from drgrader.config import PreprocessConfig
from drgrader.extras import available, require
from drgrader.grading import GRADE_NAMES, SCORE_COLUMNS, decide
from drgrader.inference.bundle_spec import MANIFEST, BundleError, check_bundle, read_manifest, write_manifest
from drgrader.inference.predictor import score_batch
from drgrader.io import sha256_file


@dataclass
class Bundle:
    path: Path
    manifest: dict
    runner: object = None  # callable pixels -> scores
    members: list["Bundle"] = field(default_factory=list)
    engine: str = ""  # what scores: "torch" or "onnx:<graph file>" (an ensemble: its members')

    @property
    def backend(self) -> str:
        """What scores the photos, for a run's records: one grade from two engines is two runs."""
        return " + ".join(member.backend for member in self.members) if self.members else self.engine

    @property
    def input_size(self) -> int:
        """The model's input size; an ensemble's is its largest member's, so a photo too small for
        any member (a thumbnail under half its input) is called ungradable, whatever the order."""
        if self.members:
            return max(member.input_size for member in self.members)
        return int(self.manifest["input_size"])

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def thresholds(self) -> dict:
        return self.manifest.get("thresholds") or {}

    def warn_if_unfitted(self) -> None:
        """Say it once when decisions would come from default thresholds (an ensemble made by
        ``drgrader ensemble``, which fits none): its grades and referrals are then not calibrated."""
        if not self.manifest.get("thresholds"):
            logging.getLogger("drgrader").warning(
                "%s has no fitted thresholds: its decisions use the default cut-points and are not calibrated "
                "(an ensemble gets fitted thresholds only from `drgrader cv`, out of fold; `drgrader ensemble` fits none)",
                self.path)

    def synthetic_warning(self) -> str | None:
        """What to say when a model (an ensemble's member too) was trained on ``drgrader synth``
        photos: its grades say nothing about real patients (probe 35 AY13: only its card said so)."""
        trained = [leaf.path for leaf in self.leaves() if trained_on_synthetic(leaf.path, leaf.manifest)]
        if not trained:
            return None
        which = trained[0] if trained[0] == self.path else f"{self.path} (member {trained[0]})"
        return (f"{which} was trained on synthetic photos (drgrader synth): it shows that the software works; its grades "
                "say nothing about real patients")

    def warn_if_synthetic(self) -> None:
        """Say :meth:`synthetic_warning` once, where there is one (predict, serve, grade, explain)."""
        if (said := self.synthetic_warning()) is not None:
            logging.getLogger("drgrader").warning("%s", said)

    @property
    def tta(self) -> list[str]:
        return self.manifest.get("tta") or ["orig"]

    # Single models and ensembles answer the same calls; these are the only places that tell
    # them apart (an ensemble's input is one prepared image per member, in member order).
    @property
    def reads_cached_input(self) -> bool:
        """True for a single model: its input is exactly what the training cache stores, so
        callers may decode and preprocess a photo once (``data.cache.preprocess_file``) and
        feed that; an ensemble needs :meth:`prepare_photo` (each member its own input size)."""
        return not self.members

    def prepare_photo(self, path, *, orig_size: tuple[int, int] | None = None, max_pixels: int | None = None,
                      header=None, decoded: dict | None = None) -> tuple:
        """A photo file -> (the model's input, the photo as decoded, its fundus circle): decoded as
        the training cache decodes it for the model's input size (scale-on-decode,
        :func:`~drgrader.data.photo.decode_photo`) and preprocessed; an ensemble's input is one per
        member, each decoded for its own size (once per size), as each was trained and scores
        alone (probe 48 CL2: a full decode for all put the ensemble up to 0.35 grade units from
        its members' mean). The decoded photo is the largest member's (for quality and fingerprint)."""
        from drgrader.data.photo import decode_photo

        decoded = {} if decoded is None else decoded
        if self.members:
            inputs = [member.prepare_photo(path, orig_size=orig_size, max_pixels=max_pixels, header=header,
                                           decoded=decoded)[0] for member in self.members]
            return inputs, *decoded[self.input_size]
        if self.input_size not in decoded:
            decoded[self.input_size] = decode_photo(path, self.input_size, orig_size, max_pixels=max_pixels, header=header)
        rgb, circle = decoded[self.input_size]
        return self.prepare(rgb, circle), rgb, circle

    def read_photo(self, path, *, orig_size: tuple[int, int], max_pixels: int | None = None, header=None) -> tuple:
        """A photo file -> (the model's input, the photo as decoded, its quality): :meth:`prepare_photo`
        and :func:`~drgrader.data.photo.photo_quality`, the one reading predict, serve and explain share."""
        from drgrader.data.photo import photo_quality

        prepared, rgb, circle = self.prepare_photo(path, orig_size=orig_size, max_pixels=max_pixels, header=header)
        return prepared, rgb, photo_quality(path, rgb, circle, self.input_size, orig_size, header=header)

    def leaves(self) -> list["Bundle"]:
        """The single models inside: itself, or every member's, in order."""
        return [leaf for member in self.members for leaf in member.leaves()] if self.members else [self]

    def prepare(self, rgb: np.ndarray, circle=None):
        """Raw RGB photo -> the model's input (same function and settings as training; the
        fundus ``circle`` when already found); an ensemble's is a list, one per member."""
        if self.members:
            return [member.prepare(rgb, circle) for member in self.members]
        from drgrader.data.preprocess import preprocess_image

        cfg = PreprocessConfig.model_validate(self.manifest["preprocess"])
        return preprocess_image(rgb, cfg, self.input_size, circle)

    def score_prepared(self, prepared, tta: list[str] | None = None) -> np.ndarray:
        """Inputs from :meth:`prepare` (or cached images, for a single model) -> scores N x 8;
        an ensemble averages its members' scores, each with its own TTA unless ``tta`` is given."""
        if self.members:
            per_member = [member.score_prepared([p[i] for p in prepared], tta) for i, member in enumerate(self.members)]
            return np.mean(per_member, axis=0)
        return score_batch(self.runner, np.stack(list(prepared)), self.tta if tta is None else tta)

    def score_raw(self, images: list[np.ndarray], tta: list[str] | None = None) -> np.ndarray:
        """Raw RGB photos -> scores N x 8."""
        return self.score_prepared([self.prepare(img) for img in images], tta)

    @property
    def paired_eyes(self) -> dict | None:
        """The paired-eye stage (``{"model", "thresholds"}``) of a cross-fitted bundle, or None."""
        return self.manifest.get("paired_eyes") or None

    def decide(self, scores: np.ndarray) -> pd.DataFrame:
        """Decisions for photos taken one by one (no fellow eye known): with a paired-eye stage,
        its single-eye fallback and thresholds, so every output of the bundle is on one scale."""
        decided = decide(scores, self.thresholds)
        if self.paired_eyes:
            from drgrader.inference.paired_eyes import decisions_with_stage

            staged = decisions_with_stage(decided, self.paired_eyes)
            decided[staged.columns] = staged
        return decided


def trained_on_synthetic(folder: Path, manifest: dict) -> bool:
    """Whether the single model in ``folder`` was trained on ``drgrader synth`` photos: by the synth
    marker in its training data folder, or, away from it, by its model card's warning."""
    from drgrader.synth import made_by_synth

    if made_by_synth(((manifest.get("config") or {}).get("data") or {}).get("root")):
        return True
    card = Path(folder) / "MODEL_CARD.md"
    return card.is_file() and "Trained on synthetic photos" in card.read_text(encoding="utf-8", errors="replace")


def save_bundle(
    path: str | Path,
    scoring_net,
    *,
    config: dict,
    thresholds: dict,
    data_summary: dict | None = None,
    validation: dict | None = None,
) -> Path:
    """Write weights and manifest. ``scoring_net`` is a ``ScoringNet`` (pixels -> scores)."""
    from safetensors.torch import save_file

    from drgrader.io import atomic_path

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    net = scoring_net.net
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    with atomic_path(path / "model.safetensors") as tmp:
        save_file(state, str(tmp))
    write_manifest(path, {
        # load_bundle refuses other weights put in their place (another run's, by hand)
        "weights_sha256": sha256_file(path / "model.safetensors"),
        "backbone": net.backbone_name,
        "task": net.task,
        "kind": net.kind,
        "head": config["model"]["head"],
        "drop_rate": config["model"]["drop_rate"],
        "outputs": SCORE_COLUMNS,
        "class_names": GRADE_NAMES,
        "input_size": config["data"]["image_size"],
        "preprocess": config["data"]["preprocess"],
        "mean": [float(x) / 255 for x in scoring_net.mean.flatten().tolist()],
        "std": [float(x) / 255 for x in scoring_net.std.flatten().tolist()],
        "thresholds": thresholds,
        "tta": config["eval"]["tta"],
        "data_summary": data_summary or {},
        "validation": validation or {},
        "config": config,
    })
    return path


def load_bundle(path: str | Path, backend: str = "auto") -> Bundle:
    """Load a bundle for inference. ``backend``: "torch", "onnx", or "auto" (torch when the
    weights and the [torch] extra are there, else ONNX Runtime)."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    manifest = read_manifest(path)
    if manifest.get("members"):
        from drgrader.inference.ensemble_members import check_members

        check_members(path, manifest)  # a member listed twice or swapped by hand would be averaged as given
        members = [load_bundle(path / m, backend) for m in manifest["members"]]
        return Bundle(path, manifest, members=members)
    onnx_file = Path((manifest.get("onnx") or {}).get("file", "model.onnx")).name  # model.onnx, or the int8 graph kept
    has_onnx = (path / onnx_file).is_file()
    if manifest.get("onnx") and not has_onnx:  # exported, but its graph is gone: never a silent switch of backend
        raise BundleError(f"{path / MANIFEST} names the ONNX graph {onnx_file!r}, which is not in {path} "
                          "(copy it back, or export the bundle again)")
    if has_onnx:
        _check_graph(path, manifest, onnx_file)  # another model's graph would grade under this bundle's thresholds
    # Half-precision weights (a built-in grader's) are there for Grad-CAM: the ONNX graph, whose
    # figures the model card reports, grades.
    full_precision = manifest.get("weights_dtype", "float32") == "float32"
    if backend == "auto":  # weights only and no [torch] extra: torch, whose error says what to install
        backend = "torch" if (path / "model.safetensors").is_file() and (
            full_precision and available("torch") or not has_onnx) else "onnx"
    if backend == "torch":
        runner = _torch_runner(path, manifest, "the torch backend" if has_onnx else f"{path}, a bundle without model.onnx,")
        engine = f"torch:{manifest.get('weights_dtype', 'float32')}"
    elif backend == "onnx":
        runner = _onnx_runner(path, manifest, onnx_file)
        engine = f"onnx:{onnx_file}"
        int8 = manifest.get("int8") or {}
        if onnx_file == int8.get("file") and not int8.get("passed_gate", True):  # export --int8-anyway
            logging.getLogger("drgrader").warning(
                "%s grades with its int8 graph, which failed its parity gate at export (see its MODEL_CARD.md); "
                "--backend torch grades with the float weights", path)
    else:
        raise BundleError(f"unknown backend {backend!r}; use torch, onnx or auto")
    return Bundle(path, manifest, runner=runner, engine=engine)


def _check_recorded(folder: Path, file: str, expected, what: str, fix: str) -> None:
    """``folder/file`` is the file this bundle was written with: its sha256 is ``expected``, the one
    bundle.json records. A bundle without the record (older, a built-in grader) is not checked.
    Hashed once per open of a bundle, not on every read of ``bundle.json`` (many per command)."""
    if expected and sha256_file(folder / file) != expected:
        raise BundleError(f"{folder / MANIFEST} is inconsistent: {file} is not {what} (its sha256 differs from "
                          f"bundle.json's record): {fix}")


def _check_graph(folder: Path, manifest: dict, file: str) -> None:
    """The ONNX graph ``file`` is the one exported with this bundle (``onnx.sha256``, by file name)."""
    recorded = (manifest.get("onnx") or {}).get("sha256") or {}
    expected = recorded.get(file) if isinstance(recorded, dict) else None
    _check_recorded(folder, file, expected, "the graph exported with this bundle", "export again")


def _check_weights(folder: Path, manifest: dict) -> None:
    """``model.safetensors`` is the file the bundle was saved with (``weights_sha256``)."""
    _check_recorded(folder, "model.safetensors", manifest.get("weights_sha256"), "the weights this bundle was saved with",
                    "copy the bundle whole again")


def check_recorded_files(folder: Path, manifest: dict) -> None:
    """Every model file of a single-model bundle that bundle.json records a sha256 for is that
    file (the weights, each exported graph), without opening it: ``drgrader models BUNDLE`` prints
    a card only for a bundle the other commands would open (probe 33 BV4)."""
    if (folder / "model.safetensors").is_file():
        _check_weights(folder, manifest)
    recorded = (manifest.get("onnx") or {}).get("sha256") or {}
    for file in recorded if isinstance(recorded, dict) else ():
        if (folder / file).is_file():
            _check_graph(folder, manifest, file)


def build_scoring_net(manifest: dict):
    """The PyTorch network of a bundle manifest, without weights."""
    from drgrader.models.factory import GraderNet, ScoringNet

    net = GraderNet(manifest["backbone"], manifest["task"], manifest["kind"], manifest["head"], manifest["drop_rate"])
    return ScoringNet(net, manifest["mean"], manifest["std"])


def _check_normalisation(path: Path, manifest: dict) -> None:
    """The mean/std PyTorch would apply are those the model was trained with: a backbone's own
    (``normalize: model``) are known only to timm, so this half of the check lives here, where
    timm is imported anyway (``bundle_spec`` checks ``imagenet`` and ``unit``). The ONNX graph
    carries its own, so without this an edited bundle.json would grade differently by backend."""
    normalize = ((manifest.get("config") or {}).get("data") or {}).get("normalize")
    if normalize != "model":
        return
    from drgrader.models.factory import input_mean_std

    mean, std = input_mean_std(manifest["backbone"], normalize)
    if not np.allclose([manifest["mean"], manifest["std"]], [mean, std], atol=1e-6):
        raise BundleError(f"{path / MANIFEST} is inconsistent: mean {manifest['mean']} and std {manifest['std']} are not how "
                          f"the model was trained (config.data.normalize 'model': {manifest['backbone']}'s mean {mean}, std {std})")


def _torch_runner(path: Path, manifest: dict, feature: str):
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise BundleError(f"{path}: no model.safetensors (use backend='onnx' for an ONNX-only bundle)")
    require("torch", feature)
    import torch
    from safetensors.torch import load_file

    _check_normalisation(path, manifest)
    scoring = build_scoring_net(manifest)
    try:
        scoring.net.load_state_dict(load_file(str(weights)))
    except Exception as exc:  # SafetensorError, size or key mismatch: the file does not fit the manifest
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"{weights} is damaged or does not fit {MANIFEST} ({manifest['backbone']}): {first_line}") from None
    _check_weights(path, manifest)  # whole weights of the same network, but not these (another run's copied in)
    scoring.eval().to(memory_format=torch.channels_last)

    def run(pixels: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(pixels).contiguous(memory_format=torch.channels_last)
            return scoring(x).numpy()

    run.scoring_net = scoring
    return run


def _onnx_runner(path: Path, manifest: dict, file: str = "model.onnx"):
    """ONNX Runtime on the bundle's graph: ``model.onnx``, or the int8 graph that export kept."""
    import onnxruntime as ort

    model = path / file
    if not model.is_file():
        raise BundleError(f"{path}: no {file} (run `drgrader export {path} --format onnx`)")
    opts = ort.SessionOptions()
    try:
        session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # InvalidProtobuf, InvalidGraph, ...: ONNX Runtime's own classes
        raise BundleError(f"{model} is damaged or not an ONNX model: {str(exc).strip().splitlines()[0]}") from None
    graph_input = session.get_inputs()[0]
    check_bundle(manifest, path / MANIFEST, onnx_input=list(graph_input.shape))  # an edited input_size meets the graph here
    name = graph_input.name

    def run(pixels: np.ndarray) -> np.ndarray:
        return session.run(None, {name: pixels.astype(np.float32)})[0]

    return run

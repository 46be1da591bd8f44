"""``create_model``: one factory for every drgrader network (a timm backbone + a head)."""

from __future__ import annotations

import logging
from pathlib import Path

import timm
import torch
from torch import nn

from drgrader.config import FIXED_NORMALIZE, ConfigError, ModelConfig
from drgrader.grading import GRADES, NUM_GRADES
from drgrader.models.heads import decode, make_head, output_kind

log = logging.getLogger("drgrader")


class GraderNet(nn.Module):
    """A timm backbone (pooled features) followed by a task head.

    ``kind`` says how to read the raw outputs (see :mod:`drgrader.models.heads`).
    """

    def __init__(self, backbone: str, task: str, kind: str, head: str = "linear", drop_rate: float = 0.0):
        super().__init__()
        self.backbone_name, self.task, self.kind = backbone, task, kind
        try:
            self.backbone = timm.create_model(backbone, pretrained=False, num_classes=0)
        except RuntimeError as exc:  # timm: "Unknown model (...)"
            raise ConfigError(f"model.backbone={backbone!r} is not a timm model: {exc}") from None
        # Some backbones (mobilenetv3, lcnet) have a conv after pooling: their output width is
        # head_hidden_size, not num_features.
        width = getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        self.head = make_head(kind, width, head, drop_rate)
        self.frozen_norms: list[nn.Module] = []

    def train(self, mode: bool = True) -> "GraderNet":
        super().train(mode)
        # Frozen BatchNorm layers keep their ImageNet statistics, as frozen layers do in Keras.
        for norm in self.frozen_norms:
            norm.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def decode(self, raw: torch.Tensor) -> dict[str, torch.Tensor]:
        return decode(self.kind, raw, self.task)

    def cam_target_layer(self) -> nn.Module:
        """The last feature stage, where Grad-CAM looks."""
        info = getattr(self.backbone, "feature_info", None)
        if info:
            return self.backbone.get_submodule(info[-1]["module"])
        convs = [m for m in self.backbone.modules() if isinstance(m, nn.Conv2d)]
        return convs[-1]


def create_model(cfg: ModelConfig, loss: str) -> GraderNet:
    """Build the network of a config and load its starting weights (``model.pretrained``)."""
    kind = output_kind(cfg.task, loss)
    net = GraderNet(cfg.backbone, cfg.task, kind, cfg.head, cfg.drop_rate)
    spec = cfg.pretrained
    if spec.startswith(("bundle:", "checkpoint:")):
        what = load_whole_model(net, spec)
    else:
        from drgrader.models.pretrained import load_pretrained

        what = load_pretrained(net.backbone, cfg.backbone, spec)
    log.info("weights: %s", what)
    net.weights_source = what
    if cfg.trainable_layers:
        freeze_all_but_last(net, cfg.trainable_layers)
    return net


def parameterised_layers(module: nn.Module) -> list[nn.Module]:
    """Leaf modules that own parameters, in forward-definition order (Keras counts layers so)."""
    return [m for m in module.modules() if not list(m.children()) and any(True for _ in m.parameters(recurse=False))]


def freeze_all_but_last(net: GraderNet, n: int) -> int:
    """Freeze the backbone except its last ``n`` parameterised layers (seed 001 trains 50).

    Frozen BatchNorm layers also stop updating their running statistics, as in Keras.
    Returns the number of backbone layers left trainable.
    """
    layers = parameterised_layers(net.backbone)
    frozen = layers[: max(0, len(layers) - n)]
    for layer in frozen:
        for p in layer.parameters():
            p.requires_grad_(False)
    net.frozen_norms = [m for m in frozen if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    net.train(net.training)
    return len(layers) - len(frozen)


def unfreeze(net: GraderNet) -> None:
    net.frozen_norms = []
    for p in net.parameters():
        p.requires_grad_(True)
    net.train(net.training)


def load_whole_model(net: GraderNet, spec: str) -> str:
    """Start from an earlier drgrader model (bundle) or a Lightning checkpoint; the head is kept
    when its shape fits the new task, else only the backbone is taken."""
    from drgrader.models.pretrained import sha256_file

    kind, _, path = spec.partition(":")
    path = Path(path)
    if kind == "bundle":
        from safetensors.torch import load_file

        weights_file = path / "model.safetensors" if path.is_dir() else path
        if not weights_file.is_file():
            raise FileNotFoundError(f"model.pretrained={spec!r}: no bundle weights at {weights_file}")
        state = load_file(str(weights_file))
    else:
        if not path.is_file():
            raise FileNotFoundError(f"model.pretrained={spec!r}: checkpoint {path} not found")
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        state = ckpt.get("state_dict", ckpt)
        state = {k.removeprefix("net."): v for k, v in state.items()}
        weights_file = path
    own = net.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    backbone_keys = [k for k in own if k.startswith("backbone.")]
    matched = sum(k in fitting for k in backbone_keys)
    if matched < 0.9 * len(backbone_keys):
        raise ValueError(
            f"model.pretrained={spec!r}: only {matched}/{len(backbone_keys)} backbone tensors fit "
            f"{net.backbone_name}; was it trained with another backbone?"
        )
    net.load_state_dict(fitting, strict=False)
    head_note = "with its head" if all(k in fitting for k in own if k.startswith("head.")) else "backbone only"
    return f"{kind} {weights_file} (sha256 {sha256_file(weights_file)[:12]}), {head_note}"


def input_mean_std(backbone: str, normalize: str) -> tuple[list[float], list[float]]:
    """Per-channel mean/std in [0,1] units for ``data.normalize``: the backbone's own (timm's
    pretrained config; EfficientNet-Lite uses 0.5/0.5), ImageNet's, or none (seed 001's /255)."""
    if normalize == "model":
        cfg = timm.get_pretrained_cfg(backbone)
        if cfg is not None and getattr(cfg, "mean", None):
            return list(cfg.mean), list(cfg.std)
    mean, std = FIXED_NORMALIZE["unit" if normalize == "unit" else "imagenet"]
    return list(mean), list(std)


class ScoringNet(nn.Module):
    """Pixels in (float N x 3 x H x W, 0..255), decoded scores out (N x 8, ``SCORE_COLUMNS``;
    NaN where the task cannot say). Normalisation lives inside the graph, so a bundle (PyTorch or
    ONNX) cannot be fed differently scaled inputs than training used: seed 001's save/load bug."""

    def __init__(self, net: GraderNet, mean: list[float], std: list[float]):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255.0)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels 0..255 -> the network's input scale: the one place it is done (training,
        scoring and Grad-CAM all call it)."""
        return (pixels - self.mean) / self.std

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.net.decode(self.net(self.normalise(pixels)))
        n = pixels.shape[0]
        nan = torch.full((n,), float("nan"), dtype=pixels.dtype, device=pixels.device)
        probs = out.get("probs")
        cols = [probs[:, k] for k in GRADES] if probs is not None else [nan] * NUM_GRADES
        cols += [out.get(name, nan) for name in ("expected_grade", "score_any", "score_referable")]
        return torch.stack(cols, dim=1)

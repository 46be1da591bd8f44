"""Shared pytest fixtures."""

from __future__ import annotations

import pytest


# ------------------------------------------------------------------ tiny model bundle
def make_tiny_bundle(path, seed: int):
    """A small untrained grader bundle (timm ``test_resnet``, softmax5, 64 px input): random but
    fixed weights (``seed``), fitted-looking thresholds."""
    import torch

    from drgrader.config import ExperimentConfig, config_to_dict
    from drgrader.inference.bundle import save_bundle
    from drgrader.models.factory import GraderNet, ScoringNet, input_mean_std

    backbone = "test_resnet"
    cfg = ExperimentConfig.model_validate(
        {
            "name": "tiny",
            "data": {"image_size": 64, "normalize": "imagenet"},
            "model": {"backbone": backbone, "task": "grade"},
            "eval": {"tta": ["orig"]},
        }
    )
    torch.manual_seed(seed)
    net = GraderNet(backbone, task="grade", kind="softmax5").eval()
    mean, std = input_mean_std(backbone, "imagenet")
    return save_bundle(
        path,
        ScoringNet(net, mean, std),
        config=config_to_dict(cfg),
        thresholds={"any_dr": 0.5, "referable": 0.5},
    )


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """The inference tests' bundle (seed 0)."""
    return make_tiny_bundle(tmp_path_factory.mktemp("bundles") / "tiny", seed=0)


@pytest.fixture(scope="session")
def other_tiny_bundle(tmp_path_factory):
    """Another model of the same kind (seed 1): an ensemble's second member."""
    return make_tiny_bundle(tmp_path_factory.mktemp("bundles") / "tiny2", seed=1)


def _files_state(folder):
    """Every file under ``folder``: its size and modification time."""
    return {str(f.relative_to(folder)): (f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(folder.rglob("*")) if f.is_file()}


@pytest.fixture(autouse=True)
def _shared_bundles_stay_unchanged(request):
    """The session's bundles are shared by hundreds of tests: a test that writes into one (an
    evaluation's card entry, an export's model.onnx) changes what every later test sees. Such a
    test must work on its own copy (``shutil.copytree``)."""
    names = [name for name in ("tiny_bundle", "other_tiny_bundle") if name in request.fixturenames]
    before = {name: _files_state(request.getfixturevalue(name)) for name in names}
    yield
    for name, state in before.items():
        assert _files_state(request.getfixturevalue(name)) == state, (
            f"this test changed the shared {name}: give it a copy (shutil.copytree) instead")


# --------------------------------------------------------------- tiny synthetic data set
@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """A small synthetic data set in the Kaggle layout (40 patients, 80 images)."""
    from drgrader.synth import make_dataset

    root = tmp_path_factory.mktemp("synth") / "data"
    make_dataset(root, 40, seed=3, height=192, progress=False)
    return root


def tiny_config(root, **overrides):
    """An experiment that trains in seconds: 48 px, timm's tiny test_resnet, 2 epochs."""
    from drgrader.config import load_config

    settings = {
        "data.root": str(root),
        "data.format": "kaggle",
        "data.image_size": 48,
        "data.workers": 1,
        "data.cache_dir": str(root.parent / "cache"),
        "model.backbone": "test_resnet",
        "model.pretrained": "none",
        "train.epochs": 2,
        "train.batch_size": 8,
        "train.lr": 0.003,
        "eval.bootstrap": 20,
    }
    settings.update(overrides)
    return load_config(None, [f"{k}={v}" for k, v in settings.items()])

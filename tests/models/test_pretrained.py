"""Pretrained-weight loading: offline ImageNet package mapping, local files, hub cache/offline."""

from __future__ import annotations

import hashlib
import socket
import time

import huggingface_hub.constants
import pytest
import safetensors.torch
import timm
import torch
from PIL import Image
from sklearn.datasets import load_sample_image

from drgrader.models.pretrained import (
    PretrainedError,
    hub_reachable,
    lite_weights_path,
    load_pretrained,
    sha256_file,
)

SMALL = "mobilenetv3_small_050"  # 0.6M parameters: fast to build and save
DAISY = 985
PALACE = 698
# What a palace/temple roof by a lake may reasonably be called in ImageNet-1k.
TEMPLE_CLASSES = {PALACE, 663, 442, 832}  # palace, monastery, bell cote, stupa


def make(backbone: str, num_classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(backbone, pretrained=False, num_classes=num_classes).eval()


def predict_top5(model: torch.nn.Module, image_name: str) -> tuple[list[int], float]:
    config = timm.data.resolve_data_config({}, model=model)
    transform = timm.data.create_transform(**config)
    image = Image.fromarray(load_sample_image(image_name))
    with torch.no_grad():
        probs = model(transform(image).unsqueeze(0)).softmax(-1)[0]
    top = probs.topk(5)
    return top.indices.tolist(), float(top.values[0])


# ---------------------------------------------------------------------------- imagenet package
def test_lite0_imagenet_weights_classify_natural_photos():
    model = make("tf_efficientnet_lite0", num_classes=1000)
    description = load_pretrained(model, "tf_efficientnet_lite0", "imagenet")
    assert "ImageNet classifier loaded" in description

    flower_top5, flower_p = predict_top5(model, "flower.jpg")
    assert flower_top5[0] == DAISY
    assert flower_p > 0.15  # chance is 0.001; random or shuffled weights are near it

    temple_top5, temple_p = predict_top5(model, "china.jpg")
    assert temple_top5[0] in TEMPLE_CLASSES
    assert PALACE in temple_top5
    assert temple_p > 0.15


# Stage 3 starts at flat block 1+3+3 = 7 and the last block is number 20: both models stack
# 1, 3, 3, 4, 4, 5, 1 blocks per stage (EfficientNet-B0's 1, 2, 2, 3, 3, 4, 1 deepened).
@pytest.mark.parametrize("backbone", ["tf_efficientnet_lite1", "tf_efficientnet_lite2"])
def test_lite_package_maps_every_tensor_by_position(backbone):
    path = lite_weights_path(backbone)
    source = torch.load(path, map_location="cpu", weights_only=True)
    model = make(backbone, num_classes=5)
    head_before = model.classifier.weight.clone()

    description = load_pretrained(model, backbone, "imagenet")

    assert str(path) in description and sha256_file(path)[:12] in description
    assert "classifier left random" in description
    state = model.state_dict()
    # Ends of the network under their two naming schemes, plus stage starts/ends in between.
    assert torch.equal(state["conv_stem.weight"], source["_conv_stem.weight"])
    assert torch.equal(state["bn2.running_var"], source["_bn1.running_var"])
    assert torch.equal(state["blocks.3.0.conv_dw.weight"], source["_blocks.7._depthwise_conv.weight"])
    assert torch.equal(state["blocks.6.0.conv_pwl.weight"], source["_blocks.20._project_conv.weight"])
    assert torch.equal(model.classifier.weight, head_before)  # 5-class head: 1000-class _fc skipped


def test_lite_package_without_head_loads_backbone():
    model = make("tf_efficientnet_lite0", num_classes=0)
    description = load_pretrained(model, "tf_efficientnet_lite0", "imagenet")
    assert "294 backbone tensors mapped by position" in description


def test_lite_package_refuses_another_architecture():
    model = make("tf_efficientnet_lite1")
    with pytest.raises(PretrainedError, match="not tf_efficientnet_lite0"):
        load_pretrained(model, "tf_efficientnet_lite0", "imagenet")


def test_none_keeps_random_weights():
    model = make(SMALL)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert load_pretrained(model, SMALL, "none") == "random initialisation"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_unknown_spec_is_rejected():
    with pytest.raises(PretrainedError, match="unknown pretrained spec"):
        load_pretrained(make(SMALL), SMALL, "imagenet21k")


# ---------------------------------------------------------------------------- file
def test_sha256_file_known_vector(tmp_path):
    path = tmp_path / "abc.bin"
    path.write_bytes(b"abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_file_round_trip_strips_prefix_and_skips_other_head(tmp_path, suffix):
    trained = make(SMALL, num_classes=10)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)  # differ from make()'s seeded initialisation
    wrapped = {"module." + k: v for k, v in trained.state_dict().items()}
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        safetensors.torch.save_file(wrapped, str(path))
    else:
        torch.save({"state_dict": wrapped, "epoch": 3}, path)

    model = make(SMALL, num_classes=3)
    head_before = model.classifier.weight.clone()
    description = load_pretrained(model, SMALL, f"file:{path}")

    assert str(path) in description
    assert hashlib.sha256(path.read_bytes()).hexdigest()[:12] in description
    assert "classifier left random" in description
    for key, value in model.state_dict().items():
        if not key.startswith("classifier."):
            assert torch.equal(value, trained.state_dict()[key]), key
    assert torch.equal(model.classifier.weight, head_before)


def test_file_of_another_model_is_rejected_with_counts(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(make("resnet10t").state_dict(), path)
    with pytest.raises(PretrainedError, match=r"only 0/\d+ backbone tensors matched"):
        load_pretrained(make(SMALL), SMALL, f"file:{path}")


def test_file_missing_a_fifth_of_tensors_is_rejected(tmp_path):
    state = make(SMALL).state_dict()
    keys = [k for k in state if not k.endswith("num_batches_tracked")]
    dropped = set(keys[::5])
    path = tmp_path / "partial.safetensors"
    safetensors.torch.save_file({k: v for k, v in state.items() if k not in dropped}, str(path))
    with pytest.raises(PretrainedError, match=rf"{len(dropped)} missing"):
        load_pretrained(make(SMALL), SMALL, f"file:{path}")


class NotATensor:
    pass


def test_file_with_pickled_objects_is_not_unpickled(tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"state_dict": make(SMALL).state_dict(), "extra": NotATensor()}, path)
    with pytest.raises(PretrainedError, match="only plain tensor checkpoints"):
        load_pretrained(make(SMALL), SMALL, f"file:{path}")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(PretrainedError, match="not found: .*nothing.pth"):
        load_pretrained(make(SMALL), SMALL, f"file:{tmp_path / 'nothing.pth'}")


# ---------------------------------------------------------------------------- hub
@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.mark.parametrize("spec", ["hub:resnet18", "imagenet"])
def test_hub_offline_fails_fast_with_hint(empty_hub_cache, monkeypatch, spec):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(PretrainedError) as info:
        load_pretrained(make("resnet18"), "resnet18", spec)
    assert time.monotonic() - start < 20
    message = str(info.value)
    assert "could not download" in message and "HF_HUB_OFFLINE" in message
    assert "tf_efficientnet_lite0" in message and "file:" in message


def closed_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_hub_fails_fast(empty_hub_cache, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{closed_local_port()}")
    start = time.monotonic()
    with pytest.raises(PretrainedError, match="the hub is unreachable"):
        load_pretrained(make("resnet18"), "resnet18", "hub:resnet18")
    assert time.monotonic() - start < 20


def test_hub_reachable_probe():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert hub_reachable(f"http://127.0.0.1:{server.getsockname()[1]}")
    assert not hub_reachable(f"http://127.0.0.1:{closed_local_port()}")


def test_hub_offline_uses_local_cache(empty_hub_cache, monkeypatch):
    # Lay out the Hugging Face cache as a previous online download would have left it.
    trained = make(SMALL, num_classes=1000)
    commit = "0" * 40
    repo = empty_hub_cache / "models--timm--mobilenetv3_small_050.lamb_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    weights = repo / "snapshots" / commit / "model.safetensors"
    safetensors.torch.save_file(trained.state_dict(), str(weights))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    model = make(SMALL, num_classes=1000)
    with torch.no_grad():
        model.classifier.weight.zero_()
    description = load_pretrained(model, SMALL, f"hub:{SMALL}")

    assert "timm/mobilenetv3_small_050.lamb_in1k" in description
    assert sha256_file(weights)[:12] in description and "classifier loaded" in description
    assert torch.equal(model.classifier.weight, trained.classifier.weight)

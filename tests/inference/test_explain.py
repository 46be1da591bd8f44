"""Grad-CAM explanations: maps, targets per output kind, PNG panels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from drgrader.config import ExperimentConfig, config_to_dict
from drgrader.inference.bundle import load_bundle, save_bundle
from drgrader.inference.explain import caption, explain_command, explain_file, explain_image
from drgrader.models.factory import GraderNet, ScoringNet, input_mean_std
from drgrader.synth import make_fundus


def fundus(grade: int = 2, seed: int = 0) -> np.ndarray:
    return make_fundus(grade, np.random.default_rng(seed), height=160)


def bundle_of_kind(path, task: str, kind: str):
    loss = {"softmax5": "ce", "coral": "coral", "regression": "mse", "binary": "bce"}[kind]
    cfg = ExperimentConfig.model_validate(
        {"data": {"image_size": 64}, "model": {"backbone": "test_resnet", "task": task}, "train": {"loss": loss}}
    )
    torch.manual_seed(3)
    net = GraderNet("test_resnet", task=task, kind=kind).eval()
    return save_bundle(path, ScoringNet(net, *input_mean_std("test_resnet", "model")), config=config_to_dict(cfg), thresholds={})


def test_explain_image_maps_and_prediction(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    rgb = fundus()
    result = explain_image(bundle, rgb)
    assert result["preprocessed"].shape == (64, 64, 3)
    for name in ("cam_grade", "cam_referable"):
        cam = result[name]
        assert cam.shape == (64, 64)
        assert cam.min() >= 0 and cam.max() <= 1
        assert cam.std() > 0.05, f"{name} is (nearly) constant"
    assert not np.allclose(result["cam_grade"], result["cam_referable"])  # different targets
    for name in ("overlay_grade", "overlay_referable"):
        assert result[name].shape == (64, 64, 3) and result[name].dtype == np.uint8
    # The prediction is the one `predict` gives (same scores, same decision rule).
    expected = bundle.decide(bundle.score_raw([rgb])).iloc[0]
    pred = result["prediction"]
    assert pred["grade"] == int(expected["pred_grade"])
    assert pred["grade_name"].startswith(str(pred["grade"]))
    assert pred["referable"] == bool(expected["referable_pred"])
    assert sum(pred["probabilities"]) == pytest.approx(1.0, abs=1e-5)
    assert result["quality"]["gradable"] is True


def test_a_photo_file_is_explained_with_the_scores_predict_gives_it(tiny_bundle, tmp_path):
    """Probe 48 CL2: explain decoded a file in full where predict decodes it at the scale of the
    model's input (as training did): the panel said 1.50 where predict said 1.68."""
    from drgrader.inference.predict import predict_images

    path = tmp_path / "3_left.jpeg"
    cv2.imwrite(str(path), cv2.cvtColor(make_fundus(3, np.random.default_rng(5), height=400), cv2.COLOR_RGB2BGR))
    bundle = load_bundle(tiny_bundle)
    predicted = predict_images(bundle, [str(path)], progress=False).iloc[0]
    result = explain_file(bundle, path)
    assert result["prediction"]["expected_grade"] == pytest.approx(predicted["expected_grade"], abs=1e-5)
    assert result["prediction"]["grade"] == predicted["grade"]


def test_grade_map_follows_the_predicted_class(tiny_bundle, monkeypatch):
    """The grade map explains the predicted class: another class's logit gives another map."""
    from drgrader.inference import explain

    bundle = load_bundle(tiny_bundle)
    rgb = fundus(seed=1)
    result = explain_image(bundle, rgb)
    grade = result["prediction"]["grade"]
    other = (grade + 2) % 5
    monkeypatch.setattr(explain, "_grade_target", lambda kind, g: (lambda raw: raw[other]))
    assert not np.allclose(explain_image(bundle, rgb)["cam_grade"], result["cam_grade"], atol=1e-3)


@pytest.mark.parametrize(
    "task, kind, has_grade, referable_is_grade_map",
    [
        ("grade", "coral", True, False),
        ("grade", "regression", True, False),
        ("referable", "binary", False, True),
        ("any_dr", "binary", False, None),
    ],
)
def test_every_output_kind_can_be_explained(tmp_path, task, kind, has_grade, referable_is_grade_map):
    bundle = load_bundle(bundle_of_kind(tmp_path / kind, task, kind))
    result = explain_image(bundle, fundus(seed=2))
    assert (result["prediction"]["grade"] is not None) == has_grade
    assert result["cam_grade"] is not None and result["cam_grade"].shape == (64, 64)
    if referable_is_grade_map is None:
        assert result["cam_referable"] is None and result["overlay_referable"] is None
    elif referable_is_grade_map:
        assert result["cam_referable"] is result["cam_grade"]
    else:
        assert result["cam_referable"].shape == (64, 64)
    if kind == "regression":
        assert result["prediction"]["probabilities"] is None


def test_explain_command_writes_side_by_side_pngs(tiny_bundle, tmp_path):
    images = tmp_path / "in"
    images.mkdir()
    for seed, name in enumerate(["5_left", "5_right"]):
        cv2.imwrite(str(images / f"{name}.jpeg"), cv2.cvtColor(fundus(seed, seed), cv2.COLOR_RGB2BGR))
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    out = explain_command(tiny_bundle, [images], tmp_path / "out")
    files = sorted(p.name for p in out.iterdir())
    assert files == ["5_left_gradcam.png", "5_right_gradcam.png"]  # the broken file is skipped

    panel = cv2.cvtColor(cv2.imread(str(out / "5_left_gradcam.png")), cv2.COLOR_BGR2RGB)
    tile = 256
    assert panel.shape == (48 + tile + 22, 3 * tile, 3)
    body = panel[48 : 48 + tile].astype(float)
    input_tile, grade_tile, referable_tile = (body[:, i * tile : (i + 1) * tile] for i in range(3))
    # The input tile is the preprocessed fundus (black outside the circle, bright inside).
    assert input_tile[:8, :8].max() < 10 and input_tile[tile // 2, tile // 2].max() > 60
    for cam_tile in (grade_tile, referable_tile):
        assert np.abs(cam_tile - input_tile).mean() > 10  # a heat map is blended in
        assert cam_tile.std(axis=(0, 1)).max() > 20  # and it is not flat
    assert panel[:48].max() > 200  # the caption bar has text


def test_the_grade_map_of_a_multitask_model_explains_the_score_it_grades_by():
    from drgrader.inference import explain
    from drgrader.models.heads import decode

    raw = torch.tensor([3.0, 2.0, 0.0, -1.0, -3.0, 5.0])  # regression, 4 CORN logits, referable
    target = explain._grade_target("multitask", 2)(raw)
    assert target.item() == pytest.approx(decode("multitask", raw[None])["expected_grade"].item())
    assert target.item() != pytest.approx(3.0)  # not the regression output alone
    assert explain._grade_target("regression", 2)(torch.tensor([1.7])).item() == pytest.approx(1.7)


def test_explain_says_it_grades_each_photo_alone(tiny_bundle, tmp_path, caplog):
    # With a paired-eye stage, predict grades an eye with its fellow: a panel's grade can differ from
    # predict's, so the panel and the console say that it is the photo's alone.
    images = tmp_path / "in"
    images.mkdir()
    for seed, name in enumerate(["5_left", "5_right", "6_left"]):
        cv2.imwrite(str(images / f"{name}.jpeg"), cv2.cvtColor(fundus(seed, seed), cv2.COLOR_RGB2BGR))
    bundle = load_bundle(tiny_bundle)
    assert caption(explain_image(bundle, fundus())).startswith("photo alone: ")
    bundle.manifest["paired_eyes"] = {
        "model": {"inputs": ["expected_grade"], "coef": [0.5, 0.5, 0.0, 0.0], "intercept": 0.0,
                  "single_coef": [1.0], "single_intercept": 0.0},
        "thresholds": {"cutpoints": [0.5, 1.5, 2.5, 3.5], "any_dr": 0.5, "referable": 1.5}}
    with caplog.at_level("WARNING", logger="drgrader"):
        explain_command(bundle, [images], tmp_path / "out")
    [warning] = [r.getMessage() for r in caplog.records if "explain grades each photo alone" in r.getMessage()]
    assert "for the 1 patient(s) with both eyes" in warning


def test_explain_never_replaces_a_file_it_did_not_draw(tiny_bundle, tmp_path):
    """Probe 33 AV19: a file of the user's under a panel's name in --out was replaced by the panel."""
    from PIL import Image

    from drgrader.outputs import OutputError

    images = tmp_path / "in"
    images.mkdir()
    cv2.imwrite(str(images / "5_left.jpeg"), cv2.cvtColor(fundus(0, 0), cv2.COLOR_RGB2BGR))
    out = explain_command(tiny_bundle, [images], tmp_path / "out")
    explain_command(tiny_bundle, [images], out)  # an earlier panel is replaced by a rerun
    mine = tmp_path / "mine"
    mine.mkdir()
    Image.new("RGB", (10, 10)).save(mine / "5_left_gradcam.png")  # the user's annotated copy
    before = (mine / "5_left_gradcam.png").read_bytes()
    with pytest.raises(OutputError, match="holds 5_left_gradcam.png, which drgrader did not draw"):
        explain_command(tiny_bundle, [images], mine)
    assert (mine / "5_left_gradcam.png").read_bytes() == before


def test_panels_of_a_lists_parent_relative_paths_are_not_hidden_files(tiny_bundle, tmp_path):
    # probe 53 BQ6: ids '../base/10007_left' gave panels '.._base_10007_left_gradcam.png', hidden from ls and from drgrader
    (tmp_path / "base").mkdir()
    for seed, name in enumerate(["10007_left", "10007_right"]):
        cv2.imwrite(str(tmp_path / "base" / f"{name}.jpeg"), cv2.cvtColor(fundus(seed, seed), cv2.COLOR_RGB2BGR))
    (tmp_path / "lists").mkdir()
    listed = tmp_path / "lists" / "h.csv"
    listed.write_text("image,patient_id,eye\n../base/10007_left.jpeg,P1,left\n../base/10007_right.jpeg,P1,right\n")
    out = explain_command(tiny_bundle, [listed], tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == ["base_10007_left_gradcam.png", "base_10007_right_gradcam.png"]

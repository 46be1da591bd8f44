"""Networks, heads and losses: shapes, decoding, freezing, and that each loss can learn."""

import numpy as np
import pytest
import torch

from drgrader.config import ModelConfig
from drgrader.models.factory import ScoringNet, create_model, freeze_all_but_last, parameterised_layers
from drgrader.models.heads import decode
from drgrader.models.losses import TaskLoss, inverse_frequency_weights

TASK_LOSSES = [
    ("grade", "ce"),
    ("grade", "focal"),
    ("grade", "mse"),
    ("grade", "smooth_l1"),
    ("grade", "coral"),
    ("grade", "corn"),
    ("grade", "multitask"),
    ("any_dr", "bce"),
    ("any_dr", "focal"),
    ("referable", "bce"),
]


def brightness_data(n: int = 160, size: int = 32, seed: int = 0):
    """Images whose mean brightness encodes the grade: learnable by any CNN in a few steps."""
    rng = np.random.default_rng(seed)
    grades = rng.integers(0, 5, size=n)
    base = 30 + grades * 45
    pix = base[:, None, None, None] + rng.normal(0, 8, size=(n, 3, size, size))
    return torch.tensor(np.clip(pix, 0, 255), dtype=torch.float32), torch.tensor(grades)


@pytest.mark.parametrize("task, loss", TASK_LOSSES)
def test_each_loss_learns(task, loss):
    torch.manual_seed(0)
    net = create_model(ModelConfig(backbone="test_resnet", task=task), loss)
    scoring = ScoringNet(net, [0.5] * 3, [0.25] * 3)
    x, y = brightness_data()
    loss_fn = TaskLoss(task, loss)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    norm = lambda px: (px - scoring.mean) / scoring.std  # noqa: E731
    net.train()
    for step in range(60):
        idx = torch.randint(0, len(x), (32,))
        opt.zero_grad()
        loss_fn(net(norm(x[idx])), y[idx]).backward()
        opt.step()
    net.eval()
    xt, yt = brightness_data(seed=1)
    with torch.no_grad():
        scores = scoring(xt).numpy()
    assert scores.shape == (len(xt), 8)
    if task == "grade":
        # expected grade must track the true grade
        r = np.corrcoef(scores[:, 5], yt.numpy())[0, 1]
        assert r > 0.8, f"{loss}: correlation {r:.2f}"
    else:
        from sklearn.metrics import roc_auc_score

        col = 6 if task == "any_dr" else 7
        target = (yt.numpy() >= (1 if task == "any_dr" else 2)).astype(int)
        assert roc_auc_score(target, scores[:, col]) > 0.9
        assert np.isnan(scores[:, :6]).all()  # a binary model has no grade probabilities


def test_decode_probabilities_are_consistent():
    torch.manual_seed(0)
    raw5, raw4 = torch.randn(6, 5), torch.randn(6, 4)
    for kind, raw in (("softmax5", raw5), ("coral", raw4), ("corn", raw4)):
        out = decode(kind, raw)
        probs = out["probs"]
        assert torch.allclose(probs.sum(1), torch.ones(6), atol=1e-5)
        assert torch.allclose(out["expected_grade"], (probs * torch.arange(5.0)).sum(1))
        assert torch.allclose(out["score_referable"], probs[:, 2:].sum(1))


def test_coral_decoding_by_hand():
    # P(y>k) = sigmoid(logit_k) = [0.9, 0.5, 0.5, 0.1] -> class probs [0.1, 0.4, 0, 0.4, 0.1]
    logits = torch.logit(torch.tensor([[0.9, 0.5, 0.5, 0.1]]))
    probs = decode("coral", logits)["probs"][0]
    assert torch.allclose(probs, torch.tensor([0.1, 0.4, 0.0, 0.4, 0.1]), atol=1e-5)


def test_multitask_grade_is_the_mean_of_its_regression_and_corn_readouts():
    # regression 3.0; CORN conditionals 0.9, 0.5, 0.5, 0.1 -> P(y>k) .9 .45 .225 .0225, expected
    # grade = sum of P(y>k) = 1.5975; the referable logit (last) does not enter the grade.
    corn = torch.logit(torch.tensor([0.9, 0.5, 0.5, 0.1]))
    raw = torch.cat([torch.tensor([3.0]), corn, torch.tensor([-9.0])])[None]
    out = decode("multitask", raw)
    assert out["expected_grade"].item() == pytest.approx((3.0 + 1.5975) / 2, abs=1e-5)
    assert out["score_any"].item() == out["score_referable"].item() == out["expected_grade"].item()
    assert "probs" not in out


def test_multitask_loss_is_the_sum_of_its_three_terms():
    import torch.nn.functional as F
    from coral_pytorch.losses import corn_loss

    torch.manual_seed(0)
    raw, grades = torch.randn(8, 6), torch.tensor([0, 1, 2, 3, 4, 0, 2, 4])
    expected = (F.mse_loss(raw[:, 0], grades.float()) + corn_loss(raw[:, 1:5], grades, 5)
                + F.binary_cross_entropy_with_logits(raw[:, 5], (grades >= 2).float()))
    assert TaskLoss("grade", "multitask")(raw, grades).item() == pytest.approx(expected.item(), rel=1e-6)


def test_freeze_all_but_last_keeps_n_layers_trainable():
    net = create_model(ModelConfig(backbone="test_resnet", head="seed001"), "ce")
    layers = parameterised_layers(net.backbone)
    assert freeze_all_but_last(net, 5) == 5
    trainable = [m for m in layers if any(p.requires_grad for p in m.parameters())]
    assert trainable == layers[-5:]
    assert all(p.requires_grad for p in net.head.parameters())
    net.train()
    assert all(not m.training for m in net.frozen_norms)  # frozen BN keeps its statistics


def test_unknown_backbone_is_a_clear_error():
    with pytest.raises(ValueError, match="not a timm model"):
        create_model(ModelConfig(backbone="resnet_does_not_exist"), "ce")


def test_inverse_frequency_weights_by_hand():
    grades = [0, 0, 0, 1]  # grade task: counts 3,1,0,0,0 (zeros clamped to 1), total 4
    w = inverse_frequency_weights(grades, "grade")
    assert w[0].item() == pytest.approx(4 / (5 * 3))
    assert w[1].item() == pytest.approx(4 / 5)
    wb = inverse_frequency_weights(grades, "any_dr")  # 3 negatives, 1 positive
    assert wb[0].item() == pytest.approx(4 / 6) and wb[3].item() == pytest.approx(4 / 2)

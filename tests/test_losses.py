import math

import pytest
import torch
import torch.nn.functional as F

from vfnet.training.losses import ContrastiveClassificationLoss, cumulative_ordinal_loss, supcon_loss


def test_supcon_matches_a_hand_computed_value():
    # z0 = z1 = (1, 0), z2 = (0, 1); labels 0, 0, 1; tau = 0.5.
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    # Anchor 0: positive 1 (sim 1/0.5 = 2), others {1: 2, 2: 0} -> -log(e^2 / (e^2 + e^0)); anchor 1 the same;
    # anchor 2 has no positive and does not count.
    expected = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert supcon_loss(z, labels, 0.5).item() == pytest.approx(expected, rel=1e-6)


def test_supcon_averages_over_several_positives():
    z = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]]), dim=1)
    labels = torch.tensor([0, 0, 0, 1])
    tau = 1.0
    similarity = (z @ z.T / tau).tolist()
    total = 0.0
    for i in range(3):  # anchors with positives
        denominator = sum(math.exp(similarity[i][a]) for a in range(4) if a != i)
        positives = [p for p in range(3) if p != i]
        total += -sum(math.log(math.exp(similarity[i][p]) / denominator) for p in positives) / len(positives)
    assert supcon_loss(z, labels, tau).item() == pytest.approx(total / 3, rel=1e-5)


def test_supcon_gradient_pulls_same_grade_embeddings_together():
    torch.manual_seed(0)
    raw = torch.randn(8, 4, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    before = F.normalize(raw.detach(), dim=1)
    supcon_loss(F.normalize(raw, dim=1), labels, 0.1).backward()
    after = F.normalize(raw.detach() - 0.05 * raw.grad, dim=1)
    for i in range(0, 8, 2):
        assert (after[i] @ after[i + 1]) > (before[i] @ before[i + 1])


def test_supcon_without_positives_is_zero_and_differentiable():
    z = F.normalize(torch.randn(3, 4), dim=1).requires_grad_()
    loss = supcon_loss(z, torch.tensor([0, 1, 2]), 0.1)
    loss.backward()
    assert loss.item() == 0.0


def _output(batch: int, views: int):
    torch.manual_seed(1)
    return {"logits": torch.randn(batch * views, 4, requires_grad=True),
            "embedding": F.normalize(torch.randn(batch * views, 8), dim=1).requires_grad_()}


def test_combined_loss_is_weighted_ce_plus_lambda_supcon():
    output, labels = _output(4, 2), torch.tensor([0, 1, 1, 3])
    weights = [1.0, 2.0, 0.0, 0.5]
    result = ContrastiveClassificationLoss(weights, 0.5, 0.1)(output, labels)
    ce = F.cross_entropy(output["logits"], labels.repeat(2), weight=torch.tensor(weights))
    supcon = supcon_loss(output["embedding"], labels.repeat(2), 0.1)
    assert result["loss"].item() == pytest.approx((ce + 0.5 * supcon).item(), rel=1e-5)
    assert result["ce"].item() == pytest.approx(ce.item(), rel=1e-5)


def test_lambda_zero_is_plain_ce_and_zero_weight_batches_are_not_nan():
    output, labels = _output(2, 1), torch.tensor([2, 2])
    result = ContrastiveClassificationLoss([1, 1, 0, 1], 0.0, 0.1)(output, labels)
    assert result["loss"].item() == 0.0 and result["supcon"].item() == 0.0
    result["loss"].backward()


def test_ordinal_term_grows_with_the_distance_of_the_misplaced_mass():
    labels = torch.tensor([3])
    near = torch.log(torch.tensor([[0.05, 0.05, 0.8, 0.1]]))    # mass one grade off
    far = torch.log(torch.tensor([[0.8, 0.05, 0.05, 0.1]]))     # the same mass three grades off
    assert F.cross_entropy(near, labels).item() == pytest.approx(F.cross_entropy(far, labels).item())
    assert cumulative_ordinal_loss(far, labels).item() > cumulative_ordinal_loss(near, labels).item() + 1.0
    # For a one-hot prediction of the right grade every cumulative probability is right: the term is ~0.
    exact = torch.log(torch.tensor([[1e-6, 1e-6, 1e-6, 1.0]]))
    assert cumulative_ordinal_loss(exact, labels).item() < 1e-4


def test_combined_loss_adds_the_weighted_ordinal_term():
    output, labels = _output(4, 1), torch.tensor([0, 1, 2, 3])
    weights = [1.0, 2.0, 1.0, 0.5]
    result = ContrastiveClassificationLoss(weights, 0.0, 0.1, ordinal_weight=0.5)(output, labels)
    ce = F.cross_entropy(output["logits"], labels, weight=torch.tensor(weights))
    sample_weights = torch.tensor(weights)[labels]
    ordinal = (cumulative_ordinal_loss(output["logits"], labels) * sample_weights).sum() / sample_weights.sum()
    assert result["loss"].item() == pytest.approx((ce + 0.5 * ordinal).item(), rel=1e-5)
    assert result["ce"].item() == pytest.approx(ce.item(), rel=1e-5)


def test_combined_loss_adds_the_weighted_ce_of_the_image_only_head():
    output, labels = _output(4, 1), torch.tensor([0, 1, 2, 3])
    output["image_logits"] = torch.randn(4, 4, requires_grad=True)
    weights = [1.0, 2.0, 1.0, 0.5]
    result = ContrastiveClassificationLoss(weights, 0.0, 0.1, image_ce_weight=0.5)(output, labels)
    ce = F.cross_entropy(output["logits"], labels, weight=torch.tensor(weights))
    image_ce = F.cross_entropy(output["image_logits"], labels, weight=torch.tensor(weights))
    assert result["loss"].item() == pytest.approx((ce + 0.5 * image_ce).item(), rel=1e-5)
    assert result["ce"].item() == pytest.approx(ce.item(), rel=1e-5)   # the logged CE stays the main head's
    result["loss"].backward()
    assert output["image_logits"].grad.abs().sum() > 0

import pytest
import torch

from vfnet.errors import PlanError
from vfnet.model.network import build_network

PLAN = {"architecture": "ResidualEncoderClassifier", "in_channels": 2, "num_classes": 4, "stem_channels": 8,
        "stem_stride": 2, "stage_channels": [8, 16, 32], "blocks_per_stage": [1, 1, 1], "stage_strides": [1, 2, 2],
        "projection_dim": 16, "dropout": 0.2}


def test_outputs_have_the_documented_shapes_and_unit_embeddings():
    model = build_network(PLAN)
    output = model(torch.randn(3, 2, 16, 16, 16))
    assert output["logits"].shape == (3, 4)
    assert output["features"].shape == (3, 32)
    assert output["embedding"].shape == (3, 16)
    assert torch.allclose(output["embedding"].norm(dim=1), torch.ones(3), atol=1e-5)


def test_stem_downsamples_early():
    model = build_network(PLAN)
    assert model.stem(torch.randn(1, 2, 16, 16, 16)).shape[2:] == (8, 8, 8)


def test_detached_classifier_sends_no_ce_gradient_into_the_encoder():
    model = build_network(PLAN)
    x = torch.randn(2, 2, 16, 16, 16)
    model(x, detach_classifier=True)["logits"].sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in model.stem.parameters())
    assert model.classifier.weight.grad is not None and model.classifier.weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    model(x)["logits"].sum().backward()
    assert model.stem[0].weight.grad.abs().sum() > 0


def test_batch_size_one_works_in_training_mode():
    # GroupNorm, not BatchNorm: a single sample (and a 1-voxel last stage) must not fail.
    build_network(PLAN).train()(torch.randn(1, 2, 16, 16, 16))


@pytest.mark.parametrize("change", [{"architecture": "DenseNet"}, {"stage_strides": [1, 2]}, {"stem_channels": "x"}])
def test_bad_network_plans_raise_plan_error(change):
    with pytest.raises(PlanError):
        build_network({**PLAN, **change})


def test_genant_prior_follows_the_thresholds_and_ignores_unavailable_measurements():
    from vfnet.model.genant_prior import GenantPrior

    prior = GenantPrior(feature_index=1, num_features=2, thresholds=[1.0, 1.25, 2.0], width=0.1)
    losses = torch.tensor([0.5, 1.12, 1.6, 3.0])           # 10 %, 22 %, 32 %, 60 % height loss (scaled by 0.2)
    morphometry = torch.zeros(5, 4)
    morphometry[:4, 1], morphometry[:4, 3] = losses, 1.0    # feature 1 and its availability flag
    morphometry[4, 1] = 3.0                                 # a value without its availability flag
    log_probabilities = prior(morphometry)
    assert log_probabilities[:4].argmax(dim=1).tolist() == [0, 1, 2, 3]
    assert torch.equal(log_probabilities[4], torch.zeros(4))


def test_the_image_head_grades_from_the_pooled_features_alone():
    plan = {**PLAN, "morphometric_features": ["a", "b"],
            "genant_prior": {"feature_index": 1, "thresholds": [1.0, 1.25, 2.0], "width": 0.1}}
    assert "image_logits" not in build_network(plan)(torch.randn(2, 2, 16, 16, 16))   # older plans: no such head
    model = build_network({**plan, "image_head": True}).eval()
    x = torch.randn(2, 2, 16, 16, 16)
    normal, fractured = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 2), torch.tensor([[3.0, 3.0, 1.0, 1.0]] * 2)
    first, second = model(x, normal), model(x, fractured)
    assert not torch.allclose(first["logits"], second["logits"])            # the main head reads the heights ...
    assert torch.equal(first["image_logits"], second["image_logits"])       # ... the image head never does
    assert torch.allclose(first["image_logits"], model.image_classifier(first["features"]))

"""Grad-CAM saliency: on a wedge fracture the map must be strongest at the collapsed anterior part of the body.

A tiny network (the real VertebraClassifier) is trained for a few seconds to tell normal bodies from anterior
wedges of the same posterior height: the evidence lies only where the top endplate has come down, most of it
anteriorly. A map that pointed at the posterior wall, the background or the whole body evenly fails.
"""
import numpy as np
import pytest
import torch

from vfnet.inference.saliency import ensemble_grad_cam, explained_block, mid_sagittal_index, write_saliency_picture
from vfnet.model.network import build_network

CROP = (16, 16, 8)            # (z, y, x): y runs anterior (0) to posterior
BODY_Y = (2, 14)              # the body spans y 2..13; anterior half y < 8
HEIGHT = (10.5, 11.5)
BOTTOM = 2
NETWORK = {"architecture": "ResidualEncoderClassifier", "in_channels": 2, "num_classes": 4, "stem_channels": 8,
           "stem_stride": 1, "stage_channels": [8, 16, 16], "blocks_per_stage": [1, 1, 1],
           "stage_strides": [2, 1, 2], "projection_dim": 8, "dropout": 0.0}


def body_crop(rng: np.random.Generator, wedge: bool) -> tuple[np.ndarray, float]:
    """(crop, posterior top z): a body of posterior height 10.5-11.5 voxels; a wedge loses 45-55 % of it at the
    anterior wall (the top endplate tilts down towards anterior), a normal body at most 5 %."""
    height = rng.uniform(*HEIGHT)
    loss = rng.uniform(0.45, 0.55) if wedge else rng.uniform(0.0, 0.05)
    z, y, _ = np.meshgrid(np.arange(CROP[0]), np.arange(CROP[1]), np.arange(CROP[2]), indexing="ij")
    # The height falls linearly from the posterior wall (y = 13) to the anterior wall (y = 2).
    top = BOTTOM + height * (1 - loss * (BODY_Y[1] - 1 - y) / (BODY_Y[1] - 1 - BODY_Y[0]))
    body = (z >= BOTTOM) & (z < top) & (y >= BODY_Y[0]) & (y < BODY_Y[1]) & (abs(np.arange(CROP[2]) - 3.5) < 3.5)
    ct = np.where(body, 1.0, -0.6) + rng.normal(0, 0.15, CROP)
    return np.stack([ct, body]).astype(np.float32), BOTTOM + height


@pytest.fixture(scope="module")
def trained_model():
    return train_tiny_model()


def train_tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build_network(NETWORK)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        wedge = rng.random(16) < 0.5
        crops = np.stack([body_crop(rng, bool(w))[0] for w in wedge])
        logits = model(torch.from_numpy(crops))["logits"]
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(np.where(wedge, 2, 0)))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    crops, labels = zip(*[(body_crop(rng, bool(i % 2))[0], i % 2) for i in range(40)])
    with torch.no_grad():
        predicted = model(torch.from_numpy(np.stack(crops)))["logits"].argmax(1).numpy() > 0
    accuracy = float((predicted == np.array(labels, bool)).mean())
    assert accuracy >= 0.9, f"the tiny model did not learn the wedge (accuracy {accuracy:.2f}); the test means nothing"
    return model


def test_grad_cam_is_strongest_at_the_collapsed_anterior_body(trained_model):
    rng = np.random.default_rng(123)
    z, y = np.arange(CROP[0])[:, None], np.arange(CROP[1])[None, :]
    in_body_box = (y >= BODY_Y[0]) & (y < BODY_Y[1]) & (z >= BOTTOM)
    for _ in range(4):
        crop, posterior_top = body_crop(rng, wedge=True)
        cam = ensemble_grad_cam([trained_model], crop)
        assert cam.shape == CROP and cam.min() >= 0 and cam.max() == pytest.approx(1.0)
        x = mid_sagittal_index(crop)
        plane, body = cam[:, :, x], crop[1, :, :, x] > 0.5              # (z, y), anterior = small y
        z_peak, y_peak = np.unravel_index(np.argmax(plane), plane.shape)
        # The peak: in the anterior 60 % of the body's depth and its upper part, where the endplate came down.
        assert BODY_Y[0] - 1 <= y_peak < BODY_Y[0] + 0.6 * (BODY_Y[1] - BODY_Y[0]), f"peak at y {y_peak}"
        assert BOTTOM + (posterior_top - BOTTOM) / 3 <= z_peak <= posterior_top + 1, f"peak at z {z_peak}"
        # Over the collapsed part (the anterior wedge the fracture took away) the map is at least twice as strong
        # as over the intact posterior half of the body.
        collapsed = in_body_box & ~body & (z < posterior_top)
        intact_posterior = body & (y >= (BODY_Y[0] + BODY_Y[1]) // 2)
        ratio = plane[collapsed].mean() / plane[intact_posterior].mean()
        assert ratio > 2.0, f"collapsed part {ratio:.2f}x the intact posterior body"


def test_explained_block_keeps_enough_cells(trained_model):
    name, _ = explained_block(trained_model, (2, *CROP))
    # Stage strides 2, 1, 2 on 16 x 16 x 8: 8x8x4, 8x8x4, 4x4x2 -> the middle block (>= 4 cells per axis).
    assert name == "encoder.1"


def test_saliency_picture_is_written(tmp_path, trained_model):
    crop, _ = body_crop(np.random.default_rng(5), wedge=True)
    cam = ensemble_grad_cam([trained_model, trained_model], crop)
    row = {"case": "c1", "level": "L1", "grade": 2, "p_fracture": 0.9}
    path = write_saliency_picture(tmp_path / "c1_L1_saliency.png", crop, cam, (1.0, 1.0, 1.0), row, "test note")
    assert path.is_file() and path.stat().st_size > 5000


def test_saliency_gives_the_network_the_same_morphometric_inputs_as_the_prediction():
    from vfnet.morphometry.genant import FEATURE_NAMES
    torch.manual_seed(0)
    model = build_network({**NETWORK, "morphometric_features": list(FEATURE_NAMES)}).eval()
    crop, _ = body_crop(np.random.default_rng(1), wedge=True)
    inputs = np.zeros(2 * len(FEATURE_NAMES), np.float32)
    inputs[len(FEATURE_NAMES):] = 1.0                               # every feature available
    with_features = ensemble_grad_cam([model], crop, inputs)
    assert with_features.shape == CROP
    # The branch changes the explained score (it enters the classifier), hence the map's weights.
    assert not np.allclose(with_features, ensemble_grad_cam([model], crop, None))

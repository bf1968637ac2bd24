"""Centroid input: prediction from centroids and training draw the same target channel, and training shows it."""
import numpy as np
import pytest
import torch

from test_inference_phantom import phantom
from vfnet.preprocessing.crop import crop_grid
from vfnet.preprocessing.target_channel import centroid_channel
from vfnet.preprocessing.preprocessor import mask_centres, preprocess_case
from vfnet.training.centroid_input import CentroidInput
from vfnet.typical_sizes import typical_body_size_mm

PLAN = {"target_spacing": [2.0, 2.0, 2.0], "crop_size": [16, 16, 16], "background_hu": -1024,
        "ct_interpolation": "linear", "ct_channels": [{"name": "bone", "clip": [-200, 1200], "center": 300.0,
                                                       "scale": 500.0}]}


def ellipsoid(grid, centre_mm, diameters_zyx_mm):
    """Reference: 1 inside the ellipsoid, from the physical position of every voxel of the crop grid."""
    axes = [origin + spacing * np.arange(size) for origin, spacing, size
            in zip(grid.GetOrigin(), grid.GetSpacing(), grid.GetSize())]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    offsets = np.stack([x, y, z], axis=-1) - np.asarray(centre_mm, dtype=float)
    radii_xyz = np.asarray(list(reversed(diameters_zyx_mm)), dtype=float) / 2.0
    return (((offsets / radii_xyz) ** 2).sum(axis=-1) <= 1.0).astype(np.float32)


def test_centroid_channel_is_the_ellipsoid_on_the_crop_grid():
    centre = (12.5, -40.0, 7.0)
    grid = crop_grid(centre, [1.9, 1.8, 1.8], [32, 48, 40])
    expected = ellipsoid(grid, centre, [23.0, 30.0, 40.0])
    np.testing.assert_array_equal(centroid_channel([32, 48, 40], [1.9, 1.8, 1.8], [23.0, 30.0, 40.0]), expected)
    moved = centroid_channel([32, 48, 40], [1.9, 1.8, 1.8], [23.0, 30.0, 40.0], offset_zyx_mm=(3.8, 0.0, 0.0))
    np.testing.assert_array_equal(moved, np.roll(expected, 2, axis=0))


def _crops(image, mask, centroids, labels):
    return preprocess_case(image, mask, centroids, labels, PLAN)


def test_training_shows_the_target_channel_that_prediction_from_centroids_draws():
    image, mask = phantom()
    centres = mask_centres(mask)
    # A centroid 3 mm off the mask's centre of mass (annotators mark the body, not the centre of mass).
    centroids = {label: (x + 3.0, y, z) for label, (x, y, z) in centres.items()}
    from_mask = _crops(image, mask, None, [21])[21][0]
    from_centroid = _crops(image, None, centroids, [21])[21][0]
    assert not np.array_equal(from_mask[-1], from_centroid[-1])

    simulate = CentroidInput([{"vertebra": 21}], PLAN["crop_size"], PLAN["target_spacing"], probability=1.0,
                             jitter_mm=0.0)
    images = torch.from_numpy(from_mask[None].copy())
    morphometry = torch.ones(1, 12)
    shown, shown_morphometry = simulate(images, morphometry, np.array([0]))
    np.testing.assert_array_equal(shown[0, -1].numpy(), from_centroid[-1])   # the same channel, centred
    np.testing.assert_array_equal(shown[0, :-1].numpy(), from_mask[:-1])     # the CT is untouched
    assert torch.count_nonzero(shown_morphometry) == 0                        # no morphometry from centroids
    assert torch.equal(images[0], torch.from_numpy(from_mask))                # inputs are not modified
    assert torch.count_nonzero(morphometry) == 12


def test_only_the_chosen_part_of_a_batch_becomes_centroid_input():
    torch.manual_seed(0)
    size = [16, 16, 16]
    simulate = CentroidInput([{"vertebra": 20}] * 200, size, [2.0] * 3, probability=0.3, jitter_mm=2.0)
    images = torch.zeros(200, 2, *size)
    shown, morphometry = simulate(images, torch.ones(200, 12), np.arange(200))
    changed = shown[:, -1].flatten(1).any(dim=1)
    assert 40 <= int(changed.sum()) <= 80
    assert torch.equal(morphometry.sum(dim=1) == 0, changed)
    # Jittered centroids: the drawn ellipsoids do not all sit at the crop centre.
    expected = torch.from_numpy(centroid_channel(size, [2.0] * 3, typical_body_size_mm(20)))
    assert sum(not torch.equal(channel, expected) for channel in shown[changed, -1]) > 0


def test_plan_without_centroid_input_trains_on_masks_only():
    plans = {"training": {"centroid_input_probability": 0.0}, "preprocessing": PLAN}
    assert CentroidInput.from_plan([{"vertebra": 20}], plans) is None
    plans["training"]["centroid_input_probability"] = 0.3
    assert CentroidInput.from_plan([{"vertebra": 20}], plans).probability == pytest.approx(0.3)

"""Mask errors made on purpose: the benchmark's degraded masks and the training ratios measured on them."""
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from test_morphometry import tilted_spine
from vfnet.errors import PlanError
from vfnet.morphometry.genant import FEATURE_NAMES
from vfnet.preprocessing.mask_errors import degrade_mask, moved, parse_mask_error
from vfnet.preprocessing.measurement import mask_error_morphometry
from vfnet.training.data import SampleSet
from vfnet.training.mask_error_input import MaskErrorMorphometry


def _two_touching_boxes() -> sitk.Image:
    labels = np.zeros((20, 20, 20), np.uint16)
    labels[4:10, 5:15, 5:15] = 21    # two labels touching at z = 9/10, as neighbouring vertebrae with no gap
    labels[10:16, 5:15, 5:15] = 20
    return sitk.GetImageFromArray(labels)


def test_erosion_is_per_label_and_dilation_only_into_background():
    mask = _two_touching_boxes()
    eroded = sitk.GetArrayFromImage(degrade_mask(mask, "eroded_1"))
    # Each 6 x 10 x 10 box loses a voxel on every side, also where it touches its neighbour.
    assert (eroded == 21).sum() == 4 * 8 * 8 and (eroded == 20).sum() == 4 * 8 * 8
    assert not eroded[9].any() and not eroded[10].any()
    twice = sitk.GetArrayFromImage(degrade_mask(mask, "eroded_2"))
    assert 0 < (twice == 21).sum() < (eroded == 21).sum()
    original = sitk.GetArrayFromImage(mask)
    dilated = sitk.GetArrayFromImage(degrade_mask(mask, "dilated_1"))
    assert np.array_equal(dilated[original > 0], original[original > 0])   # no label overwrites another
    assert (dilated > 0).sum() > (original > 0).sum()
    assert dilated[3, 10, 10] == 21 and dilated[16, 10, 10] == 20
    assert degrade_mask(mask, "dilated").GetSpacing() == mask.GetSpacing()


def test_shift_moves_without_wrapping_around():
    labels = np.zeros((6, 6, 6), np.uint16)
    labels[2, 2, 2], labels[5, 5, 5] = 20, 21
    shifted = sitk.GetArrayFromImage(degrade_mask(sitk.GetImageFromArray(labels), "shifted"))
    assert shifted[2, 3, 4] == 20 and (shifted == 21).sum() == 0
    along_every_axis = sitk.GetArrayFromImage(degrade_mask(sitk.GetImageFromArray(labels), "shifted_2"))
    assert along_every_axis[4, 4, 4] == 20 and np.count_nonzero(along_every_axis) == 1
    both = sitk.GetArrayFromImage(degrade_mask(sitk.GetImageFromArray(labels), "dilated_1+shifted_2"))
    grown = sitk.GetArrayFromImage(degrade_mask(sitk.GetImageFromArray(labels), "dilated_1"))
    assert both[4, 4, 4] == 20 and np.count_nonzero(both == 20) > 1   # grown, then moved
    np.testing.assert_array_equal(both, moved(grown, (2, 2, 2)))
    back = moved(labels, (-2, 0, -5))   # backwards too; what leaves the array is gone
    assert back[0, 2, 2] == 0 and back[3, 5, 0] == 21 and np.count_nonzero(back) == 1
    assert not moved(labels, (0, 6, 0)).any()   # a move as long as the array leaves nothing


def test_mixed_errs_on_each_label_its_own_way_and_the_same_way_every_time():
    labels = np.zeros((24, 40, 40), np.uint16)
    for index, label in enumerate(range(1, 13)):    # twelve separate boxes, far enough apart to move freely
        row, column = divmod(index, 4)
        labels[6:18, 4 + 12 * row:12 + 12 * row, 2 + 10 * column:8 + 10 * column] = label
    mask = sitk.GetImageFromArray(labels)
    mixed = sitk.GetArrayFromImage(degrade_mask(mask, "mixed_1"))
    np.testing.assert_array_equal(mixed, sitk.GetArrayFromImage(degrade_mask(mask, "mixed_1")))
    moves, size_changes = set(), set()
    for label in range(1, 13):
        size, first = int((mixed == label).sum()), np.argwhere(mixed == label).min(axis=0)
        assert size in (10 * 6 * 4, 12 * 8 * 6) or size > 12 * 8 * 6   # eroded by one, kept, or dilated by one
        size_change = -1 if size < 12 * 8 * 6 else 1 if size > 12 * 8 * 6 else 0
        move = first - (np.argwhere(labels == label).min(axis=0) - size_change)
        assert np.abs(move).max() <= 1
        moves.add(tuple(move))
        size_changes.add(size_change)
    assert len(moves) >= 3 and len(size_changes) >= 2   # each label its own errors


def test_missing_leaves_out_inner_vertebrae_only_and_the_same_ones_every_time():
    labels = np.zeros((60, 10, 10), np.uint16)
    for index, label in enumerate(range(17, 22)):     # T10 at the top ... L2
        labels[2 + 12 * index:10 + 12 * index, 2:8, 2:8] = label
    mask = sitk.GetImageFromArray(labels)
    one, two = (sitk.GetArrayFromImage(degrade_mask(mask, name)) for name in ("missing_1", "missing_2"))
    for result, count in ((one, 1), (two, 2)):
        kept = set(np.unique(result)) - {0}
        assert {17, 21} <= kept and len(kept) == 5 - count           # the first and last stay
        np.testing.assert_array_equal(result[result > 0], labels[result > 0])   # the others are untouched
    np.testing.assert_array_equal(one, sitk.GetArrayFromImage(degrade_mask(mask, "missing_1")))
    assert set(np.unique(sitk.GetArrayFromImage(degrade_mask(mask, "missing_9")))) == {0, 17, 21}


@pytest.mark.parametrize("name", ["eroded_0", "grown_1", "eroded_x", "perfect"])
def test_unknown_mask_error_is_a_plan_error(name):
    with pytest.raises(PlanError, match=name):
        parse_mask_error(name)


def test_ratios_on_degraded_masks_differ_and_a_vanished_vertebra_is_unavailable():
    ct, mask = tilted_spine({20: (26, 26), 21: (17, 26), 22: (26, 26)})
    labels = sitk.GetArrayFromImage(mask)
    labels[labels == 22] = 0   # L3 not in the mask: no measurement from any degraded mask either
    thin = sitk.GetImageFromArray(labels)
    thin.CopyInformation(mask)
    result = mask_error_morphometry(thin, ct, [20, 21, 22], ["eroded_2", "dilated_1"])
    assert set(result) == {20, 21, 22} and set(result[21]) == {"eroded_2", "dilated_1"}
    assert result[22] == {"eroded_2": None, "dilated_1": None}
    eroded, dilated = result[21]["eroded_2"], result[21]["dilated_1"]
    # The wedge is still found on both (heights refined on the CT); the heights themselves differ.
    assert eroded["morphometric_grade"] >= 1 and dilated["morphometric_grade"] >= 1
    assert eroded["body_depth_mm"] < dilated["body_depth_mm"]
    assert eroded["loss_anterior_vs_posterior"] != dilated["loss_anterior_vs_posterior"]


def _samples(count: int, variants: list[dict]) -> SampleSet:
    features = len(FEATURE_NAMES)
    properties = [{"sample": f"s{i}", "morphometry_mask_errors": {"eroded_1": variants[i]}} for i in range(count)]
    morphometry = np.ones((count, 2 * features), np.float32)
    return SampleSet([p["sample"] for p in properties], properties, np.zeros((count, 2, 2, 2, 2), np.float16),
                     np.zeros(count, np.int64), morphometry)


def _plans(probability: float) -> dict:
    return {"preprocessing": {"morphometry_mask_errors": ["eroded_1"]},
            "training": {"mask_error_morphometry_probability": probability},
            "network": {"morphometric_features": list(FEATURE_NAMES)}}


def test_training_swaps_in_the_degraded_ratios_of_the_same_vertebra():
    measured = {name: 0.5 for name in FEATURE_NAMES}
    samples = _samples(3, [measured, None, measured])
    swap = MaskErrorMorphometry.from_plan(samples, _plans(1.0))
    batch = torch.from_numpy(samples.morphometry[[1, 2]])
    swapped = swap(batch, np.array([1, 2]))
    assert torch.equal(batch, torch.ones_like(batch))                  # the input is left alone
    assert torch.equal(swapped[0], torch.zeros_like(swapped[0]))        # sample 1: eroded away, unavailable
    assert torch.equal(swapped[1], swap.variants[2, 0])
    assert swapped[1, :len(FEATURE_NAMES)].min() > 0 and not torch.equal(swapped[1], batch[1])
    assert MaskErrorMorphometry.from_plan(samples, _plans(0.0)) is None


def test_mask_channel_errors_reach_two_voxels():
    from vfnet.training.augmentation import BatchAugmenter
    torch.manual_seed(0)
    batch = torch.zeros(32, 2, 16, 16, 16)
    batch[:, 1, 4:12, 4:12, 4:12] = 1.0
    config = {"mask_morphology_voxels": 2, "probabilities": {"mask_morphology": 1.0}}
    sizes = set(BatchAugmenter(config)(batch)[:, 1].sum(dim=(1, 2, 3)).tolist())
    assert sizes == {4.0 ** 3, 6.0 ** 3, 10.0 ** 3, 12.0 ** 3}

"""Morphometry on synthetic vertebra masks with known body heights (body + canal gap + posterior arch)."""
import math

import numpy as np
import pytest

from vfnet.evaluation.morphometry import body_heights, grade_from_height_loss

BODY_FRONT, BODY_BACK = 6, 35          # y indices (axis 1: anterior -> posterior)
BODY_LEFT, BODY_RIGHT = 8, 31          # x indices (axis 2)
FLOOR = 8                              # z index of the lower endplate (axis 0: inferior -> superior)


def synthetic_vertebra(anterior_voxels: int, posterior_voxels: int, shape=(50, 64, 40)) -> np.ndarray:
    """A box-like body whose height falls linearly from back to front, a canal gap and a posterior arch."""
    mask = np.zeros(shape, dtype=bool)
    depth = BODY_BACK - BODY_FRONT
    for y in range(BODY_FRONT, BODY_BACK + 1):
        fraction_from_front = (y - BODY_FRONT) / depth
        height = round(anterior_voxels + (posterior_voxels - anterior_voxels) * fraction_from_front)
        mask[FLOOR:FLOOR + height, y, BODY_LEFT:BODY_RIGHT + 1] = True
    # Pedicles beside the canal (lateral only), lamina and spinous process behind it (across the midline).
    mask[FLOOR + 4:FLOOR + 16, BODY_BACK + 1:BODY_BACK + 9, BODY_LEFT:BODY_LEFT + 5] = True
    mask[FLOOR + 4:FLOOR + 16, BODY_BACK + 1:BODY_BACK + 9, BODY_RIGHT - 4:BODY_RIGHT + 1] = True
    mask[FLOOR + 2:FLOOR + 18, BODY_BACK + 9:BODY_BACK + 13, BODY_LEFT:BODY_RIGHT + 1] = True
    mask[FLOOR:FLOOR + 14, BODY_BACK + 13:BODY_BACK + 25, 18:22] = True
    return mask


def expected_height(anterior_voxels: int, posterior_voxels: int, fraction: float) -> float:
    return anterior_voxels + (posterior_voxels - anterior_voxels) * fraction


def test_box_body_heights_equal_its_height_in_mm():
    spacing = (1.5, 1.0, 0.8)
    result = body_heights(synthetic_vertebra(20, 20), spacing)
    for key in ("anterior_mm", "middle_mm", "posterior_mm"):
        assert result[key] == pytest.approx(20 * 1.5)
    assert result["height_loss"] == pytest.approx(0.0)
    assert result["morphometric_grade"] == 0
    assert result["note"] is None
    # The posterior arch is excluded: the body's depth is 30 voxels of 1 mm, not the whole mask's 60.
    assert result["body_depth_mm"] == pytest.approx(30.0)


def test_anterior_wedge_is_short_in_front_and_graded_from_its_loss():
    result = body_heights(synthetic_vertebra(14, 24), (1.0, 1.0, 1.0))
    assert result["anterior_mm"] < result["middle_mm"] < result["posterior_mm"]
    assert result["anterior_mm"] == pytest.approx(expected_height(14, 24, 0.12), abs=1.0)
    assert result["posterior_mm"] == pytest.approx(expected_height(14, 24, 0.88), abs=1.0)
    loss = 1 - result["anterior_mm"] / result["posterior_mm"]
    assert result["height_loss"] == pytest.approx(loss)
    assert 0.30 < loss < 0.40 and result["morphometric_grade"] == 2


def test_crush_uses_the_expected_height_from_neighbours():
    mask = synthetic_vertebra(15, 15)
    assert body_heights(mask, (1, 1, 1))["morphometric_grade"] == 0
    crushed = body_heights(mask, (1, 1, 1), expected_height_mm=30.0)
    assert crushed["height_loss"] == pytest.approx(0.5)
    assert crushed["morphometric_grade"] == 3


def test_posterior_wedge_is_not_a_negative_loss():
    result = body_heights(synthetic_vertebra(24, 20), (1, 1, 1))
    assert result["anterior_mm"] > result["posterior_mm"]
    assert result["height_loss"] == 0.0


@pytest.mark.parametrize("ratio, grade", [(0.0, 0), (0.199, 0), (0.2, 1), (0.249, 1), (0.25, 2), (0.4, 2),
                                          (0.41, 3), (None, None), (float("nan"), None)])
def test_genant_thresholds(ratio, grade):
    assert grade_from_height_loss(ratio) == grade


def test_empty_and_cut_masks_are_reported_not_measured():
    empty = body_heights(np.zeros((10, 10, 10), bool), (1, 1, 1))
    assert math.isnan(empty["anterior_mm"]) and empty["morphometric_grade"] is None and "empty" in empty["note"]
    cut = synthetic_vertebra(20, 20)[FLOOR + 5:]  # the lower part of the body lies outside the array
    result = body_heights(cut, (1, 1, 1))
    assert result["height_loss"] is None and "border" in result["note"]

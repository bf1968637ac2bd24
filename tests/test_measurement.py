"""Preprocessing's measurement: a mask whose measurement cannot be right is measured on the CT-estimated mask."""
import numpy as np
import pytest
import SimpleITK as sitk

from test_morphometry import tilted_spine
from tiny_spine import phantom
from vfnet.morphometry.genant import measure_spine
from vfnet.preprocessing.measurement import ESTIMATED_MASK_NOTE, measure_vertebrae
from vfnet.typical_sizes import typical_body_size_mm


def _with_mask_across_the_canal(mask: sitk.Image, depth_mm: float, half_height_mm: float,
                                label: int = 21) -> sitk.Image:
    """L2's label also fills its 12 mm deep spinal canal to `depth_mm` behind the body, `half_height_mm` above and
    below the centre, as a mask dilated by two voxels on thick slices does."""
    labels = sitk.GetArrayFromImage(mask)
    z, y, x = np.meshgrid(np.arange(-70, 70) + 0.5, np.arange(-55, 45) + 0.5, np.arange(-20, 20) + 0.5,
                          indexing="ij")
    bridge = (y > 0) & (y < depth_mm) & (np.abs(x) <= 8) & (np.abs(z) <= half_height_mm) & (labels == 0)
    labels[bridge] = label
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(mask)
    return image


def test_a_good_mask_is_measured_as_it_is():
    ct, mask = tilted_spine({20: (26, 26), 21: (17, 26), 22: (26, 26)}, 20.0)
    assert measure_vertebrae(mask, ct, [20, 21, 22]) == measure_spine(mask, ct, [20, 21, 22])


@pytest.mark.parametrize("depth, half_height, problem", [
    (8.0, 4.0, "a posterior height far below the anterior and middle ones"),   # a ledge: a short "posterior"
    (12.0, 13.0, "a body far deeper than a vertebral body is (the spinal canal not found behind it)")])
def test_a_mask_across_the_canal_is_measured_on_the_ct(depth, half_height, problem):
    ct, mask = tilted_spine({20: (26, 26), 21: (26, 26), 22: (26, 26)})
    bridged = _with_mask_across_the_canal(mask, depth, half_height)
    on_mask = measure_spine(bridged, ct, [21])[21]
    assert on_mask["morphometric_grade"] >= 2   # graded a fracture on the mask
    report = measure_vertebrae(bridged, ct, [20, 21, 22])[21]
    assert report["morphometric_grade"] == 0 and abs(report["body_depth_mm"] - 30.0) <= 1.0
    for key in ("anterior_mm", "middle_mm", "posterior_mm"):
        assert abs(report[key] - 26.0) <= 1.0
    assert ESTIMATED_MASK_NOTE.format(problem) in report["notes"]


def test_a_doubtful_estimate_does_not_replace_the_masks_measurement():
    # tiny_spine's boxes have a posterior process joined to the body with no canal: the body measures far too deep
    # on the mask and on the CT's estimate alike, so the mask's own measurement stays (no note of replacement).
    ct, mask = phantom({20: 0, 21: 1, 22: 3})
    on_mask = measure_spine(mask, ct, [20, 21, 22])
    assert on_mask[20]["body_depth_mm"] > 1.6 * typical_body_size_mm(20)[1]
    assert measure_vertebrae(mask, ct, [20, 21, 22]) == on_mask

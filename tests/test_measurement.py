"""Preprocessing's measurement: a mask whose measurement cannot be right is measured on the CT-estimated mask."""
import numpy as np
import SimpleITK as sitk

from test_morphometry import tilted_spine
from vfnet.morphometry.genant import measure_spine
from vfnet.preprocessing.measurement import ESTIMATED_MASK_NOTE, measure_vertebrae


def _with_mask_across_the_canal(mask: sitk.Image, label: int = 21) -> sitk.Image:
    """L2's label also fills part of its spinal canal, as a mask dilated by two voxels on thick slices does."""
    labels = sitk.GetArrayFromImage(mask)
    z, y, x = np.meshgrid(np.arange(-70, 70) + 0.5, np.arange(-55, 45) + 0.5, np.arange(-20, 20) + 0.5,
                          indexing="ij")
    bridge = (y > 0) & (y < 12) & (np.abs(x) <= 8) & (np.abs(z) <= 4) & (labels == 0)
    labels[bridge] = label
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(mask)
    return image


def test_a_good_mask_is_measured_as_it_is():
    ct, mask = tilted_spine({20: (26, 26), 21: (17, 26), 22: (26, 26)}, 20.0)
    assert measure_vertebrae(mask, ct, [20, 21, 22]) == measure_spine(mask, ct, [20, 21, 22])


def test_a_mask_across_the_canal_is_measured_on_the_ct():
    ct, mask = tilted_spine({20: (26, 26), 21: (26, 26), 22: (26, 26)})
    bridged = _with_mask_across_the_canal(mask)
    on_mask = measure_spine(bridged, ct, [21])[21]
    assert on_mask["posterior_mm"] < 0.6 * on_mask["anterior_mm"] and on_mask["morphometric_grade"] >= 2
    report = measure_vertebrae(bridged, ct, [20, 21, 22])[21]
    assert report["morphometric_grade"] == 0
    for key in ("anterior_mm", "middle_mm", "posterior_mm"):
        assert abs(report[key] - 26.0) <= 1.0
    assert ESTIMATED_MASK_NOTE.format("a posterior height far below the anterior and middle ones") in report["notes"]

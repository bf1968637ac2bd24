"""The same phantom stored in several orientations gives the same canonical crops."""
import numpy as np
import pytest
import SimpleITK as sitk

from tiny_spine import phantom
from vfnet.errors import DatasetError
from vfnet.preprocessing.crop import canonical_spacing
from vfnet.preprocessing.preprocessor import preprocess_case, vertebra_centres

PLAN = {"target_spacing": [2.0, 1.5, 1.5], "crop_size": [24, 40, 40], "background_hu": -1024.0,
        "ct_interpolation": "linear", "ct_channels": [{"name": "bone", "clip": [-200, 600], "center": 200, "scale": 100}],
        "mask_channel": "target_vertebra", "num_input_channels": 2}
GRADES = {20: 0, 21: 2, 22: 3}


@pytest.fixture(scope="module")
def reference():
    ct, mask = phantom(GRADES)
    return ct, mask, preprocess_case(ct, mask, None, GRADES, PLAN)


@pytest.mark.parametrize("codes", ["RAS", "PIR", "ASL", "SRA", "LPI"])
def test_crops_do_not_depend_on_storage_orientation(reference, codes):
    ct, mask, expected = reference
    oriented_ct, oriented_mask = sitk.DICOMOrient(ct, codes), sitk.DICOMOrient(mask, codes)
    assert sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(oriented_ct.GetDirection()) == codes
    crops = preprocess_case(oriented_ct, oriented_mask, None, GRADES, PLAN)
    for label, (array, properties) in crops.items():
        np.testing.assert_allclose(array[0], expected[label][0][0], atol=1e-3)
        assert np.mean(array[1] != expected[label][0][1]) < 0.001
        assert properties["source_orientation"] == codes
        assert properties["source_spacing"] == pytest.approx([2.0, 1.6, 1.6], abs=1e-5)
        np.testing.assert_allclose(properties["centre_mm"], expected[label][1]["centre_mm"], atol=1e-3)


def test_a_wrong_flip_would_show(reference):
    """The phantom is asymmetric: flipping the voxels without updating the geometry changes the crop."""
    ct, mask, expected = reference
    flipped_ct = sitk.Flip(ct, [True, False, False], flipAboutOrigin=False)
    flipped_ct.CopyInformation(ct)
    array, _ = preprocess_case(flipped_ct, mask, None, [21], PLAN)[21]
    assert np.abs(array[0] - expected[21][0][0]).max() > 1.0


def test_crop_is_canonical_and_channels_are_right(reference):
    _, _, crops = reference
    array, properties = crops[21]
    assert array.shape == (2, 24, 40, 40) and array.dtype == np.float32
    assert properties["shape"] == [2, 24, 40, 40] and properties["mask_source"] == "mask"
    assert set(np.unique(array[1])) == {0.0, 1.0}
    assert array[0].min() >= (-200 - 200) / 100 and array[0].max() <= (600 - 200) / 100
    # Canonical axis 1 runs anterior -> posterior: the posterior process (450 HU) sits at larger y indices.
    target = array[1] > 0
    bright = (array[0] > 2.0) & target
    assert np.argwhere(bright)[:, 1].mean() > np.argwhere(target)[:, 1].mean()
    # Neighbours' endplates are in the crop (mask channel only marks the target, CT shows bone above/below).
    bone_outside_target = (array[0] > 0) & ~target
    assert bone_outside_target[:3].any() and bone_outside_target[-3:].any()


def test_centroid_only_case_gets_an_ellipsoid_of_typical_body_size(reference):
    ct, mask, _ = reference
    centres = vertebra_centres(mask, None, [21])
    array, properties = preprocess_case(ct, None, centres, [21], PLAN)[21]
    assert properties["mask_source"] == "centroid"
    voxel_volume = np.prod(PLAN["target_spacing"])
    volume = array[1].sum() * voxel_volume
    # L2's typical body: ~25.5 mm high, ~33 mm deep, ~46 mm wide -> ellipsoid volume pi/6 * product.
    assert volume == pytest.approx(np.pi / 6 * 25.5 * 33.0 * 46.0, rel=0.15)


def test_a_vertebra_cut_by_the_scan_edge_is_flagged(reference):
    ct, mask, _ = reference
    size = list(ct.GetSize())
    cut_ct = sitk.RegionOfInterest(ct, [size[0], size[1], 14], [0, 0, 0])
    cut_mask = sitk.RegionOfInterest(mask, [size[0], size[1], 14], [0, 0, 0])
    properties = preprocess_case(cut_ct, cut_mask, None, [22], PLAN)[22][1]   # L3, the lowest
    assert properties["fraction_in_view"] < 0.9
    whole = preprocess_case(ct, mask, None, [22], PLAN)[22][1]
    assert whole["fraction_in_view"] == 1.0


def test_missing_vertebra_is_a_clear_error(reference):
    ct, mask, _ = reference
    with pytest.raises(DatasetError, match="vertebra 23 \\(L4\\)"):
        preprocess_case(ct, mask, None, [23], PLAN)


def test_canonical_spacing_follows_axes():
    ct, _ = phantom({20: 0})
    assert canonical_spacing(sitk.DICOMOrient(ct, "PIR")) == pytest.approx([2.0, 1.6, 1.6])

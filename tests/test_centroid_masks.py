"""Masks estimated from the CT around centroids: the right bone goes to the right vertebra."""
import numpy as np
import SimpleITK as sitk

from test_inference_phantom import PHANTOM_LABELS, phantom
from vfnet.inference.centroid_masks import estimate_vertebra_mask
from vfnet.preprocessing.preprocessor import mask_centres


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_each_vertebra_gets_its_own_bone_in_any_storage_orientation():
    ct, mask = phantom()
    # Centroids 3 mm off the masks' centres of mass, as an annotator's points are.
    centroids = {label: tuple(np.add(centre, (3.0, -2.0, 1.0))) for label, centre in mask_centres(mask).items()}
    for orientation in ("LPS", "RAS", "PIR"):
        stored = sitk.DICOMOrient(ct, orientation)
        estimated = estimate_vertebra_mask(stored, centroids)
        assert estimated.GetSize() == stored.GetSize() and estimated.GetDirection() == stored.GetDirection()
        back = sitk.GetArrayFromImage(sitk.DICOMOrient(estimated, "LPS"))
        truth = sitk.GetArrayFromImage(mask)
        for label in PHANTOM_LABELS:
            assert _dice(back == label, truth == label) > 0.95, (orientation, label)
        assert set(np.unique(back)) == {0, *PHANTOM_LABELS}


def test_a_lone_centroid_does_not_take_its_neighbours_bone():
    ct, mask = phantom(spacing=3.0)   # boxes 24 mm high, 9 mm discs: about lumbar proportions
    centres = mask_centres(mask)
    only_l2 = {21: centres[21]}
    estimated = sitk.GetArrayFromImage(estimate_vertebra_mask(ct, only_l2))
    truth = sitk.GetArrayFromImage(mask)
    assert _dice(estimated == 21, truth == 21) > 0.95
    # L1 and L3 lie within reach; with no neighbour to halve the distance to, L2 ends a typical body height
    # plus a disc away, which keeps their bone out.
    assert not (estimated[truth == 20] == 21).any() and not (estimated[truth == 22] == 21).any()

"""Masks estimated from the CT around centroids: the right bone goes to the right vertebra."""
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from test_inference_phantom import PHANTOM_LABELS, phantom
from test_mask_check import _five_boxes
from vfnet.preprocessing.centroid_masks import estimate_vertebra_mask
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


def test_an_osteoporotic_body_is_found_from_its_thin_cortex():
    # Cancellous bone as dark as the discs (90 vs 95 HU) inside a one-voxel cortex of 145 HU: the cortex alone
    # marks the body (at a 150 HU threshold nothing did), and filling between the endplates restores it.
    ct, mask = phantom()
    hu = np.full(sitk.GetArrayFromImage(ct).shape, -100.0, dtype=np.float32)
    truth = sitk.GetArrayFromImage(mask)
    hu[5:40, 5:15, 6:18] = 95.0                                     # discs (and bodies, overwritten below)
    hu[truth > 0] = 145.0
    hu[ndimage.binary_erosion(truth > 0, structure=np.ones((3, 3, 3), dtype=bool))] = 90.0
    hu += np.random.default_rng(1).normal(0, 5, hu.shape).astype(np.float32)
    osteoporotic = sitk.GetImageFromArray(hu)
    osteoporotic.CopyInformation(ct)
    estimated = sitk.GetArrayFromImage(estimate_vertebra_mask(osteoporotic, mask_centres(mask)))
    for label in PHANTOM_LABELS:
        assert _dice(estimated == label, truth == label) > 0.9, label


def test_bodies_are_split_at_their_disc_when_a_centroid_is_off_along_the_spine(monkeypatch):
    from vfnet.preprocessing import centroid_masks
    ct, mask = _five_boxes()            # 18 mm bodies and 8 mm discs on a 2 mm grid: centres 26 mm apart
    truth = sitk.GetArrayFromImage(mask)
    centroids = mask_centres(mask)
    centroids[19] = tuple(np.add(centroids[19], (0.0, 0.0, 12.0)))   # T12's centroid 12 mm towards T11
    # The bodies in front of the centres (LPS: smaller y; the boxes' centres lie at y = 19 mm, index 9.5).
    front = (slice(None), slice(0, 8), slice(None))
    split = sitk.GetArrayFromImage(estimate_vertebra_mask(ct, centroids))
    np.testing.assert_array_equal(split[front], truth[front])
    # Split half-way between the centres instead, T11 loses its lowest slice to T12, and T12's lower part lies
    # beyond its reach (a little over half the way to its nearest neighbour) and is left out.
    monkeypatch.setattr(centroid_masks, "split_bodies_at_discs", lambda world, voxels, hu, assigned, *rest: assigned)
    half_way = sitk.GetArrayFromImage(estimate_vertebra_mask(ct, centroids))[front]
    assert (half_way[truth[front] == 18] == 19).any() and (half_way[truth[front] == 19] == 0).any()


def _estimated_with_t12_moved(ct: sitk.Image, mask: sitk.Image, move_mm: tuple[float, float, float]) -> np.ndarray:
    """The estimate around the mask's centres, T12's moved by `move_mm` (x, y, z; LPS)."""
    centroids = {label: np.asarray(centre) for label, centre in mask_centres(mask).items()}
    centroids[19] = centroids[19] + move_mm
    return sitk.GetArrayFromImage(estimate_vertebra_mask(ct, {label: tuple(point) for label, point
                                                              in centroids.items()}))


BODIES = (slice(None), slice(5, 15), slice(None))   # the box spine's bodies, in front of its canal


def test_bodies_are_split_at_their_disc_up_to_the_canal_when_a_centroid_is_off():
    # A centroid 4 mm in front of the vertebra's and 6 mm down (a centroid model's errors): each body, up to its
    # back at the canal, still ends at its own discs. With only the bone 3 mm in front of the centroids split at
    # the disc, the back of T12's body was left to the nearest-centre split and part of it went to L1.
    ct, mask = _five_boxes(arches=True)
    truth = sitk.GetArrayFromImage(mask)
    estimated = _estimated_with_t12_moved(ct, mask, (0.0, -4.0, -6.0))     # 4 mm forward (LPS y) and 6 mm down
    np.testing.assert_array_equal(estimated[BODIES], truth[BODIES])
    for label in range(17, 22):
        assert _dice(estimated == label, truth == label) > 0.9, label


def test_bodies_are_split_along_a_thin_disc_that_the_line_between_centroids_crosses():
    # Discs of one 2 mm voxel; T12's centroid 4 mm forward and 4 mm down tilts the line from T11's centre by 9
    # degrees, so every slab across it crosses the disc and an endplate. The disc still leaves no bone between the
    # two bodies: each comes out whole.
    ct, mask = _five_boxes(arches=True, disc_voxels=1)
    truth = sitk.GetArrayFromImage(mask)
    estimated = _estimated_with_t12_moved(ct, mask, (0.0, -4.0, -4.0))
    np.testing.assert_array_equal(estimated[BODIES], truth[BODIES])


def test_a_thin_disc_bridged_by_partial_volume_still_parts_the_bright_bone():
    # As above, but each disc's one slice is 200 HU (the partial volume of two endplates on a thick slice): bone at
    # the 135 HU threshold, so the two bodies' bone is one piece. Their bright bone (500 HU) still parts at the disc.
    ct, mask = _five_boxes(arches=True, disc_voxels=1)
    truth = sitk.GetArrayFromImage(mask)
    hu = sitk.GetArrayFromImage(ct)
    hu[truth > 0] = 500.0
    body_box = np.zeros(truth.shape, bool)
    body_box[4:53, 5:15, 6:18] = True              # from L2's lower endplate to T10's upper one
    hu[body_box & (truth == 0)] = 200.0
    bridged = sitk.GetImageFromArray(hu)
    bridged.CopyInformation(ct)
    estimated = _estimated_with_t12_moved(bridged, mask, (0.0, -4.0, -4.0))[BODIES]
    body_voxels = truth[BODIES] > 0
    np.testing.assert_array_equal(estimated[body_voxels], truth[BODIES][body_voxels])


def test_the_back_of_the_body_is_the_front_of_the_canal():
    from vfnet.preprocessing.disc_split import body_back_mm
    rng = np.random.default_rng(0)
    # Bone voxels' distances behind the centres: the body from 30 mm in front to 4 mm behind, the canal empty
    # from 4 to 14 mm, the arch from 14 to 28 mm; all within the midline.
    body, arch = rng.uniform(-30, 4, 3000), rng.uniform(14, 28, 600)
    behind = np.concatenate([body, arch])
    assert body_back_mm(behind, rng.uniform(-4, 4, len(behind))) == 4.0
    assert body_back_mm(body, rng.uniform(-4, 4, len(body))) is None           # no arch behind: no canal
    assert body_back_mm(behind, rng.uniform(6, 20, len(behind))) is None       # nothing on the midline

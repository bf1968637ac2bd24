"""Masks far from the CT's bone are noticed and snapped to it; the estimate's centres stay on the spine."""
import csv
import json

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from test_inference_phantom import PHANTOM_LABELS, phantom
from test_inference_predict import _settings, model_folder  # noqa: F401  (pytest fixture)
from vfnet.dataset.format import RawCase
from vfnet.dataset.image_io import write_image
from vfnet.inference.predictor import run_prediction
from vfnet.preprocessing import mask_check
from vfnet.preprocessing.centroid_masks import BONE_HU, OFF_LINE_MM, _on_the_spine
from vfnet.preprocessing.mask_check import (HIGH_RATIO, LOW_RATIO, MAX_SHIFT_VOXELS, MAX_SPREAD, MIN_SHIFT_GAIN,
                                            best_shift, check_masks, ratio_outlier, ratio_spread, snap_to_bone)
from vfnet.preprocessing.mask_errors import degrade_mask
from vfnet.preprocessing.runner import preprocess_raw_case
from vfnet.preprocessing.samples import load_arrays, read_properties, sample_id


def _boxes():
    ct, mask = phantom()   # boxes 8 voxels of 2 mm high: two voxels off take or add half a body
    return ct, sitk.Cast(mask, sitk.sitkUInt16)


def test_exact_masks_are_kept():
    ct, mask = _boxes()
    check = check_masks(mask, ct, PHANTOM_LABELS)
    assert abs(check.volume_ratio - 1.0) < 0.05 and not check.masks_are_off and check.corrected is None


def test_shifted_masks_are_moved_back_onto_the_bone():
    ct, mask = _boxes()
    truth = sitk.GetArrayFromImage(mask)
    for error, back in (("shifted", (0, -1, -2)), ("shifted_2", (-2, -2, -2)), ("shifted_3", (-3, -3, -3))):
        check = check_masks(degrade_mask(mask, error), ct, PHANTOM_LABELS)
        # Same size as the bone (no snap), but off it: the search finds the move back exactly.
        assert LOW_RATIO <= check.volume_ratio <= HIGH_RATIO and check.shift_voxels == back, error
        assert check.bone_gain >= MIN_SHIFT_GAIN and check.how.startswith("moved onto the bone")
        np.testing.assert_array_equal(sitk.GetArrayFromImage(check.corrected), truth)
        assert f"moved by ({', '.join(str(step) for step in back[::-1])}) voxels" in check.note(mask.GetSpacing())


def test_masks_too_small_and_off_the_bone_are_moved_before_they_are_snapped():
    ct, mask = _boxes()
    check = check_masks(degrade_mask(mask, "eroded_2+shifted_2"), ct, PHANTOM_LABELS)
    assert check.shift_voxels == (-2, -2, -2) and check.snapped and check.volume_ratio < LOW_RATIO
    assert check.how == ("moved onto the bone the CT shows (they sat off it) and snapped to the bone the CT shows "
                         "(they were far from it)")
    assert "moved by [-2, -2, -2] voxels onto the CT's bone and snapped" in check.vertebra_note()
    # Snapped from labels still two voxels off, the endplates would go to the neighbours; moved first, exact.
    np.testing.assert_array_equal(sitk.GetArrayFromImage(check.corrected), sitk.GetArrayFromImage(mask))


def test_the_shift_search_stays_put_on_ties_and_finds_moves_along_one_axis():
    bone = np.zeros((30, 30, 30), bool)
    bone[10:20, 8:22, 8:22] = True
    assert best_shift(bone, bone) == ((0, 0, 0), 0.0)
    inside = np.zeros_like(bone)
    inside[12:18, 10:20, 10:20] = True          # an eroded mask: every small move keeps it on bone
    assert best_shift(inside, bone) == ((0, 0, 0), 0.0)
    low = np.roll(bone, 3, axis=0)              # three voxels along the spine only
    shift, gain = best_shift(low, bone)
    assert shift == (-3, 0, 0) and gain > MIN_SHIFT_GAIN
    inside_moved = np.roll(inside, 2, axis=2)   # an eroded mask moved by two: moved back to the centre, not short
    assert best_shift(inside_moved, bone)[0] == (0, 0, -2)
    far = np.roll(bone, MAX_SHIFT_VOXELS + 3, axis=1)   # beyond the search: moved as far as it may go
    assert best_shift(far, bone)[0] == (0, -MAX_SHIFT_VOXELS, 0)


def test_masks_two_voxels_off_are_snapped_to_the_bone():
    ct, mask = _boxes()
    truth = sitk.GetArrayFromImage(mask)
    for error, side in (("eroded_2", "less"), ("dilated_2", "more")):
        check = check_masks(degrade_mask(mask, error), ct, PHANTOM_LABELS)
        assert check.masks_are_off and not LOW_RATIO <= check.volume_ratio <= HIGH_RATIO, error
        assert f"far {side} than a vertebra" in check.note()
        # Snapped to the CT's bone, the eroded and the dilated mask both become the phantom's own mask again.
        np.testing.assert_array_equal(sitk.GetArrayFromImage(check.corrected), truth)


def _five_boxes(arches: bool = False, disc_voxels: int = 4) -> tuple[sitk.Image, sitk.Image]:
    """Five box vertebrae T10-L2 (2 mm voxels, 20 mm deep, 18 mm high, discs `disc_voxels` thick: 8 mm), enough to
    tell masks that err alike from masks that err unevenly; with `arches`, each also has two pedicles beside a
    10 mm spinal canal and an arch behind it, as on a midline sagittal CT."""
    ct = np.full((70, 30 if arches else 20, 24), -100.0, np.float32)
    labels = np.zeros(ct.shape, np.uint16)
    for index, label in enumerate(range(21, 16, -1)):    # L2 lowest
        z0 = 4 + index * (9 + disc_voxels)
        labels[z0:z0 + 9, 5:15, 6:18] = label             # body
        if arches:
            labels[z0 + 1:z0 + 6, 15:20, 6:8] = label     # pedicles, the canal between them (x 8-15)
            labels[z0 + 1:z0 + 6, 15:20, 16:18] = label
            labels[z0 + 1:z0 + 7, 20:28, 6:18] = label    # lamina and spinous process
    ct[labels > 0] = 300.0
    ct += np.random.default_rng(1).normal(0, 5, ct.shape).astype(np.float32)
    images = [sitk.GetImageFromArray(array) for array in (ct, labels)]
    for image in images:
        image.SetSpacing((2.0, 2.0, 2.0))
    return images[0], images[1]


def _unevenly_wrong(mask: sitk.Image) -> sitk.Image:
    """T10 and L2 dilated by one voxel, T11 and L1 eroded by two, T12 exact."""
    truth = sitk.GetArrayFromImage(mask)
    eroded, dilated = (sitk.GetArrayFromImage(degrade_mask(mask, error)) for error in ("eroded_2", "dilated_1"))
    uneven = np.where(np.isin(dilated, (17, 21)), dilated, np.where(np.isin(eroded, (18, 20)), eroded, 0))
    uneven[truth == 19] = 19
    given = sitk.GetImageFromArray(uneven.astype(np.uint16))
    given.CopyInformation(mask)
    return given


def test_masks_that_err_differently_on_each_vertebra_are_snapped():
    ct, mask = _five_boxes()
    truth = sitk.GetArrayFromImage(mask)
    check = check_masks(mask, ct, range(17, 22))
    assert check.ratio_spread < 0.05 and not check.uneven and not check.masks_are_off
    for error in ("eroded_1", "dilated_1"):   # erring alike: each ratio moves with the scan's median
        alike = check_masks(degrade_mask(mask, error), ct, range(17, 22))
        assert alike.ratio_spread < MAX_SPREAD and not alike.uneven, error
    # Two vertebrae eroded by two voxels, two dilated by one, one exact: the scan's median ratio stays in range.
    check = check_masks(_unevenly_wrong(mask), ct, range(17, 22))
    assert LOW_RATIO <= check.volume_ratio <= HIGH_RATIO and check.uneven and check.snapped
    assert "err differently on each vertebra" in check.note() and "err unevenly" in check.vertebra_note()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(check.corrected), truth)


def test_only_masks_that_err_each_their_own_way_are_snapped_with_the_ct(monkeypatch):
    snapped_with_ct = []
    snap = mask_check.snap_to_bone

    def recording(mask, estimate, ct=None):
        snapped_with_ct.append(ct is not None)
        return snap(mask, estimate, ct)
    monkeypatch.setattr(mask_check, "snap_to_bone", recording)
    ct, mask = _five_boxes()
    for given in (_unevenly_wrong(mask), degrade_mask(mask, "eroded_2"), degrade_mask(mask, "dilated_2")):
        assert check_masks(given, ct, range(17, 22)).snapped
    assert snapped_with_ct == [True, False, False]


def test_prediction_snaps_uneven_masks_and_says_why(tmp_path, model_folder):  # noqa: F811
    ct, mask = _five_boxes()
    (tmp_path / "in").mkdir()
    write_image(ct, tmp_path / "in" / "case_0000.nii.gz")
    write_image(_unevenly_wrong(mask), tmp_path / "in" / "case.nii.gz")
    run = run_prediction(tmp_path / "in", tmp_path / "out", _settings(model_folder, pictures=False))
    source = json.loads((tmp_path / "out" / "case.json").read_text())["source"]
    assert LOW_RATIO <= source["mask_volume_ratio"] <= HIGH_RATIO
    assert "snapped to the bone the CT shows" in source["vertebrae_from"]
    assert any("err differently on each vertebra" in note for note in source["notes"])
    rows = run.records[0]["vertebrae"]
    assert len(rows) == 5 and all("err unevenly" in row["note"] for row in rows)
    # Measured on the snapped masks: every box's own 18 mm, the eroded and the dilated ones alike.
    assert all(abs(row["anterior_mm"] - 18.0) <= 1.0 for row in rows)


def test_the_spread_needs_enough_vertebrae():
    assert ratio_spread([0.5, 1.5, 1.0]) is None and ratio_outlier([0.5, 1.5, 1.0]) is None
    assert abs(ratio_spread([1.0, 1.0, 2.0, 0.5, 1.0]) - 0.0) < 1e-9   # a minority of odd vertebrae: no spread
    assert abs(ratio_spread([0.5, 2.0, 1.0, 0.5, 2.0]) - np.log(2.0)) < 1e-9
    assert abs(ratio_outlier([1.6, 1.5, 1.7, 0.46, 1.6]) - np.log(0.46 / 1.6)) < 1e-9   # ... but an outlier


def test_one_vertebra_whose_mask_errs_on_its_own_is_snapped():
    # Four vertebrae exact and L2 eroded by two voxels: the spread (a median) stays 0, yet L2 would be measured
    # 8 mm short. Its ratio, far from the others', has every label snapped to the bone, with the CT.
    ct, mask = _five_boxes()
    truth = sitk.GetArrayFromImage(mask)
    given = np.where(truth == 21, sitk.GetArrayFromImage(degrade_mask(mask, "eroded_2")), truth)
    given_image = sitk.GetImageFromArray(given.astype(np.uint16))
    given_image.CopyInformation(mask)
    check = check_masks(given_image, ct, range(17, 22))
    assert check.ratio_spread < 0.05 and check.ratio_outlier < -0.5 and check.uneven and check.snapped
    assert "one vertebra's given mask holds" in check.note() and "less of the bone" in check.note()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(check.corrected), truth)
    exact = check_masks(mask, ct, range(17, 22))     # the exact masks: no vertebra far from the others
    assert abs(exact.ratio_outlier) < 0.1 and not exact.uneven


def test_snapping_keeps_the_given_labels_and_reaches_only_so_far():
    ct, mask = _boxes()
    truth = sitk.GetArrayFromImage(mask)
    bone = sitk.Cast(mask > 0, sitk.sitkUInt8)        # an "estimate" whose bone is exactly the boxes
    swapped = sitk.GetArrayFromImage(degrade_mask(mask, "eroded_1"))
    swapped = np.where(swapped == 20, 22, np.where(swapped == 22, 20, swapped))   # the user's labels, not ours
    given = sitk.GetImageFromArray(swapped.astype(np.uint16))
    given.CopyInformation(mask)
    snapped = sitk.GetArrayFromImage(snap_to_bone(given, bone))
    np.testing.assert_array_equal(snapped == 22, truth == 20)
    np.testing.assert_array_equal(snapped == 20, truth == 22)
    # A body the given mask lost altogether is not handed to its neighbours beyond the reach.
    ct, mask = phantom(spacing=3.0)
    truth = sitk.GetArrayFromImage(mask)
    bone = sitk.Cast(mask > 0, sitk.sitkUInt8)
    without_l2 = sitk.GetArrayFromImage(mask)
    without_l2[without_l2 == 21] = 0
    given = sitk.GetImageFromArray(without_l2)
    given.CopyInformation(mask)
    snapped = sitk.GetArrayFromImage(snap_to_bone(given, bone))
    assert not snapped[truth == 21].any()   # its bone lies 12 mm from L1's and L3's


def test_bone_the_estimate_filled_in_for_one_vertebra_is_no_other_labels():
    # Two bodies on a column of 2 mm voxels: bright endplates, cancellous bone darker than the bone threshold
    # (which the estimate fills in), a disc between. The given L1 reaches two voxels into L2's body.
    hu = np.full((20, 3, 3), 50.0)
    for first, last in ((2, 7), (11, 16)):
        hu[first:last + 1] = BONE_HU - 35.0
        hu[[first, last]] = BONE_HU + 300.0
    estimated = np.zeros(hu.shape, np.uint8)
    estimated[2:8], estimated[11:17] = 20, 21
    given = np.zeros(hu.shape, np.uint16)
    given[2:13], given[13:17] = 20, 21
    ct, estimate, mask = (sitk.GetImageFromArray(array) for array in (hu, estimated, given))
    for image in (ct, estimate, mask):
        image.SetSpacing((2.0, 2.0, 2.0))
    nearest_everywhere = sitk.GetArrayFromImage(snap_to_bone(mask, estimate))[:, 1, 1]
    assert list(nearest_everywhere[11:13]) == [20, 20]   # L2's endplate and the bone under it go to L1
    filled_for_its_own = sitk.GetArrayFromImage(snap_to_bone(mask, estimate, ct))[:, 1, 1]
    # The bright endplate still goes to the nearest label; the bone filled in for L2 is no L1's: left out.
    assert list(filled_for_its_own[11:13]) == [20, 0]
    assert list(filled_for_its_own[2:8]) == [20] * 6 and list(filled_for_its_own[13:17]) == [21] * 4


def test_a_label_with_no_bone_in_reach_keeps_its_given_voxels_and_is_graded(tmp_path, model_folder):  # noqa: F811
    ct, mask = _boxes()
    dilated = sitk.GetArrayFromImage(degrade_mask(mask, "dilated_2"))
    dilated[38:42, 16:19, 1:4] = 23   # an L4 label where the CT shows no bone (a mask of another scan, say)
    given = sitk.GetImageFromArray(dilated)
    given.CopyInformation(mask)
    snapped = sitk.GetArrayFromImage(check_masks(given, ct, [*PHANTOM_LABELS, 23]).corrected)
    np.testing.assert_array_equal(snapped == 23, dilated == 23)
    np.testing.assert_array_equal(np.isin(snapped, PHANTOM_LABELS) * snapped,
                                  np.isin(sitk.GetArrayFromImage(mask), PHANTOM_LABELS) * sitk.GetArrayFromImage(mask))
    (tmp_path / "in").mkdir()
    write_image(ct, tmp_path / "in" / "case_0000.nii.gz")
    write_image(given, tmp_path / "in" / "case.nii.gz")
    run = run_prediction(tmp_path / "in", tmp_path / "out", _settings(model_folder, pictures=False))
    assert not run.failures and [row["level"] for row in run.records[0]["vertebrae"]] == ["L1", "L2", "L3", "L4"]


def test_a_centre_off_the_spine_is_put_back_between_its_neighbours():
    # A lordotic curve (a few mm off straight lines) stays; an arch's centre 24 mm behind its lost body moves.
    centres = {label: np.array([0.0, 5.0 * np.sin(label / 2.0), -30.0 * label]) for label in range(18, 24)}
    sizes = {label: 1000 for label in centres}
    assert all(np.array_equal(_on_the_spine(centres, sizes)[label], centres[label]) for label in centres)
    strayed = {**centres, 21: centres[21] + np.array([0.0, 24.0, 0.0])}
    fixed = _on_the_spine(strayed, {**sizes, 21: 80})
    np.testing.assert_allclose(fixed[21], (centres[20] + centres[22]) / 2)
    assert all(np.array_equal(fixed[label], centres[label]) for label in centres if label != 21)
    assert np.linalg.norm(fixed[21] - centres[21]) < OFF_LINE_MM
    # A whole vertebra stays, even off the line, where the stray centre is its neighbour's (cut by the border).
    assert np.array_equal(_on_the_spine(strayed, sizes)[21], strayed[21])
    cut_above = {**centres, 18: centres[18] + np.array([0.0, 30.0, 10.0])}
    assert all(np.array_equal(_on_the_spine(cut_above, {**sizes, 18: 76})[label], cut_above[label])
               for label in centres)


def test_a_mask_without_the_checked_labels_is_not_judged():
    ct, mask = _boxes()
    check = check_masks(mask, ct, [5])   # C5 is not in the mask
    assert check.volume_ratio is None and not check.masks_are_off


def _case_with_degraded_mask(folder, error):
    ct, mask = _boxes()
    folder.mkdir()
    write_image(ct, folder / "case_0000.nii.gz")
    write_image(degrade_mask(mask, error), folder / "case.nii.gz")


def test_prediction_grades_far_off_masks_snapped_to_the_bone_and_says_so(tmp_path, model_folder):  # noqa: F811
    _case_with_degraded_mask(tmp_path / "in", "dilated_2")
    run = run_prediction(tmp_path / "in", tmp_path / "out", _settings(model_folder, pictures=False))
    source = json.loads((tmp_path / "out" / "case.json").read_text())["source"]
    assert source["mask_volume_ratio"] > HIGH_RATIO
    assert "snapped to the bone the CT shows" in source["vertebrae_from"]
    assert any("--keep_masks" in note for note in source["notes"])
    # Heights measured on the snapped masks: the boxes' own 16 mm; each vertebra's note says what it was graded on.
    assert all(abs(row["anterior_mm"] - 16.0) <= 1.0 for row in run.records[0]["vertebrae"])
    assert all("snapped to the CT's bone" in row["note"] for row in run.records[0]["vertebrae"])

    run_prediction(tmp_path / "in", tmp_path / "kept", _settings(model_folder, pictures=False, keep_masks=True))
    source = json.loads((tmp_path / "kept" / "case.json").read_text())["source"]
    assert source["mask_volume_ratio"] is None and "snapped" not in source["vertebrae_from"]
    assert not any("--keep_masks" in note for note in source["notes"])
    with open(tmp_path / "kept" / "predictions.csv") as handle:
        assert not any("snapped" in row["note"] for row in csv.DictReader(handle))


def test_prediction_grades_shifted_masks_moved_back_and_says_so(tmp_path, model_folder):  # noqa: F811
    _case_with_degraded_mask(tmp_path / "in", "shifted_2")
    run = run_prediction(tmp_path / "in", tmp_path / "out", _settings(model_folder, pictures=False))
    source = json.loads((tmp_path / "out" / "case.json").read_text())["source"]
    assert "moved onto the bone the CT shows" in source["vertebrae_from"]
    assert any("moved by (-2, -2, -2) voxels" in note for note in source["notes"])
    rows = run.records[0]["vertebrae"]
    assert all(abs(row["anterior_mm"] - 16.0) <= 1.0 for row in rows)   # measured on the moved masks
    assert all("moved by [-2, -2, -2] voxels" in row["note"] for row in rows)


def _rounded_spine(spacing: float = 1.0) -> tuple[sitk.Image, sitk.Image]:
    """Five ellipsoid 'vertebrae' T10-L2 on a fine grid: curved outlines, so labels change across every plane."""
    shape = (150, 52, 62)
    z, y, x = np.meshgrid(*[np.arange(n) * spacing for n in shape], indexing="ij")
    ct = np.full(shape, -100.0, np.float32)
    labels = np.zeros(shape, np.uint16)
    for index, label in enumerate(range(21, 16, -1)):    # L2 lowest
        inside = ((z - 17 - 29 * index) / 11) ** 2 + ((y - 26) / 21) ** 2 + ((x - 31) / 26) ** 2 <= 1
        ct[inside], labels[inside] = 300.0, label
    ct += np.random.default_rng(2).normal(0, 5, shape).astype(np.float32)
    images = [sitk.GetImageFromArray(array) for array in (ct, labels)]
    for image in images:
        image.SetSpacing((spacing,) * 3)
    return images[0], images[1]


def _steps(mask: sitk.Image) -> np.ndarray:
    array = sitk.GetArrayFromImage(mask)
    return mask_check.mask_step_mm(array[ndimage.find_objects((array > 0).astype(np.uint8))[0]],
                                   np.asarray(mask.GetSpacing())[::-1])


def test_the_step_of_a_mask_s_outlines_tells_the_grid_it_was_made_on():
    _, mask = _rounded_spine()
    assert np.all(_steps(mask) < 1.3)   # 1.0, a little more along the spine: the flat top of a body
    for millimetres in (2, 3):
        # (y, x) only: along z the empty discs between these bodies make irregular gaps.
        steps = _steps(degrade_mask(mask, f"coarse_{millimetres}"))[1:]
        assert np.all((0.8 * millimetres <= steps) & (steps <= 1.4 * millimetres)), (millimetres, steps)
    # Flat faces change label across a few planes only, boxes stacked with discs at irregular intervals: the grid's
    # own spacing.
    _, boxes = _boxes()
    np.testing.assert_array_equal(_steps(boxes), 2.0)
    stacked = np.zeros((60, 30, 30), np.uint16)
    for index in range(6):   # bodies of 7 planes, discs of 2: changes every 2 or 7 planes
        stacked[2 + 9 * index:9 + 9 * index, 5:25, 5:25] = 17 + index
    np.testing.assert_array_equal(mask_check.mask_step_mm(stacked[1:], np.full(3, 2.0)), 2.0)


def test_masks_made_on_a_coarser_grid_are_snapped_to_the_bone_with_the_ct():
    ct, mask = _rounded_spine()
    exact = sitk.GetArrayFromImage(mask)
    assert not check_masks(mask, ct, range(17, 22)).masks_are_off
    assert not check_masks(degrade_mask(mask, "coarse_2"), ct, range(17, 22)).coarse   # two voxels, 2 mm
    blocky = degrade_mask(mask, "coarse_3")
    check = check_masks(blocky, ct, range(17, 22))
    assert check.coarse and check.snapped and not check.far_from_bone and not check.uneven
    assert all(abs(step - 3.0) < 0.6 for step in check.mask_step_mm[:2])   # (x, y)
    assert check.how == "snapped to the bone the CT shows (they were made on a coarser grid)"
    assert "made on a coarser grid than the CT's" in check.note() and "snapped" in check.note()
    assert "were made on a coarser grid" in check.vertebra_note()
    # Snapped to the CT's bone, the outline is the exact one again wherever the blocky one differed.
    blocky_wrong = np.count_nonzero(sitk.GetArrayFromImage(blocky) != exact)
    snapped_wrong = np.count_nonzero(sitk.GetArrayFromImage(check.corrected) != exact)
    assert snapped_wrong < 0.1 * blocky_wrong


def test_training_masks_made_on_a_coarser_grid_are_snapped_before_cropping(tmp_path):
    ct, mask = _rounded_spine()
    plan = {"target_spacing": [1.0, 1.0, 1.0], "crop_size": [32, 48, 56], "background_hu": -1024,
            "ct_interpolation": "linear", "morphometry": True,
            "ct_channels": [{"name": "bone", "clip": [-200, 1200], "center": 300.0, "scale": 500.0}]}
    crops = {}
    for name, given in (("exact", mask), ("blocky", degrade_mask(mask, "coarse_3"))):
        case_folder = tmp_path / name
        case_folder.mkdir()
        write_image(ct, case_folder / "case_0000.nii.gz")
        write_image(given, case_folder / "case.nii.gz")
        case = RawCase(name, name, case_folder / "case_0000.nii.gz", case_folder / "case.nii.gz", None, {19: 0})
        preprocess_raw_case(case, plan, tmp_path / f"out_{name}")
        crops[name] = (load_arrays(tmp_path / f"out_{name}", [sample_id(name, 19)], [2, *plan["crop_size"]])[0],
                       read_properties(tmp_path / f"out_{name}", sample_id(name, 19)))
    (exact, exact_properties), (blocky, blocky_properties) = crops["exact"], crops["blocky"]
    assert "mask_snapped_to_bone" not in exact_properties and "coarser grid" in blocky_properties["mask_snapped_to_bone"]
    # The mask channel is the exact outline again, and so are the heights.
    assert np.count_nonzero((exact[-1] > 0.5) != (blocky[-1] > 0.5)) < 0.02 * np.count_nonzero(exact[-1] > 0.5)
    for position in ("anterior_mm", "middle_mm", "posterior_mm"):
        assert abs(blocky_properties["morphometry"][position] - exact_properties["morphometry"][position]) < 1.0


def test_a_label_the_snap_carries_to_the_scan_s_border_keeps_its_given_voxels():
    given = np.zeros((20, 20, 20), np.uint16)
    given[4:9, 6:14, 6:14], given[11:16, 6:14, 6:14] = 18, 19     # neither touches the border
    snapped = given.copy()
    snapped[3:10, 5:15, 5:15] = 18                                 # grown on the bone, still inside
    snapped[11:16, 6:14, 0:14] = 19                                # grown onto bone at the border: a tight crop
    images = [sitk.GetImageFromArray(array) for array in (given, snapped)]
    kept = sitk.GetArrayFromImage(mask_check.kept_off_the_border(*images))
    np.testing.assert_array_equal(kept == 18, snapped == 18)      # the snap stays where it keeps off the border
    np.testing.assert_array_equal(kept == 19, given == 19)        # given voxels where it would touch it
    cut = given.copy()
    cut[11:16, 6:14, 0:14] = 19                                    # already cut by the border: the snap stays
    images = [sitk.GetImageFromArray(array) for array in (cut, snapped)]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(mask_check.kept_off_the_border(*images)), snapped)


def test_prediction_snaps_masks_made_on_a_coarser_grid_and_says_so(tmp_path, model_folder):  # noqa: F811
    ct, mask = _rounded_spine()
    (tmp_path / "in").mkdir()
    write_image(ct, tmp_path / "in" / "case_0000.nii.gz")
    write_image(degrade_mask(mask, "coarse_3"), tmp_path / "in" / "case.nii.gz")
    run = run_prediction(tmp_path / "in", tmp_path / "out", _settings(model_folder, pictures=False))
    source = json.loads((tmp_path / "out" / "case.json").read_text())["source"]
    assert "snapped to the bone the CT shows (they were made on a coarser grid)" in source["vertebrae_from"]
    assert any("made on a coarser grid than the CT's" in note and "(1.0, 1.0, 1.0) mm" in note
               for note in source["notes"])
    assert all("coarser grid" in row["note"] for row in run.records[0]["vertebrae"])

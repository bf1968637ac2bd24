"""Input discovery and vertebra sources: naming conventions, TotalSegmentator mapping, centroids, cut vertebrae."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from test_inference_phantom import PHANTOM_LABELS, phantom, write_phantom
from vfnet.dataset.image_io import write_image
from vfnet.errors import VfnetError
from vfnet.inference.inputs import discover_cases
from vfnet.inference.vertebra_sources import (detect_label_format, find_centroids, find_mask, load_centroid_source,
                                              load_mask_source, sole_mask_like_file)
from vfnet.labels import TOTALSEGMENTATOR_TO_VERSE

VERSE_TO_TOTALSEGMENTATOR = {verse: total for total, verse in TOTALSEGMENTATOR_TO_VERSE.items()}


def _touch_image(path, value=0):
    image = sitk.Image(4, 4, 4, sitk.sitkUInt8) + value
    write_image(image, path)


def test_nnunet_naming_ignores_masks_and_other_files(tmp_path):
    for name in ("b_0000.nii.gz", "a_0000.nrrd", "a.nii.gz", "b_seg-vert_msk.nii.gz"):
        _touch_image(tmp_path / name)
    (tmp_path / "notes.txt").write_text("x")
    cases = discover_cases(tmp_path)
    assert [(c.case_id, c.image.name) for c in cases] == [("a", "a_0000.nrrd"), ("b", "b_0000.nii.gz")]


def test_verse_and_plain_naming_and_single_file(tmp_path):
    verse = tmp_path / "verse"
    verse.mkdir()
    for name in ("sub-ct_ct.nii.gz", "sub-ct_seg-vert_msk.nii.gz"):
        _touch_image(verse / name)
    assert [c.case_id for c in discover_cases(verse)] == ["sub-ct"]
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("ct.nii.gz", "totalseg_multilabel.nii.gz", "scan2.mha"):
        _touch_image(plain / name)
    assert [c.case_id for c in discover_cases(plain)] == ["ct", "scan2"]
    assert discover_cases(plain / "scan2.mha")[0].case_id == "scan2"


def test_empty_input_folder_and_missing_input_are_clear_errors(tmp_path):
    with pytest.raises(VfnetError, match="holds no CT"):
        discover_cases(tmp_path)
    with pytest.raises(VfnetError, match="does not exist"):
        discover_cases(tmp_path / "nothing")


def test_verse_mask_keeps_ids_and_marks_no_cut_when_inside(tmp_path):
    ct_path, mask_path = write_phantom(tmp_path, "case", "PIR")
    ct = sitk.ReadImage(str(ct_path))
    assert find_mask("case", tmp_path, exclude=ct_path) == mask_path
    source = load_mask_source(mask_path, ct, "auto")
    assert source.labels == list(PHANTOM_LABELS)
    assert "verse" in source.description and source.cut_labels == set()


@pytest.mark.parametrize("orientation", ["LPS", "PIR"])
def test_totalsegmentator_multilabel_maps_to_verse_levels(tmp_path, orientation):
    ct, mask = phantom()
    array = sitk.GetArrayFromImage(mask)
    total = np.zeros_like(array)
    for verse_id in PHANTOM_LABELS:
        total[array == verse_id] = VERSE_TO_TOTALSEGMENTATOR[verse_id]
    total[0, 0, 0] = 5  # an organ (liver in TotalSegmentator) must be ignored
    total_image = sitk.GetImageFromArray(total)
    total_image.CopyInformation(mask)
    write_image(sitk.DICOMOrient(total_image, orientation), tmp_path / "totalseg_multilabel.nii.gz")
    assert sole_mask_like_file(tmp_path) == tmp_path / "totalseg_multilabel.nii.gz"
    source = load_mask_source(tmp_path / "totalseg_multilabel.nii.gz", ct, "auto")
    assert "totalsegmentator" in source.description
    assert source.labels == list(PHANTOM_LABELS)
    # Same voxels as the VerSe phantom mask after mapping (31 L1 -> 20, 30 L2 -> 21, 29 L3 -> 22).
    mapped = sitk.GetArrayFromImage(source.mask_image)
    np.testing.assert_array_equal(mapped, array)


def test_totalsegmentator_structure_folder(tmp_path):
    ct, mask = phantom()
    folder = tmp_path / "case"
    folder.mkdir()
    for verse_id, level in zip(PHANTOM_LABELS, ("L1", "L2", "L3")):
        write_image(sitk.Cast(mask == verse_id, sitk.sitkUInt8), folder / f"vertebrae_{level}.nii.gz")
    write_image(sitk.Cast(mask == 20, sitk.sitkUInt8), folder / "liver.nii.gz")
    assert find_mask("case", tmp_path) == folder
    source = load_mask_source(folder, ct, "auto")
    assert source.labels == list(PHANTOM_LABELS)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(source.mask_image), sitk.GetArrayFromImage(mask))


def test_label_format_detection_and_forced_verse_rejects_totalsegmentator_ids(tmp_path):
    assert detect_label_format({20, 21, 28}) == "verse"
    assert detect_label_format({5, 29, 31}) == "totalsegmentator"
    ct, mask = phantom()
    write_image(mask + 10, tmp_path / "m.nii.gz")  # ids 30-32: not VerSe
    with pytest.raises(VfnetError, match="m.nii.gz.*not VerSe"):
        load_mask_source(tmp_path / "m.nii.gz", ct, "verse")


def test_mask_without_vertebrae_is_a_clear_error(tmp_path):
    ct, mask = phantom()
    write_image(mask * 0, tmp_path / "empty.nii.gz")
    with pytest.raises(VfnetError, match="empty.nii.gz holds no gradable vertebra"):
        load_mask_source(tmp_path / "empty.nii.gz", ct, "auto")


def test_vertebra_touching_cranio_caudal_border_is_marked_cut(tmp_path):
    ct, mask = phantom()
    array = sitk.GetArrayFromImage(mask)
    array[-3:, 5:15, 6:18] = 19  # T12 reaching the top slice
    cut = sitk.GetImageFromArray(array)
    cut.CopyInformation(mask)
    write_image(sitk.DICOMOrient(cut, "PIR"), tmp_path / "cut.nii.gz")  # PIR: cranio-caudal is image axis 1
    source = load_mask_source(tmp_path / "cut.nii.gz", ct, "verse")
    assert source.cut_labels == {19}


def test_centroid_json_gives_verse_centroids(tmp_path):
    ct, mask = phantom()
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(mask)
    entries = [{"direction": ["L", "P", "S"]}]
    for label in PHANTOM_LABELS:
        index = mask.TransformPhysicalPointToContinuousIndex(statistics.GetCentroid(label))
        entries.append({"label": label, "X": index[0], "Y": index[1], "Z": index[2]})
    (tmp_path / "case_ctd.json").write_text(json.dumps(entries))
    path = find_centroids("case", tmp_path)
    source = load_centroid_source(path, ct, "auto")
    assert source.mask_image is None and source.labels == list(PHANTOM_LABELS)
    np.testing.assert_allclose(source.centroids[21], statistics.GetCentroid(21), atol=1e-6)

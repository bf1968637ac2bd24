"""Input discovery and vertebra sources: naming conventions, TotalSegmentator mapping, centroids, cut vertebrae."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from test_inference_phantom import PHANTOM_LABELS, phantom, write_phantom
from vfnet.dataset.image_io import write_image
from vfnet.errors import VfnetError
from vfnet.inference.inputs import discover_cases
from vfnet.inference.label_formats import choose_label_format
from vfnet.inference.vertebra_sources import (find_centroids, find_mask, load_centroid_source, load_mask_source,
                                              sole_mask_like_file)
from vfnet.labels import LEVEL_TO_VERSE, TOTALSEGMENTATOR_TO_VERSE, TOTALSEGMENTATOR_V1_TO_VERSE

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
    # The phantom's 22 mm level spacing is that of upper thoracic vertebrae, which `auto` would read as v1 ids.
    source = load_mask_source(tmp_path / "totalseg_multilabel.nii.gz", ct, "totalsegmentator")
    assert "TotalSegmentator v2" in source.description
    assert source.not_predicted == [{"label": 5, "structure": "TotalSegmentator v2 structure 5 (not a vertebra)",
                                     "reason": "not a vertebra"}]
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


def test_forced_verse_rejects_totalsegmentator_ids(tmp_path):
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


# ---------------------------------------------------------------- label conventions told apart
def spine_mask(levels_to_ids: dict[str, int], pitch_mm: float, body_mm: float = 24.0, extra=()) -> sitk.Image:
    """Box vertebrae one above the other (the first level on top), 2 mm voxels, LPS; `extra`: (id, z0, z1, y0, y1,
    x0, x1) boxes in voxels for other structures."""
    levels = list(levels_to_ids)
    size_z = int((len(levels) + 1) * pitch_mm / 2) + 4
    array = np.zeros((size_z, 40, 40), np.uint8)
    for index, level in enumerate(levels):
        top = size_z - 2 - int((index + 0.5) * pitch_mm / 2)
        array[top - int(body_mm / 2):top, 12:28, 10:30] = levels_to_ids[level]
    for label, z0, z1, y0, y1, x0, x1 in extra:
        array[z0:z1, y0:y1, x0:x1] = label
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 2.0, 2.0))
    return image


def _ids(table: dict[int, int], levels: list[str]) -> dict[str, int]:
    by_level = {verse: mask_id for mask_id, verse in table.items()}
    return {level: by_level[LEVEL_TO_VERSE[level]] for level in levels}


LUMBAR = ["L1", "L2", "L3", "L4", "L5"]
UPPER_THORACIC = ["T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9"]


@pytest.mark.parametrize("version, table, levels, pitch", [
    ("totalsegmentator_v2", TOTALSEGMENTATOR_TO_VERSE, LUMBAR, 36.0),
    ("totalsegmentator_v1", TOTALSEGMENTATOR_V1_TO_VERSE, LUMBAR, 36.0),
    ("totalsegmentator_v1", TOTALSEGMENTATOR_V1_TO_VERSE, UPPER_THORACIC, 23.0),   # v2 would read S1-T11
    ("totalsegmentator_v2", TOTALSEGMENTATOR_TO_VERSE, ["T11", "T12", "L1", "L2", "L3"], 34.0),  # v1 would read T2-T6
    ("verse", {i: i for i in range(1, 29)}, LUMBAR, 36.0),
])
def test_label_convention_is_told_apart(version, table, levels, pitch):
    form, how = choose_label_format(spine_mask(_ids(table, levels), pitch), "m.nii.gz", "auto")
    assert form.name == version, how


def test_an_organ_in_the_column_rules_a_convention_out():
    # TotalSegmentator v1 T6-T12 (ids 23-29): v2 would read 26-29 as S1-L3, and 23-25 as kidney cysts and sacrum
    # stacked in the spinal column like vertebrae.
    mask = spine_mask(_ids(TOTALSEGMENTATOR_V1_TO_VERSE, ["T6", "T7", "T8", "T9", "T10", "T11", "T12"]), 28.0)
    assert choose_label_format(mask, "m.nii.gz", "auto")[0].name == "totalsegmentator_v1"


def test_organ_sized_or_displaced_labels_are_no_vertebrae():
    # v1 C1-T9 would be read by v2 as T12 ... with id 44 (v1 heart myocardium, v2 C7) as a huge box in front.
    heart = (44, 2, 30, 0, 12, 0, 40)
    mask = spine_mask(_ids(TOTALSEGMENTATOR_V1_TO_VERSE, ["T6", "T7", "T8", "T9"]), 24.0, extra=[heart])
    assert choose_label_format(mask, "m.nii.gz", "auto")[0].name == "totalsegmentator_v1"


def test_an_ambiguous_mask_stops_and_asks_for_the_label_format(tmp_path):
    mask = spine_mask({"L2": 30}, 34.0)     # one vertebra: v1 T5 or v2 L2, nothing tells which
    with pytest.raises(VfnetError, match=r"m.nii.gz fits both TotalSegmentator v1 and v2.*--label_format"):
        choose_label_format(mask, "m.nii.gz", "auto")
    ct = sitk.Image(mask.GetSize(), sitk.sitkInt16)
    ct.CopyInformation(mask)
    write_image(mask, tmp_path / "m.nii.gz")
    source = load_mask_source(tmp_path / "m.nii.gz", ct, "totalsegmentator_v1")
    assert source.labels == [LEVEL_TO_VERSE["T5"]] and "as given by --label_format" in source.description


def test_labels_not_graded_are_listed_with_their_reason_and_resampling_is_stated(tmp_path):
    table = _ids(TOTALSEGMENTATOR_TO_VERSE, ["L4", "L5", "S1"])
    mask = spine_mask(table, 36.0, extra=[(25, 0, 3, 12, 28, 10, 30), (52, 10, 20, 0, 6, 0, 6)])  # sacrum, aorta
    write_image(mask, tmp_path / "m.nii.gz")
    ct = sitk.Image([n * 2 for n in mask.GetSize()], sitk.sitkInt16)   # a CT on a finer grid
    ct.SetSpacing((1.0, 1.0, 1.0))
    ct.SetOrigin(tuple(o - 0.5 for o in mask.GetOrigin()))
    source = load_mask_source(tmp_path / "m.nii.gz", ct, "auto")
    assert [level for level in source.labels] == [LEVEL_TO_VERSE["L4"], LEVEL_TO_VERSE["L5"]]
    reasons = {entry["structure"]: entry["reason"] for entry in source.not_predicted}
    assert reasons["S1"].startswith("S1 is sacral") and reasons["sacrum"] == "not a vertebra"
    assert reasons["TotalSegmentator v2 structure 52 (not a vertebra)"] == "not a vertebra"
    assert source.mask_resampled and "resampled onto the CT grid" in source.notes[0]

"""A vertebra missing from the mask between two labelled neighbours is estimated from the CT, where there is room."""
import json

import numpy as np
import SimpleITK as sitk

from test_inference_predict import _settings, model_folder  # noqa: F401  (pytest fixture)
from test_mask_check import _five_boxes
from vfnet.dataset.image_io import write_image
from vfnet.inference.predictor import run_prediction
from vfnet.preprocessing.missing_vertebrae import MAX_MISSING_RUN, add_missing_vertebrae, gaps_between


def _without(mask: sitk.Image, labels: tuple[int, ...], relabel: dict[int, int] | None = None) -> sitk.Image:
    array = sitk.GetArrayFromImage(mask)
    array[np.isin(array, labels)] = 0
    for old, new in (relabel or {}).items():
        array[sitk.GetArrayViewFromImage(mask) == old] = new
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(mask)
    return image


def test_a_vertebra_missing_between_labelled_neighbours_is_estimated_from_the_ct():
    ct, mask = _five_boxes()                  # T10-L2, box bodies on a 2 mm grid
    truth = sitk.GetArrayFromImage(mask)
    added = add_missing_vertebrae(_without(mask, (19,)), ct)
    assert added.labels == [19] and added.between == {19: (18, 20)}
    result = sitk.GetArrayFromImage(added.mask)
    np.testing.assert_array_equal(result[truth != 19], truth[truth != 19])   # the given labels are untouched
    estimated, box = result == 19, truth == 19
    assert 2 * (estimated & box).sum() / (estimated.sum() + box.sum()) > 0.9
    assert "no T12 (between T11 and L1)" in added.note() and "between T11 and L1" in added.vertebra_note(19)


def test_a_complete_mask_gains_nothing():
    ct, mask = _five_boxes()
    added = add_missing_vertebrae(mask, ct)
    assert added.labels == [] and added.mask is mask


def _on_a_line(positions: dict[int, float]) -> dict[int, np.ndarray]:
    """Centres (x, y, z mm) straight down the spine at the given heights."""
    return {label: np.array([0.0, 0.0, z]) for label, z in positions.items()}


def test_no_vertebra_is_added_where_the_neighbours_leave_no_room_for_it():
    ct, mask = _five_boxes()
    # Eleven thoracic vertebrae: T11 then L1 one ordinary step apart, so the absent T12 is no gap.
    eleven = _without(mask, (), relabel={19: 20, 20: 21, 21: 22})
    assert add_missing_vertebrae(eleven, ct).labels == []
    assert gaps_between(_on_a_line({17: 0, 18: -26, 20: -52, 21: -78})) == {}
    assert gaps_between(_on_a_line({17: 0, 18: -26, 20: -78, 21: -104})) == {19: (18, 20, 0.5)}


def test_gaps_follow_the_spine_s_sequence_and_variants_are_never_missing():
    # Two missing in a row sit a third and two thirds of the way between their neighbours.
    assert gaps_between(_on_a_line({14: 0, 17: -78, 18: -104})) == {15: (14, 17, 1 / 3), 16: (14, 17, 2 / 3)}
    # T13 (28) sits between T12 and L1 when present; neither it nor L6 (25) is ever counted missing.
    assert gaps_between(_on_a_line({label: -26.0 * index for index, label in enumerate(range(18, 25))})) == {}
    assert gaps_between(_on_a_line({19: 0, 28: -26, 20: -52, 22: -104})) == {21: (20, 22, 0.5)}
    # A run longer than MAX_MISSING_RUN is two spine regions, not a gap.
    far = MAX_MISSING_RUN + 2
    assert gaps_between(_on_a_line({8: 0, 8 + far: -26.0 * far})) == {}


def test_prediction_grades_a_vertebra_missing_from_the_mask_and_says_so(tmp_path, model_folder):  # noqa: F811
    ct, mask = _five_boxes()
    (tmp_path / "in").mkdir()
    write_image(ct, tmp_path / "in" / "case_0000.nii.gz")
    write_image(_without(mask, (19,)), tmp_path / "in" / "case.nii.gz")
    run = run_prediction(tmp_path / "in", tmp_path / "out", _settings(model_folder, pictures=False))
    source = json.loads((tmp_path / "out" / "case.json").read_text())["source"]
    assert "vertebrae missing from it estimated from the CT" in source["vertebrae_from"]
    assert any("no T12 (between T11 and L1)" in note for note in source["notes"])
    rows = {row["level"]: row for row in run.records[0]["vertebrae"]}
    assert sorted(rows) == ["L1", "L2", "T10", "T11", "T12"]
    assert "not in the given mask" in rows["T12"]["note"] and "not in the given mask" not in rows["T11"]["note"]
    assert abs(rows["T12"]["anterior_mm"] - 18.0) <= 1.0          # measured on the estimate: the box's 18 mm

    kept = run_prediction(tmp_path / "in", tmp_path / "kept", _settings(model_folder, pictures=False,
                                                                         keep_masks=True))
    assert sorted(row["level"] for row in kept.records[0]["vertebrae"]) == ["L1", "L2", "T10", "T11"]

"""The fingerprint measures extents along canonical axes, whatever the storage orientation."""
import numpy as np
import pytest

from tiny_spine import write_raw_dataset
from vfnet.dataset.format import load_raw_dataset
from vfnet.errors import DatasetError
from vfnet.planning.fingerprint import case_fingerprint, extract_fingerprint

CASES = [{"case": f"c{i}", "patient": f"p{i // 2}", "vertebrae": {20: i % 2, 21: 0, 22: 3 * (i % 2)}} for i in range(4)]


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    folder = write_raw_dataset(tmp_path_factory.mktemp("raw"), "Dataset002_Fp", CASES, centroid_only=frozenset({"c3"}),
                               orientations={"c1": "PIR", "c2": "ASL", "c3": "RAS"})
    return load_raw_dataset(folder)


def test_extents_and_spacing_are_canonical(raw):
    lps, pir = case_fingerprint(raw.cases[0]), case_fingerprint(raw.cases[1])
    assert pir["orientation"] == "PIR" and lps["orientation"] == "LPS"
    assert pir["spacing"] == pytest.approx(lps["spacing"])
    assert lps["spacing"] == pytest.approx([2.0, 1.6, 1.6])
    assert pir["shape"] == lps["shape"] == [52, 48, 48]
    extent = lps["vertebrae"]["21"]["extent_mm"]
    assert pir["vertebrae"]["21"]["extent_mm"] == pytest.approx(extent)
    # Body 24 mm high (12 slices of 2 mm), 14-70 mm antero-posterior, 18-58 mm left-right in the phantom.
    assert extent == pytest.approx([24.0, 57.6, 40.0], abs=2.0)


def test_dataset_summary(raw):
    fingerprint = extract_fingerprint(raw, num_processes=2)
    assert fingerprint["num_cases"] == 4 and fingerprint["num_patients"] == 2
    assert fingerprint["grade_counts"] == {"0": 8, "1": 2, "2": 0, "3": 2}
    assert fingerprint["vertebrae_per_patient"]["max"] == 6
    assert fingerprint["cases"][3]["vertebrae"]["20"]["extent_source"] == "typical"
    intensity = fingerprint["intensity"]
    assert 200 < intensity["median"] < 500 and intensity["percentile_00_5"] < intensity["percentile_99_5"]
    assert "intensity_samples" not in fingerprint["cases"][0]


def test_graded_vertebra_missing_from_mask_names_the_file(raw):
    case = raw.cases[0]
    broken = type(case)(case.case_id, case.patient, case.image, case.mask, None, {**case.grades, 23: 1})
    with pytest.raises(DatasetError, match=str(case.mask)):
        case_fingerprint(broken)

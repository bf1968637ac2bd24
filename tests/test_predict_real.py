"""vfnet_predict on the two real CTs in ../shared/data/real (skipped when absent), with a tiny untrained model.

Grades are unknown (and the model untrained); what is checked is that the real inputs are read, the levels are
right, and vertebrae cut by the field of view are flagged and not measured.
"""
import csv
import json

import pytest

from test_inference_ensemble import TINY_NETWORK, save_tiny_model
from test_inference_predict import TINY_PREPROCESSING, tiny_plans
from vfnet.cli.predict import main
from vfnet.fileio import write_json
from vfnet.inference.outputs import CUT_NOTE
from vfnet.preprocessing.mask_check import HIGH_RATIO, LOW_RATIO

# 3 mm voxels keep the crops of the abdominal CT small; the real plans would use ~1 mm.
REAL_PREPROCESSING = {**TINY_PREPROCESSING, "target_spacing": [3.0, 3.0, 3.0], "crop_size_mm": [96.0] * 3,
                      "crop_size": [32, 32, 32]}


@pytest.fixture
def model_folder(tmp_path):
    folder = tmp_path / "model"
    save_tiny_model(folder, [0], preprocessing=REAL_PREPROCESSING)
    write_json(folder / "plans.json", {**tiny_plans(), "preprocessing": REAL_PREPROCESSING, "network": TINY_NETWORK})
    return folder


def _predict(input_path, output, model_folder, *extra):
    return main(["-i", str(input_path), "-o", str(output), "-m", str(model_folder), "-f", "0", *extra])


def _rows(output):
    with open(output / "predictions.csv") as handle:
        return {row["level"]: row for row in csv.DictReader(handle)}


def test_totalsegmentator_example(shared_data, tmp_path, model_folder):
    folder = shared_data / "real" / "totalsegmentator_example"
    assert _predict(folder, tmp_path / "out", model_folder) == 0
    rows = _rows(tmp_path / "out")
    # S1 is in the mask but not graded; T11 is only partly in view.
    assert sorted(rows) == ["L1", "L2", "L3", "L4", "L5", "T11", "T12"]
    assert rows["T11"]["note"].startswith(CUT_NOTE) and rows["T11"]["anterior_mm"] == ""
    assert CUT_NOTE not in rows["L3"]["note"]
    assert 15.0 < float(rows["L3"]["posterior_mm"]) < 45.0  # a lumbar body is 25-30 mm tall
    record = json.loads((tmp_path / "out" / "ct.json").read_text())
    assert "totalsegmentator" in record["source"]["vertebrae_from"]
    # T11 and, by the border rule, T12 (its mask reaches the top slice) are flagged; the lumbar spine is whole.
    assert "T11" in record["unreliable_levels"] and not {"L1", "L2", "L3", "L4", "L5"} & set(record["unreliable_levels"])
    # The T12 note says which rule fired, so it agrees with its fraction_in_view of 1.0.
    assert rows["T12"]["note"].startswith(f"{CUT_NOTE} (its mask reaches the first or last slice") and \
        "typical body box is 100% inside" in rows["T12"]["note"]
    assert "TotalSegmentator v2" in record["source"]["vertebrae_from"]
    assert [entry["structure"] for entry in record["not_predicted"]] == ["S1"]
    # A real segmentation model's mask holds the bone the CT shows: graded as given, not snapped (ratio 0.87).
    assert LOW_RATIO + 0.2 < record["source"]["mask_volume_ratio"] < HIGH_RATIO
    assert "snapped" not in record["source"]["vertebrae_from"] and "moved" not in record["source"]["vertebrae_from"]


def test_tptbox_sample_with_cut_neighbours(shared_data, tmp_path, model_folder):
    folder = shared_data / "real" / "tptbox_sample"
    assert _predict(folder, tmp_path / "out", model_folder, "--label_format", "verse") == 0
    rows = _rows(tmp_path / "out")
    assert sorted(rows) == ["L2", "L3", "L4"]
    assert rows["L2"]["note"].startswith(CUT_NOTE) and rows["L4"]["note"].startswith(CUT_NOTE)
    assert CUT_NOTE not in rows["L3"]["note"] and 15.0 < float(rows["L3"]["posterior_mm"]) < 45.0
    assert rows["L2"]["anterior_mm"] == ""  # a cut vertebra's heights are not reported
    with open(tmp_path / "out" / "patients.csv") as handle:
        patient = next(csv.DictReader(handle))
    assert patient["case"] == "sub-ct" and patient["unreliable_levels"] == "L2 L4"
    source = json.loads((tmp_path / "out" / "sub-ct.json").read_text())["source"]
    assert LOW_RATIO + 0.2 < source["mask_volume_ratio"] < HIGH_RATIO   # expert masks: 0.66, kept
    assert "snapped" not in source["vertebrae_from"] and "moved" not in source["vertebrae_from"]

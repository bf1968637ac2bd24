"""vfnet_plan_and_preprocess end to end on a tiny dataset: outputs, resume, --clean, failing cases."""
import json
import subprocess
import sys

import numpy as np
import pytest

from tiny_spine import standard_cases, write_raw_dataset
from vfnet.cli import plan_and_preprocess, preprocess
from vfnet.fileio import read_json
from vfnet.preprocessing.samples import (array_path, load_arrays, properties_path, read_properties,
                                         read_sample_properties, sample_id)

NAME = "Dataset001_Tiny"


@pytest.fixture
def tiny_dataset(vfnet_folders):
    cases = standard_cases(5)
    write_raw_dataset(vfnet_folders["vfnet_raw"], NAME, cases, centroid_only=frozenset({"tiny010"}),
                      orientations={"tiny020": "RAS", "tiny030": "PIR"})
    return vfnet_folders, cases


def test_plan_and_preprocess_writes_everything(tiny_dataset):
    folders, cases = tiny_dataset
    assert plan_and_preprocess.main(["-d", "1", "-np", "2"]) == 0
    out = folders["vfnet_preprocessed"] / NAME
    assert read_json(out / "dataset.json") == read_json(folders["vfnet_raw"] / NAME / "dataset.json")
    plans = read_json(out / "vfnetPlans.json")
    fingerprint = read_json(out / "dataset_fingerprint.json")
    assert fingerprint["num_vertebrae"] == 15 and fingerprint["num_patients"] == 5
    assert sum(fingerprint["grade_counts"].values()) == 15
    sources = {entry["extent_source"] for case in fingerprint["cases"] for entry in case["vertebrae"].values()}
    assert sources == {"mask", "typical"}
    samples = [p["sample"] for p in read_sample_properties(out / "vfnetPlans_3d")]
    assert samples == sorted(sample_id(c["case"], label) for c in cases for label in c["vertebrae"])
    properties = read_properties(out / "vfnetPlans_3d", "tiny020_21")
    array = load_arrays(out / "vfnetPlans_3d", ["tiny020_21"], properties["shape"])[0]
    assert array.dtype == np.float16 and list(array.shape) == properties["shape"]
    assert properties["shape"][1:] == plans["preprocessing"]["crop_size"]
    assert properties["grade"] == cases[2]["vertebrae"][21] and properties["patient"] == "p02"
    assert properties["source_orientation"] == "RAS"
    assert len(read_json(out / "splits_final.json")) == 5


def test_rerun_skips_finished_samples_and_clean_redoes_them(tiny_dataset):
    folders, _ = tiny_dataset
    assert plan_and_preprocess.main(["-d", "1", "-np", "1"]) == 0
    crops = folders["vfnet_preprocessed"] / NAME / "vfnetPlans_3d"
    first = properties_path(crops, "tiny000_20")
    stamp = first.stat().st_mtime_ns
    properties_path(crops, "tiny010_21").unlink()   # an interrupted sample: its JSON is missing
    assert preprocess.main(["-d", "1", "-np", "1"]) == 0
    assert first.stat().st_mtime_ns == stamp
    assert read_properties(crops, "tiny010_21") is not None
    plans_path = folders["vfnet_preprocessed"] / NAME / "vfnetPlans.json"
    plans = read_json(plans_path)
    plans["preprocessing"]["ct_channels"][0]["clip"][1] += 100.0   # the user edits the plan's window
    plans_path.write_text(json.dumps(plans))
    assert preprocess.main(["-d", "1", "-np", "1"]) == 0
    assert first.stat().st_mtime_ns != stamp, "a sample made with another plan must be redone"
    stamp = first.stat().st_mtime_ns
    properties_path(crops, "stale_1").write_text("{}")
    assert preprocess.main(["-d", "1", "-np", "1", "--clean"]) == 0
    assert not properties_path(crops, "stale_1").exists() and first.stat().st_mtime_ns != stamp


def test_a_failing_case_is_reported_and_the_others_are_done(tiny_dataset, capsys):
    folders, _ = tiny_dataset
    raw = folders["vfnet_raw"] / NAME
    assert plan_and_preprocess.main(["-d", "1", "-np", "1"]) == 0
    crops = folders["vfnet_preprocessed"] / NAME / "vfnetPlans_3d"
    for path in crops.iterdir():
        path.unlink()
    (raw / "imagesTr" / "tiny030_0000.nii.gz").write_bytes(b"not an image")
    from vfnet.cli.common import run_cli
    assert run_cli("vfnet_preprocess", preprocess.main, ["-d", "1", "-np", "2"]) == 1
    message = capsys.readouterr().err
    assert "tiny030" in message and "tiny030_0000.nii.gz" in message and "Traceback" not in message
    done = {p["case"] for p in read_sample_properties(crops)}
    assert done == {"tiny000", "tiny010", "tiny020", "tiny040"}


def test_overrides_and_plan_variant(tiny_dataset):
    folders, _ = tiny_dataset
    arguments = ["-d", "1", "-np", "1", "-pl", "vfnetPlans_ceonly", "--override", "training.supcon_weight=0",
                 "preprocessing.crop_size=[16, 24, 24]"]
    assert plan_and_preprocess.main(arguments) == 0
    out = folders["vfnet_preprocessed"] / NAME
    plans = read_json(out / "vfnetPlans_ceonly.json")
    assert plans["training"]["supcon_weight"] == 0 and plans["plans_name"] == "vfnetPlans_ceonly"
    assert "--override" in plans["reasons"]["training.supcon_weight"]
    assert read_properties(out / "vfnetPlans_ceonly_3d", "tiny000_20")["shape"] == [2, 16, 24, 24]
    assert load_arrays(out / "vfnetPlans_ceonly_3d", ["tiny000_20"], [2, 16, 24, 24]).shape == (1, 2, 16, 24, 24)
    assert not (out / "vfnetPlans.json").exists()


def test_training_crops_carry_the_ratios_of_degraded_masks(tiny_dataset):
    folders, _ = tiny_dataset
    arguments = ["-d", "1", "-np", "1", "-pl", "vfnetPlans_errors", "--override",
                 'preprocessing.morphometry_mask_errors=["eroded_1", "dilated_2"]']
    assert plan_and_preprocess.main(arguments) == 0
    folder = folders["vfnet_preprocessed"] / NAME / "vfnetPlans_errors_3d"
    from_mask = read_properties(folder, "tiny000_20")
    assert set(from_mask["morphometry_mask_errors"]) == {"eroded_1", "dilated_2"}
    assert from_mask["morphometry_mask_errors"]["dilated_2"]["middle_mm"] != from_mask["morphometry"]["middle_mm"]
    assert "morphometry_mask_errors" not in read_properties(folder, "tiny010_20")   # centroid only: no mask


def test_command_line_error_is_one_line(vfnet_folders):
    result = subprocess.run([sys.executable, "-m", "vfnet.cli.plan_experiment", "-d", "9"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "vfnet_plan_experiment: error:" in result.stderr and "Traceback" not in result.stderr


def test_a_changed_grade_is_redone_and_an_ungraded_vertebra_removed(tiny_dataset, capsys):
    folders, cases = tiny_dataset
    assert plan_and_preprocess.main(["-d", "1", "-np", "1"]) == 0
    crops = folders["vfnet_preprocessed"] / NAME / "vfnetPlans_3d"
    untouched = properties_path(crops, "tiny020_20").stat().st_mtime_ns
    raw = folders["vfnet_raw"] / NAME / "dataset.json"
    description = read_json(raw)
    entry = description["training"][0]                       # tiny000: L1 0, L2 0, L3 1
    entry["vertebrae"]["21"] = 3                             # a corrected grade
    del entry["vertebrae"]["22"]                             # a vertebra no longer graded
    raw.write_text(json.dumps(description))
    capsys.readouterr()
    assert preprocess.main(["-d", "1", "-np", "1"]) == 0
    output = capsys.readouterr().out
    assert "0 new sample(s), 2 redone" in output and "1 removed" in output
    assert read_properties(crops, "tiny000_21")["grade"] == 3
    assert read_properties(crops, "tiny000_22") is None and not array_path(crops, "tiny000_22").exists()
    assert properties_path(crops, "tiny020_20").stat().st_mtime_ns == untouched, "other cases are kept"


def test_a_changed_patient_redoes_the_case(tiny_dataset, capsys):
    folders, _ = tiny_dataset
    assert plan_and_preprocess.main(["-d", "1", "-np", "1"]) == 0
    crops = folders["vfnet_preprocessed"] / NAME / "vfnetPlans_3d"
    raw = folders["vfnet_raw"] / NAME / "dataset.json"
    description = read_json(raw)
    description["training"][1]["patient"] = "p10"            # a corrected patient id
    raw.write_text(json.dumps(description))
    (folders["vfnet_preprocessed"] / NAME / "splits_final.json").unlink()   # made with the old patients
    capsys.readouterr()
    assert preprocess.main(["-d", "1", "-np", "1"]) == 0
    assert "0 new sample(s), 3 redone" in capsys.readouterr().out
    assert read_properties(crops, "tiny010_20")["patient"] == "p10"

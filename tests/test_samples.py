"""The crop sample format (vfnet.preprocessing.samples): one writer, one reader, the signature check."""
import numpy as np
import pytest

from vfnet.errors import VfnetError
from vfnet.preprocessing.samples import (array_path, check_signatures, load_arrays, preprocessing_signature,
                                         properties_path, read_properties, read_sample_properties, remove_sample,
                                         sample_id, sample_ids_on_disk, write_sample)

SECTION = {"target_spacing": [2.0, 2.0, 2.0], "crop_size": [4, 4, 4], "num_input_channels": 2}


def _write(folder, case="c1", label=20, signature=None):
    name = sample_id(case, label)
    write_sample(folder, np.ones((2, 4, 4, 4), np.float32), {
        "sample": name, "case": case, "grade": 1,
        "preprocessing_signature": signature or preprocessing_signature(SECTION)})
    return name


def test_write_then_read_round_trip_in_the_documented_format(tmp_path):
    name = _write(tmp_path)
    assert name == "c1_20"
    assert np.load(array_path(tmp_path, name)).dtype == np.float16   # npy float16, as architecture.md says
    assert properties_path(tmp_path, name).name == "c1_20.json"
    assert read_properties(tmp_path, name)["grade"] == 1
    assert [p["sample"] for p in read_sample_properties(tmp_path)] == ["c1_20"]
    assert load_arrays(tmp_path, [name], [2, 4, 4, 4]).shape == (1, 2, 4, 4, 4)


def test_unfinished_and_broken_samples(tmp_path):
    name = _write(tmp_path)
    properties_path(tmp_path, name).unlink()          # killed before the JSON: not a sample
    assert read_properties(tmp_path, name) is None and read_sample_properties(tmp_path) == []
    assert sample_ids_on_disk(tmp_path) == {name}
    remove_sample(tmp_path, name)
    assert sample_ids_on_disk(tmp_path) == set()
    properties_path(tmp_path, "x_1").write_text("[1]")
    assert read_properties(tmp_path, "x_1") is None
    with pytest.raises(VfnetError, match="x_1.json"):
        read_sample_properties(tmp_path)
    with pytest.raises(VfnetError, match="does not exist"):
        read_sample_properties(tmp_path / "absent")


def test_wrong_shape_names_the_crop(tmp_path):
    name = _write(tmp_path)
    with pytest.raises(VfnetError, match=f"{name}.npy has shape"):
        load_arrays(tmp_path, [name], [2, 8, 8, 8])


def test_signature_is_stable_for_tuples_and_lists_and_changes_with_the_section():
    assert preprocessing_signature(SECTION) == preprocessing_signature({**SECTION, "crop_size": (4, 4, 4)})
    assert preprocessing_signature(SECTION) != preprocessing_signature({**SECTION, "crop_size": [4, 4, 5]})


def test_check_signatures_names_the_command_to_rerun(tmp_path):
    _write(tmp_path)
    _write(tmp_path, label=21, signature="other")
    properties = read_sample_properties(tmp_path)
    with pytest.raises(VfnetError) as caught:
        check_signatures(tmp_path, properties, SECTION, "vfnet_preprocess -d 1 -pl vfnetPlans")
    message = str(caught.value)
    assert "1 crop(s)" in message and "c1_21" in message and "vfnet_preprocess -d 1 -pl vfnetPlans" in message
    assert "\n" not in message
    check_signatures(tmp_path, properties[:1], SECTION, "unused")

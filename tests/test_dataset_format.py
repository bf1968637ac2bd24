"""Schema checks of dataset.json (vfnet.dataset.format): every problem collected, each message precise."""
import json

import pytest

from vfnet.dataset.format import load_raw_dataset, make_dataset_json, parse_dataset, write_dataset_json
from vfnet.errors import DatasetError


def _write(folder, cases, **changes):
    folder.mkdir(parents=True, exist_ok=True)
    data = make_dataset_json(folder.name, cases)
    data.update(changes)
    write_dataset_json(folder, data)
    return folder


def _messages(folder):
    return [str(problem) for problem in parse_dataset(folder)[1]]


GOOD = [{"case": "a", "patient": "p1", "vertebrae": {20: 0, 21: 1}}, {"case": "b", "vertebrae": {20: 2}}]


def test_good_schema_has_no_problems_and_loads(tmp_path):
    folder = _write(tmp_path / "Dataset001_T", GOOD)
    dataset, problems = parse_dataset(folder)
    assert problems == []
    assert [case.case_id for case in dataset.cases] == ["a", "b"]
    assert dataset.cases[0].grades == {20: 0, 21: 1} and dataset.cases[1].patient == "b"
    assert load_raw_dataset(folder).num_vertebrae == 3


def test_extra_entry_keys_are_kept(tmp_path):
    cases = [dict(GOOD[0], shapes={"21": 1}), GOOD[1]]
    folder = _write(tmp_path / "Dataset001_T", cases)
    entry = json.loads((folder / "dataset.json").read_text())["training"][0]
    assert entry["shapes"] == {"21": 1} and list(entry)[:3] == ["case", "patient", "vertebrae"]
    assert parse_dataset(folder)[1] == []


def test_not_json(tmp_path):
    folder = tmp_path / "Dataset001_T"
    folder.mkdir()
    (folder / "dataset.json").write_text("{broken")
    [message] = _messages(folder)
    assert "dataset.json" in message and "not valid JSON" in message


def test_missing_keys_are_named(tmp_path):
    folder = _write(tmp_path / "Dataset001_T", GOOD)
    data = json.loads((folder / "dataset.json").read_text())
    del data["grades"], data["numTraining"]
    (folder / "dataset.json").write_text(json.dumps(data))
    [message] = _messages(folder)
    assert "numTraining" in message and "grades" in message


@pytest.mark.parametrize("grade", [4, -1, "x", 2.5, "2", True, None])
def test_bad_grades(tmp_path, grade):
    cases = [GOOD[0], {"case": "b", "vertebrae": {20: 0}}]
    folder = _write(tmp_path / "Dataset001_T", cases)
    data = json.loads((folder / "dataset.json").read_text())
    data["training"][1]["vertebrae"]["20"] = grade
    (folder / "dataset.json").write_text(json.dumps(data))
    messages = _messages(folder)
    assert any("case b" in m and "is not a Genant grade" in m and repr(grade) in m for m in messages), messages


@pytest.mark.parametrize("case_id", ["../x", "/abs/x", "a/b", "..", ".hidden", ""])
def test_unsafe_case_ids(tmp_path, case_id):
    folder = _write(tmp_path / "Dataset001_T", GOOD + [{"case": case_id, "vertebrae": {20: 0}}])
    messages = _messages(folder)
    assert any(repr(case_id) in m and "not a safe file name" in m for m in messages), messages


def test_duplicate_case_ids(tmp_path):
    folder = _write(tmp_path / "Dataset001_T", GOOD + [{"case": "a", "vertebrae": {22: 0}}])
    assert any("case a" in m and "listed twice" in m for m in _messages(folder))


def test_num_training_disagrees(tmp_path):
    folder = _write(tmp_path / "Dataset001_T", GOOD, numTraining=5)
    assert any("numTraining is 5" in m and "lists 2" in m for m in _messages(folder))


def test_empty_dataset(tmp_path):
    folder = _write(tmp_path / "Dataset001_T", [])
    assert any("no training cases" in m for m in _messages(folder))


def test_single_grade(tmp_path):
    folder = _write(tmp_path / "Dataset001_T", [{"case": "a", "vertebrae": {20: 0, 21: 0}}])
    assert any("at least two different grades" in m for m in _messages(folder))


def test_unknown_vertebra_label(tmp_path):
    folder = _write(tmp_path / "Dataset001_T", GOOD + [{"case": "c", "vertebrae": {20: 0}}])
    data = json.loads((folder / "dataset.json").read_text())
    data["training"][2]["vertebrae"] = {"26": 0, "L1": 1}
    (folder / "dataset.json").write_text(json.dumps(data))
    messages = _messages(folder)
    assert any("case c" in m and "'26' is not a gradable" in m for m in messages)
    assert any("case c" in m and "'L1' is not a gradable" in m for m in messages)


def test_load_raw_dataset_lists_every_problem(tmp_path):
    folder = _write(tmp_path / "Dataset001_T", GOOD + [{"case": "a", "vertebrae": {20: 9}}], numTraining=1)
    with pytest.raises(DatasetError, match=r"2 problem\(s\)"):
        load_raw_dataset(folder)

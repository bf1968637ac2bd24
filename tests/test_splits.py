"""splits_final.json: grouped by patient, stratified by grade, seeded, user files validated and kept."""
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from vfnet.dataset.format import RawCase, RawDataset
from vfnet.errors import DatasetError
from vfnet.fileio import read_json, write_json
from vfnet.dataset.splits import ensure_splits, make_splits


def dataset(num_patients=30, cases_per_patient=(1, 2, 3)) -> RawDataset:
    """Patients with 1-3 CTs each; about a quarter of vertebrae fractured, mostly in some patients."""
    rng = np.random.default_rng(0)
    cases = []
    for patient in range(num_patients):
        for repeat in range(cases_per_patient[patient % len(cases_per_patient)]):
            grades = {label: int(rng.choice(4, p=[0.7, 0.1, 0.12, 0.08])) for label in range(16, 23)}
            cases.append(RawCase(f"case{patient:02d}_{repeat}", f"patient{patient:02d}", Path("x"), None, None, grades))
    return RawDataset(folder=Path("/data/Dataset001_X"), name="Dataset001_X", file_ending=".nii.gz",
                      description={}, cases=cases)


def test_no_patient_in_two_folds_and_every_case_validated_once():
    data = dataset()
    splits = make_splits(data)
    patient_of = {case.case_id: case.patient for case in data.cases}
    assert len(splits) == 5
    val_cases = [case for fold in splits for case in fold["val"]]
    assert sorted(val_cases) == sorted(patient_of)
    for fold in splits:
        assert not {patient_of[c] for c in fold["train"]} & {patient_of[c] for c in fold["val"]}
        assert sorted(fold["train"] + fold["val"]) == sorted(patient_of)
    fold_of_patient = {}
    for index, fold in enumerate(splits):
        for case in fold["val"]:
            assert fold_of_patient.setdefault(patient_of[case], index) == index


def test_grade_proportions_per_fold_follow_the_dataset():
    data = dataset(num_patients=60)
    grades_of = {case.case_id: list(case.grades.values()) for case in data.cases}
    overall = Counter(g for grades in grades_of.values() for g in grades)
    total = sum(overall.values())
    for fold in make_splits(data):
        counts = Counter(g for case in fold["val"] for g in grades_of[case])
        size = sum(counts.values())
        for grade in range(4):
            assert abs(counts[grade] / size - overall[grade] / total) < 0.06


def test_reproducible_and_independent_of_case_order():
    data = dataset()
    shuffled = RawDataset(data.folder, data.name, data.file_ending, {}, list(reversed(data.cases)))
    assert make_splits(data) == make_splits(data) == make_splits(shuffled)


def test_too_few_patients_is_a_clear_error():
    with pytest.raises(DatasetError, match="3 patient"):
        make_splits(dataset(num_patients=3))


def test_user_splits_are_kept_and_validated(tmp_path):
    data = dataset(num_patients=10, cases_per_patient=(1,))
    ids = [case.case_id for case in data.cases]
    custom = [{"train": ids[2 * i + 2:] + ids[:2 * i], "val": ids[2 * i:2 * i + 2]} for i in range(5)]
    write_json(tmp_path / "splits_final.json", custom)
    assert ensure_splits(tmp_path, data) == custom
    assert read_json(tmp_path / "splits_final.json") == custom
    leaking = [{"train": ids[1:], "val": ids[:2]}]
    write_json(tmp_path / "splits_final.json", leaking)
    with pytest.raises(DatasetError, match="both train and val"):
        ensure_splits(tmp_path, data)
    write_json(tmp_path / "splits_final.json", [{"train": ["nobody"], "val": ids}])
    with pytest.raises(DatasetError, match="unknown case"):
        ensure_splits(tmp_path, data)


def test_splits_are_written_when_absent(tmp_path):
    data = dataset()
    splits = ensure_splits(tmp_path, data)
    assert read_json(tmp_path / "splits_final.json") == splits

"""splits_final.json: five folds of case ids, stratified by grade and grouped by patient, seeded.

Stratification is done on vertebrae (the samples), grouping on patients, with scikit-learn's
StratifiedGroupKFold; each fold's validation set is then the cases of its patients. A file the user already put
there is validated and kept, as nnU-Net does.
"""
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from vfnet.dataset.format import RawDataset
from vfnet.errors import DatasetError
from vfnet.fileio import read_json, write_json

NUM_FOLDS = 5
SPLIT_SEED = 12345


def make_splits(dataset: RawDataset, num_folds: int = NUM_FOLDS, seed: int = SPLIT_SEED) -> list[dict[str, list[str]]]:
    patients = sorted({case.patient for case in dataset.cases})
    if len(patients) < num_folds:
        raise DatasetError(f"The dataset in {dataset.folder} has {len(patients)} patient(s); {num_folds}-fold "
                           f"cross-validation grouped by patient needs at least {num_folds}.")
    samples = [(case.case_id, case.patient, grade) for case in dataset.cases for grade in case.grades.values()]
    grades = np.array([grade for _, _, grade in samples])
    groups = np.array([patient for _, patient, _ in samples])
    splitter = StratifiedGroupKFold(n_splits=num_folds, shuffle=True, random_state=seed)
    all_cases = sorted(case.case_id for case in dataset.cases)
    splits = []
    with warnings.catch_warnings():
        # A grade rarer than the number of folds cannot be in every fold; that is expected, not a problem.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for _, val_index in splitter.split(np.zeros(len(samples)), grades, groups):
            val_patients = set(groups[val_index])
            val = {case.case_id for case in dataset.cases if case.patient in val_patients}
            splits.append({"train": [c for c in all_cases if c not in val], "val": sorted(val)})
    return splits


def validate_splits(splits: Any, dataset: RawDataset, path: Path) -> None:
    """A user-supplied split must name known cases, cover each once as validation, and not split a patient."""
    if not isinstance(splits, list) or not splits or not all(
            isinstance(fold, dict) and isinstance(fold.get("train"), list) and isinstance(fold.get("val"), list)
            for fold in splits):
        raise DatasetError(f"splits file {path} must be a list of {{\"train\": [case ids], \"val\": [case ids]}}.")
    patient_of = {case.case_id: case.patient for case in dataset.cases}
    seen_in_val: list[str] = []
    for index, fold in enumerate(splits):
        unknown = sorted({str(c) for c in fold["train"] + fold["val"]} - set(patient_of))
        if unknown:
            raise DatasetError(f"splits file {path}: fold {index} names unknown case(s) {unknown[:5]}.")
        overlap = {patient_of[c] for c in fold["train"]} & {patient_of[c] for c in fold["val"]}
        if overlap:
            raise DatasetError(f"splits file {path}: fold {index} has patient(s) {sorted(overlap)[:5]} in both "
                               f"train and val.")
        seen_in_val.extend(fold["val"])
    if len(splits) > 1 and sorted(seen_in_val) != sorted(patient_of):
        raise DatasetError(f"splits file {path}: the validation sets must cover every case exactly once.")


def load_splits(path: Path) -> list[dict[str, list[str]]]:
    """Read splits_final.json for training: a list of {"train": [...], "val": [...]} folds."""
    splits = read_json(path, "Splits file")
    if not isinstance(splits, list) or not all(isinstance(s, dict) and "train" in s and "val" in s for s in splits):
        raise DatasetError(f"Splits file {path} must be a list of {{\"train\": [...], \"val\": [...]}} folds.")
    return splits


def ensure_splits(folder: Path, dataset: RawDataset, seed: int = SPLIT_SEED) -> list[dict[str, list[str]]]:
    """Return `folder/splits_final.json`, validating an existing one, else creating and writing it."""
    path = Path(folder) / "splits_final.json"
    if path.exists():
        splits = read_json(path, "splits file")
        validate_splits(splits, dataset, path)
        return splits
    splits = make_splits(dataset, seed=seed)
    write_json(path, splits)
    return splits

"""Inputs of a training run: one fold's preprocessed crops, held in memory.

Crops are small (a few hundred KB each in float16), so a fold fits in RAM; batches are gathered by index
without worker processes, which on two CPU cores only compete with the training step.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vfnet.errors import VfnetError
from vfnet.fileio import read_json


@dataclass
class SampleSet:
    ids: list[str]
    properties: list[dict[str, Any]]
    arrays: np.ndarray          # (N, C, Z, Y, X) float16, as stored
    grades: np.ndarray          # (N,) int64

    def __len__(self) -> int:
        return len(self.ids)


def read_splits(path: Path) -> list[dict[str, list[str]]]:
    splits = read_json(path, "Splits file")
    if not isinstance(splits, list) or not all(isinstance(s, dict) and "train" in s and "val" in s for s in splits):
        raise VfnetError(f"Splits file {path} must be a list of {{\"train\": [...], \"val\": [...]}} folds.")
    return splits


def _graded_properties(folder: Path) -> list[dict[str, Any]]:
    if not folder.is_dir():
        raise VfnetError(f"Preprocessed folder {folder} does not exist; run vfnet_plan_and_preprocess first.")
    properties = [read_json(path, "Sample properties") for path in sorted(folder.glob("*.json"))]
    return [p for p in properties if p.get("grade") is not None]


def _load_samples(folder: Path, properties: list[dict[str, Any]], shape: list[int]) -> SampleSet:
    arrays = np.empty((len(properties), *shape), dtype=np.float16)
    for index, sample in enumerate(properties):
        path = folder / f"{sample['sample']}.npy"
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise VfnetError(f"Preprocessed crop {path} cannot be read: {error}.") from None
        if list(array.shape) != shape:
            raise VfnetError(f"Preprocessed crop {path} has shape {list(array.shape)}, the plan expects {shape}; "
                             f"preprocess again with this plan.")
        arrays[index] = array
    grades = np.array([int(p["grade"]) for p in properties], dtype=np.int64)
    if grades.size and (grades.min() < 0 or grades.max() > 3):
        raise VfnetError(f"Samples in {folder} hold grades outside 0-3.")
    return SampleSet([p["sample"] for p in properties], properties, arrays, grades)


def load_fold(dataset_folder: Path, plans: dict[str, Any], fold: int | str) -> tuple[SampleSet, SampleSet | None]:
    """Training and validation samples of `fold` (an int, or "all": everything trains, no validation set)."""
    folder = dataset_folder / plans["data_identifier"]
    properties = _graded_properties(folder)
    preprocessing = plans["preprocessing"]
    shape = [int(preprocessing["num_input_channels"]), *[int(n) for n in preprocessing["crop_size"]]]
    if fold == "all":
        train, val = properties, None
    else:
        splits_path = dataset_folder / "splits_final.json"
        splits = read_splits(splits_path)
        if not 0 <= int(fold) < len(splits):
            raise VfnetError(f"Fold {fold} does not exist: {splits_path} holds {len(splits)} folds.")
        train_cases, val_cases = set(splits[int(fold)]["train"]), set(splits[int(fold)]["val"])
        train = [p for p in properties if p["case"] in train_cases]
        val = [p for p in properties if p["case"] in val_cases]
        if not val:
            raise VfnetError(f"Fold {fold} of {splits_path} has no graded validation sample in {folder}.")
    if not train:
        raise VfnetError(f"Fold {fold} has no graded training sample in {folder}.")
    return _load_samples(folder, train, shape), (_load_samples(folder, val, shape) if val is not None else None)

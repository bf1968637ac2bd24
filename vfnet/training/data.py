"""Inputs of a training run: one fold's preprocessed crops, checked against the plan and held in memory.

Crops are small (a few hundred KB each in float16), so a fold fits in RAM; batches are gathered by index
without worker processes, which on two CPU cores only compete with the training step.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vfnet.dataset.splits import load_splits
from vfnet.errors import VfnetError
from vfnet.morphometry.genant import morphometry_inputs
from vfnet.planning.plans import morphometric_features
from vfnet.preprocessing.samples import check_signatures, load_arrays, read_sample_properties

SPLITS_FILE = "splits_final.json"


@dataclass
class SampleSet:
    ids: list[str]
    properties: list[dict[str, Any]]
    arrays: np.ndarray          # (N, C, Z, Y, X) float16, as stored
    grades: np.ndarray          # (N,) int64
    morphometry: np.ndarray | None = None  # (N, 2F) float32 morphometric-branch inputs (values, availability)
    left_out: list[str] = field(default_factory=list)   # partial vertebrae not trained on (min_fraction_in_view)

    def __len__(self) -> int:
        return len(self.ids)


def _load_samples(folder: Path, properties: list[dict[str, Any]], shape: list[int],
                  feature_names: list[str]) -> SampleSet:
    arrays = load_arrays(folder, [p["sample"] for p in properties], shape)
    grades = np.array([int(p["grade"]) for p in properties], dtype=np.int64)
    if grades.size and (grades.min() < 0 or grades.max() > 3):
        raise VfnetError(f"Samples in {folder} hold grades outside 0-3.")
    morphometry = morphometry_inputs(properties, feature_names) if feature_names else None
    return SampleSet([p["sample"] for p in properties], properties, arrays, grades, morphometry)


def in_view(properties: dict[str, Any], min_fraction: float) -> bool:
    # Crops written before fraction_in_view existed count as whole.
    return float(properties.get("fraction_in_view", 1.0)) >= min_fraction


def load_fold(dataset_folder: Path, plans: dict[str, Any], fold: int | str) -> tuple[SampleSet, SampleSet | None]:
    """Training and validation samples of `fold` (an int, or "all": everything trains, no validation set).

    Every crop must have been made with the plan's preprocessing section. Vertebrae seen less than
    `training.min_fraction_in_view` are left out of training (`left_out` of the training set) but kept for
    validation, because prediction still grades them (and flags them).
    """
    folder = dataset_folder / plans["data_identifier"]
    properties = [p for p in read_sample_properties(folder) if p.get("grade") is not None]
    preprocessing = plans["preprocessing"]
    check_signatures(folder, properties, preprocessing,
                     f"vfnet_preprocess -d {dataset_folder.name} -pl {plans.get('plans_name', 'vfnetPlans')}")
    shape = [int(preprocessing["num_input_channels"]), *[int(n) for n in preprocessing["crop_size"]]]
    if fold == "all":
        train, val = properties, None
    else:
        splits_path = dataset_folder / SPLITS_FILE
        splits = load_splits(splits_path)
        if not 0 <= int(fold) < len(splits):
            raise VfnetError(f"Fold {fold} does not exist: {splits_path} holds {len(splits)} folds.")
        train_cases, val_cases = set(splits[int(fold)]["train"]), set(splits[int(fold)]["val"])
        train = [p for p in properties if p["case"] in train_cases]
        val = [p for p in properties if p["case"] in val_cases]
        if not val:
            raise VfnetError(f"Fold {fold} of {splits_path} has no graded validation sample in {folder}.")
    min_fraction = float(plans["training"].get("min_fraction_in_view", 0.0))
    left_out = [p["sample"] for p in train if not in_view(p, min_fraction)]
    train = [p for p in train if in_view(p, min_fraction)]
    if not train:
        raise VfnetError(f"Fold {fold} has no graded training sample in {folder}" +
                         (f" seen at least {min_fraction:.0%} in the field of view (training.min_fraction_in_view)."
                          if left_out else "."))
    feature_names = morphometric_features(plans)
    train_set = _load_samples(folder, train, shape, feature_names)
    train_set.left_out = left_out
    return train_set, (_load_samples(folder, val, shape, feature_names) if val is not None else None)

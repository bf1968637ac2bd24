"""One trained configuration (a `<trainer>__<plans>` model folder): its pooled out-of-fold predictions, checked.

Checks that make a comparison meaningless if they fail: the folder belongs to the dataset, every fold's checkpoint
was trained with the folder's plans.json, and every fold was validated on the split it claims (splits_final.json).
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vfnet.errors import CheckpointError, VfnetError
from vfnet.evaluation.cv_summary import NUM_FOLDS, load_folds
from vfnet.evaluation.tables import Key
from vfnet.inference.ensemble import check_against_plans, checkpoint_path
from vfnet.model.checkpoint import load_checkpoint
from vfnet.paths import MODEL_FOLDER_SEPARATOR, model_folders, validation_predictions_file
from vfnet.planning.plans import load_plans

DEFAULT_CHECKPOINT = "checkpoint_final"  # what the trainer validates with when metrics.json does not say


@dataclass
class Configuration:
    name: str                    # the model folder's name, <trainer>__<plans>
    folder: Path
    trainer: str
    plans_name: str
    plans: dict[str, Any]
    checkpoint: str              # the checkpoint that made the out-of-fold predictions
    folds: list[int]
    keys: list[Key]              # (case, vertebra) of each out-of-fold row
    fold_of: np.ndarray          # (N,) the fold whose validation set holds the row
    reference: np.ndarray        # (N,) reference grades
    probabilities: np.ndarray    # (N, 4)
    patients: np.ndarray         # (N,) patient (or case) ids, for the patient-level bootstrap


def trained_configurations(dataset_results: Path) -> list[Path]:
    """Model folders with the out-of-fold predictions of at least one numbered fold."""
    return [folder for folder in model_folders(dataset_results)
            if any(validation_predictions_file(folder, fold).is_file() for fold in range(NUM_FOLDS))]


def load_configuration(folder: Path, dataset_name: str, allow_missing_folds: bool,
                       splits: list[dict[str, list[str]]] | None, splits_path: Path | None) -> Configuration:
    trainer, separator, plans_name = folder.name.rpartition(MODEL_FOLDER_SEPARATOR)
    if not separator or not trainer or not plans_name:
        raise VfnetError(f"{folder} is not named <trainer>{MODEL_FOLDER_SEPARATOR}<plans>: rename it or leave it "
                         f"out with -c.")
    plans = load_plans(folder / "plans.json")
    if plans.get("dataset_name") != dataset_name:
        raise VfnetError(f"{folder / 'plans.json'} belongs to dataset {plans.get('dataset_name')!r}, not "
                         f"{dataset_name}: move that model folder to its own dataset's results or leave it out "
                         f"with -c.")
    folds, _ = load_folds(folder, allow_missing_folds)
    checkpoint = _checkpoint_name(folder, [fold.checkpoint for fold in folds])
    for fold in folds:
        _check_checkpoint(folder, int(fold.fold), checkpoint, plans)
        if splits is not None:
            _check_split(folder, int(fold.fold), {case for case, _ in fold.keys}, splits, splits_path)
    return Configuration(
        name=folder.name, folder=folder, trainer=trainer, plans_name=plans_name, plans=plans, checkpoint=checkpoint,
        folds=[int(fold.fold) for fold in folds], keys=[key for fold in folds for key in fold.keys],
        fold_of=np.concatenate([np.full(len(fold.keys), int(fold.fold)) for fold in folds]),
        reference=np.concatenate([fold.reference for fold in folds]),
        probabilities=np.concatenate([fold.probabilities for fold in folds]),
        patients=np.array([patient for fold in folds for patient in fold.patients]))


def _checkpoint_name(folder: Path, recorded: list[str | None]) -> str:
    names = sorted({name or DEFAULT_CHECKPOINT for name in recorded})
    if len(names) > 1:
        raise VfnetError(f"The folds of {folder} were validated with different checkpoints ({', '.join(names)}) "
                         f"according to their validation/metrics.json: validate every fold with the same one.")
    return names[0]


def _check_checkpoint(folder: Path, fold: int, checkpoint: str, plans: dict[str, Any]) -> None:
    """vfnet_predict will use this checkpoint with plans.json: it must exist and have been trained with them."""
    path = checkpoint_path(folder, fold, checkpoint)
    if not path.is_file():
        raise VfnetError(f"{path} is missing although fold {fold} has validation predictions: vfnet_predict needs "
                         f"it, so restore or retrain that fold (or leave the configuration out with -c).")
    try:
        check_against_plans(load_checkpoint(path), plans, path)
    except CheckpointError as error:
        raise VfnetError(f"{str(error).rstrip('.')}; retrain fold {fold} with that plans.json or leave the "
                         f"configuration out with -c.") from None


def _check_split(folder: Path, fold: int, cases: set[str], splits: list[dict[str, list[str]]],
                 splits_path: Path | None) -> None:
    expected = set(splits[fold]["val"]) if fold < len(splits) else set()
    strangers = sorted(cases - expected)
    if strangers:
        raise VfnetError(f"{validation_predictions_file(folder, fold)} holds case {strangers[0]}, which is not in "
                         f"fold {fold}'s validation set of {splits_path}: that fold was trained on other splits; "
                         f"retrain it with the current splits or leave the configuration out with -c.")

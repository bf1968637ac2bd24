"""Put the configurations' out-of-fold predictions side by side, row for row, and refuse what cannot be compared.

A paired comparison and an ensemble of out-of-fold predictions are honest only when every configuration held out
the same vertebrae in the same fold (same splits) against the same reference grades (same dataset).
"""
from dataclasses import dataclass

import numpy as np

from vfnet.errors import VfnetError
from vfnet.evaluation.tables import Key
from vfnet.paths import validation_predictions_file
from vfnet.selection.configurations import Configuration


@dataclass
class PooledPredictions:
    keys: list[Key]
    folds: list[int]                      # the folds every configuration has
    reference: np.ndarray                 # (N,)
    patients: np.ndarray                  # (N,)
    probabilities: dict[str, np.ndarray]  # configuration name -> (N, 4), rows in `keys` order
    fold_of: np.ndarray                   # (N,) the fold that held each row out

    @property
    def num_patients(self) -> int:
        return int(np.unique(self.patients).size)


def align(configurations: list[Configuration]) -> PooledPredictions:
    """Rows of the folds common to all configurations (all five unless --allow_missing_folds), in one order."""
    folds = sorted(set.intersection(*(set(c.folds) for c in configurations)))
    if not folds:
        names = "; ".join(f"{c.name}: {', '.join(map(str, c.folds))}" for c in configurations)
        raise VfnetError(f"The configurations share no validated fold ({names}): train a common fold or choose "
                         f"configurations with -c.")
    first = configurations[0]
    chosen = np.isin(first.fold_of, folds)
    keys = [key for key, keep in zip(first.keys, chosen) if keep]
    fold_of, reference, patients = first.fold_of[chosen], first.reference[chosen], first.patients[chosen]
    probabilities = {first.name: first.probabilities[chosen]}
    for other in configurations[1:]:
        row_of = {key: index for index, key in enumerate(other.keys) if other.fold_of[index] in folds}
        rows = []
        for key, fold, grade in zip(keys, fold_of, reference):
            index = row_of.pop(key, None)
            if index is None:
                raise VfnetError(f"{_where(other, None)} has no out-of-fold prediction for case {key[0]} vertebra "
                                 f"{key[1]}, which {first.name} validated in fold {fold}: both must be trained on "
                                 f"the same splits and crops; retrain one or leave it out with -c.")
            if other.fold_of[index] != fold:
                raise VfnetError(f"{_where(other, int(other.fold_of[index]))} holds case {key[0]} vertebra {key[1]}, "
                                 f"which {first.name} validated in fold {fold}: the two were trained on different "
                                 f"splits; retrain one with the same splits_final.json or leave it out with -c.")
            if other.reference[index] != grade:
                raise VfnetError(f"{_where(other, int(fold))}: case {key[0]} vertebra {key[1]} has reference grade "
                                 f"{other.reference[index]}, but {grade} in {first.name}: the two were trained on "
                                 f"different versions of the dataset; retrain one or leave it out with -c.")
            rows.append(index)
        if row_of:
            case, vertebra = next(iter(row_of))
            raise VfnetError(f"{_where(other, int(other.fold_of[row_of[(case, vertebra)]]))} holds case {case} "
                             f"vertebra {vertebra}, which {first.name} never validated: the two were trained on "
                             f"different splits or crops; retrain one or leave it out with -c.")
        probabilities[other.name] = other.probabilities[rows]
    return PooledPredictions(keys, folds, reference, patients, probabilities, fold_of)


def _where(configuration: Configuration, fold: int | None) -> str:
    """The file an error is about: the fold's predictions.csv where known, else the model folder."""
    return str(configuration.folder if fold is None else validation_predictions_file(configuration.folder, fold))

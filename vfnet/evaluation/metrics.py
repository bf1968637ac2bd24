"""Classification metrics for Genant grades, computed with scikit-learn.

Definitions (stated once, used by every report):
- predicted grade = argmax of the four probabilities; binary screening = grade >= 1, scored with
  p_fracture = 1 - p0, and the binary decision is "predicted grade >= 1" (consistent with the confusion matrix);
- macro_f1 averages the F1 of the grades *present in the reference* (sklearn's `f1_score(labels=present)`),
  so a grade a dataset lacks does not drag the mean to 0; per_class_f1 lists all four grades and is None for a
  grade that appears neither in the reference nor in the predictions (its F1 is undefined);
- a metric that is undefined for the input (e.g. ROC-AUC with one class in the reference) is None, never NaN,
  because JSON cannot hold NaN.
"""
import math
import warnings
from typing import Any

import numpy as np
from sklearn.metrics import (accuracy_score, average_precision_score, cohen_kappa_score, confusion_matrix,
                             f1_score, recall_score, roc_auc_score)

from vfnet.evaluation.bootstrap import bootstrap_intervals  # part of this module's interface (architecture.md)
from vfnet.evaluation.inputs import GRADES, validate_inputs

__all__ = ["classification_metrics", "bootstrap_intervals", "validate_inputs", "GRADES"]


def _none_if_nan(value: float | None) -> float | None:
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


def classification_metrics(reference: Any, probabilities: Any) -> dict[str, Any]:
    """Grade and binary (fracture yes/no) metrics of one set of predictions; see the module docstring."""
    reference, probabilities = validate_inputs(reference, probabilities)
    predicted = probabilities.argmax(axis=1)
    present = sorted(set(reference.tolist()))
    per_class = f1_score(reference, predicted, labels=GRADES, average=None, zero_division=0)
    seen = set(present) | set(predicted.tolist())

    binary_reference = (reference >= 1).astype(int)
    binary_predicted = (predicted >= 1).astype(int)
    fracture_score = 1.0 - probabilities[:, 0]
    both_classes = 0 < binary_reference.sum() < binary_reference.size
    has_positive = binary_reference.sum() > 0
    has_negative = binary_reference.sum() < binary_reference.size

    return {
        "n": int(reference.size),
        "accuracy": float(accuracy_score(reference, predicted)),
        "macro_f1": float(f1_score(reference, predicted, labels=present, average="macro", zero_division=0)),
        "per_class_f1": {str(g): (float(per_class[g]) if g in seen else None) for g in GRADES},
        "binary_sensitivity": (float(recall_score(binary_reference, binary_predicted, pos_label=1, zero_division=0))
                               if has_positive else None),
        "binary_specificity": (float(recall_score(binary_reference, binary_predicted, pos_label=0, zero_division=0))
                               if has_negative else None),
        "binary_roc_auc": float(roc_auc_score(binary_reference, fracture_score)) if both_classes else None,
        "binary_pr_auc": float(average_precision_score(binary_reference, fracture_score)) if both_classes else None,
        # Kappa is 0/0 when reference and prediction are the same constant: sklearn returns NaN -> None.
        "qwk": _none_if_nan(quadratic_kappa(reference, predicted)),
        "confusion_matrix": confusion_matrix(reference, predicted, labels=GRADES).tolist(),
    }


def quadratic_kappa(reference: np.ndarray, predicted: np.ndarray) -> float:
    """Quadratic-weighted kappa over grades 0-3; NaN where it is undefined (e.g. one grade on both sides)."""
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")  # "undefined" warnings: the caller reports None instead
        return float(cohen_kappa_score(reference, predicted, labels=GRADES, weights="quadratic"))

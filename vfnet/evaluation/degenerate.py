"""A degenerate classifier: one grade predicted for every vertebra of a set that holds several grades."""
import numpy as np


def single_grade_reason(probabilities: np.ndarray | None, grades: np.ndarray | None) -> str | None:
    """'predicts grade g for every one of the n ...' when the reference holds several grades; else None."""
    if probabilities is None or grades is None or len(grades) == 0:
        return None
    predicted = np.unique(np.asarray(probabilities).argmax(axis=1))
    if len(predicted) == 1 and len(np.unique(grades)) > 1:
        return f"it predicts grade {int(predicted[0])} for every one of the {len(grades)} validation vertebrae"
    return None

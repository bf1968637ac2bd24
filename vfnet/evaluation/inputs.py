"""Checks shared by the metric functions: reference grades and (N, 4) probabilities."""
from typing import Any

import numpy as np

from vfnet.errors import VfnetError
from vfnet.labels import NUM_GRADES

GRADES = list(range(NUM_GRADES))


def validate_inputs(reference: Any, probabilities: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return (reference int (N,), probabilities float (N, 4)) or raise VfnetError saying what is wrong."""
    reference = np.asarray(reference)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if reference.ndim != 1 or reference.size == 0:
        raise VfnetError(f"Reference grades must be a non-empty 1-D array, got shape {reference.shape}.")
    if probabilities.shape != (reference.size, NUM_GRADES):
        raise VfnetError(f"Probabilities must have shape ({reference.size}, {NUM_GRADES}) to match the reference, "
                         f"got {probabilities.shape}.")
    if not np.all(np.isin(reference, GRADES)):
        raise VfnetError(f"Reference grades must be integers 0-3, got {sorted(set(reference.tolist()))}.")
    if not np.all(np.isfinite(probabilities)):
        raise VfnetError("Probabilities contain NaN or infinite values.")
    return reference.astype(np.int64), probabilities

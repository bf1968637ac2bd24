"""The binary operating point: grade >= 1 by default, or a threshold on calibrated p_fracture chosen on the
out-of-fold predictions for a target sensitivity (the highest threshold that still reaches it, so that
specificity is as high as the target allows)."""
import math
from typing import Any

import numpy as np

from vfnet.errors import VfnetError


def _rates(reference: np.ndarray, positive_call: np.ndarray) -> dict[str, float | None]:
    fractured = reference >= 1
    return {"sensitivity": float(positive_call[fractured].mean()) if fractured.any() else None,
            "specificity": float((~positive_call[~fractured]).mean()) if (~fractured).any() else None}


def argmax_operating_point(reference: np.ndarray, calibrated: np.ndarray) -> dict[str, Any]:
    """What `fracture` means without a threshold: the predicted grade is 1 or more."""
    return {"rule": "grade >= 1", **_rates(reference, calibrated.argmax(axis=1) >= 1)}


def threshold_for_sensitivity(reference: np.ndarray, calibrated: np.ndarray, target: float,
                              source: str) -> dict[str, Any]:
    """`fracture = p_fracture >= threshold`, with its out-of-fold sensitivity (>= target) and specificity."""
    p_fracture = 1.0 - calibrated[:, 0]
    positives = np.sort(p_fracture[reference >= 1])[::-1]
    if positives.size == 0:
        raise VfnetError(f"The out-of-fold predictions of {source} hold no fractured vertebra (reference grade >= 1), "
                         f"so no threshold can reach a sensitivity: leave out --target_sensitivity.")
    # The k-th highest p_fracture among fractured vertebrae: p >= it catches at least k of them.
    threshold = float(positives[math.ceil(target * positives.size - 1e-9) - 1])
    return {"rule": "p_fracture >= threshold", "threshold": threshold, "target_sensitivity": target,
            **_rates(reference, p_fracture >= threshold)}

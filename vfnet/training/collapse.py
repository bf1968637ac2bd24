"""The collapse guard: a fold that does not learn is found early and restarted with another seed.

Seen in the demo: a fold's training loss stayed flat and it predicted grade 0 for every validation vertebra for
all its epochs, yet it finished and became a fifth of the ensemble. Two signs, checked once after the plan's
`collapse_check_fraction` of the epochs: the training loss has not fallen by `collapse_min_loss_drop` of its
first epoch's value, or the network predicts one grade for every validation vertebra although the fold
holds several.
"""
from typing import Sequence

import numpy as np

from vfnet.evaluation.degenerate import single_grade_reason


def collapse_reason(train_losses: Sequence[float], validation_probabilities: np.ndarray | None,
                    validation_grades: np.ndarray | None, min_loss_drop: float) -> str | None:
    """Why the run looks collapsed, or None. `train_losses` are the epochs' mean training CE so far."""
    losses = [float(loss) for loss in train_losses if loss is not None]
    if len(losses) >= 2:
        recent = float(np.mean(losses[-3:]))
        if recent > (1.0 - min_loss_drop) * losses[0]:
            return (f"the training loss has not fallen (first epoch {losses[0]:.3f}, last epochs {recent:.3f}; "
                    f"at least {min_loss_drop:.0%} lower expected)")
    return single_grade_reason(validation_probabilities, validation_grades)

"""The collapse guard: a fold that does not learn is found early and restarted with another seed.

Seen in the demo: a fold's training loss stayed flat and it predicted grade 0 for every validation vertebra for
all its epochs, yet it finished and became a fifth of the ensemble. Checked once after the plan's
`collapse_check_fraction` of the epochs: the network predicts one grade for every validation vertebra although
the fold holds several; or the training loss has not fallen by `collapse_min_loss_drop` of its first epoch's
value AND the validation grades show no ordinal agreement (quadratic kappa at most NO_AGREEMENT_KAPPA). The loss
alone is no sign: with the Genant prior a network starts from the radiologist's rule, its loss starts low and may
barely fall while it grades well (a demo fold at validation macro-F1 0.83 was restarted for it).
"""
from typing import Sequence

import numpy as np

from vfnet.evaluation.degenerate import single_grade_reason
from vfnet.evaluation.metrics import quadratic_kappa

NO_AGREEMENT_KAPPA = 0.1


def collapse_reason(train_losses: Sequence[float], validation_probabilities: np.ndarray | None,
                    validation_grades: np.ndarray | None, min_loss_drop: float) -> str | None:
    """Why the run looks collapsed, or None. `train_losses` are the epochs' mean training CE so far."""
    single_grade = single_grade_reason(validation_probabilities, validation_grades)
    if single_grade:
        return single_grade
    losses = [float(loss) for loss in train_losses if loss is not None]
    if len(losses) < 2:
        return None
    recent = float(np.mean(losses[-3:]))
    if recent <= (1.0 - min_loss_drop) * losses[0]:
        return None
    kappa = _validation_kappa(validation_probabilities, validation_grades)
    if kappa is not None and kappa > NO_AGREEMENT_KAPPA:
        return None
    return (f"the training loss has not fallen (first epoch {losses[0]:.3f}, last epochs {recent:.3f}; at least "
            f"{min_loss_drop:.0%} lower expected)" + (f" and the validation grades do not agree with the reference "
                                                      f"(quadratic kappa {kappa:.2f})" if kappa is not None else ""))


def _validation_kappa(probabilities: np.ndarray | None, grades: np.ndarray | None) -> float | None:
    if probabilities is None or grades is None or len(grades) == 0:
        return None
    kappa = quadratic_kappa(np.asarray(grades), np.asarray(probabilities).argmax(axis=1))
    return None if np.isnan(kappa) else kappa

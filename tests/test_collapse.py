"""The collapse guard's rule: a flat loss alone is no collapse when the validation grades agree with the reference."""
import numpy as np

from vfnet.training.collapse import collapse_reason

GRADES = np.array([0, 0, 0, 0, 1, 1, 2, 2, 3, 3])


def _probabilities(predicted):
    return np.eye(4)[np.asarray(predicted)]


def test_a_flat_loss_with_good_validation_grades_is_no_collapse():
    # The Genant prior starts the network at the radiologist's rule: low loss from the first epoch.
    assert collapse_reason([0.82, 0.81, 0.82, 0.81], _probabilities(GRADES), GRADES, 0.05) is None


def test_a_flat_loss_with_grades_that_do_not_agree_is_a_collapse():
    unrelated = [0, 3, 2, 1, 0, 3, 0, 1, 0, 2]
    reason = collapse_reason([3.5, 3.5, 3.49, 3.5], _probabilities(unrelated), GRADES, 0.05)
    assert reason is not None and "has not fallen" in reason and "kappa" in reason


def test_one_grade_for_all_is_a_collapse_even_while_the_loss_falls():
    reason = collapse_reason([3.5, 2.0, 1.0], _probabilities([0] * 10), GRADES, 0.05)
    assert reason is not None and "grade" in reason


def test_a_falling_loss_with_varied_grades_is_no_collapse():
    assert collapse_reason([3.5, 2.0, 1.0], _probabilities([0, 0, 1, 0, 1, 2, 2, 3, 3, 2]), GRADES, 0.05) is None


def test_without_validation_a_flat_loss_is_enough():
    assert collapse_reason([3.5, 3.5, 3.5], None, None, 0.05) is not None

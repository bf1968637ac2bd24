"""Metrics equal scikit-learn's, a hand-worked example, undefined cases, and the bootstrap intervals."""
import json

import numpy as np
import pytest
from sklearn.metrics import (accuracy_score, average_precision_score, cohen_kappa_score, confusion_matrix,
                             f1_score, roc_auc_score)

from vfnet.errors import VfnetError
from vfnet.evaluation.bootstrap import metrics_from_weights
from vfnet.evaluation.metrics import bootstrap_intervals, classification_metrics


def random_predictions(seed: int, size: int = 120):
    rng = np.random.default_rng(seed)
    reference = rng.integers(0, 4, size)
    logits = rng.normal(size=(size, 4))
    logits[np.arange(size), reference] += 1.5  # better than chance, not perfect
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return reference, np.round(probabilities, 2)  # rounding creates ties in p_fracture


def test_hand_worked_example():
    reference = [0, 0, 1, 2, 3]
    probabilities = [[0.9, 0.1, 0, 0],      # 0 -> 0
                     [0.2, 0.7, 0.1, 0],    # 0 -> 1 (false positive)
                     [0.3, 0.6, 0.1, 0],    # 1 -> 1
                     [0.1, 0.1, 0.2, 0.6],  # 2 -> 3
                     [0.05, 0, 0.05, 0.9]]  # 3 -> 3
    metrics = classification_metrics(reference, probabilities)
    assert metrics["n"] == 5
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["confusion_matrix"] == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]]
    # F1 per grade: 0: tp1 fp0 fn1 -> 2/3; 1: tp1 fp1 fn0 -> 2/3; 2: 0; 3: tp1 fp1 fn0 -> 2/3
    assert metrics["per_class_f1"] == pytest.approx({"0": 2 / 3, "1": 2 / 3, "2": 0.0, "3": 2 / 3})
    assert metrics["macro_f1"] == pytest.approx(0.5)
    assert metrics["binary_sensitivity"] == 1.0 and metrics["binary_specificity"] == 0.5
    # p_fracture: negatives 0.1, 0.8; positives 0.7, 0.9, 0.95 -> 5 of 6 pairs ordered correctly.
    assert metrics["binary_roc_auc"] == pytest.approx(5 / 6)
    # Quadratic kappa: observed disagreement sum (1 + 1) / expected sum from the marginals.
    observed = np.array(metrics["confusion_matrix"], float)
    weights = (np.arange(4)[:, None] - np.arange(4)[None, :]) ** 2
    expected = np.outer(observed.sum(1), observed.sum(0)) / 5
    assert metrics["qwk"] == pytest.approx(1 - (weights * observed).sum() / (weights * expected).sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_scikit_learn(seed):
    reference, probabilities = random_predictions(seed)
    predicted = probabilities.argmax(axis=1)
    metrics = classification_metrics(reference, probabilities)
    present = sorted(set(reference))
    assert metrics["accuracy"] == pytest.approx(accuracy_score(reference, predicted))
    assert metrics["macro_f1"] == pytest.approx(f1_score(reference, predicted, labels=present, average="macro"))
    assert [metrics["per_class_f1"][str(g)] for g in range(4)] == pytest.approx(
        list(f1_score(reference, predicted, labels=[0, 1, 2, 3], average=None, zero_division=0)))
    assert metrics["qwk"] == pytest.approx(cohen_kappa_score(reference, predicted, weights="quadratic"))
    assert metrics["binary_roc_auc"] == pytest.approx(roc_auc_score(reference >= 1, 1 - probabilities[:, 0]))
    assert metrics["binary_pr_auc"] == pytest.approx(
        average_precision_score(reference >= 1, 1 - probabilities[:, 0]))
    assert metrics["confusion_matrix"] == confusion_matrix(reference, predicted, labels=[0, 1, 2, 3]).tolist()
    json.dumps(metrics, allow_nan=False)


def test_undefined_metrics_are_none_and_json_safe():
    metrics = classification_metrics([0, 0, 0], [[0.9, 0.1, 0, 0]] * 3)
    assert metrics["binary_roc_auc"] is None and metrics["binary_pr_auc"] is None
    assert metrics["binary_sensitivity"] is None and metrics["qwk"] is None
    assert metrics["per_class_f1"]["2"] is None and metrics["accuracy"] == 1.0
    json.dumps(metrics, allow_nan=False)
    intervals = bootstrap_intervals([0, 0, 0], [[0.9, 0.1, 0, 0]] * 3, n=50)
    assert intervals["binary_roc_auc"] is None and intervals["accuracy"] == [1.0, 1.0]


def test_bad_inputs_raise_vfnet_errors():
    with pytest.raises(VfnetError, match="shape"):
        classification_metrics([0, 1], [[1, 0, 0, 0]])
    with pytest.raises(VfnetError, match="0-3"):
        classification_metrics([0, 5], [[1, 0, 0, 0]] * 2)
    with pytest.raises(VfnetError, match="NaN"):
        classification_metrics([0, 1], [[np.nan, 0, 0, 0]] * 2)


def test_vectorised_resample_metrics_equal_sklearn_on_repeated_samples():
    reference, probabilities = random_predictions(3, size=80)
    rng = np.random.default_rng(0)
    for _ in range(5):
        counts = rng.integers(0, 3, reference.size)
        repeated = np.repeat(np.arange(reference.size), counts)
        expected = classification_metrics(reference[repeated], probabilities[repeated])
        fast = metrics_from_weights(reference, probabilities, counts[None].astype(float))
        for name in ("accuracy", "macro_f1", "binary_sensitivity", "binary_specificity", "binary_roc_auc",
                     "binary_pr_auc", "qwk"):
            assert fast[name][0] == pytest.approx(expected[name]), name
        for grade in range(4):
            assert fast[f"f1_grade_{grade}"][0] == pytest.approx(expected["per_class_f1"][str(grade)])


def test_bootstrap_contains_the_estimate_and_is_reproducible():
    reference, probabilities = random_predictions(4, size=300)
    point = classification_metrics(reference, probabilities)
    first = bootstrap_intervals(reference, probabilities, n=1000, seed=7)
    assert first == bootstrap_intervals(reference, probabilities, n=1000, seed=7)
    assert first != bootstrap_intervals(reference, probabilities, n=1000, seed=8)
    for name in ("accuracy", "macro_f1", "binary_roc_auc", "binary_pr_auc", "qwk", "binary_sensitivity"):
        low, high = first[name]
        assert low <= point[name] <= high and high - low < 0.3, name


def test_patient_grouped_bootstrap_resamples_patients():
    # Ten patients, each with 20 identical vertebrae: grouped resampling sees 10 independent units, so its
    # interval is much wider than the vertebra-level one that wrongly believes in 200 independent samples.
    rng = np.random.default_rng(5)
    patient_correct = rng.random(10) < 0.6
    reference = np.repeat(rng.integers(0, 4, 10), 20)
    predicted = np.where(np.repeat(patient_correct, 20), reference, (reference + 1) % 4)
    probabilities = np.eye(4)[predicted] * 0.7 + 0.075
    groups = np.repeat([f"patient{i}" for i in range(10)], 20)
    grouped = bootstrap_intervals(reference, probabilities, groups=groups, n=500)
    ungrouped = bootstrap_intervals(reference, probabilities, n=500)
    grouped_width = grouped["accuracy"][1] - grouped["accuracy"][0]
    assert grouped_width > 2 * (ungrouped["accuracy"][1] - ungrouped["accuracy"][0])
    # Every resample holds whole patients, so accuracy is a multiple of 1/10 of the drawn patients.
    assert grouped["accuracy"][0] * 10 == pytest.approx(round(grouped["accuracy"][0] * 10))
    with pytest.raises(VfnetError, match="one patient per sample"):
        bootstrap_intervals(reference, probabilities, groups=groups[:5], n=10)


def test_paired_difference_of_two_models():
    from vfnet.evaluation.bootstrap import paired_difference_intervals

    rng = np.random.default_rng(3)
    reference = rng.integers(0, 4, size=200)
    good = np.full((200, 4), 0.1)
    good[np.arange(200), reference] = 0.7          # always right
    noisy = rng.dirichlet(np.ones(4), size=200)    # chance level
    groups = np.repeat(np.arange(50), 4)
    result = paired_difference_intervals(reference, good, noisy, groups=groups, n=300, seed=1)
    expected = classification_metrics(reference, good)["macro_f1"] - classification_metrics(reference, noisy)["macro_f1"]
    assert result["macro_f1"]["difference"] == pytest.approx(expected)
    assert 0 < result["macro_f1"]["low"] <= expected <= result["macro_f1"]["high"]
    assert result["macro_f1"]["fraction_a_better"] == 1.0
    same = paired_difference_intervals(reference, noisy, noisy, groups=groups, n=100, seed=1)
    assert same["qwk"]["low"] == same["qwk"]["high"] == 0.0

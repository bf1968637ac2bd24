"""Bootstrap 95 % confidence intervals of the classification metrics, optionally resampling patients.

Vertebrae of one patient are correlated, so with `groups` the bootstrap draws patients with replacement and
takes all their vertebrae. Every resample is represented as a weight per sample (how often it was drawn), so
all resamples are evaluated at once with matrix products instead of 1000 scikit-learn calls. The formulas are
the ones scikit-learn uses (confusion-matrix F1, quadratic kappa, Mann-Whitney ROC-AUC with ties counted 1/2,
step-wise average precision); tests check them against `classification_metrics` on weighted repeats.
"""
from typing import Any

import numpy as np

from vfnet.errors import VfnetError
from vfnet.evaluation.inputs import validate_inputs
from vfnet.labels import NUM_GRADES

CHUNK = 250  # resamples evaluated together; bounds memory at CHUNK x N floats


def bootstrap_intervals(reference: Any, probabilities: Any, groups: Any = None, n: int = 1000,
                        seed: int = 0) -> dict[str, list[float] | None]:
    """95 % percentile intervals {metric: [lo, hi]} (None where the metric is undefined in every resample).

    Metrics: accuracy, macro_f1, f1_grade_0..3, binary_sensitivity, binary_specificity, binary_roc_auc,
    binary_pr_auc, qwk — defined exactly as in `vfnet.evaluation.metrics`. Resamples in which a metric is
    undefined (e.g. no fractured vertebra drawn) are left out of that metric's interval.
    """
    reference, probabilities = validate_inputs(reference, probabilities)
    if n < 1:
        raise VfnetError(f"The number of bootstrap resamples must be positive, got {n}.")
    group_index = _group_index(groups, reference.size)
    rng = np.random.default_rng(seed)
    num_groups = int(group_index.max()) + 1
    collected: dict[str, list[np.ndarray]] = {}
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        # Drawing num_groups groups with replacement == a multinomial count per group.
        counts = rng.multinomial(num_groups, np.full(num_groups, 1.0 / num_groups), size=size)
        weights = counts[:, group_index].astype(np.float64)
        for name, values in metrics_from_weights(reference, probabilities, weights).items():
            collected.setdefault(name, []).append(values)
    intervals: dict[str, list[float] | None] = {}
    for name, chunks in collected.items():
        values = np.concatenate(chunks)
        values = values[np.isfinite(values)]
        intervals[name] = (None if values.size == 0
                           else [float(v) for v in np.percentile(values, [2.5, 97.5])])
    return intervals


def paired_difference_intervals(reference: Any, probabilities_a: Any, probabilities_b: Any, groups: Any = None,
                                n: int = 1000, seed: int = 0) -> dict[str, dict[str, float] | None]:
    """Two models on the same samples: 95 % intervals of metric(a) - metric(b) from paired resamples.

    Both models are scored on the *same* resampled patients each time, so the interval of the difference is much
    narrower than comparing two separate intervals, and it says directly whether the data support a difference
    (interval excludes 0). Returns {metric: {"difference", "low", "high", "fraction_a_better"}}.
    """
    reference, probabilities_a = validate_inputs(reference, probabilities_a)
    _, probabilities_b = validate_inputs(reference, probabilities_b)
    group_index = _group_index(groups, reference.size)
    num_groups = int(group_index.max()) + 1
    rng = np.random.default_rng(seed)
    full = np.ones((1, reference.size))
    point_a = metrics_from_weights(reference, probabilities_a, full)
    point_b = metrics_from_weights(reference, probabilities_b, full)
    differences: dict[str, list[np.ndarray]] = {}
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        counts = rng.multinomial(num_groups, np.full(num_groups, 1.0 / num_groups), size=size)
        weights = counts[:, group_index].astype(np.float64)
        metrics_b = metrics_from_weights(reference, probabilities_b, weights)
        for name, values in metrics_from_weights(reference, probabilities_a, weights).items():
            differences.setdefault(name, []).append(values - metrics_b[name])
    result: dict[str, dict[str, float] | None] = {}
    for name, chunks in differences.items():
        values = np.concatenate(chunks)
        values = values[np.isfinite(values)]
        point = float(point_a[name][0] - point_b[name][0])
        result[name] = None if values.size == 0 or not np.isfinite(point) else {
            "difference": point, "low": float(np.percentile(values, 2.5)),
            "high": float(np.percentile(values, 97.5)), "fraction_a_better": float((values > 0).mean())}
    return result


def _group_index(groups: Any, size: int) -> np.ndarray:
    if groups is None:
        return np.arange(size)
    groups = np.asarray(groups)
    if groups.shape != (size,):
        raise VfnetError(f"Bootstrap groups must give one patient per sample ({size}), got shape {groups.shape}.")
    _, index = np.unique(groups.astype(str), return_inverse=True)
    return index.reshape(-1)


def metrics_from_weights(reference: np.ndarray, probabilities: np.ndarray,
                         weights: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of B weighted resamples at once; weights (B, N) count how often each sample was drawn."""
    predicted = probabilities.argmax(axis=1)
    cells = np.zeros((reference.size, NUM_GRADES * NUM_GRADES))
    cells[np.arange(reference.size), reference * NUM_GRADES + predicted] = 1.0
    confusion = (weights @ cells).reshape(-1, NUM_GRADES, NUM_GRADES)
    results = _confusion_metrics(confusion)
    results.update(_ranking_metrics(reference >= 1, 1.0 - probabilities[:, 0], weights))
    return results


def _divide(numerator: np.ndarray, denominator: np.ndarray, undefined: float = np.nan) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), undefined)


def _confusion_metrics(confusion: np.ndarray) -> dict[str, np.ndarray]:
    total = confusion.sum(axis=(1, 2))
    true_positive = np.diagonal(confusion, axis1=1, axis2=2)
    row = confusion.sum(axis=2)     # reference counts per grade
    column = confusion.sum(axis=1)  # predicted counts per grade
    f1 = _divide(2 * true_positive, row + column, undefined=np.nan)  # NaN: grade neither present nor predicted
    in_reference = row > 0
    macro = _divide(np.where(in_reference, np.nan_to_num(f1), 0).sum(axis=1), in_reference.sum(axis=1))
    grade = np.arange(NUM_GRADES)
    weight = (grade[:, None] - grade[None, :]) ** 2.0
    expected = row[:, :, None] * column[:, None, :] / total[:, None, None]
    kappa = 1.0 - _divide((weight * confusion).sum(axis=(1, 2)), (weight * expected).sum(axis=(1, 2)))
    results = {
        "accuracy": true_positive.sum(axis=1) / total,
        "macro_f1": macro,
        "binary_sensitivity": _divide(confusion[:, 1:, 1:].sum(axis=(1, 2)), row[:, 1:].sum(axis=1)),
        "binary_specificity": _divide(confusion[:, 0, 0], row[:, 0]),
        "qwk": kappa,
    }
    results.update({f"f1_grade_{g}": f1[:, g] for g in range(NUM_GRADES)})
    return results


def _ranking_metrics(positive: np.ndarray, score: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Weighted ROC-AUC and average precision; samples with equal scores form one threshold (as in sklearn)."""
    order = np.argsort(score, kind="stable")
    sorted_score = score[order]
    group_end = np.flatnonzero(np.append(sorted_score[1:] != sorted_score[:-1], True))
    positive_weight = weights[:, order] * positive[order]
    negative_weight = weights[:, order] * ~positive[order]
    cumulative_positive = np.cumsum(positive_weight, axis=1)[:, group_end]
    cumulative_negative = np.cumsum(negative_weight, axis=1)[:, group_end]
    tie_positive = np.diff(cumulative_positive, axis=1, prepend=0.0)
    tie_negative = np.diff(cumulative_negative, axis=1, prepend=0.0)
    total_positive = cumulative_positive[:, -1]
    total_negative = cumulative_negative[:, -1]
    both = (total_positive > 0) & (total_negative > 0)

    negatives_below = cumulative_negative - tie_negative
    concordant = (tie_positive * (negatives_below + 0.5 * tie_negative)).sum(axis=1)
    roc_auc = _divide(concordant, total_positive * total_negative)

    # Average precision: thresholds from the highest score down, precision weighted by the recall gained.
    positive_above = np.cumsum(tie_positive[:, ::-1], axis=1)
    negative_above = np.cumsum(tie_negative[:, ::-1], axis=1)
    precision = _divide(positive_above, positive_above + negative_above, undefined=0.0)
    average_precision = _divide((tie_positive[:, ::-1] * precision).sum(axis=1), total_positive)
    return {"binary_roc_auc": np.where(both, roc_auc, np.nan),
            "binary_pr_auc": np.where(both, average_precision, np.nan)}

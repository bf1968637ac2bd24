"""The review flag's threshold and the referral curve, on out-of-fold predictions.

Out of fold there is one model per vertebra, so the uncertainty measured there is the normalised entropy of the
calibrated probabilities; the threshold is the entropy above which the chosen fraction of out-of-fold vertebrae
lies. At prediction the same entropy is taken of the fold average (which grows when the folds disagree) and a
vertebra is also flagged when its fold_spread exceeds a separate threshold (see vfnet.inference.decisions): out of
fold no spread exists to fit that one on, so it is a stated choice, reported as such.
"""
from typing import Any

import numpy as np

from vfnet.evaluation.metrics import classification_metrics
from vfnet.inference.decisions import normalised_entropy

CURVE_FRACTIONS = tuple(round(0.05 * step, 2) for step in range(11))  # 0 %, 5 %, ... 50 % referred


def entropy_threshold(entropy: np.ndarray, fraction: float) -> float:
    """Entropy above which about `fraction` of the vertebrae lie (nothing lies above the maximum)."""
    return float(entropy.max()) if fraction <= 0 else float(np.quantile(entropy, 1.0 - fraction))


def referral_point(reference: np.ndarray, calibrated: np.ndarray, entropy: np.ndarray,
                   threshold: float) -> dict[str, Any]:
    flagged = entropy > threshold
    kept = ~flagged
    return {"entropy_threshold": threshold, "fraction_flagged": float(flagged.mean()), "kept": int(kept.sum()),
            "macro_f1_kept": (classification_metrics(reference[kept], calibrated[kept])["macro_f1"]
                              if kept.any() else None),
            "accuracy_kept": float((calibrated[kept].argmax(axis=1) == reference[kept]).mean()) if kept.any() else None,
            "accuracy_flagged": (float((calibrated[flagged].argmax(axis=1) == reference[flagged]).mean())
                                 if flagged.any() else None)}


def referral_curve(reference: np.ndarray, calibrated: np.ndarray) -> list[dict[str, Any]]:
    """Fraction flagged vs macro-F1 of the vertebrae that are not flagged, from 0 % to 50 % flagged."""
    entropy = normalised_entropy(calibrated)
    return [{"target_fraction": fraction,
             **referral_point(reference, calibrated, entropy, entropy_threshold(entropy, fraction))}
            for fraction in CURVE_FRACTIONS]


def review_rule(reference: np.ndarray, calibrated: np.ndarray, fraction: float,
                fold_spread_threshold: float) -> dict[str, Any]:
    entropy = normalised_entropy(calibrated)
    point = referral_point(reference, calibrated, entropy, entropy_threshold(entropy, fraction))
    return {"target_fraction": fraction, **point,
            "macro_f1_all": classification_metrics(reference, calibrated)["macro_f1"],
            "fold_spread_threshold": fold_spread_threshold,
            "entropy": "Shannon entropy of the calibrated p0-p3 divided by ln 4 (0 certain, 1 uniform)",
            "rule": "review = entropy > entropy_threshold or fold_spread > fold_spread_threshold"}

"""Calibration fitted on out-of-fold predictions, and the calibration error of p_fracture.

Two maps are fitted, and the one kept is the one that lowers the calibration error on data it was not fitted on:
- temperature scaling of the four-grade logits (log p of the stored probabilities, see vfnet.inference.decisions):
  one parameter, fitted by the four-grade negative log-likelihood; dividing by T keeps the order of the four
  values, so grades (and macro-F1) stay exactly as they are;
- isotonic regression of fractured (grade >= 1) on p_fracture = 1 - p0 (scikit-learn): monotone, so the ranking of
  vertebrae by p_fracture stays, but p0 moves and with it a grade can cross between normal and fractured.
The expected calibration error (ECE) is measured on p_fracture with ten equal-width bins: the count-weighted mean
of |observed fraction fractured - mean p_fracture| per bin.

Each fold is mapped with the map fitted on the other folds; the map with the lowest pooled held-out ECE is kept,
provided its held-out macro-F1 is not lower than without calibration (ties go to the simpler map: none, then
temperature, then isotonic). Why both: on the phantom benchmark's third-session default the NLL-fitted T = 1.35
lowered the NLL (0.375 -> 0.357) but raised the held-out ECE of p_fracture (0.046 -> 0.063), while isotonic
regression lowered it in every configuration measured yet cost macro-F1 in three of four
(benchmarks/calibration_methods.py, documentation/benchmarks.md).
"""
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.isotonic import IsotonicRegression

from vfnet.evaluation.metrics import classification_metrics
from vfnet.inference.decisions import PROBABILITY_FLOOR, Decisions, calibrate

TEMPERATURE_RANGE = (0.05, 20.0)
ECE_BINS = 10


def negative_log_likelihood(reference: np.ndarray, probabilities: np.ndarray) -> float:
    chosen = np.clip(probabilities[np.arange(reference.size), reference], PROBABILITY_FLOOR, 1.0)
    return float(-np.log(chosen).mean())


def fit_temperature(reference: np.ndarray, probabilities: np.ndarray) -> float:
    """The T in TEMPERATURE_RANGE that minimises the NLL of softmax(log p / T); searched on log T."""
    low, high = np.log(TEMPERATURE_RANGE)
    result = minimize_scalar(lambda log_t: negative_log_likelihood(reference, calibrate(probabilities, np.exp(log_t))),
                             bounds=(low, high), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def fit_isotonic(reference: np.ndarray, probabilities: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Breakpoints and values of the isotonic regression of fractured on p_fracture (plain numbers, for JSON)."""
    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    model.fit(1.0 - probabilities[:, 0], (reference >= 1).astype(float))
    return tuple(float(v) for v in model.X_thresholds_), tuple(float(v) for v in model.y_thresholds_)


MAP_DESCRIPTIONS = {  # what each map does, for inference_instructions.json
    "none": "none: no map lowered the calibration error of p_fracture on held-out folds",
    "temperature": "temperature scaling of the four-grade logits, taken as log p of the out-of-fold probabilities "
                   "(equal to the logits up to a constant that softmax ignores)",
    "isotonic": "isotonic regression of fractured on p_fracture = 1 - p0; p0 = 1 - the map, grades 1-3 keep their "
                "shares of the fracture mass"}

MAPS = {  # in order of simplicity: a tie goes to the earlier
    "none": lambda reference, probabilities: Decisions(),
    "temperature": lambda reference, probabilities: Decisions(temperature=fit_temperature(reference, probabilities)),
    "isotonic": lambda reference, probabilities: Decisions(fracture_map=fit_isotonic(reference, probabilities)),
}


def checked_calibration(reference: np.ndarray, probabilities: np.ndarray,
                        fold_of: np.ndarray) -> tuple[str, Decisions, dict[str, dict[str, float]] | None]:
    """(name of the map kept, the map fitted on all folds, held-out ECE and macro-F1 of every map).

    With a single fold nothing can be held out: the temperature is kept, and the held-out table is None."""
    folds = np.unique(fold_of)
    if len(folds) < 2:
        return "temperature", MAPS["temperature"](reference, probabilities), None
    held_out = {}
    for name, fit in MAPS.items():
        mapped = np.empty_like(probabilities, dtype=np.float64)
        for fold in folds:
            held = fold_of == fold
            mapped[held] = fit(reference[~held], probabilities[~held]).calibrate(probabilities[held])
        held_out[name] = {"ece_p_fracture": expected_calibration_error(reference, 1.0 - mapped[:, 0]),
                          "macro_f1": classification_metrics(reference, mapped)["macro_f1"]}
    admissible = [name for name in MAPS if held_out[name]["macro_f1"] >= held_out["none"]["macro_f1"] - 1e-12]
    chosen = min(admissible, key=lambda name: held_out[name]["ece_p_fracture"])   # min keeps the first of ties
    return chosen, MAPS[chosen](reference, probabilities), held_out


def reliability_bins(reference: np.ndarray, p_fracture: np.ndarray,
                     bins: int = ECE_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of p_fracture: (mean p_fracture, observed fraction fractured, count); NaN where empty."""
    index = np.clip((p_fracture * bins).astype(int), 0, bins - 1)
    counts = np.bincount(index, minlength=bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = np.bincount(index, weights=p_fracture, minlength=bins) / counts
        observed = np.bincount(index, weights=(reference >= 1).astype(float), minlength=bins) / counts
    return mean_predicted, observed, counts


def expected_calibration_error(reference: np.ndarray, p_fracture: np.ndarray, bins: int = ECE_BINS) -> float:
    mean_predicted, observed, counts = reliability_bins(reference, p_fracture, bins)
    filled = counts > 0
    return float((counts[filled] * np.abs(observed[filled] - mean_predicted[filled])).sum() / counts.sum())


def calibration_summary(reference: np.ndarray, before: np.ndarray, after: np.ndarray, chosen: str,
                        decisions: Decisions, held_out: dict[str, dict[str, float]] | None) -> dict[str, Any]:
    """The numbers the summary and the instructions report, before and after calibration."""
    fracture_map = None if decisions.fracture_map is None else {
        "p_fracture": list(decisions.fracture_map[0]), "calibrated": list(decisions.fracture_map[1])}
    return {"map": chosen, "temperature": decisions.temperature, "fracture_map": fracture_map,
            "held_out": held_out,
            "ece_p_fracture_cross_validated": None if held_out is None else held_out[chosen]["ece_p_fracture"],
            "ece_p_fracture_before": expected_calibration_error(reference, 1.0 - before[:, 0]),
            "ece_p_fracture_after": expected_calibration_error(reference, 1.0 - after[:, 0]),
            "nll_before": negative_log_likelihood(reference, before),
            "nll_after": negative_log_likelihood(reference, after),
            "macro_f1_before": classification_metrics(reference, before)["macro_f1"],
            "macro_f1_after": classification_metrics(reference, after)["macro_f1"]}

"""What vfnet_predict decides from the ensemble's probabilities: calibration, the binary call and the review flag.

vfnet_find_best_configuration fits these numbers on out-of-fold predictions with the same functions
(`calibrate`, `normalised_entropy`), so fitting and applying cannot drift apart.

- Calibration is one of two maps, whichever vfnet_find_best_configuration found to lower the calibration error on
  held-out folds (vfnet.selection.calibration): temperature scaling of the four-grade logits, or a monotone map of
  p_fracture (isotonic regression's breakpoints). Only probabilities are stored, but log p equals the logits up
  to a per-vertebra constant, which softmax ignores: softmax(log p / T) is the scaled prediction, and dividing by
  T keeps the order of the four values, so the grade never changes. The p_fracture map sets p0 = 1 - map(p_fracture)
  and keeps the shares of grades 1-3 in the fracture mass, so a grade can move between normal and fractured.
- `fracture` is p_fracture >= the stored threshold, or grade >= 1 when no threshold was chosen.
- `review` is true when the normalised entropy of the calibrated probabilities exceeds its threshold or the
  folds disagree (fold_spread above its threshold). The entropy of the fold *average* already grows with the
  folds' disagreement; the spread rule also catches folds that disagree while their mean looks confident.
"""
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from vfnet.labels import NUM_GRADES

PROBABILITY_FLOOR = 1e-7  # probabilities stored with 6 decimals can be 0; their log must stay finite


def calibrate(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T) per row; T > 1 softens over-confident probabilities."""
    logits = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), PROBABILITY_FLOOR, None)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def with_p_fracture(probabilities: np.ndarray, p_fracture: np.ndarray) -> np.ndarray:
    """The probabilities with p0 = 1 - `p_fracture`; grades 1-3 keep their shares of the fracture mass (equal
    shares where there was none)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    before = 1.0 - probabilities[:, 0]
    has_mass = before[:, None] > PROBABILITY_FLOOR
    shares = np.where(has_mass, probabilities[:, 1:] / np.maximum(before, PROBABILITY_FLOOR)[:, None],
                      1.0 / (NUM_GRADES - 1))
    return np.column_stack([1.0 - p_fracture, shares * p_fracture[:, None]])


def remap_fracture(probabilities: np.ndarray, points: Sequence[float], values: Sequence[float]) -> np.ndarray:
    """p_fracture = 1 - p0 through the monotone map (linear between its breakpoints, constant beyond them, as
    scikit-learn's IsotonicRegression predicts), then `with_p_fracture`."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    return with_p_fracture(probabilities, np.interp(1.0 - probabilities[:, 0], points, values))


def normalised_entropy(probabilities: np.ndarray) -> np.ndarray:
    """Shannon entropy divided by ln 4: 0 for a certain grade, 1 for four equal probabilities."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), PROBABILITY_FLOOR, 1.0)
    # Clipped because rounding can push a uniform row a hair past 1, and thresholds are checked to lie in [0, 1].
    return np.clip(-(p * np.log(p)).sum(axis=1) / np.log(NUM_GRADES), 0.0, 1.0)


@dataclass(frozen=True)
class Decisions:
    temperature: float = 1.0
    fracture_threshold: float | None = None      # on calibrated p_fracture; None: fracture = grade >= 1
    review_entropy: float | None = None          # None: review is not assessed (empty cell)
    review_fold_spread: float | None = None
    # (breakpoints, values) of the monotone p_fracture map, applied after the temperature; None: no map
    fracture_map: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def calibrate(self, probabilities: np.ndarray) -> np.ndarray:
        calibrated = np.asarray(probabilities, dtype=np.float64) if self.temperature == 1.0 else \
            calibrate(probabilities, self.temperature)
        return calibrated if self.fracture_map is None else remap_fracture(calibrated, *self.fracture_map)

    def describe_calibration(self) -> str:
        if self.fracture_map is not None:
            return f"isotonic map of p_fracture ({len(self.fracture_map[0])} breakpoints)"
        return "none" if self.temperature == 1.0 else f"temperature {self.temperature:.3f}"

    def annotate(self, rows: list[dict[str, Any]]) -> None:
        """Add `fracture`, `entropy` and `review` to vertebra rows that already hold calibrated p0-p3."""
        if not rows:
            return
        probabilities = np.array([[row[f"p{grade}"] for grade in range(NUM_GRADES)] for row in rows])
        for row, entropy in zip(rows, normalised_entropy(probabilities)):
            row["fracture"] = bool(row["grade"] >= 1 if self.fracture_threshold is None
                                   else row["p_fracture"] >= self.fracture_threshold)
            row["entropy"] = float(entropy)
            row["review"] = None
            if self.review_entropy is not None:
                row["review"] = bool(entropy > self.review_entropy or (
                    self.review_fold_spread is not None and row.get("fold_spread", 0.0) > self.review_fold_spread))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

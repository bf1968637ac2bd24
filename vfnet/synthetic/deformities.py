"""Genant grade -> vertebral body heights of a synthetic vertebra.

Heights are measured on the mid-sagittal plane of the vertebral body along its cranio-caudal axis:
anterior and posterior heights 10 % of the body depth inside the anterior and posterior walls, middle height at
the body centre.

Height loss definition (what `synthetic_truth.json` calls `height_loss`):

* wedge and biconcave (and grade 0): ``1 - min(anterior, middle) / posterior``
* crush (the whole body is lower, posterior wall included): ``1 - posterior / expected posterior height``,
  where the expected posterior height is the one this patient's spine would have at that level without a
  fracture (it follows the level-by-level size of the neighbours).

Genant ranges used: grade 1 20-25 %, grade 2 25-40 %, grade 3 40-60 % (sampled 1 point inside each bound so the
requested value is unambiguous); grade 0 carries physiological wedging of at most 12 % (< 15 %).
"""
from dataclasses import dataclass

import numpy as np

HEIGHT_LOSS_RANGE: dict[int, tuple[float, float]] = {0: (0.0, 0.12), 1: (0.20, 0.25), 2: (0.25, 0.40),
                                                      3: (0.40, 0.60)}
# Fracture shapes for grades 1-3 and how often each occurs (wedge fractures are the most common).
DEFORMITY_SHAPES = ("wedge", "biconcave", "crush")
DEFORMITY_PROBABILITIES = (0.5, 0.3, 0.2)
_INSIDE_MARGIN = 0.01


@dataclass(frozen=True)
class BodyHeights:
    """Requested heights (mm) of one vertebral body and how they came about."""
    deformity: str            # "none", "wedge", "biconcave" or "crush"
    height_loss: float        # by the definition in the module docstring
    anterior: float
    middle: float
    posterior: float
    expected_posterior: float  # the height without fracture (level size of this patient)


def sample_heights(rng: np.random.Generator, grade: int, expected_height: float) -> BodyHeights:
    """Pick a deformity shape and a height loss inside the grade's range, and derive the three heights."""
    low, high = HEIGHT_LOSS_RANGE[grade]
    if grade == 0:
        wedging = rng.uniform(low, high)
        posterior = expected_height
        anterior = posterior * (1 - wedging)
        # A slight physiological endplate concavity, never deeper than the wedging allows.
        middle = 0.5 * (anterior + posterior) * (1 - rng.uniform(0.0, 0.03))
        loss = 1 - min(anterior, middle) / posterior
        return BodyHeights("none", float(loss), anterior, middle, posterior, expected_height)
    loss = float(rng.uniform(low + _INSIDE_MARGIN, high - _INSIDE_MARGIN))
    shape = DEFORMITY_SHAPES[rng.choice(len(DEFORMITY_SHAPES), p=DEFORMITY_PROBABILITIES)]
    if shape == "wedge":
        posterior = expected_height
        anterior = posterior * (1 - loss)
        middle = 0.5 * (anterior + posterior)
    elif shape == "biconcave":
        posterior = expected_height
        anterior = posterior * (1 - rng.uniform(0.0, 0.05))
        middle = posterior * (1 - loss)
    else:  # crush: uniformly lower body
        posterior = anterior = middle = expected_height * (1 - loss)
    return BodyHeights(shape, loss, anterior, middle, posterior, expected_height)


def height_profile(heights: BodyHeights, v: np.ndarray, radius: np.ndarray, half_depth: float) -> np.ndarray:
    """Body height (mm) at AP position `v` (mm, posterior positive) and normalised elliptic radius `radius`.

    Linear from the posterior to the anterior measuring point (wedging), minus a central dome-shaped depression
    (biconcavity) that vanishes at the anterior/posterior measuring points, so the three requested heights are
    exactly the heights at the three measuring points.
    """
    measuring_point = 0.8 * half_depth  # 10 % of the depth inside each wall
    towards_anterior = (measuring_point - v) / (2 * measuring_point)
    depression = 0.5 * (heights.anterior + heights.posterior) - heights.middle
    dome = np.clip(1 - (radius / 0.8) ** 2, 0.0, None) ** 2  # flat at the centre and at the measuring points
    return heights.posterior + (heights.anterior - heights.posterior) * towards_anterior - depression * dome


def wedge_angle_degrees(heights: BodyHeights, half_depth: float) -> float:
    """Angle between the two endplates caused by anterior height loss (positive = anterior lower)."""
    return float(np.degrees(np.arctan((heights.posterior - heights.anterior) / (1.6 * half_depth))))

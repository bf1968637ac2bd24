"""Vertebral-body heights from a vertebra mask: the interpretable second opinion and the no-learning baseline.

Works on a canonical crop's target-vertebra channel: axis 0 inferior->superior, axis 1 anterior->posterior,
axis 2 right->left (see documentation/architecture.md). The mask includes the posterior elements, so the body is
isolated first: in the mid-sagittal slab the spinal canal is a gap along the antero-posterior axis, and the body
is the mask in front of it. Heights are cranio-caudal extents of the body at 12 % of its depth from the front
(anterior), at the centre (middle) and at 12 % from the back (posterior), averaged over the slab's slices.

Genant's semi-quantitative thresholds on the height loss: < 20 % normal, 20-25 % mild, 25-40 % moderate,
> 40 % severe. Height loss = 1 - min(anterior, middle) / posterior (wedge and biconcave deformities); when an
expected height from the neighbours is given, also 1 - posterior / expected (crush), and the larger counts.
"""
import math
from typing import Any, Sequence

import numpy as np

from vfnet.errors import VfnetError

SLAB_HALF_WIDTH_MM = 2.0      # mid-sagittal slab: +-2 mm around the midline (a few slices at 1 mm)
EDGE_FRACTION = 0.12          # anterior/posterior positions, as a fraction of the body depth from each wall
WINDOW_FRACTION = 0.04        # +-4 % of the depth around each position is averaged too
GENANT_THRESHOLDS = (0.20, 0.25, 0.40)


def grade_from_height_loss(ratio: float | None) -> int | None:
    """Genant grade of a height-loss ratio (0.2 = 20 %); None when the ratio is unknown."""
    if ratio is None or not math.isfinite(ratio):
        return None
    mild, moderate, severe = GENANT_THRESHOLDS
    if ratio < mild:
        return 0
    if ratio < moderate:
        return 1
    return 2 if ratio <= severe else 3


def body_heights(mask: Any, spacing: Sequence[float],
                 expected_height_mm: float | None = None) -> dict[str, Any]:
    """Anterior/middle/posterior body heights (mm), height loss and morphometric grade of one vertebra.

    Returns NaN heights, a None loss and grade, and the reason in "note" when the mask is empty or the body
    touches the border of the array (cut by the field of view or the crop).
    """
    mask = np.asarray(mask).astype(bool)
    spacing = tuple(float(s) for s in spacing)
    if mask.ndim != 3 or len(spacing) != 3 or min(spacing) <= 0:
        raise VfnetError(f"Morphometry needs a 3-D mask and three positive spacings, got shape {mask.shape} "
                         f"and spacing {spacing}.")
    if not mask.any():
        return _unmeasured("the vertebra mask is empty")

    slab = _mid_sagittal_slab(mask, spacing[2])
    body_front, body_back, canal_found = _body_extent(slab)
    body = slab[:, body_front:body_back + 1, :]
    touches_cranio_caudal_border = body[0].any() or body[-1].any()
    if touches_cranio_caudal_border or body_front == 0:
        return _unmeasured("the vertebral body touches the border of the crop (cut by the field of view)")

    depth = body.shape[1]
    anterior = _height_at(body, EDGE_FRACTION, spacing[0])
    middle = _height_at(body, 0.5, spacing[0])
    posterior = _height_at(body, 1.0 - EDGE_FRACTION, spacing[0])
    loss = _height_loss(anterior, middle, posterior, expected_height_mm)
    note = None if canal_found else ("no spinal canal found behind the body in the mid-sagittal slab; the "
                                     "posterior height may include posterior elements")
    return {"anterior_mm": anterior, "middle_mm": middle, "posterior_mm": posterior,
            "height_loss": loss, "morphometric_grade": grade_from_height_loss(loss),
            "body_depth_mm": depth * spacing[1], "note": note}


def _unmeasured(reason: str) -> dict[str, Any]:
    nan = float("nan")
    return {"anterior_mm": nan, "middle_mm": nan, "posterior_mm": nan, "height_loss": None,
            "morphometric_grade": None, "body_depth_mm": nan, "note": reason}


def _mid_sagittal_slab(mask: np.ndarray, spacing_left_right: float) -> np.ndarray:
    """The few sagittal slices around the mask's left-right centre of mass (the midline of a vertebra)."""
    per_slice = mask.sum(axis=(0, 1))
    centre = int(round(float(np.average(np.arange(mask.shape[2]), weights=per_slice))))
    half = max(1, int(round(SLAB_HALF_WIDTH_MM / spacing_left_right)))
    return mask[:, :, max(0, centre - half):centre + half + 1]


def _body_extent(slab: np.ndarray) -> tuple[int, int, bool]:
    """First and last antero-posterior index of the body, and whether a canal gap was found behind it."""
    occupied = slab.any(axis=(0, 2))
    indices = np.flatnonzero(occupied)
    front = int(indices[0])
    gaps = np.flatnonzero(~occupied[front:])
    if gaps.size == 0 or front + int(gaps[0]) > indices[-1]:
        return front, int(indices[-1]), False
    return front, front + int(gaps[0]) - 1, True


def _height_at(body: np.ndarray, fraction: float, spacing_cranio_caudal: float) -> float:
    """Mean cranio-caudal extent (mm) of the body's columns around `fraction` of its depth."""
    depth = body.shape[1]
    position = int(round(fraction * (depth - 1)))
    window = int(round(WINDOW_FRACTION * depth))
    columns = body[:, max(0, position - window):position + window + 1, :]
    columns = columns.reshape(columns.shape[0], -1)
    filled = columns.any(axis=0)
    if not filled.any():
        return float("nan")
    z = np.arange(columns.shape[0])[:, None]
    top = np.where(columns, z, -1).max(axis=0)[filled]
    bottom = np.where(columns, z, columns.shape[0]).min(axis=0)[filled]
    return float(np.mean(top - bottom + 1) * spacing_cranio_caudal)


def _height_loss(anterior: float, middle: float, posterior: float, expected: float | None) -> float | None:
    ratios = []
    front_heights = [h for h in (anterior, middle) if math.isfinite(h)]
    if math.isfinite(posterior) and posterior > 0:
        if front_heights:
            ratios.append(1.0 - min(front_heights) / posterior)
        if expected is not None and expected > 0:
            ratios.append(1.0 - posterior / expected)
    if not ratios:
        return None
    # A body taller in front than behind (lordosis at L5) has no loss, not a negative one.
    return max(0.0, max(ratios))

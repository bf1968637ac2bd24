"""Morphometry of a whole spine: every vertebra's heights, the Genant ratios, and the network's features.

Genant's semi-quantitative grade reads the height loss of a body against its own posterior height (wedge,
biconcave deformities) and against the height it would have unfractured (crush deformities, where all three
heights fall together). That expected height comes from the patient's own spine, as in McCloskey-Kanis
morphometry: the median, over the other measured vertebrae within REFERENCE_LEVELS levels, of each one's tallest
height scaled by the typical height ratio of the two levels (bodies grow caudally). The median ignores the
fractured minority; with fewer than MIN_REFERENCE_VERTEBRAE others it is the taller directly adjacent
neighbour's (a fractured neighbour would otherwise hide a fracture). Measured on the phantom benchmark
(documentation/benchmarks.md, twelfth session): the two adjacent neighbours alone vary +-9 % around a normal
body's height, the scan's median +-7 % (standard deviations).
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np

try:   # measuring needs SimpleITK; the network inputs of stored crops (training) do not (benchmarks/gpu_check.sh)
    import SimpleITK as sitk
except ImportError:
    sitk = None

from vfnet.errors import PlanError
from vfnet.labels import GRADABLE_LABELS
from vfnet.morphometry.frame import cranio_caudal_axis, local_frame, neighbours
from vfnet.morphometry.heights import BodyHeights, case_typical_moves, measure_body, settle
from vfnet.typical_sizes import SPINE_LABELS, spine_position, typical_body_size_mm

GENANT_THRESHOLDS = (0.20, 0.25, 0.40)
# The morphometric branch's inputs, in this order: relative height losses (1 - ratio), 0 for a normal body.
FEATURE_NAMES = ("loss_anterior_vs_posterior", "loss_middle_vs_posterior", "loss_anterior_vs_expected",
                 "loss_middle_vs_expected", "loss_posterior_vs_expected", "height_loss")
FEATURE_SCALE = 0.2   # features are divided by it: a 20 % loss (Genant's mild threshold) reads 1.0
REFERENCE_LEVELS = 6         # vertebrae this many levels away or nearer give the expected height ...
MIN_REFERENCE_VERTEBRAE = 3  # ... when there are at least this many of them (else the adjacent neighbours)


def grade_from_height_loss(loss: float | None) -> int | None:
    """Genant grade of a height loss (0.2 = 20 %); None when unknown."""
    if loss is None or not math.isfinite(loss):
        return None
    mild, moderate, severe = GENANT_THRESHOLDS
    return 0 if loss < mild else 1 if loss < moderate else 2 if loss <= severe else 3


def mask_statistics(mask: sitk.Image) -> sitk.LabelShapeStatisticsImageFilter:
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.SetComputePerimeter(False)
    statistics.Execute(mask)
    return statistics


def measure_spine(mask: sitk.Image, ct: sitk.Image | None,
                  labels: Iterable[int] | None = None) -> dict[int, dict[str, Any]]:
    """Heights, ratios, height loss, morphometric grade and features of each vertebra in `labels`.

    `mask` is an integer VerSe-labelled mask on the CT's grid. Every gradable vertebra of the mask is measured
    (neighbours are needed for the ratios); the result holds `labels` (default: all of them).
    """
    statistics = mask_statistics(mask)
    size = np.asarray(mask.GetSize())
    cut = {int(l) for l in statistics.GetLabels() if touches_border(statistics.GetBoundingBox(l), size)}
    # A vertebra cut by the scan's border has a displaced centre: it orients no neighbour's axis.
    orienting = {int(l): statistics.GetCentroid(l) for l in statistics.GetLabels()
                 if int(l) in SPINE_LABELS and int(l) not in cut}
    centres = {int(l): statistics.GetCentroid(l) for l in statistics.GetLabels() if int(l) in GRADABLE_LABELS}
    heights: dict[int, BodyHeights] = {}
    axes: dict[int, tuple[np.ndarray, str]] = {}
    for label in centres:
        axis, source = cranio_caudal_axis(label, {**orienting, label: centres[label]})
        axes[label] = (axis, source)
        box = np.asarray(statistics.GetBoundingBox(label))   # x, y, z start, then sizes
        heights[label] = measure_body(_label_region(mask, label, box), ct, centres[label], local_frame(axis),
                                      scan=mask if label in cut else None)
        if label in cut:
            heights[label].notes.append("the vertebra touches the border of the scan")
    typical_moves = case_typical_moves(heights.values())
    for body in heights.values():
        settle(body, typical_moves=typical_moves)
    wanted = list(centres) if labels is None else [int(label) for label in labels]
    return {label: _report(label, heights, axes, centres) for label in wanted}


def touches_border(box, size: np.ndarray) -> bool:
    box = np.asarray(box)   # x, y, z start, then sizes
    return bool(np.any(box[:3] == 0) or np.any(box[:3] + box[3:] >= size))


def _label_region(mask: sitk.Image, label: int, box: np.ndarray) -> sitk.Image:
    """0/1 float image of one label, cut to its bounding box plus a voxel: comparing the whole scan once per
    vertebra would cost more than the measurement."""
    start = np.maximum(box[:3] - 1, 0)
    stop = np.minimum(box[:3] + box[3:] + 1, np.asarray(mask.GetSize()))
    region = sitk.RegionOfInterest(mask, [int(v) for v in stop - start], [int(v) for v in start])
    return sitk.Cast(region == label, sitk.sitkFloat32)


def _report(label: int, heights: dict[int, BodyHeights], axes: dict, centres: dict) -> dict[str, Any]:
    if label not in heights:
        return {**BodyHeights(notes=["not in the mask"]).as_dict(), **_ratios(None, None)}
    own = heights[label]
    expected = expected_height(label, heights)
    axis, source = axes[label]
    tilt = math.degrees(math.acos(float(np.clip(axis[2], -1.0, 1.0))))
    return {**own.as_dict(), "expected_height_mm": expected, "axis_from": source, "tilt_degrees": round(tilt, 1),
            **_ratios(own if own.measured else None, expected)}


def expected_height(label: int, heights: Mapping[int, BodyHeights]) -> float:
    """The body's height unfractured: the median of the nearby measured vertebrae's tallest heights, each scaled
    to this level's typical height; with fewer than MIN_REFERENCE_VERTEBRAE of them, the taller adjacent one's."""
    def scaled(other: int) -> float:
        h = heights[other]
        return max(h.anterior_mm, h.middle_mm, h.posterior_mm) * (typical_body_size_mm(label)[0] /
                                                                   typical_body_size_mm(other)[0])

    measured = [l for l, h in heights.items() if h.measured and l != label]
    nearby = [other for other in measured if abs(spine_position(other) - spine_position(label)) <= REFERENCE_LEVELS]
    if len(nearby) >= MIN_REFERENCE_VERTEBRAE:
        return float(np.median([scaled(other) for other in nearby]))
    adjacent = [scaled(other) for other in neighbours(label, measured) if other is not None]
    return max(adjacent) if adjacent else float("nan")


def _ratios(own: BodyHeights | None, expected: float | None) -> dict[str, Any]:
    nan = float("nan")
    losses = dict.fromkeys(FEATURE_NAMES, nan)
    if own is not None:
        a, m, p = own.anterior_mm, own.middle_mm, own.posterior_mm
        losses["loss_anterior_vs_posterior"] = 1.0 - a / p
        losses["loss_middle_vs_posterior"] = 1.0 - m / p
        if expected is not None and math.isfinite(expected) and expected > 0:
            losses["loss_anterior_vs_expected"] = 1.0 - a / expected
            losses["loss_middle_vs_expected"] = 1.0 - m / expected
            losses["loss_posterior_vs_expected"] = 1.0 - p / expected
        known = [v for v in losses.values() if math.isfinite(v)]
        # Genant: the largest loss, against the own posterior height or the expected height (a taller front, as
        # in lordotic L5, is no loss).
        losses["height_loss"] = max(0.0, max(known)) if known else nan
    loss = losses["height_loss"]
    return {**losses, "morphometric_grade": grade_from_height_loss(loss if math.isfinite(loss) else None)}


def json_ready(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report with NaN as None (JSON null) and numpy scalars as Python numbers."""
    def clean(value: Any) -> Any:
        if isinstance(value, (float, np.floating)):
            return float(value) if math.isfinite(value) else None
        return value
    return {key: clean(value) for key, value in report.items()}


def feature_vector(report: Mapping[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """(values, available) of the morphometric branch: scaled losses, 0 where unknown, plus 0/1 availability."""
    values = np.zeros(len(FEATURE_NAMES), dtype=np.float32)
    available = np.zeros(len(FEATURE_NAMES), dtype=np.float32)
    for index, name in enumerate(FEATURE_NAMES):
        value = report.get(name) if report else None
        value = float("nan") if value is None else float(value)
        if math.isfinite(value):
            values[index] = float(np.clip(value / FEATURE_SCALE, -5.0, 5.0))
            available[index] = 1.0
    return values, available


def check_feature_names(feature_names: Iterable[str], source: str,
                        remedy: str = "plan and preprocess again with this version.") -> None:
    """A plan's morphometric features must be the ones this vfnet measures (FEATURE_NAMES, in that order)."""
    if list(feature_names) != list(FEATURE_NAMES):
        raise PlanError(f"{source} lists the morphometric features {list(feature_names)}, not this vfnet's "
                        f"{list(FEATURE_NAMES)}; {remedy}")


def morphometry_inputs(properties: Iterable[Mapping[str, Any]], feature_names: Iterable[str]) -> np.ndarray:
    """(N, 2F) inputs of the morphometric branch for crops' properties: the same code at training and prediction.

    A plan's feature list must match this version's; a crop without morphometry (centroid input) is all zero,
    i.e. every feature unavailable.
    """
    check_feature_names(feature_names, "The plan")
    rows = [np.concatenate(feature_vector(p.get("morphometry"))) for p in properties]
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, 2 * len(FEATURE_NAMES)), np.float32)

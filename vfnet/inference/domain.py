"""Is a vertebra within what the model was trained on? The checks behind the `warning` of each prediction row.

Against the model card's training data: a model trained on synthetic phantoms; a CT spacing (per canonical axis)
outside the training range; a vertebra's median HU outside the range of the training vertebrae's medians (the
statistic the fingerprint records; it moves with scanner calibration, contrast agent and bone density); a level
no training vertebra had. A warning does not change the grade: it tells the reader how far to trust it. Each
warning names the input's value and, in brackets, the training range it lies outside of.
"""
from typing import Any

import numpy as np
import SimpleITK as sitk

from vfnet.labels import level_ranges
from vfnet.preprocessing.crop import canonical_spacing, crop_grid, resample_ct

# Spacings a few per cent apart give practically the same resampled crop; beyond this it is another domain.
SPACING_TOLERANCE = 0.05
SYNTHETIC_WARNING = "model trained on synthetic phantoms only"


def vertebra_median_hu(image: sitk.Image, crop: tuple[np.ndarray, dict[str, Any]]) -> float | None:
    """Median HU inside the crop's target-vertebra channel, resampled from the CT without normalisation."""
    array, properties = crop
    inside = array[-1] > 0.5
    if not inside.any():
        return None
    grid = crop_grid(properties["centre_mm"], properties["spacing"], array.shape[1:])
    return float(np.median(resample_ct(image, grid, "linear", -1024.0)[inside]))


def case_warnings(card: dict[str, Any] | None, image: sitk.Image) -> list[str]:
    """Warnings that hold for every vertebra of a case: synthetic training data, spacing."""
    if card is None:
        return []
    data = card["training_data"]
    warnings = [SYNTHETIC_WARNING] if data.get("synthetic") else []
    spacing_range = data.get("spacing_mm")
    if spacing_range:
        spacing = canonical_spacing(image)
        low = [value * (1 - SPACING_TOLERANCE) for value in spacing_range["min"]]
        high = [value * (1 + SPACING_TOLERANCE) for value in spacing_range["max"]]
        if any(not lo <= value <= hi for value, lo, hi in zip(spacing, low, high)):
            shown = " x ".join(f"{value:.2g}" for value in spacing)
            trained = " x ".join(f"{lo:.2g}-{hi:.2g}" for lo, hi in zip(spacing_range["min"], spacing_range["max"]))
            warnings.append(f"spacing (z, y, x) {shown} mm (training {trained} mm)")
    return warnings


def vertebra_warnings(card: dict[str, Any] | None, level: str, median_hu: float | None) -> list[str]:
    """Warnings of one vertebra: its level and its median HU."""
    if card is None:
        return []
    data = card["training_data"]
    warnings = []
    if data.get("levels") and level not in data["levels"]:
        warnings.append(f"level {level} (training {level_ranges(list(data['levels']))})")
    hu_range = data.get("vertebra_median_hu")
    if hu_range and median_hu is not None and not hu_range["min"] <= median_hu <= hu_range["max"]:
        warnings.append(f"median {median_hu:.0f} HU (training {hu_range['min']:.0f} to {hu_range['max']:.0f} HU)")
    return warnings

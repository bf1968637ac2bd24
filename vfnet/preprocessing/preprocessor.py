"""`preprocess_case`: one CT -> one canonical crop per requested vertebra. Used by training and prediction alike."""
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import SimpleITK as sitk

from vfnet.dataset.image_io import orientation_code
from vfnet.errors import DatasetError
from vfnet.labels import level_name
from vfnet.morphometry.genant import json_ready, mask_statistics
from vfnet.preprocessing.crop import canonical_spacing, crop_grid, fraction_inside_scan, resample_ct, resample_label
from vfnet.preprocessing.measurement import measure_vertebrae
from vfnet.preprocessing.normalization import normalize_ct
from vfnet.preprocessing.target_channel import centroid_channel
from vfnet.typical_sizes import typical_body_size_mm

Point = tuple[float, float, float]


def integer_mask(mask_image: sitk.Image) -> sitk.Image:
    """Masks sometimes arrive as float NIfTI; label statistics need an integer image."""
    if mask_image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        return sitk.Cast(sitk.Round(mask_image), sitk.sitkUInt16)
    return mask_image


def mask_centres(mask: sitk.Image) -> dict[int, Point]:
    """Centre of mass (x, y, z mm) of every label in an integer mask, computed in one pass."""
    statistics = mask_statistics(mask)
    return {int(label): tuple(statistics.GetCentroid(label)) for label in statistics.GetLabels()}


def vertebra_centres(mask_image: sitk.Image | None, centroids: Mapping[int, Point] | None,
                     labels: Iterable[int]) -> dict[int, Point]:
    """Centre (x, y, z mm, LPS world) of each vertebra: its mask's centre of mass, else its centroid.

    The mask wins when both exist so that training (masks) and prediction (e.g. TotalSegmentator masks)
    centre crops the same way.
    """
    in_mask = mask_centres(integer_mask(mask_image)) if mask_image is not None else None
    return _resolve_centres(in_mask, centroids, [int(label) for label in labels])


def _resolve_centres(in_mask: dict[int, Point] | None, centroids: Mapping[int, Point] | None,
                     labels: list[int]) -> dict[int, Point]:
    centres: dict[int, Point] = {label: in_mask[label] for label in labels if in_mask and label in in_mask}
    if centroids:
        centres.update({label: tuple(map(float, centroids[label])) for label in labels
                        if label not in centres and label in centroids})
    missing = [label for label in labels if label not in centres]
    if missing:
        names = ", ".join(f"{label} ({level_name(label)})" for label in missing)
        sources = [name for name, given in (("the mask", in_mask is not None),
                                            ("the centroid file", centroids is not None)) if given]
        raise DatasetError(f"vertebra {names} is graded but absent from {' and '.join(sources) or 'any input'}.")
    return centres


def preprocess_case(image: sitk.Image, mask_image: sitk.Image | None, centroids: Mapping[int, Point] | None,
                    labels: Iterable[int], preprocessing_plan: Mapping[str, Any]
                    ) -> dict[int, tuple[np.ndarray, dict[str, Any]]]:
    """Crop every vertebra in `labels`: {label: (float32 (C, Z, Y, X), properties)}.

    Channels are the planned CT windows, then the target vertebra (its mask, or for centroid-only cases
    `centroid_channel`: an ellipsoid of the level's typical vertebral-body size at the centroid, which training
    also shows the network). When the plan asks for morphometry,
    each vertebra with a mask also gets its body heights and Genant ratios (`properties["morphometry"]`,
    measured on the stored CT and mask, not on the coarser crop); without a mask it gets None.
    """
    labels = [int(label) for label in labels]
    mask = integer_mask(mask_image) if mask_image is not None else None
    in_mask = mask_centres(mask) if mask is not None else None
    centres = _resolve_centres(in_mask, centroids, labels)
    spacing = [float(s) for s in preprocessing_plan["target_spacing"]]
    size = [int(s) for s in preprocessing_plan["crop_size"]]
    source_spacing = canonical_spacing(image)
    orientation = orientation_code(image)
    morphometry = {}
    if preprocessing_plan.get("morphometry", False) and in_mask:
        morphometry = measure_vertebrae(mask, image, [label for label in labels if label in in_mask])
    results: dict[int, tuple[np.ndarray, dict[str, Any]]] = {}
    for label in labels:
        centre = centres[label]
        grid = crop_grid(centre, spacing, size)
        hu = resample_ct(image, grid, preprocessing_plan.get("ct_interpolation", "linear"),
                         preprocessing_plan["background_hu"])
        body_size = typical_body_size_mm(label)
        if in_mask and label in in_mask:
            target, mask_source = resample_label(mask, grid, label), "mask"
        else:
            target, mask_source = centroid_channel(size, spacing, body_size), "centroid"
        array = np.stack(normalize_ct(hu, preprocessing_plan["ct_channels"]) + [target])
        properties = {
            "vertebra": label, "level": level_name(label), "centre_mm": [float(c) for c in centre],
            "spacing": spacing, "shape": list(array.shape), "source_spacing": source_spacing,
            "source_orientation": orientation, "mask_source": mask_source,
            "fraction_in_view": round(fraction_inside_scan(image, centre, body_size), 4),
        }
        if preprocessing_plan.get("morphometry", False):
            properties["morphometry"] = json_ready(morphometry[label]) if label in morphometry else None
        results[label] = (array, properties)
    return results


"""The errors a segmentation model's masks have, made on purpose: eroded, dilated or shifted by a voxel or two,
the whole scan alike or ("mixed") each vertebra its own way, or ("coarse") made on a coarser grid than the CT's, or
("missing") with vertebrae left out.

`degrade_mask` is what the robustness benchmark grades through (benchmarks/bench_mask_robustness.py) and what
preprocessing measures the training vertebrae on a second time (measurement.mask_error_morphometry), so the network
also sees the height ratios a mask a voxel or two off gives, not only the exact ones of the training masks.
"""
from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np

try:   # degrading needs SimpleITK; checking a plan's error names (training on a GPU machine) does not
    import SimpleITK as sitk
except ImportError:
    sitk = None

from vfnet.errors import PlanError
from vfnet.labels import spine_order
from vfnet.morphometry.genant import mask_statistics

KINDS = ("eroded", "dilated", "shifted", "mixed", "coarse", "missing")
SHIFT_VOXELS = (0, 1, 2)   # (z, y, x) voxels of "shifted": a small move along every in-plane axis


def parse_mask_error(name: str) -> tuple[str, int]:
    """"eroded_2" -> ("eroded", 2); a name without a radius means one voxel ("dilated" -> ("dilated", 1))."""
    kind, _, radius_text = name.partition("_")
    if kind not in KINDS or not (radius_text == "" or radius_text.isdigit()) or (radius_text and int(radius_text) < 1):
        raise PlanError(f"Unknown mask error {name!r}: expected eroded_N, dilated_N, shifted, shifted_N, "
                        f"mixed_N (N voxels, N >= 1), coarse_N (an N mm grid) or missing_N (N vertebrae).")
    return kind, int(radius_text or 1)


def degrade_mask(mask: sitk.Image, name: str) -> sitk.Image:
    """A VerSe-labelled integer mask with one kind of error, on the same grid.

    eroded_N: every label loses the voxels within N voxels (ball) of another label or the background;
    dilated_N: every label grows by N voxels into the background (labels never overwrite each other);
    shifted: the whole mask moves by SHIFT_VOXELS; shifted_N: by N voxels along every axis (z, y, x, so also
    along the spine); what leaves the image is lost, nothing wraps around;
    mixed_N: each label on its own is eroded or dilated by 0..N voxels and moved by -1..1 voxel along each axis,
    drawn at random with a seed taken from the mask itself (the same mask always gets the same errors), as a
    segmentation model errs differently on each vertebra. A label never overwrites another;
    coarse_N: the mask as a segmentation made on N mm voxels gives it (TotalSegmentator's --fast: 3 mm): resampled
    onto an N mm grid (same origin and direction) and back onto its own with nearest neighbour;
    missing_N: N labels other than the first and last along the spine removed, drawn at random with a seed taken
    from the mask, as a segmentation model that leaves a vertebra out (all but those two if there are fewer).
    Errors joined by "+" are made one after the other ("dilated_1+shifted_2": generous and moved).
    """
    if "+" in name:
        for part in name.split("+"):
            mask = degrade_mask(mask, part)
        return mask
    kind, radius = parse_mask_error(name)
    mask = sitk.Cast(mask, sitk.sitkUInt16)
    if kind == "coarse":
        return _made_on_grid(mask, float(radius))
    labels = sitk.GetArrayFromImage(mask)
    if kind == "eroded":
        # Per label (a ball the size of the radius must lie inside it): one erosion per label keeps two labels
        # that touch from eroding only where they meet the background.
        eroded = np.zeros_like(labels)
        statistics = mask_statistics(mask)
        for label in statistics.GetLabels():
            region, window = _label_region(mask, statistics, label, radius)
            eroded[window][sitk.GetArrayFromImage(sitk.BinaryErode(region, [radius] * 3)) > 0] = label
        result = eroded
    elif kind == "dilated":
        grown = sitk.GetArrayFromImage(sitk.GrayscaleDilate(mask, [radius] * 3))
        result = np.where(labels > 0, labels, grown).astype(labels.dtype)
    elif kind == "mixed":
        result = _mixed(mask, labels, radius)
    elif kind == "missing":
        result = _without_inner_labels(labels, radius)
    else:
        result = moved(labels, SHIFT_VOXELS if name == "shifted" else (radius,) * 3)
    image = sitk.GetImageFromArray(result)
    image.CopyInformation(mask)
    return image


def _made_on_grid(mask: sitk.Image, millimetres: float) -> sitk.Image:
    """The mask resampled onto `millimetres` voxels and back onto its own grid, both with nearest neighbour."""
    size = [max(1, int(np.ceil(n * s / millimetres))) for n, s in zip(mask.GetSize(), mask.GetSpacing())]
    coarse = sitk.Resample(mask, size, sitk.Transform(), sitk.sitkNearestNeighbor, mask.GetOrigin(),
                           [millimetres] * 3, mask.GetDirection(), 0, mask.GetPixelID())
    return sitk.Resample(coarse, mask, sitk.Transform(), sitk.sitkNearestNeighbor, 0, mask.GetPixelID())


def _mixed(mask: sitk.Image, labels: np.ndarray, radius: int) -> np.ndarray:
    """Every label eroded or dilated by its own random 0..radius voxels and moved by its own -1..1 voxels."""
    rng = np.random.default_rng(zlib.crc32(labels.tobytes()))
    result = np.zeros_like(labels)
    statistics = mask_statistics(mask)
    for label in statistics.GetLabels():
        size_change = int(rng.integers(-radius, radius + 1))   # < 0: eroded, > 0: dilated
        shift = rng.integers(-1, 2, size=3)
        # A margin of one voxel more than the change: the move stays inside the window (or leaves the image).
        region, window = _label_region(mask, statistics, label, abs(size_change) + 1)
        own = sitk.GetArrayFromImage(region) > 0
        if size_change < 0:
            own = sitk.GetArrayFromImage(sitk.BinaryErode(region, [-size_change] * 3)) > 0
        elif size_change > 0:   # into the background only
            grown = sitk.GetArrayFromImage(sitk.BinaryDilate(region, [size_change] * 3)) > 0
            own |= grown & (labels[window] == 0)
        own = moved(own, shift)
        target = result[window]
        target[own & (target == 0)] = label
    return result


def _without_inner_labels(labels: np.ndarray, count: int) -> np.ndarray:
    """`count` labels that have a neighbour label above and below them removed (a seed from the mask)."""
    present = sorted((int(label) for label in np.unique(labels) if label), key=spine_order)
    inner = present[1:-1]
    rng = np.random.default_rng(zlib.crc32(labels.tobytes()))
    left_out = rng.choice(inner, size=min(count, len(inner)), replace=False) if inner else []
    return np.where(np.isin(labels, left_out), 0, labels).astype(labels.dtype)


def _label_region(mask: sitk.Image, statistics: sitk.LabelShapeStatisticsImageFilter, label: int,
                  margin: int) -> tuple[sitk.Image, tuple[slice, ...]]:
    """One label's 0/1 image over its bounding box grown by `margin` plus a voxel, and that box as array slices."""
    start, size = _padded_box(statistics.GetBoundingBox(label), margin, mask.GetSize())
    window = tuple(slice(b, b + n) for b, n in zip(start[::-1], size[::-1]))
    return sitk.RegionOfInterest(mask, size, start) == int(label), window


def moved(array: np.ndarray, shift: Sequence[int]) -> np.ndarray:
    """`array` moved by `shift` voxels per axis (signed); what leaves it is lost, what enters is 0, nothing wraps."""
    result = np.zeros_like(array)
    if any(abs(int(step)) >= length for step, length in zip(shift, array.shape)):
        return result
    source, target = [], []
    for step, length in zip(shift, array.shape):
        step = int(step)
        source.append(slice(max(0, -step), length - max(0, step)))
        target.append(slice(max(0, step), length - max(0, -step)))
    result[tuple(target)] = array[tuple(source)]
    return result


def _padded_box(box: Sequence[int], radius: int, image_size: Sequence[int]) -> tuple[list[int], list[int]]:
    """(start, size) of a label's bounding box grown by the radius plus a voxel, inside the image."""
    start = [max(0, int(b) - radius - 1) for b in box[:3]]
    stop = [min(int(n), int(b) + int(s) + radius + 1) for b, s, n in zip(box[:3], box[3:], image_size)]
    return start, [e - s for s, e in zip(start, stop)]

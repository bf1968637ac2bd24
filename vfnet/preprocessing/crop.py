"""The canonical crop grid and resampling onto it.

A crop is an image with identity direction (ITK's LPS world), the planned spacing and size, centred on a
vertebra. SimpleITK resamples the stored CT and mask straight onto that grid, so orientation, spacing and
cropping are handled in one interpolation that only touches the crop's voxels, never the whole volume.
"""
from typing import Sequence

import numpy as np
import SimpleITK as sitk

INTERPOLATORS = {"linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline, "nearest": sitk.sitkNearestNeighbor}


def crop_grid(centre_mm: Sequence[float], spacing_zyx: Sequence[float], size_zyx: Sequence[int]) -> sitk.Image:
    """An empty reference image: identity direction, given spacing and size, its centre at `centre_mm` (x, y, z)."""
    spacing_xyz = [float(s) for s in reversed(spacing_zyx)]
    size_xyz = [int(s) for s in reversed(size_zyx)]
    grid = sitk.Image(size_xyz, sitk.sitkUInt8)
    grid.SetSpacing(spacing_xyz)
    # The centre of the voxel grid is at index (size - 1) / 2; put it on the vertebra's centre.
    origin = [float(c) - (n - 1) / 2.0 * s for c, n, s in zip(centre_mm, size_xyz, spacing_xyz)]
    grid.SetOrigin(origin)
    grid.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    return grid


def resample_ct(image: sitk.Image, grid: sitk.Image, interpolation: str, background_hu: float) -> np.ndarray:
    """CT resampled onto `grid` as float32 (z, y, x); outside the scan it is `background_hu` (air)."""
    resampled = sitk.Resample(image, grid, sitk.Transform(), INTERPOLATORS[interpolation], float(background_hu),
                              sitk.sitkFloat32)
    return sitk.GetArrayFromImage(resampled)


def resample_label(mask: sitk.Image, grid: sitk.Image, label: int) -> np.ndarray:
    """Binary float32 (z, y, x) of one vertebra label resampled onto `grid` with nearest neighbour."""
    resampled = sitk.Resample(mask, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0, mask.GetPixelID())
    return (sitk.GetArrayViewFromImage(resampled) == label).astype(np.float32)


def fraction_inside_scan(image: sitk.Image, centre_mm: Sequence[float], box_zyx_mm: Sequence[float],
                         samples_per_axis: int = 9) -> float:
    """Fraction of a box (centred at `centre_mm`, size in mm) that lies inside the scan's field of view.

    Computed from sample points mapped to continuous indices, so nothing is resampled; a vertebra cut by the
    edge of the scan gets a value below 1.
    """
    half = np.asarray(list(reversed(box_zyx_mm)), dtype=float) / 2.0
    steps = np.linspace(-1.0, 1.0, samples_per_axis)
    offsets = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), axis=-1).reshape(-1, 3) * half
    points = offsets + np.asarray(centre_mm, dtype=float)
    return float(points_inside_scan(image, points).mean())


def points_inside_scan(image: sitk.Image, points_xyz: np.ndarray) -> np.ndarray:
    """True for each physical point (..., 3) that lies within the scan's voxels (a voxel's extent is index +- 0.5)."""
    indices = world_to_index(image, points_xyz)
    size = np.asarray(image.GetSize(), dtype=float)
    return np.all((indices >= -0.5) & (indices <= size - 0.5), axis=-1)


def _index_matrix(image: sitk.Image) -> np.ndarray:
    """D S: direction times spacing, the linear part of index -> physical point."""
    return np.asarray(image.GetDirection(), dtype=float).reshape(3, 3) @ np.diag(
        np.asarray(image.GetSpacing(), dtype=float))


def index_to_world(image: sitk.Image, indices_xyz: np.ndarray) -> np.ndarray:
    """Physical (x, y, z) mm of continuous voxel indices (..., 3) in ITK order (i, j, k): origin + D S index."""
    return np.asarray(indices_xyz, dtype=float) @ _index_matrix(image).T + np.asarray(image.GetOrigin(), dtype=float)


def world_to_index(image: sitk.Image, points_xyz: np.ndarray) -> np.ndarray:
    """Continuous voxel indices (i, j, k) of physical points (..., 3): (D S)^-1 (p - origin), vectorised."""
    to_index = np.linalg.inv(_index_matrix(image))
    return (np.asarray(points_xyz, dtype=float) - np.asarray(image.GetOrigin(), dtype=float)) @ to_index.T


def canonical_axis_order(image: sitk.Image) -> list[int]:
    """For canonical axes (z, y, x), the index of the image axis (x=0, y=1, z=2 in ITK) that runs along each.

    For oblique scans the image axis closest to each world axis is taken.
    """
    direction = np.abs(np.asarray(image.GetDirection(), dtype=float).reshape(3, 3))
    # direction[:, k] is image axis k in world coordinates; world z is row 2.
    order = [int(np.argmax(direction[world_axis])) for world_axis in (2, 1, 0)]
    if len(set(order)) != 3:  # a 45-degree tie: fall back to the storage order
        order = [2, 1, 0]
    return order


def canonical_spacing(image: sitk.Image) -> list[float]:
    spacing = image.GetSpacing()
    return [float(spacing[axis]) for axis in canonical_axis_order(image)]


def canonical_shape(image: sitk.Image) -> list[int]:
    size = image.GetSize()
    return [int(size[axis]) for axis in canonical_axis_order(image)]

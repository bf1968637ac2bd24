"""Rasterise a synthetic spine into CT intensities (HU) and a VerSe-labelled vertebra mask.

Shapes are analytic (see `anatomy`), evaluated with numpy broadcasting inside each structure's bounding box.
The CT is rasterised on a grid `refine` times finer than the stored one, blurred like a scanner's point-spread
function and block-averaged to the stored spacing (partial volume); the mask is evaluated at the stored voxel
centres directly, so its geometry is exact. Arrays are in canonical LPS order (z, y, x).
"""
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from vfnet.synthetic.anatomy import Spine, Vertebra
from vfnet.synthetic.deformities import height_profile

AIR_HU = -1000.0
FAT_HU = -100.0
_ENDPLATE_THICKNESS_MM = 1.0
_COMPACTION_BAND_MM = 4.0     # sclerotic band next to the endplates of a fractured body
_RIM_ROUNDING_MM = 1.5
_SPINOUS_HALF_WIDTH_MM = 3.0


@dataclass(frozen=True)
class Grid:
    """Voxel centres of an axis-aligned LPS grid: origin and spacing in mm, all tuples in (z, y, x) order."""
    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]

    def axis(self, dimension: int) -> np.ndarray:
        return self.origin[dimension] + self.spacing[dimension] * np.arange(self.shape[dimension])

    def refined(self, factors: tuple[int, int, int]) -> "Grid":
        """A grid whose `factors` sub-voxels tile each voxel of this one exactly (for block averaging)."""
        spacing = tuple(s / f for s, f in zip(self.spacing, factors))
        origin = tuple(o - s / 2 + fine / 2 for o, s, fine in zip(self.origin, self.spacing, spacing))
        return Grid(origin, spacing, tuple(n * f for n, f in zip(self.shape, factors)))

    def box(self, low: np.ndarray, high: np.ndarray) -> tuple[slice, slice, slice]:
        """Index slices of the voxels whose centres lie in [low, high] (z, y, x mm), clipped to the grid."""
        slices = []
        for dim in range(3):
            first = int(np.ceil((low[dim] - self.origin[dim]) / self.spacing[dim]))
            last = int(np.floor((high[dim] - self.origin[dim]) / self.spacing[dim]))
            slices.append(slice(max(first, 0), min(last + 1, self.shape[dim])))
        return tuple(slices)


def rasterise(spine: Spine, grid: Grid, intensities: bool) -> tuple[np.ndarray | None, np.ndarray]:
    """Return (HU float32 or None, labels uint8) on `grid`."""
    labels = np.zeros(grid.shape, np.uint8)
    hu = _background(spine, grid) if intensities else None
    if intensities:
        for lower, upper in zip(spine.vertebrae[:-1], spine.vertebrae[1:]):
            _paint_disc(spine, lower, upper, grid, hu)
    for vertebra in spine.vertebrae:
        _paint_vertebra(spine, vertebra, grid, hu, labels)
    return hu, labels


def scanner_image(hu_fine: np.ndarray, factors: tuple[int, int, int], fine_spacing: tuple[float, float, float],
                  blur_mm: float, noise_hu: float, rng: np.random.Generator) -> np.ndarray:
    """Blur with the scanner's Gaussian PSF, average blocks down to the stored grid, add noise; int16 HU."""
    sigma = [blur_mm / s for s in fine_spacing]
    blurred = ndimage.gaussian_filter(hu_fine, sigma=sigma, truncate=3.0)
    nz, ny, nx = (n // f for n, f in zip(hu_fine.shape, factors))
    stored = blurred.reshape(nz, factors[0], ny, factors[1], nx, factors[2]).mean(axis=(1, 3, 5))
    stored += rng.normal(0.0, noise_hu, stored.shape).astype(np.float32)
    return np.clip(np.rint(stored), -1024, 3071).astype(np.int16)


def _background(spine: Spine, grid: Grid) -> np.ndarray:
    """Elliptic trunk of soft tissue with a subcutaneous fat layer; air outside. Constant along z."""
    half_lateral, half_ap = spine.trunk_half_axes
    y = grid.axis(1)[:, None]
    x = grid.axis(2)[None, :]
    radius = np.sqrt((x / half_lateral) ** 2 + ((y - (spine.skin_back_y - half_ap)) / half_ap) ** 2)
    plane = np.where(radius <= 1.0, spine.soft_tissue_hu, AIR_HU)
    plane[(radius <= 1.0) & (radius > 1.0 - spine.fat_thickness / half_ap)] = FAT_HU
    return np.ascontiguousarray(np.broadcast_to(plane.astype(np.float32), grid.shape))


def _local_box(grid: Grid, centre: tuple[float, float, float], tilt_degrees: float,
               u_range: tuple[float, float], v_range: tuple[float, float], w_half: float):
    """Slices of the grid around a local (u, v, w) box, and the local coordinates of its voxels."""
    angle = np.radians(tilt_degrees)
    sin, cos = np.sin(angle), np.cos(angle)
    corners_u, corners_v = np.meshgrid(u_range, v_range)
    corners_y = centre[1] + corners_u * sin + corners_v * cos
    corners_z = centre[2] + corners_u * cos - corners_v * sin
    low = np.array([corners_z.min(), corners_y.min(), centre[0] - w_half])
    high = np.array([corners_z.max(), corners_y.max(), centre[0] + w_half])
    box = grid.box(low, high)
    z = grid.axis(0)[box[0]][:, None, None] - centre[2]
    y = grid.axis(1)[box[1]][None, :, None] - centre[1]
    w = grid.axis(2)[box[2]][None, None, :] - centre[0]
    u = y * sin + z * cos
    v = y * cos - z * sin
    return box, u, v, w


def _paint_disc(spine: Spine, lower: Vertebra, upper: Vertebra, grid: Grid, hu: np.ndarray) -> None:
    """An elliptic cylinder joining two body centres; the bodies painted later cover its ends."""
    offset = np.subtract(upper.centre[1:], lower.centre[1:])  # (y, z)
    length = float(np.hypot(*offset))
    tilt = float(np.degrees(np.arctan2(offset[0], offset[1])))
    half_depth = 0.5 * (lower.half_depth + upper.half_depth)
    half_width = 0.5 * (lower.half_width + upper.half_width)
    start = 0.25 * min(lower.heights.anterior, lower.heights.middle, lower.heights.posterior)
    stop = length - 0.25 * min(upper.heights.anterior, upper.heights.middle, upper.heights.posterior)
    box, u, v, w = _local_box(grid, lower.centre, tilt, (start, stop), (-half_depth, half_depth), half_width)
    inside = (u >= start) & (u <= stop) & ((v / half_depth) ** 2 + (w / half_width) ** 2 <= 1.0)
    hu[box][inside] = spine.disc_hu


def _paint_vertebra(spine: Spine, vertebra: Vertebra, grid: Grid, hu: np.ndarray | None,
                    labels: np.ndarray) -> None:
    heights = vertebra.heights
    tallest = max(heights.anterior, heights.middle, heights.posterior, heights.expected_posterior)
    arch_centre, arch_half_height = 0.1 * heights.expected_posterior, 0.35 * heights.expected_posterior
    spinous_drop = vertebra.spinous_length * np.sin(np.radians(vertebra.spinous_angle_degrees))
    u_range = (min(-tallest / 2, arch_centre - spinous_drop - vertebra.spinous_half_height) - 2,
               max(tallest / 2, arch_centre + arch_half_height) + 2)
    v_range = (-vertebra.half_depth - 2, vertebra.posterior_extent() + 2)
    w_half = max(vertebra.half_width, vertebra.canal_radius + vertebra.arch_thickness) + 2
    box, u, v, w = _local_box(grid, vertebra.centre, vertebra.tilt_degrees, u_range, v_range, w_half)
    if min(labels[box].shape) == 0:
        return
    a, b = vertebra.half_depth, vertebra.half_width
    radius = np.sqrt((v / a) ** 2 + (w / b) ** 2)
    half_height = 0.5 * height_profile(heights, v, radius, a)
    to_endplate = half_height - np.abs(u)
    # Slight waist at mid-height and rounded rims at the endplates.
    waist = 0.03 * (1 - np.clip(np.abs(u) / np.maximum(half_height, 1e-3), 0, 1) ** 2)
    rim = 0.05 * np.clip(1 - to_endplate / _RIM_ROUNDING_MM, 0, 1) ** 2
    outline = 1.0 - waist - rim
    body = (to_endplate >= 0) & (radius <= outline)
    posterior = _posterior_elements(vertebra, u - arch_centre, v, w, arch_half_height) & ~body
    labels[box][body | posterior] = vertebra.label
    if hu is None:
        return
    cancellous = spine.cancellous_hu * vertebra.density_factor
    if vertebra.grade > 0:  # trabecular compaction next to the fractured endplates
        cancellous = cancellous + np.where(to_endplate < _COMPACTION_BAND_MM, 150.0 * heights.height_loss, 0.0)
    to_wall = (outline - radius) * min(a, b)
    body_hu = np.where(to_endplate < _ENDPLATE_THICKNESS_MM, 0.9 * spine.cortical_hu,
                       np.where(to_wall < spine.cortical_thickness, spine.cortical_hu, cancellous))
    posterior_hu = 0.5 * (spine.cancellous_hu + spine.cortical_hu)
    region = hu[box]
    region[body] = np.broadcast_to(body_hu, body.shape)[body]
    region[posterior] = posterior_hu


def _posterior_elements(vertebra: Vertebra, u: np.ndarray, v: np.ndarray, w: np.ndarray,
                        arch_half_height: float) -> np.ndarray:
    """Pedicles and lamina (a ring around the spinal canal) and the spinous process, u relative to the arch."""
    canal = vertebra.arch_start()
    from_canal = np.sqrt((v - canal) ** 2 + w ** 2)
    ring = ((from_canal >= vertebra.canal_radius) & (from_canal <= vertebra.canal_radius + vertebra.arch_thickness)
            & (v >= vertebra.half_depth - 1) & (np.abs(u) <= arch_half_height))
    angle = np.radians(vertebra.spinous_angle_degrees)
    dv = v - vertebra.spinous_start()
    along = dv * np.cos(angle) - u * np.sin(angle)
    across = dv * np.sin(angle) + u * np.cos(angle)
    taper = 1 - 0.3 * np.clip(along / vertebra.spinous_length, 0, 1)
    spinous = ((along >= 0) & (along <= vertebra.spinous_length) & (np.abs(w) <= _SPINOUS_HALF_WIDTH_MM)
               & (np.abs(across) <= vertebra.spinous_half_height * taper))
    return ring | spinous

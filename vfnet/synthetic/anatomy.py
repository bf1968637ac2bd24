"""Geometry of a synthetic thoraco-lumbar spine: vertebra sizes by level, posterior elements, discs, curvature.

Coordinates are "patient millimetres" in ITK's LPS world as (x, y, z) = (right->left, anterior->posterior,
inferior->superior). Each vertebra has a local frame: `u` along its cranio-caudal axis (tilted in the sagittal
plane by `tilt_degrees`, positive = top leaning posterior), `v` antero-posterior (posterior positive), `w` = x.
"""
from dataclasses import dataclass, replace

import numpy as np

from vfnet.labels import LEVEL_TO_VERSE
from vfnet.synthetic.deformities import BodyHeights, sample_heights, wedge_angle_degrees

# Level -> (posterior body height, body depth AP, body width), mm, for an average adult.
LEVEL_SIZES_MM: dict[str, tuple[float, float, float]] = {
    "T6": (20.0, 29.0, 33.0), "T7": (20.5, 30.0, 34.0), "T8": (21.0, 31.0, 35.0), "T9": (21.5, 32.0, 37.0),
    "T10": (22.5, 33.0, 39.0), "T11": (23.5, 34.0, 41.0), "T12": (24.5, 35.0, 43.0), "L1": (25.5, 37.0, 45.0),
    "L2": (26.5, 38.0, 47.0), "L3": (27.0, 39.0, 49.0), "L4": (27.0, 40.0, 50.0), "L5": (26.5, 41.0, 52.0),
}
LEVEL_ORDER = tuple(LEVEL_SIZES_MM)  # cranial -> caudal
# Sagittal curvature, degrees of tilt change per level going up: lordosis (lumbar) then kyphosis (thoracic).
# Kept gentle (|tilt| <= 8 degrees) so that body heights measured along the scanner's z axis, as the
# morphometry of canonical crops does, stay close to the heights along each body's own axis.
_LORDOSIS_STEP_DEGREES = 2.5
_KYPHOSIS_STEP_DEGREES = -1.5
_MAX_TILT_DEGREES = 8.0
# Part of a wedge's endplate angle passed on to the spine above (the disc takes up the rest).
_KYPHOSIS_TRANSFER = 0.15


@dataclass(frozen=True)
class Vertebra:
    label: int                 # VerSe id
    level: str
    grade: int
    heights: BodyHeights
    half_depth: float          # AP semi-axis of the body (mm)
    half_width: float          # lateral semi-axis of the body (mm)
    canal_radius: float
    arch_thickness: float      # pedicles and lamina
    spinous_length: float
    spinous_angle_degrees: float  # caudal inclination of the spinous process
    spinous_half_height: float
    density_factor: float      # this vertebra's cancellous density relative to the patient's
    centre: tuple[float, float, float] = (0.0, 0.0, 0.0)  # body centre (x, y, z) patient mm
    tilt_degrees: float = 0.0

    def posterior_extent(self) -> float:
        """Largest v (mm) reached by the spinous process tip."""
        reach = self.spinous_length * np.cos(np.radians(self.spinous_angle_degrees))
        return self.spinous_start() + reach + self.spinous_half_height

    def arch_start(self) -> float:
        """v of the spinal canal's centre (just behind the posterior wall)."""
        return self.half_depth + 0.85 * self.canal_radius

    def spinous_start(self) -> float:
        """v where the spinous process leaves the lamina, in the midline."""
        return self.arch_start() + self.canal_radius + 0.5 * self.arch_thickness


@dataclass(frozen=True)
class Spine:
    """One patient's spine: everything that stays the same between two scans of the patient."""
    vertebrae: list[Vertebra]  # caudal -> cranial; a disc lies between each consecutive pair
    cancellous_hu: float
    cortical_hu: float
    cortical_thickness: float
    disc_hu: float
    soft_tissue_hu: float
    skin_back_y: float          # posterior skin surface (y, patient mm); air lies behind it
    trunk_half_axes: tuple[float, float]  # (lateral, AP) semi-axes of the elliptic trunk outline
    fat_thickness: float        # subcutaneous fat under the posterior skin


def choose_levels(rng: np.random.Generator) -> list[str]:
    """6-9 consecutive levels between T6 and L5, random start, caudal first."""
    count = int(rng.integers(6, 10))
    start = int(rng.integers(0, len(LEVEL_ORDER) - count + 1))
    return list(reversed(LEVEL_ORDER[start:start + count]))


def build_spine(rng: np.random.Generator, levels: list[str], grades: list[int]) -> Spine:
    """Size, deform, curve and place the vertebrae (caudal first) of one patient."""
    fractured = any(grade > 0 for grade in grades)
    # Osteoporotic (fractured) patients have less dense cancellous bone.
    cancellous = float(rng.uniform(100, 190) if fractured else rng.uniform(150, 300))
    cortical = float(min(900.0, 350 + 1.8 * cancellous + rng.uniform(-40, 40)))
    scale = float(rng.uniform(0.92, 1.08))
    vertebrae = [_make_vertebra(rng, level, grade, scale) for level, grade in zip(levels, grades)]
    vertebrae = _place(rng, vertebrae, scale)
    return Spine(vertebrae=vertebrae, cancellous_hu=cancellous, cortical_hu=cortical,
                 cortical_thickness=float(rng.uniform(0.8, 1.5)), disc_hu=float(rng.uniform(70, 90)),
                 soft_tissue_hu=float(rng.uniform(30, 50)),
                 skin_back_y=max(v.centre[1] + v.posterior_extent() for v in vertebrae) + float(rng.uniform(8, 20)),
                 trunk_half_axes=(float(rng.uniform(140, 180)), float(rng.uniform(100, 140))),
                 fat_thickness=float(rng.uniform(4, 15)))


def _make_vertebra(rng: np.random.Generator, level: str, grade: int, scale: float) -> Vertebra:
    height, depth, width = (size * scale * rng.uniform(0.98, 1.02) for size in LEVEL_SIZES_MM[level])
    lumbar = level.startswith("L")
    return Vertebra(
        label=LEVEL_TO_VERSE[level], level=level, grade=grade, heights=sample_heights(rng, grade, height),
        half_depth=depth / 2, half_width=width / 2,
        canal_radius=(9.0 if lumbar else 7.5) * scale, arch_thickness=(6.5 if lumbar else 5.0) * scale,
        spinous_length=(28.0 if lumbar else 30.0) * scale,
        spinous_angle_degrees=15.0 if lumbar else (30.0 if level in ("T11", "T12") else 50.0),
        spinous_half_height=(6.0 if lumbar else 3.5) * scale,
        density_factor=float(rng.uniform(0.93, 1.07)))


def _disc_height(lower_level: str, scale: float) -> float:
    return (9.5 if lower_level.startswith("L") else 7.0 if lower_level == "T12" else 5.0) * scale


def _place(rng: np.random.Generator, vertebrae: list[Vertebra], scale: float) -> list[Vertebra]:
    """Stack bodies from caudal to cranial along a lordotic/kyphotic curve; wedges add local kyphosis."""
    amplitude = rng.uniform(0.5, 1.0)
    placed: list[Vertebra] = []
    kyphosis = 0.0
    position = np.zeros(2)  # (y, z)
    for vertebra in vertebrae:
        curve = _curve_tilt(vertebra.level) * amplitude
        wedge = wedge_angle_degrees(vertebra.heights, vertebra.half_depth) * _KYPHOSIS_TRANSFER
        tilt = float(np.clip(curve + kyphosis - 0.5 * wedge, -_MAX_TILT_DEGREES, _MAX_TILT_DEGREES))
        kyphosis -= wedge
        if placed:
            below = placed[-1]
            gap = _disc_height(below.level, scale)
            position = (position + _axis(below.tilt_degrees) * below.heights.posterior / 2
                        + _axis(0.5 * (below.tilt_degrees + tilt)) * gap
                        + _axis(tilt) * vertebra.heights.posterior / 2)
        placed.append(replace(vertebra, centre=(0.0, float(position[0]), float(position[1])), tilt_degrees=tilt))
    return placed


def _curve_tilt(level: str) -> float:
    """Baseline tilt (degrees) at `level`: 0 at the lordosis apex L3, leaning posterior up to L1, then the
    thoracic kyphosis turns it anterior again level by level."""
    index = LEVEL_ORDER.index(level)
    lumbar_steps = min(LEVEL_ORDER.index("L3") - index, LEVEL_ORDER.index("L3") - LEVEL_ORDER.index("L1"))
    thoracic_steps = max(0, LEVEL_ORDER.index("T12") - index)
    return _LORDOSIS_STEP_DEGREES * lumbar_steps + _KYPHOSIS_STEP_DEGREES * thoracic_steps


def _axis(tilt_degrees: float) -> np.ndarray:
    """Unit cranio-caudal axis (y, z) of a body tilted by `tilt_degrees` towards posterior."""
    angle = np.radians(tilt_degrees)
    return np.array([np.sin(angle), np.cos(angle)])

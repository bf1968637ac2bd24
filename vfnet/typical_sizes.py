"""Typical adult vertebra sizes per level, used where a case has centroids but no mask.

Numbers are rounded means of published CT/cadaver morphometry (vertebral body height, antero-posterior depth
and left-right width; whole-vertebra extents including the posterior elements), anchored at a few levels and
interpolated linearly between them. They only need to be right to ~20 %: they size the target-vertebra
ellipsoid of centroid-only cases and stand in for mask extents in the fingerprint.
All sizes are in mm, in the canonical array order (z, y, x) = (cranio-caudal, antero-posterior, left-right).
"""
import numpy as np

from vfnet.labels import VERSE_LEVELS

# Position along the spine (C1 = 0 ... L6 = 24, S1 = 25); T13 sits between T12 and L1.
_SPINE_POSITION: dict[int, float] = {label: float(label - 1) for label in range(1, 26)}
_SPINE_POSITION[28] = 18.5
_SPINE_POSITION[26] = 25.0   # S1: below L5 (or L6); its centre orients L5's axis

# Anchor levels: (body height, body depth, body width), (whole vertebra z, y, x extent).
_ANCHORS: list[tuple[int, tuple[float, float, float], tuple[float, float, float]]] = [
    (1, (12.0, 12.0, 20.0), (20.0, 45.0, 75.0)),    # C1 (anterior arch, no real body)
    (3, (14.0, 16.0, 17.0), (25.0, 50.0, 50.0)),    # C3
    (7, (14.0, 16.0, 24.0), (30.0, 60.0, 70.0)),    # C7
    (8, (15.0, 16.0, 27.0), (35.0, 65.0, 75.0)),    # T1
    (13, (18.0, 24.0, 28.0), (45.0, 70.0, 65.0)),   # T6
    (19, (23.0, 30.0, 40.0), (40.0, 75.0, 70.0)),   # T12
    (22, (26.0, 34.0, 48.0), (38.0, 85.0, 90.0)),   # L3
    (25, (26.0, 35.0, 50.0), (36.0, 85.0, 95.0)),   # L6 (as L5)
]


def _interpolate(label: int, column: int) -> tuple[float, float, float]:
    if label not in _SPINE_POSITION:
        raise ValueError(f"no typical size for vertebra label {label} ({VERSE_LEVELS.get(label, '?')})")
    position = _SPINE_POSITION[label]
    anchor_positions = [float(anchor[0] - 1) for anchor in _ANCHORS]
    return tuple(float(np.interp(position, anchor_positions, [anchor[column][axis] for anchor in _ANCHORS]))
                 for axis in range(3))

SPINE_LABELS = frozenset(_SPINE_POSITION)


def spine_position(label: int) -> float:
    """Position along the spine from the top (C1 = 0 ... L6 = 24; T13 between T12 and L1)."""
    if int(label) not in _SPINE_POSITION:
        raise ValueError(f"vertebra label {label} ({VERSE_LEVELS.get(int(label), '?')}) has no spine position")
    return _SPINE_POSITION[int(label)]


def typical_body_size_mm(label: int) -> tuple[float, float, float]:
    """Vertebral body (height, depth, width) in mm = its extent along (z, y, x)."""
    return _interpolate(label, 1)


def typical_vertebra_extent_mm(label: int) -> tuple[float, float, float]:
    """Whole vertebra (body and posterior elements) extent along (z, y, x) in mm."""
    return _interpolate(label, 2)

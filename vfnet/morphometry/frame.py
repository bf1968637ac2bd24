"""The local frame of a vertebra: its cranio-caudal axis and the anterior-posterior direction perpendicular to it.

The spine curves (kyphosis, lordosis, scoliosis) and patients lie tilted, so heights measured along the image's
z axis mix in depth. The line through the centres of the neighbouring vertebrae follows the spine and, unlike
the vertebra's own shape, is not changed by the vertebra's own deformity.
"""
from typing import Mapping, Sequence

import numpy as np

from vfnet.typical_sizes import SPINE_LABELS, spine_position

Point = Sequence[float]
WORLD_SUPERIOR = np.array([0.0, 0.0, 1.0])   # LPS: +z is superior
WORLD_POSTERIOR = np.array([0.0, 1.0, 0.0])  # LPS: +y is posterior
MAX_NEIGHBOUR_GAP = 1.0                      # spine positions: only directly adjacent levels define the axis


def neighbours(label: int, present: Sequence[int]) -> tuple[int | None, int | None]:
    """The labels directly above (cranial) and below (caudal) `label` among `present`, if there."""
    position = spine_position(label)
    present = [other for other in present if other in SPINE_LABELS]
    above = [other for other in present if 0 < position - spine_position(other) <= MAX_NEIGHBOUR_GAP]
    below = [other for other in present if 0 < spine_position(other) - position <= MAX_NEIGHBOUR_GAP]
    nearest = lambda candidates: min(candidates, key=lambda o: abs(spine_position(o) - position)) if candidates \
        else None
    return nearest(above), nearest(below)


def cranio_caudal_axis(label: int, centres: Mapping[int, Point]) -> tuple[np.ndarray, str]:
    """Unit vector pointing superior along the spine at `label`, and where it came from."""
    above, below = neighbours(label, list(centres))
    centre = np.asarray(centres[label], dtype=float)
    if above is not None and below is not None:
        axis, source = np.asarray(centres[above], float) - np.asarray(centres[below], float), "neighbours"
    elif above is not None:
        axis, source = np.asarray(centres[above], float) - centre, "neighbour above"
    elif below is not None:
        axis, source = centre - np.asarray(centres[below], float), "neighbour below"
    else:
        return WORLD_SUPERIOR.copy(), "image axis"
    norm = np.linalg.norm(axis)
    # A neighbour label on the wrong side (mislabelled mask) would flip the axis: fall back to the image.
    if norm == 0 or float(axis @ WORLD_SUPERIOR) / norm < 0.5:
        return WORLD_SUPERIOR.copy(), "image axis"
    return axis / norm, source


def local_frame(superior: np.ndarray) -> np.ndarray:
    """3x3 matrix whose columns are (left, posterior, superior) unit vectors in LPS world coordinates.

    Its columns play the roles of the canonical grid's x, y, z axes, so a grid with this direction has the
    canonical crop's array order: axis 0 inferior->superior, axis 1 anterior->posterior, axis 2 right->left.
    """
    superior = np.asarray(superior, dtype=float) / np.linalg.norm(superior)
    posterior = WORLD_POSTERIOR - (WORLD_POSTERIOR @ superior) * superior
    posterior /= np.linalg.norm(posterior)
    left = np.cross(posterior, superior)
    return np.stack([left, posterior, superior], axis=1)

"""The target channel of centroid input, shared by prediction and training.

Kept apart from crop.py because training draws it too and must run without SimpleITK (e.g. on a GPU machine that
trains on crops preprocessed elsewhere).
"""
from typing import Sequence

import numpy as np


def centroid_channel(shape_zyx: Sequence[int], spacing_zyx: Sequence[float], diameters_zyx_mm: Sequence[float],
                     offset_zyx_mm: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """The target channel of centroid input: float32 (z, y, x), 1 inside an axis-aligned ellipsoid of the given
    diameters centred `offset_zyx_mm` from the crop's centre.

    Prediction from centroids draws it at the crop centre (the crop is centred on the centroid); training draws
    the very same channel in place of a random part of the masks (training/centroid_input.py), so the network has
    seen this input before it must grade from it.
    """
    axes = [(np.arange(n) - (n - 1) / 2.0) * s - o for n, s, o in zip(shape_zyx, spacing_zyx, offset_zyx_mm)]
    z, y, x = np.meshgrid(*axes, indexing="ij", sparse=True)
    radii = [d / 2.0 for d in diameters_zyx_mm]
    return ((z / radii[0]) ** 2 + (y / radii[1]) ** 2 + (x / radii[2]) ** 2 <= 1.0).astype(np.float32)

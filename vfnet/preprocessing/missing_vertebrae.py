"""Vertebrae missing from a mask between two labelled neighbours, estimated from the CT where the spine has room.

A segmentation model can leave out a vertebra (a severely fractured body is the one it is least sure of), and a
mask eroded by three voxels of a 3 mm-slice CT loses small and fractured bodies altogether (phantom benchmark: 11 of
280 graded vertebrae, 8 of them fractured; documentation/benchmarks.md). Their neighbours still say where they are:
a label of the standard sequence C1-L5 that is absent between two present labels gets a centre on the line between
theirs, at its place in the run, and the CT estimate around all the centres (centroid_masks.py, as for centroid
input) gives its voxels, pasted where the mask has none. Only where the two neighbours' centres lie far enough
apart to hold the missing ones (ROOM_FRACTION of the spine's step there each: a fractured body is shorter): a spine
with eleven thoracic vertebrae, labelled T11 then L1, has no room for a T12 and gets none. T13 (28) and L6 (25) are
variants and never counted missing; runs longer than MAX_MISSING_RUN are left alone (a mask of two spine regions,
not a gap). Training masks are not filled: a graded label missing from its mask is the dataset's error.
"""
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from vfnet.labels import level_name
from vfnet.preprocessing.centroid_masks import estimate_vertebra_mask, typical_gap_mm
from vfnet.preprocessing.preprocessor import mask_centres

SPINE_SEQUENCE = list(range(1, 20)) + [28] + list(range(20, 26))   # C1 ... T12, T13, L1 ... L6, head to feet
VARIANTS = (25, 28)       # L6, T13: present in some spines only, so never missing
MAX_MISSING_RUN = 4
ROOM_FRACTION = 0.65      # of the spine's local centre-to-centre step, per vertebra between two neighbours


@dataclass
class MissingVertebrae:
    mask: sitk.Image                                        # the given mask, with the estimated vertebrae added
    between: dict[int, tuple[int, int]] = field(default_factory=dict)   # added label -> (label above, below)

    @property
    def labels(self) -> list[int]:
        return sorted(self.between)

    def note(self) -> str:
        levels = ", ".join(f"{level_name(label)} (between {level_name(above)} and {level_name(below)})"
                           for label, (above, below) in sorted(self.between.items()))
        return (f"the given mask has no {levels}: estimated from the CT's bone around the point its neighbours "
                f"put it at (check the picture)")

    def vertebra_note(self, label: int) -> str:
        above, below = self.between[label]
        return (f"not in the given mask: estimated from the CT between {level_name(above)} and {level_name(below)} "
                f"(bone threshold; check the picture)")


def gaps_between(centres: dict[int, np.ndarray]) -> dict[int, tuple[int, int, float]]:
    """Missing label -> (label above, label below, fraction of the way from the one above), for every run of at most
    MAX_MISSING_RUN labels absent between two present ones whose centres (x, y, z mm) have room for them."""
    chain = [label for label in SPINE_SEQUENCE if label in centres or label not in VARIANTS]
    present = [index for index, label in enumerate(chain) if label in centres]
    steps = {index: float(np.linalg.norm(centres[chain[index + 1]] - centres[chain[index]]))
             for index, following in zip(present, present[1:]) if following == index + 1}   # index -> step below it
    gaps = {}
    for upper, lower in zip(present, present[1:]):
        run = chain[upper + 1:lower]
        if not run or len(run) > MAX_MISSING_RUN:
            continue
        above, below = chain[upper], chain[lower]
        room = np.linalg.norm(centres[below] - centres[above]) / _local_step(steps, upper, lower, above)
        if room >= ROOM_FRACTION * (len(run) + 1):
            gaps.update({label: (above, below, place / (len(run) + 1)) for place, label in enumerate(run, start=1)})
    return gaps


def _local_step(steps: dict[int, float], upper: int, lower: int, above: int) -> float:
    """The spine's centre-to-centre step around a gap: the steps just above and below it (vertebrae grow down the
    spine), else the median of all, else a typical gap."""
    nearby = [steps[index] for index in (upper - 1, lower) if index in steps]
    if nearby or steps:
        return float(np.median(nearby or list(steps.values())))
    return typical_gap_mm(above)


def add_missing_vertebrae(mask: sitk.Image, ct: sitk.Image) -> MissingVertebrae:
    """The integer VerSe mask with its missing vertebrae estimated from `ct` (on the mask's grid, the CT's)."""
    centres = {label: np.asarray(point) for label, point in mask_centres(mask).items()}
    gaps = gaps_between(centres)
    if not gaps:
        return MissingVertebrae(mask)
    for label, (above, below, fraction) in gaps.items():
        centres[label] = centres[above] + fraction * (centres[below] - centres[above])
    points = {label: tuple(point) for label, point in centres.items()}
    estimate = sitk.GetArrayFromImage(estimate_vertebra_mask(ct, points))
    array = sitk.GetArrayFromImage(mask)
    added = np.isin(estimate, list(gaps)) & (array == 0)
    array[added] = estimate[added]
    found = {int(label) for label in np.unique(array[added])}
    if not found:
        return MissingVertebrae(mask)
    result = sitk.GetImageFromArray(array)
    result.CopyInformation(mask)
    return MissingVertebrae(result, {label: gaps[label][:2] for label in sorted(found)})

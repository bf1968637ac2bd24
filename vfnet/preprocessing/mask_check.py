"""Do a scan's given vertebra masks hold the bone its CT shows? If far from it, snap them to that bone.

A segmentation model's masks are off by much the same amount everywhere in a scan (eroded, dilated, shifted). Masks
a voxel off cost little (documentation/benchmarks.md), but masks two voxels of a 3 mm slice off take or add 6 mm
at each endplate of a 25 mm body: the measured heights go wrong and the network, which has learned the outline of
exact masks, follows them. The mask estimated from the CT around each mask's centre (centroid_masks.py, the
centroid path's estimate) does not depend on how generous the given mask was, so it is the check:
`volume_ratio` is the median over the scan's vertebrae of (voxels of the given mask) / (voxels of the estimate).
Outside [LOW_RATIO, HIGH_RATIO] vfnet_predict grades on the given labels snapped to the estimate's bone
(`snap_to_bone`) and says so. Snapping keeps the user's labels and takes only the outline from the CT; grading on
the estimate itself was worse (its split between neighbours depends on where the mask's centres fall, and an
eroded mask's centres fall on the body, a dilated one's shift along the spine).

Measured (scratch scans over the phantom benchmark's 40 CTs, 2026-11-28): the phantom's own masks 0.77-0.93
(the estimate is a little generous), masks eroded by one voxel 0.33-0.60, by two 0.10-0.42, dilated by one
1.10-1.56, by two 1.37-2.19, shifted 0.77-0.93; the real TotalSegmentator example 0.87 (its own mask), the real
TPTBox sample 0.66 (expert mask, three lumbar vertebrae). The limits sit far from the real masks: a mask holding
less than 0.4 or more than 1.6 times the bone is off by more than one voxel of a thick-sliced scan. Which scans of
the benchmark this catches, and what it gained, is in documentation/benchmarks.md.
"""
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from vfnet.morphometry.genant import mask_statistics
from vfnet.preprocessing.centroid_masks import estimate_around_mask_centres

LOW_RATIO = 0.4
HIGH_RATIO = 1.6
REACH_MM = 8.0     # bone this close to a given label is that label's: two voxels of 3 mm slices plus a margin


@dataclass(frozen=True)
class MaskCheck:
    volume_ratio: float | None         # median given / estimated voxels over the checked vertebrae; None: unchecked
    snapped: sitk.Image | None         # the given masks snapped to the CT's bone, set only when they are off

    @property
    def masks_are_off(self) -> bool:
        return self.snapped is not None

    def note(self) -> str:
        side = "less" if self.volume_ratio < LOW_RATIO else "more"
        return (f"the given masks hold {self.volume_ratio:.2f} times the bone the CT shows around their centres "
                f"(median over the vertebrae; {LOW_RATIO:g}-{HIGH_RATIO:g} expected): far {side} than a vertebra, "
                f"so each was measured and graded on its given label snapped to the bone the CT shows "
                f"(check the picture; --keep_masks uses the given masks)")


def check_masks(mask: sitk.Image, ct: sitk.Image, labels: Iterable[int]) -> MaskCheck:
    """Compare the integer mask's vertebrae of `labels` with the CT estimate around their centres."""
    estimate = estimate_around_mask_centres(mask, ct)
    given, estimated = mask_statistics(mask), mask_statistics(estimate)
    ratios = [given.GetNumberOfPixels(label) / estimated.GetNumberOfPixels(label)
              for label in map(int, labels) if given.HasLabel(label) and estimated.HasLabel(label)]
    if not ratios:
        return MaskCheck(None, None)
    ratio = float(np.median(ratios))
    if LOW_RATIO <= ratio <= HIGH_RATIO:
        return MaskCheck(ratio, None)
    return MaskCheck(ratio, snap_to_bone(mask, estimate))


def snap_to_bone(mask: sitk.Image, estimate: sitk.Image, reach_mm: float = REACH_MM) -> sitk.Image:
    """The given labels on the estimate's bone: each voxel of bone (any estimated vertebra) within `reach_mm` of a
    given label takes the nearest given label; everything else is background.

    The labels stay the user's (which vertebra is which), the outline becomes the CT's: a dilated mask loses the
    disc and soft tissue it covered, an eroded one gets back the rim of bone around what it kept. A label with no
    bone within reach keeps its given voxels, so that every given vertebra is still there to be graded.
    """
    given = sitk.GetArrayFromImage(mask)
    bone = sitk.GetArrayViewFromImage(estimate) > 0
    occupied = ndimage.find_objects(((given > 0) | bone).astype(np.uint8))
    if not occupied:
        return sitk.Image(mask)
    spacing = np.asarray(mask.GetSpacing())[::-1]
    margin = np.ceil(reach_mm / spacing).astype(int)
    # Only the spine's box: the nearest-label indices of a whole thin-slice CT would cost GBs.
    box = tuple(slice(max(part.start - extra, 0), min(part.stop + extra, length))
                for part, extra, length in zip(occupied[0], margin, given.shape))
    labels = given[box]
    distance, nearest = ndimage.distance_transform_edt(labels == 0, sampling=spacing, return_indices=True)
    snapped = np.zeros_like(given)
    snapped[box] = np.where(bone[box] & (distance <= reach_mm), labels[tuple(nearest)], 0)
    for label in np.setdiff1d(np.unique(labels), np.unique(snapped[box])):
        snapped[given == label] = label
    image = sitk.GetImageFromArray(snapped)
    image.CopyInformation(mask)
    return image

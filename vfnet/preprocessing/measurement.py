"""What preprocessing measures of each vertebra, at training and at prediction alike.

`measure_vertebrae`: the body morphometry of vfnet.morphometry on the given mask. Three kinds of vertebra are
measured again on the mask estimated from the CT around the mask's centres, as centroid input is
(centroid_masks.py), and keep that measurement where it succeeds and is itself believable:
- a mask that leaves no endplates to measure: eroded too far (two voxels off on 3 mm slices take 12 mm from a body,
  and a severe fracture's body is 10-15 mm high);
- a posterior height below POSTERIOR_FRACTION of the anterior or middle height: no Genant deformity looks like
  that (the posterior height is the reference the others lose against), but a mask dilated across the spinal
  canal does, when the back of the body is placed behind it and the "posterior" height is the bridge's;
- a body deeper than DEPTH_FACTOR times the level's typical body depth: the canal was not found at all (a mask
  dilated across it everywhere), and the middle and posterior heights were read in the posterior elements.
A body cut by the scan's border stays unmeasured. On the phantom benchmark (Genant's rule on the 280 graded
vertebrae) none of the three fires with the phantom's own masks or shifted ones; with masks eroded by one / two
voxels the first fires for 1 / 5 vertebrae, with masks dilated by one voxel for 2, and with masks dilated by two
the third for 14 and the second for 4 (17 of them normal); the rule's macro-F1 goes from 0.721 / 0.671 / 0.780 /
0.662 to 0.731 / 0.716 / 0.777 / 0.705 (eroded 1 / 2, dilated 1 / 2). Bodies measure at most 1.24 times their
level's typical depth with the phantom's masks and masks a voxel off, 2.9-3.3 times where the canal was missed.

`mask_error_morphometry`: the same measurement on the mask degraded in the plan's ways (mask_errors.py), stored
with each training crop (training/mask_error_input.py).
"""
from typing import Any, Iterable, Sequence

import SimpleITK as sitk

from vfnet.morphometry.genant import json_ready, mask_statistics, measure_spine
from vfnet.morphometry.heights import NO_ENDPLATES_NOTE
from vfnet.preprocessing.centroid_masks import estimate_around_mask_centres
from vfnet.preprocessing.mask_errors import degrade_mask
from vfnet.typical_sizes import typical_body_size_mm

POSTERIOR_FRACTION = 0.6
DEPTH_FACTOR = 1.6
ESTIMATED_MASK_NOTE = "measured on a mask estimated from the CT around its centre: the given mask gave {}"


def measure_vertebrae(mask: sitk.Image, ct: sitk.Image, labels: Iterable[int]) -> dict[int, dict[str, Any]]:
    """{label: measure_spine's report} for the labels of `labels` present in the integer mask."""
    statistics = mask_statistics(mask)
    present = [int(label) for label in labels if statistics.HasLabel(int(label))]
    reports = measure_spine(mask, ct, present) if present else {}
    doubtful = {label: problem for label, problem in ((label, _doubt(label, report))
                                                      for label, report in reports.items()) if problem}
    if doubtful and ct is not None:
        again = measure_spine(estimate_around_mask_centres(mask, ct), ct, list(doubtful))
        for label, problem in doubtful.items():   # only a believable measurement replaces the mask's
            if again[label]["morphometric_grade"] is not None and _doubt(label, again[label]) is None:
                notes = [*again[label]["notes"], ESTIMATED_MASK_NOTE.format(problem)]
                reports[label] = {**again[label], "notes": notes}
    return reports


def _doubt(label: int, report: dict[str, Any]) -> str | None:
    """Why a vertebra's measurement on its mask is not to be believed, or None."""
    if NO_ENDPLATES_NOTE in report["notes"]:
        return "no endplates"
    if report["body_depth_mm"] > DEPTH_FACTOR * typical_body_size_mm(label)[1]:
        return "a body far deeper than a vertebral body is (the spinal canal not found behind it)"
    if report["morphometric_grade"] is not None and \
            report["posterior_mm"] < POSTERIOR_FRACTION * max(report["anterior_mm"], report["middle_mm"]):
        return "a posterior height far below the anterior and middle ones"
    return None


def mask_error_morphometry(mask: sitk.Image, ct: sitk.Image, labels: Iterable[int],
                           names: Sequence[str]) -> dict[int, dict[str, Any]]:
    """{label: {error name: the vertebra's report measured on the degraded mask, or None}}.

    None where the degraded mask no longer holds the vertebra (eroded away) or its body cannot be measured:
    training then sees that vertebra's ratios as unavailable, as prediction would.
    """
    labels = [int(label) for label in labels]
    result: dict[int, dict[str, Any]] = {label: {} for label in labels}
    for name in names:
        measured = measure_vertebrae(degrade_mask(mask, name), ct, labels)
        for label in labels:
            result[label][name] = json_ready(measured[label]) if label in measured else None
    return result

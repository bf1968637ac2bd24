"""Which label convention a vertebra mask uses: VerSe, TotalSegmentator v1 or TotalSegmentator v2 ('total' task).

The same id names different levels in each (27 is Cocc in VerSe, T8 in TotalSegmentator v1, L5 in v2), so a wrong
guess grades the wrong vertebrae without any error. With `--label_format auto` a convention is accepted only if
the mask looks like a spine when read with it:
  - every id in the mask is one the convention defines;
  - the labels it calls vertebrae are vertebra-sized, stack in level order along the body axis (C1 on top) and
    each sits above or below its neighbour, not beside it;
  - no label it calls something else (an organ) sits in that column with a vertebra's size.
VerSe (vfnet's own convention) wins when it fits. TotalSegmentator v1 and v2 number the vertebrae in the same
direction, 9 levels apart, so when both fit the spacing of consecutive vertebrae decides (a lumbar level is
~35 mm, an upper thoracic one ~22 mm); if it does not, the mask is refused with a line asking for --label_format.
"""
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from vfnet.errors import VfnetError
from vfnet.labels import (TOTALSEGMENTATOR_MAX_ID, TOTALSEGMENTATOR_SACRUM, TOTALSEGMENTATOR_TO_VERSE,
                          TOTALSEGMENTATOR_V1_TO_VERSE, TOTALSEGMENTATOR_V2_SPINAL_CORD, VERSE_LEVELS, level_name)
from vfnet.typical_sizes import spine_position, typical_body_size_mm

MAX_VERTEBRA_ML = 250.0        # a whole lumbar vertebra is ~60-100 mL; anything far larger is an organ
NEIGHBOUR_OFFSET_MM = 30.0     # neighbouring vertebrae are above one another, not side by side
IN_COLUMN_MM = 15.0            # an organ label this close to the column's axis, vertebra-sized, is suspicious
PITCH_PER_BODY_HEIGHT = 1.3    # level-to-level distance ~ body height + disc
PITCH_TOLERANCE = (0.75, 1.33)  # patient size varies by about this much
PITCH_DECISIVE = 0.2           # |log ratio| by which the better TotalSegmentator version must win


@dataclass(frozen=True)
class LabelFormat:
    name: str
    title: str
    max_id: int
    to_verse: dict[int, int]                   # mask id -> VerSe id, vertebrae only (S1 and coccyx included)
    column_structures: dict[int, str] = field(default_factory=dict)  # non-vertebrae that do sit in the column

    def structure(self, mask_id: int) -> str:
        """What this convention calls `mask_id`, in words."""
        if mask_id in self.to_verse:
            return level_name(self.to_verse[mask_id])
        return self.column_structures.get(mask_id, f"{self.title} structure {mask_id} (not a vertebra)")


FORMATS = {
    "verse": LabelFormat("verse", "VerSe", max(VERSE_LEVELS), {i: i for i in VERSE_LEVELS}),
    "totalsegmentator_v1": LabelFormat("totalsegmentator_v1", "TotalSegmentator v1", TOTALSEGMENTATOR_MAX_ID["v1"],
                                       TOTALSEGMENTATOR_V1_TO_VERSE, {TOTALSEGMENTATOR_SACRUM["v1"]: "sacrum"}),
    "totalsegmentator_v2": LabelFormat("totalsegmentator_v2", "TotalSegmentator v2", TOTALSEGMENTATOR_MAX_ID["v2"],
                                       TOTALSEGMENTATOR_TO_VERSE, {TOTALSEGMENTATOR_SACRUM["v2"]: "sacrum",
                                                                   TOTALSEGMENTATOR_V2_SPINAL_CORD: "spinal cord"}),
}
ALIASES = {"totalsegmentator": "totalsegmentator_v2"}   # the option's meaning before v1 was told apart
LABEL_FORMATS = ("auto", *FORMATS, *ALIASES)


@dataclass(frozen=True)
class LabelStatistics:
    centre: dict[int, np.ndarray]   # physical (x, y, z) mm, LPS: z grows towards the head
    volume_ml: dict[int, float]


def label_statistics(mask: sitk.Image) -> LabelStatistics:
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.SetComputePerimeter(False)
    statistics.Execute(sitk.Cast(mask, sitk.sitkUInt32) if mask.GetPixelID() != sitk.sitkUInt32 else mask)
    labels = [int(label) for label in statistics.GetLabels()]
    return LabelStatistics({label: np.asarray(statistics.GetCentroid(label)) for label in labels},
                           {label: statistics.GetPhysicalSize(label) / 1000.0 for label in labels})


def _position(verse_id: int) -> float:
    return 25.0 if verse_id in (26, 27) else spine_position(verse_id)   # S1 / coccyx below L5 (L6)


def _vertebrae(form: LabelFormat, stats: LabelStatistics) -> list[int]:
    """Mask ids read as vertebrae, cranial first; tiny ones (cut by the scan) are left out of the geometry."""
    ids = [i for i in stats.centre if i in form.to_verse]
    if not ids:
        return []
    typical = float(np.median([stats.volume_ml[i] for i in ids]))
    whole = [i for i in ids if stats.volume_ml[i] >= 0.3 * typical]
    return sorted(whole, key=lambda i: _position(form.to_verse[i]))


def implausibility(form: LabelFormat, stats: LabelStatistics) -> str | None:
    """Why `stats` cannot be a mask in `form`, in words; None when it can."""
    unknown = sorted(i for i in stats.centre if not 1 <= i <= form.max_id)
    if unknown:
        return f"ids {unknown[:5]} do not exist in it"
    vertebrae = _vertebrae(form, stats)
    if not vertebrae:
        return "it would hold no vertebra"
    huge = [i for i in vertebrae if stats.volume_ml[i] > MAX_VERTEBRA_ML]
    if huge:
        return f"id {huge[0]} would be {form.structure(huge[0])} but holds {stats.volume_ml[huge[0]]:.0f} mL"
    for upper, lower in zip(vertebrae, vertebrae[1:]):
        offset = stats.centre[upper] - stats.centre[lower]
        if offset[2] <= 0:
            return f"{form.structure(upper)} (id {upper}) would lie below {form.structure(lower)} (id {lower})"
        if np.hypot(offset[0], offset[1]) > NEIGHBOUR_OFFSET_MM:
            return f"{form.structure(upper)} (id {upper}) would lie beside {form.structure(lower)}, not above it"
    typical = float(np.median([stats.volume_ml[i] for i in vertebrae]))
    lowest, highest = stats.centre[vertebrae[-1]][2], stats.centre[vertebrae[0]][2]
    for other in stats.centre:
        if other in form.to_verse or other in form.column_structures:
            continue
        if not 0.3 * typical <= stats.volume_ml[other] <= 3 * typical:
            continue
        nearest = min(vertebrae, key=lambda i: np.linalg.norm(stats.centre[i] - stats.centre[other]))
        offset = stats.centre[other] - stats.centre[nearest]
        if np.hypot(offset[0], offset[1]) < IN_COLUMN_MM and lowest - 60.0 < stats.centre[other][2] < highest + 60.0:
            return f"id {other}, {form.structure(other)}, would sit in the spinal column with a vertebra's size"
    return None


def pitch_ratio(form: LabelFormat, stats: LabelStatistics) -> float | None:
    """Median of measured / typical distance between consecutive vertebrae (None with fewer than two)."""
    vertebrae = [i for i in _vertebrae(form, stats) if form.to_verse[i] not in (26, 27)]
    ratios = []
    for upper, lower in zip(vertebrae, vertebrae[1:]):
        levels = [label for label in VERSE_LEVELS if label not in (26, 27)
                  and _position(form.to_verse[upper]) <= _position(label) < _position(form.to_verse[lower])]
        expected = sum(PITCH_PER_BODY_HEIGHT * typical_body_size_mm(label)[0] for label in levels)
        if expected > 0:
            ratios.append(float(np.linalg.norm(stats.centre[upper] - stats.centre[lower])) / expected)
    return float(np.median(ratios)) if ratios else None


def choose_label_format(mask: sitk.Image, path, requested: str) -> tuple[LabelFormat, str]:
    """(format, how it was chosen in words); raise VfnetError when `auto` cannot tell."""
    if requested != "auto":
        return FORMATS[ALIASES.get(requested, requested)], "as given by --label_format"
    stats = label_statistics(mask)
    if not stats.centre:   # an empty mask: nothing to tell apart; the caller reports that it holds no vertebra
        return FORMATS["verse"], "chosen automatically"
    reasons = {name: implausibility(form, stats) for name, form in FORMATS.items()}
    if reasons["verse"] is None:
        return FORMATS["verse"], "chosen automatically"
    fitting = [name for name in ("totalsegmentator_v1", "totalsegmentator_v2") if reasons[name] is None]
    if len(fitting) == 2:
        fitting = _by_pitch(stats)
        if len(fitting) == 1:
            return FORMATS[fitting[0]], "chosen automatically from the spacing of its vertebrae"
        raise VfnetError(f"Mask {path} fits both TotalSegmentator v1 and v2 label ids (the levels would differ by 9), "
                         f"and the spacing of its vertebrae does not settle it; rerun with --label_format "
                         f"totalsegmentator_v2 (TotalSegmentator 2.x) or totalsegmentator_v1 (1.x).")
    if len(fitting) == 1:
        return FORMATS[fitting[0]], "chosen automatically"
    why = "; ".join(f"not {FORMATS[name].title}: {reason}" for name, reason in reasons.items())
    raise VfnetError(f"Mask {path} does not look like a vertebra mask in any known label convention ({why}); "
                     f"check the file, or rerun with --label_format verse, totalsegmentator_v1 or totalsegmentator_v2.")


def _by_pitch(stats: LabelStatistics) -> list[str]:
    ratios = {name: pitch_ratio(FORMATS[name], stats) for name in ("totalsegmentator_v1", "totalsegmentator_v2")}
    if any(ratio is None for ratio in ratios.values()):
        return list(ratios)
    misfit = {name: abs(np.log(ratio)) for name, ratio in ratios.items()}
    best = min(misfit, key=misfit.get)
    worst = max(misfit, key=misfit.get)
    low, high = PITCH_TOLERANCE
    if low <= ratios[best] <= high and misfit[worst] - misfit[best] > PITCH_DECISIVE:
        return [best]
    return list(ratios)

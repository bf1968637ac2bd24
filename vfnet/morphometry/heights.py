"""Anterior, middle and posterior heights of one vertebral body, along the vertebra's own axis.

1. Resample the vertebra's mask (and the CT) onto a thin mid-sagittal slab aligned with its local frame
   (`frame.local_frame`): array axes (cranio-caudal, anterior->posterior, right->left) at 0.5 mm; then turn the
   slab in the sagittal plane onto the body's own endplates (their mean slope) and resample again.
2. Isolate the body: along the antero-posterior axis the mask is occupied from the front of the body back to
   the spinal canal, a gap (or a thin bridge) of at least CANAL_GAP_MM; behind it are the posterior elements.
3. At 12 % of the body's depth from the front (anterior), at half (middle) and at 12 % from the back
   (posterior), average the columns of a small window into one cranio-caudal profile and find the two
   endplates: where the mask profile crosses 0.5, refined on the CT profile to where it crosses half-way
   between the body's bone and the disc's soft tissue. The refinement makes the heights sub-voxel and robust to
   masks that are a voxel or two too small or too large (a segmentation model's masks), since the endplate is
   then found in the image, not in the mask. Without a CT, or where bone and disc do not differ by
   MIN_CONTRAST_HU (e.g. severe osteoporosis), the mask's edges are used. A body that the scan's border cuts
   near an endplate is not measured: the edge there is the scan's.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

try:   # measuring needs SimpleITK; the network inputs of stored crops (training) do not (benchmarks/gpu_check.sh)
    import SimpleITK as sitk
except ImportError:
    sitk = None

SAMPLE_MM = 0.5                 # in-plane sampling of the sagittal slab
SLAB_HALF_WIDTH_MM = 4.0        # left-right half-width of the mid-sagittal slab
SLAB_STEP_MM = 1.0
EXTENT_CRANIO_CAUDAL_MM = 90.0  # grid extent: a lumbar body (~30 mm) and its discs, tilted, fit easily
EXTENT_ANTERO_POSTERIOR_MM = 130.0
CANAL_GAP_MM = 2.0              # a gap this wide behind the body is the spinal canal, not a hole in the mask
CANAL_FRACTION = 0.25           # ... "gap": columns lower than this fraction of the body's tallest column
EDGE_FRACTION = 0.12            # anterior/posterior positions as a fraction of the body depth from each wall
WINDOW_FRACTION = 0.05          # +- this fraction of the depth around each position is averaged
SEARCH_MM = 5.0                 # the CT endplate is looked for within this distance of the mask's edge ...
WIDE_SEARCH_MM = 8.0            # ... or, where none is found there, this far (a dilated mask on thick slices)
DISC_MM = 6.0                   # soft tissue is sampled this far beyond each endplate
MIN_CONTRAST_HU = 50.0
BORDER_MARGIN_MM = 1.0          # an endplate this close to the scan's border may lie outside it: not measured
MAX_SHIFT_MM = 6.0              # the CT may move a mask's endplate this far: two voxels of 3 mm slices
CASE_MOVE_LIMIT_MM = 10.0       # moves up to this far count towards the scan's typical move of an endplate ...
CASE_TOLERANCE_MM = 3.0         # ... and a move this far from that typical move is accepted
MIN_CASE_MOVES = 6              # endplates found on the CT needed for a typical move (else: per vertebra)
OWN_AGREEMENT_MM = 1.5          # a vertebra whose positions move an endplate alike (this close) keeps its move
MIN_TURN_DEGREES = 2.0          # the slab is turned onto the body's own endplates when they tilt more than this
MAX_TURN_DEGREES = 25.0
POSITIONS = {"anterior": EDGE_FRACTION, "middle": 0.5, "posterior": 1.0 - EDGE_FRACTION}
NO_ENDPLATES_NOTE = "the body touches the end of the measuring grid or has no endplates"


@dataclass
class BodyHeights:
    anterior_mm: float = float("nan")
    middle_mm: float = float("nan")
    posterior_mm: float = float("nan")
    body_depth_mm: float = float("nan")
    endplates_from: str = ""             # "ct" (refined on the image), "mask", or "" when unmeasured
    notes: list[str] = field(default_factory=list)
    # Per position {"mask": (lower, upper), "ct": (lower, upper) or None}, slab samples: what `settle` decides on.
    endplate_edges: dict[str, dict] = field(default_factory=dict, repr=False)

    @property
    def measured(self) -> bool:
        return all(np.isfinite(h) and h > 0 for h in (self.anterior_mm, self.middle_mm, self.posterior_mm))

    def as_dict(self) -> dict[str, Any]:
        return {"anterior_mm": self.anterior_mm, "middle_mm": self.middle_mm, "posterior_mm": self.posterior_mm,
                "body_depth_mm": self.body_depth_mm, "endplates_from": self.endplates_from,
                "notes": list(self.notes)}


def slab_grid(centre_mm, frame: np.ndarray) -> sitk.Image:
    """Reference grid of the mid-sagittal slab: direction = frame (columns left, posterior, superior)."""
    spacing = np.array([SLAB_STEP_MM, SAMPLE_MM, SAMPLE_MM])
    size = np.array([2 * int(round(SLAB_HALF_WIDTH_MM / SLAB_STEP_MM)) + 1,
                     int(round(EXTENT_ANTERO_POSTERIOR_MM / SAMPLE_MM)),
                     int(round(EXTENT_CRANIO_CAUDAL_MM / SAMPLE_MM))])
    grid = sitk.Image([int(n) for n in size], sitk.sitkUInt8)
    grid.SetSpacing([float(s) for s in spacing])
    grid.SetDirection([float(v) for v in frame.flatten()])
    origin = np.asarray(centre_mm, dtype=float) - frame @ ((size - 1) / 2.0 * spacing)
    grid.SetOrigin([float(v) for v in origin])
    return grid


def resample_slab(image: sitk.Image, grid: sitk.Image, default: float) -> np.ndarray:
    """Linear resampling onto the slab; array axes (cranio-caudal, antero-posterior, left-right)."""
    resampled = sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear, float(default), sitk.sitkFloat32)
    return sitk.GetArrayFromImage(resampled)


def measure_body(label_mask: sitk.Image, ct: sitk.Image | None, centre_mm, frame: np.ndarray,
                 scan: sitk.Image | None = None) -> BodyHeights:
    """Heights of the body of the vertebra in `label_mask` (float 0/1 image of this vertebra only).

    Two passes: the neighbours' axis can differ from the body's own (L5 against the lumbosacral angle), so the
    slab is turned, within the sagittal plane, until the mean slope of the two endplates is zero; a wedge's
    converging endplates then lie symmetric about the measuring direction. `scan` (any image on the scan's
    grid), given for a vertebra that touches the scan's border, leaves the heights unmeasured where the body
    runs out of the scan: the edge found there is the scan's, not an endplate.
    """
    mask = resample_slab(label_mask, slab_grid(centre_mm, frame), 0.0)
    slope = endplate_slope(mask)
    if slope is not None and abs(math.degrees(math.atan(slope))) > MIN_TURN_DEGREES:
        left, posterior, superior = frame.T
        along_endplates = posterior + slope * superior
        along_endplates /= np.linalg.norm(along_endplates)
        frame = np.stack([left, along_endplates, np.cross(left, along_endplates)], axis=1)
        mask = resample_slab(label_mask, slab_grid(centre_mm, frame), 0.0)
    grid = slab_grid(centre_mm, frame)
    hu = resample_slab(ct, grid, -1024.0) if ct is not None else None
    in_scan = inside_scan(scan, grid) if scan is not None else None
    return heights_on_slab(mask, hu, in_scan=in_scan)


def inside_scan(scan: sitk.Image, grid: sitk.Image) -> np.ndarray:
    """True where a sample of the slab `grid` lies inside `scan`'s voxels (array axes as resample_slab)."""
    from vfnet.preprocessing.crop import index_to_world, points_inside_scan   # needs SimpleITK, as measuring does
    size = grid.GetSize()
    indices = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), axis=-1).reshape(-1, 3)
    return points_inside_scan(scan, index_to_world(grid, indices)).reshape(size).transpose(2, 1, 0)


def endplate_slope(mask: np.ndarray, sample_mm: float = SAMPLE_MM) -> float | None:
    """Mean slope (cranio-caudal per antero-posterior mm) of the body's upper and lower edges in the slab, fitted
    over the central 80 % of its depth; None when the body cannot be found. Capped at MAX_TURN_DEGREES."""
    inside = mask > 0.5
    if not inside.any():
        return None
    front, back, _ = _body_extent(inside, sample_mm)
    depth = back - front + 1
    columns = range(front + depth // 10, back - depth // 10 + 1)
    positions, tops, bottoms = [], [], []
    profile = inside.mean(axis=2) > 0.5
    for column in columns:
        runs = _runs(profile[:, column])
        if runs:
            start, stop = max(runs, key=lambda run: run[1] - run[0])
            positions.append(column)
            bottoms.append(start)
            tops.append(stop)
    if len(positions) < 4:
        return None
    slope = (np.polyfit(positions, tops, 1)[0] + np.polyfit(positions, bottoms, 1)[0]) / 2.0
    limit = math.tan(math.radians(MAX_TURN_DEGREES))
    return float(np.clip(slope, -limit, limit))


def heights_on_slab(mask: np.ndarray, hu: np.ndarray | None, sample_mm: float = SAMPLE_MM,
                    in_scan: np.ndarray | None = None) -> BodyHeights:
    """Heights from a slab already aligned with the vertebra (mask in [0, 1]; optional CT in HU; optional
    boolean `in_scan`, False where the slab leaves the scan)."""
    result = BodyHeights()
    inside = mask > 0.5
    if not inside.any():
        result.notes.append("the vertebra mask is empty")
        return result
    front, back, canal_found = _body_extent(inside, sample_mm)
    if not canal_found:
        result.notes.append("no spinal canal behind the body in the mid-sagittal plane; the posterior height "
                            "may include posterior elements")
    if front == 0:
        result.notes.append("the body reaches the front of the measuring grid")
        return result
    depth = back - front + 1
    result.body_depth_mm = depth * sample_mm
    window = max(1, int(round(WINDOW_FRACTION * depth)))
    edges = {}
    for name, fraction in POSITIONS.items():
        position = front + int(round(fraction * (depth - 1)))
        columns = slice(max(front, position - window), min(back, position + window) + 1)
        mask_profile = mask[:, columns, :].mean(axis=(1, 2))
        hu_profile = hu[:, columns, :].mean(axis=(1, 2)) if hu is not None else None
        edges[name] = _profile_edges(mask_profile, hu_profile, sample_mm)
        if in_scan is not None and _cut_by_scan(mask_profile, in_scan[:, columns, :], sample_mm):
            result.notes.append("the body is cut by the border of the scan")
            return result
    result.endplate_edges = edges
    return settle(result, sample_mm)


def settle(result: BodyHeights, sample_mm: float = SAMPLE_MM,
           typical_moves: tuple[float | None, float | None] = (None, None)) -> BodyHeights:
    """Set the heights from the endplates found (`result.endplate_edges`). With the scan's typical move of each
    endplate (`typical_moves`, from `case_typical_moves`), a CT endplate is accepted within CASE_TOLERANCE_MM of
    it, or of the vertebra's own move where its positions agree; otherwise within MAX_SHIFT_MM of the mask, as
    for a vertebra measured alone."""
    if not result.endplate_edges:
        return result
    sources = set()
    for name, (lower, upper, source) in _consistent_edges(result.endplate_edges, sample_mm, typical_moves).items():
        setattr(result, f"{name}_mm", float(upper - lower) * sample_mm)
        sources.add(source)
    # settle runs again once the scan's typical move is known: the note is decided afresh each time.
    result.notes = [note for note in result.notes if note != NO_ENDPLATES_NOTE]
    if not result.measured:
        result.notes.append(NO_ENDPLATES_NOTE)
        result.endplates_from = ""
    else:
        result.endplates_from = "ct" if sources == {"ct"} else "mask" if sources == {"mask"} else "ct+mask"
    return result


def case_typical_moves(bodies: Iterable[BodyHeights], sample_mm: float = SAMPLE_MM
                       ) -> tuple[float | None, float | None]:
    """The median CT move (slab samples) of the lower and of the upper endplates over every vertebra of a scan,
    or None where fewer than MIN_CASE_MOVES were found. A segmentation model's masks are off by much the same
    amount everywhere in a scan (eroded, dilated, shifted), so the scan-wide move tells a genuine correction
    (two voxels of an eroded mask: 6 mm on 3 mm slices) from a ridge across a thin disc (9-12 mm, or a few mm
    the wrong way), which one vertebra's three positions cannot."""
    return _median_moves([body.endplate_edges for body in bodies], CASE_MOVE_LIMIT_MM / sample_mm, MIN_CASE_MOVES)


def _median_moves(edge_sets: Iterable[dict[str, dict]], limit: float,
                  min_count: int) -> tuple[float | None, float | None]:
    """Median CT move (samples) of the lower and of the upper endplate over every position of `edge_sets` where
    both were found, counting moves up to `limit`; None for a side with fewer than `min_count` of them."""
    moves = [[move for move in side if abs(move) <= limit] for side in _ct_moves(edge_sets)]
    return tuple(float(np.median(side)) if len(side) >= min_count else None for side in moves)


def _ct_moves(edge_sets: Iterable[dict[str, dict]]) -> tuple[list[float], list[float]]:
    """The CT's moves (samples) of the lower and of the upper endplate at every position where both were found."""
    moves: tuple[list[float], list[float]] = ([], [])
    for edges in edge_sets:
        for found in edges.values():
            if found["mask"] and found["ct"]:
                for side in (0, 1):
                    moves[side].append(found["ct"][side] - found["mask"][side])
    return moves


def _body_extent(inside: np.ndarray, sample_mm: float) -> tuple[int, int, bool]:
    """First and last antero-posterior index of the body, and whether the canal was found behind it.

    The canal is where the slab's mean column height falls below CANAL_FRACTION of the body's: an empty gap in
    a clean mask, a thin bridge where a dilated mask or the laminae reach into the mid-sagittal slab.
    """
    column_heights = inside.sum(axis=0).mean(axis=1)
    indices = np.flatnonzero(column_heights > 0)
    front, last = int(indices[0]), int(indices[-1])
    min_gap = max(1, int(round(CANAL_GAP_MM / sample_mm)))
    tallest, run = 0.0, 0
    for index in range(front, last + 1):
        tallest = max(tallest, float(column_heights[index]))
        run = run + 1 if column_heights[index] < CANAL_FRACTION * tallest else 0
        if run >= min_gap:
            return front, index - run, True
    return front, last, False


def _profile_edges(mask_profile: np.ndarray, hu_profile: np.ndarray | None,
                   sample_mm: float) -> dict[str, tuple[float, float] | None]:
    """The two endplates (lower, upper; sample indices) of one averaged cranio-caudal profile, from the mask
    ("mask") and refined on the CT ("ct"); None where they cannot be found."""
    above = mask_profile > 0.5
    runs = _runs(above)
    if not runs:
        return {"mask": None, "ct": None}
    start, stop = max(runs, key=lambda run: run[1] - run[0])   # the body: the longest run (stop exclusive)
    if start == 0 or stop == len(mask_profile):
        return {"mask": None, "ct": None}
    lower = _crossing(mask_profile, start - 1, start, 0.5)
    upper = _crossing(mask_profile, stop - 1, stop, 0.5)
    refined = _refine_on_ct(hu_profile, lower, upper, sample_mm) if hu_profile is not None else None
    return {"mask": (lower, upper), "ct": refined}


def _cut_by_scan(mask_profile: np.ndarray, in_scan: np.ndarray, sample_mm: float) -> bool:
    """Whether the scan ends within BORDER_MARGIN_MM of the vertebra's mask anywhere along these columns."""
    occupied = np.flatnonzero(mask_profile > 0)
    if not occupied.size:
        return False
    margin = int(math.ceil(BORDER_MARGIN_MM / sample_mm))
    first, last = max(0, occupied[0] - margin), min(len(in_scan) - 1, occupied[-1] + margin)
    return not bool(in_scan[first:last + 1].all())


def _consistent_edges(edges: dict[str, dict], sample_mm: float,
                      typical_moves: tuple[float | None, float | None] = (None, None)
                      ) -> dict[str, tuple[float, float, str]]:
    """(lower, upper, source) per position. The CT corrects a mask that is a voxel or two off. Where the scan's
    typical move of an endplate is known, a move within CASE_TOLERANCE_MM of it is accepted and any other move
    (or a position where the CT shows no endplate) takes the typical move. Otherwise a move of at most
    MAX_SHIFT_MM is accepted; a larger one caught another ridge (the neighbour's endplate across a thin disc on
    thick slices) and takes, like a missing one, the median move of the same endplate at the other positions (a
    mask's error is much the same along one endplate). A vertebra whose positions agree on an endplate's move
    (`_agreed_moves`) uses that move in place of the scan's: a model's masks can be off differently on each
    vertebra, and a move found alike at two or three positions is no stray ridge."""
    limit = MAX_SHIFT_MM / sample_mm
    own = _median_moves([edges], limit, min_count=1)
    agreed = _agreed_moves(edges, sample_mm)

    def accepted(move: float | None, side: int) -> float | None:
        reference = agreed[side] if agreed[side] is not None else typical_moves[side]
        if reference is not None:
            return move if move is not None and abs(move - reference) <= CASE_TOLERANCE_MM / sample_mm \
                else reference
        return move if move is not None and abs(move) <= limit else own[side]

    result: dict[str, tuple[float, float, str]] = {}
    for name, found in edges.items():
        if found["mask"] is None:
            result[name] = (float("nan"), float("nan"), "mask")
            continue
        sides = []
        for side in (0, 1):
            move = accepted(found["ct"][side] - found["mask"][side] if found["ct"] else None, side)
            sides.append(None if move is None else found["mask"][side] + move)
        if None in sides:
            result[name] = (*found["mask"], "mask")
        else:
            result[name] = (sides[0], sides[1], "ct")
    return result


def _agreed_moves(edges: dict[str, dict], sample_mm: float) -> tuple[float | None, float | None]:
    """Per endplate (lower, upper): the median CT move of this vertebra's largest group of positions that moved
    the endplate alike (within OWN_AGREEMENT_MM), else None. A group of two needs each move within MAX_SHIFT_MM;
    all three positions may agree on up to WIDE_SEARCH_MM (a mask a voxel too small and a voxel off on 2-3 mm
    slices ends 6-8 mm from the endplate, and a stray ridge is not found alike at all three). A position that
    disagrees with the others caught another ridge (the neighbour's endplate across the disc) and is outvoted."""
    near, far = MAX_SHIFT_MM / sample_mm, WIDE_SEARCH_MM / sample_mm
    agreement = OWN_AGREEMENT_MM / sample_mm

    def believable(group: tuple[float, ...]) -> bool:
        return np.ptp(group) <= agreement and max(map(abs, group)) <= (far if len(group) == len(POSITIONS) else near)

    agreed = []
    for moves in _ct_moves([edges]):
        groups = [group for size in range(len(moves), 1, -1) for group in itertools.combinations(moves, size)
                  if believable(group)]
        # The largest group wins; between pairs, the one that agrees best.
        best = max(groups, key=lambda group: (len(group), -np.ptp(group)), default=None)
        agreed.append(None if best is None else float(np.median(best)))
    return agreed[0], agreed[1]


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    changes = np.flatnonzero(np.diff(padded))
    return list(zip(changes[::2].tolist(), changes[1::2].tolist()))


def _crossing(profile: np.ndarray, first: int, second: int, level: float) -> float:
    """Sub-sample position between indices `first` and `second` where the profile crosses `level`."""
    a, b = float(profile[first]), float(profile[second])
    if a == b:
        return (first + second) / 2.0
    return first + (level - a) / (b - a) * (second - first)


def _refine_on_ct(hu: np.ndarray, lower: float, upper: float, sample_mm: float) -> tuple[float, float] | None:
    """Endplates on the CT profile near the mask's edges, or None when the image shows none there."""
    searches = [int(round(mm / sample_mm)) for mm in (SEARCH_MM, WIDE_SEARCH_MM)]
    disc = int(round(DISC_MM / sample_mm))
    if lower - searches[-1] - disc < 1 or upper + searches[-1] + disc >= len(hu) - 1 or upper - lower < 4:
        return None
    new_lower = _first_endplate(hu, lower, searches, disc, outward=-1)
    new_upper = _first_endplate(hu, upper, searches, disc, outward=+1)
    if new_lower is None or new_upper is None or new_upper <= new_lower:
        return None
    return new_lower, new_upper


def _first_endplate(hu: np.ndarray, near: float, searches: list[int], disc: int, outward: int) -> float | None:
    """The endplate found with the narrowest search window that finds one."""
    for search in searches:
        edge = _endplate(hu, near, search, disc, outward)
        if edge is not None:
            return edge
    return None


def _endplate(hu: np.ndarray, near: float, search: int, disc: int, outward: int) -> float | None:
    """The edge of the endplate closest to `near`: the cortical endplate is a bright ridge with the dark disc
    outside it; the edge is where the profile crosses half-way between the ridge and the disc."""
    best = None
    centre = int(round(near))
    for peak in range(centre - search, centre + search + 1):
        if not (hu[peak] >= hu[peak - 1] and hu[peak] >= hu[peak + 1]):
            continue
        outside = hu[peak + outward:peak + outward * (disc + 1):outward]
        trough = int(np.argmin(outside))
        if hu[peak] - outside[trough] < MIN_CONTRAST_HU:
            continue
        level = (hu[peak] + outside[trough]) / 2.0
        # Walk outward from the ridge to the first sample below the level.
        index = peak
        while hu[index + outward] >= level:
            index += outward
        edge = _crossing(hu, index, index + outward, level)
        if best is None or abs(edge - near) < abs(best - near):
            best = edge
    return best

"""Two neighbouring vertebral bodies split at their disc, as the CT shows it, for the estimate from centroids.

`centroid_masks` first gives every bone voxel to its nearest centroid. Centroids a few mm off (a centroid model's)
put that half-way split into an endplate or tilt it across the body. Here, between each two neighbours, the bone
of their bodies is split where the CT shows their disc:
- where the disc leaves no bone between the two bodies, their bone falls apart into connected pieces, and the
  split follows the disc itself (`_sides_by_pieces`): on 2.5-3 mm slices a disc is one or two slices thick, and
  the line between two centres 4 mm off tilts every slab across it through an endplate (phantom benchmark,
  centroids 4 mm off: 329 of 537 neighbour pairs split so; the height loss's mean error against the exact
  masks' 0.024 -> 0.016);
- where bone at the threshold bridges the disc, the same among the bright bone, endplates and shells
  (`_sides_by_bright_pieces`): on 2.5-3 mm slices a thin disc's slice holds partial volume above the threshold
  (phantom benchmark, centroids 4 mm off: error 0.016 -> 0.015; with masks erring each their own way by up to two
  voxels, Genant's rule 0.748 -> 0.762);
- where even that bone bridges it (a spur, a fused disc), across the spine: the slab with the least body bone in
  the middle part of the way between the centres (`_sides_at_least_bone`).
Two things keep one centre's error from moving the split:
- "the body" is the bone in front of the spinal canal, found on the midline (`body_back_mm`), not the bone some
  mm in front of the centres: a centre moved forward left the back of both bodies to the nearest-centre split,
  and the fill along the spine then joined a vertebra's back to its neighbour's across the disc (posterior
  heights of 30-38 mm for 20-25 mm bodies on the phantom benchmark with centroids 4 mm off);
- the slabs are not smoothed: an osteoporotic body is a bright shell around dark bone, and a three-slab average
  put the disc (dark, between two bright endplates) above the body's own dark middle, which was then cut.
The slabs lie across the line joining the two centres. The spine's direction through four centres tilted less on
the phantom but cut a real lumbar body's front on the 3 mm TotalSegmentator example (documentation/benchmarks.md).
The posterior elements keep the nearest-centre split (they overlap their neighbours' along the spine).
Measured on the phantom benchmark and the real CTs (documentation/benchmarks.md, seventeenth and eighteenth
sessions).
"""
import numpy as np
from scipy import ndimage

from vfnet.labels import spine_order
from vfnet.morphometry.frame import local_frame

DISC_WINDOW = (0.3, 0.7)   # where, as a fraction of the way between two neighbours' centres, their disc is looked for
DISC_RADIUS_MM = 40.0      # bodies lie this close to the line joining the centres (a front ~30 mm from it)
PIECE_FRACTION = 0.15      # a piece of the two bodies' bone this large is a body's (or most of one): not a stray
BRIGHT_HU = 300.0          # where bone bridges the disc, its pieces are looked for again among bone this bright
DISC_DIP = 0.6             # the disc's slab holds at most this fraction of the window's median bone per slab
FRONT_MM = 3.0             # no canal found: the body is the bone this far in front of the centres (near its back)
MIDLINE_MM = 5.0           # the canal is looked for within this distance of the centres' sagittal plane ...
CANAL_MIN_MM = 3.0         # ... as a run this long without bone (under CANAL_EMPTY of the body's per bin)
CANAL_EMPTY = 0.25
PROFILE_MM = (-40.0, 30.0)  # the midline profile, from in front of the centres (negative) to behind them
BODY_PROFILE_MM = (-25, 0)  # in front of the centres: inside the body, where its bone per bin is taken from
CANAL_SEARCH_MM = (-15, 30)  # the canal's front is looked for from here backwards


def split_bodies_at_discs(world: np.ndarray, voxels: np.ndarray, hu: np.ndarray, assigned: np.ndarray,
                          labels: list[int], points: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """`assigned` (a label per bone voxel at `world`, mm, and `voxels`, grid indices, of CT value `hu`; 0 for
    none) with the bodies of each two neighbouring vertebrae (centres `points`, in `labels`' order) split at their
    disc: along it where it parts their bone (or their brightest bone), else in slabs as thick as the CT's coarsest
    `spacing` (so that each slab holds the same number of slices). Where none shows the disc (no slab dips under
    DISC_DIP of the window's median) the nearest-centre split stays."""
    slab_mm, bin_mm = max(1.0, max(spacing)), max(1.0, sorted(spacing)[1])   # the canal: at in-plane resolution
    result = assigned.copy()
    order = sorted(range(len(labels)), key=lambda index: spine_order(labels[index]))
    for upper, lower in zip(order, order[1:]):
        if spine_order(labels[lower]) - spine_order(labels[upper]) > 1:   # not neighbours: a level is missing
            continue
        _split_pair(world, voxels, hu, assigned, result, (points[upper], points[lower]),
                    (labels[upper], labels[lower]), slab_mm, bin_mm)
    return result


def body_back_mm(behind: np.ndarray, beside: np.ndarray, bin_mm: float = 1.0) -> float | None:
    """How far behind the centres (mm, negative: in front) the spinal canal begins, from bone voxels' distances
    behind and beside them: on the midline, in bins `bin_mm` wide (no finer than the voxels, or every other bin
    is empty), the first run of at least CANAL_MIN_MM without bone behind the body, with bone (the arch) further
    back. None where the profile shows no canal."""
    edges = PROFILE_MM[0] + bin_mm * np.arange(int(np.ceil((PROFILE_MM[1] - PROFILE_MM[0]) / bin_mm)) + 1)
    counts = np.histogram(behind[np.abs(beside) <= MIDLINE_MM], edges)[0]
    run = int(np.ceil(CANAL_MIN_MM / bin_mm))
    in_body = (edges[:-1] >= BODY_PROFILE_MM[0]) & (edges[:-1] < BODY_PROFILE_MM[1])
    body_level = float(np.median(counts[in_body]))
    if body_level == 0:
        return None
    empty = counts <= CANAL_EMPTY * body_level
    for start in np.flatnonzero((edges[:-1] >= CANAL_SEARCH_MM[0]) & (edges[:-1] < CANAL_SEARCH_MM[1])):
        if empty[start:start + run].all() and counts[start + run:].sum() > 0:
            return float(edges[start])
    return None


def _split_pair(world, voxels, hu, assigned, result, centres, pair_labels, slab_mm, bin_mm):
    """Split, in place in `result`, the bodies of the upper and lower vertebra (`centres`, `pair_labels`) at their
    disc: along it where it parts their bone, else at the slab across the line joining their centres with the least
    body bone (see the module)."""
    (upper_point, lower_point), (upper_label, lower_label) = centres, pair_labels
    length = float(np.linalg.norm(lower_point - upper_point))
    if length == 0:
        return
    axis = (lower_point - upper_point) / length
    # Unassigned bone counts too: a centre far off along the spine leaves its body's far end beyond its reach.
    pair = np.flatnonzero(np.isin(assigned, (upper_label, lower_label, 0)))
    offsets = world[pair] - upper_point
    along = offsets @ axis
    frame = local_frame(axis)
    behind, beside = offsets @ frame[:, 1], offsets @ frame[:, 0]
    between = (along >= 0) & (along <= length)
    back = body_back_mm(behind[between], beside[between], bin_mm)
    body = between & (behind < (-FRONT_MM if back is None else back)) & \
        (np.linalg.norm(offsets - np.outer(along, axis), axis=1) <= DISC_RADIUS_MM)
    in_bodies, along = pair[body], along[body]
    lower = _sides_by_pieces(voxels[in_bodies], along, length)
    if lower is None:   # partial volume of a thin disc's slice: the endplates and shells still part
        lower = _sides_by_bright_pieces(voxels[in_bodies], along, hu[in_bodies], length)
    if lower is None:
        lower = _sides_at_least_bone(along, length, slab_mm)
    if lower is not None:
        result[in_bodies] = np.where(lower, lower_label, upper_label)


def _sides_by_pieces(voxels: np.ndarray, along: np.ndarray, length: float) -> np.ndarray | None:
    """Which of two neighbours' body bone voxels (grid `voxels`, mm `along` the line from the upper centre to the
    lower, `length` long) belong to the lower, where their disc leaves no bone between them: their bone then falls
    apart into face-connected pieces, and each piece of at least PIECE_FRACTION of the bone goes whole to the side
    of the half-way mark where most of it lies. The disc's own surface splits them, however the line between two
    centres a few mm off tilts across it. Smaller pieces go to the side of the plane between the large ones. None
    where the large pieces do not lie on both sides (bone bridges the disc)."""
    if not len(voxels):
        return None
    low = voxels.min(axis=0)
    grid = np.zeros(tuple(voxels.max(axis=0) - low + 1), dtype=bool)
    indices = tuple((voxels - low).T)
    grid[indices] = True
    pieces = ndimage.label(grid)[0][indices]          # face-connected: a corner touch across a disc is no bridge
    sizes = np.bincount(pieces)
    large = np.flatnonzero(sizes >= PIECE_FRACTION * len(voxels))
    lower_pieces = [piece for piece in large if np.median(along[pieces == piece]) >= length / 2]
    upper_pieces = [piece for piece in large if piece not in lower_pieces]
    if not lower_pieces or not upper_pieces:
        return None
    in_lower, in_upper = np.isin(pieces, lower_pieces), np.isin(pieces, upper_pieces)
    plane = (along[in_upper].max() + along[in_lower].min()) / 2
    return np.where(in_lower | in_upper, in_lower, along >= plane)


def _sides_by_bright_pieces(voxels: np.ndarray, along: np.ndarray, hu: np.ndarray,
                            length: float) -> np.ndarray | None:
    """`_sides_by_pieces` among the bone brighter than BRIGHT_HU (cortical endplates and shells), the rest to the
    side of the plane between the two bodies' bright pieces. On 2.5-3 mm slices a thin disc's slice often holds
    bone-bright partial volume between two endplates: every neighbour pair of such a phantom scan was bridged."""
    bright = hu > BRIGHT_HU
    lower_bright = _sides_by_pieces(voxels[bright], along[bright], length)
    if lower_bright is None:
        return None
    plane = (along[bright][~lower_bright].max() + along[bright][lower_bright].min()) / 2
    lower = along >= plane
    lower[bright] = lower_bright
    return lower


def _sides_at_least_bone(along: np.ndarray, length: float, slab_mm: float) -> np.ndarray | None:
    """Which body bone voxels (mm `along` the line between the two centres, `length` long) lie below the slab across
    the line, in the middle part of the way, with the least bone: the disc where bone bridges it. None where no
    slab dips under DISC_DIP of the window's median."""
    edges = np.arange(DISC_WINDOW[0] * length, DISC_WINDOW[1] * length + slab_mm, slab_mm)
    if len(edges) < 4:    # fewer than three slabs: no dip to tell from noise
        return None
    counts = np.histogram(along, edges)[0]
    if not counts.any() or counts.min() > DISC_DIP * np.median(counts):
        return None
    # The disc: the run of least-bone slabs that starts first, split in its middle (a wide disc fills several).
    first = int(np.argmin(counts))
    last = first
    while last + 1 < len(counts) and counts[last + 1] == counts[first]:
        last += 1
    return along >= (edges[first] + edges[last + 1]) / 2

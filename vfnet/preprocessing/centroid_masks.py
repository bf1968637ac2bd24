"""Vertebra masks estimated from the CT around given centroids, so that centroid input takes the mask path.

A model trained on masks grades mostly from what the mask makes measurable: the body heights and Genant ratios
(vfnet.morphometry) and the mask channel. From centroids alone neither exists; with an ellipsoid in place of the
mask the phantom benchmark fell from macro-F1 0.74 (masks) to 0.22. Bone, though, is plain in CT:
1. every voxel brighter than BONE_HU near the centroids goes to its nearest centroid; along the spine a vertebra
   ends a little beyond half-way to its nearest neighbour, i.e. in the disc, which is darker anyway; then, between
   two neighbours, the bone of their bodies is split where the CT shows their disc, not half-way between the
   centres: centroids a few mm off (a centroid model's) put the half-way split into an endplate or tilted it
   across the body (`vfnet.preprocessing.disc_split`);
2. each vertebra is filled along the cranio-caudal direction between its first and last voxel of every column:
   osteoporotic cancellous bone is often darker than the threshold (a quarter of the voxels inside some phantom
   masks is below 130 HU) while the endplates stay bright; the spinal canal has no bone of the same vertebra
   above or below it and stays empty, so morphometry still finds the back of the body;
3. each vertebra keeps, of its substantial connected pieces, the one nearest its centroid.
The result is an ordinary VerSe-labelled mask on the CT grid: crops, morphometry (endplates refined on the CT, as
for any mask) and the network's mask channel then come from the same code as for masks. On the phantom benchmark
(five folds, out-of-fold) macro-F1 from centroids is 0.806 against 0.814 from the phantom's masks, 0.783 / 0.793 with
every centroid 2 / 4 mm off (with the half-way split 0.764 / 0.629 on earlier models; seed 0). BONE_HU was
chosen on that benchmark (Genant's rule on the estimated masks, half-gap 0.55: 0.60 / 0.66 / 0.72 / 0.74 / 0.74 /
0.69 at 100 / 110 / 120 / 130 / 140 / 150 HU; at 150 thin osteoporotic endplates break up and bodies measure
3-4 mm) and checked on the real CT of ../shared/data/real (at 150 its L2 measured as a severe fracture;
documentation/benchmarks.md).

It is a bone threshold, not a segmentation model: contrast-filled vessels touching a vertebral body, or metal,
end up in the mask. The prediction says that its vertebrae came from centroids with estimated masks.
"""
from typing import Mapping

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from vfnet.morphometry.frame import cranio_caudal_axis
from vfnet.morphometry.genant import mask_statistics
from vfnet.preprocessing.crop import canonical_axis_order, index_to_world
from vfnet.preprocessing.disc_split import split_bodies_at_discs
from vfnet.typical_sizes import typical_body_size_mm

Point = tuple[float, float, float]
BONE_HU = 135.0            # cancellous bone ~150-300 HU, cortical > 400, thin osteoporotic endplates on 3 mm slices
                           # ~150; discs ~70-110 HU, muscle < 80 (chosen: documentation/benchmarks.md)
REACH_MM = 55.0            # a lumbar vertebra reaches ~50 mm from its centre (body front, spinous process)
HALF_GAP_FRACTION = 0.6    # along the spine a vertebra reaches this fraction of the distance to its nearest
                           # neighbour (0.55 cut a real L5 short beside a partly seen sacrum's centroid)
LONE_DISC_MM = 8.0         # a lone vertebra (no neighbouring centroid): typical body height + this is its "gap"
MIN_PIECE_FRACTION = 0.2   # of a vertebra's largest connected piece
OFF_LINE_MM = 10.0         # a mask's centre this far from the midpoint of its neighbours' is not the vertebra's
LOST_BODY_FRACTION = 0.5   # ... when its mask also holds less than this fraction of each neighbour's voxels


def estimate_vertebra_mask(image: sitk.Image, centroids: Mapping[int, Point], bone_hu: float = BONE_HU) -> sitk.Image:
    """A UInt8 VerSe-labelled mask on `image`'s grid with one estimated vertebra per centroid (x, y, z mm);
    `bone_hu` is the bone threshold (benchmarks compare others)."""
    labels = sorted(int(label) for label in centroids)
    points = np.array([centroids[label] for label in labels], dtype=float)
    start, size = _region_around(image, points)
    hu = sitk.GetArrayFromImage(sitk.RegionOfInterest(image, size, start))
    bone = hu > bone_hu
    voxels = np.argwhere(bone)                                   # (z, y, x) indices in the region
    world = index_to_world(image, voxels[:, ::-1] + np.asarray(start))
    assigned = _nearest_vertebra(world, labels, points, centroids)
    assigned = split_bodies_at_discs(world, voxels, hu[bone], assigned, labels, points, image.GetSpacing())
    region_labels = np.zeros(hu.shape, dtype=np.uint8)
    region_labels[tuple(voxels.T)] = assigned
    region_labels = _fill_columns(region_labels, labels, 2 - canonical_axis_order(image)[0])
    centres = {label: np.asarray(image.TransformPhysicalPointToContinuousIndex([float(v) for v in centroids[label]]))
               [::-1] - np.asarray(start)[::-1] for label in labels}        # (z, y, x) in the region
    region_labels = _piece_nearest_centroid(region_labels, centres, np.asarray(image.GetSpacing())[::-1])
    region = sitk.GetImageFromArray(region_labels)
    region.SetSpacing(image.GetSpacing())
    region.SetDirection(image.GetDirection())
    region.SetOrigin(image.TransformIndexToPhysicalPoint([int(v) for v in start]))
    full = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    full.CopyInformation(image)
    return sitk.Paste(full, region, region.GetSize(), [0, 0, 0], [int(v) for v in start])


def estimate_around_mask_centres(mask: sitk.Image, ct: sitk.Image, bone_hu: float = BONE_HU) -> sitk.Image:
    """The estimate around the centre of every label of an integer mask (a mask to check or to measure again)."""
    statistics = mask_statistics(mask)
    labels = [int(label) for label in statistics.GetLabels()]
    centres = {label: np.array(statistics.GetCentroid(label)) for label in labels}
    sizes = {label: int(statistics.GetNumberOfPixels(label)) for label in labels}
    return estimate_vertebra_mask(ct, {label: tuple(point) for label, point in _on_the_spine(centres, sizes).items()},
                                  bone_hu)


def _on_the_spine(centres: dict[int, np.ndarray], sizes: dict[int, int]) -> dict[int, np.ndarray]:
    """Centres moved back onto the spine where a mask lost the body they belong to.

    A mask eroded by two voxels of a thick-sliced scan can lose a severely fractured body altogether and keep
    only its arch, whose centre lies 2-3 cm behind the body (phantom benchmark: 24 mm, 82 voxels left against its
    neighbours' 1,000-1,300); the bone of that body then goes to the neighbours. A centre farther than OFF_LINE_MM
    from the midpoint of its two neighbours' (a few mm on a normal spine, curved or not) is replaced by that
    midpoint, the farthest first, but only where the vertebra's mask is under a LOST_BODY_FRACTION of each
    neighbour's: a whole vertebra next to one cut by the scan's border (whose own centre is off) stays where it is
    (the real CT's T12 beside a T11 of 76 voxels).
    """
    points = dict(centres)
    for _ in range(len(points)):
        distances = {label: float(np.linalg.norm(points[label] - (points[label - 1] + points[label + 1]) / 2))
                     for label in points if label - 1 in points and label + 1 in points
                     and sizes[label] < LOST_BODY_FRACTION * min(sizes[label - 1], sizes[label + 1])}
        farthest = max(distances, key=distances.get, default=None)
        if farthest is None or distances[farthest] <= OFF_LINE_MM:
            break
        points[farthest] = (points[farthest - 1] + points[farthest + 1]) / 2
    return points


def typical_gap_mm(label: int) -> float:
    """Centre-to-centre distance to a neighbour where no neighbour says it: a typical body height plus a disc."""
    return typical_body_size_mm(label)[0] + LONE_DISC_MM


def _region_around(image: sitk.Image, points: np.ndarray) -> tuple[list[int], list[int]]:
    """Index start and size of the box REACH_MM around all centroids, clipped to the image."""
    low, high = points.min(axis=0) - REACH_MM, points.max(axis=0) + REACH_MM
    corners = np.array([[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])])
    indices = np.array([image.TransformPhysicalPointToContinuousIndex([float(c) for c in corner])
                        for corner in corners])
    size = np.asarray(image.GetSize())
    first = np.clip(np.floor(indices.min(axis=0)).astype(int), 0, size - 1)
    last = np.clip(np.ceil(indices.max(axis=0)).astype(int), 0, size - 1)
    return first.tolist(), (last - first + 1).tolist()


def _fill_columns(region_labels: np.ndarray, labels: list[int], axis: int) -> np.ndarray:
    """Each label filled between its first and last voxel along `axis` (the array axis nearest cranio-caudal)."""
    filled = region_labels.copy()
    for label, box in _label_boxes(region_labels, labels):
        inside = region_labels[box] == label
        after_first = np.maximum.accumulate(inside, axis=axis)
        before_last = np.flip(np.maximum.accumulate(np.flip(inside, axis=axis), axis=axis), axis=axis)
        in_box = filled[box]   # a view: written in place
        in_box[after_first & before_last & (in_box == 0)] = label
    return filled


def _label_boxes(region_labels: np.ndarray, labels) -> list[tuple[int, tuple[slice, ...]]]:
    """(label, bounding box) of each of `labels` present: per-vertebra work stays inside its box (a thin-slice CT's
    spine region holds tens of millions of voxels)."""
    boxes = ndimage.find_objects(region_labels)
    return [(label, boxes[label - 1]) for label in labels if label <= len(boxes) and boxes[label - 1] is not None]


def _nearest_vertebra(world: np.ndarray, labels: list[int], points: np.ndarray,
                      centroids: Mapping[int, Point]) -> np.ndarray:
    """Label of the nearest centroid for every bone voxel, 0 where none is near enough."""
    result = np.zeros(len(world), dtype=np.uint8)
    if not len(world):
        return result
    best = np.full(len(world), np.inf)
    for label, point in zip(labels, points):
        offsets = world - point
        distance = np.sqrt((offsets ** 2).sum(axis=1))
        axis, _ = cranio_caudal_axis(label, centroids)
        others = np.delete(points, labels.index(label), axis=0)
        # A lone vertebra has no neighbour to halve the distance to: a typical gap stands in.
        gap = float(np.min(np.linalg.norm(others - point, axis=1))) if len(others) else typical_gap_mm(label)
        along = np.abs(offsets @ axis)
        near = (distance < best) & (distance <= REACH_MM) & (along <= HALF_GAP_FRACTION * gap)
        best[near], result[near] = distance[near], label
    return result


def _piece_nearest_centroid(region_labels: np.ndarray, centres: Mapping[int, np.ndarray],
                            spacing_zyx: np.ndarray) -> np.ndarray:
    """Keep, of each vertebra's 26-connected pieces, the one nearest its centroid: stray bright voxels, rib ends
    and a neighbour's body that only a lone centroid could reach go."""
    kept = np.zeros_like(region_labels)
    structure = np.ones((3, 3, 3), dtype=bool)
    for label, box in _label_boxes(region_labels, list(centres)):
        pieces, count = ndimage.label(region_labels[box] == label, structure=structure)
        # Only substantial pieces compete: a few noisy soft-tissue voxels can lie nearer the centroid than bone.
        sizes = np.bincount(pieces.ravel())
        sizes[0] = 0
        voxels = np.argwhere(np.isin(pieces, np.flatnonzero(sizes >= MIN_PIECE_FRACTION * sizes.max())))
        corner = np.array([part.start for part in box])
        distances = np.linalg.norm((voxels + corner - centres[label]) * spacing_zyx, axis=1)
        kept[box][pieces == pieces[tuple(voxels[int(np.argmin(distances))])]] = label
    return kept

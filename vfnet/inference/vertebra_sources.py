"""Where a case's vertebrae come from: a VerSe/nnU-Net mask, TotalSegmentator output, or VerSe centroids.

Everything is turned into VerSe ids (`vfnet.labels`) here, so the rest of the predictor sees one convention.
Mask files looked up for case `<case>` in the masks folder:
  `<case>.nii.gz`, `<case>_seg-vert_msk.nii.gz`, `<case>_seg.nii.gz` (any image ending), or a folder `<case>/`
  of TotalSegmentator per-structure files `vertebrae_L1.nii.gz` ...; centroid files `<case>_ctd.json`,
  `<case>_seg-subreg_ctd.json` or `<case>.json`.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from vfnet.dataset.image_io import read_centroids, read_image
from vfnet.preprocessing.crop import canonical_axis_order
from vfnet.errors import VfnetError
from vfnet.inference.inputs import IMAGE_ENDINGS, looks_like_mask, split_image_name
from vfnet.labels import (GRADABLE_LABELS, TOTALSEGMENTATOR_FILE_TO_VERSE, TOTALSEGMENTATOR_TO_VERSE,
                          VERSE_LEVELS)

LABEL_FORMATS = ("auto", "verse", "totalsegmentator")
MASK_SUFFIXES = ("", "_seg-vert_msk", "_seg")
CENTROID_NAMES = ("{case}_ctd.json", "{case}_seg-subreg_ctd.json", "{case}.json")


@dataclass
class VertebraSource:
    mask_image: sitk.Image | None              # VerSe ids on the CT's grid, or None for centroid input
    centroids: dict[int, tuple[float, float, float]] | None
    labels: list[int]                         # gradable VerSe labels present, sorted
    cut_labels: set[int]                      # labels whose mask touches the scan's cranio-caudal border
    description: str                          # where the vertebrae came from, in words, for the user


def find_mask(case_id: str, masks: Path, exclude: Path | None = None) -> Path | None:
    """The mask file or per-structure folder for `case_id` in `masks` (a folder, or itself a file)."""
    if masks.is_file():
        return masks
    if _is_structure_folder(masks):
        return masks
    for suffix in MASK_SUFFIXES:
        for ending in IMAGE_ENDINGS:
            candidate = masks / f"{case_id}{suffix}{ending}"
            if candidate.is_file() and candidate != exclude:
                return candidate
    if _is_structure_folder(masks / case_id):
        return masks / case_id
    return None


def sole_mask_like_file(folder: Path) -> Path | None:
    """The only mask-looking image file in `folder` (e.g. TotalSegmentator's `--ml` output), if exactly one."""
    found = [path for path in folder.iterdir() if path.is_file()
             and (parts := split_image_name(path.name)) and looks_like_mask(parts[0])]
    return found[0] if len(found) == 1 else None


def find_centroids(case_id: str, folder: Path) -> Path | None:
    if folder.is_file():
        return folder
    for pattern in CENTROID_NAMES:
        candidate = folder / pattern.format(case=case_id)
        if candidate.is_file():
            return candidate
    return None


def detect_label_format(ids: set[int]) -> str:
    """TotalSegmentator's `total` ids reach 50 (C1); VerSe ids stop at 28 (T13)."""
    return "totalsegmentator" if any(i > max(VERSE_LEVELS) for i in ids) else "verse"


def load_mask_source(path: Path, image: sitk.Image, label_format: str) -> VertebraSource:
    """Read a mask (file or per-structure folder), map it to VerSe ids on the CT grid, list its vertebrae."""
    if path.is_dir():
        mask, chosen = _merge_structure_folder(path, image), "totalsegmentator per-structure folder"
    else:
        mask, chosen = _to_verse(read_image(path, "mask"), image, path, label_format)
    labels = _present_labels(mask)
    if not labels:
        raise VfnetError(f"Mask {path} holds no gradable vertebra (VerSe ids 1-25 or 28 after mapping as "
                         f"{chosen}).")
    return VertebraSource(mask, None, labels, _touching_cranio_caudal_border(mask, labels),
                          f"{path} ({chosen} labels)")


def load_centroid_source(path: Path, image: sitk.Image, label_format: str) -> VertebraSource:
    centroids = read_centroids(path, image)
    if label_format == "totalsegmentator":
        centroids = {TOTALSEGMENTATOR_TO_VERSE[i]: p for i, p in centroids.items() if i in TOTALSEGMENTATOR_TO_VERSE}
    unknown = sorted(set(centroids) - set(VERSE_LEVELS))
    if unknown:
        raise VfnetError(f"Centroid file {path} has labels {unknown} that are not VerSe vertebra ids.")
    labels = sorted(label for label in centroids if label in GRADABLE_LABELS)
    if not labels:
        raise VfnetError(f"Centroid file {path} lists no gradable vertebra.")
    return VertebraSource(None, centroids, labels, set(), f"{path} (VerSe centroids)")


def _to_verse(mask: sitk.Image, image: sitk.Image, path: Path, label_format: str) -> tuple[sitk.Image, str]:
    mask = _on_image_grid(mask, image, path)
    array = sitk.GetArrayViewFromImage(mask)
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.mod(array, 1) == 0):
        raise VfnetError(f"Mask {path} holds non-integer values; a label image is required.")
    ids = set(np.unique(array).astype(np.int64).tolist()) - {0}
    chosen = detect_label_format(ids) if label_format == "auto" else label_format
    if chosen == "verse":
        unknown = sorted(ids - set(VERSE_LEVELS))
        if unknown:
            raise VfnetError(f"Mask {path} has labels {unknown[:10]} that are not VerSe vertebra ids (1-28); "
                             f"use --label_format totalsegmentator for TotalSegmentator output.")
        table = {i: i for i in ids}
    else:
        table = {i: TOTALSEGMENTATOR_TO_VERSE[i] for i in ids if i in TOTALSEGMENTATOR_TO_VERSE}
    lookup = np.zeros(max(ids, default=0) + 1, dtype=np.uint8)
    for source_id, verse_id in table.items():
        lookup[source_id] = verse_id
    mapped = sitk.GetImageFromArray(lookup[np.clip(array.astype(np.int64), 0, None)])
    mapped.CopyInformation(image)
    return mapped, ("chosen automatically: " + chosen) if label_format == "auto" else chosen


def _merge_structure_folder(folder: Path, image: sitk.Image) -> sitk.Image:
    merged = np.zeros(sitk.GetArrayViewFromImage(image).shape, dtype=np.uint8)
    for path in sorted(folder.iterdir()):
        parts = split_image_name(path.name)
        if parts is None or parts[0] not in TOTALSEGMENTATOR_FILE_TO_VERSE:
            continue
        structure = _on_image_grid(read_image(path, "mask"), image, path)
        merged[sitk.GetArrayViewFromImage(structure) > 0] = TOTALSEGMENTATOR_FILE_TO_VERSE[parts[0]]
    result = sitk.GetImageFromArray(merged)
    result.CopyInformation(image)
    return result


def _is_structure_folder(folder: Path) -> bool:
    return folder.is_dir() and any((parts := split_image_name(p.name)) and parts[0] in TOTALSEGMENTATOR_FILE_TO_VERSE
                                   for p in folder.iterdir())


def _on_image_grid(mask: sitk.Image, image: sitk.Image, path: Path) -> sitk.Image:
    """The mask on the CT's voxel grid: same grid within rounding, or resampled (nearest neighbour) if it overlaps."""
    tolerance = 1e-3 * min(image.GetSpacing())
    same_grid = (mask.GetSize() == image.GetSize()
                 and np.allclose(mask.GetSpacing(), image.GetSpacing(), atol=tolerance)
                 and np.allclose(mask.GetOrigin(), image.GetOrigin(), atol=tolerance)
                 and np.allclose(mask.GetDirection(), image.GetDirection(), atol=1e-4))
    if same_grid:
        mask = sitk.Image(mask)
        mask.CopyInformation(image)
        return mask
    resampled = sitk.Resample(mask, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, mask.GetPixelID())
    if not sitk.GetArrayViewFromImage(resampled).any():
        raise VfnetError(f"Mask {path} does not overlap its CT: their geometries (origin, spacing, direction) differ.")
    return resampled


def _present_labels(mask: sitk.Image) -> list[int]:
    ids = np.unique(sitk.GetArrayViewFromImage(mask))
    return sorted(int(i) for i in ids if int(i) in GRADABLE_LABELS)


def _touching_cranio_caudal_border(mask: sitk.Image, labels: list[int]) -> set[int]:
    """Labels whose voxels reach the first or last slice along the image axis closest to head-feet."""
    array_axis = 2 - canonical_axis_order(mask)[0]  # ITK axis index -> numpy axis index
    array = sitk.GetArrayViewFromImage(mask)
    size = array.shape[array_axis]
    first = np.take(array, 0, axis=array_axis)
    last = np.take(array, size - 1, axis=array_axis)
    border_ids = set(np.unique(first).tolist()) | set(np.unique(last).tolist())
    return {label for label in labels if label in border_ids}

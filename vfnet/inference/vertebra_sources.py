"""Where a case's vertebrae come from: a VerSe/nnU-Net mask, TotalSegmentator output, or VerSe centroids.

Everything is turned into VerSe ids (`vfnet.labels`) here, so the rest of the predictor sees one convention; which
convention a mask file uses is decided by `label_formats.py`. Every mask label that will not be graded is listed
with its reason, and a mask resampled onto its CT's grid says so.
Mask files looked up for case `<case>` in the masks folder:
  `<case>.nii.gz`, `<case>_seg-vert_msk.nii.gz`, `<case>_seg.nii.gz` (any image ending), or a folder `<case>/`
  of TotalSegmentator per-structure files `vertebrae_L1.nii.gz` ...; centroid files `<case>_ctd.json`,
  `<case>_seg-subreg_ctd.json` or `<case>.json`.
"""
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from vfnet.dataset.image_io import read_centroids, read_image
from vfnet.errors import VfnetError
from vfnet.inference.inputs import IMAGE_ENDINGS, looks_like_mask, split_image_name
from vfnet.inference.label_formats import ALIASES, FORMATS, LABEL_FORMATS, choose_label_format
from vfnet.labels import GRADABLE_LABELS, TOTALSEGMENTATOR_FILE_TO_VERSE, level_name
from vfnet.preprocessing.crop import canonical_axis_order

__all__ = ["LABEL_FORMATS", "VertebraSource", "find_mask", "find_centroids", "load_mask_source",
           "load_centroid_source", "sole_mask_like_file"]
NOT_GRADED = {26: "S1 is sacral: Genant grading covers C1-L5", 27: "the coccyx is not graded"}
MASK_SUFFIXES = ("", "_seg-vert_msk", "_seg")
CENTROID_NAMES = ("{case}_ctd.json", "{case}_seg-subreg_ctd.json", "{case}.json")


@dataclass
class VertebraSource:
    mask_image: sitk.Image | None              # VerSe ids on the CT's grid, or None for centroid input
    centroids: dict[int, tuple[float, float, float]] | None
    labels: list[int]                         # gradable VerSe labels present, sorted
    cut_labels: set[int]                      # labels whose mask touches the scan's cranio-caudal border
    description: str                          # where the vertebrae came from, in words, for the user
    not_predicted: list[dict] = field(default_factory=list)   # {"label", "structure", "reason"} per skipped label
    notes: list[str] = field(default_factory=list)            # e.g. the mask was resampled onto the CT grid
    mask_resampled: bool = False
    mask_volume_ratio: float | None = None   # given / CT-estimated mask voxels (preprocessing/mask_check.py)
    vertebra_note: str = ""                  # said in every vertebra's note (e.g. its mask was snapped to the bone)
    label_notes: dict[int, str] = field(default_factory=dict)   # said of one vertebra (e.g. not in the given mask)

    def vertebra_note_for(self, label: int) -> str:
        """What the vertebra's note says about where it came from."""
        return "; ".join(note for note in (self.label_notes.get(label, ""), self.vertebra_note) if note)


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


def load_mask_source(path: Path, image: sitk.Image, label_format: str) -> VertebraSource:
    """Read a mask (file or per-structure folder), map it to VerSe ids on the CT grid, list its vertebrae."""
    if path.is_dir():
        mask, resampled, not_predicted = _merge_structure_folder(path, image)
        chosen = "totalsegmentator per-structure folder"
    else:
        mask, resampled, not_predicted, chosen = _to_verse(read_image(path, "mask"), image, path, label_format)
    labels = _present_labels(mask)
    if not labels:
        raise VfnetError(f"Mask {path} holds no gradable vertebra (VerSe ids 1-25 or 28 after mapping as "
                         f"{chosen}).")
    notes = [f"mask {path.name if resampled is True else resampled} is on another voxel grid than the CT; it was "
             f"resampled onto the CT grid (nearest neighbour)"] if resampled else []
    return VertebraSource(mask, None, labels, _touching_cranio_caudal_border(mask, labels),
                          f"{path} ({chosen} labels)", not_predicted, notes, bool(resampled))


def load_centroid_source(path: Path, image: sitk.Image, label_format: str) -> VertebraSource:
    centroids = read_centroids(path, image)
    form = FORMATS[ALIASES.get(label_format, label_format)] if label_format != "auto" else FORMATS["verse"]
    unknown = sorted(set(centroids) - set(form.to_verse))
    if unknown:
        raise VfnetError(f"Centroid file {path} has labels {unknown} that are not {form.title} vertebra ids; "
                         f"pass the file's convention with --label_format.")
    centroids = {form.to_verse[i]: point for i, point in centroids.items()}
    labels = sorted(label for label in centroids if label in GRADABLE_LABELS)
    if not labels:
        raise VfnetError(f"Centroid file {path} lists no gradable vertebra.")
    not_predicted = [_skipped(label, level_name(label), NOT_GRADED[label]) for label in sorted(centroids)
                     if label in NOT_GRADED]
    return VertebraSource(None, centroids, labels, set(), f"{path} ({form.title} centroids)", not_predicted)


def _to_verse(mask: sitk.Image, image: sitk.Image, path: Path,
              label_format: str) -> tuple[sitk.Image, bool, list[dict], str]:
    """(mask in VerSe ids on the CT grid, whether it was resampled, labels not graded, convention in words)."""
    values = sitk.GetArrayViewFromImage(mask)
    if np.issubdtype(values.dtype, np.floating) and not np.all(np.mod(values, 1) == 0):
        raise VfnetError(f"Mask {path} holds non-integer values; a label image is required.")
    form, how = choose_label_format(mask, path, label_format)
    mask, resampled = _on_image_grid(mask, image, path)
    array = sitk.GetArrayViewFromImage(mask)
    ids = set(np.unique(array).astype(np.int64).tolist()) - {0}
    unknown = sorted(i for i in ids if not 1 <= i <= form.max_id)
    if unknown:
        hint = ("use --label_format totalsegmentator_v2 (or _v1) for TotalSegmentator output" if form.name == "verse"
                else "check --label_format")
        raise VfnetError(f"Mask {path} has labels {unknown[:10]} that are not {form.title} ids (1-{form.max_id}); "
                         f"{hint}.")
    lookup = np.zeros(max(ids, default=0) + 1, dtype=np.uint8)
    not_predicted = []
    for source_id in sorted(ids):
        verse_id = form.to_verse.get(source_id)
        if verse_id is not None:
            lookup[source_id] = verse_id
        if verse_id is None or verse_id in NOT_GRADED:
            reason = NOT_GRADED[verse_id] if verse_id is not None else "not a vertebra"
            not_predicted.append(_skipped(source_id, form.structure(source_id), reason))
    mapped = sitk.GetImageFromArray(lookup[np.clip(array.astype(np.int64), 0, None)])
    mapped.CopyInformation(image)
    return mapped, resampled, not_predicted, f"{form.title}, {how}"


def _skipped(label: int, structure: str, reason: str) -> dict:
    return {"label": int(label), "structure": structure, "reason": reason}


def _merge_structure_folder(folder: Path, image: sitk.Image) -> tuple[sitk.Image, str | bool, list[dict]]:
    """One VerSe-id mask from TotalSegmentator's per-structure files (the file name is the structure)."""
    merged = np.zeros(sitk.GetArrayViewFromImage(image).shape, dtype=np.uint8)
    resampled: list[str] = []
    not_predicted = []
    for path in sorted(folder.iterdir()):
        parts = split_image_name(path.name)
        if parts is None:
            continue
        label = TOTALSEGMENTATOR_FILE_TO_VERSE.get(parts[0])
        if label is None or label in NOT_GRADED:
            not_predicted.append(_skipped(label or 0, parts[0], NOT_GRADED.get(label, "not a vertebra")))
            continue
        structure, was_resampled = _on_image_grid(read_image(path, "mask"), image, path)
        resampled += [path.name] if was_resampled else []
        merged[sitk.GetArrayViewFromImage(structure) > 0] = label
    result = sitk.GetImageFromArray(merged)
    result.CopyInformation(image)
    return result, (", ".join(resampled) if resampled else False), not_predicted


def _is_structure_folder(folder: Path) -> bool:
    return folder.is_dir() and any((parts := split_image_name(p.name)) and parts[0] in TOTALSEGMENTATOR_FILE_TO_VERSE
                                   for p in folder.iterdir())


def _on_image_grid(mask: sitk.Image, image: sitk.Image, path: Path) -> tuple[sitk.Image, bool]:
    """(The mask on the CT's voxel grid, whether it had to be resampled): same grid within rounding, or resampled
    with nearest neighbour if it overlaps the CT."""
    tolerance = 1e-3 * min(image.GetSpacing())
    same_grid = (mask.GetSize() == image.GetSize()
                 and np.allclose(mask.GetSpacing(), image.GetSpacing(), atol=tolerance)
                 and np.allclose(mask.GetOrigin(), image.GetOrigin(), atol=tolerance)
                 and np.allclose(mask.GetDirection(), image.GetDirection(), atol=1e-4))
    if same_grid:
        mask = sitk.Image(mask)
        mask.CopyInformation(image)
        return mask, False
    resampled = sitk.Resample(mask, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, mask.GetPixelID())
    if not sitk.GetArrayViewFromImage(resampled).any():
        raise VfnetError(f"Mask {path} does not overlap its CT: their geometries (origin, spacing, direction) differ.")
    return resampled, True


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

"""dataset_fingerprint.json: measured facts only (spacings, vertebra extents, intensities, grade counts).

Cases are read in worker processes, one case per worker at a time. Extents come from
`scipy.ndimage.find_objects` on the mask (no per-label copies of the volume); intensities are a bounded,
seeded sample of voxels inside the graded vertebrae, plus each vertebra's median HU (all its voxels).
"""
from collections import Counter
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from vfnet.dataset.format import RawCase, RawDataset
from vfnet.dataset.image_io import orientation_code, read_centroids, read_image
from vfnet.dataset.integrity import geometry_mismatches
from vfnet.errors import DatasetError, VfnetError
from vfnet.labels import level_name
from vfnet.typical_sizes import typical_body_size_mm, typical_vertebra_extent_mm
from vfnet.preprocessing.crop import canonical_shape, canonical_spacing, crop_grid, resample_ct
from vfnet.preprocessing.target_channel import centroid_channel
from vfnet.preprocessing.parallel import map_cases
from vfnet.preprocessing.preprocessor import integer_mask

SAMPLES_PER_VERTEBRA = 2000   # intensity samples kept per vertebra: enough for 0.5/99.5 percentiles
SAMPLING_SEED = 1234


def case_fingerprint(case: RawCase) -> dict[str, Any]:
    """Facts about one case; raises DatasetError naming the file on unreadable or inconsistent input."""
    image = read_image(case.image, "image")
    rng = np.random.default_rng(SAMPLING_SEED)
    vertebrae: dict[str, dict[str, Any]] = {}
    samples: list[np.ndarray] = []
    mask_labels: set[int] = set()
    if case.mask is not None:
        mask_labels = _measure_from_mask(case, image, rng, vertebrae, samples)
    missing = [label for label in case.grades if label not in mask_labels]
    if missing:
        if case.centroids is None:
            raise DatasetError(f"mask {case.mask}: graded vertebra(e) {missing} are not in the mask.")
        centroids = read_centroids(case.centroids, image)
        for label in missing:
            if label not in centroids:
                raise DatasetError(f"centroid file {case.centroids}: graded vertebra {label} has no centroid.")
            vertebrae[str(label)] = _vertebra_entry(case, label, typical_vertebra_extent_mm(label), "typical")
            samples.append(_sample_ellipsoid(image, centroids[label], label, rng))
            vertebrae[str(label)]["median_hu"] = _median(samples[-1])
    return {"case": case.case_id, "patient": case.patient, "spacing": canonical_spacing(image),
            "shape": canonical_shape(image), "orientation": orientation_code(image),
            "vertebrae": {key: vertebrae[key] for key in sorted(vertebrae, key=int)},
            "intensity_samples": np.concatenate(samples).astype(np.float32) if samples else np.zeros(0, np.float32)}


def _vertebra_entry(case: RawCase, label: int, extent: Any, source: str) -> dict[str, Any]:
    return {"level": level_name(label), "grade": case.grades[label],
            "extent_mm": [round(float(e), 2) for e in extent], "extent_source": source}


def _measure_from_mask(case: RawCase, image: sitk.Image, rng: np.random.Generator,
                       vertebrae: dict[str, dict[str, Any]], samples: list[np.ndarray]) -> set[int]:
    mask = integer_mask(read_image(case.mask, "mask"))
    differences = geometry_mismatches(image, mask)
    if differences:   # a shifted or rescaled mask would silently crop the wrong vertebra
        raise DatasetError(f"mask {case.mask} is not on the grid of its image {case.image}: {'; '.join(differences)}.")
    labels = sitk.GetArrayViewFromImage(mask)
    if labels.min() < 0:
        raise DatasetError(f"mask {case.mask} contains negative labels.")
    hu = sitk.GetArrayViewFromImage(image)
    boxes = ndimage.find_objects(labels)
    found: set[int] = set()
    for label in case.grades:
        box = boxes[label - 1] if label <= len(boxes) else None
        if box is None:
            continue
        found.add(label)
        extent = _physical_extent_zyx(image, box)
        vertebrae[str(label)] = _vertebra_entry(case, label, extent, "mask")
        inside = hu[box][labels[box] == label]
        vertebrae[str(label)]["median_hu"] = _median(inside)
        if inside.size > SAMPLES_PER_VERTEBRA:
            inside = rng.choice(inside, SAMPLES_PER_VERTEBRA, replace=False)
        samples.append(np.asarray(inside, dtype=np.float32))
    return found


def _median(values: np.ndarray) -> float | None:
    """A vertebra's median HU: the model card's intensity range, checked against each predicted vertebra."""
    return round(float(np.median(values)), 1) if values.size else None


def _physical_extent_zyx(image: sitk.Image, box: tuple[slice, slice, slice]) -> list[float]:
    """Extent in mm along world (z, y, x) of an array-order bounding box, via its 8 corners (voxel edges)."""
    low = [box[2].start - 0.5, box[1].start - 0.5, box[0].start - 0.5]   # ITK index order (i, j, k)
    high = [box[2].stop - 0.5, box[1].stop - 0.5, box[0].stop - 0.5]
    corners = np.array([image.TransformContinuousIndexToPhysicalPoint(
        (high[0] if a else low[0], high[1] if b else low[1], high[2] if c else low[2]))
        for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    extent_xyz = corners.max(axis=0) - corners.min(axis=0)
    return [float(extent_xyz[2]), float(extent_xyz[1]), float(extent_xyz[0])]


def _sample_ellipsoid(image: sitk.Image, centre: Any, label: int, rng: np.random.Generator) -> np.ndarray:
    """HU inside the level's typical vertebral body around a centroid, on a 1 mm grid (centroid-only cases)."""
    body = typical_body_size_mm(label)
    size = [int(np.ceil(b)) + 1 for b in body]
    hu = resample_ct(image, crop_grid(centre, (1.0, 1.0, 1.0), size), "linear", -1024.0)
    inside = hu[centroid_channel(size, (1.0, 1.0, 1.0), body) > 0]   # the grid is centred on the centroid
    if inside.size > SAMPLES_PER_VERTEBRA:
        inside = rng.choice(inside, SAMPLES_PER_VERTEBRA, replace=False)
    return inside


def intensity_statistics(samples: np.ndarray) -> dict[str, float]:
    if samples.size == 0:
        raise VfnetError("No CT voxels inside any graded vertebra were found; cannot plan the normalization.")
    values = samples.astype(np.float64)
    return {"percentile_00_5": float(np.percentile(values, 0.5)), "percentile_99_5": float(np.percentile(values, 99.5)),
            "mean": float(values.mean()), "std": float(values.std()), "median": float(np.median(values)),
            "min": float(values.min()), "max": float(values.max()), "num_samples": int(values.size)}


def summarize(dataset: RawDataset, cases: list[dict[str, Any]], samples: np.ndarray) -> dict[str, Any]:
    """The fingerprint of the whole dataset from the per-case facts."""
    grades = Counter(entry["grade"] for case in cases for entry in case["vertebrae"].values())
    per_patient: Counter = Counter()
    cases_per_patient: Counter = Counter()
    for case in cases:
        per_patient[case["patient"]] += len(case["vertebrae"])
        cases_per_patient[case["patient"]] += 1
    counts = np.array(list(per_patient.values()) or [0])
    return {
        "dataset_name": dataset.name,
        "num_cases": len(cases), "num_patients": len(per_patient),
        "num_vertebrae": int(sum(grades.values())),
        "grade_counts": {str(grade): int(grades.get(grade, 0)) for grade in range(4)},
        "vertebrae_per_patient": {"min": int(counts.min()), "median": float(np.median(counts)),
                                  "max": int(counts.max())},
        "max_cases_per_patient": int(max(cases_per_patient.values(), default=0)),
        "intensity": intensity_statistics(samples),
        "cases": cases,
    }


def extract_fingerprint(dataset: RawDataset, num_processes: int) -> dict[str, Any]:
    """Measure every case in worker processes; a case that cannot be read stops the fingerprint with all errors."""
    outcomes = map_cases(case_fingerprint, [(case.case_id, case) for case in dataset.cases], num_processes,
                         "fingerprint")
    failures = [outcome for outcome in outcomes if outcome.error]
    if failures:
        listing = "\n".join(f"  - case {outcome.case_id}: {outcome.error}" for outcome in failures)
        raise DatasetError(f"The fingerprint of {dataset.folder} failed for {len(failures)} case(s):\n{listing}")
    cases, samples = [], []
    for outcome in outcomes:
        samples.append(outcome.result.pop("intensity_samples"))
        cases.append(outcome.result)
    return summarize(dataset, cases, np.concatenate(samples) if samples else np.zeros(0, np.float32))

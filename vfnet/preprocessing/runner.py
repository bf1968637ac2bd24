"""Preprocess a whole raw dataset into `<preprocessed>/<Dataset>/<data_identifier>/`, resumably.

The sample files are written and read by `samples.py`. A case is redone when any of its crops is missing or was
made from other inputs: another plan's preprocessing section, another grade, or another dataset.json entry
(patient, mask or centroid file). Crops of vertebrae that are no longer graded are removed, so training never
sees a stale label. A failing case is reported with its problem; the other cases are still preprocessed.
A training mask made on a coarser grid than its CT's is snapped to the CT's bone first (mask_check.py), as
vfnet_predict snaps such masks; its crops say so (`mask_snapped_to_bone`).
"""
import shutil
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from vfnet.dataset.format import RawCase, RawDataset
from vfnet.dataset.image_io import check_finite, read_centroids, read_image
from vfnet.dataset.integrity import geometry_mismatches
from vfnet.errors import DatasetError, VfnetError
from vfnet.fileio import remove_stale_temporaries
from vfnet.preprocessing.mask_check import snapped_if_coarse
from vfnet.preprocessing.parallel import map_cases
from vfnet.preprocessing.measurement import mask_error_morphometry
from vfnet.preprocessing.preprocessor import integer_mask, preprocess_case
from vfnet.preprocessing.samples import (entry_signature, preprocessing_signature, read_properties, remove_sample,
                                         sample_id, sample_ids_on_disk, write_sample)


@dataclass
class PreprocessingSummary:
    written: list[str] = field(default_factory=list)   # sample ids written by this run
    redone: int = 0                                    # of those, how many replaced an outdated crop
    removed: list[str] = field(default_factory=list)   # crops of vertebrae or cases no longer graded

    @property
    def new(self) -> int:
        return len(self.written) - self.redone


def crop_identity(case: RawCase, label: int, signature: str) -> dict[str, Any]:
    """The properties a crop must carry to be current; any difference redoes its case."""
    return {"case": case.case_id, "patient": case.patient, "grade": case.grades[label],
            "entry_signature": entry_signature(case.case_id, case.patient, case.image, case.mask, case.centroids),
            "preprocessing_signature": signature}


def _is_current(properties: dict[str, Any] | None, identity: dict[str, Any]) -> bool:
    return properties is not None and all(properties.get(key) == value for key, value in identity.items())


def case_status(case: RawCase, output_folder: Path, signature: str) -> tuple[bool, int]:
    """(done, number of complete but outdated crops of this case)."""
    existing = {label: read_properties(output_folder, sample_id(case.case_id, label)) for label in case.grades}
    done = all(_is_current(existing[label], crop_identity(case, label, signature)) for label in case.grades)
    return done, (0 if done else sum(properties is not None for properties in existing.values()))


def preprocess_raw_case(case: RawCase, preprocessing_plan: dict[str, Any], output_folder: Path) -> list[str]:
    """Read one raw case, crop all its graded vertebrae, and write them; returns the sample ids written."""
    image = read_image(case.image, "image")
    check_finite(image, case.image, "image")
    mask = integer_mask(read_image(case.mask, "mask")) if case.mask is not None else None
    differences = geometry_mismatches(image, mask) if mask is not None else []
    if differences:   # the mask may have been replaced after the fingerprint checked it
        raise DatasetError(f"mask {case.mask} is not on the grid of its image {case.image}: {'; '.join(differences)}.")
    centroids = read_centroids(case.centroids, image) if case.centroids is not None else None
    snapped = snapped_if_coarse(mask, image) if mask is not None else None
    mask = snapped if snapped is not None else mask   # blocky outlines: trained on what prediction grades
    crops = preprocess_case(image, mask, centroids, sorted(case.grades), preprocessing_plan)
    # Training only: the ratios the same vertebrae would give with a mask a voxel or two off (mask_errors.py).
    error_names = preprocessing_plan.get("morphometry_mask_errors", []) if preprocessing_plan.get("morphometry") else []
    variants = (mask_error_morphometry(mask, image, sorted(case.grades), error_names)
                if error_names and mask is not None else {})
    signature = preprocessing_signature(preprocessing_plan)
    written = []
    for label, (array, properties) in crops.items():
        name = sample_id(case.case_id, label)
        if label in variants:
            properties["morphometry_mask_errors"] = variants[label]
        if snapped is not None:
            properties["mask_snapped_to_bone"] = "the mask was made on a coarser grid than the CT's"
        write_sample(output_folder, array, {"sample": name, **properties, "source_file": str(case.image),
                                            **crop_identity(case, label, signature)})
        written.append(name)
    return written


def remove_ungraded(dataset: RawDataset, output_folder: Path) -> list[str]:
    """Delete crops whose vertebra (or case) is no longer graded in dataset.json."""
    expected = {sample_id(case.case_id, label) for case in dataset.cases for label in case.grades}
    stale = sorted(sample_ids_on_disk(output_folder) - expected)
    for sample in stale:
        remove_sample(output_folder, sample)
    return stale


def preprocess_dataset(dataset: RawDataset, plans: dict[str, Any], output_folder: Path, num_processes: int,
                       clean: bool = False) -> PreprocessingSummary:
    """Preprocess every case not yet current; raise VfnetError listing failed cases after finishing the others."""
    output_folder = Path(output_folder)
    if clean and output_folder.exists():
        shutil.rmtree(output_folder)
    output_folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(output_folder)   # left by a run killed mid-write
    summary = PreprocessingSummary(removed=remove_ungraded(dataset, output_folder))
    signature = preprocessing_signature(plans["preprocessing"])
    todo, outdated = [], {}
    for case in dataset.cases:
        done, outdated[case.case_id] = case_status(case, output_folder, signature)
        if not done:
            todo.append(case)
            for label in case.grades:   # an outdated crop must not survive a redo that fails
                remove_sample(output_folder, sample_id(case.case_id, label))
    worker = partial(preprocess_raw_case, preprocessing_plan=plans["preprocessing"], output_folder=output_folder)
    outcomes = map_cases(worker, [(case.case_id, case) for case in todo], num_processes, "preprocessing")
    for outcome in outcomes:
        if not outcome.error:
            summary.written += outcome.result
            summary.redone += outdated[outcome.case_id]
    failures = [outcome for outcome in outcomes if outcome.error]
    if failures:
        listing = "\n".join(f"  - case {outcome.case_id}: {outcome.error}" for outcome in failures)
        raise VfnetError(f"Preprocessing failed for {len(failures)} of {len(dataset.cases)} case(s) (the others "
                         f"are done in {output_folder}; fix these and rerun to finish):\n{listing}")
    return summary

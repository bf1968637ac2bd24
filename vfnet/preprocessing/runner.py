"""Preprocess a whole raw dataset into `<preprocessed>/<Dataset>/<data_identifier>/`, resumably.

Each sample is `<case>_<label>.npy` (float16) followed by `<case>_<label>.json`; the JSON is written last and
atomically, so its presence means the sample is complete and a rerun skips it (unless `clean`). The JSON also
records a signature of the plan's preprocessing section: a sample made with another plan (an edited spacing or
window) is redone, never served.
A failing case is reported with its problem; the other cases are still preprocessed.
"""
import hashlib
import json
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from vfnet.dataset.format import RawCase, RawDataset
from vfnet.dataset.image_io import check_finite, read_centroids, read_image
from vfnet.dataset.integrity import geometry_mismatches
from vfnet.errors import DatasetError, VfnetError
from vfnet.fileio import read_json, remove_stale_temporaries, save_npy, write_json
from vfnet.preprocessing.parallel import map_cases
from vfnet.preprocessing.preprocessor import preprocess_case


def sample_id(case_id: str, label: int) -> str:
    return f"{case_id}_{int(label)}"


def preprocessing_signature(preprocessing_plan: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(preprocessing_plan, sort_keys=True).encode()).hexdigest()[:16]


def is_case_done(case: RawCase, output_folder: Path, signature: str) -> bool:
    for label in case.grades:
        path = output_folder / f"{sample_id(case.case_id, label)}.json"
        try:
            if not path.exists() or read_json(path, "sample properties").get("preprocessing_signature") != signature:
                return False
        except (VfnetError, AttributeError):  # unreadable or not an object: redo it
            return False
    return True


def preprocess_raw_case(case: RawCase, preprocessing_plan: dict[str, Any], output_folder: Path) -> list[str]:
    """Read one raw case, crop all its graded vertebrae, and write them; returns the sample ids written."""
    image = read_image(case.image, "image")
    check_finite(image, case.image, "image")
    mask = read_image(case.mask, "mask") if case.mask is not None else None
    differences = geometry_mismatches(image, mask) if mask is not None else []
    if differences:   # the mask may have been replaced after the fingerprint checked it
        raise DatasetError(f"mask {case.mask} is not on the grid of its image {case.image}: {'; '.join(differences)}.")
    centroids = read_centroids(case.centroids, image) if case.centroids is not None else None
    crops = preprocess_case(image, mask, centroids, sorted(case.grades), preprocessing_plan)
    written = []
    for label, (array, properties) in crops.items():
        name = sample_id(case.case_id, label)
        save_npy(output_folder / f"{name}.npy", array.astype(np.float16))
        write_json(output_folder / f"{name}.json", {
            "sample": name, "case": case.case_id, "patient": case.patient, **properties,
            "grade": case.grades[label], "source_file": str(case.image),
            "preprocessing_signature": preprocessing_signature(preprocessing_plan)})
        written.append(name)
    return written


def preprocess_dataset(dataset: RawDataset, plans: dict[str, Any], output_folder: Path, num_processes: int,
                       clean: bool = False) -> list[str]:
    """Preprocess every case not yet done; raise VfnetError listing failed cases after finishing the others."""
    output_folder = Path(output_folder)
    if clean and output_folder.exists():
        shutil.rmtree(output_folder)
    output_folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(output_folder)   # left by a run killed mid-write
    signature = preprocessing_signature(plans["preprocessing"])
    todo = [case for case in dataset.cases if not is_case_done(case, output_folder, signature)]
    worker = partial(preprocess_raw_case, preprocessing_plan=plans["preprocessing"], output_folder=output_folder)
    outcomes = map_cases(worker, [(case.case_id, case) for case in todo], num_processes, "preprocessing")
    failures = [outcome for outcome in outcomes if outcome.error]
    if failures:
        listing = "\n".join(f"  - case {outcome.case_id}: {outcome.error}" for outcome in failures)
        raise VfnetError(f"Preprocessing failed for {len(failures)} of {len(dataset.cases)} case(s) (the others "
                         f"are done in {output_folder}; fix these and rerun to finish):\n{listing}")
    return [name for outcome in outcomes for name in outcome.result]


"""Predict every CT of an input: read -> vertebrae -> the training preprocessing -> fold ensemble -> outputs.

The checkpoints are loaded once per run; all vertebrae of a case go through each fold in one batch. A case
that fails (unreadable CT, no mask, no vertebra) is reported and skipped, the others are still predicted.
"""
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from vfnet.dataset.image_io import check_finite, orientation_code, read_image
from vfnet.errors import VfnetError
from vfnet.fileio import remove_stale_temporaries
from vfnet.evaluation.morphometry import body_heights
from vfnet.inference.ensemble import FoldEnsemble, checkpoint_path, load_fold_models
from vfnet.inference.inputs import InputCase, discover_cases
from vfnet.inference.outputs import (CUT_NOTE, load_complete_case, make_case_record, write_case_record,
                                     write_tables)
from vfnet.inference.vertebra_sources import (VertebraSource, find_centroids, find_mask, load_centroid_source,
                                              load_mask_source, sole_mask_like_file)
from vfnet.labels import level_name
from vfnet.planning.plans import load_plans
from vfnet.preprocessing.preprocessor import preprocess_case

# A vertebra with less of its crop inside the scan than this is flagged: its heights cannot be measured.
MIN_FRACTION_IN_VIEW = 0.9
MORPHOMETRY_KEYS = ("anterior_mm", "middle_mm", "posterior_mm", "height_loss", "morphometric_grade")


@dataclass
class PredictSettings:
    model_folder: Path
    folds: list[int | str]
    checkpoint_name: str = "checkpoint_final"
    mirror: bool = True
    device: str = "cpu"
    label_format: str = "auto"
    masks: Path | None = None        # folder or file; None: look beside the CTs
    centroids: Path | None = None    # folder or file of VerSe centroid JSONs
    overwrite: bool = False

    def signature(self) -> dict[str, Any]:
        """What a case's result depends on: a rerun with the same signature may reuse it."""
        checkpoints = {str(fold): checkpoint_path(self.model_folder, fold, self.checkpoint_name).stat().st_mtime_ns
                       for fold in self.folds}
        return {"model_folder": str(self.model_folder.resolve()), "checkpoint": self.checkpoint_name,
                "checkpoint_mtimes": checkpoints, "tta_mirror": self.mirror, "label_format": self.label_format,
                "masks": str(self.masks) if self.masks else None,
                "centroids": str(self.centroids) if self.centroids else None}


@dataclass
class PredictionRun:
    records: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)


def run_prediction(input_path: Path, output_folder: Path, settings: PredictSettings) -> PredictionRun:
    cases = discover_cases(input_path)
    plans = load_plans(settings.model_folder / "plans.json")
    ensemble = FoldEnsemble(load_fold_models(settings.model_folder, settings.folds, settings.checkpoint_name, plans),
                            mirror=settings.mirror, device=settings.device)
    signature = settings.signature()
    remove_stale_temporaries(output_folder)   # left by a run killed mid-write
    run = PredictionRun()
    for case in cases:
        earlier = None if settings.overwrite else load_complete_case(output_folder, case.case_id, signature)
        if earlier is not None:
            run.records.append(earlier)
            run.reused.append(case.case_id)
            continue
        try:
            started = time.perf_counter()
            record = predict_case(case, ensemble, plans, settings, signature, single_case=len(cases) == 1)
            write_case_record(output_folder, record)
            run.records.append(record)
            print(f"{case.case_id}: {len(record['vertebrae'])} vertebrae from {record['source']['vertebrae_from']} "
                  f"in {time.perf_counter() - started:.1f} s")
        except VfnetError as error:
            run.failures[case.case_id] = str(error)
            print(f"{case.case_id}: FAILED: {error}", file=sys.stderr)
        except Exception as error:  # a bug on one odd scan must not cost the other cases their predictions
            run.failures[case.case_id] = f"unexpected {type(error).__name__}: {error} (please report it)"
            print(f"{case.case_id}: FAILED: {run.failures[case.case_id]}", file=sys.stderr)
    write_tables(output_folder, run.records)
    return run


def predict_case(case: InputCase, ensemble: FoldEnsemble, plans: dict[str, Any], settings: PredictSettings,
                 signature: dict[str, Any], single_case: bool = False) -> dict[str, Any]:
    image = read_image(case.image, "CT")
    check_finite(image, case.image, "CT")
    source = vertebra_source(case, image, settings, single_case)
    crops = preprocess_case(image, source.mask_image, source.centroids, source.labels, plans["preprocessing"])
    labels = [label for label in source.labels if label in crops]
    if not labels:
        raise VfnetError(f"CT {case.image}: no vertebra of {source.description} could be cropped.")
    ensemble_output = ensemble.predict(np.stack([crops[label][0] for label in labels]))
    rows = [_vertebra_row(case.case_id, label, crops[label], probabilities, spread, label in source.cut_labels)
            for label, probabilities, spread in zip(labels, ensemble_output.probabilities,
                                                    ensemble_output.fold_spread)]
    source_info = {"image": str(case.image), "orientation": orientation_code(image),
                   "spacing": list(reversed(image.GetSpacing())), "vertebrae_from": source.description,
                   "folds": [str(fold) for fold in settings.folds],
                   "fold_spread": "standard deviation of p_fracture across folds"}
    return make_case_record(case.case_id, source_info, signature, rows)


def vertebra_source(case: InputCase, image: sitk.Image, settings: PredictSettings,
                    single_case: bool) -> VertebraSource:
    """Vertebrae from --centroids, from --masks, or from a mask / centroid file found beside the CT."""
    if settings.centroids is not None:
        path = find_centroids(case.case_id, settings.centroids)
        if path is None:
            raise VfnetError(f"No centroid file for case {case.case_id} in {settings.centroids} (expected "
                             f"{case.case_id}_ctd.json).")
        return load_centroid_source(path, image, settings.label_format)
    folder = settings.masks if settings.masks is not None else case.image.parent
    mask = find_mask(case.case_id, folder, exclude=case.image)
    if mask is None and single_case and folder.is_dir():
        mask = sole_mask_like_file(folder)  # e.g. TotalSegmentator's `--ml` output beside one CT
    if mask is not None:
        return load_mask_source(mask, image, settings.label_format)
    centroids = find_centroids(case.case_id, folder) if settings.masks is None else None
    if centroids is not None:
        return load_centroid_source(centroids, image, settings.label_format)
    raise VfnetError(f"No vertebra mask for case {case.case_id} in {folder}: expected {case.case_id}.nii.gz, "
                     f"{case.case_id}_seg-vert_msk.nii.gz, a TotalSegmentator folder {case.case_id}/ or a "
                     f"centroid file {case.case_id}_ctd.json (or use --masks / --centroids).")


def _vertebra_row(case_id: str, label: int, crop: tuple[np.ndarray, dict[str, Any]], probabilities: np.ndarray,
                  spread: float, touches_border: bool) -> dict[str, Any]:
    array, properties = crop
    fraction_in_view = float(properties.get("fraction_in_view", 1.0))
    cut = touches_border or fraction_in_view < MIN_FRACTION_IN_VIEW
    notes = [CUT_NOTE] if cut else []
    heights: dict[str, Any] = {}
    if not cut and properties.get("mask_source") == "mask":  # a centroid's ellipsoid has no heights to measure
        heights = body_heights(array[-1] > 0.5, tuple(properties["spacing"]))
        if heights.get("note"):
            notes.append(f"morphometry: {heights['note']}")
    row: dict[str, Any] = {"case": case_id, "vertebra": int(label), "level": level_name(label),
                           "grade": int(np.argmax(probabilities)),
                           **{f"p{grade}": float(p) for grade, p in enumerate(probabilities)},
                           "p_fracture": float(1.0 - probabilities[0]), "fold_spread": float(spread),
                           "cut_by_field_of_view": cut, "fraction_in_view": fraction_in_view,
                           "mask_source": properties.get("mask_source")}
    row.update({key: _finite_or_none(heights.get(key)) for key in MORPHOMETRY_KEYS})
    row["note"] = "; ".join(notes)
    return row


def _finite_or_none(value: Any) -> Any:
    """NaN (unmeasured) becomes None: an empty CSV cell and a JSON null."""
    if value is None:
        return None
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and not np.isfinite(value) else value

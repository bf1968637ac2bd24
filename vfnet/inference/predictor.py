"""Predict every CT of an input: read -> vertebrae -> the training preprocessing -> fold ensemble -> outputs.

The checkpoints are loaded once per run; all vertebrae of a case go through each fold in one batch. A case that
fails (unreadable CT, no mask, no vertebra) stops the run, or with `continue_on_error` is reported, listed in
failures.csv and skipped while the others are still predicted.
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
from vfnet.inference.case_extras import CaseExtras
from vfnet.inference.configurations import load_configuration_models
from vfnet.inference.decisions import Decisions
from vfnet.inference.ensemble import FoldEnsemble, checkpoint_path
from vfnet.inference.inputs import InputCase, discover_cases
from vfnet.inference.model_levels import describe_levels, trained_levels
from vfnet.inference.outputs import (case_remarks, field_of_view_note, load_complete_case, make_case_record,
                                     write_case_record, write_run_outputs)
from vfnet.inference.vertebra_sources import (VertebraSource, find_centroids, find_mask, load_centroid_source,
                                              load_mask_source, sole_mask_like_file)
from vfnet.labels import level_name
from vfnet.morphometry.genant import json_ready, morphometry_inputs
from vfnet.planning.plans import load_plans, morphometric_features
from vfnet.preprocessing.centroid_masks import estimate_vertebra_mask
from vfnet.preprocessing.mask_check import check_masks
from vfnet.preprocessing.missing_vertebrae import add_missing_vertebrae
from vfnet.preprocessing.measurement import measure_vertebrae
from vfnet.preprocessing.preprocessor import integer_mask, preprocess_case

# A vertebra with less of its crop inside the scan than this is flagged: its heights cannot be measured. The
# plan's training.min_fraction_in_view (the same threshold training used) wins where the plan has it.
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
    centroid_masks: str = "estimate"  # centroid input: "estimate" masks from the CT, or "ellipsoid" (no mask)
    keep_masks: bool = False         # grade on given masks even when they disagree with the CT (mask_check.py)
    overwrite: bool = False
    continue_on_error: bool = False  # keep going after a failing case (it is listed in failures.csv)
    ensemble_members: list[Path] = field(default_factory=list)   # further model folders (ensemble of configurations)
    decisions: Decisions = field(default_factory=Decisions)      # calibration, fracture threshold, review flag
    pictures: bool = True            # a PNG of each case (inference/pictures.py)
    saliency: bool = False           # Grad-CAM of each vertebra graded >= 1 (inference/saliency.py)

    def signature(self) -> dict[str, Any]:
        """What a case's result depends on: a rerun with the same signature may reuse it."""
        checkpoints = {str(fold): checkpoint_path(self.model_folder, fold, self.checkpoint_name).stat().st_mtime_ns
                       for fold in self.folds}
        signature = {"model_folder": str(self.model_folder.resolve()), "checkpoint": self.checkpoint_name,
                     "checkpoint_mtimes": checkpoints, "tta_mirror": self.mirror, "label_format": self.label_format,
                     "masks": str(self.masks) if self.masks else None,
                     "centroids": str(self.centroids) if self.centroids else None,
                     "centroid_masks": self.centroid_masks, "keep_masks": self.keep_masks,
                     "pictures": self.pictures, "saliency": self.saliency}
        if self.ensemble_members:
            signature["ensemble_members"] = {
                str(folder.resolve()): [checkpoint_path(folder, fold, self.checkpoint_name).stat().st_mtime_ns
                                        for fold in self.folds] for folder in self.ensemble_members}
        if self.decisions != Decisions():
            signature["decisions"] = self.decisions.as_dict()
        return signature


@dataclass
class PredictionRun:
    records: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)


def run_prediction(input_path: Path, output_folder: Path, settings: PredictSettings) -> PredictionRun:
    cases = discover_cases(input_path)
    plans = load_plans(settings.model_folder / "plans.json")
    models = load_configuration_models([settings.model_folder, *settings.ensemble_members], settings.folds,
                                       settings.checkpoint_name, plans)
    ensemble = FoldEnsemble(models, mirror=settings.mirror, device=settings.device)
    signature = settings.signature()
    levels = trained_levels(settings.model_folder)
    remove_stale_temporaries(output_folder)   # left by a run killed mid-write
    extras = CaseExtras(settings.model_folder, output_folder, settings.pictures, settings.saliency)
    run = PredictionRun()
    for case in cases:
        earlier = None if settings.overwrite else load_complete_case(output_folder, case.case_id, signature)
        if earlier is not None:
            run.records.append(earlier)
            run.reused.append(case.case_id)
            continue
        try:
            started = time.perf_counter()
            record = predict_case(case, ensemble, plans, settings, signature, single_case=len(cases) == 1,
                                  levels=levels, extras=extras)
            write_case_record(output_folder, record)
            run.records.append(record)
            print(f"{case.case_id}: {len(record['vertebrae'])} vertebrae from {record['source']['vertebrae_from']} "
                  f"in {time.perf_counter() - started:.1f} s")
            for remark in case_remarks(record):
                print(f"{case.case_id}: {remark}")
        except Exception as error:  # with continue_on_error, a bug on one odd scan must not cost the others
            message = str(error) if isinstance(error, VfnetError) else \
                f"unexpected {type(error).__name__}: {error} (please report it)"
            run.failures[case.case_id] = message
            if not settings.continue_on_error:
                raise VfnetError(f"case {case.case_id} failed, so the run stopped ({len(run.records)} case(s) before "
                                 f"it are saved in {output_folder} and reused by a rerun; no predictions.csv was "
                                 f"written): {message} Fix it, or rerun with --continue_on_error to predict the "
                                 f"other cases.") from error
            print(f"{case.case_id}: FAILED: {message}", file=sys.stderr)
    write_run_outputs(output_folder, run.records, run.failures)
    return run


def predict_case(case: InputCase, ensemble: FoldEnsemble, plans: dict[str, Any], settings: PredictSettings,
                 signature: dict[str, Any], single_case: bool = False,
                 levels: set[int] | None = None, extras: CaseExtras | None = None) -> dict[str, Any]:
    image = read_image(case.image, "CT")
    check_finite(image, case.image, "CT")
    source = vertebra_source(case, image, settings, single_case)
    not_predicted = list(source.not_predicted)
    if levels is not None:   # levels the model never saw in training are listed, not graded
        unseen = [label for label in source.labels if label not in levels]
        not_predicted += [{"label": label, "structure": level_name(label),
                           "reason": f"the model was trained on {describe_levels(levels)} only"} for label in unseen]
        source.labels = [label for label in source.labels if label in levels]
        if not source.labels:
            raise VfnetError(f"CT {case.image}: none of its vertebrae ({', '.join(map(level_name, unseen))}) is a "
                             f"level the model was trained on ({describe_levels(levels)}).")
    crops = preprocess_case(image, source.mask_image, source.centroids, source.labels, plans["preprocessing"])
    labels = [label for label in source.labels if label in crops]
    if not labels:
        raise VfnetError(f"CT {case.image}: no vertebra of {source.description} could be cropped.")
    if source.mask_image is not None and any("morphometry" not in crops[label][1] for label in labels):
        # A plan without the morphometric branch: the heights are still reported.
        reports = measure_vertebrae(integer_mask(source.mask_image), image, labels)
        for label in labels:
            crops[label][1]["morphometry"] = json_ready(reports[label]) if label in reports else None
    feature_names = morphometric_features(plans)
    morphometry = morphometry_inputs([crops[label][1] for label in labels], feature_names) if feature_names \
        else None
    ensemble_output = ensemble.predict(np.stack([crops[label][0] for label in labels]), morphometry)
    min_fraction = float(plans["training"].get("min_fraction_in_view", MIN_FRACTION_IN_VIEW))
    calibrated = settings.decisions.calibrate(ensemble_output.probabilities)
    rows = [_vertebra_row(case.case_id, label, crops[label], probabilities, spread, label in source.cut_labels,
                          min_fraction, source.vertebra_note_for(label))
            for label, probabilities, spread in zip(labels, calibrated, ensemble_output.fold_spread)]
    settings.decisions.annotate(rows)
    source_info = {"image": str(case.image), "orientation": orientation_code(image),
                   "spacing": list(reversed(image.GetSpacing())), "vertebrae_from": source.description,
                   "folds": [str(fold) for fold in settings.folds],
                   "fold_spread": "standard deviation of p_fracture across folds",
                   "mask_resampled": source.mask_resampled,
                   "mask_volume_ratio": source.mask_volume_ratio, "notes": source.notes}
    record = make_case_record(case.case_id, source_info, signature, rows, not_predicted)
    if extras is not None:  # warnings, picture, saliency
        extras.complete(record, image, source.mask_image, {label: crops[label] for label in labels}, ensemble.models)
    return record


def vertebra_source(case: InputCase, image: sitk.Image, settings: PredictSettings,
                    single_case: bool) -> VertebraSource:
    """Vertebrae from --centroids, from --masks, or from a mask / centroid file found beside the CT; centroid input
    gets masks estimated from the CT (preprocessing/centroid_masks.py) unless settings ask for the ellipsoid, and
    masks far from the CT's bone are snapped to it, and masks that sit off it moved onto it, unless settings keep
    them (mask_check.py)."""
    source = _given_vertebrae(case, image, settings, single_case)
    if source.mask_image is None and settings.centroid_masks == "estimate":
        source.mask_image = estimate_vertebra_mask(image, source.centroids)
        source.description += "; masks estimated from the CT around them (bone threshold)"
        source.notes.append("vertebra masks estimated from the CT around the centroids: check the picture")
    elif source.mask_image is not None and source.centroids is None and not settings.keep_masks:
        missing = add_missing_vertebrae(integer_mask(source.mask_image), image)
        check = check_masks(missing.mask, image, source.labels)   # judged on the given labels only
        source.mask_volume_ratio = check.volume_ratio
        if missing.labels:
            source.mask_image = missing.mask
            source.labels = sorted(source.labels + missing.labels)
            source.description += "; vertebrae missing from it estimated from the CT"
            source.notes.append(missing.note())
            source.label_notes.update({label: missing.vertebra_note(label) for label in missing.labels})
        if check.masks_are_off:
            source.mask_image = check.corrected
            source.description += f"; {check.how}"
            source.notes.append(check.note(image.GetSpacing()))
            source.vertebra_note = check.vertebra_note()
    return source


def _given_vertebrae(case: InputCase, image: sitk.Image, settings: PredictSettings,
                     single_case: bool) -> VertebraSource:
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
                  spread: float, touches_border: bool, min_fraction: float = MIN_FRACTION_IN_VIEW,
                  case_note: str = "") -> dict[str, Any]:
    array, properties = crop
    fraction_in_view = float(properties.get("fraction_in_view", 1.0))
    cut_note = field_of_view_note(fraction_in_view, touches_border, min_fraction)
    cut = cut_note is not None
    notes = [cut_note] if cut else []
    # No heights for centroid input (no mask) or a vertebra cut by the field of view (an endplate may be missing).
    heights = {} if cut else properties.get("morphometry") or {}
    if heights.get("notes"):
        notes.append(f"morphometry: {'; '.join(heights['notes'])}")
    if case_note:   # said of every vertebra of the case (e.g. its mask was snapped to the bone)
        notes.append(case_note)
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

"""vfnet_find_best_configuration in order: load and check every configuration, align, choose, calibrate, pick the
operating point and the review threshold; only when all of that succeeded, write the summary folder and, last,
inference_instructions.json (so its presence means a complete selection)."""
from pathlib import Path
from typing import Sequence

from vfnet.dataset.splits import load_splits
from vfnet.errors import VfnetError
from vfnet.paths import dataset_folder_name, inference_instructions_file, preprocessed_folder, results_folder
from vfnet.selection.alignment import align
from vfnet.selection.calibration import MAP_DESCRIPTIONS, calibration_summary, checked_calibration
from vfnet.selection.candidates import enumerate_candidates
from vfnet.selection.choice import choose
from vfnet.selection.configurations import load_configuration, trained_configurations
from vfnet.selection.instructions import write_instructions
from vfnet.selection.operating_point import argmax_operating_point, threshold_for_sensitivity
from vfnet.selection.result import Selection
from vfnet.selection.review import referral_curve, review_rule
from vfnet.selection.summary import write_summary

SPLITS_FILE = "splits_final.json"


def select(dataset: str | int, names: Sequence[str] | None = None, allow_missing_folds: bool = False,
           target_sensitivity: float | None = None, review_fraction: float = 0.1, max_fold_spread: float = 0.2,
           n_bootstrap: int = 1000, seed: int = 0) -> Selection:
    """Everything is computed and checked here; nothing is written."""
    base = results_folder()
    dataset_name = dataset_folder_name(base, dataset)
    dataset_results = base / dataset_name
    folders = _folders(dataset_results, names)
    splits, splits_path = _splits(dataset_name)
    configurations = [load_configuration(folder, dataset_name, allow_missing_folds, splits, splits_path)
                      for folder in folders]
    pooled = align(configurations)
    choice = choose(enumerate_candidates(configurations, pooled), pooled, n_bootstrap, seed)
    before = choice.chosen.candidate.probabilities
    chosen_map, calibration, held_out = checked_calibration(pooled.reference, before, pooled.fold_of)
    calibrated = calibration.calibrate(before)
    threshold = None if target_sensitivity is None else threshold_for_sensitivity(
        pooled.reference, calibrated, target_sensitivity, choice.chosen.candidate.name)
    return Selection(
        dataset=dataset_name, dataset_results=dataset_results, configurations=configurations, pooled=pooled,
        choice=choice, calibrated=calibrated,
        calibration=calibration_summary(pooled.reference, before, calibrated, chosen_map, calibration, held_out),
        default_operating_point=argmax_operating_point(pooled.reference, calibrated), fracture_threshold=threshold,
        review=review_rule(pooled.reference, calibrated, review_fraction, max_fold_spread),
        referral_curve=referral_curve(pooled.reference, calibrated))


def write_selection(selection: Selection) -> Path:
    """The summary folder, then the instructions; returns the instructions' path."""
    summary_folder = write_summary(selection)
    members = selection.chosen_configurations
    path = inference_instructions_file(selection.dataset_results)
    write_instructions(path, {
        "dataset": selection.dataset, "configuration": selection.choice.chosen.candidate.name,
        "members": [{"trainer": c.trainer, "plans": c.plans_name, "model_folder": c.name} for c in members],
        "folds": selection.pooled.folds, "checkpoint": members[0].checkpoint,
        "calibration": {"method": MAP_DESCRIPTIONS[selection.calibration["map"]], **selection.calibration},
        "fracture_threshold": selection.fracture_threshold,
        "review": {key: selection.review[key] for key in ("entropy_threshold", "fold_spread_threshold", "rule",
                                                          "entropy", "fraction_flagged", "macro_f1_kept",
                                                          "macro_f1_all")},
        "selection": {"macro_f1": selection.choice.chosen.macro_f1, "macro_f1_ci": selection.choice.chosen.interval,
                      "reason": selection.choice.reason, "vertebrae": len(selection.pooled.keys),
                      "patients": selection.pooled.num_patients},
        "summary": str((summary_folder / "summary.txt").relative_to(selection.dataset_results))})
    return path


def _folders(dataset_results: Path, names: Sequence[str] | None) -> list[Path]:
    if not names:
        folders = trained_configurations(dataset_results)
        if not folders:
            raise VfnetError(f"No model folder in {dataset_results} has out-of-fold predictions "
                             f"(fold_N/validation/predictions.csv): train the folds with vfnet_train first.")
        return folders
    folders = []
    for name in dict.fromkeys(names):  # a name given twice counts once
        folder = dataset_results / name
        if not folder.is_dir():
            found = ", ".join(path.name for path in trained_configurations(dataset_results)) or "none"
            raise VfnetError(f"No model folder {folder}: -c takes <trainer>__<plans> folder names of "
                             f"{dataset_results} (trained ones: {found}).")
        folders.append(folder)
    return folders


def _splits(dataset_name: str) -> tuple[list[dict[str, list[str]]] | None, Path | None]:
    """The dataset's splits_final.json when the preprocessed folder is at hand (else folds are checked only
    against each other)."""
    try:
        path = preprocessed_folder() / dataset_name / SPLITS_FILE
    except VfnetError:
        return None, None
    return (load_splits(path), path) if path.is_file() else (None, None)

"""The steps behind the planning commands (fingerprint, plan, preprocess + splits), each reading the previous one's file.

Orchestration sits here, above planning, preprocessing and the split maker, so that no stage imports another to
run it (planning used to sit above preprocessing for this).
"""
from pathlib import Path
from typing import Sequence

from vfnet.dataset.format import RawDataset, load_raw_dataset
from vfnet.dataset.splits import ensure_splits
from vfnet.errors import VfnetError
from vfnet.fileio import read_json, write_json
from vfnet.paths import dataset_folder_name, preprocessed_folder, raw_folder
from vfnet.planning.fingerprint import extract_fingerprint
from vfnet.planning.measured import replan_from_measurement
from vfnet.planning.planner import plan_experiment
from vfnet.planning.plans import apply_overrides, load_plans, save_plans
from vfnet.preprocessing.runner import PreprocessingSummary, preprocess_dataset

FINGERPRINT_FILE = "dataset_fingerprint.json"
DEFAULT_PLANS_NAME = "vfnetPlans"


def dataset_folders(dataset: str | int) -> tuple[Path, Path]:
    """(raw dataset folder, preprocessed dataset folder) for `-d`."""
    name = dataset_folder_name(raw_folder(), dataset)
    return raw_folder() / name, preprocessed_folder() / name


def check_plans_name(plans_name: str) -> None:
    if not plans_name or not plans_name.replace("_", "").isalnum():
        raise VfnetError(f"Plans name '{plans_name}' must be letters, digits and '_' only (e.g. vfnetPlans_ceonly).")


def verify_integrity(dataset: str | int) -> None:
    """Run the dataset integrity check and stop with its problems, like nnU-Net's --verify_dataset_integrity."""
    from vfnet.dataset.integrity import raise_if_problems, verify_dataset  # only this option needs them

    raw, _ = dataset_folders(dataset)
    raise_if_problems(verify_dataset(raw), raw)


def load_dataset(dataset: str | int) -> tuple[RawDataset, Path]:
    raw, preprocessed = dataset_folders(dataset)
    return load_raw_dataset(raw), preprocessed


def run_fingerprint(dataset: str | int, num_processes: int, clean: bool = False) -> dict:
    """Extract and write the fingerprint; an existing one is reused unless `clean`."""
    raw_dataset, preprocessed = load_dataset(dataset)
    path = preprocessed / FINGERPRINT_FILE
    if path.exists() and not clean:
        print(f"Using the existing fingerprint {path} (--clean recomputes it).")
        return read_json(path, "fingerprint")
    fingerprint = extract_fingerprint(raw_dataset, num_processes)
    write_json(preprocessed / "dataset.json", raw_dataset.description)
    write_json(path, fingerprint)
    print(f"Wrote {path}.")
    return fingerprint


def measure_and_replan(plans: dict) -> dict:
    """Time the plan's training on this machine (the CPU for the cpu budget, the CUDA GPU for gpu) and replan its
    epochs from that speed."""
    import torch

    from vfnet.training.throughput import measure_training  # torch and the trainer only when asked

    device = "cuda" if plans["budget"] == "gpu" else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise VfnetError("--measure times the gpu budget's plan on a CUDA GPU, but PyTorch sees none here; run the "
                         "planning on the GPU machine or leave out --measure.")
    print(f"Measuring the planned network's training speed on {device} (--measure, a few seconds) ...", flush=True)
    measurement = measure_training(plans, device)
    plans = replan_from_measurement(plans, measurement)
    measured = plans["estimates"]["measured"]
    print(f"Measured {measured['samples_per_second']:g} training samples/s on {measured['device_name']}: "
          f"{plans['training']['epochs']} epochs (the constant alone: {measured['epochs_from_constant']}).")
    return plans


def run_planning(dataset: str | int, budget: str, plans_name: str = DEFAULT_PLANS_NAME,
                 overrides: Sequence[str] = (), measure: bool = False) -> dict:
    check_plans_name(plans_name)
    _, preprocessed = dataset_folders(dataset)
    fingerprint_path = preprocessed / FINGERPRINT_FILE
    if not fingerprint_path.exists():
        raise VfnetError(f"No fingerprint {fingerprint_path}; run vfnet_extract_fingerprint -d {dataset} first.")
    plans = plan_experiment(read_json(fingerprint_path, "fingerprint"), budget, plans_name)
    if measure:
        plans = measure_and_replan(plans)
    plans = apply_overrides(plans, overrides)
    path = preprocessed / f"{plans_name}.json"
    save_plans(path, plans)
    estimates = plans["estimates"]
    print(f"Wrote {path}: spacing {plans['preprocessing']['target_spacing']} mm, crop "
          f"{plans['preprocessing']['crop_size']} voxels, {estimates['gflops_per_sample']} GFLOP/sample, "
          f"~{estimates['training_minutes_per_fold']} min per fold ({_speed_basis(plans)}).")
    return plans


def _speed_basis(plans: dict) -> str:
    """What the minutes per fold assume: this machine's timed speed, or the budget's reference speed (the plan is
    then the same on every machine, and a faster one trains it in less time)."""
    estimates = plans["estimates"]
    speed = ("the speed measured here" if "measured" in estimates else
             f"its reference speed of {estimates['effective_gflops_assumed']:g} effective GFLOP/s: a faster machine "
             f"takes less, --measure times this one")
    return f"{plans['budget']} budget, at {speed}"


def run_preprocessing(dataset: str | int, plans_name: str, num_processes: int,
                      clean: bool = False) -> PreprocessingSummary:
    """Splits (if absent), dataset.json copy, then the crops of the plan's data identifier."""
    check_plans_name(plans_name)
    raw_dataset, preprocessed = load_dataset(dataset)
    plans = load_plans(preprocessed / f"{plans_name}.json")
    write_json(preprocessed / "dataset.json", raw_dataset.description)
    ensure_splits(preprocessed, raw_dataset)
    output = preprocessed / plans["data_identifier"]
    summary = preprocess_dataset(raw_dataset, plans, output, num_processes, clean)
    print(f"Preprocessed into {output}: {summary.new} new sample(s), {summary.redone} redone (made with another "
          f"plan, grade or dataset.json entry), {len(summary.removed)} removed (vertebra no longer graded).")
    return summary

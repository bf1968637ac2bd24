"""Base folders, read from environment variables only when they are needed (as nnU-Net does)."""
import os
from pathlib import Path

from vfnet.errors import VfnetError

_HINTS = {
    "vfnet_raw": "the folder that holds raw datasets (DatasetXXX_Name/ with dataset.json, imagesTr/, labelsTr/)",
    "vfnet_preprocessed": "the folder where vfnet_plan_and_preprocess writes plans and crops",
    "vfnet_results": "the folder where vfnet_train writes checkpoints and validation results",
}


def _folder_from_env(variable: str) -> Path:
    value = os.environ.get(variable)
    if not value:
        raise VfnetError(
            f"The environment variable {variable} is not set: it must point to {_HINTS[variable]}, "
            f"e.g. `export {variable}=/data/{variable}`.")
    return Path(value).expanduser()


def raw_folder() -> Path:
    return _folder_from_env("vfnet_raw")


def preprocessed_folder() -> Path:
    return _folder_from_env("vfnet_preprocessed")


def results_folder() -> Path:
    return _folder_from_env("vfnet_results")


def dataset_folder_name(base: Path, dataset: str | int) -> str:
    """Resolve `-d 7`, `-d 007` or `-d Dataset007_Spine` to the folder name `Dataset007_Spine` under `base`."""
    text = str(dataset)
    if text.startswith("Dataset"):
        if (base / text).is_dir():
            return text
        raise VfnetError(f"No dataset folder {base / text}.")
    if not text.isdigit():
        raise VfnetError(f"Dataset '{text}' is neither a number nor a DatasetXXX_Name folder name.")
    prefix = f"Dataset{int(text):03d}_"
    matches = sorted(p.name for p in base.glob(prefix + "*") if p.is_dir()) if base.is_dir() else []
    if not matches:
        raise VfnetError(f"No folder {prefix}* in {base} for dataset {text}.")
    if len(matches) > 1:
        raise VfnetError(f"Dataset id {text} is ambiguous in {base}: {', '.join(matches)}.")
    return matches[0]


def find_dataset_name(dataset: str | int) -> str:
    """Find a dataset's folder name in raw, else in preprocessed, else in results (like nnU-Net's maybe_convert_to_dataset_name)."""
    errors = []
    for base_getter in (raw_folder, preprocessed_folder, results_folder):
        try:
            return dataset_folder_name(base_getter(), dataset)
        except VfnetError as error:
            errors.append(str(error))
    raise VfnetError(f"Dataset {dataset} was found nowhere: " + " ".join(errors))


# The results layout: $vfnet_results/DatasetXXX_Name/<trainer>__<plans>/fold_N. Spelled out here only.
MODEL_FOLDER_SEPARATOR = "__"


def model_folder_name(trainer: str, plans_name: str) -> str:
    return f"{trainer}{MODEL_FOLDER_SEPARATOR}{plans_name}"


def model_folder(dataset_name: str, trainer: str, plans_name: str, base: Path | None = None) -> Path:
    """`<results>/<dataset_name>/<trainer>__<plans_name>` (base defaults to $vfnet_results)."""
    return (results_folder() if base is None else Path(base)) / dataset_name / model_folder_name(trainer, plans_name)


def model_folders_for_plans(dataset_folder: Path, plans_name: str) -> list[Path]:
    """Every trainer's model folder trained with `plans_name` in a results dataset folder."""
    return sorted(path for path in Path(dataset_folder).glob(f"*{MODEL_FOLDER_SEPARATOR}{plans_name}")
                  if path.is_dir())


def fold_folder(model_folder_path: Path, fold: int | str) -> Path:
    return Path(model_folder_path) / f"fold_{fold}"


def model_folders(dataset_results_folder: Path) -> list[Path]:
    """Every `<trainer>__<plans>` folder of a results dataset folder."""
    folder = Path(dataset_results_folder)
    return sorted(path for path in folder.glob(f"*{MODEL_FOLDER_SEPARATOR}*") if path.is_dir()) \
        if folder.is_dir() else []


def validation_predictions_file(model_folder_path: Path, fold: int | str) -> Path:
    """A fold's out-of-fold predictions, written by the trainer: fold_N/validation/predictions.csv."""
    return fold_folder(model_folder_path, fold) / "validation" / "predictions.csv"


# What vfnet_find_best_configuration writes into $vfnet_results/DatasetXXX_Name/ and vfnet_predict -d reads.
INFERENCE_INSTRUCTIONS_FILE = "inference_instructions.json"
SELECTION_SUMMARY_FOLDER = "configuration_selection"


def inference_instructions_file(dataset_results_folder: Path) -> Path:
    return Path(dataset_results_folder) / INFERENCE_INSTRUCTIONS_FILE


def selection_summary_folder(dataset_results_folder: Path) -> Path:
    return Path(dataset_results_folder) / SELECTION_SUMMARY_FOLDER

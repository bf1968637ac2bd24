"""Broken inputs for the hardening tests, built on the fly from the tiny spine phantoms of tests/tiny_spine.py.

Each breakage edits a copy of a small valid raw dataset and returns the fragment (usually a file name) that
the command's one error message must contain. Helpers also build a tiny trained model once, run commands
in-process through `run_cli` (exactly what the console scripts do) or as subprocesses, and list leftovers.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest
import SimpleITK as sitk

from tiny_spine import standard_cases, write_raw_dataset
from vfnet import paths
from vfnet.cli.common import run_cli
from vfnet.dataset.image_io import write_image

DATASET = "Dataset901_Tiny"
FIRST_CASE = "tiny000"            # grades {20: 0, 21: 0, 22: 1}
REPO = Path(__file__).resolve().parents[1]
ENV_NAMES = ("vfnet_raw", "vfnet_preprocessed", "vfnet_results")


# ---------------------------------------------------------------- the valid starting point
def write_tiny_dataset(raw_root: Path, num_patients: int = 5) -> Path:
    return write_raw_dataset(raw_root, DATASET, standard_cases(num_patients))


def image_file(folder: Path, case: str = FIRST_CASE) -> Path:
    return folder / "imagesTr" / f"{case}_0000.nii.gz"


def mask_file(folder: Path, case: str = FIRST_CASE) -> Path:
    return folder / "labelsTr" / f"{case}.nii.gz"


def edit_dataset_json(folder: Path, edit: Callable[[dict], None]) -> None:
    path = folder / "dataset.json"
    description = json.loads(path.read_text())
    edit(description)
    path.write_text(json.dumps(description))


def _image(array: np.ndarray, like: sitk.Image | None = None) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    if like is not None:
        image.CopyInformation(like)
    return image


# ---------------------------------------------------------------- raw dataset breakages
def truncated_image(folder: Path) -> str:
    path = image_file(folder)
    path.write_bytes(path.read_bytes()[:300])
    return path.name


def text_as_image(folder: Path) -> str:
    image_file(folder).write_text("this is not an image\n")
    return image_file(folder).name


def image_2d(folder: Path) -> str:
    write_image(_image(np.zeros((40, 40), np.float32)), image_file(folder))
    return image_file(folder).name


def image_4d(folder: Path) -> str:
    write_image(_image(np.zeros((2, 8, 8, 8), np.float32)), image_file(folder))
    return image_file(folder).name


def nan_voxels(folder: Path) -> str:
    """NIfTI readers turn NaN into 0, so the dataset switches to .mha where NaN survives."""
    for case in standard_cases(5):
        name = case["case"]
        for old in (image_file(folder, name), mask_file(folder, name)):
            image = sitk.ReadImage(str(old))
            if old.name.endswith("_0000.nii.gz") and name == FIRST_CASE:
                array = sitk.GetArrayFromImage(image).astype(np.float32)
                array[10:12, 10:12, 10:12] = np.nan
                image = _image(array, image)
            write_image(image, Path(str(old).replace(".nii.gz", ".mha")))
            old.unlink()
    edit_dataset_json(folder, lambda d: d.update(file_ending=".mha"))
    return f"{FIRST_CASE}_0000.mha"


def geometry_mismatch(folder: Path) -> str:
    mask = sitk.ReadImage(str(mask_file(folder)))
    mask.SetOrigin(tuple(o + 15.0 for o in mask.GetOrigin()))
    write_image(mask, mask_file(folder))
    return mask_file(folder).name


def size_mismatch(folder: Path) -> str:
    mask = sitk.ReadImage(str(mask_file(folder)))
    write_image(mask[:, :, :-4], mask_file(folder))
    return mask_file(folder).name


def empty_mask(folder: Path) -> str:
    mask = sitk.ReadImage(str(mask_file(folder)))
    write_image(_image(np.zeros(sitk.GetArrayViewFromImage(mask).shape, np.uint8), mask), mask_file(folder))
    return mask_file(folder).name


def label_outside_verse(folder: Path) -> str:
    mask = sitk.ReadImage(str(mask_file(folder)))
    array = sitk.GetArrayFromImage(mask)
    array[array == 22] = 77
    write_image(_image(array, mask), mask_file(folder))
    return mask_file(folder).name


def graded_vertebra_absent(folder: Path) -> str:
    mask = sitk.ReadImage(str(mask_file(folder)))
    array = sitk.GetArrayFromImage(mask)
    array[array == 21] = 0
    write_image(_image(array, mask), mask_file(folder))
    return mask_file(folder).name


def _grade(value) -> Callable[[Path], str]:
    def breakage(folder: Path) -> str:
        edit_dataset_json(folder, lambda d: d["training"][0]["vertebrae"].update({"20": value}))
        return "dataset.json"
    breakage.__name__ = f"grade_{value!r}"
    return breakage


def _centroid_case(folder: Path, entries: list) -> str:
    """Replace the first case's mask by a centroid JSON holding `entries`."""
    mask_file(folder).unlink()
    path = folder / "labelsTr" / f"{FIRST_CASE}_ctd.json"
    path.write_text(json.dumps(entries))
    return path.name


def centroid_outside_image(folder: Path) -> str:
    return _centroid_case(folder, [{"direction": ["L", "P", "S"]}, {"label": 20, "X": 20, "Y": 20, "Z": 500},
                                   {"label": 21, "X": 20, "Y": 20, "Z": 25}, {"label": 22, "X": 20, "Y": 20, "Z": 40}])


def centroid_without_direction(folder: Path) -> str:
    return _centroid_case(folder, [{"label": 20, "X": 20, "Y": 20, "Z": 10}, {"label": 21, "X": 20, "Y": 20, "Z": 25},
                                   {"label": 22, "X": 20, "Y": 20, "Z": 40}])


def duplicate_case_id(folder: Path) -> str:
    edit_dataset_json(folder, lambda d: (d["training"].append(dict(d["training"][0])),
                                         d.update(numTraining=len(d["training"]))))
    return "listed twice"


def _unsafe_case_id(case_id: str) -> Callable[[Path], str]:
    def breakage(folder: Path) -> str:
        edit_dataset_json(folder, lambda d: d["training"][0].update(case=case_id))
        return "not a safe file name"
    breakage.__name__ = f"unsafe_case_id_{case_id}"
    return breakage


def dataset_json_not_json(folder: Path) -> str:
    (folder / "dataset.json").write_text("{'training': [}")
    return "dataset.json"


def dataset_json_lacks_keys(folder: Path) -> str:
    edit_dataset_json(folder, lambda d: (d.pop("training"), d.pop("file_ending")))
    return "dataset.json"


def empty_dataset(folder: Path) -> str:
    edit_dataset_json(folder, lambda d: d.update(training=[], numTraining=0))
    return "no training cases"


def one_grade_only(folder: Path) -> str:
    def all_normal(description: dict) -> None:
        for entry in description["training"]:
            entry["vertebrae"] = {label: 0 for label in entry["vertebrae"]}
    edit_dataset_json(folder, all_normal)
    return "two different grades"


RAW_BREAKAGES: dict[str, Callable[[Path], str]] = {function.__name__: function for function in (
    truncated_image, text_as_image, image_2d, image_4d, nan_voxels, geometry_mismatch, size_mismatch, empty_mask,
    label_outside_verse, graded_vertebra_absent, _grade(4), _grade(-1), _grade("x"), _grade(2.5), _grade("two"),
    centroid_outside_image, centroid_without_direction, duplicate_case_id, _unsafe_case_id("../x"),
    _unsafe_case_id("/etc/passwd"), dataset_json_not_json, dataset_json_lacks_keys, empty_dataset,
    one_grade_only)}


# ---------------------------------------------------------------- running commands
def run_in_process(program: str, main: Callable, argv: Sequence[str], capsys) -> tuple[int, str]:
    """What the console script does, in this process: (exit code, stderr)."""
    code = run_cli(program, main, list(argv))
    return code, capsys.readouterr().err


def run_module(module: str, argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 120
               ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, timeout=timeout,
                          env=subprocess_env(env), cwd=REPO)


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update({key: str(value) for key, value in (extra or {}).items()})
    return env


def assert_clean_failure(code: int, stderr: str, fragment: str) -> None:
    """Exit code 1, no traceback, no 'internal error', and one error message naming `fragment`."""
    assert code == 1, f"exit code {code}; stderr:\n{stderr}"
    assert "Traceback" not in stderr, stderr
    assert "internal error" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, stderr
    assert fragment in stderr, f"{fragment!r} not in:\n{stderr}"


def leftovers(folder: Path) -> list[Path]:
    """Temporary files of interrupted atomic writes (`.<name>.<random>.tmp...`)."""
    return sorted(path for path in Path(folder).rglob(".*.tmp*"))


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


# ---------------------------------------------------------------- a tiny trained model, built once per module
TRAINED_FOLDS = ("0", "1")


def build_trained_model(root: Path) -> dict[str, Path]:
    """raw + preprocessed + folds 0 and 1 trained for one iteration; returns the three vfnet folders."""
    from vfnet.cli import plan_and_preprocess, train

    folders = {name: Path(root) / name for name in ENV_NAMES}
    saved = {name: os.environ.get(name) for name in ENV_NAMES}
    os.environ.update({name: str(folder) for name, folder in folders.items()})
    try:
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        write_tiny_dataset(folders["vfnet_raw"])
        assert plan_and_preprocess.main(["-d", "901", "-np", "1"]) == 0
        for fold in TRAINED_FOLDS:
            assert train.main(["-d", "901", "-f", fold, "--epochs", "1", "--iterations", "1"]) == 0
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return folders


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory) -> dict[str, Path]:
    """Built once per test session; tests copy it with `install_model` before breaking anything."""
    # Each test module imports this fixture as its own definition: the cache makes them share one build.
    if "folders" not in _TRAINED_MODEL:
        _TRAINED_MODEL["folders"] = build_trained_model(tmp_path_factory.mktemp("trained_model"))
    return _TRAINED_MODEL["folders"]


_TRAINED_MODEL: dict[str, dict[str, Path]] = {}


def install_model(source: dict[str, Path], target: dict[str, Path]) -> None:
    """Copy a built model into a test's own (empty) vfnet folders."""
    for name in ENV_NAMES:
        shutil.copytree(source[name], target[name], dirs_exist_ok=True)


def model_folder(folders: dict[str, Path]) -> Path:
    return paths.model_folder(DATASET, "vfnetTrainer", "vfnetPlans", folders["vfnet_results"])


def prediction_input(folders: dict[str, Path], target: Path, cases: Sequence[str] = (FIRST_CASE,)) -> Path:
    """A predict input folder with CTs and their masks (`<case>_seg.nii.gz`) taken from the raw dataset."""
    target.mkdir(parents=True, exist_ok=True)
    raw = folders["vfnet_raw"] / DATASET
    for case in cases:
        shutil.copy(image_file(raw, case), target / f"{case}_0000.nii.gz")
        shutil.copy(mask_file(raw, case), target / f"{case}_seg.nii.gz")
    return target


# ---------------------------------------------------------------- hostile checkpoints
class CodeRunner:
    """Unpickling this object would create the folder `marker`: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def plant_pickled_checkpoint(path: Path, marker: Path) -> None:
    """Overwrite a real checkpoint with one whose payload also carries a code-running object."""
    import torch

    payload = torch.load(path, weights_only=True)
    payload["log"] = CodeRunner(marker)
    torch.save(payload, path)

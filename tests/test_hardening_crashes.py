"""kill -9 during preprocessing / training / prediction, concurrent runs, unwritable outputs, escaping paths."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from hardening_corpus import (DATASET, FIRST_CASE, REPO, assert_clean_failure, image_file,
                              install_model, leftovers, mask_file, model_folder, prediction_input, run_in_process,
                              subprocess_env, trained_model, write_tiny_dataset)
from vfnet.cli import plan_and_preprocess, predict, train
from vfnet.preprocessing.samples import (PROPERTIES_SUFFIX, array_path, load_arrays, properties_path,
                                         read_sample_properties)


@pytest.fixture
def folders(trained_model, vfnet_folders):
    install_model(trained_model, vfnet_folders)
    return vfnet_folders


def _start(module, argv, folders):
    return subprocess.Popen([sys.executable, "-m", module, *argv], env=subprocess_env(folders), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_when(process, appeared, timeout=60.0) -> bool:
    """SIGKILL `process` as soon as `appeared()` is true; False if it finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if appeared():
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.005)
    process.communicate(timeout=timeout)
    return False


def _assert_crops_complete(crop_folder, expected):
    properties = read_sample_properties(crop_folder)
    assert len(properties) == expected
    for sample in properties:
        array = load_arrays(crop_folder, [sample["sample"]], sample["shape"])
        assert np.isfinite(array).all()


def test_preprocessing_killed_then_rerun_serves_only_complete_crops(vfnet_folders, capsys):
    write_tiny_dataset(vfnet_folders["vfnet_raw"])
    crops = vfnet_folders["vfnet_preprocessed"] / DATASET / "vfnetPlans_3d"
    process = _start("vfnet.cli.plan_and_preprocess", ["-d", "901", "-np", "1"], vfnet_folders)
    _kill_when(process, lambda: crops.is_dir() and any(crops.glob(f"*{PROPERTIES_SUFFIX}")))
    # The worst moment a kill can hit: a crop's .npy is complete but its .json was never written.
    finished = read_sample_properties(crops)
    if finished:
        properties_path(crops, finished[0]["sample"]).unlink()
        np.save(array_path(crops, finished[0]["sample"]), np.zeros(3))
    assert plan_and_preprocess.main(["-d", "901", "-np", "1"]) == 0
    _assert_crops_complete(crops, 15)


def test_training_killed_then_continued_loses_at_most_one_epoch(folders):
    fold = model_folder(folders) / "fold_0"
    for path in fold.iterdir():
        if path.is_file():
            path.unlink()
    latest = fold / "checkpoint_latest.pth"
    arguments = ["-d", "901", "-f", "0", "--epochs", "3", "--iterations", "1"]
    process = _start("vfnet.cli.train", arguments, folders)
    killed = _kill_when(process, latest.exists)
    epoch_at_kill = torch.load(latest, weights_only=True)["epoch"]
    assert train.main(arguments + ["--c"]) == 0
    log = (fold / "training_log.txt").read_text()
    if killed:
        assert f"Resuming fold 0 at epoch {epoch_at_kill + 1} of 3" in log
    assert torch.load(fold / "checkpoint_final.pth", weights_only=True)["epoch"] == 2
    assert len(json.loads((fold / "progress.json").read_text())["epoch"]) == 3
    assert not leftovers(fold)


def test_prediction_killed_then_rerun_recomputes_only_missing_cases(folders, tmp_path):
    cases = ["tiny000", "tiny010", "tiny020", "tiny030", "tiny040"]
    inputs, output = prediction_input(folders, tmp_path / "in", cases), tmp_path / "out"
    arguments = ["-i", str(inputs), "-o", str(output), "-d", "901", "-f", "0", "1"]
    _kill_when(_start("vfnet.cli.predict", arguments, folders), lambda: (output / "tiny000.json").exists())
    (output / "tiny040.json").unlink(missing_ok=True)        # at least one case is always left to do
    done = {path.name: path.stat().st_mtime_ns for path in output.glob("tiny*.json")}
    assert predict.main(arguments) == 0
    assert all((output / name).stat().st_mtime_ns == stamp for name, stamp in done.items()), "finished cases rewritten"
    assert sorted(path.stem for path in output.glob("tiny*.json")) == cases
    assert len((output / "predictions.csv").read_text().splitlines()) == 1 + 3 * len(cases)
    assert not leftovers(output)


def test_two_folds_and_a_prediction_at_once_leave_consistent_files(folders, tmp_path):
    arguments = ["-d", "901", "--epochs", "2", "--iterations", "1"]
    trainings = [_start("vfnet.cli.train", arguments + ["-f", fold], folders) for fold in ("0", "1")]
    inputs = prediction_input(folders, tmp_path / "in")
    predictions = 0
    while predictions < 3 and any(process.poll() is None for process in trainings):
        # Reads checkpoint_final of both folds while the trainings rewrite them.
        assert predict.main(["-i", str(inputs), "-o", str(tmp_path / f"out{predictions}"), "-d", "901",
                             "-f", "0", "1"]) == 0
        predictions += 1
        time.sleep(1.0)
    for process in trainings:
        assert process.wait() == 0, process.communicate()[1]
    assert predictions >= 1
    results = model_folder(folders)
    assert json.loads((results / "plans.json").read_text())["dataset_name"] == DATASET
    assert json.loads((results / "dataset.json").read_text())["numTraining"] == 5
    for fold in ("fold_0", "fold_1"):
        assert torch.load(results / fold / "checkpoint_final.pth", weights_only=True)["epoch"] == 1
    assert not leftovers(results) and not leftovers(tmp_path)


def test_output_folder_that_cannot_be_created(folders, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("a regular file where a folder should be")
    inputs = prediction_input(folders, tmp_path / "in")
    code, stderr = run_in_process("vfnet_predict", predict.main,
                                  ["-i", str(inputs), "-o", str(blocker / "out"), "-d", "901", "-f", "0"], capsys)
    assert code == 1 and "Traceback" not in stderr and str(blocker) in stderr


def test_preprocessed_folder_that_cannot_be_created(vfnet_folders, monkeypatch, tmp_path, capsys):
    write_tiny_dataset(vfnet_folders["vfnet_raw"])
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("vfnet_preprocessed", str(blocker / "preprocessed"))
    code, stderr = run_in_process("vfnet_plan_and_preprocess", plan_and_preprocess.main, ["-d", "901", "-np", "1"],
                                  capsys)
    assert_clean_failure(code, stderr, str(blocker))


def _load_converter():
    import importlib.util
    spec = importlib.util.spec_from_file_location("convert_csv", REPO / "dataset_conversion" / "convert_csv.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("case_id", ["../escaped", "/tmp/absolute_case", "sub/dir"])
def test_csv_converter_keeps_unsafe_case_ids_inside_the_dataset(case_id, vfnet_folders, tmp_path, capsys):
    source = write_tiny_dataset(tmp_path / "source")
    rows = ["case,image,mask,vertebra,grade,patient"]
    for case, grades in ((case_id, (0, 1, 2)), ("tiny010", (0, 2, 3)), ("tiny020", (0, 0, 1))):
        name = "tiny000" if case == case_id else case
        rows += [f"{case},{image_file(source, name)},{mask_file(source, name)},{label},{grade},{name}"
                 for label, grade in zip((20, 21, 22), grades)]
    table = tmp_path / "table.csv"
    table.write_text("\n".join(rows) + "\n")
    before = set(tmp_path.rglob("*")) | set(vfnet_folders["vfnet_raw"].parent.parent.glob("*"))
    code, _ = run_in_process("convert_csv", _load_converter().main, ["-i", str(table), "-d", "12"], capsys)
    assert code == 0
    dataset = vfnet_folders["vfnet_raw"] / "Dataset012_CSV"
    description = json.loads((dataset / "dataset.json").read_text())
    assert [entry["case"] for entry in description["training"]] == ["tiny010", "tiny020"]
    created = (set(tmp_path.rglob("*")) | set(vfnet_folders["vfnet_raw"].parent.parent.glob("*"))) - before
    assert all(dataset in path.parents or path == dataset or path in vfnet_folders["vfnet_raw"].parents
               or path.parent == vfnet_folders["vfnet_raw"] for path in created), created
    assert not os.path.exists("/tmp/absolute_case_0000.nii.gz")


def test_csv_converter_refuses_an_unsafe_dataset_name(vfnet_folders, tmp_path, capsys):
    table = tmp_path / "table.csv"
    table.write_text("case,image,mask,vertebra,grade\n")
    code, stderr = run_in_process("convert_csv", _load_converter().main,
                                  ["-i", str(table), "-d", "12", "-n", "../../escaped"], capsys)
    assert code == 1 and "Traceback" not in stderr
    assert not (vfnet_folders["vfnet_raw"].parent / "escaped").exists()
    assert not list(vfnet_folders["vfnet_raw"].parent.parent.glob("*escaped*"))

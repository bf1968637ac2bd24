"""train / predict / evaluate / cv_summary / converters on broken plans, checkpoints and inputs, end to end."""
import json
import shutil

import pytest
import torch

from hardening_corpus import (DATASET, FIRST_CASE, assert_clean_failure, install_model,
                              leftovers, model_folder, plant_pickled_checkpoint, prediction_input, run_in_process, trained_model)
from vfnet.cli import cv_summary, evaluate, predict, train
from vfnet.preprocessing.samples import array_path, read_sample_properties

PLANS_EDITS = {
    "not_json": lambda text: text[: len(text) // 2],
    "network_is_text": lambda text: json.dumps({**json.loads(text), "network": "big"}),
    "negative_crop": lambda text: json.dumps({**json.loads(text), "preprocessing": {
        **json.loads(text)["preprocessing"], "crop_size": [-4, 0, 12]}}),
    "epochs_are_text": lambda text: json.dumps({**json.loads(text), "training": {
        **json.loads(text)["training"], "epochs": "many"}}),
    "no_training_section": lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "training"}),
}


@pytest.fixture
def folders(trained_model, vfnet_folders):
    install_model(trained_model, vfnet_folders)
    return vfnet_folders


def _snapshot(folder):
    return {path: path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}


@pytest.mark.parametrize("edit", sorted(PLANS_EDITS))
def test_train_refuses_a_nonsense_plans_file(edit, folders, capsys):
    plans = folders["vfnet_preprocessed"] / DATASET / "vfnetPlans.json"
    plans.write_text(PLANS_EDITS[edit](plans.read_text()))
    shutil.rmtree(folders["vfnet_results"] / DATASET)
    code, stderr = run_in_process("vfnet_train", train.main, ["-d", "901", "-f", "0", "--epochs", "1"], capsys)
    assert_clean_failure(code, stderr, "vfnetPlans.json")
    assert not any(folders["vfnet_results"].rglob("*.pth"))


@pytest.mark.parametrize("edit", sorted(PLANS_EDITS))
def test_predict_refuses_a_nonsense_plans_file(edit, folders, tmp_path, capsys):
    plans = model_folder(folders) / "plans.json"
    plans.write_text(PLANS_EDITS[edit](plans.read_text()))
    inputs = prediction_input(folders, tmp_path / "in")
    code, stderr = run_in_process("vfnet_predict", predict.main,
                                  ["-i", str(inputs), "-o", str(tmp_path / "out"), "-d", "901", "-f", "0", "1"], capsys)
    assert_clean_failure(code, stderr, "plans.json")
    assert not (tmp_path / "out" / "predictions.csv").exists()


def test_pickled_checkpoint_is_refused_by_predict_and_runs_nothing(folders, tmp_path, capsys):
    checkpoint = model_folder(folders) / "fold_1" / "checkpoint_final.pth"
    marker = tmp_path / "code_ran"
    plant_pickled_checkpoint(checkpoint, marker)
    inputs = prediction_input(folders, tmp_path / "in")
    code, stderr = run_in_process("vfnet_predict", predict.main,
                                  ["-i", str(inputs), "-o", str(tmp_path / "out"), "-d", "901", "-f", "0", "1"], capsys)
    assert_clean_failure(code, stderr, str(checkpoint))
    assert "refused" in stderr and not marker.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_pickled_checkpoint_is_refused_by_train_continue_and_runs_nothing(folders, tmp_path, capsys):
    latest = model_folder(folders) / "fold_0" / "checkpoint_latest.pth"
    marker = tmp_path / "code_ran"
    plant_pickled_checkpoint(latest, marker)
    before = _snapshot(model_folder(folders))
    code, stderr = run_in_process("vfnet_train", train.main,
                                  ["-d", "901", "-f", "0", "--c", "--epochs", "2", "--iterations", "1"], capsys)
    assert_clean_failure(code, stderr, str(latest))
    assert not marker.exists()
    assert _snapshot(model_folder(folders)) == before, "a refused resume must not touch the results"


def test_predict_names_a_missing_checkpoint(folders, tmp_path, capsys):
    inputs = prediction_input(folders, tmp_path / "in")
    code, stderr = run_in_process("vfnet_predict", predict.main,
                                  ["-i", str(inputs), "-o", str(tmp_path / "out"), "-d", "901"], capsys)
    assert_clean_failure(code, stderr, "fold_2")


def test_predict_refuses_a_damaged_checkpoint(folders, tmp_path, capsys):
    checkpoint = model_folder(folders) / "fold_0" / "checkpoint_final.pth"
    checkpoint.write_bytes(checkpoint.read_bytes()[:5000])
    inputs = prediction_input(folders, tmp_path / "in")
    code, stderr = run_in_process("vfnet_predict", predict.main,
                                  ["-i", str(inputs), "-o", str(tmp_path / "out"), "-d", "901", "-f", "0"], capsys)
    assert_clean_failure(code, stderr, str(checkpoint))


def test_predict_refuses_a_checkpoint_of_another_network(folders, tmp_path, capsys):
    checkpoint = model_folder(folders) / "fold_0" / "checkpoint_final.pth"
    payload = torch.load(checkpoint, weights_only=True)
    payload["network_plan"] = {**payload["network_plan"], "stem_channels": 4}
    torch.save(payload, checkpoint)
    inputs = prediction_input(folders, tmp_path / "in")
    code, stderr = run_in_process("vfnet_predict", predict.main,
                                  ["-i", str(inputs), "-o", str(tmp_path / "out"), "-d", "901", "-f", "0"], capsys)
    assert_clean_failure(code, stderr, str(checkpoint))


def test_train_continue_refuses_a_checkpoint_of_another_network(folders, capsys):
    latest = model_folder(folders) / "fold_0" / "checkpoint_latest.pth"
    code, stderr = run_in_process("vfnet_train", train.main,
                                  ["-d", "901", "-f", "0", "--c", "--epochs", "2", "--iterations", "1",
                                   "--override", "network.stem_channels=4"], capsys)
    assert_clean_failure(code, stderr, str(latest))


def test_predict_input_folder_without_cts(folders, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("no images here")
    code, stderr = run_in_process("vfnet_predict", predict.main,
                                  ["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-d", "901", "-f", "0"],
                                  capsys)
    assert_clean_failure(code, stderr, str(tmp_path / "in"))
    assert not (tmp_path / "out" / "predictions.csv").exists()


def test_predict_reports_a_broken_ct_and_keeps_the_good_ones(folders, tmp_path, capsys):
    inputs = prediction_input(folders, tmp_path / "in", [FIRST_CASE, "tiny010"])
    truncated_image_file = inputs / f"{FIRST_CASE}_0000.nii.gz"
    truncated_image_file.write_bytes(truncated_image_file.read_bytes()[:400])
    code, stderr = run_in_process("vfnet_predict", predict.main,
                                  ["-i", str(inputs), "-o", str(tmp_path / "out"), "-d", "901", "-f", "0",
                                   "--continue_on_error"], capsys)
    assert code == 1 and "Traceback" not in stderr and truncated_image_file.name in stderr and "truncated" in stderr
    assert (tmp_path / "out" / "tiny010.json").is_file() and not (tmp_path / "out" / f"{FIRST_CASE}.json").exists()
    assert FIRST_CASE in (tmp_path / "out" / "failures.csv").read_text()
    assert not leftovers(tmp_path / "out")


def test_train_without_preprocessing(vfnet_folders, capsys):
    (vfnet_folders["vfnet_preprocessed"] / DATASET).mkdir()
    code, stderr = run_in_process("vfnet_train", train.main, ["-d", "901", "-f", "0"], capsys)
    assert_clean_failure(code, stderr, "vfnetPlans.json")


def test_train_refuses_a_fold_outside_the_splits(folders, capsys):
    code, stderr = run_in_process("vfnet_train", train.main, ["-d", "901", "-f", "7", "--epochs", "1"], capsys)
    assert_clean_failure(code, stderr, "splits_final.json")


def test_train_names_a_missing_crop(folders, capsys):
    crops = folders["vfnet_preprocessed"] / DATASET / "vfnetPlans_3d"
    crop = array_path(crops, read_sample_properties(crops)[0]["sample"])
    crop.write_bytes(b"\x93NUMPY broken")
    code, stderr = run_in_process("vfnet_train", train.main, ["-d", "901", "-f", "0", "--epochs", "1"], capsys)
    assert_clean_failure(code, stderr, crop.name)


CSV_BREAKAGES = {
    "missing_columns": ("case,vertebra,grade\ntiny000,20,0\n", "lacks"),
    "bad_grade": ("case,vertebra,p0,p1,p2,p3\ntiny000,20,0.2,0.2,0.2,x\n", "p3"),
    "not_csv": ("\x00\x01\x02binary", "predictions"),
}


@pytest.mark.parametrize("breakage", sorted(CSV_BREAKAGES))
def test_evaluate_refuses_broken_predictions(breakage, folders, tmp_path, capsys):
    text, fragment = CSV_BREAKAGES[breakage]
    predictions = tmp_path / "predictions.csv"
    predictions.write_text(text)
    code, stderr = run_in_process("vfnet_evaluate", evaluate.main,
                                  ["-ref", str(folders["vfnet_raw"] / DATASET), "-pred", str(predictions),
                                   "-o", str(tmp_path / "eval"), "--bootstrap", "10"], capsys)
    assert_clean_failure(code, stderr, "predictions.csv")
    assert fragment in stderr
    assert not (tmp_path / "eval" / "metrics.json").exists()


def test_evaluate_refuses_a_broken_reference(folders, tmp_path, capsys):
    reference = tmp_path / "dataset.json"
    reference.write_text("{not json")
    predictions = tmp_path / "predictions.csv"
    predictions.write_text("case,vertebra,p0,p1,p2,p3\ntiny000,20,0.7,0.1,0.1,0.1\n")
    code, stderr = run_in_process("vfnet_evaluate", evaluate.main,
                                  ["-ref", str(reference), "-pred", str(predictions), "-o", str(tmp_path / "eval")],
                                  capsys)
    assert_clean_failure(code, stderr, str(reference))


def test_cv_summary_names_the_missing_folds(folders, capsys):
    code, stderr = run_in_process("vfnet_cv_summary", cv_summary.main, ["-d", "901", "--bootstrap", "10"], capsys)
    assert_clean_failure(code, stderr, "fold_2")
    assert not (model_folder(folders) / "cv_summary" / "metrics.json").exists()


def test_cv_summary_refuses_a_corrupt_fold_csv(folders, capsys):
    predictions = model_folder(folders) / "fold_1" / "validation" / "predictions.csv"
    predictions.write_text("case,vertebra\nnonsense\n")
    code, stderr = run_in_process("vfnet_cv_summary", cv_summary.main,
                                  ["-d", "901", "--allow_missing_folds", "--bootstrap", "10"], capsys)
    assert_clean_failure(code, stderr, "predictions.csv")
    assert not (model_folder(folders) / "cv_summary" / "metrics.json").exists()

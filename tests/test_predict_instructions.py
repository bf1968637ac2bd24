"""vfnet_predict -d follows inference_instructions.json: members, calibration, fracture threshold, review flag."""
import csv
import json

import numpy as np
import pytest

from fake_models import DATASET, make_cohort, model_probabilities, write_configuration, write_splits
from hardening_corpus import assert_clean_failure, run_in_process
from test_inference_phantom import write_phantom
from vfnet import paths
from vfnet.cli import find_best_configuration, predict
from vfnet.inference.decisions import calibrate, normalised_entropy
from vfnet.selection.instructions import decisions


def _read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def _probabilities(rows):
    return np.array([[float(row[f"p{grade}"]) for grade in range(4)] for row in rows])


@pytest.fixture
def selected(vfnet_folders, tmp_path):
    """Two fake configurations (tiny untrained checkpoints), their ensemble chosen, and one phantom CT."""
    cohort = make_cohort(100)
    write_splits(vfnet_folders["vfnet_preprocessed"], cohort)
    results = vfnet_folders["vfnet_results"]
    write_configuration(results, cohort, model_probabilities(cohort, 1, signal=1.5), trainer="A")
    write_configuration(results, cohort, model_probabilities(cohort, 2, signal=1.5), trainer="B", checkpoint_seed=7)
    assert find_best_configuration.main(["-d", "950", "--bootstrap", "200", "--target_sensitivity", "0.9",
                                         "--max_fold_spread", "0.01"]) == 0
    (tmp_path / "in").mkdir()
    write_phantom(tmp_path / "in", "spine")
    path = paths.inference_instructions_file(results / DATASET)
    return {"instructions": json.loads(path.read_text()), "path": path, "input": tmp_path / "in"}


def _predict(selected, output, *flags):
    return predict.main(["-i", str(selected["input"]), "-o", str(output), "-d", "950", *flags])


def test_predict_applies_the_chosen_ensemble_calibration_threshold_and_review(selected, tmp_path, capsys):
    instructions = selected["instructions"]
    assert instructions["configuration"] == "A__vfnetPlans + B__vfnetPlans"
    capsys.readouterr()
    assert _predict(selected, tmp_path / "a", "-tr", "A", "-p", "vfnetPlans") == 0
    assert _predict(selected, tmp_path / "b", "-tr", "B", "-p", "vfnetPlans") == 0
    assert "inference_instructions.json" not in capsys.readouterr().out   # explicit flags override
    assert _predict(selected, tmp_path / "out") == 0
    assert "Using inference_instructions.json" in capsys.readouterr().out

    raw = (_probabilities(_read_csv(tmp_path / "a" / "predictions.csv")) +
           _probabilities(_read_csv(tmp_path / "b" / "predictions.csv"))) / 2
    rows = _read_csv(tmp_path / "out" / "predictions.csv")
    expected = decisions(instructions).calibrate(raw)
    if instructions["calibration"]["map"] != "isotonic":
        np.testing.assert_allclose(expected, calibrate(raw, instructions["calibration"]["temperature"]))
    np.testing.assert_allclose(_probabilities(rows), expected, atol=2e-5)
    threshold = instructions["fracture_threshold"]["threshold"]
    assert [row["fracture"] for row in rows] == ["true" if 1 - p[0] >= threshold else "false" for p in expected]
    np.testing.assert_allclose([float(row["entropy"]) for row in rows], normalised_entropy(expected), atol=2e-5)
    review = instructions["review"]
    assert [row["review"] for row in rows] == [
        "true" if float(row["entropy"]) > review["entropy_threshold"] or float(row["fold_spread"]) > 0.01
        else "false" for row in rows]
    assert "true" in [row["review"] for row in rows]   # untrained folds disagree by more than 0.01
    patients = _read_csv(tmp_path / "out" / "patients.csv")
    assert patients[0]["flagged_for_review"] == str(sum(row["review"] == "true" for row in rows))
    record = json.loads((tmp_path / "out" / "spine.json").read_text())
    assert record["settings"]["decisions"]["temperature"] == instructions["calibration"]["temperature"]
    assert len(record["settings"]["ensemble_members"]) == 1
    assert all(isinstance(vertebra["review"], bool) for vertebra in record["vertebrae"])

    # Without instructions nothing is calibrated or flagged: review stays empty, fracture = grade >= 1.
    plain = _read_csv(tmp_path / "a" / "predictions.csv")
    assert {row["review"] for row in plain} == {""}
    assert [row["fracture"] for row in plain] == ["true" if int(row["grade"]) >= 1 else "false" for row in plain]


def test_folds_given_on_the_command_line_override_the_instructions(selected, tmp_path, capsys):
    assert _predict(selected, tmp_path / "out", "-f", "0", "1") == 0
    assert "folds 0 1" in capsys.readouterr().out
    record = json.loads((tmp_path / "out" / "spine.json").read_text())
    assert record["source"]["folds"] == ["0", "1"] and "decisions" in record["settings"]


@pytest.mark.parametrize("edit, fragment", [
    (lambda content: {**content, "format": "other"}, "inference_instructions.json"),
    (lambda content: {**content, "calibration": {"temperature": -1}}, "temperature"),
    (lambda content: {**content, "calibration": {"temperature": 1.0, "fracture_map": {
        "p_fracture": [0.6, 0.2], "calibrated": [0.1, 0.3]}}}, "p_fracture map"),
    (lambda content: {**content, "dataset": "Dataset951_Other"}, "Dataset951_Other"),
    (lambda content: {**content, "members": [{"trainer": "gone", "plans": "vfnetPlans"}]}, "gone__vfnetPlans"),
])
def test_broken_instructions_are_one_clear_line(edit, fragment, selected, tmp_path, capsys):
    selected["path"].write_text(json.dumps(edit(selected["instructions"])))
    code, stderr = run_in_process("vfnet_predict", predict.main, ["-i", str(selected["input"]), "-o",
                                                                  str(tmp_path / "out"), "-d", "950"], capsys)
    assert_clean_failure(code, stderr, fragment)
    assert not (tmp_path / "out" / "predictions.csv").exists()

"""vfnet_evaluate: matching predictions to reference grades, clear errors, metrics.json and report.html."""
import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from vfnet.cli.evaluate import main
from vfnet.dataset.format import make_dataset_json
from vfnet.errors import VfnetError
from vfnet.evaluation.metrics import classification_metrics

PREDICTION_COLUMNS = ["case", "vertebra", "level", "grade", "p0", "p1", "p2", "p3", "p_fracture"]


def write_csv(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def example(tmp_path):
    """Six cases of three graded vertebrae (+ one ungraded prediction each) and their predictions."""
    rng = np.random.default_rng(3)
    grades, rows, cases = {}, [], []
    for index in range(6):
        case = f"spine{index}"
        vertebrae = {}
        for label in (19, 20, 21):
            grade = int(rng.integers(0, 4))
            vertebrae[label] = grade
            grades[(case, label)] = grade
        cases.append({"case": case, "patient": f"p{index // 2}", "vertebrae": vertebrae})
        for label in (19, 20, 21, 22):
            p = rng.dirichlet(np.ones(4))
            p[vertebrae.get(label, 0)] += 0.4  # mostly right, sometimes wrong
            p = np.round(p / p.sum(), 6)
            rows.append([case, label, "x", int(p.argmax()), *p, 1 - p[0]])
    dataset_json = tmp_path / "dataset.json"
    dataset_json.write_text(json.dumps(make_dataset_json("Dataset001_X", cases)))
    predictions = write_csv(tmp_path / "predictions.csv", PREDICTION_COLUMNS, rows)
    return tmp_path, dataset_json, predictions, grades, rows


def test_evaluate_against_dataset_json_matches_direct_metrics(example):
    folder, dataset_json, predictions, grades, rows = example
    assert main(["-ref", str(dataset_json), "-pred", str(predictions), "-o", str(folder / "out"),
                 "--bootstrap", "100"]) == 0
    metrics = json.loads((folder / "out" / "metrics.json").read_text())
    graded = [row for row in rows if (row[0], row[1]) in grades]
    expected = classification_metrics([grades[(row[0], row[1])] for row in graded],
                                      np.array([row[4:8] for row in graded], dtype=float))
    assert metrics["metrics"] == json.loads(json.dumps(expected))
    assert 0 < metrics["metrics"]["accuracy"] < 1
    assert metrics["ungraded_predictions_ignored"] == 6 and metrics["cases"] == 6
    assert metrics["bootstrap"]["resampled_unit"] == "patient"
    for name in ("report.html", "confusion_matrix.png", "roc.png", "calibration.png"):
        assert (folder / "out" / name).is_file()


def test_reference_csv_with_level_names_gives_the_same_result(example):
    folder, dataset_json, predictions, grades, _ = example
    level = {19: "T12", 20: "L1", 21: "L2"}
    reference = write_csv(folder / "reference.csv", ["case", "vertebra", "grade"],
                          [[case, level[label], grade] for (case, label), grade in grades.items()])
    main(["-ref", str(reference), "-pred", str(predictions), "-o", str(folder / "a"), "--bootstrap", "20"])
    main(["-ref", str(dataset_json), "-pred", str(predictions), "-o", str(folder / "b"), "--bootstrap", "20"])
    first, second = (json.loads((folder / name / "metrics.json").read_text()) for name in ("a", "b"))
    assert first["metrics"] == second["metrics"]


def test_missing_duplicate_and_malformed_rows_name_the_file(example):
    folder, dataset_json, predictions, _, rows = example
    output = str(folder / "out")
    missing = write_csv(folder / "missing.csv", PREDICTION_COLUMNS, [r for r in rows if r[:2] != ["spine2", 20]])
    with pytest.raises(VfnetError, match=r"missing\.csv has no prediction for 1 graded.*spine2 vertebra 20"):
        main(["-ref", str(dataset_json), "-pred", str(missing), "-o", output])
    duplicate = write_csv(folder / "duplicate.csv", PREDICTION_COLUMNS, rows + [rows[0]])
    with pytest.raises(VfnetError, match=r"duplicate\.csv row \d+: case spine0 vertebra 19 is listed twice"):
        main(["-ref", str(dataset_json), "-pred", str(duplicate), "-o", output])
    bad = write_csv(folder / "bad.csv", PREDICTION_COLUMNS, [rows[0][:4] + [0.9, 0.9, 0, 0, 0.1]])
    with pytest.raises(VfnetError, match=r"bad\.csv row 2: p0-p3 must be probabilities"):
        main(["-ref", str(dataset_json), "-pred", str(bad), "-o", output])
    other = write_csv(folder / "other.csv", PREDICTION_COLUMNS, [["unknown", 20, "L1", 0, 1, 0, 0, 0, 0]])
    with pytest.raises(VfnetError, match="None of the cases"):
        main(["-ref", str(dataset_json), "-pred", str(other), "-o", output])
    no_columns = write_csv(folder / "nocols.csv", ["case", "vertebra"], [["spine0", 20]])
    with pytest.raises(VfnetError, match=r"nocols\.csv lacks the column\(s\) p0, p1, p2, p3"):
        main(["-ref", str(dataset_json), "-pred", str(no_columns), "-o", output])
    with pytest.raises(VfnetError, match="does not exist"):
        main(["-ref", str(folder / "nope.csv"), "-pred", str(predictions), "-o", output])


def test_command_line_prints_one_line_error_without_traceback(example):
    folder, _, predictions, _, _ = example
    bad_reference = write_csv(folder / "ref.csv", ["case", "vertebra", "grade"], [["spine0", 20, 7]])
    completed = subprocess.run([sys.executable, "-m", "vfnet.cli.evaluate", "-ref", str(bad_reference), "-pred",
                                str(predictions), "-o", str(folder / "out")], capture_output=True, text=True)
    assert completed.returncode == 1
    assert "ref.csv row 2: grade '7' is not a Genant grade" in completed.stderr
    assert "Traceback" not in completed.stderr

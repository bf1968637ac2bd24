"""vfnet_cv_summary on a fake results folder: five folds of predictions, embeddings and training curves."""
import csv
import json

import numpy as np
import pytest

from vfnet.cli.cv_summary import main
from vfnet.errors import VfnetError
from vfnet.paths import fold_folder, model_folder_name

MODEL = model_folder_name("vfnetTrainer", "vfnetPlans")
COLUMNS = ["case", "patient", "vertebra", "level", "reference", "grade", "p0", "p1", "p2", "p3", "p_fracture"]


def write_fold(model_folder, fold: int, rng, checkpoint="checkpoint_final", progress=True):
    validation = fold_folder(model_folder, fold) / "validation"
    validation.mkdir(parents=True)
    rows, samples, references = [], [], []
    for case_index in range(4):
        case = f"case{fold}{case_index}"
        for label in (18, 19, 20, 21):
            grade = int(rng.integers(0, 4))
            logits = rng.normal(size=4)
            logits[grade] += 2
            p = np.round(np.exp(logits) / np.exp(logits).sum(), 4)
            p[0] = 1 - p[1:].sum()
            rows.append([case, f"patient{fold}{case_index // 2}", label, "L1", grade, int(p.argmax()), *p,
                         1 - p[0]])
            samples.append(f"{case}_{label}")
            references.append(grade)
    with open(validation / "predictions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    references = np.array(references)
    embedding = rng.normal(size=(len(samples), 8)) + 2 * np.eye(8)[references]
    np.savez(validation / "embeddings.npz", sample=np.array(samples), reference=references,
             embedding=embedding / np.linalg.norm(embedding, axis=1, keepdims=True))
    (validation / "metrics.json").write_text(json.dumps({"checkpoint": checkpoint}))
    if progress:
        (fold_folder(model_folder, fold) / "progress.json").write_text(json.dumps(
            {"train_loss": [2.0, 1.5, 1.2], "val_loss": [2.1, 1.7, None],
             "val_macro_f1": [0.2, 0.4, 0.5], "learning_rate": [1e-3, 5e-4, 1e-4]}))


@pytest.fixture
def model_folder(vfnet_folders):
    folder = vfnet_folders["vfnet_results"] / "Dataset004_Fake" / MODEL
    rng = np.random.default_rng(0)
    for fold in range(5):
        write_fold(folder, fold, rng, progress=fold != 4)
    return folder


def test_cv_summary_writes_metrics_report_and_figures(model_folder, capsys):
    assert main(["-d", "4", "--bootstrap", "200"]) == 0
    output = model_folder / "cv_summary"
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["metrics"]["n"] == 5 * 16 and metrics["folds"] == [0, 1, 2, 3, 4]
    # A model trained before cards existed gets one, completed with the pooled metrics and their CIs.
    card = json.loads((model_folder / "model_card.json").read_text())
    assert card["cross_validation"]["vertebrae"] == 5 * 16
    macro_f1 = card["cross_validation"]["metrics"]["macro_f1"]
    assert macro_f1["value"] == metrics["metrics"]["macro_f1"] and len(macro_f1["ci95"]) == 2
    assert metrics["bootstrap"]["resampled_unit"] == "patient"
    low, high = metrics["confidence_intervals"]["macro_f1"]
    assert low <= metrics["metrics"]["macro_f1"] <= high
    assert sorted(metrics["per_fold"]) == ["0", "1", "2", "3", "4"]
    assert all(fold["n"] == 16 for fold in metrics["per_fold"].values())
    separability = metrics["embedding_separability"]
    assert "silhouette" in separability["measure"] and -1 <= separability["mean"] <= 1
    assert metrics["checkpoints"]["0"] == "checkpoint_final"
    for png in ("confusion_matrix.png", "roc.png", "calibration.png", "embeddings_pca.png", "training_curves.png"):
        assert (output / png).read_bytes()[:4] == b"\x89PNG", png
    report = (output / "report.html").read_text()
    assert "optimistic" in report and "checkpoint_final" in report and "embeddings_pca.png" in report
    assert "Report:" in capsys.readouterr().out


def test_missing_fold_is_named_unless_allowed(model_folder, tmp_path):
    (model_folder / "fold_3" / "validation" / "predictions.csv").unlink()
    with pytest.raises(VfnetError, match="Fold 3 is missing"):
        main(["-d", "Dataset004_Fake", "-tr", "vfnetTrainer"])
    assert main(["-d", "4", "--allow_missing_folds", "--bootstrap", "50", "-o", str(tmp_path / "out")]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["missing_folds"] == [3] and metrics["metrics"]["n"] == 4 * 16
    assert "not a full cross-validation" in (tmp_path / "out" / "report.html").read_text()


def test_overlapping_folds_and_bad_files_are_clear_errors(model_folder):
    fold_1 = model_folder / "fold_1" / "validation" / "predictions.csv"
    fold_1.write_text((model_folder / "fold_0" / "validation" / "predictions.csv").read_text())
    with pytest.raises(VfnetError, match="folds 0 and 1"):
        main(["-d", "4"])
    fold_1.write_text("case,vertebra,p0,p1,p2,p3\ncase10,20,0.5,0.5,0,0\n")
    with pytest.raises(VfnetError, match="no reference grade"):
        main(["-d", "4"])
    (model_folder / "fold_2" / "validation" / "embeddings.npz").write_text("not a zip")
    fold_1.unlink()
    with pytest.raises(VfnetError, match="embeddings.npz"):
        main(["-d", "4", "--allow_missing_folds"])


def test_unknown_trainer_and_command_line_exit_code(model_folder):
    with pytest.raises(VfnetError, match="No trained model folder"):
        main(["-d", "4", "-tr", "OtherTrainer"])
    from vfnet.cli.common import run_cli
    assert run_cli("vfnet_cv_summary", main, ["-d", "9"]) == 1


def test_a_degenerate_fold_is_flagged_in_red(model_folder, capsys):
    predictions = fold_folder(model_folder, 2) / "validation" / "predictions.csv"
    with open(predictions, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:   # fold 2 now calls every vertebra normal
        row.update({"grade": "0", "p0": "0.9", "p1": "0.05", "p2": "0.03", "p3": "0.02", "p_fracture": "0.1"})
    with open(predictions, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    assert main(["-d", "4", "--bootstrap", "50"]) == 0
    metrics = json.loads((model_folder / "cv_summary" / "metrics.json").read_text())
    assert list(metrics["degenerate_folds"]) == ["2"]
    report = (model_folder / "cv_summary" / "report.html").read_text()
    assert "class='warning'" in report and "Fold 2 is degenerate" in report
    assert "WARNING: fold 2 is degenerate" in capsys.readouterr().err

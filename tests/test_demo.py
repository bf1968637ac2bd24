"""The demo, end to end, in a reduced form (few cases, one short epoch per fold)."""
import csv

from vfnet.cli import demo
from vfnet.paths import fold_folder, model_folder


def test_demo_runs_end_to_end(tmp_path, capsys):
    workdir = tmp_path / "demo"
    assert demo.main(["--workdir", str(workdir), "--cases", "10", "--new_cases", "2", "--epochs", "1",
                      "--iterations", "1"]) == 0
    output = capsys.readouterr().out
    assert "cross-validation, pooled out-of-fold" in output
    model = model_folder(demo.DATASET_NAME, demo.TRAINER, demo.PLANS, workdir / "vfnet_results")
    for fold in range(5):
        assert (fold_folder(model, fold) / "checkpoint_final.pth").is_file()
    assert (model / "cv_summary" / "report.html").is_file()
    with open(workdir / "predictions" / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["case"] for row in rows} == {"synth0001", "synth0002"}
    assert all(abs(sum(float(row[f"p{g}"]) for g in range(4)) - 1) < 1e-3 for row in rows)
    assert (workdir / "predictions" / "evaluation" / "metrics.json").is_file()

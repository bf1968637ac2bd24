"""The demo, end to end, in a reduced form (few cases, one short epoch per fold)."""
import csv
import shlex

from vfnet.cli import demo, predict
from vfnet.paths import fold_folder, model_folder


def test_demo_runs_end_to_end(tmp_path, capsys, monkeypatch):
    workdir = tmp_path / "demo"
    assert demo.main(["--workdir", str(workdir), "--cases", "10", "--new_cases", "2", "--epochs", "1",
                      "--iterations", "1"]) == 0
    output = capsys.readouterr().out
    assert "cross-validation, pooled out-of-fold" in output
    lines = output.splitlines()
    command = lines[lines.index("To predict with these models again (put your CTs and vertebra masks in place of -i "
                                "and --masks):") + 1].strip()
    results = workdir.resolve() / "vfnet_results"
    assert f"vfnet_results={results} " in command and " vfnet_predict -i " in command and command.endswith("-d 900")
    assert lines[-1].startswith("These models are SYNTHETIC: trained for 1 epoch on 10 phantom CTs")
    # The printed command works as printed (it reuses the demo's predictions: same model, same settings).
    words = shlex.split(command)
    for assignment in words[:3]:
        name, value = assignment.split("=", 1)
        monkeypatch.setenv(name, value)
    assert words[3] == "vfnet_predict" and predict.main(words[4:]) == 0
    assert "2 case(s) predicted (2 reused from an earlier run)" in capsys.readouterr().out
    model = model_folder(demo.DATASET_NAME, demo.TRAINER, demo.PLANS, workdir / "vfnet_results")
    for fold in range(5):
        assert (fold_folder(model, fold) / "checkpoint_final.pth").is_file()
    assert (model / "cv_summary" / "report.html").is_file()
    with open(workdir / "predictions" / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["case"] for row in rows} == {"synth0001", "synth0002"}
    assert all(abs(sum(float(row[f"p{g}"]) for g in range(4)) - 1) < 1e-3 for row in rows)
    assert (workdir / "predictions" / "evaluation" / "metrics.json").is_file()

"""Logs for files and for people: progress bars only on a terminal; a redirected log gets one line per epoch or
case and no carriage-return redraws; progress.png is titled with dataset, fold and plan."""
import os
import subprocess
import sys
from pathlib import Path

from test_training import fake_dataset  # noqa: F401  (a fixture)
from vfnet.preprocessing.parallel import map_cases
from vfnet.progress_bars import LineProgress, progress_bar
from vfnet.training.progress import ProgressWriter, empty_log

REPO = Path(__file__).resolve().parents[1]
CONTROL = ("\r", "\x1b[")


def test_training_log_written_to_a_file_has_one_line_per_epoch(fake_dataset, tmp_path):  # noqa: F811
    log = tmp_path / "train.log"
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    with open(log, "w") as handle:
        code = subprocess.run([sys.executable, "-m", "vfnet.cli.train", "-d", "901", "-f", "0", "--epochs", "3",
                               "--iterations", "2"], stdout=handle, stderr=subprocess.STDOUT, env=environment,
                              cwd=tmp_path, timeout=600).returncode
    text = log.read_text()
    assert code == 0, text
    assert not any(character in text for character in CONTROL), repr(text[:300])
    lines = text.splitlines()
    for epoch in (1, 2, 3):
        assert sum(f": epoch {epoch}/3 (" in line for line in lines) == 1, text
    assert len(lines) < 12, text     # start, three epochs, finish, the command's last line (+ warnings)


def test_cases_get_one_line_each_off_a_terminal(capsys):
    outcomes = map_cases(lambda item: item * 2, [("a", 1), ("b", 2), ("c", 3)], 1, "fingerprint")
    assert [outcome.result for outcome in outcomes] == [2, 4, 6]
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["fingerprint: 1/3 cases (a)", "fingerprint: 2/3 cases (b)",
                                         "fingerprint: 3/3 cases (c)"]
    assert not any(character in captured.out + captured.err for character in CONTROL)


def test_a_bar_on_a_terminal_and_silence_for_batches_elsewhere(monkeypatch, capsys):
    assert isinstance(progress_bar(range(3), desc="x", unit="case", line_per_item=True), LineProgress)
    assert list(progress_bar(range(3), desc="epoch 1/2", unit="batch", leave=False)) == [0, 1, 2]
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    bar = progress_bar(range(3), desc="epoch 1/2", unit="batch")
    assert type(bar).__name__ == "tqdm" and not bar.disable
    bar.close()


def test_progress_png_title_names_dataset_fold_and_plan(tmp_path):
    fold = tmp_path / "Dataset900_SyntheticSpine" / "vfnetTrainer__vfnetPlans" / "fold_3"
    fold.mkdir(parents=True)
    writer = ProgressWriter(fold, empty_log())
    assert writer.title() == "Dataset900_SyntheticSpine, fold 3, plans vfnetPlans (trainer vfnetTrainer)"
    writer.record_epoch({"train_loss": 1.0, "learning_rate": 1e-3, "epoch_seconds": 2.0})
    writer.plot()
    assert (fold / "progress.png").stat().st_size > 10_000

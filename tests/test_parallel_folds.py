"""vfnet_train -f 0 1 ...: folds side by side on one CUDA GPU (a process each), one after another on the CPU."""
import sys

import pytest

from test_training import fake_dataset  # noqa: F401  (the fixture)
from vfnet.cli import parallel_folds
from vfnet.cli import train as train_cli
from vfnet.cli.common import run_cli
from vfnet.model.checkpoint import load_checkpoint


def test_each_fold_process_gets_the_same_settings():
    args = train_cli.build_parser().parse_args(["-d", "901", "-f", "0", "1", "--c", "--epochs", "3", "--override",
                                                "training.supcon_weight=0", "-tr", "t1", "--deterministic"])
    single = train_cli.build_parser().parse_args(parallel_folds.fold_argv(args, 1, "cuda"))
    assert single.fold == ["1"] and single.device == "cuda" and single.num_gpus == 1
    for key in ("dataset", "plans", "trainer", "resume", "override", "epochs", "iterations", "deterministic",
                "seed", "compile"):
        assert getattr(single, key) == getattr(args, key), key


def test_processes_run_side_by_side_with_their_own_logs(tmp_path):
    commands = [[sys.executable, "-c", "import os; print('fold a', os.environ['OMP_NUM_THREADS'])"],
                [sys.executable, "-c", "import sys; print('fold b'); sys.exit(3)"]]
    logs = [tmp_path / "fold_0" / "console.log", tmp_path / "fold_1" / "console.log"]
    assert parallel_folds.run_side_by_side(commands, logs, threads=3) == [0, 3]
    assert logs[0].read_text().strip() == "fold a 3" and "fold b" in logs[1].read_text()


def test_several_folds_on_cuda_start_one_process_each(fake_dataset, monkeypatch):  # noqa: F811
    started = []
    monkeypatch.setattr(train_cli, "choose_device", lambda name: ("cuda", "test"))
    monkeypatch.setattr(train_cli, "train_side_by_side",
                        lambda args, folds, device, folders: started.append((folds, [f.name for f in folders])))
    assert train_cli.main(["-d", "901", "-f", "0", "1"]) == 0
    assert started == [([0, 1], ["fold_0", "fold_1"])]


def test_several_folds_on_the_cpu_train_one_after_another(fake_dataset, capsys):  # noqa: F811
    assert train_cli.main(["-d", "901", "-f", "0", "1", "--epochs", "1", "--iterations", "1"]) == 0
    for fold in (0, 1):
        assert load_checkpoint(fake_dataset / f"fold_{fold}" / "checkpoint_final.pth")["fold"] == fold
    assert run_cli("vfnet_train", train_cli.main, ["-d", "901", "-f", "0", "0"]) == 1
    assert "name a fold twice" in capsys.readouterr().err
    assert run_cli("vfnet_train", train_cli.main, ["-d", "901", "-f", "0", "1", "--num_gpus", "2"]) == 1
    assert "cannot be combined" in capsys.readouterr().err


def test_a_failed_fold_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(parallel_folds, "run_side_by_side", lambda commands, logs, threads: [0, 1])
    args = train_cli.build_parser().parse_args(["-d", "901", "-f", "0", "1"])
    with pytest.raises(Exception, match=r"fold\(s\) 1 \(exit code 1, see .*fold_1/console.log\) failed"):
        parallel_folds.train_side_by_side(args, [0, 1], "cuda", [tmp_path / "fold_0", tmp_path / "fold_1"])

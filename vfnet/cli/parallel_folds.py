"""Several folds from one vfnet_train: side by side on one GPU (a process per fold), one after another elsewhere.

One fold of a small plan leaves a GPU mostly idle (issue 12), so `vfnet_train -d N -f 0 1 2 3 4` on CUDA starts
one `vfnet_train -f K` process per fold on the same device. Each trains, logs and checkpoints its fold exactly as
alone (`--c` included); its console output goes to fold_K/console.log instead of the shared terminal. On the CPU
folds side by side would only compete for the cores, so there they run one after another.
"""
import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from vfnet.errors import VfnetError


def fold_argv(args: argparse.Namespace, fold: int | str, device: str) -> list[str]:
    """The vfnet_train arguments that train `fold` alone with the same settings."""
    argv = ["-d", str(args.dataset), "-f", str(fold), "-p", args.plans, "-tr", args.trainer, "-device", device,
            "--seed", str(args.seed)]
    argv += ["--override", *args.override] if args.override else []
    argv += ["--epochs", str(args.epochs)] if args.epochs is not None else []
    argv += ["--iterations", str(args.iterations)] if args.iterations is not None else []
    for flag, on in (("--c", args.resume), ("--deterministic", args.deterministic), ("--compile", args.compile),
                     ("--debug", args.debug)):
        argv += [flag] if on else []
    return argv


def run_side_by_side(commands: Sequence[Sequence[str]], logs: Sequence[Path], threads: int) -> list[int]:
    """Start every command at once (stdout and stderr to its log), wait for all; their exit codes.
    Ctrl-C stops them all; each resumes from its own checkpoint_latest with --c."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))   # the CPU side of each process; cores are shared
    processes = []
    try:
        for command, log in zip(commands, logs):
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "w") as handle:
                processes.append(subprocess.Popen(list(command), stdout=handle, stderr=subprocess.STDOUT, env=env))
        return [process.wait() for process in processes]
    except BaseException:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait()
        raise


def train_side_by_side(args: argparse.Namespace, folds: Sequence[int | str], device: str,
                       fold_folders: Sequence[Path]) -> None:
    logs = [folder / "console.log" for folder in fold_folders]
    commands = [[sys.executable, "-m", "vfnet.cli.train", *fold_argv(args, fold, device)] for fold in folds]
    for fold, log in zip(folds, logs):
        print(f"vfnet_train: fold {fold} started on {device} beside the others; console output in {log}", flush=True)
    codes = run_side_by_side(commands, logs, max(1, (os.cpu_count() or 1) // len(folds)))
    failed = [f"{fold} (exit code {code}, see {log})" for fold, code, log in zip(folds, codes, logs) if code != 0]
    if failed:
        raise VfnetError(f"fold(s) {', '.join(failed)} failed; the others finished. Rerun the failed ones with --c.")

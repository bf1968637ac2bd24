"""vfnet_demo: the whole pipeline, end to end, on a synthetic spine dataset the project generates itself.

generate -> plan and preprocess (demo budget, measured) -> train five folds -> cross-validation summary ->
predict new synthetic cases with the five-fold ensemble -> evaluate those predictions.
Each step calls the same `main` a user would run from the shell, so the demo exercises the real commands.
"""
import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from vfnet.cli.common import add_debug_flag, run_cli
from vfnet.errors import VfnetError
from vfnet.fileio import read_json
from vfnet.paths import fold_folder, model_folder

DATASET_ID = 900
DATASET_NAME = f"Dataset{DATASET_ID:03d}_SyntheticSpine"
TRAINER = "vfnetTrainer"
PLANS = "vfnetPlans"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vfnet_demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("vfnet_workdir"),
                        help="folder for the raw, preprocessed and results folders (default ./vfnet_workdir)")
    parser.add_argument("--cases", type=int, default=24, help="synthetic training CTs (default 24)")
    parser.add_argument("--new_cases", type=int, default=4, help="unseen synthetic CTs to predict (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default 0)")
    # The demo plans for its own budget (a narrower network, epochs from a measured training speed) so that the
    # whole run stays within 10 minutes on two cores.
    parser.add_argument("--epochs", type=int, default=0,
                        help="override the plan's epochs (default 0: the demo budget's measured plan)")
    parser.add_argument("--iterations", type=int, default=None, help="override the plan's iterations per epoch")
    parser.add_argument("--folds", nargs="+", default=["0", "1", "2", "3", "4"], help="folds to train")
    add_debug_flag(parser)
    return parser


def _step(title: str, command: Callable[[Sequence[str] | None], int | None], argv: list[str]) -> float:
    """Run one command's main; a failing step stops the demo with that command's message."""
    print(f"\n=== {title}\n$ {command.__module__.rsplit('.', 1)[-1]} {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    code = command(argv)
    if code:
        raise VfnetError(f"the demo step '{title}' failed (exit code {code}); see the messages above.")
    seconds = time.perf_counter() - start
    print(f"--- {title}: {seconds:.1f} s", flush=True)
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    from vfnet.cli import cv_summary, evaluate, generate_synthetic, plan_and_preprocess, predict, train

    args = build_parser().parse_args(argv)
    workdir = args.workdir.resolve()
    folders = {name: workdir / name for name in ("vfnet_raw", "vfnet_preprocessed", "vfnet_results")}
    for name, folder in folders.items():
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[name] = str(folder)  # the demo's own folders, whatever the shell had set
    raw = folders["vfnet_raw"] / DATASET_NAME
    new_cases = workdir / "new_cases"
    predictions = workdir / "predictions"
    model = model_folder(DATASET_NAME, TRAINER, PLANS, folders["vfnet_results"])
    started = time.perf_counter()
    timings = {}

    if not (raw / "dataset.json").exists():
        timings["generate"] = _step("generate synthetic training data", generate_synthetic.main,
                                    ["-o", str(raw), "--cases", str(args.cases), "--seed", str(args.seed)])
    if not (new_cases / "dataset.json").exists():
        timings["generate new"] = _step("generate unseen cases", generate_synthetic.main,
                                        ["-o", str(new_cases), "--cases", str(args.new_cases),
                                         "--seed", str(args.seed + 1000)])
    timings["plan"] = _step("plan and preprocess", plan_and_preprocess.main,
                            ["-d", str(DATASET_ID), "--verify_dataset_integrity", "--budget", "demo", "--measure"])
    overrides = (["--epochs", str(args.epochs)] if args.epochs else []) + \
                (["--iterations", str(args.iterations)] if args.iterations else [])
    for fold in args.folds:
        resume = ["--c"] if (fold_folder(model, fold) / "checkpoint_latest.pth").exists() else []
        timings[f"train fold {fold}"] = _step(f"train fold {fold}", train.main,
                                              ["-d", str(DATASET_ID), "-f", fold] + overrides + resume)
    summary_args = ["-d", str(DATASET_ID)] + ([] if len(args.folds) == 5 else ["--allow_missing_folds"])
    timings["cv summary"] = _step("cross-validation summary", cv_summary.main, summary_args)
    timings["predict"] = _step("predict unseen cases (ensemble of the trained folds)", predict.main,
                               ["-i", str(new_cases / "imagesTr"), "--masks", str(new_cases / "labelsTr"),
                                "-o", str(predictions), "-d", str(DATASET_ID), "-f", *args.folds])
    timings["evaluate"] = _step("evaluate predictions on the unseen cases", evaluate.main,
                                ["-ref", str(new_cases / "dataset.json"), "-pred", str(predictions / "predictions.csv"),
                                 "-o", str(predictions / "evaluation")])
    _print_summary(model / "cv_summary",
                   predictions, time.perf_counter() - started)
    _print_reuse(folders, new_cases, predictions, args)
    return 0


def _print_summary(summary_folder: Path, predictions: Path, seconds: float) -> None:
    pooled = read_json(summary_folder / "metrics.json", "cross-validation metrics")["metrics"]
    unseen = read_json(predictions / "evaluation" / "metrics.json", "evaluation metrics")["metrics"]

    def line(label: str, metrics: dict) -> str:
        keys = ("macro_f1", "binary_sensitivity", "binary_specificity", "binary_roc_auc", "qwk")
        values = ", ".join(f"{key} {metrics[key]:.3f}" if isinstance(metrics.get(key), (int, float)) else
                           f"{key} n/a" for key in keys)
        return f"{label} (n={metrics.get('n', '?')}): {values}"

    print("\n=== vfnet demo finished in %.0f s" % seconds)
    print(line("cross-validation, pooled out-of-fold", pooled))
    print(line("unseen synthetic cases, five-fold ensemble", unseen))
    print(f"report:      {summary_folder / 'report.html'}")
    print(f"predictions: {predictions / 'predictions.csv'}")


def reuse_command(folders: dict[str, Path], inputs: Path, masks: Path, output: Path, folds: list[str]) -> str:
    """The shell command that predicts with the demo's models: its folders are the demo's, not the shell's."""
    environment = " ".join(f"{name}={shlex.quote(str(folder))}" for name, folder in folders.items())
    fold_option = "" if folds == ["0", "1", "2", "3", "4"] else " -f " + " ".join(folds)
    return (f"{environment} vfnet_predict -i {shlex.quote(str(inputs))} --masks {shlex.quote(str(masks))} "
            f"-o {shlex.quote(str(output))} -d {DATASET_ID}{fold_option}")


def _print_reuse(folders: dict[str, Path], new_cases: Path, predictions: Path, args: argparse.Namespace) -> None:
    epochs = f"{args.epochs} epoch{'s' if args.epochs != 1 else ''}" if args.epochs else "the plan's epochs"
    print("\nTo predict with these models again (put your CTs and vertebra masks in place of -i and --masks):")
    print("  " + reuse_command(folders, new_cases / "imagesTr", new_cases / "labelsTr", predictions, args.folds))
    print(f"These models are SYNTHETIC: trained for {epochs} on {args.cases} phantom CTs, not on patients; their "
          f"grades of a real CT mean nothing (vfnet_predict warns on every vertebra).")


def entry() -> None:
    sys.exit(run_cli("vfnet_demo", main))


if __name__ == "__main__":
    entry()

"""vfnet_train: train one fold (0-4) or all data of a planned, preprocessed dataset."""
import argparse
import re
import sys
from typing import Sequence

from vfnet import paths
from vfnet.cli.common import add_debug_flag, run_cli
from vfnet.cli.parallel_folds import train_side_by_side
from vfnet.devices import DEVICE_CHOICES, choose_device
from vfnet.errors import VfnetError
from vfnet.planning.plans import apply_overrides, load_plans
from vfnet.training.trainer import DEFAULT_TRAINER, TrainingRun, train

TRAINER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vfnet_train", description="Train the vertebral fracture grader on one fold of a preprocessed dataset. "
        "Results go to $vfnet_results/DatasetXXX_Name/<trainer>__<plans>/fold_N/.")
    parser.add_argument("-d", "--dataset", required=True, help="dataset id (e.g. 1) or folder name Dataset001_Name")
    parser.add_argument("-f", "--fold", required=True, nargs="+",
                        help="fold 0-4 of splits_final.json, or 'all' (no validation); several folds (-f 0 1 2 3 4) "
                             "train side by side on one CUDA GPU (a process each), one after another on the CPU")
    parser.add_argument("-p", "--plans", default="vfnetPlans", help="plans name (file <name>.json); default vfnetPlans")
    parser.add_argument("-tr", "--trainer", default=DEFAULT_TRAINER,
                        help="name of the results folder's trainer part (the loop itself is fixed; use a new name "
                             "for runs with --override so they do not overwrite each other)")
    parser.add_argument("--c", dest="resume", action="store_true", help="continue from checkpoint_latest")
    parser.add_argument("-device", "--device", choices=DEVICE_CHOICES, default="auto",
                        help="auto (default): a CUDA GPU, else Apple MPS, else the CPU; the choice is printed")
    parser.add_argument("--override", nargs="+", default=[], metavar="KEY=VALUE",
                        help="change plan values for this run, e.g. training.supcon_weight=0")
    parser.add_argument("--num_gpus", type=int, default=1,
                        help="processes for DistributedDataParallel (one per GPU; with -device cpu: CPU processes)")
    parser.add_argument("--epochs", type=int, help="override the plan's training.epochs for this run")
    parser.add_argument("--iterations", type=int, help="override the plan's training.iterations_per_epoch")
    parser.add_argument("--deterministic", action="store_true", help="seed everything; identical runs on CPU")
    parser.add_argument("--seed", type=int, default=12345, help="seed used with --deterministic")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network (opt-in)")
    add_debug_flag(parser)
    return parser


def _fold(text: str) -> int | str:
    if text == "all":
        return "all"
    if not text.isdigit():
        raise VfnetError(f"Fold '{text}' must be a fold number (0-4) or 'all'.")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not TRAINER_NAME.match(args.trainer):
        raise VfnetError(f"Trainer name '{args.trainer}' may hold only letters, digits, '_', '.' and '-'.")
    if args.num_gpus < 1:
        raise VfnetError("--num_gpus must be at least 1.")
    folds = [_fold(text) for text in args.fold]
    if len(set(folds)) != len(folds):
        raise VfnetError(f"Folds {' '.join(args.fold)} name a fold twice; list each once.")
    if len(folds) > 1 and args.num_gpus > 1:
        raise VfnetError("Several folds (-f) and several GPUs per fold (--num_gpus) cannot be combined; train the "
                         "folds side by side on one GPU, or one fold at a time with --num_gpus.")
    base = paths.preprocessed_folder()
    dataset_name = paths.dataset_folder_name(base, args.dataset)
    dataset_folder = base / dataset_name
    overrides = list(args.override)
    overrides += [f"training.epochs={args.epochs}"] if args.epochs is not None else []
    overrides += [f"training.iterations_per_epoch={args.iterations}"] if args.iterations is not None else []
    plans = apply_overrides(load_plans(dataset_folder / f"{args.plans}.json"), overrides)
    output_folder = paths.model_folder(dataset_name, args.trainer, args.plans)
    device, reason = choose_device(args.device)
    print(f"vfnet_train: training on {device} ({reason}).", flush=True)
    runs = [TrainingRun(dataset_folder=dataset_folder, output_folder=output_folder, plans=plans, fold=fold,
                        trainer_name=args.trainer, device=device, resume=args.resume,
                        deterministic=args.deterministic, compile=args.compile, seed=args.seed) for fold in folds]
    if len(runs) > 1 and device == "cuda":
        train_side_by_side(args, folds, device, [run.fold_folder for run in runs])
    else:
        for run in runs:
            train(run, args.num_gpus)
    for run in runs:
        print(f"vfnet_train: fold {run.fold} finished; results in {run.fold_folder}")
    return 0


def entry() -> None:
    sys.exit(run_cli("vfnet_train", main))


if __name__ == "__main__":
    entry()

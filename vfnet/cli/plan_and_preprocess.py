"""vfnet_plan_and_preprocess: fingerprint, plan and preprocess a raw dataset in one go (like nnU-Net's)."""
import argparse
import sys
from typing import Sequence

from vfnet.cli.common import add_debug_flag, run_cli
from vfnet.devices import AUTO, choose_budget
from vfnet.planning.budget import BUDGETS
from vfnet.plan_and_preprocess import (DEFAULT_PLANS_NAME, run_fingerprint, run_planning, run_preprocessing,
                                     verify_integrity)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--dataset", required=True, help="dataset id (7, 007) or folder name (Dataset007_X)")
    add_debug_flag(parser)


def add_process_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-np", "--num_processes", type=int, default=2,
                        help="worker processes, one case each at a time (default 2)")


def add_planning_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--budget", choices=[AUTO, *sorted(BUDGETS)], default=AUTO,
                        help="compute budget the plan must fit: cpu (5 folds of ~280 vertebrae in ~30 min on 2 "
                             "cores), gpu, demo (vfnet_demo's small network), or auto (default: gpu when a CUDA "
                             "GPU is visible, else cpu; printed)")
    parser.add_argument("--measure", action="store_true",
                        help="time a few training steps of the planned network on this machine (CPU for the cpu "
                             "budget, the CUDA GPU for gpu) and plan the epochs from that throughput (~20 s)")
    parser.add_argument("--override", nargs="+", default=[], metavar="KEY=VALUE",
                        help="edit the plan: dotted key = JSON value, e.g. training.supcon_weight=0")
    add_plans_name_argument(parser)


def add_plans_name_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-pl", "--plans_name", default=DEFAULT_PLANS_NAME,
                        help="plans file name without .json, e.g. vfnetPlans_ceonly (default vfnetPlans)")


def planning_budget(requested: str) -> str:
    """The budget to plan for; `auto` is resolved and printed with its reason."""
    budget, reason = choose_budget(requested)
    print(f"Planning for the {budget} budget ({reason}).", flush=True)
    return budget


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vfnet_plan_and_preprocess", description=__doc__)
    add_common_arguments(parser)
    add_process_argument(parser)
    add_planning_arguments(parser)
    parser.add_argument("--verify_dataset_integrity", action="store_true",
                        help="check every file of the raw dataset first and stop on problems")
    parser.add_argument("--clean", action="store_true",
                        help="recompute the fingerprint and all crops instead of reusing finished ones")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verify_dataset_integrity:
        verify_integrity(args.dataset)
    run_fingerprint(args.dataset, args.num_processes, args.clean)
    run_planning(args.dataset, planning_budget(args.budget), args.plans_name, args.override, args.measure)
    run_preprocessing(args.dataset, args.plans_name, args.num_processes, args.clean)
    return 0


def entry() -> None:
    sys.exit(run_cli("vfnet_plan_and_preprocess", main))


if __name__ == "__main__":
    entry()

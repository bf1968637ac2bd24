"""vfnet_preprocess: crop every graded vertebra as the plan says, and write the cross-validation splits."""
import argparse
import sys
from typing import Sequence

from vfnet.cli.common import run_cli
from vfnet.cli.plan_and_preprocess import add_common_arguments, add_plans_name_argument, add_process_argument
from vfnet.plan_and_preprocess import run_preprocessing


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vfnet_preprocess", description=__doc__)
    add_common_arguments(parser)
    add_process_argument(parser)
    add_plans_name_argument(parser)
    parser.add_argument("--clean", action="store_true", help="delete and redo all crops of this plan")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run_preprocessing(args.dataset, args.plans_name, args.num_processes, args.clean)
    return 0


def entry() -> None:
    sys.exit(run_cli("vfnet_preprocess", main))


if __name__ == "__main__":
    entry()

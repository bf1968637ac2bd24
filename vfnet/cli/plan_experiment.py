"""vfnet_plan_experiment: turn the dataset fingerprint into a plan (vfnetPlans.json) for a compute budget."""
import argparse
import sys
from typing import Sequence

from vfnet.cli.common import run_cli
from vfnet.cli.plan_and_preprocess import add_common_arguments, add_planning_arguments, planning_budget
from vfnet.plan_and_preprocess import run_planning


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vfnet_plan_experiment", description=__doc__)
    add_common_arguments(parser)
    add_planning_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run_planning(args.dataset, planning_budget(args.budget), args.plans_name, args.override, args.measure)
    return 0


def entry() -> None:
    sys.exit(run_cli("vfnet_plan_experiment", main))


if __name__ == "__main__":
    entry()

"""vfnet_extract_fingerprint: measure spacings, vertebra extents, intensities and grade counts of a dataset."""
import argparse
import sys
from typing import Sequence

from vfnet.cli.common import run_cli
from vfnet.cli.plan_and_preprocess import add_common_arguments, add_process_argument
from vfnet.plan_and_preprocess import run_fingerprint, verify_integrity


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vfnet_extract_fingerprint", description=__doc__)
    add_common_arguments(parser)
    add_process_argument(parser)
    parser.add_argument("--verify_dataset_integrity", action="store_true", help="check the raw dataset first")
    parser.add_argument("--clean", action="store_true", help="recompute an existing fingerprint")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verify_dataset_integrity:
        verify_integrity(args.dataset)
    run_fingerprint(args.dataset, args.num_processes, args.clean)
    return 0


def entry() -> None:
    sys.exit(run_cli("vfnet_extract_fingerprint", main))


if __name__ == "__main__":
    entry()

"""vfnet_find_best_configuration: choose the configuration (or ensemble of configurations) to predict with, from
the cross-validation results, calibrate it and write inference_instructions.json for vfnet_predict -d."""
import argparse
import sys
from typing import Sequence

from vfnet.cli.common import add_debug_flag, run_cli
from vfnet.errors import VfnetError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vfnet_find_best_configuration",
        description="Score every trained configuration (<trainer>__<plans> folder) of a dataset and every ensemble "
                    "of two or more by the macro-F1 of their pooled out-of-fold predictions, choose one (the simpler "
                    "candidate wins when the paired patient-bootstrap 95 %% CI of the difference includes 0), fit "
                    "a calibration temperature, the fracture threshold and the review threshold on the same "
                    "predictions, and write inference_instructions.json plus a summary folder "
                    "(configuration_selection/) in the dataset's results folder.")
    parser.add_argument("-d", "--dataset", required=True, help="dataset id or DatasetXXX_Name")
    parser.add_argument("-c", "--configurations", nargs="+", default=None, metavar="TRAINER__PLANS",
                        help="model folders to choose among (default: every folder with out-of-fold predictions)")
    parser.add_argument("--allow_missing_folds", action="store_true",
                        help="use the folds every configuration has instead of requiring folds 0-4")
    parser.add_argument("--target_sensitivity", type=float, default=None,
                        help="choose the p_fracture threshold of the binary 'fracture' column for this out-of-fold "
                             "sensitivity, e.g. 0.95 (default: fracture = grade >= 1)")
    parser.add_argument("--review_fraction", type=float, default=0.1,
                        help="fraction of out-of-fold vertebrae the review flag should catch, the most uncertain "
                             "first (default 0.1)")
    parser.add_argument("--max_fold_spread", type=float, default=0.2,
                        help="also flag a vertebra for review when the std of p_fracture across folds exceeds "
                             "this (default 0.2)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    add_debug_flag(parser)
    return parser


def _check_ranges(args: argparse.Namespace) -> None:
    if args.target_sensitivity is not None and not 0 < args.target_sensitivity <= 1:
        raise VfnetError(f"--target_sensitivity must be in (0, 1], got {args.target_sensitivity}.")
    if not 0 <= args.review_fraction < 1:
        raise VfnetError(f"--review_fraction must be in [0, 1), got {args.review_fraction}.")
    if not args.max_fold_spread >= 0:
        raise VfnetError(f"--max_fold_spread must be 0 or more, got {args.max_fold_spread}.")
    if args.bootstrap < 1:
        raise VfnetError(f"--bootstrap must be at least 1, got {args.bootstrap}.")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _check_ranges(args)
    # Imported here so `--help` stays fast and does not load torch.
    from vfnet.selection.run import select, write_selection
    from vfnet.selection.summary import render
    selection = select(args.dataset, args.configurations, args.allow_missing_folds, args.target_sensitivity,
                       args.review_fraction, args.max_fold_spread, args.bootstrap, args.seed)
    path = write_selection(selection)
    print(render(selection))
    print(f"Inference instructions: {path} (vfnet_predict -d {selection.dataset} follows them)")
    return 0


def entry() -> None:
    sys.exit(run_cli("vfnet_find_best_configuration", main))


if __name__ == "__main__":
    entry()

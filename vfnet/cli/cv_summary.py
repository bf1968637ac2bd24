"""vfnet_cv_summary: pool the five folds' out-of-fold predictions into metrics.json and report.html."""
import argparse
import sys
from pathlib import Path
from typing import Sequence

from vfnet.cli.common import add_debug_flag, run_cli
from vfnet.evaluation.cv_summary import find_model_folder, summarise_cross_validation


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vfnet_cv_summary",
        description="Pool the out-of-fold validation predictions of folds 0-4 of a trained model and write "
                    "metrics.json (metrics, patient-level bootstrap 95 % CIs, per-fold metrics) and report.html.")
    parser.add_argument("-d", "--dataset", required=True, help="dataset id or DatasetXXX_Name")
    parser.add_argument("-tr", "--trainer", default=None,
                        help="trainer name (default: the only trainer folder trained with these plans)")
    parser.add_argument("-p", "--plans", default="vfnetPlans", help="plans name (default: vfnetPlans)")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="output folder (default: <trainer>__<plans>/cv_summary in the results folder)")
    parser.add_argument("--allow_missing_folds", action="store_true",
                        help="summarise the folds that exist instead of stopping at a missing one")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    add_debug_flag(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    folder = find_model_folder(args.dataset, args.trainer, args.plans)
    output = args.output or folder / "cv_summary"
    content = summarise_cross_validation(folder, output, args.allow_missing_folds, args.bootstrap, args.seed)
    metrics, intervals = content["metrics"], content["confidence_intervals"]
    for key in ("macro_f1", "qwk", "binary_roc_auc", "binary_sensitivity", "binary_specificity"):
        value, interval = metrics[key], intervals.get(key)
        shown = "n/a" if value is None else f"{value:.3f}"
        if interval is not None:
            shown += f" (95 % CI {interval[0]:.3f}-{interval[1]:.3f})"
        print(f"{key:>20}: {shown}")
    for fold, reason in content["degenerate_folds"].items():
        print(f"WARNING: fold {fold} is degenerate: {reason}; retrain it before using the ensemble.",
              file=sys.stderr)
    print(f"Report: {output / 'report.html'}")
    return 0


def entry() -> None:
    sys.exit(run_cli("vfnet_cv_summary", main))


if __name__ == "__main__":
    entry()

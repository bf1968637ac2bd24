"""vfnet_evaluate: compare a predictions CSV with reference grades; write metrics.json and report.html."""
import argparse
import sys
from pathlib import Path
from typing import Sequence

from vfnet.cli.common import add_debug_flag, run_cli
from vfnet.evaluation.compare import evaluate_predictions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vfnet_evaluate",
        description="Compare vfnet_predict's predictions.csv with reference Genant grades: metrics with "
                    "patient-level bootstrap 95 % CIs in OUT/metrics.json, figures in OUT/report.html.")
    parser.add_argument("-ref", "--reference", type=Path, required=True,
                        help="reference grades: a CSV with columns case,vertebra,grade[,patient] (vertebra as "
                             "VerSe id or level name) or a dataset.json / dataset folder")
    parser.add_argument("-pred", "--predictions", type=Path, required=True,
                        help="predictions CSV with columns case,vertebra,p0,p1,p2,p3")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    add_debug_flag(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    content = evaluate_predictions(args.reference, args.predictions, args.output, args.bootstrap, args.seed)
    metrics = content["metrics"]
    print(f"{metrics['n']} vertebrae of {content['cases']} cases: macro-F1 {_show(metrics['macro_f1'])}, "
          f"QWK {_show(metrics['qwk'])}, ROC-AUC {_show(metrics['binary_roc_auc'])}")
    print(f"Report: {args.output / 'report.html'}")
    return 0


def _show(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def entry() -> None:
    sys.exit(run_cli("vfnet_evaluate", main))


if __name__ == "__main__":
    entry()

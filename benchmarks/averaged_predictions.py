"""What averaging models does: macro-F1 of the mean probabilities of several sets of vfnet_predict outputs.

vfnet predicts with the average of its five folds, so a change to the method should also be judged on averaged
models, not only on single-model cross-validation: a change can raise every single model and still lower their
average, when its models err alike. The phantom benchmark has no held-out fold ensemble, but the same default
trained with other seeds (`vfnet_train --seed S`) and predicted out-of-fold (`bench_mask_robustness.py`, one folder
per seed, copied aside) gives models whose average behaves as an ensemble's:

    python benchmarks/averaged_predictions.py --workdir W SEED0_FOLDER SEED1_FOLDER [...]

For k = 1..n it prints the mean macro-F1 over every subset of k folders (probabilities averaged per vertebra,
then argmax), and for all n together the metrics with patient-level bootstrap 95 % CIs. Only the graded
vertebrae that every folder predicted count. `--against B0 B1 ...` also averages a second set of folders (the
current default's seeds) and prints the paired difference of the two averages (patient-level bootstrap), as
paired_predictions.py does for two single folders:

    python benchmarks/averaged_predictions.py --workdir W NEW0 NEW1 NEW2 --against OLD0 OLD1 OLD2
"""
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import base_parser, machine, metrics_with_intervals, summary_line, write_result  # noqa: E402
from paired_predictions import graded_vertebrae, print_differences, read_probabilities  # noqa: E402

from vfnet.evaluation.bootstrap import paired_difference_intervals  # noqa: E402
from vfnet.evaluation.metrics import classification_metrics  # noqa: E402


def _stack(predicted: list[dict], keys: list) -> np.ndarray:
    """(folders, vertebrae, 4) probabilities of each folder for `keys`, in that order."""
    return np.array([[p[key] for key in keys] for p in predicted])


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--against", type=Path, nargs="+", default=[],
                        help="folders of the model set to compare with (paired difference of the two averages)")
    parser.add_argument("--dataset", type=int, default=504)
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    grades, patients = graded_vertebrae(args.workdir, args.dataset)
    graded = set(grades)
    predicted = [read_probabilities(folder, graded) for folder in args.folders]
    baseline = [read_probabilities(folder, graded) for folder in args.against]
    keys = sorted(set.intersection(*(set(p) for p in predicted + baseline)))
    if not keys:
        sys.exit("no graded vertebra is predicted in every folder")
    reference = np.array([grades[key] for key in keys])
    groups = [patients[case] for case, _ in keys]
    stacked = _stack(predicted, keys)   # (folders, vertebrae, 4)
    averaged = stacked.mean(axis=0)
    by_size = {}
    for size in range(1, len(predicted) + 1):
        scores = [classification_metrics(reference, stacked[list(subset)].mean(axis=0))["macro_f1"]
                  for subset in itertools.combinations(range(len(predicted)), size)]
        by_size[size] = {"mean_macro_f1": float(np.mean(scores)), "subsets": len(scores)}
        print(f"{size} averaged: macro-F1 {np.mean(scores):.3f} (mean of {len(scores)} subset(s))")
    everything = metrics_with_intervals(reference, averaged, groups, args.bootstrap)
    print(summary_line(f"all {len(predicted)} averaged", everything) + f" ({len(keys)} vertebrae)")
    result = {"machine": machine(), "folders": [str(folder) for folder in args.folders], "vertebrae": len(keys),
              "by_number_averaged": by_size, "all_averaged": everything}
    if baseline:
        against = _stack(baseline, keys).mean(axis=0)
        result["against"] = [str(folder) for folder in args.against]
        result["against_averaged"] = metrics_with_intervals(reference, against, groups, args.bootstrap)
        print(summary_line(f"against: all {len(baseline)} averaged", result["against_averaged"]))
        result["paired_difference"] = paired_difference_intervals(reference, averaged, against, groups,
                                                                  args.bootstrap)
        print_differences(result["paired_difference"])   # new: the folders' average; old: --against's
    write_result(args.results, "averaged_predictions", result)


if __name__ == "__main__":
    main()

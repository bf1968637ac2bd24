"""Paired comparison of two sets of vfnet_predict outputs on the converted phantom's graded vertebrae.

bench_mask_robustness.py writes each fold's predictions to W/robustness/<condition>/fold_K/predictions/ and
overwrites them on the next run; copy that folder aside before changing the code, run again, then:

    python benchmarks/paired_predictions.py --workdir W NEW_FOLDER OLD_FOLDER

Every predictions.csv below each folder is read; vertebrae are paired by (case, vertebra): every graded vertebra
of a case either folder predicted counts, and one that a folder left out (its mask vanished) counts as grade 0
there, as in bench_mask_robustness.py. Differences (NEW - OLD) come with patient-level paired bootstrap 95 %
intervals, as in paired_comparison.py.
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mask_robustness import NOT_PREDICTED  # noqa: E402
from common import base_parser, machine, write_result  # noqa: E402

from vfnet.dataset.format import load_raw_dataset  # noqa: E402
from vfnet.evaluation.bootstrap import paired_difference_intervals  # noqa: E402
from vfnet.evaluation.tables import read_predictions  # noqa: E402


def read_probabilities(folder: Path, graded: set[tuple[str, int]]) -> dict[tuple[str, int], list[float]]:
    probabilities = {}
    for path in sorted(folder.rglob("predictions.csv")):
        table = read_predictions(path)
        probabilities.update({key: list(p) for key, p in zip(table.keys, table.probabilities) if key in graded})
    return probabilities


def graded_vertebrae(workdir: Path | None, dataset_id: int) -> tuple[dict[tuple[str, int], int], dict[str, str]]:
    """({(case, vertebra): grade}, {case: patient}) of the converted phantom in a bench_accuracy.py workdir."""
    if workdir is None:
        sys.exit("--workdir: the folder of a finished bench_accuracy.py run is required (for the grades).")
    dataset = load_raw_dataset(next((workdir / "vfnet_raw").glob(f"Dataset{dataset_id:03d}_*")))
    grades = {(case.case_id, int(label)): grade for case in dataset.cases for label, grade in case.grades.items()}
    return grades, {case.case_id: case.patient for case in dataset.cases}


def print_differences(differences: dict) -> None:
    """One line per metric: the paired difference (new - old) and its 95 % interval."""
    for metric, interval in differences.items():
        if interval is not None:
            print(f"{metric}: {interval['difference']:+.3f} [{interval['low']:+.3f}, {interval['high']:+.3f}] "
                  f"(new better in {100 * interval['fraction_a_better']:.0f} % of resamples)")


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("new", type=Path)
    parser.add_argument("old", type=Path)
    parser.add_argument("--dataset", type=int, default=504)
    parser.add_argument("--bootstrap", type=int, default=2000)
    args = parser.parse_args()
    grades, patients = graded_vertebrae(args.workdir, args.dataset)
    new, old = (read_probabilities(folder, set(grades)) for folder in (args.new, args.old))
    cases = {case for case, _ in set(new) | set(old)}
    keys = sorted(key for key in grades if key[0] in cases)
    if not set(new) & set(old):
        sys.exit(f"no graded vertebra is predicted in both {args.new} and {args.old}")
    # A graded vertebra of a predicted case that one side left out (its mask vanished) counts as normal there.
    for side in (new, old):
        side.update({key: NOT_PREDICTED for key in keys if key not in side})
    differences = paired_difference_intervals(np.array([grades[key] for key in keys]),
                                              np.array([new[key] for key in keys]),
                                              np.array([old[key] for key in keys]),
                                              [patients[case] for case, _ in keys], n=args.bootstrap)
    print_differences(differences)
    write_result(args.results, "paired_predictions", {"machine": machine(), "new": str(args.new),
                                                      "old": str(args.old), "vertebrae": len(keys),
                                                      "differences": differences})


if __name__ == "__main__":
    main()

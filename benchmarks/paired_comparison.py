"""Paired comparison of the accuracy benchmark's methods against vfnet's defaults.

    python benchmarks/paired_comparison.py --workdir WORKDIR_OF_bench_accuracy

Reads the out-of-fold predictions that `bench_accuracy.py --workdir DIR` left in DIR (the vfnet plan variants'
validation/predictions.csv; morphometry is recomputed from the same crops, it is deterministic) and reports, for
each method, metric(vfnet) - metric(method) with a patient-level *paired* bootstrap 95 % interval: both methods are
scored on the same resampled patients, so the interval says directly whether the data support a difference.
"""
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import morphometry_fold  # noqa: E402
from bench_accuracy import DATASET_ID, VARIANTS  # noqa: E402
from common import base_parser, machine, metrics_with_intervals, write_result  # noqa: E402

from vfnet.evaluation.bootstrap import paired_difference_intervals  # noqa: E402
from vfnet.paths import fold_folder, model_folder_name  # noqa: E402
from vfnet.planning.plans import load_plans  # noqa: E402

METRICS = ("macro_f1", "qwk", "binary_roc_auc", "binary_sensitivity", "binary_specificity", "f1_grade_1")


def variant_rows(results: Path, plans_name: str) -> dict[str, dict]:
    rows = {}
    model = results / model_folder_name("vfnetTrainer", plans_name)
    for csv_path in sorted(model.glob(f"{fold_folder('', '*').name}/validation/predictions.csv")):
        with open(csv_path, newline="") as handle:
            for row in csv.DictReader(handle):
                rows[f"{row['case']}_{row['vertebra']}"] = {
                    "patient": row["patient"], "reference": int(row["reference"]),
                    "probabilities": [float(row[f"p{g}"]) for g in range(4)]}
    return rows


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--bootstrap", type=int, default=2000)
    args = parser.parse_args()
    if args.workdir is None:
        sys.exit("--workdir: the folder bench_accuracy.py was run with")
    dataset = next((args.workdir / "vfnet_preprocessed").glob(f"Dataset{DATASET_ID:03d}_*"))
    results = args.workdir / "vfnet_results" / dataset.name
    methods = {method: variant_rows(results, plans_name) for method, (plans_name, _) in VARIANTS.items()}
    plans = load_plans(dataset / "vfnetPlans.json")
    methods["morphometry"] = {row["sample"]: row for fold in range(5)
                              for row in morphometry_fold(dataset, plans, fold)[0]}
    baseline = methods.pop("vfnet")
    samples = sorted(baseline)
    reference = np.array([baseline[s]["reference"] for s in samples])
    patients = [baseline[s]["patient"] for s in samples]
    vfnet_probabilities = np.array([baseline[s]["probabilities"] for s in samples])
    report = {"machine": machine(), "samples": len(samples), "bootstrap": args.bootstrap, "vs_vfnet": {},
              "pooled": {"vfnet": metrics_with_intervals(reference, vfnet_probabilities, patients, args.bootstrap)}}
    print(f"vfnet on {len(samples)} out-of-fold vertebrae: macro-F1 {report['pooled']['vfnet']['macro_f1']:.3f} "
          f"{report['pooled']['vfnet']['ci95']['macro_f1']}")
    for method, rows in methods.items():
        if not set(samples) <= set(rows):
            print(f"{method}: skipped ({len(rows)} predictions do not cover vfnet's {len(samples)})")
            continue
        # Folds still training (an interrupted run) leave vfnet with fewer samples: compare on vfnet's.
        other_probabilities = np.array([rows[s]["probabilities"] for s in samples])
        report["pooled"][method] = metrics_with_intervals(reference, other_probabilities, patients, args.bootstrap)
        other = np.array([rows[s]["probabilities"] for s in samples])
        intervals = paired_difference_intervals(reference, vfnet_probabilities, other, groups=patients,
                                                n=args.bootstrap, seed=0)
        report["vs_vfnet"][method] = {metric: intervals[metric] for metric in METRICS}
        print(f"vfnet - {method}:")
        for metric in METRICS:
            value = intervals[metric]
            if value:
                print(f"  {metric:20s} {value['difference']:+.3f} [{value['low']:+.3f}, {value['high']:+.3f}]  "
                      f"vfnet better in {value['fraction_a_better']:.0%} of resamples")
    write_result(args.results, "paired_comparison", report)


if __name__ == "__main__":
    main()

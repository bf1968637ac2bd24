"""Paired comparison of the accuracy benchmark's methods against vfnet's defaults.

    python benchmarks/paired_comparison.py --workdir WORKDIR_OF_bench_accuracy [--plans NAME ...] [--previous OLDER]
                                           [--baseline NAME]

Reads the out-of-fold predictions that `bench_accuracy.py --workdir DIR` left in DIR (the vfnet plan variants'
validation/predictions.csv; morphometry is recomputed from the same crops, it is deterministic) and reports, for
each method, metric(vfnet) - metric(method) with a patient-level *paired* bootstrap 95 % interval: both methods are
scored on the same resampled patients, so the interval says directly whether the data support a difference.
`--plans` adds further plan variants trained in the same workdir; `--previous` adds the default vfnet plan of an
earlier run (another workdir, e.g. the previous default); `--accuracy_json` adds the methods whose out-of-fold
predictions bench_accuracy.py kept only in its JSON (DenseNet121); `--baseline` makes a plan variant of the workdir the
side every other method is compared with (default: the workdir's vfnetPlans). Each comparison uses the vertebrae
both sides predicted (an interrupted run covers fewer folds).
"""
import csv
import json
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
        fold = csv_path.parent.parent.name
        with open(csv_path, newline="") as handle:
            for row in csv.DictReader(handle):
                rows[f"{row['case']}_{row['vertebra']}"] = {
                    "patient": row["patient"], "reference": int(row["reference"]), "fold": fold,
                    "probabilities": [float(row[f"p{g}"]) for g in range(4)]}
    return rows


def kept_rows(accuracy_json: Path) -> dict[str, dict[str, dict]]:
    """The out-of-fold rows that a bench_accuracy.py JSON kept, per method, keyed by sample like variant_rows."""
    methods = json.loads(accuracy_json.read_text())["methods"]
    return {method: {row["sample"]: row for row in entry["out_of_fold"]}
            for method, entry in methods.items() if entry.get("out_of_fold")}


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--plans", nargs="+", default=[], metavar="PLANS_NAME",
                        help="further plan variants trained in the same workdir (e.g. vfnetPlans_ce36) to compare")
    parser.add_argument("--previous", type=Path, default=None,
                        help="workdir of an earlier bench_accuracy.py run whose vfnet plan joins as 'previous default'")
    parser.add_argument("--accuracy_json", type=Path, default=None,
                        help="a bench_accuracy.py result whose methods' kept out-of-fold rows join (e.g. densenet)")
    parser.add_argument("--baseline", default=None, metavar="PLANS_NAME",
                        help="compare every method with this plan variant of the workdir instead of vfnetPlans")
    args = parser.parse_args()
    if args.workdir is None:
        sys.exit("--workdir: the folder bench_accuracy.py was run with")
    dataset = next((args.workdir / "vfnet_preprocessed").glob(f"Dataset{DATASET_ID:03d}_*"))
    results = args.workdir / "vfnet_results" / dataset.name
    methods = {method: variant_rows(results, plans_name) for method, (plans_name, _) in VARIANTS.items()}
    # Morphometry as measured in the baseline's crops: the rule on the same measurements its network saw.
    plans = load_plans(dataset / f"{args.baseline or 'vfnetPlans'}.json")
    methods["morphometry"] = {row["sample"]: row for fold in range(5)
                              for row in morphometry_fold(dataset, plans, fold)[0]}
    for plans_name in args.plans:
        methods[plans_name] = variant_rows(results, plans_name)
    if args.previous is not None:
        previous = args.previous / "vfnet_results" / dataset.name
        methods["previous default"] = variant_rows(previous, VARIANTS["vfnet"][0])
    if args.accuracy_json is not None:
        for method, rows in kept_rows(args.accuracy_json).items():   # only where the workdir gave no rows
            methods[method] = methods.get(method) or rows
    if args.baseline is not None:
        methods["vfnetPlans (workdir default)"] = methods.pop("vfnet")
        methods["vfnet"] = methods.pop(args.baseline, None) or variant_rows(results, args.baseline)
    baseline = methods.pop("vfnet")
    if not baseline:
        sys.exit(f"No out-of-fold predictions of the baseline plan {args.baseline or 'vfnetPlans'} in {results}")
    samples = sorted(baseline)
    reference = np.array([baseline[s]["reference"] for s in samples])
    patients = [baseline[s]["patient"] for s in samples]
    vfnet_probabilities = np.array([baseline[s]["probabilities"] for s in samples])
    report = {"machine": machine(), "baseline": args.baseline or VARIANTS["vfnet"][0], "samples": len(samples),
              "bootstrap": args.bootstrap, "vs_vfnet": {},
              "pooled": {"vfnet": metrics_with_intervals(reference, vfnet_probabilities, patients, args.bootstrap)}}
    print(f"vfnet ({report['baseline']}) on {len(samples)} out-of-fold vertebrae: "
          f"macro-F1 {report['pooled']['vfnet']['macro_f1']:.3f} {report['pooled']['vfnet']['ci95']['macro_f1']}")
    for method, rows in methods.items():
        # Either side may cover fewer folds (an interrupted run): compare on the vertebrae both predicted.
        shared = [index for index, sample in enumerate(samples) if sample in rows]
        if not shared:
            print(f"{method}: skipped (no vertebra in common with vfnet's {len(samples)})")
            continue
        shared_reference, shared_patients = reference[shared], [patients[i] for i in shared]
        mine = vfnet_probabilities[shared]
        other = np.array([rows[samples[i]]["probabilities"] for i in shared])
        report["pooled"][method] = metrics_with_intervals(shared_reference, other, shared_patients, args.bootstrap)
        intervals = paired_difference_intervals(shared_reference, mine, other, groups=shared_patients,
                                                n=args.bootstrap, seed=0)
        report["vs_vfnet"][method] = {"samples": len(shared), **{metric: intervals[metric] for metric in METRICS}}
        if len(shared) < len(samples):
            report["pooled"][f"vfnet on {method}'s vertebrae"] = metrics_with_intervals(
                shared_reference, mine, shared_patients, args.bootstrap)
        print(f"vfnet - {method} ({len(shared)} vertebrae):")
        for metric in METRICS:
            value = intervals[metric]
            if value:
                print(f"  {metric:20s} {value['difference']:+.3f} [{value['low']:+.3f}, {value['high']:+.3f}]  "
                      f"vfnet better in {value['fraction_a_better']:.0%} of resamples")
    write_result(args.results, "paired_comparison", report)


if __name__ == "__main__":
    main()

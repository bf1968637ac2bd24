"""Accuracy table on the converted phantom: the same crops and the same five folds for every method, pooled
out-of-fold predictions, patient-level bootstrap 95 % CIs (vfnet.evaluation), training wall time per fold.

Methods: vfnet (planned defaults), ceonly (training.supcon_weight=0), paper (detached classifier, lambda 1,
tau 0.07, bone + soft-tissue HU windows), densenet (MONAI DenseNet121 + CE, vfnet's sampler/augmentation),
morphometry (height-loss ratio -> grade, no learning).

    python benchmarks/bench_accuracy.py                       # the full table (about an hour on 2 cores)
    python benchmarks/bench_accuracy.py --epochs 3 --methods vfnet ceonly morphometry --folds 0 1 2 3 4
"""
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import morphometry_fold, train_densenet_fold
from common import DEFAULT_PHANTOM, base_parser, convert_phantom, machine, run_checked, vfnet_env, write_result

from vfnet.evaluation.bootstrap import bootstrap_intervals
from vfnet.evaluation.metrics import classification_metrics
from vfnet.paths import fold_folder, model_folder
from vfnet.planning.plans import load_plans

DATASET_ID = 504
ALL_METHODS = ["vfnet", "ceonly", "paper", "densenet", "morphometry"]
# Plan variants: (plans name, overrides). Variants whose preprocessing is unchanged keep the default plan's
# data_identifier so they train on the very same crop files (the planner names it after the plans name).
SHARED_CROPS = "data_identifier=\"vfnetPlans_3d\""
PAPER_WINDOWS = [{"name": "bone", "clip": [-500, 1300], "center": 400, "scale": 900},
                 {"name": "soft_tissue", "clip": [-160, 240], "center": 40, "scale": 200}]
VARIANTS = {
    "vfnet": ("vfnetPlans", []),
    "ceonly": ("vfnetPlans_ceonly", [SHARED_CROPS, "training.supcon_weight=0"]),
    "paper": ("vfnetPlans_paper", ["training.detach_classifier=true", "training.supcon_weight=1",
                                   "training.supcon_temperature=0.07",
                                   f"preprocessing.ct_channels={json.dumps(PAPER_WINDOWS)}",
                                   "preprocessing.num_input_channels=3", "network.in_channels=3"]),
}


def prepare(args, env: dict[str, str]) -> Path:
    raw = convert_phantom(args.phantom, args.workdir, DATASET_ID)
    print("vfnet_plan_and_preprocess (default plan) ...", flush=True)
    run_checked(["vfnet_plan_and_preprocess", "-d", str(DATASET_ID), "-np", "2"], env)
    for method in args.methods:
        if method in VARIANTS and VARIANTS[method][0] != "vfnetPlans":
            plans_name, overrides = VARIANTS[method]
            print(f"plan variant {plans_name}: {' '.join(overrides)}", flush=True)
            run_checked(["vfnet_plan_experiment", "-d", str(DATASET_ID), "-pl", plans_name, "--override",
                         *overrides], env)
            run_checked(["vfnet_preprocess", "-d", str(DATASET_ID), "-pl", plans_name, "-np", "2"], env)
    return Path(env["vfnet_preprocessed"]) / raw.name


def train_vfnet_method(method: str, fold: int, args, env: dict[str, str]) -> tuple[list[dict], float]:
    plans_name = VARIANTS[method][0]
    command = ["vfnet_train", "-d", str(DATASET_ID), "-f", str(fold), "-p", plans_name, "-tr", "vfnetTrainer",
               "--deterministic"]
    if args.epochs:
        command += ["--epochs", str(args.epochs)]
    if args.iterations:
        command += ["--iterations", str(args.iterations)]
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    dataset_name = next(Path(env["vfnet_preprocessed"]).glob(f"Dataset{DATASET_ID:03d}_*")).name
    model = model_folder(dataset_name, "vfnetTrainer", plans_name, Path(env["vfnet_results"]))
    csv_path = fold_folder(model, fold) / "validation" / "predictions.csv"
    with open(csv_path, newline="") as handle:
        rows = [{"sample": f"{r['case']}_{r['vertebra']}", "patient": r["patient"], "reference": int(r["reference"]),
                 "probabilities": [float(r[f"p{g}"]) for g in range(4)]} for r in csv.DictReader(handle)]
    return rows, seconds


def pooled_metrics(rows: list[dict], bootstrap: int) -> dict:
    reference = np.array([r["reference"] for r in rows])
    probabilities = np.array([r["probabilities"] for r in rows])
    metrics = classification_metrics(reference, probabilities)
    metrics["ci95"] = bootstrap_intervals(reference, probabilities, groups=[r["patient"] for r in rows],
                                          n=bootstrap, seed=0)
    return metrics


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--phantom", type=Path, default=DEFAULT_PHANTOM)
    parser.add_argument("--methods", nargs="+", default=ALL_METHODS, choices=ALL_METHODS)
    parser.add_argument("--folds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=None, help="epochs for every trained method (default: plan)")
    parser.add_argument("--iterations", type=int, default=None, help="iterations per epoch (default: plan)")
    parser.add_argument("--densenet_epochs", type=int, default=None,
                        help="epochs for DenseNet121 (default: a quarter of the others': a DenseNet121 step costs "
                             "~4x vfnet's on this CPU, so a quarter keeps the compute budget comparable)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    keep = args.workdir is not None
    args.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="vfnet_bench_accuracy_"))
    env = vfnet_env(args.workdir)
    dataset_folder = prepare(args, env)
    plans = load_plans(dataset_folder / "vfnetPlans.json")
    epochs = args.epochs or int(plans["training"]["epochs"])
    iterations = args.iterations or int(plans["training"]["iterations_per_epoch"])
    densenet_epochs = args.densenet_epochs or max(1, round(epochs / 4))
    result = {"densenet_epochs": densenet_epochs, "machine": machine(), "folds": args.folds, "epochs": epochs,
              "iterations_per_epoch": iterations, "planned_epochs": plans["training"]["epochs"],
              "planned_iterations_per_epoch": plans["training"]["iterations_per_epoch"],
              "reduced": epochs < int(plans["training"]["epochs"]) or len(args.folds) < 5
              or iterations < int(plans["training"]["iterations_per_epoch"]),
              "variants": {m: VARIANTS[m] for m in args.methods if m in VARIANTS}, "methods": {}}
    for method in args.methods:
        rows, seconds_per_fold, notes = [], [], {}
        for fold in args.folds:
            print(f"[{method}] fold {fold} ...", flush=True)
            if method in VARIANTS:
                fold_rows, seconds = train_vfnet_method(method, fold, args, env)
            elif method == "densenet":
                fold_rows, seconds = train_densenet_fold(dataset_folder, plans, fold, densenet_epochs, iterations)
            else:
                started = time.perf_counter()
                fold_rows, unmeasured = morphometry_fold(dataset_folder, plans, fold)
                seconds = time.perf_counter() - started
                notes["unmeasured_counted_as_grade_0"] = notes.get("unmeasured_counted_as_grade_0", 0) + unmeasured
            rows += fold_rows
            seconds_per_fold.append(round(seconds, 1))
            print(f"    {len(fold_rows)} out-of-fold predictions, {seconds:.1f} s", flush=True)
        result["methods"][method] = {"metrics": pooled_metrics(rows, args.bootstrap),
                                     "seconds_per_fold": seconds_per_fold, **notes,
                                     "out_of_fold": [{key: row[key] for key in ("sample", "patient", "reference",
                                                                               "probabilities")} for row in rows]}
        summary = result["methods"][method]["metrics"]
        print(f"  {method}: macro-F1 {summary['macro_f1']:.3f} {summary['ci95']['macro_f1']}, "
              f"AUC {summary['binary_roc_auc']}", flush=True)
        write_result(args.results, "accuracy", result)  # partial results survive an interrupted run
    if not keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""How much of a grade comes from the image, and how much from the measured heights.

Reads a workdir whose folds are trained (`bench_accuracy.py --workdir W`, or the default commands with the vfnet_*
variables pointing into W) and grades every fold's validation crops (stored by preprocessing, so out of fold and
without vfnet_predict's mask check or calibration) with the morphometric inputs
- `measured`: as stored, measured on the exact masks;
- `blanked`: all unavailable, as training's morphometry dropout shows them: what the CNN grades from the CT and the
  mask channel alone;
- one row per degraded mask of the plan's `preprocessing.morphometry_mask_errors` (eroded_1, dilated_1, ...): the
  heights measured on that degraded mask, beside the exact image and mask channel: how far a wrong measurement
  carries the grade.
Pooled out-of-fold macro-F1 with patient-level bootstrap 95 % intervals, and the ROC-AUC of p_fracture.

    python benchmarks/bench_image_path.py --workdir W [--plans vfnetPlans] [--dataset 504]
"""
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import base_parser, machine, metrics_with_intervals, summary_line, write_result  # noqa: E402
from paired_predictions import graded_vertebrae  # noqa: E402

from vfnet.fileio import read_json  # noqa: E402
from vfnet.inference.ensemble import load_fold_models  # noqa: E402
from vfnet.paths import dataset_folder_name, model_folder  # noqa: E402
from vfnet.training.trainer import DEFAULT_TRAINER  # noqa: E402
from vfnet.training.data import load_fold  # noqa: E402
from vfnet.training.mask_error_input import MaskErrorMorphometry  # noqa: E402
from vfnet.training.validation import predict_samples  # noqa: E402


def morphometry_variants(samples, plans: dict) -> dict[str, np.ndarray]:
    """The morphometric inputs to grade with, by name (see the module's docstring)."""
    variants = {"measured": samples.morphometry, "blanked": np.zeros_like(samples.morphometry)}
    degraded = MaskErrorMorphometry.from_plan(samples, plans)
    names = plans["preprocessing"].get("morphometry_mask_errors", [])
    if degraded is not None:
        variants.update({name: degraded.variants[:, index].numpy() for index, name in enumerate(names)})
    return variants


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--dataset", type=int, default=504)
    parser.add_argument("--plans", default="vfnetPlans")
    parser.add_argument("--checkpoint", default="checkpoint_final")
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    if args.workdir is None:
        sys.exit("--workdir: the folder of a trained benchmark run is required.")
    torch.set_num_threads(2)
    preprocessed = args.workdir / "vfnet_preprocessed"
    preprocessed = preprocessed / dataset_folder_name(preprocessed, args.dataset)
    models = model_folder(preprocessed.name, DEFAULT_TRAINER, args.plans, base=args.workdir / "vfnet_results")
    plans = read_json(models / "plans.json", "plans.json")
    if not plans["network"].get("morphometric_features"):
        sys.exit(f"{models}: the plan has no morphometric branch, so there is nothing to blank.")
    _, patient_of = graded_vertebrae(args.workdir, args.dataset)
    grades, patients, probabilities = [], [], {}
    for fold in args.folds:
        _, validation = load_fold(preprocessed, plans, fold)
        model = load_fold_models(models, [fold], args.checkpoint, plans)[0]
        grades += validation.grades.tolist()
        patients += [patient_of[p["case"]] for p in validation.properties]
        for name, inputs in morphometry_variants(validation, plans).items():
            _, fold_probabilities, _ = predict_samples(model, validation.arrays, 64, torch.device("cpu"), inputs)
            probabilities.setdefault(name, []).append(fold_probabilities)
    results = {}
    for name, parts in probabilities.items():
        pooled = np.concatenate(parts)
        metrics = metrics_with_intervals(grades, pooled, patients)
        metrics["fracture_roc_auc"] = float(roc_auc_score(np.asarray(grades) > 0, 1.0 - pooled[:, 0]))
        results[name] = metrics
        print(summary_line(f"{name:>10}", metrics) + f", fracture ROC-AUC {metrics['fracture_roc_auc']:.3f}")
    write_result(args.results, f"image_path_{args.plans}", {"machine": machine(), "plans": args.plans,
                                                            "folds": args.folds, "metrics": results})


if __name__ == "__main__":
    main()

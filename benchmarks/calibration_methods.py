"""Held-out calibration of p_fracture: which recalibration would lower the ECE on vertebrae it was not fitted on.

    python benchmarks/calibration_methods.py --workdir WORKDIR_OF_bench_accuracy [--plans NAME ...]

For each plan variant's pooled out-of-fold predictions (validation/predictions.csv of five folds), every fold is
recalibrated with a map fitted on the other four folds, then the pooled result is scored: ECE of p_fracture (10 bins,
vfnet.selection.calibration, with a patient-level bootstrap interval), the Brier score, and the macro-F1 of the
grades after the map (p0 = 1 - calibrated p_fracture, p1-p3 scaled to fill the rest, so the argmax can move). Maps:
- `temperature4`: the four-grade temperature vfnet_find_best_configuration fits (NLL of the four grades);
- `platt`: logistic regression of fractured on logit(p_fracture) (slope and intercept);
- `binary_temperature`: the same without intercept (one slope);
- `isotonic`: scikit-learn's isotonic regression of fractured on p_fracture.
"""
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import base_parser, machine, write_result  # noqa: E402
from paired_comparison import DATASET_ID, variant_rows  # noqa: E402

from vfnet.evaluation.metrics import classification_metrics  # noqa: E402
from vfnet.inference.decisions import calibrate, remap_fracture, with_p_fracture  # noqa: E402
from vfnet.selection.calibration import expected_calibration_error, fit_isotonic, fit_temperature  # noqa: E402


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))[:, None]


def _fit_and_apply(method: str, reference: np.ndarray, probabilities: np.ndarray, held: np.ndarray) -> np.ndarray:
    """Calibrated p_fracture of the `held` vertebrae, the map fitted on all others."""
    train = ~held
    fractured = (reference[train] >= 1).astype(int)
    p_train, p_held = 1 - probabilities[train, 0], 1 - probabilities[held, 0]
    if method == "temperature4":
        return 1 - calibrate(probabilities[held], fit_temperature(reference[train], probabilities[train]))[:, 0]
    if method in ("platt", "binary_temperature"):
        model = LogisticRegression(C=1e6, fit_intercept=method == "platt").fit(_logit(p_train), fractured)
        return model.predict_proba(_logit(p_held))[:, 1]
    # The map vfnet_find_best_configuration fits and vfnet_predict applies.
    return 1 - remap_fracture(probabilities[held], *fit_isotonic(reference[train], probabilities[train]))[:, 0]


def _ece_interval(reference: np.ndarray, p_fracture: np.ndarray, patients: np.ndarray, n: int) -> list[float]:
    rng = np.random.default_rng(0)
    unique = np.unique(patients)
    members = {patient: np.flatnonzero(patients == patient) for patient in unique}
    values = []
    for _ in range(n):
        index = np.concatenate([members[p] for p in rng.choice(unique, unique.size)])
        values.append(expected_calibration_error(reference[index], p_fracture[index]))
    return [round(float(v), 4) for v in np.percentile(values, [2.5, 97.5])]


def score(reference: np.ndarray, probabilities: np.ndarray, patients: np.ndarray, folds: np.ndarray,
          bootstrap: int) -> dict[str, dict[str, float]]:
    fractured = (reference >= 1).astype(float)
    rows = {}
    for method in ("none", "temperature4", "platt", "binary_temperature", "isotonic"):
        p_fracture = 1 - probabilities[:, 0]
        if method != "none":
            p_fracture = p_fracture.copy()
            for fold in np.unique(folds):
                p_fracture[folds == fold] = _fit_and_apply(method, reference, probabilities, folds == fold)
        grades = with_p_fracture(probabilities, p_fracture)
        rows[method] = {"ece_p_fracture": round(expected_calibration_error(reference, p_fracture), 4),
                        "ece_ci95": _ece_interval(reference, p_fracture, patients, bootstrap),
                        "brier": round(float(np.mean((p_fracture - fractured) ** 2)), 4),
                        "macro_f1_regraded": round(classification_metrics(reference, grades)["macro_f1"], 4)}
    return rows


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--plans", nargs="+", default=["vfnetPlans"], metavar="PLANS_NAME")
    parser.add_argument("--bootstrap", type=int, default=500)
    args = parser.parse_args()
    if args.workdir is None:
        sys.exit("--workdir: the folder bench_accuracy.py was run with")
    dataset = next((args.workdir / "vfnet_results").glob(f"Dataset{DATASET_ID:03d}_*"))
    report = {"machine": machine(), "bootstrap": args.bootstrap, "plans": {}}
    for plans_name in args.plans:
        rows = variant_rows(dataset, plans_name)
        if not rows:
            sys.exit(f"No out-of-fold predictions of {plans_name} in {dataset}")
        samples = sorted(rows)
        reference = np.array([rows[s]["reference"] for s in samples])
        probabilities = np.array([rows[s]["probabilities"] for s in samples])
        patients = np.array([rows[s]["patient"] for s in samples])
        folds = np.array([rows[s]["fold"] for s in samples])
        report["plans"][plans_name] = score(reference, probabilities, patients, folds, args.bootstrap)
        for method, values in report["plans"][plans_name].items():
            print(f"{plans_name:24s} {method:20s} ECE {values['ece_p_fracture']:.3f} {values['ece_ci95']}  "
                  f"Brier {values['brier']:.4f}  macro-F1 regraded {values['macro_f1_regraded']:.3f}")
    write_result(args.results, "calibration_methods", report)


if __name__ == "__main__":
    main()

"""Trained configurations without training, for the selection tests.

A cohort of patients (one CT each, five graded vertebrae, fold = patient index mod 5) and, per configuration,
out-of-fold probabilities made from noisy logits, written by the trainer's own writer
(`write_validation_outputs`), beside a plans.json and tiny untrained checkpoints, exactly where vfnet_train puts them.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from test_inference_ensemble import save_tiny_model
from test_inference_predict import tiny_plans
from vfnet import paths
from vfnet.evaluation.metrics import classification_metrics
from vfnet.labels import level_name
from vfnet.training.data import SampleSet
from vfnet.training.validation import write_validation_outputs

DATASET = "Dataset950_Select"
LABELS = (18, 19, 20, 21, 22)   # T11-L3
FOLDS = range(5)


@dataclass
class Cohort:
    cases: np.ndarray      # (N,) case id of each vertebra
    vertebrae: np.ndarray  # (N,) VerSe label
    grades: np.ndarray     # (N,) reference grade
    folds: np.ndarray      # (N,) validation fold

    def splits(self) -> list[dict[str, list[str]]]:
        all_cases = sorted(set(self.cases.tolist()))
        return [{"train": [c for c in all_cases if c not in val], "val": val} for val in
                (sorted(set(self.cases[self.folds == fold].tolist())) for fold in FOLDS)]


GRADE_PRIOR = np.array([0.55, 0.15, 0.15, 0.15])


def make_cohort(num_patients: int = 100, seed: int = 0) -> Cohort:
    rng = np.random.default_rng(seed)
    cases = np.repeat([f"case{i:03d}" for i in range(num_patients)], len(LABELS))
    grades = rng.choice(4, size=cases.size, p=GRADE_PRIOR)
    folds = np.repeat(np.arange(num_patients) % len(FOLDS), len(LABELS))
    return Cohort(cases, np.tile(LABELS, num_patients), grades, folds)


def model_probabilities(cohort: Cohort, seed: int, signal: float = 2.0, noise: float = 1.0,
                        sharpness: float = 1.0) -> np.ndarray:
    """A model that sees x = signal * onehot(grade) + noise * N(0, I) and outputs the exact posterior of the grade
    (calibrated by construction) with its logits multiplied by `sharpness` (> 1: over-confident)."""
    rng = np.random.default_rng(seed)
    x = signal * np.eye(4)[cohort.grades] + noise * rng.standard_normal((cohort.grades.size, 4))
    logits = sharpness * (np.log(GRADE_PRIOR) + signal * x / noise ** 2)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probabilities / probabilities.sum(axis=1, keepdims=True)


def write_configuration(results: Path, cohort: Cohort, probabilities: np.ndarray, trainer: str = "vfnetTrainer",
                        plans_name: str = "vfnetPlans", dataset: str = DATASET, folds=FOLDS,
                        plans_changes: dict | None = None, fold_of: np.ndarray | None = None,
                        checkpoint_seed: int = 0) -> Path:
    """A model folder as vfnet_train leaves it: plans.json, fold_N/checkpoint_final.pth, fold_N/validation/."""
    folder = paths.model_folder(dataset, trainer, plans_name, results)
    plans = {**tiny_plans(), "dataset_name": dataset, "plans_name": plans_name, **(plans_changes or {})}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plans.json").write_text(json.dumps(plans))
    save_tiny_model(folder, list(folds), seed=checkpoint_seed, preprocessing=plans["preprocessing"],
                    network=plans["network"])
    fold_of = cohort.folds if fold_of is None else fold_of
    for fold in folds:
        rows = np.flatnonzero(fold_of == fold)
        properties = [{"case": cohort.cases[i], "patient": cohort.cases[i], "vertebra": int(cohort.vertebrae[i]),
                       "level": level_name(int(cohort.vertebrae[i]))} for i in rows]
        samples = SampleSet([f"{p['case']}_{p['vertebra']}" for p in properties], properties,
                            np.zeros((rows.size, 1)), cohort.grades[rows])
        result = {"metrics": classification_metrics(cohort.grades[rows], probabilities[rows]),
                  "probabilities": probabilities[rows], "embeddings": np.zeros((rows.size, 2))}
        write_validation_outputs(paths.fold_folder(folder, fold) / "validation", samples, result, "validation fold",
                                 "checkpoint_final")
    return folder


def write_splits(preprocessed: Path, cohort: Cohort, dataset: str = DATASET) -> Path:
    path = preprocessed / dataset / "splits_final.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cohort.splits()))
    return path

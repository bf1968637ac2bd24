"""Cross-validation summary: pool the folds' out-of-fold predictions into one metrics.json and report.html.

Reads, per fold, `fold_N/validation/predictions.csv` (required), `embeddings.npz`, `metrics.json` (for the key
"checkpoint": which checkpoint produced the predictions) and `fold_N/progress.json` (training curves: the
checkpoint's per-epoch log, lists "train_loss", "val_loss", "val_macro_f1", optional "epoch"), all optional.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import silhouette_score

from vfnet.errors import VfnetError
from vfnet.evaluation import plots
from vfnet.evaluation.degenerate import single_grade_reason
from vfnet.evaluation.metrics import classification_metrics
from vfnet.evaluation.report import FigureEntry, per_fold_table, summarise, write_classification_figures, write_report
from vfnet.evaluation.tables import read_predictions
from vfnet.fileio import read_json, write_json
from vfnet.model.card import add_cross_validation
from vfnet.paths import (dataset_folder_name, fold_folder, model_folder_name, model_folders_for_plans,
                         preprocessed_folder, results_folder, validation_predictions_file)

NUM_FOLDS = 5
SEPARABILITY = ("silhouette score of the embeddings grouped by reference grade, cosine distance "
                "(-1..1; higher = grades better separated), per fold because each fold has its own embedding space")


@dataclass
class FoldResult:
    fold: str
    keys: list[tuple[str, int]]
    reference: np.ndarray
    probabilities: np.ndarray
    patients: list[str]
    checkpoint: str | None = None
    embedding: np.ndarray | None = None
    embedding_reference: np.ndarray | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    degenerate: str | None = None   # why the fold's final model is degenerate (one grade for everything)


def find_model_folder(dataset: str | int, trainer: str | None, plans: str) -> Path:
    """`$vfnet_results/DatasetXXX/<trainer>__<plans>`; without -tr, the only trainer trained with these plans."""
    base = results_folder()
    dataset_folder = base / dataset_folder_name(base, dataset)
    if trainer is not None:
        folder = dataset_folder / model_folder_name(trainer, plans)
        if not folder.is_dir():
            raise VfnetError(f"No trained model folder {folder}: check -tr and -p.")
        return folder
    candidates = model_folders_for_plans(dataset_folder, plans)
    if len(candidates) != 1:
        found = ", ".join(path.name for path in candidates) or "none"
        raise VfnetError(f"Cannot choose the trainer in {dataset_folder}: folders for plans {plans}: {found}. "
                         f"Name it with -tr.")
    return candidates[0]


def _load_fold(folder: Path, fold: str) -> FoldResult:
    validation = fold_folder(folder, fold) / "validation"
    csv_path = validation / "predictions.csv"
    table = read_predictions(csv_path)
    missing_reference = [key for key, grade in zip(table.keys, table.reference) if grade is None]
    if missing_reference:
        case, vertebra = missing_reference[0]
        raise VfnetError(f"{csv_path}: case {case} vertebra {vertebra} has no reference grade; validation "
                         f"predictions need the 'reference' column.")
    result = FoldResult(fold=fold, keys=table.keys, reference=np.array(table.reference, dtype=np.int64),
                        probabilities=table.probabilities,
                        patients=[patient or case for patient, (case, _) in zip(table.patients, table.keys)])
    if (validation / "metrics.json").is_file():
        recorded = read_json(validation / "metrics.json", "validation metrics")
        result.checkpoint = recorded.get("checkpoint") if isinstance(recorded, dict) else None
    result.degenerate = single_grade_reason(result.probabilities, result.reference)
    if (validation / "embeddings.npz").is_file():
        result.embedding, result.embedding_reference = _load_embeddings(validation / "embeddings.npz")
    progress_path = fold_folder(folder, fold) / "progress.json"
    if progress_path.is_file():
        progress = read_json(progress_path, "training progress")
        if not isinstance(progress, dict) or not isinstance(progress.get("train_loss"), list):
            raise VfnetError(f"{progress_path} must be an object with a 'train_loss' "
                             f"list (one value per epoch).")
        result.progress = progress
    return result


def _load_embeddings(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            embedding = np.asarray(data["embedding"], dtype=np.float64)
            reference = np.asarray(data["reference"]).astype(np.int64)
    except (OSError, ValueError, KeyError) as error:
        raise VfnetError(f"{path} is not an embeddings file with 'embedding' and 'reference' arrays: {error}.") \
            from None
    if embedding.ndim != 2 or reference.shape != (embedding.shape[0],):
        raise VfnetError(f"{path}: 'embedding' must be (N, D) with one 'reference' grade per row, got "
                         f"{embedding.shape} and {reference.shape}.")
    return embedding, reference


def _silhouette(embedding: np.ndarray, reference: np.ndarray) -> float | None:
    grades = np.unique(reference).size
    if grades < 2 or grades >= reference.size:
        return None  # silhouette is undefined for one cluster or one sample per cluster
    return float(silhouette_score(embedding, reference, metric="cosine"))


def load_folds(folder: Path, allow_missing_folds: bool) -> tuple[list[FoldResult], list[int]]:
    present, missing = [], []
    for fold in range(NUM_FOLDS):
        if validation_predictions_file(folder, fold).is_file():
            present.append(_load_fold(folder, str(fold)))
        else:
            missing.append(fold)
    if missing and (not allow_missing_folds or not present):
        expected = validation_predictions_file(folder, missing[0])
        hint = "" if present else " No fold has predictions."
        raise VfnetError(f"Fold {missing[0]} is missing: {expected} does not exist (train and validate it, or pass "
                         f"--allow_missing_folds to use the others).{hint}")
    owner: dict[tuple[str, int], str] = {}
    for result in present:
        for key in result.keys:
            if key in owner:
                raise VfnetError(f"Case {key[0]} vertebra {key[1]} is in the validation predictions of folds "
                                 f"{owner[key]} and {result.fold} in {folder}: the folds overlap.")
            owner[key] = result.fold
    return present, missing


def summarise_cross_validation(folder: Path, output: Path, allow_missing_folds: bool = False,
                               n_bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Write output/metrics.json, output/report.html and its PNGs; return the metrics.json content."""
    folds, missing = load_folds(folder, allow_missing_folds)
    reference = np.concatenate([fold.reference for fold in folds])
    probabilities = np.concatenate([fold.probabilities for fold in folds])
    patients = np.array([patient for fold in folds for patient in fold.patients])
    summary = summarise(reference, probabilities, groups=patients, n_bootstrap=n_bootstrap, seed=seed)
    per_fold = {fold.fold: classification_metrics(fold.reference, fold.probabilities) for fold in folds}
    with_embeddings = [fold for fold in folds if fold.embedding is not None]
    separability = {fold.fold: _silhouette(fold.embedding, fold.embedding_reference) for fold in with_embeddings}
    defined = [value for value in separability.values() if value is not None]
    checkpoints = {fold.fold: fold.checkpoint for fold in folds}
    degenerate = {fold.fold: fold.degenerate for fold in folds if fold.degenerate}
    content = {
        "dataset": folder.parent.name, "model": folder.name, "model_folder": str(folder), "folds": [int(fold.fold) for fold in folds], "missing_folds": missing,
        "pooled": "out-of-fold predictions of every fold, concatenated", **summary,
        "checkpoints": checkpoints, "per_fold": per_fold, "degenerate_folds": degenerate,
        "embedding_separability": {"measure": SEPARABILITY, "per_fold": separability,
                                   "mean": float(np.mean(defined)) if defined else None},
    }
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "metrics.json", content)
    add_cross_validation(folder, content, output, _preprocessed_dataset_folder(folder.parent.name))

    figures = write_classification_figures(output, reference, probabilities, summary["metrics"])
    embedding_png = plots.plot_embeddings(
        [(fold.fold, fold.embedding, fold.embedding_reference) for fold in with_embeddings],
        output / "embeddings_pca.png")
    curves_png = plots.plot_training_curves({fold.fold: fold.progress for fold in folds if fold.progress},
                                            output / "training_curves.png")
    figures += [FigureEntry("PCA of the contrastive embeddings by reference grade, per fold",
                            embedding_png and embedding_png.name, "no fold wrote validation/embeddings.npz"),
                FigureEntry("Training curves per fold", curves_png and curves_png.name,
                            "no fold wrote progress.json")]
    separability_html = ("<h2>Embedding separability</h2><p>" + SEPARABILITY + ": " +
                         ", ".join(f"fold {fold} {'n/a' if value is None else f'{value:.3f}'}"
                                   for fold, value in separability.items()) + "</p>") if separability else ""
    write_report(output, f"Cross-validation summary: {folder.parent.name} / {folder.name}", summary, figures,
                 _notes(folds, missing, checkpoints), [per_fold_table(per_fold), separability_html],
                 warnings=[f"Fold {fold} is degenerate: {reason}. Retrain it before using the ensemble."
                           for fold, reason in degenerate.items()])
    return content


def _preprocessed_dataset_folder(dataset_name: str) -> Path | None:
    """Where the model's fingerprint may be, for a card written after training (models trained before cards)."""
    try:
        return preprocessed_folder() / dataset_name
    except VfnetError:
        return None


def _notes(folds: list[FoldResult], missing: list[int], checkpoints: dict[str, str | None]) -> list[str]:
    used = sorted({name for name in checkpoints.values() if name})
    produced_by = (f"The predictions were produced by {', '.join(used)}." if used else
                   "The trainer did not record which checkpoint produced the predictions.")
    notes = [f"Pooled out-of-fold predictions of folds {', '.join(fold.fold for fold in folds)}; "
             "confidence intervals resample patients, because vertebrae of one patient are correlated.",
             produced_by + " Metrics of checkpoint_best are optimistic: that checkpoint was selected on the same "
             "validation fold it is evaluated on. checkpoint_final involves no such selection."]
    if missing:
        notes.append(f"Folds {', '.join(map(str, missing))} are missing: this is not a full cross-validation.")
    return notes

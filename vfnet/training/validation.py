"""The validation pass (whole validation fold, no augmentation) and the per-fold validation outputs."""
import csv
import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vfnet.evaluation.metrics import classification_metrics
from vfnet.fileio import atomic_path, write_json, write_text
from vfnet.labels import level_name
from vfnet.training.data import SampleSet

PREDICTION_COLUMNS = ["case", "patient", "vertebra", "level", "reference", "grade", "p0", "p1", "p2", "p3",
                      "p_fracture"]


@torch.no_grad()
def predict_samples(model: torch.nn.Module, arrays: np.ndarray, batch_size: int, device: torch.device,
                    morphometry: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits, softmax probabilities and embeddings of every sample, in order."""
    was_training = model.training
    model.eval()
    logits, embeddings = [], []
    try:
        for start in range(0, len(arrays), batch_size):
            batch = torch.from_numpy(arrays[start:start + batch_size].astype(np.float32)).to(device)
            features = None if morphometry is None else torch.from_numpy(morphometry[start:start + batch_size]).to(device)
            output = model(batch) if features is None else model(batch, features)
            logits.append(output["logits"].float().cpu())
            embeddings.append(output["embedding"].float().cpu())
    finally:
        model.train(was_training)
    logits_all = torch.cat(logits)
    return logits_all.numpy(), F.softmax(logits_all, dim=1).numpy(), torch.cat(embeddings).numpy()


def weighted_ce(logits: np.ndarray, grades: np.ndarray, class_weights: Sequence[float]) -> float:
    """The training CE (same class weights) on the validation set, so both curves are comparable."""
    weights = torch.as_tensor(list(class_weights), dtype=torch.float32)
    total = weights[torch.from_numpy(grades)].sum().clamp_min(1e-12)
    loss = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(grades), weight=weights, reduction="sum")
    return float(loss / total)


def evaluate(model: torch.nn.Module, samples: SampleSet, batch_size: int, device: torch.device,
             class_weights: Sequence[float]) -> dict[str, Any]:
    logits, probabilities, embeddings = predict_samples(model, samples.arrays, batch_size, device,
                                                         samples.morphometry)
    metrics = classification_metrics(samples.grades, probabilities)
    metrics["loss"] = weighted_ce(logits, samples.grades, class_weights)
    return {"metrics": metrics, "probabilities": probabilities, "embeddings": embeddings}


def write_validation_outputs(folder: Path, samples: SampleSet, result: dict[str, Any], evaluated_on: str,
                             checkpoint: str) -> None:
    """predictions.csv, metrics.json and embeddings.npz of one fold (see documentation/architecture.md)."""
    probabilities = result["probabilities"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PREDICTION_COLUMNS)
    for properties, grade, row in zip(samples.properties, samples.grades, probabilities):
        vertebra = int(properties["vertebra"])
        writer.writerow([properties["case"], properties.get("patient", ""), vertebra,
                         properties.get("level", level_name(vertebra)), int(grade), int(row.argmax()),
                         *[f"{p:.6f}" for p in row], f"{1.0 - row[0]:.6f}"])
    write_text(folder / "predictions.csv", buffer.getvalue())
    write_json(folder / "metrics.json", {**result["metrics"], "evaluated_on": evaluated_on, "checkpoint": checkpoint})
    with atomic_path(folder / "embeddings.npz", suffix=".npz") as temporary:
        np.savez(temporary, sample=np.array(samples.ids, dtype=str), reference=samples.grades,
                 embedding=result["embeddings"].astype(np.float32))

"""The two non-vfnet rows of the accuracy table, on vfnet's own crops and folds:
MONAI DenseNet121 (3D) trained with class-weighted cross-entropy using vfnet's data loading, balanced sampler and
augmentation (only the network and the loss differ), and morphometry (height-loss ratio -> Genant grade)."""
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vfnet.training.augmentation import BatchAugmenter
from vfnet.training.data import load_fold
from vfnet.training.sampler import BalancedBatchSampler
from vfnet.training.schedule import WarmupDecaySchedule
from vfnet.training.validation import predict_samples


class DenseNetClassifier(torch.nn.Module):
    """DenseNet121 with vfnet's output dict, so vfnet's validation helper can run it."""

    def __init__(self, in_channels: int):
        super().__init__()
        from monai.networks.nets import DenseNet121  # benchmark-only dependency
        self.net = DenseNet121(spatial_dims=3, in_channels=in_channels, out_channels=4)

    def forward(self, x: torch.Tensor, detach_classifier: bool = False) -> dict[str, torch.Tensor]:
        logits = self.net(x)
        return {"logits": logits, "features": logits, "embedding": torch.nn.functional.normalize(logits, dim=1)}


def train_densenet_fold(dataset_folder: Path, plans: dict[str, Any], fold: int, epochs: int, iterations: int,
                        seed: int = 0) -> tuple[list[dict[str, Any]], float]:
    """Train one fold, return out-of-fold rows (reference, probabilities, patient) and the training seconds."""
    torch.manual_seed(seed)
    training = plans["training"]
    train, val = load_fold(dataset_folder, plans, fold)
    model = DenseNetClassifier(int(plans["preprocessing"]["num_input_channels"]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(training["learning_rate"]),
                                  weight_decay=float(training.get("weight_decay", 0.0)))
    schedule = WarmupDecaySchedule(optimizer, float(training["learning_rate"]), epochs * iterations,
                                   int(training.get("warmup_epochs", 0)) * iterations,
                                   str(training.get("lr_schedule", "cosine")))
    sampler = BalancedBatchSampler(train.grades, int(training["samples_per_grade"]), iterations, seed)
    augmenter = BatchAugmenter(training.get("augmentation", {}), plans["preprocessing"]["target_spacing"])
    loss_function = torch.nn.CrossEntropyLoss(weight=torch.tensor(training["ce_class_weights"], dtype=torch.float32))
    started = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        for indices in sampler.epoch_batches(epoch):
            images = augmenter(torch.from_numpy(train.arrays[indices].astype(np.float32)))
            loss = loss_function(model(images)["logits"], torch.from_numpy(train.grades[indices]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), float(training.get("grad_clip", 12.0)))
            optimizer.step()
            schedule.step()
        print(f"    densenet fold {fold} epoch {epoch + 1}/{epochs}: loss {float(loss):.3f}", flush=True)
    seconds = time.perf_counter() - started
    _, probabilities, _ = predict_samples(model, val.arrays, int(training["batch_size"]), torch.device("cpu"))
    rows = [{"sample": sample, "patient": props["patient"], "reference": int(grade), "probabilities": list(p)}
            for sample, props, grade, p in zip(val.ids, val.properties, val.grades, probabilities.tolist())]
    return rows, seconds


def morphometry_fold(dataset_folder: Path, plans: dict[str, Any], fold: int) -> tuple[list[dict[str, Any]], int]:
    """Morphometric grade of every validation crop (one-hot 'probabilities'); unmeasurable crops count as grade 0."""
    _, val = load_fold(dataset_folder, plans, fold)
    rows, unmeasured = [], 0
    for sample, props, grade in zip(val.ids, val.properties, val.grades):
        heights = props.get("morphometry") or {}   # measured at preprocessing (vfnet.morphometry)
        predicted = heights.get("morphometric_grade")
        if predicted is None:
            unmeasured += 1
            predicted = 0
        one_hot = [0.0] * 4
        one_hot[int(predicted)] = 1.0
        rows.append({"sample": sample, "patient": props["patient"], "reference": int(grade),
                     "probabilities": one_hot, "height_loss": heights.get("height_loss")})
    return rows, unmeasured

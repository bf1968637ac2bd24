"""PNG figures of the evaluation reports (matplotlib's object API with the Agg canvas: no display, no pyplot state).

Each function returns the written path, or None when the figure is undefined for the data (e.g. a ROC curve
with only one class in the reference), so the report can say why it is missing.
"""
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from sklearn.calibration import calibration_curve
from sklearn.decomposition import PCA
from sklearn.metrics import roc_curve

from vfnet.fileio import atomic_path
from vfnet.labels import GENANT_GRADES

GRADE_COLOURS = ["#2b8cbe", "#fdae61", "#f46d43", "#a50026"]


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png", dpi=110)
    return path


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], path: Path) -> Path:
    matrix = np.asarray(matrix)
    figure = Figure(figsize=(4.6, 4))
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes)
    names = [f"{grade} {name}" for grade, name in GENANT_GRADES.items()]
    axes.set_xticks(range(len(names)), names, rotation=30)
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted grade")
    axes.set_ylabel("reference grade")
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(column, row, str(count), ha="center", va="center",
                  color="white" if count > matrix.max() / 2 else "black")
    return _save(figure, path)


def _binary(reference: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    positive = (np.asarray(reference) >= 1).astype(int)
    if positive.min() == positive.max():
        return None
    return positive, 1.0 - np.asarray(probabilities)[:, 0]


def plot_roc(reference: np.ndarray, probabilities: np.ndarray, path: Path, auc: float | None) -> Path | None:
    binary = _binary(reference, probabilities)
    if binary is None:
        return None
    false_positive_rate, true_positive_rate, _ = roc_curve(*binary)
    figure = Figure(figsize=(4.2, 4))
    axes = figure.add_subplot()
    axes.plot(false_positive_rate, true_positive_rate, label=f"AUC {auc:.3f}" if auc is not None else None)
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axes.set_xlabel("1 - specificity")
    axes.set_ylabel("sensitivity")
    axes.set_title("fracture (grade >= 1) vs normal")
    axes.legend(loc="lower right")
    return _save(figure, path)


def plot_calibration(reference: np.ndarray, probabilities: np.ndarray, path: Path, bins: int = 10) -> Path | None:
    binary = _binary(reference, probabilities)
    if binary is None:
        return None
    observed, predicted = calibration_curve(*binary, n_bins=bins, strategy="uniform")
    figure = Figure(figsize=(4.2, 5))
    top, bottom = figure.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    top.plot(predicted, observed, marker="o", label="vfnet")
    top.set_ylabel("observed fraction fractured")
    top.set_title("reliability of p(fracture)")
    top.legend(loc="upper left")
    bottom.hist(binary[1], bins=bins, range=(0, 1), color="grey")
    bottom.set_xlabel("predicted p(fracture) = 1 - p0")
    bottom.set_ylabel("count")
    return _save(figure, path)


def plot_embeddings(folds: Sequence[tuple[str, np.ndarray, np.ndarray]], path: Path) -> Path | None:
    """PCA of each fold's embeddings coloured by reference grade: one panel per fold, because every fold's
    model has its own embedding space and pooling them in one projection would mix unrelated coordinates."""
    usable = [(name, emb, ref) for name, emb, ref in folds if emb.shape[0] >= 2 and emb.shape[1] >= 2]
    if not usable:
        return None
    # At most three panels a row, so the figure stays within the report's width and is shown unscaled.
    columns = min(3, len(usable))
    rows = -(-len(usable) // columns)
    figure = Figure(figsize=(3.3 * columns, 3.3 * rows + 0.6))
    handles: dict[int, Any] = {}
    for index, (name, embedding, reference) in enumerate(usable):
        axes = figure.add_subplot(rows, columns, index + 1)
        projected = PCA(n_components=2).fit_transform(embedding)
        for grade, colour in enumerate(GRADE_COLOURS):
            chosen = reference == grade
            if chosen.any():
                handles[grade] = axes.scatter(*projected[chosen].T, s=12, color=colour,
                                              label=f"{grade} {GENANT_GRADES[grade]}")
        axes.set_title(f"fold {name}")
        axes.set_xticks([])
        axes.set_yticks([])
    figure.legend([handles[grade] for grade in sorted(handles)], [f"grade {grade} {GENANT_GRADES[grade]}"
                  for grade in sorted(handles)], loc="lower center", ncol=len(handles), fontsize="medium",
                  markerscale=2, frameon=False)
    figure.tight_layout(rect=(0, 0.6 / (3.3 * rows + 0.6), 1, 1))
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png", dpi=110)
    return path


def plot_training_curves(progress: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """Losses and validation macro-F1 per epoch for every fold that wrote progress.json."""
    if not progress:
        return None
    figure = Figure(figsize=(10, 4.2))
    loss_axes, f1_axes = figure.subplots(1, 2)
    for index, (fold, log) in enumerate(progress.items()):
        colour = f"C{index}"  # one colour per fold; solid = training, dashed = validation
        for axes, key, style in ((loss_axes, "train_loss", "-"), (loss_axes, "val_loss", "--"),
                                 (f1_axes, "val_macro_f1", "-")):
            points = _epoch_points(log, key)
            if points:
                axes.plot(*zip(*points), style, color=colour)
    loss_axes.set_xlabel("epoch")
    loss_axes.set_ylabel("loss")
    f1_axes.set_xlabel("epoch")
    f1_axes.set_ylabel("validation macro-F1")
    # One legend for colour (fold) and one for line style (training / validation) instead of 2 × folds entries.
    fold_handles = [Line2D([], [], color=f"C{index}", label=f"fold {fold}") for index, fold in enumerate(progress)]
    style_handles = [Line2D([], [], color="black", linestyle="-", label="training loss / validation macro-F1"),
                     Line2D([], [], color="black", linestyle="--", label="validation loss")]
    figure.legend(handles=fold_handles + style_handles, loc="lower center", ncol=len(fold_handles) + 2,
                  fontsize="medium", frameon=False)
    figure.tight_layout(rect=(0, 0.1, 1, 1))
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png", dpi=110)
    return path


def _epoch_points(log: dict[str, Any], key: str) -> list[tuple[float, float]]:
    """(epoch, value) pairs of one series, skipping epochs without a value (e.g. no validation set)."""
    values = log.get(key) or []
    epochs = log.get("epoch") or list(range(len(values)))
    return [(epoch, value) for epoch, value in zip(epochs, values) if isinstance(value, (int, float))]

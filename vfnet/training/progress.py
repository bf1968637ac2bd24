"""Progress: training_log.txt, progress.png (matplotlib, Agg) and progress.json (the curves, for vfnet_cv_summary).

All three are rewritten atomically after every epoch. Each log line is also printed, so a console (or a redirected
log) gets one line per epoch while the batch progress bar shows only on a terminal."""
import sys
import time
from pathlib import Path
from typing import Any

from vfnet.fileio import atomic_path, write_json, write_text
from vfnet.paths import MODEL_FOLDER_SEPARATOR

WARNING_PREFIXES = ("WARNING", "COLLAPSE")
# Per-epoch series kept in the checkpoint's "log" (plain lists, so resuming continues the curves).
SERIES = ("train_loss", "train_ce", "train_supcon", "val_loss", "val_macro_f1", "val_binary_roc_auc", "val_qwk",
          "learning_rate", "epoch_seconds")


def empty_log() -> dict[str, list]:
    return {name: [] for name in SERIES} | {"lines": []}


class ProgressWriter:
    def __init__(self, fold_folder: Path, log: dict[str, list]):
        self.log_path = fold_folder / "training_log.txt"
        self.plot_path = fold_folder / "progress.png"
        self.curves_path = fold_folder / "progress.json"
        self.log = log

    def message(self, text: str) -> None:
        self.log["lines"].append(f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {text}")
        write_text(self.log_path, "\n".join(self.log["lines"]) + "\n")
        # Every line also goes to the console; warnings (collapse, degenerate fold) to stderr.
        print(self.log["lines"][-1], flush=True, file=sys.stderr if text.startswith(WARNING_PREFIXES) else sys.stdout)

    def title(self) -> str:
        """'Dataset900_X, fold 0, plans vfnetPlans (trainer vfnetTrainer)' from <dataset>/<trainer>__<plans>/fold_N."""
        fold_folder = self.plot_path.parent
        trainer, _, plans = fold_folder.parent.name.partition(MODEL_FOLDER_SEPARATOR)
        return (f"{fold_folder.parent.parent.name}, fold {fold_folder.name.removeprefix('fold_')}, "
                f"plans {plans or '?'} (trainer {trainer})")

    def record_epoch(self, values: dict[str, Any]) -> None:
        for name in SERIES:
            value = values.get(name)
            self.log[name].append(None if value is None else float(value))

    def plot(self) -> None:
        write_json(self.curves_path, {"epoch": list(range(len(self.log["train_loss"])))} |
                   {name: self.log[name] for name in SERIES})
        import matplotlib
        matplotlib.use("Agg")  # no display on servers
        import matplotlib.pyplot as plt

        epochs = list(range(len(self.log["train_loss"])))
        figure, axes = plt.subplots(3, 1, figsize=(9, 10), sharex=True)
        for name in ("train_loss", "train_ce", "train_supcon", "val_loss"):
            _plot_series(axes[0], epochs, self.log[name], name)
        axes[0].set_ylabel("loss")
        for name in ("val_macro_f1", "val_binary_roc_auc", "val_qwk"):
            _plot_series(axes[1], epochs, self.log[name], name)
        axes[1].set_ylabel("validation metric")
        _plot_series(axes[2], epochs, self.log["learning_rate"], "learning rate")
        axes[2].set_ylabel("learning rate")
        time_axis = axes[2].twinx()
        time_axis.plot(epochs, self.log["epoch_seconds"], color="tab:gray", linestyle=":", label="epoch time")
        time_axis.set_ylabel("epoch time (s)")
        axes[2].set_xlabel("epoch")
        for axis in axes[:2]:
            if axis.get_legend_handles_labels()[0]:  # fold 'all' has no validation curves
                axis.legend(loc="best", fontsize=9)
        # The twin axis's line would otherwise be missing from the legend.
        handles = [handle for axis in (axes[2], time_axis) for handle in axis.get_legend_handles_labels()[0]]
        axes[2].legend(handles, [handle.get_label() for handle in handles], loc="best", fontsize=9)
        figure.suptitle(self.title())
        figure.tight_layout()
        with atomic_path(self.plot_path, suffix=".png") as temporary:
            figure.savefig(temporary, dpi=80)
        plt.close(figure)


def _plot_series(axis, epochs: list[int], values: list, label: str) -> None:
    points = [(e, v) for e, v in zip(epochs, values) if v is not None]
    if points:
        axis.plot(*zip(*points), marker=".", label=label)

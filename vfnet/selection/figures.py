"""The two PNGs of the selection summary: the reliability diagram before/after calibration and the referral curve
(matplotlib's object API with the Agg canvas, written atomically)."""
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from vfnet.fileio import atomic_path
from vfnet.selection.calibration import ECE_BINS, reliability_bins


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png", dpi=110)
    return path


def plot_reliability(reference: np.ndarray, before: np.ndarray, after: np.ndarray, ece: tuple[float, float],
                     map_label: str, path: Path) -> Path:
    figure = Figure(figsize=(4.6, 5.4))
    top, bottom = figure.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    edges = np.linspace(0, 1, ECE_BINS + 1)
    for probabilities, label, colour in ((before, f"before (ECE {ece[0]:.3f})", "C3"),
                                         (after, f"after, {map_label} (ECE {ece[1]:.3f})", "C0")):
        p_fracture = 1.0 - probabilities[:, 0]
        mean_predicted, observed, counts = reliability_bins(reference, p_fracture)
        filled = counts > 0
        top.plot(mean_predicted[filled], observed[filled], marker="o", color=colour, label=label)
        bottom.hist(p_fracture, bins=edges, histtype="step", color=colour)
    top.set_ylabel("observed fraction fractured")
    top.set_title("out-of-fold reliability of p(fracture)")
    top.legend(loc="upper left", fontsize="small")
    bottom.set_xlabel("predicted p(fracture) = 1 - p0")
    bottom.set_ylabel("count")
    return _save(figure, path)


def plot_referral_curve(curve: list[dict[str, Any]], chosen: dict[str, Any], macro_f1_all: float, path: Path) -> Path:
    figure = Figure(figsize=(4.6, 3.8))
    axes = figure.add_subplot()
    points = [(row["fraction_flagged"], row["macro_f1_kept"]) for row in curve if row["macro_f1_kept"] is not None]
    axes.plot(*zip(*points), marker="o", label="flag the most uncertain first")
    axes.axhline(macro_f1_all, linestyle=":", color="grey", label="no vertebra flagged")
    if chosen["macro_f1_kept"] is not None:
        axes.plot([chosen["fraction_flagged"]], [chosen["macro_f1_kept"]], marker="*", markersize=14, color="C3",
                  linestyle="none", label="chosen review threshold")
    axes.set_xlabel("fraction of vertebrae flagged for review")
    axes.set_ylabel("macro-F1 of the vertebrae not flagged")
    axes.set_title("out-of-fold referral curve")
    axes.legend(loc="lower right", fontsize="small")
    return _save(figure, path)

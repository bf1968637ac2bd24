"""metrics.json content and a self-contained report.html (tables + PNGs beside it) for evaluate and cv_summary."""
import datetime
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vfnet import __version__
from vfnet.evaluation import plots
from vfnet.evaluation.bootstrap import bootstrap_intervals
from vfnet.evaluation.metrics import classification_metrics
from vfnet.fileio import write_text
from vfnet.labels import GENANT_GRADES

SUMMARY_ROWS = [("accuracy", "accuracy"), ("macro_f1", "macro-F1 (grades present in the reference)"),
                ("qwk", "quadratic weighted kappa"), ("binary_sensitivity", "sensitivity (grade >= 1)"),
                ("binary_specificity", "specificity (grade >= 1)"), ("binary_roc_auc", "ROC-AUC (grade >= 1)"),
                ("binary_pr_auc", "PR-AUC / average precision (grade >= 1)")]
DEFINITIONS = ("Predicted grade = argmax of p0-p3. Binary screening: fracture = grade >= 1, scored with "
               "p(fracture) = 1 - p0 for ROC/PR-AUC and decided by the predicted grade for sensitivity and "
               "specificity. Macro-F1 averages the F1 of the grades present in the reference. 95 % intervals: "
               "percentile bootstrap")


@dataclass
class FigureEntry:
    caption: str
    file: str | None          # file name beside report.html, None when the figure is undefined
    reason: str = ""          # why it is missing


def summarise(reference: np.ndarray, probabilities: np.ndarray, groups: Any = None, n_bootstrap: int = 1000,
              seed: int = 0) -> dict[str, Any]:
    """Point metrics, bootstrap intervals and how they were obtained (the core of every metrics.json)."""
    return {
        "metrics": classification_metrics(reference, probabilities),
        "confidence_intervals": bootstrap_intervals(reference, probabilities, groups=groups, n=n_bootstrap,
                                                    seed=seed),
        "bootstrap": {"resamples": n_bootstrap, "seed": seed, "level": 0.95, "method": "percentile",
                      "resampled_unit": "patient" if groups is not None else "vertebra"},
        "definitions": DEFINITIONS + ".",
        "vfnet_version": __version__,
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def write_classification_figures(folder: Path, reference: np.ndarray, probabilities: np.ndarray,
                                 metrics: dict[str, Any]) -> list[FigureEntry]:
    single_class = "only one of normal/fractured occurs in the reference"
    roc = plots.plot_roc(reference, probabilities, folder / "roc.png", metrics["binary_roc_auc"])
    calibration = plots.plot_calibration(reference, probabilities, folder / "calibration.png")
    plots.plot_confusion_matrix(metrics["confusion_matrix"], folder / "confusion_matrix.png")
    return [FigureEntry("Confusion matrix (rows: reference, columns: predicted)", "confusion_matrix.png"),
            FigureEntry("ROC curve, fracture (grade >= 1) vs normal", roc and roc.name, single_class),
            FigureEntry("Calibration (reliability) of p(fracture)", calibration and calibration.name, single_class)]


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _interval(interval: list[float] | None) -> str:
    return "n/a" if interval is None else f"{interval[0]:.3f} - {interval[1]:.3f}"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _metric_tables(summary: dict[str, Any]) -> str:
    metrics, intervals = summary["metrics"], summary["confidence_intervals"]
    main = _table(["metric", "value", "95 % CI"],
                  [[label, _number(metrics[key]), _interval(intervals.get(key))] for key, label in SUMMARY_ROWS])
    per_class = _table(["grade", "F1", "95 % CI", "reference count"],
                       [[f"{grade} {name}", _number(metrics["per_class_f1"][str(grade)]),
                         _interval(intervals.get(f"f1_grade_{grade}")), sum(metrics["confusion_matrix"][grade])]
                        for grade, name in GENANT_GRADES.items()])
    return f"<h2>Metrics (n = {metrics['n']} vertebrae)</h2>{main}<h3>Per grade</h3>{per_class}"


def per_fold_table(per_fold: dict[str, dict[str, Any]]) -> str:
    keys = ["n", "accuracy", "macro_f1", "qwk", "binary_sensitivity", "binary_specificity", "binary_roc_auc"]
    rows = [[fold] + [metrics[key] if key == "n" else _number(metrics[key]) for key in keys]
            for fold, metrics in per_fold.items()]
    return "<h2>Per fold</h2>" + _table(["fold"] + keys, rows)


def render_html(title: str, summary: dict[str, Any], figures: list[FigureEntry], notes: list[str],
                extra_sections: list[str] = (), warnings: list[str] = ()) -> str:
    """The whole page; `extra_sections` are pre-rendered HTML blocks (per-fold table, embedding section);
    `warnings` are shown first, in red (e.g. a degenerate fold)."""
    note_html = "".join(f"<p class='warning'><strong>{html.escape(w)}</strong></p>" for w in warnings)
    note_html += "".join(f"<p>{html.escape(note)}</p>" for note in notes)
    figure_html = "".join(
        f"<figure><img src='{html.escape(entry.file)}' alt='{html.escape(entry.caption)}'>"
        f"<figcaption>{html.escape(entry.caption)}</figcaption></figure>" if entry.file else
        f"<p><em>{html.escape(entry.caption)}: not drawn ({html.escape(entry.reason)}).</em></p>"
        for entry in figures)
    bootstrap = summary["bootstrap"]
    method = (f"{bootstrap['resamples']} resamples of {bootstrap['resampled_unit']}s, seed {bootstrap['seed']}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
            "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px}"
            "figure{display:inline-block;margin:0.5em}img{max-width:100%}.warning{color:#c00}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>{note_html}"
            f"<p>{html.escape(summary['definitions'])} ({html.escape(method)}).</p>"
            + _metric_tables(summary) + "".join(extra_sections) + "<h2>Figures</h2>" + figure_html
            + f"<p><small>vfnet {html.escape(summary['vfnet_version'])}, {html.escape(summary['created'])}"
              "</small></p></body></html>\n")


def write_report(folder: Path, title: str, summary: dict[str, Any], figures: list[FigureEntry],
                 notes: list[str], extra_sections: list[str] = (), warnings: list[str] = ()) -> Path:
    path = folder / "report.html"
    write_text(path, render_html(title, summary, figures, notes, extra_sections, warnings))
    return path

"""The model card in words: `model_card.md` and the two lines vfnet_predict prints (the JSON is `card`'s)."""
from typing import Any

from vfnet.labels import GENANT_GRADES, level_ranges

METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "qwk": "quadratic weighted kappa",
                "binary_sensitivity": "sensitivity (grade >= 1)", "binary_specificity": "specificity (grade >= 1)",
                "binary_roc_auc": "ROC-AUC (grade >= 1)", "binary_pr_auc": "PR-AUC (grade >= 1)"}
HEADLINE_METRICS = ("macro_f1", "binary_roc_auc", "qwk")


def data_kind(card: dict[str, Any]) -> str:
    return "SYNTHETIC phantoms" if card["training_data"].get("synthetic") else "real CTs"


def summary_lines(card: dict[str, Any]) -> list[str]:
    """Two lines: what the model was trained on, and how well it did in cross-validation."""
    data = card["training_data"]
    grades = "/".join(str(data["per_grade"][str(g)]["vertebrae"]) for g in range(4))
    first = (f"Model {card['dataset']}/{card['model']} (vfnet {card['vfnet_version']}, {card['created'][:10]}): "
             f"trained on {data_kind(card)}, {data['cts']} CTs of {data['patients']} patients, {data['vertebrae']} "
             f"vertebrae (grades 0/1/2/3: {grades}), levels {level_ranges(list(data['levels'])) or 'unknown'}.")
    cv = card.get("cross_validation")
    if not cv:
        second = "Cross-validation: not summarised yet (vfnet_cv_summary adds it to the card)."
    else:
        shown = ", ".join(f"{METRIC_NAMES[key].split(' (')[0]} {_value_ci(cv['metrics'].get(key))}"
                          for key in HEADLINE_METRICS)
        second = f"Cross-validation ({len(cv.get('folds') or [])} folds, {cv.get('vertebrae')} vertebrae): {shown}."
    return [first, second]


def render_markdown(card: dict[str, Any]) -> str:
    data, plan = card["training_data"], card["plan"]
    lines = [f"# Model card: {card['dataset']} / {card['model']}", "",
             f"vfnet {card['vfnet_version']}, written {card['created']}.", ""]
    if data.get("synthetic"):
        lines += ["**Trained on synthetic phantoms only.** Its grades on real CTs mean nothing clinically; "
                  "vfnet_predict marks every vertebra it grades.", ""]
    lines += ["## Training data (all folds together)", "",
              f"{data_kind(card)}: {data['cts']} CTs, {data['patients']} patients, {data['vertebrae']} graded "
              f"vertebrae. {data.get('description') or ''}".rstrip(), "",
              "| grade | CTs | patients | vertebrae |", "|---|---|---|---|"]
    lines += [f"| {grade} {GENANT_GRADES[grade]} | {counts['cts']} | {counts['patients']} | {counts['vertebrae']} |"
              for grade, counts in ((int(g), c) for g, c in data["per_grade"].items())]
    lines += ["", "Levels (vertebrae): " + (", ".join(f"{level} {count}" for level, count in data["levels"].items())
                                             or "none"), ""]
    lines += _ranges_lines(data)
    lines += ["## Plan in brief", ""] + [f"- {key.replace('_', ' ')}: {value}" for key, value in plan.items()] + [""]
    lines += _cross_validation_lines(card.get("cross_validation"))
    lines += ["## Intended use", "", card.get("intended_use", ""), ""]
    return "\n".join(lines)


def _ranges_lines(data: dict[str, Any]) -> list[str]:
    lines = ["## Ranges seen in training (vfnet_predict warns outside them)", ""]
    spacing = data.get("spacing_mm")
    if spacing:
        lines += [f"- spacing {axis}: {low:g}-{high:g} mm" for axis, low, high
                  in zip(spacing["axes"], spacing["min"], spacing["max"])]
    hu = data.get("vertebra_median_hu")
    if hu:
        lines.append(f"- {hu['what']}: {hu['min']:g} to {hu['max']:g} HU")
    voxels = data.get("voxel_hu")
    if voxels and "percentile_00_5" in voxels:
        lines.append(f"- voxels inside the vertebrae: 0.5-99.5th percentile {voxels['percentile_00_5']:.0f} to "
                     f"{voxels['percentile_99_5']:.0f} HU")
    if data.get("orientations"):
        lines.append("- stored orientations: " + ", ".join(f"{code} {n}" for code, n in data["orientations"].items()))
    if data.get("ranges_note"):
        lines.append(f"- {data['ranges_note']}")
    return lines + [""]


def _cross_validation_lines(cv: dict[str, Any] | None) -> list[str]:
    if not cv:
        return ["## Cross-validation", "", "Not summarised yet: run vfnet_cv_summary for this model.", ""]
    lines = ["## Cross-validation", "",
             f"Pooled out-of-fold predictions of folds {cv.get('folds')} ({cv.get('vertebrae')} vertebrae, "
             f"checkpoints {', '.join(cv.get('checkpoints') or ['?'])}); 95 % CIs by bootstrap over "
             f"{(cv.get('bootstrap') or {}).get('resampled_unit', '?')}s. Summarised {cv.get('created')}.", ""]
    if cv.get("missing_folds"):
        lines += [f"Folds {cv['missing_folds']} are missing: not a full cross-validation.", ""]
    lines += ["| metric | value | 95 % CI |", "|---|---|---|"]
    for key, entry in cv["metrics"].items():
        value, interval = entry.get("value"), entry.get("ci95")
        lines.append(f"| {METRIC_NAMES.get(key, key)} | {_number(value)} | "
                     f"{'n/a' if not interval else f'{interval[0]:.3f}-{interval[1]:.3f}'} |")
    return lines + [""]


def _value_ci(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "n/a"
    interval = entry.get("ci95")
    return f"{entry['value']:.2f}" + (f" (95 % CI {interval[0]:.2f}-{interval[1]:.2f})" if interval else "")


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"

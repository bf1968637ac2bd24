"""The selection's readable summary folder (configuration_selection/): summary.txt, selection.json, the referral
curve as CSV and PNG, and the reliability diagram before/after calibration."""
import csv
import io
from pathlib import Path
from typing import Any

from vfnet.fileio import write_json, write_text
from vfnet.paths import selection_summary_folder
from vfnet.selection import figures
from vfnet.selection.candidates import ensemble_groups
from vfnet.selection.result import Selection

CURVE_COLUMNS = ("target_fraction", "entropy_threshold", "fraction_flagged", "kept", "macro_f1_kept",
                 "accuracy_kept", "accuracy_flagged")


def write_summary(selection: Selection) -> Path:
    folder = selection_summary_folder(selection.dataset_results)
    before = selection.choice.chosen.candidate.probabilities
    calibration = selection.calibration
    figures.plot_reliability(selection.pooled.reference, before, selection.calibrated,
                             (calibration["ece_p_fracture_before"], calibration["ece_p_fracture_after"]),
                             calibration_label(calibration), folder / "reliability_diagram.png")
    figures.plot_referral_curve(selection.referral_curve, selection.review, selection.review["macro_f1_all"],
                                folder / "referral_curve.png")
    write_text(folder / "referral_curve.csv", _curve_csv(selection.referral_curve))
    write_json(folder / "selection.json", selection_record(selection))
    write_text(folder / "summary.txt", render(selection))
    return folder


def selection_record(selection: Selection) -> dict[str, Any]:
    pooled = selection.pooled
    return {"dataset": selection.dataset, "folds": pooled.folds, "vertebrae": len(pooled.keys),
            "patients": pooled.num_patients, "chosen": selection.choice.chosen.candidate.name,
            "reason": selection.choice.reason,
            "candidates": [{"name": s.candidate.name, "members": list(s.candidate.members), "macro_f1": s.macro_f1,
                            "macro_f1_ci": s.interval, "difference_to_chosen": s.versus_chosen}
                           for s in selection.choice.ranking],
            "calibration": selection.calibration, "default_operating_point": selection.default_operating_point,
            "fracture_threshold": selection.fracture_threshold, "review": selection.review,
            "referral_curve": selection.referral_curve}


def _curve_csv(curve: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CURVE_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in curve:
        writer.writerow({key: "" if row[key] is None else (f"{row[key]:.4f}" if isinstance(row[key], float)
                                                           else row[key]) for key in CURVE_COLUMNS})
    return buffer.getvalue()


def _ci(interval: list[float] | None) -> str:
    return "n/a" if interval is None else f"{interval[0]:.3f}-{interval[1]:.3f}"


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def render(selection: Selection) -> str:
    pooled, choice = selection.pooled, selection.choice
    width = max(len(s.candidate.name) for s in choice.ranking)
    lines = [f"vfnet_find_best_configuration: {selection.dataset}",
             f"Pooled out-of-fold predictions of folds {', '.join(map(str, pooled.folds))}: {len(pooled.keys)} "
             f"vertebrae of {pooled.num_patients} patients. Macro-F1 with its 95 % CI (patient bootstrap); "
             f"difference to the chosen candidate with its paired 95 % CI.", ""]
    for scored in choice.ranking:
        mark = "*" if scored is choice.chosen else " "
        gap = scored.versus_chosen
        versus = "chosen" if scored is choice.chosen else ("n/a" if gap is None else
                                                            f"{gap['difference']:+.3f} ({gap['low']:+.3f} to "
                                                            f"{gap['high']:+.3f})")
        lines.append(f"{mark} {scored.candidate.name:<{width}}  {scored.macro_f1:.3f} ({_ci(scored.interval)})  "
                     f"{versus}")
    groups = ensemble_groups(selection.configurations)
    if len(groups) > 1:
        lines += ["", "Ensembles are formed only within these groups (same preprocessing, morphometric features and "
                      "checkpoint, so vfnet_predict crops each vertebra once for all members): " + "; ".join(", ".join(g) for g in groups) + "."]
    calibration, review = selection.calibration, selection.review
    default, threshold = selection.default_operating_point, selection.fracture_threshold
    lines += ["", f"Chosen: {choice.chosen.candidate.name}: {choice.reason}.",
              _calibration_line(calibration) +
              f" ECE of p_fracture (10 bins) on the predictions the map was fitted on "
              f"{calibration['ece_p_fracture_before']:.4f} -> "
              f"{calibration['ece_p_fracture_after']:.4f}; NLL {calibration['nll_before']:.4f} -> "
              f"{calibration['nll_after']:.4f}; " + _grades_line(calibration),
              f"Operating point: grade = argmax of the calibrated probabilities; grade >= 1 has out-of-fold "
              f"sensitivity {_rate(default['sensitivity'])}, specificity {_rate(default['specificity'])}."]
    if threshold is not None:
        lines.append(f"Fracture column: p_fracture >= {threshold['threshold']:.4f} for a target sensitivity of "
                     f"{threshold['target_sensitivity']:.3f}: out-of-fold sensitivity "
                     f"{_rate(threshold['sensitivity'])}, specificity {_rate(threshold['specificity'])}.")
    else:
        lines.append("Fracture column: grade >= 1 (no --target_sensitivity given).")
    lines += [f"Review: flagged when the normalised entropy of the calibrated probabilities exceeds "
              f"{review['entropy_threshold']:.4f} ({review['fraction_flagged']:.1%} of the out-of-fold vertebrae; "
              f"macro-F1 of the rest {_rate(review['macro_f1_kept'])} vs {_rate(review['macro_f1_all'])} for all) "
              f"or, at prediction, when fold_spread exceeds {review['fold_spread_threshold']} (a stated choice: "
              f"out of fold each vertebra has one model, so no spread to fit it on).",
              "Files: reliability_diagram.png, referral_curve.png and .csv, selection.json beside this summary; "
              "vfnet_predict -d follows ../inference_instructions.json.", ""]
    return "\n".join(lines)


def calibration_label(calibration: dict, digits: int = 2) -> str:
    """The kept map in a few words (the reliability diagram's legend, the summary's calibration line)."""
    return {"none": "no map", "temperature": f"temperature T = {calibration['temperature']:.{digits}f}",
            "isotonic": "isotonic map of p_fracture"}[calibration["map"]]


def _calibration_line(calibration: dict) -> str:
    held_out = calibration.get("held_out")
    if held_out is None:
        return (f"Calibration: temperature T = {calibration['temperature']:.3f} fitted on the out-of-fold "
                f"log-probabilities (a single fold: nothing held out to check it on);")
    scores = ", ".join(f"{name} {row['ece_p_fracture']:.4f} (macro-F1 {row['macro_f1']:.3f})"
                       for name, row in held_out.items())
    return (f"Calibration: {calibration_label(calibration, digits=3)}, the map with the lowest held-out ECE of "
            f"p_fracture among those that keep the held-out macro-F1 (each fold mapped with the map fitted on the "
            f"others: {scores});")


def _grades_line(calibration: dict) -> str:
    if calibration["map"] != "isotonic":
        return "grades and macro-F1 unchanged (a temperature keeps the argmax)."
    return (f"macro-F1 {calibration['macro_f1_before']:.4f} -> {calibration['macro_f1_after']:.4f} (p0 moves, so a "
            f"grade can cross between normal and fractured; the map was fitted on these predictions).")

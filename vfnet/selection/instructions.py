"""inference_instructions.json, the one owner of its format: vfnet_find_best_configuration writes it into
$vfnet_results/DatasetXXX_Name/, vfnet_predict -d reads it.

{"format": "vfnet-inference-instructions-1", "dataset": "Dataset001_X",
 "configuration": "vfnetTrainer__vfnetPlans" (members joined by " + "),
 "members": [{"trainer": ..., "plans": ..., "model_folder": "<trainer>__<plans>"}, ...],
 "folds": [0, 1, 2, 3, 4], "checkpoint": "checkpoint_final",
 "calibration": {"method": ..., "map": "none" | "temperature" | "isotonic", "temperature": T,
                 "fracture_map": null | {"p_fracture": [breakpoints], "calibrated": [values]},
                 "held_out": {map: {"ece_p_fracture", "macro_f1"}}, ...ECE and NLL before/after},
 "fracture_threshold": null | {"threshold": t, "target_sensitivity": s, "sensitivity": ..., "specificity": ...},
 "review": {"entropy_threshold": h, "fold_spread_threshold": s, ...},
 "selection": {...}, "summary": "configuration_selection/summary.txt"}
"""
import math
from pathlib import Path
from typing import Any

from vfnet.errors import VfnetError
from vfnet.fileio import read_json, write_json
from vfnet.inference.decisions import Decisions
from vfnet.paths import model_folder

FORMAT = "vfnet-inference-instructions-1"


def write_instructions(path: Path, content: dict[str, Any]) -> None:
    write_json(path, {"format": FORMAT, **content})


def read_instructions(path: Path, dataset_name: str) -> dict[str, Any]:
    """The file's content after checking every field vfnet_predict uses."""
    content = read_json(path, "Inference instructions")
    problem = _problem(content)
    if problem is None and content["dataset"] != dataset_name:
        problem = f"are for dataset {content['dataset']}, not {dataset_name}"
    if problem:
        raise VfnetError(f"Inference instructions {path} {problem}: rerun vfnet_find_best_configuration -d "
                         f"{dataset_name} (or predict with -tr/-p).")
    return content


def _problem(content: Any) -> str | None:
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        return f"are not in the format {FORMAT}"
    members = content.get("members")
    if not isinstance(members, list) or not members or not all(
            isinstance(m, dict) and isinstance(m.get("trainer"), str) and isinstance(m.get("plans"), str)
            for m in members):
        return "list no members (each with 'trainer' and 'plans')"
    folds = content.get("folds")
    if not isinstance(folds, list) or not folds or not all(isinstance(f, int) and not isinstance(f, bool)
                                                           for f in folds):
        return "list no folds"
    if not isinstance(content.get("checkpoint"), str) or not isinstance(content.get("dataset"), str):
        return "lack 'dataset' or 'checkpoint'"
    calibration = content.get("calibration") or {}
    temperature = calibration.get("temperature")
    if not _number(temperature) or not temperature > 0:
        return "hold no positive calibration temperature"
    if calibration.get("fracture_map") is not None and _fracture_map(calibration["fracture_map"]) is None:
        return "hold a p_fracture map that is not two equally long lists of probabilities, breakpoints ascending"
    threshold = content.get("fracture_threshold")
    if threshold is not None and not (isinstance(threshold, dict) and _probability(threshold.get("threshold"))):
        return "hold a fracture threshold that is not a number in [0, 1]"
    review = content.get("review")
    if not isinstance(review, dict) or not _probability(review.get("entropy_threshold")) or not (
            review.get("fold_spread_threshold") is None or _number(review.get("fold_spread_threshold"))):
        return "hold no review thresholds"
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _probability(value: Any) -> bool:
    return _number(value) and 0 <= value <= 1


def _fracture_map(value: Any) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(breakpoints, values) of a stored p_fracture map, or None when it is malformed."""
    if not isinstance(value, dict):
        return None
    points, values = value.get("p_fracture"), value.get("calibrated")
    if not (isinstance(points, list) and isinstance(values, list) and points and len(points) == len(values)):
        return None
    if not all(_probability(v) for v in (*points, *values)) or any(b < a for a, b in zip(points, points[1:])):
        return None
    return tuple(float(v) for v in points), tuple(float(v) for v in values)


def decisions(content: dict[str, Any]) -> Decisions:
    threshold = content.get("fracture_threshold")
    calibration = content["calibration"]
    return Decisions(temperature=float(calibration["temperature"]),
                     fracture_map=None if calibration.get("fracture_map") is None
                     else _fracture_map(calibration["fracture_map"]),
                     fracture_threshold=None if threshold is None else float(threshold["threshold"]),
                     review_entropy=float(content["review"]["entropy_threshold"]),
                     review_fold_spread=(None if content["review"].get("fold_spread_threshold") is None
                                         else float(content["review"]["fold_spread_threshold"])))


def member_folders(content: dict[str, Any], results_base: Path) -> list[Path]:
    return [model_folder(content["dataset"], member["trainer"], member["plans"], results_base)
            for member in content["members"]]

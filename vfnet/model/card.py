"""The model card: `model_card.json` + `model_card.md` in a model folder, saying what the model was trained on
and how well it did, so that whoever applies it can tell whether their CT lies within what it has seen.

Training writes it (dataset, synthetic or real, CTs / patients / vertebrae per grade, levels, spacing and
intensity ranges from the dataset fingerprint, the plan in brief); vfnet_cv_summary completes it with the pooled
cross-validation metrics and their CIs; vfnet_predict prints two lines of it, copies it beside the predictions and
checks every vertebra against its ranges. This module owns the format; `card_markdown` renders the readable copy.
"""
import datetime
from collections import Counter
from pathlib import Path
from typing import Any

from vfnet import __version__
from vfnet.errors import VfnetError
from vfnet.fileio import read_json, write_json, write_text
from vfnet.labels import level_name, spine_order
from vfnet.model.card_text import render_markdown

CARD_JSON = "model_card.json"
CARD_MARKDOWN = "model_card.md"
CARD_FORMAT = "vfnet-model-card-1"
CV_METRICS = ("accuracy", "macro_f1", "qwk", "binary_sensitivity", "binary_specificity", "binary_roc_auc",
              "binary_pr_auc")
AXES = ("z (cranio-caudal)", "y (antero-posterior)", "x (left-right)")


def write_training_card(model_folder: Path, dataset_folder: Path, plans: dict[str, Any]) -> dict[str, Any]:
    """The card as training knows it: from the preprocessed folder's dataset.json and fingerprint and the plan.

    Retraining a fold replaces an earlier card, cross-validation included: those metrics no longer describe it.
    """
    card = build_training_card(Path(model_folder), _optional_json(Path(dataset_folder) / "dataset.json"),
                               _optional_json(Path(dataset_folder) / "dataset_fingerprint.json"), plans)
    write_card(model_folder, card)
    return card


def build_training_card(model_folder: Path, dataset_json: dict[str, Any] | None,
                        fingerprint: dict[str, Any] | None, plans: dict[str, Any]) -> dict[str, Any]:
    return {"format": CARD_FORMAT, "model": model_folder.name, "dataset": model_folder.parent.name,
            "vfnet_version": __version__, "created": _now(),
            "training_data": training_data(dataset_json, fingerprint), "plan": plan_brief(plans),
            "cross_validation": None,
            "intended_use": "Research. Grades are those of the training data's annotators; a radiologist reads "
                            "the CT before any grade is acted on."}


def training_data(dataset_json: dict[str, Any] | None, fingerprint: dict[str, Any] | None) -> dict[str, Any]:
    """Counts per grade from dataset.json (the fingerprint's cases where it is missing), ranges from the fingerprint."""
    entries = _graded_entries(dataset_json, fingerprint)
    per_grade: dict[str, dict[str, Any]] = {str(g): {"cts": set(), "patients": set(), "vertebrae": 0} for g in range(4)}
    levels: Counter = Counter()
    for case, patient, vertebrae in entries:
        for label, grade in vertebrae.items():
            counts = per_grade[str(grade)]
            counts["cts"].add(case)
            counts["patients"].add(patient)
            counts["vertebrae"] += 1
            levels[int(label)] += 1
    data: dict[str, Any] = {
        "synthetic": bool(dataset_json and dataset_json.get("synthetic") is True),
        "description": (dataset_json or {}).get("description", ""),
        "cts": len(entries), "patients": len({patient for _, patient, _ in entries}),
        "vertebrae": sum(levels.values()),
        "per_grade": {grade: {"cts": len(c["cts"]), "patients": len(c["patients"]), "vertebrae": c["vertebrae"]}
                      for grade, c in per_grade.items()},
        "levels": {level_name(label): levels[label] for label in sorted(levels, key=spine_order)},
    }
    data.update(_ranges(fingerprint))
    return data


def _graded_entries(dataset_json: dict[str, Any] | None,
                    fingerprint: dict[str, Any] | None) -> list[tuple[str, str, dict[int, int]]]:
    if dataset_json and isinstance(dataset_json.get("training"), list):
        return [(str(e["case"]), str(e.get("patient", e["case"])), {int(k): int(v) for k, v in e["vertebrae"].items()})
                for e in dataset_json["training"] if isinstance(e, dict) and isinstance(e.get("vertebrae"), dict)]
    return [(c["case"], c["patient"], {int(k): int(v["grade"]) for k, v in c["vertebrae"].items()})
            for c in (fingerprint or {}).get("cases", [])]


def _ranges(fingerprint: dict[str, Any] | None) -> dict[str, Any]:
    """Spacing and intensity ranges; None where the fingerprint (or an older fingerprint's per-vertebra HU) is missing."""
    if not fingerprint:
        return {"spacing_mm": None, "vertebra_median_hu": None, "voxel_hu": None, "orientations": {},
                "ranges_note": "no dataset_fingerprint.json was found: spacing and intensity are not checked"}
    cases = fingerprint.get("cases", [])
    spacings = [case["spacing"] for case in cases if len(case.get("spacing", [])) == 3]
    medians = [entry["median_hu"] for case in cases for entry in case.get("vertebrae", {}).values()
               if isinstance(entry.get("median_hu"), (int, float))]
    pooled = fingerprint.get("intensity", {})
    note = {} if medians else {"ranges_note": "the fingerprint has no per-vertebra median HU (made by an older "
                                              "vfnet): rerun vfnet_extract_fingerprint --clean to check intensities"}
    return {**note,
        "spacing_mm": {"axes": list(AXES), "min": [round(min(s[a] for s in spacings), 4) for a in range(3)],
                       "max": [round(max(s[a] for s in spacings), 4) for a in range(3)]} if spacings else None,
        "vertebra_median_hu": {"min": min(medians), "max": max(medians), "what": "median HU inside each "
                               "training vertebra"} if medians else None,
        "voxel_hu": {key: pooled[key] for key in ("percentile_00_5", "percentile_99_5", "mean", "std")
                     if key in pooled} or None,
        "orientations": dict(Counter(case.get("orientation", "?") for case in cases)),
    }


def plan_brief(plans: dict[str, Any]) -> dict[str, Any]:
    pre, network, training = plans.get("preprocessing", {}), plans.get("network", {}), plans.get("training", {})
    return {
        "plans_name": plans.get("plans_name"), "budget": plans.get("budget"),
        "target_spacing_mm": pre.get("target_spacing"), "crop_size_mm": pre.get("crop_size_mm"),
        "crop_size_voxels": pre.get("crop_size"),
        "ct_windows": [{"name": c.get("name"), "clip_hu": c.get("clip")} for c in pre.get("ct_channels", [])],
        "network": (f"{network.get('architecture', '?')}: stem {network.get('stem_channels')} channels (stride "
                    f"{network.get('stem_stride')}), stages {network.get('stage_channels')} with "
                    f"{network.get('blocks_per_stage')} blocks, strides {network.get('stage_strides')}"),
        "epochs": training.get("epochs"), "iterations_per_epoch": training.get("iterations_per_epoch"),
        "batch_size": training.get("batch_size"),
        "loss": (f"cross-entropy (class weights {training.get('ce_class_weights')}) + "
                 f"{training.get('ordinal_weight', 0)} x cumulative ordinal term + "
                 f"{training.get('supcon_weight')} x SupCon (temperature {training.get('supcon_temperature')})"),
    }


def add_cross_validation(model_folder: Path, summary: dict[str, Any], summary_folder: Path,
                         preprocessed_folder: Path | None = None) -> dict[str, Any]:
    """Complete the card with vfnet_cv_summary's pooled metrics; a model trained before cards existed gets one
    from the folder's own plans.json and dataset.json (and the fingerprint, where `preprocessed_folder` has it)."""
    model_folder = Path(model_folder)
    card = load_card(model_folder)
    if card is None:
        fingerprint = _optional_json(preprocessed_folder / "dataset_fingerprint.json") if preprocessed_folder else None
        card = build_training_card(model_folder, _optional_json(model_folder / "dataset.json"), fingerprint,
                                   _optional_json(model_folder / "plans.json") or {})
    metrics, intervals = summary["metrics"], summary.get("confidence_intervals", {})
    card["cross_validation"] = {
        "folds": summary.get("folds"), "missing_folds": summary.get("missing_folds", []),
        "vertebrae": metrics.get("n"), "pooled": summary.get("pooled"),
        "checkpoints": sorted({c for c in (summary.get("checkpoints") or {}).values() if c}),
        "metrics": {key: {"value": metrics.get(key), "ci95": intervals.get(key)} for key in CV_METRICS},
        "bootstrap": summary.get("bootstrap"), "created": summary.get("created", _now()),
        "summary": str(Path(summary_folder) / "metrics.json"),
    }
    write_card(model_folder, card)
    return card


def load_card(model_folder: Path) -> dict[str, Any] | None:
    """The folder's card, or None when it has none (trained before cards); a broken card is an error."""
    path = Path(model_folder) / CARD_JSON
    if not path.is_file():
        return None
    card = read_json(path, "model card")
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT or not isinstance(card.get("training_data"), dict):
        raise VfnetError(f"Model card {path} is not a {CARD_FORMAT} card; delete it and rerun vfnet_cv_summary "
                         f"to write a new one.")
    return card


def write_card(folder: Path, card: dict[str, Any]) -> None:
    write_json(Path(folder) / CARD_JSON, card)
    write_text(Path(folder) / CARD_MARKDOWN, render_markdown(card))


def _optional_json(path: Path) -> dict[str, Any] | None:
    return read_json(path, path.name) if path.is_file() else None


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")

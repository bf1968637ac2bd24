"""vfnetPlans.json: load (with validation), save, and `--override key=value` edits."""
import copy
import json
from pathlib import Path
from typing import Any, Iterable

from vfnet.errors import PlanError, VfnetError
from vfnet.fileio import read_json, write_json
from vfnet.preprocessing.mask_errors import parse_mask_error

REQUIRED_SECTIONS = ("plans_name", "dataset_name", "data_identifier", "grades_present", "preprocessing", "network",
                     "training")


def save_plans(path: str | Path, plans: dict[str, Any]) -> None:
    write_json(path, plans)


def morphometric_features(plans: dict[str, Any]) -> list[str]:
    """The morphometric features the plan's network reads (empty: no morphometric branch)."""
    return list(plans.get("network", {}).get("morphometric_features", []))


def load_plans(path: str | Path) -> dict[str, Any]:
    """Read and validate a plans file; an edit that makes no sense raises PlanError naming the file and key."""
    try:
        plans = read_json(path, "plans file")
    except VfnetError as error:
        raise PlanError(str(error)) from None
    validate_plans(plans, str(path))
    return plans


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(condition: bool, where: str, key: str, message: str) -> None:
    if not condition:
        raise PlanError(f"{where}: '{key}' {message}.")


def _positive_triple(section: dict[str, Any], key: str, where: str, integer: bool = False) -> None:
    value = section.get(key)
    kind = int if integer else (int, float)
    ok = (isinstance(value, list) and len(value) == 3
          and all(isinstance(v, kind) and not isinstance(v, bool) and v > 0 for v in value))
    _check(ok, where, key, f"must be three positive {'integers' if integer else 'numbers'} (z, y, x), not {value!r}")


def validate_plans(plans: Any, where: str = "plans") -> None:
    _check(isinstance(plans, dict), where, "(top level)", "must be a JSON object")
    for key in REQUIRED_SECTIONS:
        _check(key in plans, where, key, "is missing")
    _check(isinstance(plans["data_identifier"], str) and plans["data_identifier"].replace("_", "").isalnum(),
           where, "data_identifier", "must be a folder name made of letters, digits and '_'")
    grades = plans["grades_present"]
    _check(isinstance(grades, list) and len(grades) >= 2 and all(g in (0, 1, 2, 3) for g in grades), where,
           "grades_present", "must list at least two Genant grades 0-3")
    _validate_preprocessing(plans["preprocessing"], where)
    _validate_network(plans["network"], plans["preprocessing"], where)
    _validate_training(plans["training"], where)
    _check(plans["network"].get("image_head", False) or not plans["training"].get("image_ce_weight", 0), where,
           "training.image_ce_weight", "must be 0 unless network.image_head is true (the term trains that head)")


def _validate_preprocessing(section: Any, where: str) -> None:
    _check(isinstance(section, dict), where, "preprocessing", "must be an object")
    _positive_triple(section, "target_spacing", where)
    _positive_triple(section, "crop_size", where, integer=True)
    _check(_number(section.get("background_hu")), where, "preprocessing.background_hu", "must be a number")
    _check(section.get("ct_interpolation") in ("linear", "bspline", "nearest"), where,
           "preprocessing.ct_interpolation", "must be 'linear', 'bspline' or 'nearest'")
    channels = section.get("ct_channels")
    _check(isinstance(channels, list) and len(channels) >= 1, where, "preprocessing.ct_channels",
           "must be a non-empty list of {name, clip, center, scale}")
    for index, channel in enumerate(channels):
        key = f"preprocessing.ct_channels.{index}"
        _check(isinstance(channel, dict) and {"clip", "center", "scale"} <= set(channel), where, key,
               "must have clip, center and scale")
        clip = channel["clip"]
        _check(isinstance(clip, list) and len(clip) == 2 and all(map(_number, clip)) and clip[0] < clip[1],
               where, key + ".clip", "must be [low, high] with low < high")
        _check(_number(channel["center"]), where, key + ".center", "must be a number")
        _check(_number(channel["scale"]) and channel["scale"] > 0, where, key + ".scale", "must be positive")
    _check(section.get("num_input_channels") == len(channels) + 1, where, "preprocessing.num_input_channels",
           f"must be {len(channels) + 1} (the CT channels plus the target-vertebra mask)")
    errors = section.get("morphometry_mask_errors", [])   # optional: older plans measure exact masks only
    _check(isinstance(errors, list) and all(isinstance(name, str) for name in errors), where,
           "preprocessing.morphometry_mask_errors", "must be a list of names such as eroded_1, dilated_2")
    for name in errors:
        parse_mask_error(name)   # raises PlanError naming the unknown error


def _validate_network(section: Any, preprocessing: dict[str, Any], where: str) -> None:
    _check(isinstance(section, dict), where, "network", "must be an object")
    _check(section.get("in_channels") == preprocessing["num_input_channels"], where, "network.in_channels",
           f"must equal preprocessing.num_input_channels ({preprocessing['num_input_channels']})")
    _check(section.get("num_classes") == 4, where, "network.num_classes", "must be 4 (Genant grades 0-3)")
    lists = [section.get(key) for key in ("stage_channels", "blocks_per_stage", "stage_strides")]
    _check(all(isinstance(v, list) and v and all(isinstance(i, int) and i > 0 for i in v) for v in lists)
           and len({len(v) for v in lists}) == 1, where, "network.stage_channels/blocks_per_stage/stage_strides",
           "must be lists of positive integers of equal length")
    for key in ("stem_channels", "stem_stride", "projection_dim"):
        value = section.get(key)
        _check(isinstance(value, int) and not isinstance(value, bool) and value > 0, where, f"network.{key}",
               "must be a positive integer")
    _check(isinstance(section.get("image_head", False), bool), where, "network.image_head", "must be true or false")
    stride = section["stem_stride"]
    for value in section["stage_strides"]:
        stride *= value
    _check(min(preprocessing["crop_size"]) >= stride, where, "preprocessing.crop_size",
           f"must be at least the network's total stride {stride} along every axis")


def _validate_training(section: Any, where: str) -> None:
    _check(isinstance(section, dict), where, "training", "must be an object")
    for key in ("epochs", "iterations_per_epoch", "batch_size", "samples_per_grade"):
        value = section.get(key)
        _check(isinstance(value, int) and not isinstance(value, bool) and value >= 1, where, f"training.{key}",
               "must be a positive integer")
    for key in ("learning_rate", "supcon_temperature"):
        _check(_number(section.get(key)) and section[key] > 0, where, f"training.{key}", "must be positive")
    for key in ("weight_decay", "supcon_weight"):
        _check(_number(section.get(key)) and section[key] >= 0, where, f"training.{key}", "must be >= 0")
    for key in ("ordinal_weight", "image_ce_weight"):
        if key in section:   # optional: plans written before they existed train without the term
            _check(_number(section[key]) and section[key] >= 0, where, f"training.{key}", "must be >= 0")
    weights = section.get("ce_class_weights")
    _check(isinstance(weights, list) and len(weights) == 4 and all(_number(w) and w >= 0 for w in weights)
           and sum(weights) > 0, where, "training.ce_class_weights", "must be four non-negative numbers, not all 0")
    for key in ("mask_error_morphometry_probability", "centroid_input_probability", "morphometry_dropout"):
        if key in section:   # optional: older plans train without them
            _check(_number(section[key]) and 0 <= section[key] <= 1, where, f"training.{key}",
                   "must be between 0 and 1")
    if "min_fraction_in_view" in section:   # optional: plans written before it existed train on every crop
        value = section["min_fraction_in_view"]
        _check(_number(value) and 0 <= value <= 1, where, "training.min_fraction_in_view", "must be between 0 and 1")
    if "validation_every" in section:   # optional: older plans validate after every epoch
        value = section["validation_every"]
        _check(isinstance(value, int) and not isinstance(value, bool) and value >= 1, where,
               "training.validation_every", "must be a positive integer (epochs between validations)")
    if "checkpoint_every_seconds" in section:   # optional: older plans write checkpoint_latest after every epoch
        value = section["checkpoint_every_seconds"]
        _check(_number(value) and value >= 0, where, "training.checkpoint_every_seconds",
               "must be a number of seconds >= 0 (0: after every epoch)")
    augmentation = section.get("augmentation")
    _check(isinstance(augmentation, dict), where, "training.augmentation", "must be an object")
    for name, probability in augmentation.get("probabilities", {}).items():
        _check(_number(probability) and 0 <= probability <= 1, where,
               f"training.augmentation.probabilities.{name}", "must be between 0 and 1")


def apply_overrides(plans: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of `plans` with `dotted.key=JSON value` edits applied and validated.

    Keys must already exist (a typo is an error, not a silently ignored new key); list items are addressed by
    index (`preprocessing.crop_size.0=48`). A value that is not valid JSON is taken as a string.
    """
    result = copy.deepcopy(plans)
    overrides = list(overrides)
    for override in overrides:
        key, separator, text = override.partition("=")
        if not separator or not key:
            raise PlanError(f"Override '{override}' must have the form key=value, e.g. training.supcon_weight=0.")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        parent, last = _resolve_parent(result, key)
        parent[last] = value
        result.setdefault("reasons", {})[key] = f"set by the user: --override {override}"
    validate_plans(result, "plans after --override" if overrides else "the new plan")
    return result


def _resolve_parent(plans: dict[str, Any], key: str) -> tuple[Any, Any]:
    node: Any = plans
    parts = key.split(".")
    for depth, part in enumerate(parts):
        container = node
        if isinstance(container, dict) and part in container:
            index: Any = part
        elif isinstance(container, list) and part.isdigit() and int(part) < len(container):
            index = int(part)
        else:
            raise PlanError(f"Override key '{key}' does not exist in the plan (no '{'.'.join(parts[:depth + 1])}').")
        if depth == len(parts) - 1:
            return container, index
        node = container[index]
    raise PlanError(f"Override key '{key}' is empty.")

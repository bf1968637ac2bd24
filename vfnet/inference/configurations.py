"""An ensemble of configurations (vfnet_find_best_configuration's choice): every member folder's folds in one list.

The members must read the same inputs of a vertebra: one preprocessing section (each vertebra is cropped once and
every member's folds grade that crop) and one list of morphometric features (measured once, fed to every member).
Averaging the list then averages the members (each contributes the same folds, hence the same weight).
"""
import json
from pathlib import Path
from typing import Any

import torch

from vfnet.errors import CheckpointError
from vfnet.inference.ensemble import load_fold_models
from vfnet.planning.plans import load_plans, morphometric_features


def member_inputs(plans: dict[str, Any]) -> str:
    """What a member reads from a vertebra; members of one ensemble must agree on it."""
    return json.dumps({"preprocessing": plans.get("preprocessing"),
                       "morphometric_features": morphometric_features(plans)},
                      sort_keys=True)


def load_configuration_models(model_folders: list[Path], folds: list[int | str], checkpoint_name: str,
                              plans: dict[str, Any]) -> list[torch.nn.Module]:
    """Fold models of the first folder (whose `plans` the caller loaded) and of each further member."""
    models = load_fold_models(model_folders[0], folds, checkpoint_name, plans)
    for folder in model_folders[1:]:
        member_plans = load_plans(folder / "plans.json")
        if member_inputs(member_plans) != member_inputs(plans):
            raise CheckpointError(f"{folder / 'plans.json'} has another preprocessing section or other morphometric "
                                  f"features than {model_folders[0] / 'plans.json'}: an ensemble of configurations "
                                  f"needs one crop per vertebra; rerun vfnet_find_best_configuration or predict with "
                                  f"-tr/-p.")
        models += load_fold_models(folder, folds, checkpoint_name, member_plans)
    return models

"""The fold ensemble: load each fold's checkpoint once, check it against plans.json, average softmax over folds.

Test-time augmentation mirrors left-right only (array axis 2 of a crop, the one mirroring the trainer also
uses), because any other flip would change what the grade means. `fold_spread` is the standard deviation of
p(fracture) across folds: large when the folds disagree, a cheap uncertainty flag.
"""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vfnet.errors import CheckpointError
from vfnet.model.checkpoint import load_checkpoint
from vfnet.model.network import build_network
from vfnet.morphometry.genant import check_feature_names
from vfnet.paths import fold_folder
from vfnet.planning.plans import morphometric_features

LEFT_RIGHT_DIM = 4  # (B, C, Z, Y, X): array axis 2 of a crop


@dataclass
class EnsembleOutput:
    probabilities: np.ndarray   # (B, 4) mean over folds (and mirrors)
    fold_spread: np.ndarray     # (B,) std over folds of p(fracture) = 1 - p0


class FoldEnsemble:
    def __init__(self, models: list[torch.nn.Module], mirror: bool = True, device: str = "cpu"):
        if not models:
            raise CheckpointError("The ensemble has no model: no fold was selected.")
        self.models = [model.to(device).eval() for model in models]
        self.mirror = mirror
        self.device = torch.device(device)

    def predict(self, batch: np.ndarray, morphometry: np.ndarray | None = None) -> EnsembleOutput:
        """`batch` (B, C, Z, Y, X) float32: every vertebra of a case goes through each fold in one pass;
        `morphometry` (B, 2F): the morphometric branch's inputs, when the plan has the branch."""
        with torch.inference_mode():
            inputs = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            features = None if morphometry is None else torch.from_numpy(
                np.ascontiguousarray(morphometry, dtype=np.float32)).to(self.device)
            per_fold = torch.stack([self._fold_probabilities(model, inputs, features) for model in self.models])
        per_fold_np = per_fold.cpu().double().numpy()
        spread = (1.0 - per_fold_np[:, :, 0]).std(axis=0)
        return EnsembleOutput(per_fold_np.mean(axis=0), spread)

    def _fold_probabilities(self, model: torch.nn.Module, inputs: torch.Tensor,
                            morphometry: torch.Tensor | None) -> torch.Tensor:
        if not self.mirror:
            return torch.softmax(model(inputs, morphometry)["logits"].float(), dim=1)
        # Original and mirrored crops in one forward pass: one larger batch is cheaper than two small ones.
        # The heights do not change under left-right mirroring, so both halves get the same features.
        both = torch.cat([inputs, torch.flip(inputs, dims=(LEFT_RIGHT_DIM,))])
        features = None if morphometry is None else torch.cat([morphometry, morphometry])
        probabilities = torch.softmax(model(both, features)["logits"].float(), dim=1)
        return (probabilities[:len(inputs)] + probabilities[len(inputs):]) / 2


def checkpoint_path(model_folder: Path, fold: int | str, checkpoint_name: str) -> Path:
    return fold_folder(model_folder, fold) / f"{checkpoint_name}.pth"


def load_fold_models(model_folder: Path, folds: list[int | str], checkpoint_name: str,
                     plans: dict[str, Any]) -> list[torch.nn.Module]:
    """Build each fold's network from its checkpoint's own network plan, after checking it matches plans.json."""
    features = morphometric_features(plans)
    if features:   # models of another vfnet read other ratios: stop before loading, not on every case
        check_feature_names(features, str(model_folder / "plans.json"),
                            "these models were trained by another vfnet version: plan, preprocess and train again "
                            "with this one, or predict with the version that trained them.")
    missing = [checkpoint_path(model_folder, fold, checkpoint_name) for fold in folds
               if not checkpoint_path(model_folder, fold, checkpoint_name).is_file()]
    if missing:
        raise CheckpointError(f"Missing checkpoint {missing[0]}" + (f" (and {len(missing) - 1} more)" if
                              len(missing) > 1 else "") + ": train that fold, choose folds with -f, or pick "
                              "another checkpoint with -chk.")
    models = []
    for fold in folds:
        path = checkpoint_path(model_folder, fold, checkpoint_name)
        payload = load_checkpoint(path)
        check_against_plans(payload, plans, path)
        model = build_network(payload["network_plan"])
        try:
            model.load_state_dict(payload["network_weights"])
        except (RuntimeError, KeyError, TypeError) as error:
            raise CheckpointError(f"Checkpoint {path} holds weights that do not fit its network plan "
                                  f"({str(error).splitlines()[0][:160]}).") from None
        models.append(model)
    return models


def check_against_plans(payload: dict[str, Any], plans: dict[str, Any], path: Path) -> None:
    """A fold trained with other preprocessing or another network than plans.json would be silently wrong."""
    for payload_key, plans_key in (("preprocessing", "preprocessing"), ("network_plan", "network")):
        if payload_key not in payload:
            raise CheckpointError(f"Checkpoint {path} lacks '{payload_key}'; it was not written by vfnet_train.")
        differing = _differing_keys(payload[payload_key], plans.get(plans_key, {}))
        if differing:
            raise CheckpointError(f"Checkpoint {path} was trained with a different {plans_key} plan than the "
                                  f"model folder's plans.json (differs in: {', '.join(differing)}).")


def _differing_keys(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    # JSON round trip so tuples and lists, ints and equal floats compare as the saved files would.
    first, second = json.loads(json.dumps(first)), json.loads(json.dumps(second))
    return sorted(key for key in set(first) | set(second) if first.get(key) != second.get(key))

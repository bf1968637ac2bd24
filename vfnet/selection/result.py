"""Everything one selection found, from which the summary folder and the inference instructions are written."""
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vfnet.selection.alignment import PooledPredictions
from vfnet.selection.choice import Choice
from vfnet.selection.configurations import Configuration


@dataclass
class Selection:
    dataset: str
    dataset_results: Path                     # $vfnet_results/DatasetXXX_Name
    configurations: list[Configuration]
    pooled: PooledPredictions
    choice: Choice
    calibrated: np.ndarray                    # the chosen candidate's out-of-fold probabilities after calibration
    calibration: dict[str, Any]               # the map kept, held-out ECEs, ECE and NLL before/after
    default_operating_point: dict[str, Any]   # grade >= 1 on the calibrated probabilities
    fracture_threshold: dict[str, Any] | None
    review: dict[str, Any]
    referral_curve: list[dict[str, Any]]

    @property
    def chosen_configurations(self) -> list[Configuration]:
        by_name = {c.name: c for c in self.configurations}
        return [by_name[name] for name in self.choice.chosen.candidate.members]

"""The candidates: every configuration alone, and every ensemble of two or more (the mean of their probabilities).

Ensembles are formed only among configurations that read the same inputs of a vertebra (preprocessing section and
morphometric features: vfnet_predict crops and measures each vertebra once for all members, see
vfnet.inference.configurations) and whose out-of-fold predictions came from the same checkpoint name (vfnet_predict
loads one per fold). The other configurations still compete alone.
"""
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from vfnet.inference.configurations import member_inputs
from vfnet.selection.alignment import PooledPredictions
from vfnet.selection.configurations import Configuration

ENSEMBLE_JOIN = " + "


@dataclass
class Candidate:
    members: tuple[str, ...]     # configuration names, in the order given
    probabilities: np.ndarray    # (N, 4) out-of-fold, mean over the members

    @property
    def name(self) -> str:
        return ENSEMBLE_JOIN.join(self.members)


def ensemble_groups(configurations: list[Configuration]) -> list[list[str]]:
    """Names of the configurations that may be ensembled with each other, one list per group."""
    groups: dict[tuple[str, str], list[str]] = {}
    for configuration in configurations:
        key = (member_inputs(configuration.plans), configuration.checkpoint)
        groups.setdefault(key, []).append(configuration.name)
    return list(groups.values())


def enumerate_candidates(configurations: list[Configuration], pooled: PooledPredictions) -> list[Candidate]:
    candidates = [Candidate((c.name,), pooled.probabilities[c.name]) for c in configurations]
    for names in ensemble_groups(configurations):
        for size in range(2, len(names) + 1):
            for members in combinations(names, size):
                mean = np.mean([pooled.probabilities[name] for name in members], axis=0)
                candidates.append(Candidate(members, mean))
    return candidates

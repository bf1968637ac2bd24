"""Choose among the candidates by out-of-fold macro-F1, preferring the simpler one when the data cannot tell.

The best point estimate wins unless a candidate with fewer members is within reach: when the 95 % CI of the paired,
patient-level bootstrap difference (same resampled patients for both) includes 0, the candidate with the fewest
members wins (the higher macro-F1 among equally simple ones): it predicts faster and is as good as we can tell.
"""
from dataclasses import dataclass

from vfnet.evaluation.bootstrap import bootstrap_intervals, paired_difference_intervals
from vfnet.evaluation.metrics import classification_metrics
from vfnet.selection.alignment import PooledPredictions
from vfnet.selection.candidates import Candidate


@dataclass
class Scored:
    candidate: Candidate
    macro_f1: float
    interval: list[float] | None                  # 95 % CI of macro-F1
    versus_chosen: dict[str, float] | None = None  # macro-F1(candidate) - macro-F1(chosen): difference, low, high


@dataclass
class Choice:
    chosen: Scored
    ranking: list[Scored]   # every candidate, best macro-F1 first
    reason: str


def choose(candidates: list[Candidate], pooled: PooledPredictions, n_bootstrap: int, seed: int) -> Choice:
    scored = [Scored(c, classification_metrics(pooled.reference, c.probabilities)["macro_f1"],
                     bootstrap_intervals(pooled.reference, c.probabilities, pooled.patients, n_bootstrap,
                                         seed)["macro_f1"]) for c in candidates]
    ranking = sorted(scored, key=lambda s: (-s.macro_f1, len(s.candidate.members)))
    best = ranking[0]
    _compare_with(best, ranking, pooled, n_bootstrap, seed)
    within_reach = [s for s in ranking if len(s.candidate.members) < len(best.candidate.members)
                    and s.versus_chosen is not None and s.versus_chosen["low"] <= 0 <= s.versus_chosen["high"]]
    if not within_reach:
        simpler = any(len(s.candidate.members) < len(best.candidate.members) for s in ranking)
        reason = "the highest out-of-fold macro-F1" + (
            "; every candidate with fewer members is worse by a margin whose 95 % CI excludes 0" if simpler else "")
        return Choice(best, ranking, reason)
    chosen = min(within_reach, key=lambda s: (len(s.candidate.members), -s.macro_f1))
    gap = chosen.versus_chosen
    reason = (f"{best.candidate.name} has the highest macro-F1 ({best.macro_f1:.3f}), but the paired 95 % CI of "
              f"its advantage ({-gap['difference']:+.3f}, {-gap['high']:+.3f} to {-gap['low']:+.3f}) includes 0, "
              f"so the simpler candidate wins")
    _compare_with(chosen, ranking, pooled, n_bootstrap, seed)
    return Choice(chosen, ranking, reason)


def _compare_with(reference_candidate: Scored, ranking: list[Scored], pooled: PooledPredictions, n_bootstrap: int,
                  seed: int) -> None:
    """Set each candidate's paired difference to `reference_candidate` (the same seed: the same resamples)."""
    for scored in ranking:
        if scored is reference_candidate:
            scored.versus_chosen = None
            continue
        difference = paired_difference_intervals(pooled.reference, scored.candidate.probabilities,
                                                 reference_candidate.candidate.probabilities, pooled.patients,
                                                 n_bootstrap, seed)["macro_f1"]
        scored.versus_chosen = None if difference is None else {
            key: float(difference[key]) for key in ("difference", "low", "high")}


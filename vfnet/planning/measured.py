"""Replan a plan's epochs from a measured training speed (`vfnet_plan_and_preprocess --measure`).

The budget's throughput constant (budget.py) chose spacing, crop and network; the timings of this machine
(vfnet.training.throughput) then decide how many epochs fit the budget's minutes per fold, counting what the
constant leaves out: validation every `validation_every` epochs and the checkpoint + progress plot writes.
"""
import copy
from typing import Any

from vfnet.planning import training_rules
from vfnet.planning.budget import get_budget, training_views
from vfnet.planning.planner import MIN_EPOCHS, warmup_epochs


def epoch_seconds(training: dict[str, Any], validation_samples: int, measurement: dict[str, Any]) -> float:
    """Seconds of one epoch: its steps, its share of a validation, its share of the checkpoint writes."""
    steps = int(training["iterations_per_epoch"]) * float(measurement["step_seconds"])
    validation = validation_samples * float(measurement["validation_seconds_per_sample"]) / \
        max(1, int(training.get("validation_every", 1)))
    every = float(training.get("checkpoint_every_seconds", 0))
    share = 1.0 if every <= 0 else min(1.0, (steps + validation) / every)
    return steps + validation + share * float(measurement["checkpoint_and_plot_seconds"])


def replan_from_measurement(plans: dict[str, Any], measurement: dict[str, Any]) -> dict[str, Any]:
    """A copy of `plans` whose epochs (and the entries that follow from them) fit its budget at the measured speed."""
    plans = copy.deepcopy(plans)
    budget = get_budget(plans["budget"])
    training, estimates, reasons = plans["training"], plans["estimates"], plans["reasons"]
    iterations = int(training["iterations_per_epoch"])
    validation_samples = int(estimates.get("validation_vertebrae_per_fold",
                                           max(1, estimates.get("training_vertebrae_per_fold", 4) // 4)))
    seconds = epoch_seconds(training, validation_samples, measurement)
    epochs = int(min(budget.max_epochs, max(1, budget.minutes_per_fold * 60.0 // seconds)))
    views = training_views(training.get("supcon_weight", 0))
    effective = (float(measurement["samples_per_second"]) * views * 3 * float(estimates["gflops_per_sample"]))
    before = {"epochs": int(training["epochs"]), "minutes": estimates["training_minutes_per_fold"]}
    training["epochs"] = epochs
    training["warmup_epochs"] = warmup_epochs(epochs)
    training.update(training_rules.protection(epochs, iterations, reasons))
    estimates["training_minutes_per_fold"] = round(epochs * seconds / 60.0, 2)
    estimates["measured"] = {**measurement, "epoch_seconds": round(seconds, 4),
                             "effective_gflops": round(effective, 1),
                             "epochs_from_constant": before["epochs"], "minutes_from_constant": before["minutes"]}
    reasons["training.epochs"] = (
        f"Measured on this machine ({measurement['device_name']}): {1000 * measurement['step_seconds']:.1f} ms per "
        f"training step of {training['batch_size']} samples x {views} view(s) ({measurement['samples_per_second']:g} "
        f"samples/s, {effective:.0f} effective GFLOP/s against the {budget.effective_gflops:g} the {budget.name} "
        f"budget assumes), {1000 * measurement['validation_seconds_per_sample']:.2f} ms per validated vertebra "
        f"(~{validation_samples} every {training.get('validation_every', 1)} epoch(s)) and "
        f"{measurement['checkpoint_and_plot_seconds']:.2f} s per checkpoint_latest + progress.png write: one epoch of "
        f"{iterations} iterations takes ~{seconds:.2f} s, so {epochs} epochs fill the {budget.minutes_per_fold:g}-"
        f"minute {budget.name} budget per fold (at most {budget.max_epochs}); the constant alone had planned "
        f"{before['epochs']} epochs.")
    if epochs < MIN_EPOCHS:
        reasons["training.epochs"] += (
            f" Fewer than {MIN_EPOCHS} epochs fit at the measured speed: expect under-training; plan for a larger "
            f"budget (--budget gpu on a GPU machine) or coarsen preprocessing.target_spacing.")
    return plans

"""The training loop of one fold. It calls the small pieces in order and decides nothing the plan does not say:
data (data.py), balanced batches (sampler.py), augmentation, loss, schedule, checkpoints, validation, progress.
"""
import math
import os
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from vfnet.devices import choose_device
from vfnet.errors import PlanError, VfnetError
from vfnet.fileio import read_json, remove_stale_temporaries, write_json
from vfnet.model.card import write_training_card
from vfnet.model.checkpoint import capture_rng_state, check_network_plan, load_checkpoint, save_checkpoint
from vfnet.model.network import build_network
from vfnet.paths import fold_folder
from vfnet.planning.budget import training_views
from vfnet.progress_bars import progress_bar as new_progress_bar
from vfnet.training import distributed
from vfnet.training.augmentation import BatchAugmenter, drop_morphometry
from vfnet.evaluation.degenerate import single_grade_reason
from vfnet.training.batches import BatchSource
from vfnet.training.cadence import CheckpointClock, cadence_note, validation_due
from vfnet.training.centroid_input import CentroidInput
from vfnet.training.collapse import collapse_reason
from vfnet.training.data import SampleSet, load_fold
from vfnet.training.losses import ContrastiveClassificationLoss
from vfnet.training.mask_error_input import MaskErrorMorphometry
from vfnet.training.progress import ProgressWriter, empty_log
from vfnet.training.rng_streams import checkpoint_entries, gather_rng_states, restore_own_stream
from vfnet.training.sampler import BalancedBatchSampler
from vfnet.training.schedule import WarmupDecaySchedule
from vfnet.training.validation import evaluate, write_validation_outputs
from vfnet.training.weight_averaging import WeightAverage

DEFAULT_TRAINER = "vfnetTrainer"
ALL_DATA_NOTE = "training data (fold 'all' has no held-out cases: these numbers are optimistic)"


@dataclass
class TrainingRun:
    dataset_folder: Path          # $vfnet_preprocessed/DatasetXXX_Name
    output_folder: Path           # $vfnet_results/DatasetXXX_Name/<trainer>__<plans_name>
    plans: dict[str, Any]         # the effective plan (overrides applied)
    fold: int | str
    trainer_name: str = DEFAULT_TRAINER
    device: str = "cpu"          # cpu, cuda, mps or auto (resolved by train())
    resume: bool = False
    deterministic: bool = False
    compile: bool = False
    seed: int = 12345

    @property
    def fold_folder(self) -> Path:
        return fold_folder(self.output_folder, self.fold)


def resolve_device(name: str, rank: int) -> torch.device:
    name = choose_device(name)[0]
    if name == "cuda":
        if rank >= torch.cuda.device_count():
            raise VfnetError(f"--num_gpus asks for more processes than the {torch.cuda.device_count()} CUDA GPU(s) "
                             f"PyTorch sees; use --num_gpus {torch.cuda.device_count()}.")
        torch.cuda.set_device(rank)
        return torch.device("cuda", rank)
    return torch.device(name)


def build_optimizer(training: dict[str, Any], parameters) -> torch.optim.Optimizer:
    name = str(training.get("optimizer", "adamw")).lower()
    learning_rate, weight_decay = float(training["learning_rate"]), float(training.get("weight_decay", 0.0))
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(parameters, lr=learning_rate, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=learning_rate, weight_decay=weight_decay, momentum=0.99, nesterov=True)
    raise PlanError(f"The plan's optimizer '{name}' is not one of adamw, adam, sgd.")


def _seed(run: TrainingRun, rank: int, attempt: int = 0) -> int:
    """Seed every generator; a non-deterministic run still records its seed so --c continues its batches.
    A restarted attempt (collapse guard) of a deterministic run gets another, still reproducible, seed.
    Every DDP rank uses the main process's seed (the sampler deals one epoch out), offset by its rank."""
    seed = run.seed + 1000 * attempt if run.deterministic else int.from_bytes(os.urandom(4), "little")
    seed = distributed.broadcast_from_main(seed)
    random.seed(seed + rank)
    np.random.seed((seed + rank) % 2**32)
    torch.manual_seed(seed + rank)
    if run.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
    return seed


def mixed_precision(device: torch.device) -> tuple[torch.dtype | None, torch.amp.GradScaler]:
    """AMP only on CUDA (bf16 where supported, else fp16 with a scaler): bf16 on CPU measured ~40× slower."""
    if device.type != "cuda":
        return None, torch.amp.GradScaler("cpu", enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return dtype, torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)


def run_epoch(model: torch.nn.Module, batches: list[np.ndarray], source: BatchSource, augmenter: BatchAugmenter,
              loss_function: ContrastiveClassificationLoss, optimizer: torch.optim.Optimizer,
              schedule: WarmupDecaySchedule, scaler: torch.amp.GradScaler, amp_dtype: torch.dtype | None,
              device: torch.device, training: dict[str, Any], description: str,
              averager: WeightAverage | None = None, raw_model: torch.nn.Module | None = None,
              first_step: int = 0, show_progress: bool = True,
              centroid_input: CentroidInput | None = None,
              mask_error_input: MaskErrorMorphometry | None = None) -> dict[str, float]:
    """One epoch of optimisation steps; returns the mean loss terms."""
    model.train()
    # λ = 0: the second view would only feed SupCon, so it is not computed at all.
    view_count = training_views(loss_function.supcon_weight)
    detach = bool(training.get("detach_classifier", False))
    # Summed on the device and read once per epoch: reading a loss every step would stall a GPU's queue.
    totals = torch.zeros(3, device=device)
    progress_bar = new_progress_bar(batches, desc=description, unit="batch", leave=False,
                                    disable=not (show_progress and distributed.is_main_process()))
    morphometry_dropout = float(training.get("morphometry_dropout", 0.0))
    for step, indices in enumerate(progress_bar):
        images, grades, morphometry = source.gather(indices)
        if mask_error_input is not None and morphometry is not None:
            morphometry = mask_error_input(morphometry, indices)
        views = [centroid_input(images, morphometry, indices) if centroid_input is not None else (images, morphometry)
                 for _ in range(view_count)]
        inputs = torch.cat([augmenter(view_images) for view_images, _ in views])
        if morphometry is not None:
            morphometry = drop_morphometry(torch.cat([view_morphometry for _, view_morphometry in views]),
                                           morphometry_dropout)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            output = model(inputs, morphometry, detach_classifier=detach)
        losses = loss_function({key: value.float() for key, value in output.items()}, grades)
        scaler.scale(losses["loss"]).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(training.get("grad_clip", 12.0)))
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        if averager is not None:
            averager.update(raw_model if raw_model is not None else model, first_step + step)
        totals += torch.stack([losses[key].detach().float() for key in ("loss", "ce", "supcon")])
        if device.type == "cpu":
            progress_bar.set_postfix(loss=f"{float(totals[0]) / (step + 1):.3f}")
    means = (totals / max(1, len(batches))).tolist()
    return dict(zip(("train_loss", "train_ce", "train_supcon"), means))


def _write_self_description(run: TrainingRun) -> None:
    write_json(run.output_folder / "plans.json", run.plans)
    dataset_json = run.dataset_folder / "dataset.json"
    if dataset_json.is_file():
        write_json(run.output_folder / "dataset.json", read_json(dataset_json, "dataset.json"))
    write_training_card(run.output_folder, run.dataset_folder, run.plans)


class FoldCollapsed(Exception):
    """Raised inside an attempt whose training collapsed; train_fold restarts it with another seed."""


def train_fold(run: TrainingRun, rank: int = 0, world_size: int = 1) -> dict[str, Any] | None:
    """Train one fold; returns the final validation metrics on rank 0 (None on other ranks).

    A collapsed attempt (collapse.py) is restarted with a new seed, at most `training.collapse_restarts` times;
    the last attempt runs to the end unguarded and, if still degenerate, is flagged in metrics.json.
    """
    tries = 1 + int(run.plans["training"].get("collapse_restarts", 0))
    lines: list[str] = []
    attempt = 0
    while True:
        try:
            return _train_attempt(run, rank, world_size, attempt, tries, lines)
        except FoldCollapsed:
            attempt += 1
            if distributed.is_main_process():   # never resume or select from a collapsed attempt
                for name in ("checkpoint_latest.pth", "checkpoint_best.pth"):
                    (run.fold_folder / name).unlink(missing_ok=True)
            distributed.barrier()


def _train_attempt(run: TrainingRun, rank: int, world_size: int, attempt: int, tries: int,
                   lines: list[str]) -> dict[str, Any] | None:
    device = resolve_device(run.device, rank)
    seed = _seed(run, rank, attempt)
    training = run.plans["training"]
    train, val = load_fold(run.dataset_folder, run.plans, run.fold)
    raw_model = build_network(run.plans["network"]).to(device)
    optimizer = build_optimizer(training, raw_model.parameters())
    epochs, planned_iterations = int(training["epochs"]), int(training["iterations_per_epoch"])
    # The epoch's iterations are divided among the processes: an epoch is the same samples with N processes.
    iterations = -(-planned_iterations // world_size)
    schedule = WarmupDecaySchedule(optimizer, float(training["learning_rate"]), epochs * iterations,
                                   int(training.get("warmup_epochs", 0)) * iterations,
                                   str(training.get("lr_schedule", "cosine")))
    averaging = training.get("weight_averaging")
    averager = WeightAverage(raw_model, averaging["decay"], int(averaging["start_fraction"] * epochs * iterations)) \
        if averaging else None
    amp_dtype, scaler = mixed_precision(device)
    log, start_epoch, best_metric = empty_log(), 0, -math.inf
    log["lines"] = lines
    latest = run.fold_folder / "checkpoint_latest.pth"
    own_stream = True
    if run.resume and attempt == 0 and latest.is_file():
        payload = load_checkpoint(latest)
        check_network_plan(latest, payload, run.plans["network"])
        raw_model.load_state_dict(payload["network_weights"])
        optimizer.load_state_dict(payload["optimizer"])
        schedule.load_state_dict(payload["scheduler"])
        scaler.load_state_dict(payload["grad_scaler"])
        if averager is not None and payload.get("averaged_weights") is not None:
            averager.load_state_dict(payload["averaged_weights"])
        own_stream = restore_own_stream(payload, rank)
        log, start_epoch, best_metric, seed = payload["log"], payload["epoch"] + 1, payload["best_metric"], payload["seed"]
        attempt = int(payload.get("attempt", 0))
        lines[:] = log["lines"]
        log["lines"] = lines   # one list: a restart after this resume keeps the whole log
    guarded = attempt + 1 < tries
    check_epoch = max(1, math.ceil(float(training.get("collapse_check_fraction", 0.3)) * epochs))
    validation_every = int(training.get("validation_every", 1))
    clock = CheckpointClock(float(training.get("checkpoint_every_seconds", 0)))

    model: torch.nn.Module = raw_model
    if world_size > 1:
        # CE-only or detached runs leave the projection head or the encoder without gradients.
        unused = float(training.get("supcon_weight", 0)) == 0 or bool(training.get("detach_classifier", False))
        model = DistributedDataParallel(raw_model, device_ids=[device.index] if device.type == "cuda" else None,
                                        find_unused_parameters=unused)
    if run.compile:
        model = torch.compile(model)
    sampler = BalancedBatchSampler(train.grades, int(training["samples_per_grade"]), planned_iterations, seed,
                                   rank, world_size)
    source = BatchSource(train, device)
    augmenter = BatchAugmenter(training.get("augmentation", {}), run.plans["preprocessing"]["target_spacing"])
    centroid_input = CentroidInput.from_plan(train.properties, run.plans)
    mask_error_input = MaskErrorMorphometry.from_plan(train, run.plans)
    loss_function = ContrastiveClassificationLoss.from_plan(training).to(device)
    main = distributed.is_main_process()
    progress = ProgressWriter(run.fold_folder, log)
    evaluation_batch = int(training.get("batch_size", sampler.batch_size))

    def payload_for(epoch: int, weights: dict[str, Any], rng_states: list[dict[str, Any]] | None = None) -> dict:
        return {"trainer": run.trainer_name, "plans_name": run.plans.get("plans_name", ""), "fold": run.fold,
                "epoch": epoch, "network_plan": run.plans["network"], "preprocessing": run.plans["preprocessing"],
                "network_weights": weights, "optimizer": optimizer.state_dict(),
                "scheduler": schedule.state_dict(), "grad_scaler": scaler.state_dict(),
                **checkpoint_entries(rng_states or [capture_rng_state()]),
                "averaged_weights": averager.state_dict() if averager is not None else None,
                "log": log, "best_metric": best_metric, "seed": seed, "attempt": attempt}

    if main:
        remove_stale_temporaries(run.fold_folder)   # left by a run killed mid-write
        _write_self_description(run)
        progress.message(f"{'Resuming' if start_epoch else 'Starting'} fold {run.fold} at epoch {start_epoch} of "
                         f"{epochs} on {device}: {len(train)} training samples (grades {sampler.grades_present}, "
                         f"batch {sampler.batch_size}), {len(val) if val is not None else 0} validation samples, "
                         f"{world_size} process(es), seed {seed}" + (f", attempt {attempt + 1} of {tries}"
                                                                      if attempt else "") + ".")
        progress.message(f"{source.description}. " + (
            f"{planned_iterations} iterations per epoch divided among {world_size} processes: {iterations} each. "
            if world_size > 1 else "") + cadence_note(validation_every, clock.every_seconds))
        if "min_fraction_in_view" in training:
            examples = f" ({', '.join(train.left_out[:3])}{', ...' if len(train.left_out) > 3 else ''})"
            progress.message(f"Left out of training: {len(train.left_out)} vertebra(e) less than "
                             f"{training['min_fraction_in_view']:.0%} in the field of view (training."
                             f"min_fraction_in_view){examples if train.left_out else ''}.")
    if not own_stream:
        print(f"vfnet_train: rank {rank} has no random state in {latest} (saved with fewer processes); it continues "
              f"from a fresh seed.", file=sys.stderr)
    epoch, saved_epoch = start_epoch, start_epoch - 1
    last_validation = None  # the validation of the last epoch run here (the last epoch's plain weights)
    try:
        for epoch in range(start_epoch, epochs):
            started, learning_rate = time.perf_counter(), schedule.current_lr
            values = run_epoch(model, sampler.epoch_batches(epoch), source, augmenter, loss_function, optimizer,
                               schedule, scaler, amp_dtype, device, training, f"epoch {epoch + 1}/{epochs}",
                               averager, raw_model, epoch * iterations, centroid_input=centroid_input,
                               mask_error_input=mask_error_input)
            values = distributed.mean_over_processes(values, device)
            collapsed, write = None, False
            if main:
                values["learning_rate"] = learning_rate
                summary = ", ".join(f"{k} {v:.4f}" for k, v in values.items())
                improved = False
                last_validation = None
                due = validation_due(epoch, epochs, validation_every, check_epoch if guarded else None)
                if val is not None and due:
                    last_validation = evaluate(raw_model, val, evaluation_batch, device, training["ce_class_weights"])
                    metrics = last_validation["metrics"]
                    values.update({f"val_{key}": metrics[key] for key in ("loss", "macro_f1", "binary_roc_auc", "qwk")})
                    summary += f", val_loss {metrics['loss']:.4f}, val_macro_f1 {metrics['macro_f1']:.4f}"
                    improved = metrics["macro_f1"] > best_metric
                    best_metric = max(best_metric, metrics["macro_f1"])
                values["epoch_seconds"] = time.perf_counter() - started
                progress.record_epoch(values)
                if improved:
                    save_checkpoint(run.fold_folder / "checkpoint_best.pth", payload_for(epoch, raw_model.state_dict()))
                    summary += " (new best: optimistic for this fold, it was chosen on it)"
                write = clock.due(epoch + 1 == epochs)
                progress.message(f"epoch {epoch + 1}/{epochs} ({values['epoch_seconds']:.1f} s): {summary}")
                if guarded and epoch + 1 == check_epoch:
                    collapsed = collapse_reason(log["train_ce"], *_validation_outputs(last_validation, val),
                                                float(training.get("collapse_min_loss_drop", 0.05)))
            # Every process writes and restarts together: the main process's decisions are shared.
            shared = distributed.mean_over_processes({"collapsed": 1.0 if collapsed else 0.0,
                                                      "write": 1.0 if write else 0.0}, device)
            if shared["write"] > 0:
                rng_states = gather_rng_states()   # every rank's stream, so --c continues each of them
                if main:
                    save_checkpoint(latest, payload_for(epoch, raw_model.state_dict(), rng_states))
                    if epoch + 1 < epochs:   # the last epoch's curves are drawn by _finish
                        progress.plot()
                    clock.written()
                saved_epoch = epoch
            distributed.barrier()
            if shared["collapsed"] > 0:
                if main:
                    progress.message(f"COLLAPSE in fold {run.fold} after {epoch + 1} epochs: {collapsed}. "
                                     f"Restarting with a new seed (attempt {attempt + 2} of {tries}).")
                raise FoldCollapsed()
    except KeyboardInterrupt:
        if main:
            held = (f"checkpoint_latest holds epoch {saved_epoch + 1}" if saved_epoch >= 0 else
                    "no checkpoint_latest was written yet")
            progress.message(f"Interrupted during epoch {epoch + 1}; {held}. Resume with --c.")
        raise
    if not main:
        return None
    return _finish(run, raw_model, averager, train, val, last_validation, evaluation_batch, device, progress,
                   lambda weights: payload_for(epochs - 1, weights))


def _validation_outputs(result: dict[str, Any] | None, val: SampleSet | None) -> tuple:
    if result is None or val is None:
        return None, None
    return result["probabilities"], val.grades


def _finish(run: TrainingRun, raw_model: torch.nn.Module, averager: WeightAverage | None, train: SampleSet,
            val: SampleSet | None, last_validation: dict[str, Any] | None, evaluation_batch: int,
            device: torch.device, progress: ProgressWriter, payload_for) -> dict[str, Any]:
    """checkpoint_final (averaged weights when averaging ran) and the validation outputs of those weights."""
    training = run.plans["training"]
    final_network = averager.network if averager is not None and averager.started else raw_model
    save_checkpoint(run.fold_folder / "checkpoint_final.pth", payload_for(final_network.state_dict()))
    # The whole curve, whatever the checkpoint cadence and however often the run was resumed (a kill between
    # the last checkpoint_latest and its plot would otherwise leave no progress.json).
    progress.plot()
    samples, evaluated_on = (val, "validation fold") if val is not None else (train, ALL_DATA_NOTE)
    if final_network is raw_model and last_validation is not None:
        result = last_validation
    else:
        result = evaluate(final_network, samples, evaluation_batch, device, training["ce_class_weights"])
    metrics = result["metrics"]
    weights = "averaged weights (EMA)" if final_network is not raw_model else "last epoch's weights"
    metrics["final_weights"] = weights
    if final_network is not raw_model and last_validation is not None:
        # Kept beside the averaged weights' numbers: the paired comparison of EMA against the last epoch.
        metrics["last_epoch_weights"] = {key: last_validation["metrics"][key]
                                         for key in ("macro_f1", "qwk", "binary_roc_auc", "accuracy")}
    degenerate = single_grade_reason(result["probabilities"], samples.grades)
    if degenerate:
        metrics["degenerate"] = degenerate
        progress.message(f"WARNING: fold {run.fold} ended degenerate: {degenerate}. Retrain it (a new seed) "
                         f"before using it in an ensemble.")
    write_validation_outputs(run.fold_folder / "validation", samples, result, evaluated_on, "checkpoint_final")
    progress.message(f"Finished fold {run.fold}: final weights ({weights}) on the {evaluated_on}: macro-F1 "
                     f"{metrics['macro_f1']:.4f}, QWK {metrics['qwk']}" +
                     (f" (last epoch's weights: macro-F1 {metrics['last_epoch_weights']['macro_f1']:.4f})"
                      if "last_epoch_weights" in metrics else "") + ".")
    return metrics


def _worker(rank: int, world_size: int, port: int, run: TrainingRun) -> None:
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size) if run.device == "cpu" else 1)
    distributed.raise_malloc_thresholds()
    distributed.init_process_group(rank, world_size, port, "nccl" if run.device == "cuda" else "gloo")
    try:
        train_fold(run, rank, world_size)
    finally:
        torch.distributed.destroy_process_group()


def train(run: TrainingRun, num_processes: int = 1) -> None:
    """Train in this process, or in `num_processes` DistributedDataParallel processes (one per GPU)."""
    distributed.raise_malloc_thresholds()
    run = replace(run, device=choose_device(run.device)[0])   # 'auto' once, so every rank and the backend agree
    if num_processes <= 1:
        train_fold(run)
        return
    distributed.spawn(_worker, num_processes, (run,))

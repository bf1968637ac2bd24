"""Time the planned network's training on this machine, for `vfnet_plan_and_preprocess --measure`.

The planner's throughput constants are one machine's numbers. Here a few real training steps of the plan (the
trainer's own run_epoch: gathering, two augmented views, forward, backward, clipping, AdamW) run on random crops of
the planned shape, plus one validation pass and one checkpoint + progress plot write; planning/measured.py turns
the timings into epochs. About 5-10 s on a 2-core CPU for the cpu plan.
"""
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vfnet.model.checkpoint import save_checkpoint
from vfnet.model.network import build_network
from vfnet.training.augmentation import BatchAugmenter
from vfnet.training.batches import BatchSource
from vfnet.training.data import SampleSet
from vfnet.training.losses import ContrastiveClassificationLoss
from vfnet.training.progress import ProgressWriter, empty_log
from vfnet.training.sampler import BalancedBatchSampler
from vfnet.training.schedule import WarmupDecaySchedule
from vfnet.training.trainer import build_optimizer, mixed_precision, resolve_device, run_epoch

MIN_TIMED_SECONDS = 3.0   # timed steps run at least this long ...
MIN_TIMED_STEPS = 2       # ... and at least this many ...
MAX_TIMED_STEPS = 50      # ... and at most this many
WARMUP_STEPS = {"cpu": 1, "cuda": 3}   # cuDNN's autotuning runs in the first GPU steps


def random_samples(plans: dict[str, Any], count: int, seed: int = 0) -> SampleSet:
    """`count` random crops of the planned shape (CT noise, a box mask), grades cycling over those present."""
    preprocessing, network = plans["preprocessing"], plans["network"]
    rng = np.random.default_rng(seed)
    shape = [int(preprocessing["num_input_channels"]), *[int(n) for n in preprocessing["crop_size"]]]
    arrays = rng.standard_normal((count, *shape)).astype(np.float16)
    arrays[:, -1] = 0
    z, y, x = shape[1:]
    arrays[:, -1, z // 4:3 * z // 4, y // 4:3 * y // 4, x // 4:3 * x // 4] = 1
    present = [int(g) for g in plans.get("grades_present", [0, 1, 2, 3])]
    grades = np.array([present[i % len(present)] for i in range(count)], dtype=np.int64)
    features = len(network.get("morphometric_features", []))
    morphometry = np.zeros((count, 2 * features), np.float32) if features else None
    return SampleSet([f"random_{i}" for i in range(count)], [{} for _ in range(count)], arrays, grades, morphometry)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{_cpu_model()}, {torch.get_num_threads()} torch thread(s)"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} CPU"


def measure_training(plans: dict[str, Any], device_type: str) -> dict[str, Any]:
    """Seconds per training step, per validated vertebra and per checkpoint + plot write of `plans` here."""
    device = resolve_device(device_type, 0)
    training = plans["training"]
    samples = random_samples(plans, 2 * int(training["batch_size"]))
    model = build_network(plans["network"]).to(device)
    optimizer = build_optimizer(training, model.parameters())
    schedule = WarmupDecaySchedule(optimizer, float(training["learning_rate"]), 10**6, 0)
    amp_dtype, scaler = mixed_precision(device)
    source = BatchSource(samples, device)
    sampler = BalancedBatchSampler(samples.grades, int(training["samples_per_grade"]), 1, seed=0)
    augmenter = BatchAugmenter(training.get("augmentation", {}), plans["preprocessing"]["target_spacing"])
    loss_function = ContrastiveClassificationLoss.from_plan(training).to(device)

    def steps(count: int, first: int) -> None:
        batches = [sampler.epoch_batches(first + i)[0] for i in range(count)]
        run_epoch(model, batches, source, augmenter, loss_function, optimizer, schedule, scaler, amp_dtype, device,
                  training, "measuring", show_progress=False)
        _synchronize(device)

    steps(WARMUP_STEPS.get(device.type, 1), 0)
    timed, started = 0, time.perf_counter()
    while timed < MAX_TIMED_STEPS and (timed < MIN_TIMED_STEPS or time.perf_counter() - started < MIN_TIMED_SECONDS):
        steps(1, 1000 + timed)
        timed += 1
    step_seconds = (time.perf_counter() - started) / timed
    validation_seconds = _time_validation(model, samples, int(training["batch_size"]), device)
    writes_seconds = _time_writes(model, optimizer)
    batch = sampler.batch_size
    return {"device": device.type, "device_name": device_name(device), "steps_timed": timed,
            "step_seconds": round(step_seconds, 5), "samples_per_second": round(batch / step_seconds, 2),
            "validation_seconds_per_sample": round(validation_seconds, 6),
            "checkpoint_and_plot_seconds": round(writes_seconds, 4)}


def _time_validation(model: torch.nn.Module, samples: SampleSet, batch_size: int, device: torch.device) -> float:
    from vfnet.training.validation import predict_samples
    predict_samples(model, samples.arrays, batch_size, device, samples.morphometry)   # warm-up
    _synchronize(device)
    started = time.perf_counter()
    predict_samples(model, samples.arrays, batch_size, device, samples.morphometry)
    _synchronize(device)
    return (time.perf_counter() - started) / len(samples)


def _time_writes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> float:
    """One checkpoint_latest (weights, optimizer, EMA copy) and one progress plot, after a warm-up plot
    (matplotlib's import happens once per training, not per write)."""
    with tempfile.TemporaryDirectory() as folder:
        log = empty_log()
        for name in ("train_loss", "train_ce", "train_supcon", "val_loss", "val_macro_f1", "learning_rate",
                     "epoch_seconds"):
            log[name] = [1.0 / (epoch + 1) for epoch in range(20)]
        writer = ProgressWriter(Path(folder), log)
        writer.plot()
        started = time.perf_counter()
        weights = {key: value.detach().cpu() for key, value in model.state_dict().items()}
        save_checkpoint(Path(folder) / "checkpoint.pth", {"network_weights": weights, "averaged_weights": weights,
                                                          "optimizer": optimizer.state_dict()})
        writer.plot()
        return time.perf_counter() - started

"""Compute budgets: how much training one fold may cost, and what the hardware delivers.

The effective throughput constants turn the analytic FLOPs of a plan into minutes. CPU: 54 GFLOP/s is what whole
training epochs of the cpu plan (32x56x48 crop, widths 16-128, one view; gathering, augmentation, forward +
backward, AdamW, weight averaging, validation) ran at on this project's 2-core machine when otherwise idle: 8.4-9.5 s
per epoch of ~224 vertebrae, 25-epoch folds of 222-253 s where 40 GFLOP/s had estimated 322 s (issue 10 logs,
2026-11-28; documentation/benchmarks.md). The earlier 40 was measured on the two-view plan before the augmentation
and sampling got faster; the 75 before it, from a single timed step without augmentation, planned 34 epochs that took
10 minutes per fold instead of 5.5. The demo's narrow network (widths 8-64) runs at 25-32 GFLOP/s (its
`--measure` timings), so its budget keeps 40 for choosing its grid and takes its epochs from the measurement.
`--measure` replaces the constant by this machine's timings (planning/measured.py). On 2026-12-07 the 2-core
machine was an Intel Xeon on which the same plan ran at 155 effective GFLOP/s (25-epoch folds of 88-90 s, estimated
3.98 min): the constant keeps the plan, and its accuracy, the same on every machine; `--measure` estimates the
machine at hand (3.99 min estimated, 4.0-4.2 measured for the 76 epochs it planned there before max_epochs).
GPU: a conservative figure for an ~8 GB card running the same small 3D convolutions with mixed precision. The plan
records the constant it used.
"""
from dataclasses import dataclass

from vfnet.errors import PlanError

CPU_EFFECTIVE_GFLOPS = 54.0
DEMO_EFFECTIVE_GFLOPS = 40.0
GPU_EFFECTIVE_GFLOPS = 1500.0


def training_views(supcon_weight: float) -> int:
    """Augmented views per sample and step: SupCon contrasts two views of every sample, CE alone needs one."""
    return 2 if float(supcon_weight) > 0 else 1


@dataclass(frozen=True)
class Budget:
    name: str
    minutes_per_fold: float       # training time one fold may take
    effective_gflops: float       # sustained training throughput (forward + backward FLOPs per second / 1e9)
    stem_channels: int
    max_channels: int
    samples_per_grade: int        # k: SupCon positives per grade and batch
    max_crop_voxels: int          # per axis; bounds activation memory
    max_epochs: int
    projection_dim: int
    supcon: bool                        # train with the supervised contrastive term (planner._loss_weights says why)
    validation_every: int = 1           # epochs between validations (always also the last epoch)
    checkpoint_every_seconds: float = 0.0   # checkpoint_latest + progress.png at most this often (0: every epoch)
    why_minutes: str = ""               # the measurement behind minutes_per_fold: the plan's reasons["budget"]


BUDGETS = {
    # Five folds of the ~280-vertebra benchmark within 30 minutes on 2 CPU cores (issue 10) would allow 5.5 minutes
    # per fold; what more than 4 bought was measured and did not pay (why_minutes).
    # At most 34 epochs: more measured worse, not better (76 epochs, what --measure gave the 4 minutes on a faster
    # CPU: macro-F1 0.746 against 0.813 at 25, paired -0.067 [-0.143, +0.004]; documentation/benchmarks.md, tenth
    # session), so a fast machine's measured plan stops where the accuracy measurements do.
    "cpu": Budget("cpu", minutes_per_fold=4.0, effective_gflops=CPU_EFFECTIVE_GFLOPS, stem_channels=16,
                  max_channels=128, samples_per_grade=4, max_crop_voxels=64, max_epochs=34, projection_dim=128,
                  supcon=False,
                  # checkpoint_latest + progress.png took 1.7 s of each ~19 s epoch (training/throughput.py).
                  checkpoint_every_seconds=60.0,
                  why_minutes=(
                      "Not the 5.5 that five folds of the phantom benchmark could take within 30 minutes: "
                      "spending them measured no better there (documentation/benchmarks.md, eighth "
                      "session; five folds, paired against this plan): 34 epochs on the same grid macro-F1 0.812 vs "
                      "0.813 (-0.002 [-0.035, +0.037]), 25 epochs on a 1.36 mm grid 0.812, and both lower with masks "
                      "eroded by two voxels (0.764 / 0.769 vs 0.786).")),
    "gpu": Budget("gpu", minutes_per_fold=30.0, effective_gflops=GPU_EFFECTIVE_GFLOPS, stem_channels=32,
                  max_channels=320, samples_per_grade=8, max_crop_voxels=128, max_epochs=300, projection_dim=128,
                  supcon=True,
                  # An epoch of the benchmark's gpu plan is ~1 s on an H200 (issue 12): validating, plotting and
                  # writing checkpoints after each one cost more than the epoch.
                  validation_every=5, checkpoint_every_seconds=60.0),
    # vfnet_demo: its whole run (generate, plan, five folds, predict) within 10 minutes on 2 CPU cores; a
    # narrower network, planned with --measure because small networks reach fewer FLOP/s than the cpu plan's.
    # 0.8 min: with one view (no SupCon) the plan takes a finer grid and 24 epochs; at 1.1 min its folds ran
    # 87-115 s instead of the 66 s measured beforehand on a shared machine, and the demo took 9 min 16 s.
    "demo": Budget("demo", minutes_per_fold=0.8, effective_gflops=DEMO_EFFECTIVE_GFLOPS, stem_channels=8,
                   max_channels=64, samples_per_grade=4, max_crop_voxels=64, max_epochs=100, projection_dim=64,
                   supcon=False,
                   checkpoint_every_seconds=60.0),
}


def get_budget(name: str) -> Budget:
    if name not in BUDGETS:
        raise PlanError(f"Unknown compute budget '{name}'; choose one of {', '.join(BUDGETS)}.")
    return BUDGETS[name]

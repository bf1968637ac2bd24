"""Training throughput: vfnet's planned network vs MONAI DenseNet121 (3D) at the same crop and batch, one full
training step each (augmentation, forward, backward, clipping, AdamW step; two views when SupCon is on, exactly
as vfnet's trainer does), plus achieved GFLOP/s against this machine's matmul GFLOP/s.

    python benchmarks/bench_training_speed.py [--phantom ../shared/data/phantom_verse] [--steps 6] [--threads 2]

The plan comes from the converted phantom (vfnet_plan_and_preprocess), or from --plans if given.
"""
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (DEFAULT_PHANTOM, base_parser, convert_phantom, machine, median, run_checked, vfnet_env,
                    write_result)

from vfnet.planning.network_plan import forward_flops
from vfnet.planning.plans import load_plans
from vfnet.training.augmentation import BatchAugmenter
from vfnet.training.distributed import raise_malloc_thresholds
from vfnet.training.losses import ContrastiveClassificationLoss
from vfnet.model.network import build_network

DATASET_ID = 502


def planned(args, workdir: Path) -> dict:
    if args.plans:
        return load_plans(args.plans)
    env = vfnet_env(workdir)
    raw = convert_phantom(args.phantom, workdir, DATASET_ID)
    print("Planning the converted phantom (vfnet_plan_experiment needs the fingerprint first) ...")
    run_checked(["vfnet_extract_fingerprint", "-d", str(DATASET_ID)], env)
    run_checked(["vfnet_plan_experiment", "-d", str(DATASET_ID)], env)
    return load_plans(Path(env["vfnet_preprocessed"]) / raw.name / "vfnetPlans.json")


class DenseNetAdapter(torch.nn.Module):
    """MONAI's DenseNet121 returning vfnet's output dict, so the same loss and step code drive both."""

    def __init__(self, in_channels: int):
        super().__init__()
        from monai.networks.nets import DenseNet121
        self.net = DenseNet121(spatial_dims=3, in_channels=in_channels, out_channels=4)

    def forward(self, x: torch.Tensor, detach_classifier: bool = False) -> dict:
        logits = self.net(x)
        return {"logits": logits, "features": logits, "embedding": torch.nn.functional.normalize(logits, dim=1)}


def flops_of_step(model: torch.nn.Module, inputs: torch.Tensor, loss_function, grades: torch.Tensor) -> float:
    """Forward + backward FLOPs of one step, counted by torch (convolutions and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        loss_function(model(inputs), grades)["loss"].backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def time_steps(model, plans: dict, batch_size: int, views: int, steps: int, warmup: int) -> dict:
    """Median seconds of a full training step and of its augmentation part."""
    preprocessing, training = plans["preprocessing"], plans["training"]
    shape = (batch_size, int(preprocessing["num_input_channels"]), *preprocessing["crop_size"])
    images = torch.randn(shape)
    images[:, -1] = (images[:, -1] > 0).float()  # a binary mask channel, as stored
    grades = torch.arange(batch_size) % 4
    augmenter = BatchAugmenter(training.get("augmentation", {}), preprocessing["target_spacing"])
    supcon = float(training.get("supcon_weight", 0.0)) if views == 2 else 0.0
    loss_function = ContrastiveClassificationLoss(training["ce_class_weights"], supcon,
                                                  training.get("supcon_temperature", 0.1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    step_seconds, augment_seconds = [], []
    for step in range(warmup + steps):
        started = time.perf_counter()
        inputs = torch.cat([augmenter(images) for _ in range(views)])
        augmented = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        losses = loss_function(model(inputs), grades)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 12.0)
        optimizer.step()
        if step >= warmup:
            step_seconds.append(time.perf_counter() - started)
            augment_seconds.append(augmented - started)
        print(f"    step {step + 1}/{warmup + steps}: {time.perf_counter() - started:.3f} s", flush=True)
    counted = flops_of_step(model, torch.cat([images] * views), loss_function, grades.repeat(views)) \
        if views == 2 else flops_of_step(model, images, loss_function, grades)
    step = median(step_seconds)
    return {"step_s_median": step, "step_s_all": [round(s, 4) for s in step_seconds],
            "augmentation_s_median": median(augment_seconds),
            "samples_per_s": round(batch_size / step, 3),  # vertebrae per second (each seen in `views` views)
            "network_passes_per_s": round(batch_size * views / step, 3),
            "counted_gflop_per_step": round(counted / 1e9, 3),
            "achieved_gflops_whole_step": round(counted / 1e9 / step, 2),
            "achieved_gflops_network_only": round(counted / 1e9 / (step - median(augment_seconds)), 2),
            "parameters": sum(p.numel() for p in model.parameters())}


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - started)
    return round(2 * size ** 3 / median(times) / 1e9, 2)


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--phantom", type=Path, default=DEFAULT_PHANTOM)
    parser.add_argument("--plans", type=Path, default=None, help="use this plans file instead of planning")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per network (median reported)")
    parser.add_argument("--densenet-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-densenet", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    raise_malloc_thresholds()  # as vfnet_train does at start-up
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="vfnet_bench_train_"))
    plans = planned(args, workdir)
    training, preprocessing = plans["training"], plans["preprocessing"]
    batch = int(training["batch_size"])
    views = 2 if float(training.get("supcon_weight", 0)) > 0 else 1
    torch.manual_seed(0)
    result = {"machine": machine(), "crop_size": preprocessing["crop_size"], "batch_size": batch, "views": views,
              "network_plan": plans["network"]}
    print("matmul GFLOP/s (2048² torch.mm) ...")
    result["matmul_gflops_before"] = matmul_gflops()
    planned_flops = forward_flops(plans["network"], preprocessing["crop_size"])
    result["planner_gflop_forward_per_sample"] = round(planned_flops / 1e9, 4)
    print(f"vfnet planned network, batch {batch} x {views} views at {preprocessing['crop_size']} ...")
    result["vfnet"] = time_steps(build_network(plans["network"]), plans, batch, views, args.steps, 2)
    # The planner's cost model (planner._fit_budget) charges batch x 3 x forward FLOPs per step and ignores the
    # second SupCon view; the constant that makes its estimate match this measured step is therefore:
    result["vfnet"]["effective_gflops_planner_model"] = round(
        3 * planned_flops * batch / 1e9 / result["vfnet"]["step_s_median"], 2)
    print("vfnet, CE only (one view) ...")
    result["vfnet_ce_only"] = time_steps(build_network(plans["network"]), plans, batch, 1, args.steps, 1)
    if not args.skip_densenet:
        print(f"MONAI DenseNet121 (3D), same crop, batch and views ...")
        result["densenet121"] = time_steps(DenseNetAdapter(int(preprocessing["num_input_channels"])), plans, batch,
                                           views, args.densenet_steps, 1)
        result["speedup_vs_densenet121"] = round(result["vfnet"]["samples_per_s"] /
                                                 result["densenet121"]["samples_per_s"], 2)
    result["matmul_gflops_after"] = matmul_gflops()
    machine_gflops = max(result["matmul_gflops_before"], result["matmul_gflops_after"])
    result["fraction_of_matmul_whole_step"] = round(result["vfnet"]["achieved_gflops_whole_step"] / machine_gflops, 3)
    result["fraction_of_matmul_network_only"] = round(
        result["vfnet"]["achieved_gflops_network_only"] / machine_gflops, 3)
    result["planner_constant_in_use"] = plans.get("estimates", {}).get("effective_gflops_assumed")
    write_result(args.results, "training_speed", result)
    print(json.dumps({k: v for k, v in result.items() if k.startswith(("speedup", "fraction", "matmul"))}, indent=1))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

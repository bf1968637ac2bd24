"""The GPU check of issue 12, run by benchmarks/gpu_check.sh on a GPU machine from a carried archive of
preprocessed crops (no SimpleITK, no raw data there). Writes gpu_check.json after every phase, so a run cut short
still leaves what it measured:

1. device: name, memory, torch / CUDA versions;
2. network alone: forward + backward + AdamW of the plan's network on random inputs (bf16 autocast), in network
   inputs (sample-views) per second, at the trainer's step size (batch x views);
3. cost model: vfnet.training.throughput (what `vfnet_plan_and_preprocess --measure` runs) and the fold minutes it
   and the budget constant predict;
4. one fold alone (vfnet_train, a short run): in-trainer sample-views/s from the epochs' own timings, and the GPU
   utilisation sampled by nvidia-smi;
5. five folds side by side on the one GPU (`vfnet_train -f 0 1 2 3 4`: a process per fold), with as many epochs
   as fit the time left (the plan's, or fewer: recorded; `FIVE_FOLD_EPOCHS` forces a number), wall time and
   utilisation;
6. the pooled out-of-fold macro-F1 of those five folds.
"""
import argparse
import csv
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vfnet.evaluation.metrics import classification_metrics  # noqa: E402
from vfnet.model.network import build_network  # noqa: E402
from vfnet.paths import fold_folder, model_folder  # noqa: E402
from vfnet.planning.budget import training_views  # noqa: E402
from vfnet.planning.measured import epoch_seconds  # noqa: E402
from vfnet.planning.plans import load_plans, morphometric_features  # noqa: E402
from vfnet.training.losses import ContrastiveClassificationLoss  # noqa: E402
from vfnet.training.throughput import measure_training  # noqa: E402

FOLDS = 5
SAFETY_SECONDS = 25        # kept free at the end for the summary and for process start-up jitter
SINGLE_FOLD_EPOCHS = 30    # the short single-fold run that measures in-trainer throughput
FOLD_THREADS = "3"         # CPU threads per training process (16 cores, 5 processes); vfnet_train sets the same


class Report:
    def __init__(self, path: Path):
        self.path = path
        self.data = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                     "commit": _git_commit(), "phases_done": []}

    def record(self, phase: str, values: dict) -> None:
        self.data[phase] = values
        self.data["phases_done"].append(phase)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.data, indent=2))
        temporary.replace(self.path)
        print(f"[gpu_check] {phase}: {json.dumps(values)[:400]}", flush=True)


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


class UtilisationSampler:
    """nvidia-smi utilisation samples (every 200 ms) while a phase runs; None where nvidia-smi is missing."""

    def __init__(self, path: Path):
        self.path = path
        self.process = None

    def __enter__(self):
        try:
            self.handle = open(self.path, "w")
            self.process = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                                             "--format=csv,noheader,nounits", "-lms", "200"],
                                            stdout=self.handle, stderr=subprocess.DEVNULL)
        except OSError:
            self.process = None
        return self

    def __exit__(self, *exc):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.handle.close()

    def summary(self) -> dict | None:
        rows = []
        for line in self.path.read_text().splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 2 and all(p.replace(".", "").isdigit() for p in parts):
                rows.append((float(parts[0]), float(parts[1])))
        if not rows:
            return None
        utilisation = [u for u, _ in rows]
        return {"samples": len(rows), "mean_percent": round(statistics.mean(utilisation), 1),
                "median_percent": statistics.median(utilisation), "max_memory_mib": max(m for _, m in rows)}


def device_info(device: str) -> dict:
    if device != "cuda":
        return {"name": f"{device} (dry run of the script, no GPU numbers)", "torch": torch.__version__,
                "host_cpus": os.cpu_count()}
    properties = torch.cuda.get_device_properties(0)
    return {"name": torch.cuda.get_device_name(0), "memory_gib": round(properties.total_memory / 2**30, 1),
            "device_count": torch.cuda.device_count(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "bf16": torch.cuda.is_bf16_supported(),
            "host_cpus": os.cpu_count()}


def network_alone(plans: dict, device: str, steps: int = 30, warmup: int = 8) -> dict:
    """Sample-views/s of forward + backward + AdamW alone, at the trainer's step (batch x views), bf16."""
    torch.backends.cudnn.benchmark = True
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    training, preprocessing = plans["training"], plans["preprocessing"]
    views = training_views(training.get("supcon_weight", 0))
    batch = int(training["batch_size"])
    model = build_network(plans["network"]).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_function = ContrastiveClassificationLoss.from_plan(training).to(device)
    inputs = torch.randn(batch * views, int(preprocessing["num_input_channels"]),
                         *preprocessing["crop_size"], device=device)
    grades = (torch.arange(batch, device=device) % 4)
    features = len(morphometric_features(plans))
    morphometry = torch.zeros(batch * views, 2 * features, device=device) if features else None
    dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if device == "cuda" else None

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
            output = model(inputs, morphometry)
        loss_function({k: v.float() for k, v in output.items()}, grades)["loss"].backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize()
    seconds = (time.perf_counter() - started) / steps
    return {"batch": batch, "views": views, "step_ms": round(1000 * seconds, 2),
            "sample_views_per_second": round(batch * views / seconds, 1), "autocast": str(dtype)}


def train_command(dataset: str, plans_name: str, trainer: str, folds: list[int], epochs: int,
                  device: str) -> list[str]:
    """vfnet_train itself: several folds run side by side on the GPU, a process each (vfnet/cli/parallel_folds.py)."""
    return [sys.executable, "-m", "vfnet.cli.train", "-d", dataset, "-f", *map(str, folds), "-p", plans_name,
            "-tr", trainer, "-device", device, "--epochs", str(epochs)]


def keep_logs(model: Path, folds: list[int], target: Path) -> None:
    """The folds' training_log.txt and console.log, out of the temporary results folder."""
    target.mkdir(parents=True, exist_ok=True)
    for fold in folds:
        for name in ("training_log.txt", "console.log"):
            source = fold_folder(model, fold) / name
            if source.is_file():
                (target / f"fold_{fold}_{name}").write_text(source.read_text())


def run_training(command: list[str], log: Path, timeout: float) -> tuple[float, int]:
    """Wall seconds and exit code of one vfnet_train command (its whole process group killed at `timeout`)."""
    env = dict(os.environ, OMP_NUM_THREADS=FOLD_THREADS)
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log, "w") as handle:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            code = process.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)   # the fold processes it started too
            process.wait()
            code = -9
    return time.perf_counter() - started, code


def epoch_timings(folder: Path) -> list[float]:
    progress = folder / "progress.json"
    return json.loads(progress.read_text()).get("epoch_seconds", []) if progress.is_file() else []


def pooled_macro_f1(model: Path) -> dict:
    references, probabilities = [], []
    for fold in range(FOLDS):
        with open(fold_folder(model, fold) / "validation" / "predictions.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                references.append(int(row["reference"]))
                probabilities.append([float(row[f"p{g}"]) for g in range(4)])
    metrics = classification_metrics(np.array(references), np.array(probabilities))
    return {"n": metrics["n"], "macro_f1": round(metrics["macro_f1"], 4), "qwk": metrics["qwk"],
            "binary_roc_auc": metrics["binary_roc_auc"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="DatasetXXX_Name inside $vfnet_preprocessed")
    parser.add_argument("--plans", default="vfnetPlans_gpu")
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json and the logs")
    parser.add_argument("--seconds", type=float, default=270, help="time this script may take in all")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                        help="cpu: a dry run of the script itself on a tiny dataset (no GPU numbers)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps of the network-alone measurement")
    args = parser.parse_args()
    deadline = time.perf_counter() + args.seconds
    report = Report(args.out / "gpu_check.json")
    if args.device == "cuda" and not torch.cuda.is_available():
        report.record("error", {"message": "PyTorch sees no CUDA GPU"})
        return 1
    preprocessed = Path(os.environ["vfnet_preprocessed"]) / args.dataset
    plans = load_plans(preprocessed / f"{args.plans}.json")
    training = plans["training"]
    views = training_views(training.get("supcon_weight", 0))
    per_epoch = int(training["iterations_per_epoch"]) * int(training["batch_size"]) * views
    report.record("device", device_info(args.device))
    report.record("plan", {"plans": args.plans, "budget": plans.get("budget"),
                           "crop_size": plans["preprocessing"]["crop_size"],
                           "stage_channels": plans["network"]["stage_channels"], "epochs": training["epochs"],
                           "iterations_per_epoch": training["iterations_per_epoch"],
                           "batch_size": training["batch_size"], "views": views,
                           "validation_every": training.get("validation_every", 1),
                           "checkpoint_every_seconds": training.get("checkpoint_every_seconds", 0),
                           "estimated_minutes_per_fold_from_constant":
                               plans.get("estimates", {}).get("training_minutes_per_fold")})

    alone = network_alone(plans, args.device, args.steps, warmup=min(8, args.steps))
    report.record("network_alone", alone)

    measured = measure_training(plans, args.device)
    validation_samples = int(plans.get("estimates", {}).get("validation_vertebrae_per_fold", 56))
    estimated_epoch = epoch_seconds(training, validation_samples, measured)
    minutes = estimated_epoch * int(training["epochs"]) / 60
    report.record("cost_model", {**measured, "estimated_epoch_seconds": round(estimated_epoch, 4),
                                 "estimated_minutes_per_fold": round(minutes, 2)})

    if args.device == "cuda":
        torch.cuda.empty_cache()   # the training processes below need the memory, not this one
    results = Path(os.environ["vfnet_results"])
    single_epochs = min(SINGLE_FOLD_EPOCHS, int(training["epochs"]))
    single_model = model_folder(args.dataset, "gpuCheckSingle", args.plans, results)
    with UtilisationSampler(args.out / "nvidia_smi_single.csv") as sampler:
        wall, code = run_training(train_command(args.dataset, args.plans, "gpuCheckSingle", [0], single_epochs,
                                                args.device),
                                  args.out / "logs_single" / "vfnet_train.log",
                                  deadline - time.perf_counter() - SAFETY_SECONDS)
    keep_logs(single_model, [0], args.out / "logs_single")
    timings = epoch_timings(fold_folder(single_model, 0))
    steady = timings[2:] or timings
    epoch_median = statistics.median(steady) if steady else None
    report.record("single_fold", {
        "epochs": single_epochs, "exit_code": code, "wall_seconds": round(wall, 1),
        "seconds_outside_epochs": round(wall - sum(timings), 1),
        "median_epoch_seconds": None if epoch_median is None else round(epoch_median, 4),
        "mean_epoch_seconds_with_validations": round(statistics.mean(steady), 4) if steady else None,
        "in_trainer_sample_views_per_second": None if not epoch_median else round(per_epoch / epoch_median, 1),
        "fraction_of_network_alone": None if not epoch_median else
        round(per_epoch / epoch_median / alone["sample_views_per_second"], 3),
        "extrapolated_minutes_for_plan_epochs": None if epoch_median is None else
        round(epoch_median * int(training["epochs"]) / 60, 2),
        "gpu_utilisation": sampler.summary()})

    # As many epochs as fit the time left if the five folds shared the GPU with no gain at all (5x one fold),
    # after the start-up and final evaluation one fold spent outside its epochs.
    left = deadline - time.perf_counter() - SAFETY_SECONDS
    epochs = int(training["epochs"])
    if os.environ.get("FIVE_FOLD_EPOCHS"):
        epochs = int(os.environ["FIVE_FOLD_EPOCHS"])
    elif epoch_median:
        outside_epochs = max(0.0, wall - sum(timings))
        epochs = max(1, min(epochs, int((left - outside_epochs) / (FOLDS * epoch_median * 1.15))))
    five_model = model_folder(args.dataset, "gpuCheck", args.plans, results)
    with UtilisationSampler(args.out / "nvidia_smi_five.csv") as sampler:
        command = train_command(args.dataset, args.plans, "gpuCheck", list(range(FOLDS)), epochs, args.device)
        wall, code = run_training(command, args.out / "logs_five" / "vfnet_train.log", left)
    keep_logs(five_model, list(range(FOLDS)), args.out / "logs_five")
    report.record("five_folds", {"command": " ".join(command[1:]), "epochs": epochs,
                                 "plan_epochs": int(training["epochs"]),
                                 "epochs_reduced_to_fit": epochs < int(training["epochs"]), "exit_code": code,
                                 "wall_seconds": round(wall, 1),
                                 "wall_seconds_per_epoch": round(wall / epochs, 3),
                                 "gpu_utilisation": sampler.summary()})
    if code == 0:
        report.record("cross_validation", {"epochs": epochs, **pooled_macro_f1(five_model)})
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

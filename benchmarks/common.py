"""Helpers shared by the benchmark scripts: command-line defaults, isolated vfnet folders, timed subprocesses
with process-tree peak memory, and JSON results. Benchmarks only; nothing here is imported by vfnet."""
import argparse
import datetime
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PHANTOM = REPO_ROOT.parent / "shared" / "data" / "phantom_verse"
DEFAULT_RESULTS = REPO_ROOT / "benchmarks" / "results"
CONVERTER = REPO_ROOT / "dataset_conversion" / "convert_verse.py"


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="folder for the JSON results")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="scratch folder for raw/preprocessed/results datasets (default: a temp folder)")
    return parser


def machine() -> dict[str, Any]:
    """What a reader needs to judge a number: when, where, how many cores, which libraries."""
    import torch
    return {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "host_cpus": os.cpu_count(), "cpu": _cpu_model(), "gpu": "none (CPU only)",
            "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "load_average_at_start": os.getloadavg(),
            "note": "2-core machine shared with other engineers running tests; ratios are measured back to back"}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def vfnet_env(workdir: Path) -> dict[str, str]:
    """Environment with vfnet's three folders (and nnU-Net's) inside `workdir`."""
    env = dict(os.environ)
    for name in ("vfnet_raw", "vfnet_preprocessed", "vfnet_results", "nnUNet_raw", "nnUNet_preprocessed",
                 "nnUNet_results"):
        folder = workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        env[name] = str(folder)
    return env


def convert_phantom(phantom: Path, workdir: Path, dataset_id: int, name: str = "Phantom") -> Path:
    """Convert the VerSe-layout phantom with vfnet's converter; returns the raw dataset folder."""
    grades = next((p for p in (phantom / "fracture_grading.csv", phantom / "fracture_grading.xlsx") if p.is_file()),
                  None)
    if grades is None:
        sys.exit(f"No fracture_grading.csv/.xlsx in {phantom}.")
    env = vfnet_env(workdir)
    run_checked([sys.executable, str(CONVERTER), "-i", str(phantom), "-g", str(grades), "-d", str(dataset_id),
                 "-n", name, "--overwrite"], env)
    return Path(env["vfnet_raw"]) / f"Dataset{dataset_id:03d}_{name}"


def run_checked(command: Sequence[str], env: dict[str, str], quiet: bool = True) -> None:
    result = subprocess.run(list(command), env=env, capture_output=quiet, text=True)
    if result.returncode != 0:
        sys.exit(f"Command failed ({result.returncode}): {' '.join(command)}\n{result.stdout}\n{result.stderr}")


def _tree_rss_bytes(root: int) -> int:
    """Sum of the resident memory of `root` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def timed_run(command: Sequence[str], env: dict[str, str], log: Path | None = None) -> dict[str, Any]:
    """Run a command; wall time, peak summed RSS of its process tree (sampled every 50 ms) and the peak RSS of
    its largest single process (getrusage of the waited children, exact)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = open(log, "w") if log else subprocess.DEVNULL
    started = time.perf_counter()
    process = subprocess.Popen(list(command), env=env, stdout=out, stderr=subprocess.STDOUT)
    peak = [0]

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], _tree_rss_bytes(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = process.wait()
    wall = time.perf_counter() - started
    sampler.join()
    if log:
        out.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if code != 0:
        tail = log.read_text()[-3000:] if log else ""
        sys.exit(f"Command failed ({code}): {' '.join(command)}\n{tail}")
    # ru_maxrss of children is a running maximum over every child so far: only a rise is attributable here.
    return {"command": " ".join(command), "wall_s": round(wall, 3), "peak_tree_rss_mb": round(peak[0] / 2**20, 1),
            "peak_single_process_rss_mb": round(after / 1024, 1) if after > before else None}


def median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 4)


def write_result(results: Path, name: str, payload: dict[str, Any]) -> Path:
    """Results are written atomically with vfnet's own helper, like every other file."""
    from vfnet.fileio import write_json

    path = results / f"{name}.json"
    write_json(path, payload)
    print(f"Wrote {path}")
    return path


def metrics_with_intervals(reference, probabilities, patients, bootstrap: int = 1000) -> dict[str, Any]:
    """vfnet's classification metrics plus patient-level bootstrap 95 % CIs under "ci95"."""
    import numpy as np

    from vfnet.evaluation.bootstrap import bootstrap_intervals
    from vfnet.evaluation.metrics import classification_metrics

    reference, probabilities = np.asarray(reference), np.asarray(probabilities)
    metrics = classification_metrics(reference, probabilities)
    metrics["ci95"] = bootstrap_intervals(reference, probabilities, groups=list(patients), n=bootstrap, seed=0)
    return metrics


def summary_line(name: str, metrics: dict[str, Any]) -> str:
    low, high = metrics["ci95"]["macro_f1"]
    return (f"{name}: macro-F1 {metrics['macro_f1']:.3f} [{low:.2f}, {high:.2f}], QWK {metrics['qwk']:.3f}, "
            f"sens {metrics['binary_sensitivity']:.3f}, spec {metrics['binary_specificity']:.3f}")

"""Preprocessing speed and memory: vfnet_plan_and_preprocess vs nnUNetv2_plan_and_preprocess -c 3d_fullres on the
same converted raw folder, plus vfnet's scaling with the number of cases (10/20/40) and with -np 1 vs -np 2.

    python benchmarks/bench_preprocessing.py [--phantom ../shared/data/phantom_verse] [--repeats 3] [--skip-nnunet]
"""
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_PHANTOM, base_parser, convert_phantom, machine, median, timed_run, vfnet_env, write_result

DATASET_ID = 501


def subset_dataset(full: Path, raw_root: Path, dataset_id: int, count: int) -> str:
    """A raw dataset of the first `count` cases of `full`, built from symlinks (the images are not copied)."""
    name = f"Dataset{dataset_id:03d}_Phantom{count}"
    folder = raw_root / name
    if folder.exists():
        shutil.rmtree(folder)
    description = json.loads((full / "dataset.json").read_text())
    cases = description["training"][:count]
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir(parents=True)
        for case in cases:
            for source in (full / sub).glob(f"{case['case']}[_.]*"):
                (folder / sub / source.name).symlink_to(source.resolve())
    description.update(name=name, training=cases, numTraining=len(cases))
    (folder / "dataset.json").write_text(json.dumps(description, indent=2))
    return str(dataset_id)


def vfnet_run(env: dict[str, str], dataset: str, processes: int, log: Path) -> dict:
    shutil.rmtree(env["vfnet_preprocessed"], ignore_errors=True)  # every run starts cold, like --clean
    Path(env["vfnet_preprocessed"]).mkdir()
    return timed_run(["vfnet_plan_and_preprocess", "-d", dataset, "-np", str(processes)], env, log)


def nnunet_run(env: dict[str, str], raw_dataset: Path, processes: int, log: Path) -> dict:
    link = Path(env["nnUNet_raw"]) / raw_dataset.name
    if not link.exists():
        link.symlink_to(raw_dataset)  # nnU-Net reads the very same folder
    shutil.rmtree(env["nnUNet_preprocessed"], ignore_errors=True)
    Path(env["nnUNet_preprocessed"]).mkdir()
    return timed_run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "3d_fullres", "-np",
                      str(processes)], env, log)


def summarise(runs: list[dict]) -> dict:
    return {"runs": runs, "median_wall_s": median([r["wall_s"] for r in runs]),
            "max_peak_tree_rss_mb": max(r["peak_tree_rss_mb"] for r in runs)}


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--phantom", type=Path, default=DEFAULT_PHANTOM)
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each vfnet timing (median reported)")
    parser.add_argument("--nnunet-repeats", type=int, default=1, help="repeats of the (slow) nnU-Net timing")
    parser.add_argument("--skip-nnunet", action="store_true")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="vfnet_bench_pre_"))
    env = vfnet_env(workdir)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    print(f"Converting {args.phantom} into {workdir} ...")
    raw = convert_phantom(args.phantom, workdir, DATASET_ID)
    total_cases = json.loads((raw / "dataset.json").read_text())["numTraining"]
    result = {"machine": machine(), "phantom": str(args.phantom), "cases": total_cases, "repeats": args.repeats}

    comparison = {"vfnet_np2": [], "nnunet_np2": []}
    for repeat in range(max(args.repeats, args.nnunet_repeats)):
        if repeat < args.repeats:
            print(f"[{repeat + 1}/{args.repeats}] vfnet_plan_and_preprocess -np 2 on {total_cases} cases ...")
            comparison["vfnet_np2"].append(vfnet_run(env, str(DATASET_ID), 2, logs / f"vfnet_{repeat}.log"))
            print(f"    {comparison['vfnet_np2'][-1]}")
        if not args.skip_nnunet and repeat < args.nnunet_repeats:
            print(f"[{repeat + 1}/{args.nnunet_repeats}] nnUNetv2_plan_and_preprocess -c 3d_fullres -np 2 ...")
            comparison["nnunet_np2"].append(nnunet_run(env, raw, 2, logs / f"nnunet_{repeat}.log"))
            print(f"    {comparison['nnunet_np2'][-1]}")
    result["vfnet"] = summarise(comparison["vfnet_np2"])
    if comparison["nnunet_np2"]:
        result["nnunet"] = summarise(comparison["nnunet_np2"])
        result["time_ratio_vfnet_over_nnunet"] = round(result["vfnet"]["median_wall_s"] /
                                                       result["nnunet"]["median_wall_s"], 4)

    scaling = {}
    for count in (10, 20, 40):
        if count > total_cases:
            continue
        dataset = subset_dataset(raw, Path(env["vfnet_raw"]), 600 + count, count)
        for processes in (1, 2):
            runs = []
            for repeat in range(args.repeats):
                print(f"scaling: {count} cases, -np {processes}, run {repeat + 1}/{args.repeats} ...")
                runs.append(vfnet_run(env, dataset, processes, logs / f"scale_{count}_{processes}_{repeat}.log"))
            scaling[f"{count}_cases_np{processes}"] = summarise(runs)
    result["vfnet_scaling"] = scaling
    result["targets"] = {"time_ratio_max": 0.25, "peak_rss_mb_max": 2048}
    write_result(args.results, "preprocessing", result)
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""vfnet_predict latency and throughput with the five-fold ensemble and left-right TTA.

Five folds of the phantom's planned architecture are trained for 1 epoch x 2 iterations only to get checkpoints
(prediction speed does not depend on the weights). Then: the CLI end to end on one CT with eight vertebrae
(process start, imports and checkpoint loading included), an in-process breakdown of one case (read, vertebra
mask, resample/crop, network), the CLI on 20 CTs, and (if present) the real 512-wide TotalSegmentator example CT.

    python benchmarks/bench_predict.py [--phantom ../shared/data/phantom_verse] [--repeats 3]
"""
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (DEFAULT_PHANTOM, REPO_ROOT, base_parser, convert_phantom, machine, median, run_checked,  # noqa: E402
                    timed_run, vfnet_env, write_result)

from vfnet import paths  # noqa: E402

DATASET_ID = 503
REAL_CT = REPO_ROOT.parent / "shared" / "data" / "real" / "totalsegmentator_example"


def train_checkpoints(env: dict[str, str]) -> None:
    run_checked(["vfnet_plan_and_preprocess", "-d", str(DATASET_ID), "-np", "2"], env)
    for fold in range(5):
        print(f"  training fold {fold} for 1 epoch x 2 iterations (checkpoints only) ...", flush=True)
        run_checked(["vfnet_train", "-d", str(DATASET_ID), "-f", str(fold), "--epochs", "1", "--iterations", "2"],
                    env)


def input_folder(raw: Path, cases: list[str], folder: Path) -> Path:
    """CTs and their masks side by side, as a user's input folder (symlinks, nothing copied)."""
    folder.mkdir(parents=True, exist_ok=True)
    for case in cases:
        (folder / f"{case}_0000.nii.gz").symlink_to(raw / "imagesTr" / f"{case}_0000.nii.gz")
        (folder / f"{case}.nii.gz").symlink_to(raw / "labelsTr" / f"{case}.nii.gz")
    return folder


def vertebra_count(mask: Path) -> int:
    return len(np.unique(sitk.GetArrayViewFromImage(sitk.ReadImage(str(mask))))) - 1


def breakdown(model_folder: Path, case_folder: Path, repeats: int) -> dict:
    """Time the predictor's stages for one case in this process (models loaded once, as the CLI does)."""
    import torch
    from vfnet.dataset.image_io import read_image
    from vfnet.inference.ensemble import FoldEnsemble, load_fold_models
    from vfnet.inference.inputs import discover_cases
    from vfnet.inference.predictor import PredictSettings, vertebra_source
    from vfnet.planning.plans import load_plans
    from vfnet.preprocessing.preprocessor import preprocess_case
    torch.set_num_threads(2)
    settings = PredictSettings(model_folder=model_folder, folds=[0, 1, 2, 3, 4])
    plans = load_plans(model_folder / "plans.json")
    started = time.perf_counter()
    ensemble = FoldEnsemble(load_fold_models(model_folder, settings.folds, settings.checkpoint_name, plans))
    load_seconds = time.perf_counter() - started
    case = discover_cases(case_folder)[0]
    stages: dict[str, list[float]] = {"read_ct": [], "read_mask": [], "resample_crop": [], "network_5folds_tta": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        image = read_image(case.image, "CT")
        t1 = time.perf_counter()
        source = vertebra_source(case, image, settings, single_case=True)
        t2 = time.perf_counter()
        crops = preprocess_case(image, source.mask_image, source.centroids, source.labels, plans["preprocessing"])
        t3 = time.perf_counter()
        ensemble.predict(np.stack([crops[label][0] for label in source.labels if label in crops]))
        t4 = time.perf_counter()
        for name, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            stages[name].append(seconds)
    return {"case": case.case_id, "vertebrae": len(crops), "checkpoint_loading_s": round(load_seconds, 3),
            **{f"{name}_s_median": median(values) for name, values in stages.items()}}


def predict_cli(env: dict[str, str], folder: Path, output: Path, log: Path, extra: list[str] = ()) -> dict:
    shutil.rmtree(output, ignore_errors=True)
    return timed_run(["vfnet_predict", "-i", str(folder), "-o", str(output), "-d", str(DATASET_ID), *extra], env, log)


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--phantom", type=Path, default=DEFAULT_PHANTOM)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--throughput-cases", type=int, default=20)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="vfnet_bench_predict_"))
    env = vfnet_env(workdir)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    raw = convert_phantom(args.phantom, workdir, DATASET_ID)
    print("Planning, preprocessing and training 5 throw-away folds ...", flush=True)
    train_checkpoints(env)
    model_folder = paths.model_folder(raw.name, "vfnetTrainer", "vfnetPlans", Path(env["vfnet_results"]))
    cases = [entry["case"] for entry in json.loads((raw / "dataset.json").read_text())["training"]]
    eight = next(c for c in cases if vertebra_count(raw / "labelsTr" / f"{c}.nii.gz") == 8)
    single = input_folder(raw, [eight], workdir / "input_one")
    many = input_folder(raw, cases[:args.throughput_cases], workdir / "input_many")
    result = {"machine": machine(), "single_case": eight, "folds": 5, "tta": "left-right mirror"}

    runs = []
    for repeat in range(args.repeats):
        print(f"vfnet_predict on one CT with 8 vertebrae, run {repeat + 1}/{args.repeats} ...", flush=True)
        runs.append(predict_cli(env, single, workdir / "out_one", logs / f"one_{repeat}.log"))
    result["one_ct_cli"] = {"runs": runs, "median_wall_s": median([r["wall_s"] for r in runs])}
    print("in-process breakdown ...", flush=True)
    result["one_ct_breakdown"] = breakdown(model_folder, single, args.repeats)
    print(f"vfnet_predict on {len(cases[:args.throughput_cases])} CTs ...", flush=True)
    many_run = predict_cli(env, many, workdir / "out_many", logs / "many.log")
    count = len(cases[:args.throughput_cases])
    result["throughput_cli"] = {**many_run, "cases": count, "seconds_per_ct": round(many_run["wall_s"] / count, 3),
                                "seconds_per_ct_after_first": round(
                                    (many_run["wall_s"] - result["one_ct_cli"]["median_wall_s"]) / (count - 1), 3)}
    if (REAL_CT / "ct.nii.gz").is_file():
        print("real CT (TotalSegmentator example) ...", flush=True)
        real = workdir / "input_real"
        real.mkdir(exist_ok=True)
        (real / "ct_0000.nii.gz").symlink_to(REAL_CT / "ct.nii.gz")
        (real / "ct.nii.gz").symlink_to(REAL_CT / "totalseg_multilabel.nii.gz")
        image = sitk.ReadImage(str(REAL_CT / "ct.nii.gz"))
        result["real_ct_cli"] = {**predict_cli(env, real, workdir / "out_real", logs / "real.log"),
                                 "size_xyz": list(image.GetSize()), "spacing_xyz": list(image.GetSpacing())}
        result["real_ct_breakdown"] = breakdown(model_folder, real, args.repeats)
    result["target_s_per_ct"] = 5.0
    write_result(args.results, "predict", result)
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

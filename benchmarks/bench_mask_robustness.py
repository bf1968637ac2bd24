"""Cross-validated accuracy with the masks people have: perfect, eroded, dilated, shifted, and centroids only.

Reads a workdir left by `bench_accuracy.py --workdir W` (converted phantom, trained folds) and predicts each
fold's validation CTs with that fold's model only, so every number is out-of-fold:
- perfect: the phantom's own masks;
- eroded / dilated: every vertebra label eroded or dilated by one voxel (dilation only into background, as a
  segmentation model's slightly generous masks are); eroded_2 / dilated_2, eroded_3 / dilated_3: by two, three;
- shifted: the whole mask moved by two voxels along the CT's first axis and one along the second; shifted_2 /
  shifted_3: by two / three voxels along every axis (also along the spine); eroded_1+shifted_2,
  dilated_1+shifted_2: a voxel too small or too generous and moved by two; mixed_1 / mixed_2: each vertebra its
  own way, eroded or dilated by 0-1 / 0-2 voxels and moved by -1..1 voxel per axis (a model errs differently on
  each vertebra); coarse_2 / 3 / 4 / 6: made on a grid of 2-6 mm voxels and resampled back with nearest
  neighbour (a segmentation model run at 3 mm, as TotalSegmentator's --fast, gives blocky outlines);
  missing_1 / missing_2: one / two vertebrae other than the first and last left out of each scan's mask (a
  segmentation model that misses a vertebra; a graded vertebra left unpredicted counts as grade 0);
- centroids: the phantom's VerSe centroid files, no mask (in this phantom family they sit at the mask's centre of
  mass, as training crops are centred); centroids_off_2 / centroids_off_4: every centroid of those files moved by
  2 / 4 mm in its own random direction (a seed from the case's name), as a centroid model's are a few mm off.

    python benchmarks/bench_mask_robustness.py --workdir W [--plans vfnetPlans] [--phantom ...]
"""
import csv
import shutil
import sys
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (DEFAULT_PHANTOM, base_parser, machine, metrics_with_intervals, run_checked, summary_line,
                    vfnet_env, write_result)

from vfnet.dataset.format import load_raw_dataset
from vfnet.dataset.image_io import read_centroids, write_centroids
from vfnet.dataset.splits import load_splits
from vfnet.preprocessing.mask_errors import degrade_mask

CONDITIONS = ("perfect", "eroded", "dilated", "shifted", "centroids", "eroded_2", "dilated_2", "eroded_3", "dilated_3",
              "shifted_2", "shifted_3", "eroded_1+shifted_2", "dilated_1+shifted_2", "mixed_1", "mixed_2",
              "coarse_2", "coarse_3", "coarse_4", "coarse_6", "missing_1", "missing_2", "centroids_off_2",
              "centroids_off_4")
DEFAULT_CONDITIONS = CONDITIONS[:5]
NOT_PREDICTED = [1.0, 0.0, 0.0, 0.0]


def prepare_inputs(raw: Path, phantom: Path, cases: list[str], folder: Path, condition: str) -> tuple[Path, list]:
    """Input folder of CT links, and the --masks / --centroids arguments for one condition."""
    images, masks = folder / "images", folder / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(exist_ok=True)
    for case in cases:
        link = images / f"{case}_0000.nii.gz"
        if not link.exists():
            link.symlink_to(raw / "imagesTr" / f"{case}_0000.nii.gz")
        if condition == "centroids":
            shutil.copy(centroid_file(phantom, case), masks / f"{case}_ctd.json")
        elif condition.startswith("centroids_off_"):
            ct = sitk.ReadImage(str(link))
            points = off_by(read_centroids(centroid_file(phantom, case), ct), centroid_error_mm(condition), case)
            write_centroids(masks / f"{case}_ctd.json", points, ct)
        else:
            mask = sitk.ReadImage(str(raw / "labelsTr" / f"{case}.nii.gz"))
            degraded = mask if condition == "perfect" else degrade_mask(mask, condition)
            sitk.WriteImage(degraded, str(masks / f"{case}.nii.gz"))
    option = "--centroids" if condition.startswith("centroids") else "--masks"
    return images, [option, str(masks)]


def centroid_file(phantom: Path, case: str) -> Path:
    return phantom / "derivatives" / f"sub-{case}" / f"sub-{case}_seg-subreg_ctd.json"


def centroid_error_mm(condition: str) -> float:
    """"centroids_off_2" -> 2.0"""
    return float(condition.rsplit("_", 1)[1])


def off_by(points: dict[int, Sequence[float]], millimetres: float, case: str) -> dict[int, np.ndarray]:
    """Every point moved by `millimetres` in its own random direction, the same for the same case every time."""
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    moved = {}
    for label in sorted(points):
        direction = rng.normal(size=3)
        moved[label] = np.asarray(points[label], float) + millimetres * direction / np.linalg.norm(direction)
    return moved


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--phantom", type=Path, default=DEFAULT_PHANTOM)
    parser.add_argument("--plans", default="vfnetPlans")
    parser.add_argument("--dataset", type=int, default=504)
    parser.add_argument("--conditions", nargs="+", default=list(DEFAULT_CONDITIONS), choices=CONDITIONS)
    parser.add_argument("--folds", nargs="+", type=int, default=None, help="only these folds (default: all)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    if args.workdir is None:
        sys.exit("--workdir: the folder of a finished bench_accuracy.py run is required.")
    env = vfnet_env(args.workdir)
    raw = next(Path(env["vfnet_raw"]).glob(f"Dataset{args.dataset:03d}_*"))
    dataset = load_raw_dataset(raw)
    grades = {(case.case_id, int(label)): grade for case in dataset.cases for label, grade in case.grades.items()}
    patients = {case.case_id: case.patient for case in dataset.cases}
    splits = load_splits(Path(env["vfnet_preprocessed"]) / raw.name / "splits_final.json")
    result = {"machine": machine(), "workdir": str(args.workdir), "plans": args.plans, "folds": args.folds,
              "conditions": {}}
    for condition in args.conditions:
        rows, unpredicted = [], 0
        for fold, split in enumerate(splits):
            if args.folds is not None and fold not in args.folds:
                continue
            scratch = args.workdir / "robustness" / condition / f"fold_{fold}"
            images, source = prepare_inputs(raw, args.phantom, split["val"], scratch, condition)
            output = scratch / "predictions"
            run_checked(["vfnet_predict", "-i", str(images), "-o", str(output), "-d", str(args.dataset), "-p",
                         args.plans, "-f", str(fold), "--overwrite", "--no_pictures", *source], env)
            with open(output / "predictions.csv", newline="") as handle:
                for row in csv.DictReader(handle):
                    key = (row["case"], int(row["vertebra"]))
                    if key in grades:
                        rows.append((key, [float(row[f"p{g}"]) for g in range(4)]))
            predicted = {key for key, _ in rows}
            # A graded vertebra the prediction left out (its mask vanished) gets no grade: it counts as normal.
            left_out = [key for key in grades if key[0] in split["val"] and key not in predicted]
            rows += [(key, NOT_PREDICTED) for key in left_out]
            unpredicted += len(left_out)
        reference = np.array([grades[key] for key, _ in rows])
        probabilities = np.array([p for _, p in rows])
        metrics = metrics_with_intervals(reference, probabilities, [patients[k[0]] for k, _ in rows], args.bootstrap)
        metrics["graded_vertebrae_predicted"] = len(rows) - unpredicted
        result["conditions"][condition] = metrics
        print(f"{summary_line(condition, metrics)} ({len(rows) - unpredicted} of {len(rows)} graded vertebrae "
              f"predicted, the rest counted as grade 0)", flush=True)
        write_result(args.results, "mask_robustness", result)


if __name__ == "__main__":
    main()

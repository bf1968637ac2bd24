"""Morphometry alone on the phantom benchmark: Genant's thresholds on the measured height loss, no learning.

For every graded vertebra of the converted phantom, `vfnet.preprocessing.measurement.measure_vertebrae` (what
preprocessing stores: vfnet.morphometry's measure_spine, or the CT-estimated mask's where the mask gives no
believable measurement) on the stored CT and mask (perfect, or every label eroded / dilated / shifted by one to
three voxels as in bench_mask_robustness.py, or "centroids": the mask that vfnet_predict estimates from the CT
around the mask's centres of mass; with --mask_check, masks far from the CT's bone are snapped to it, and masks
beside it moved onto it, first, as vfnet_predict does: vfnet/preprocessing/mask_check.py), then
`morphometric_grade` against the reference grade; pooled macro-F1 with patient-level bootstrap CIs. Unmeasured
vertebrae count as grade 0. Nothing is fitted, so there is no train/test split to respect.

    python benchmarks/bench_morphometry.py --workdir W    # W: converts the phantom there if needed
    python benchmarks/bench_morphometry.py --workdir W --conditions centroids --bone_hu 120 135 150
    python benchmarks/bench_morphometry.py --workdir W --conditions eroded_2 dilated_2 --mask_check
"""
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mask_robustness import CONDITIONS, centroid_error_mm, off_by   # the network benchmark's conditions
from common import DEFAULT_PHANTOM, base_parser, convert_phantom, machine, metrics_with_intervals, summary_line, write_result

from vfnet.dataset.format import load_raw_dataset
from vfnet.preprocessing import centroid_masks
from vfnet.preprocessing.mask_check import check_masks
from vfnet.preprocessing.mask_errors import degrade_mask
from vfnet.preprocessing.missing_vertebrae import add_missing_vertebrae
from vfnet.preprocessing.measurement import measure_vertebrae
from vfnet.preprocessing.preprocessor import mask_centres

DATASET_ID = 505


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--phantom", type=Path, default=DEFAULT_PHANTOM)
    parser.add_argument("--conditions", nargs="+", default=["perfect", "eroded", "dilated"], choices=CONDITIONS)
    parser.add_argument("--bone_hu", type=float, nargs="+", default=[centroid_masks.BONE_HU],
                        help="centroids only: bone thresholds to compare (default: vfnet's)")
    parser.add_argument("--mask_check", action="store_true",
                        help="snap masks far from the CT's bone to it first, as vfnet_predict does")
    args = parser.parse_args()
    args.workdir = args.workdir or Path("/tmp/vfnet_bench_morphometry")
    dataset = load_raw_dataset(convert_phantom(args.phantom, args.workdir, DATASET_ID))
    result = {"machine": machine(), "conditions": {}}
    runs = [(condition, None) for condition in args.conditions if not condition.startswith("centroids")]
    runs += [(condition, bone_hu) for condition in args.conditions if condition.startswith("centroids")
             for bone_hu in args.bone_hu]
    for condition, bone_hu in runs:
        started = time.perf_counter()
        reference, predicted, patients, unmeasured, corrected_cases = [], [], [], 0, 0
        for case in dataset.cases:
            ct = sitk.ReadImage(str(case.image))
            mask = sitk.Cast(sitk.ReadImage(str(case.mask)), sitk.sitkUInt16)
            if condition.startswith("centroids_off_"):   # the mask's centres, each a few mm off
                centres = off_by(mask_centres(mask), centroid_error_mm(condition), case.case_id)
                mask = centroid_masks.estimate_vertebra_mask(ct, {label: tuple(point) for label, point in
                                                                  centres.items()}, bone_hu)
            elif condition not in ("perfect", "centroids"):
                mask = degrade_mask(mask, condition)
            if condition == "centroids":
                mask = centroid_masks.estimate_around_mask_centres(mask, ct, bone_hu)
            elif args.mask_check and bone_hu is None:   # masks, not centroids
                missing = add_missing_vertebrae(mask, ct)
                mask = missing.mask
                check = check_masks(mask, ct, sorted(set(case.grades) - set(missing.labels)))
                corrected_cases += check.masks_are_off
                mask = check.corrected if check.masks_are_off else mask
            report = measure_vertebrae(mask, ct, sorted(case.grades))
            for label, grade in case.grades.items():
                measured = report.get(int(label), {}).get("morphometric_grade")
                unmeasured += measured is None
                reference.append(grade)
                predicted.append(0 if measured is None else measured)
                patients.append(case.patient)
        probabilities = np.eye(4)[predicted]
        metrics = metrics_with_intervals(reference, probabilities, patients)
        metrics.update(unmeasured_counted_as_grade_0=unmeasured, cases_corrected=corrected_cases,
                       seconds_per_case=(time.perf_counter() - started) / len(dataset.cases))
        name = condition if bone_hu is None else f"{condition}, bone {bone_hu:g} HU"
        name += ", mask check" if args.mask_check and bone_hu is None else ""
        result["conditions"][name] = metrics
        print(f"{summary_line(name, metrics)}, unmeasured {unmeasured}, cases snapped or moved {corrected_cases}",
              flush=True)
        write_result(args.results, "morphometry", result)


if __name__ == "__main__":
    main()

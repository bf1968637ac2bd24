"""Peak memory and wall time of fingerprinting and preprocessing one large CT (512 x 512 x 600, issue 3's bound).

    python benchmarks/bench_large_ct.py [--slices 600]

Builds a raw dataset with one large CT (int16, 0.8 x 0.8 x 0.6 mm) whose mask holds eight box-shaped
"vertebrae" (T12-L5 ids, grades 0/1 alternating with one 2 and one 3, since planning needs two grades), then
times `vfnet_extract_fingerprint -np 1` and `vfnet_plan_and_preprocess -np 1` as subprocesses and records the peak
resident memory of their process trees. The target: one worker stays under ~2 GB for such a CT.
"""
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import base_parser, machine, timed_run, vfnet_env, write_result  # noqa: E402

from vfnet.dataset.format import make_dataset_json, write_dataset_json  # noqa: E402
from vfnet.fileio import write_json  # noqa: E402

GRADES = {19: 0, 20: 1, 21: 0, 22: 2, 23: 0, 24: 3}


def write_large_dataset(raw: Path, size_xy: int, slices: int) -> None:
    spacing = (0.8, 0.8, 0.6)
    ct = np.full((slices, size_xy, size_xy), -1000, dtype=np.int16)
    mask = np.zeros(ct.shape, dtype=np.uint8)
    ct[:, size_xy // 4: 3 * size_xy // 4, size_xy // 4: 3 * size_xy // 4] = 40  # soft tissue
    height_vox, gap_vox = int(26 / spacing[2]), int(9 / spacing[2])
    centre = size_xy // 2
    half_y, half_x = int(18 / spacing[1]), int(22 / spacing[0])
    z = (slices - len(GRADES) * (height_vox + gap_vox)) // 2
    for label in sorted(GRADES, reverse=True):  # caudal (high id) at the bottom
        body = (slice(z, z + height_vox), slice(centre - half_y, centre + half_y),
                slice(centre - half_x, centre + half_x))
        ct[body] = 250
        mask[body] = label
        z += height_vox + gap_vox
    (raw / "imagesTr").mkdir(parents=True)
    (raw / "labelsTr").mkdir()
    for array, path in ((ct, raw / "imagesTr" / "large_0000.nii.gz"), (mask, raw / "labelsTr" / "large.nii.gz")):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(spacing)
        sitk.WriteImage(image, str(path), useCompression=True)
    write_dataset_json(raw, make_dataset_json("LargeCT", [{"case": "large", "patient": "p0",
                                                            "vertebrae": GRADES}]))


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--size", type=int, default=512, help="in-plane voxels (default 512)")
    parser.add_argument("--slices", type=int, default=600, help="slices (default 600)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="vfnet_bench_large_"))
    env = vfnet_env(workdir)
    raw = Path(env["vfnet_raw"]) / "Dataset950_LargeCT"
    if not raw.exists():
        print(f"writing a {args.size}x{args.size}x{args.slices} CT ...", flush=True)
        write_large_dataset(raw, args.size, args.slices)
    results = {"machine": machine(), "shape_xyz": [args.size, args.size, args.slices]}
    print("vfnet_extract_fingerprint -np 1 ...", flush=True)
    results["fingerprint"] = timed_run(["vfnet_extract_fingerprint", "-d", "950", "-np", "1"], env)
    print(results["fingerprint"], flush=True)
    print("vfnet_plan_experiment + vfnet_preprocess -np 1 ...", flush=True)
    results["plan"] = timed_run(["vfnet_plan_experiment", "-d", "950"], env)
    # One case cannot be split five ways by patient; a user-supplied splits file (one fold) is kept as is.
    write_json(Path(env["vfnet_preprocessed"]) / raw.name / "splits_final.json", [{"train": [], "val": ["large"]}])
    results["preprocess"] = timed_run(["vfnet_preprocess", "-d", "950", "-np", "1"], env)
    print(results["preprocess"], flush=True)
    write_result(args.results, "large_ct", results)


if __name__ == "__main__":
    main()

"""Tiny raw datasets for the planning/preprocessing tests: a few small CTs with box-shaped vertebrae.

Each vertebra is a body box plus a posterior process that leans to the patient's left, so the object is
asymmetric along every axis and a wrong flip in orientation handling changes the crop.
"""
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from vfnet.dataset.format import make_dataset_json, write_dataset_json
from vfnet.dataset.image_io import write_image

SPACING_XYZ = (1.6, 1.6, 2.0)
SIZE_XYZ = (48, 48, 52)
LABELS = (20, 21, 22)          # L1-L3; in the phantom L3 is lowest in z and L1 on top, as in a patient


def phantom(grades: dict[int, int], spacing_xyz=SPACING_XYZ, size_xyz=SIZE_XYZ,
            seed: int = 0) -> tuple[sitk.Image, sitk.Image]:
    """(CT in HU, instance mask) in LPS with identity direction; a fractured body loses anterior height."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = size_xyz
    sx, sy, sz = spacing_xyz
    ct = np.full((nz, ny, nx), -80.0, dtype=np.float32)
    ct += np.linspace(-40, 40, nx, dtype=np.float32)[None, None, :]   # left-right intensity ramp
    mask = np.zeros((nz, ny, nx), dtype=np.uint8)
    z_mm = np.arange(nz) * sz
    y_mm = np.arange(ny) * sy
    x_mm = np.arange(nx) * sx
    for index, label in enumerate(sorted(grades, reverse=True)):   # caudal (higher id) first, at low z
        z_low = 8.0 + index * 32.0
        height = 24.0
        for k, z in enumerate(z_mm):
            if not z_low <= z < z_low + height:
                continue
            # Body: y 14-44 mm; a fracture lowers the anterior (small y) top in proportion to its grade.
            loss = 0.15 * grades[label]
            top = z_low + height * (1.0 - loss * (44.0 - y_mm) / 30.0)
            body_y = (y_mm >= 14.0) & (y_mm < 44.0) & (z < top)
            body_x = (x_mm >= 18.0) & (x_mm < 58.0)
            mask[k][np.ix_(body_y, body_x)] = label
            process_y = (y_mm >= 44.0) & (y_mm < 70.0)
            process_x = (x_mm >= 40.0) & (x_mm < 52.0) if z < z_low + 12.0 else np.zeros_like(x_mm, bool)
            mask[k][np.ix_(process_y, process_x)] = label
    ct[mask > 0] = 250.0
    ct[(mask > 0) & (np.arange(ny)[None, :, None] * sy >= 44.0)] = 450.0
    ct += rng.normal(0, 5, ct.shape).astype(np.float32)
    images = []
    for array in (ct, mask):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(spacing_xyz)
        image.SetOrigin((-30.0, 12.0, -400.0))
        images.append(image)
    return images[0], images[1]


def write_raw_dataset(root: Path, name: str, cases: list[dict], centroid_only: frozenset = frozenset(),
                      orientations: dict[str, str] | None = None) -> Path:
    """cases: [{"case", "patient", "vertebrae": {label: grade}}]; writes images, masks or centroids, dataset.json."""
    folder = Path(root) / name
    (folder / "imagesTr").mkdir(parents=True, exist_ok=True)
    (folder / "labelsTr").mkdir(parents=True, exist_ok=True)
    orientations = orientations or {}
    for index, case in enumerate(cases):
        ct, mask = phantom(case["vertebrae"], seed=index)
        codes = orientations.get(case["case"], "LPS")
        ct, mask = sitk.DICOMOrient(ct, codes), sitk.DICOMOrient(mask, codes)
        write_image(ct, folder / "imagesTr" / f"{case['case']}_0000.nii.gz")
        if case["case"] in centroid_only:
            write_centroids(mask, folder / "labelsTr" / f"{case['case']}_ctd.json", codes)
        else:
            write_image(mask, folder / "labelsTr" / f"{case['case']}.nii.gz")
    write_dataset_json(folder, make_dataset_json(name, cases))
    return folder


def write_centroids(mask: sitk.Image, path: Path, codes: str) -> None:
    """A VerSe centroid JSON of each label's body centre, in voxel coordinates of `mask` (oriented as `codes`)."""
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(mask)
    entries: list[dict] = [{"direction": list(codes)}]
    for label in statistics.GetLabels():
        index = mask.TransformPhysicalPointToContinuousIndex(statistics.GetCentroid(label))
        entries.append({"label": int(label), "X": index[0], "Y": index[1], "Z": index[2]})
    path.write_text(json.dumps(entries))


def standard_cases(num_patients: int = 6, cases_per_patient: int = 1) -> list[dict]:
    """Cases whose grades cycle through 0-3 so every grade is present."""
    cases = []
    grade_cycle = [0, 0, 1, 0, 2, 0, 3, 0, 1, 2, 0, 3]
    position = 0
    for patient in range(num_patients):
        for repeat in range(cases_per_patient):
            vertebrae = {}
            for label in LABELS:
                vertebrae[label] = grade_cycle[position % len(grade_cycle)]
                position += 1
            cases.append({"case": f"tiny{patient:02d}{repeat}", "patient": f"p{patient:02d}", "vertebrae": vertebrae})
    return cases

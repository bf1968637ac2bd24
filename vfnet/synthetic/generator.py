"""Generate a raw vfnet dataset of synthetic thoraco-lumbar CT phantoms with known Genant grades.

Each patient gets a spine (`anatomy`) with graded deformities (`deformities`); each scan of that patient gets its
own spacing, storage orientation, blur, noise and table position, and is rendered by `render`. About one patient in
five is scanned twice, so patient-grouped splits have something to group. The dataset is written in the raw
format (`vfnet.dataset.format`) plus `synthetic_truth.json` with the requested morphometry of every vertebra.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import SimpleITK as sitk

from vfnet.dataset.format import image_path, make_dataset_json, mask_path, write_dataset_json
from vfnet.dataset.image_io import write_image
from vfnet.errors import VfnetError
from vfnet.fileio import write_json
from vfnet.labels import NUM_GRADES
from vfnet.synthetic.anatomy import Spine, Vertebra, build_spine, choose_levels
from vfnet.synthetic.deformities import __doc__ as HEIGHT_LOSS_DEFINITION
from vfnet.synthetic.output_folder import TRUTH_FILE, TRUTH_FORMAT, staged_folder
from vfnet.synthetic.render import Grid, rasterise, scanner_image

DEFAULT_GRADE_FREQUENCIES = (0.55, 0.15, 0.17, 0.13)
SECOND_SCAN_PROBABILITY = 0.2
FILE_ENDING = ".nii.gz"
# Storage orientations: axial (LPS, RAS, ...), sagittal- and coronal-first axis orders; all describe the same anatomy.
ORIENTATIONS = ("LPS", "RAS", "LAS", "RPI", "PIR", "ASL", "LIP", "SAR")
_FINEST_CT_GRID_MM = 1.1  # the CT is rasterised at most this coarse before block averaging


@dataclass(frozen=True)
class ScanRanges:
    """Ranges from which each scan's acquisition parameters are drawn uniformly."""
    in_plane_mm: tuple[float, float] = (0.8, 1.5)
    slice_mm: tuple[float, float] = (1.0, 2.5)
    noise_hu: tuple[float, float] = (10.0, 30.0)
    blur_mm: tuple[float, float] = (0.5, 1.0)
    orientations: tuple[str, ...] = ORIENTATIONS


@dataclass(frozen=True)
class PatientPlan:
    patient: str
    levels: list[str]
    grades: list[int]
    scans: int
    seed: int


def parse_grade_frequencies(text: str) -> tuple[float, ...]:
    """'0.55,0.15,0.17,0.13' -> normalised frequencies of grades 0-3 (two of them must be non-zero)."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise VfnetError(f"--grade-frequencies '{text}' must be four comma-separated numbers.") from None
    if len(values) != NUM_GRADES or not all(np.isfinite(values)) or min(values) < 0:
        raise VfnetError(f"--grade-frequencies '{text}' must be four non-negative numbers (grades 0-3).")
    if sum(value > 0 for value in values) < 2:
        raise VfnetError(f"--grade-frequencies '{text}' must give at least two grades a non-zero frequency, "
                         f"or the dataset cannot train a classifier.")
    total = sum(values)
    return tuple(value / total for value in values)


def generate_dataset(folder: str | Path, num_cases: int, seed: int,
                     grade_frequencies: Sequence[float] = DEFAULT_GRADE_FREQUENCIES,
                     scan_ranges: ScanRanges = ScanRanges()) -> dict[str, Any]:
    """Write `num_cases` synthetic CTs as a raw dataset in `folder`; return the truth that was saved with it."""
    folder = Path(folder)
    if num_cases < 1:
        raise VfnetError(f"The number of cases must be at least 1, not {num_cases}.")
    frequencies = parse_grade_frequencies(",".join(str(f) for f in grade_frequencies))
    plans = plan_patients(np.random.default_rng(seed), num_cases, frequencies)
    truth: dict[str, Any] = {"format": TRUTH_FORMAT, "seed": seed, "grade_frequencies": list(frequencies),
                             "height_loss_definition": " ".join(HEIGHT_LOSS_DEFINITION.split()), "cases": {}}
    entries = []
    with staged_folder(folder) as staging:
        case_index = 0
        for plan in plans:
            rng = np.random.default_rng(plan.seed)
            spine = build_spine(rng, plan.levels, plan.grades)
            for _ in range(plan.scans):
                case_index += 1
                case_id = f"synth{case_index:04d}"
                truth["cases"][case_id] = write_case(staging, case_id, plan.patient, spine, rng, scan_ranges)
                entries.append({"case": case_id, "patient": plan.patient,
                                "vertebrae": {v.label: v.grade for v in spine.vertebrae}})
        dataset_json = make_dataset_json(folder.name, entries, FILE_ENDING,
                                         description=f"Synthetic spine phantoms (vfnet generator, seed {seed})")
        dataset_json["synthetic"] = True  # read by the model card: models trained on phantoms say so
        write_dataset_json(staging, dataset_json)
        write_json(staging / TRUTH_FILE, truth)  # written last: its presence marks a finished dataset
    return truth


def plan_patients(rng: np.random.Generator, num_cases: int, frequencies: Sequence[float]) -> list[PatientPlan]:
    """Levels, grades and number of scans per patient, until `num_cases` scans are planned."""
    plans: list[PatientPlan] = []
    planned = 0
    while planned < num_cases:
        levels = choose_levels(rng)
        grades = [int(g) for g in rng.choice(NUM_GRADES, size=len(levels), p=frequencies)]
        scans = 2 if num_cases - planned >= 2 and rng.random() < SECOND_SCAN_PROBABILITY else 1
        plans.append(PatientPlan(f"patient{len(plans) + 1:04d}", levels, grades, scans,
                                 int(rng.integers(2 ** 63 - 1))))
        planned += scans
    _ensure_two_grades(rng, plans, frequencies)
    return plans


def _ensure_two_grades(rng: np.random.Generator, plans: list[PatientPlan], frequencies: Sequence[float]) -> None:
    """A classifier needs two grades: if chance produced one, regrade one vertebra to another possible grade."""
    present = {grade for plan in plans for grade in plan.grades}
    if len(present) >= 2:
        return
    others = [grade for grade in range(NUM_GRADES) if frequencies[grade] > 0 and grade not in present]
    plan = plans[int(rng.integers(len(plans)))]
    plan.grades[int(rng.integers(len(plan.grades)))] = int(rng.choice(others))


def write_case(folder: Path, case_id: str, patient: str, spine: Spine, rng: np.random.Generator,
               ranges: ScanRanges) -> dict[str, Any]:
    """Render one scan of `spine`, write image and mask, return the case's truth entry."""
    in_plane = float(rng.uniform(*ranges.in_plane_mm))
    spacing = (round(float(rng.uniform(*ranges.slice_mm)), 3), round(in_plane, 3), round(in_plane, 3))
    grid = Grid(*_field_of_view(spine, spacing, rng))
    factors = tuple(int(np.ceil(s / _FINEST_CT_GRID_MM)) for s in spacing)
    fine = grid.refined(factors)
    hu_fine, _ = rasterise(spine, fine, intensities=True)
    blur, noise = float(rng.uniform(*ranges.blur_mm)), float(rng.uniform(*ranges.noise_hu))
    ct = scanner_image(hu_fine, factors, fine.spacing, blur, noise, rng)
    _, labels = rasterise(spine, grid, intensities=False)
    table_offset = (float(rng.uniform(-20, 20)), float(rng.uniform(-150, -80)), float(rng.uniform(-600, -200)))
    orientation = str(ranges.orientations[int(rng.integers(len(ranges.orientations)))])
    for array, target in ((ct, image_path(folder, case_id, FILE_ENDING)),
                          (labels, mask_path(folder, case_id, FILE_ENDING))):
        write_image(_oriented_image(array, grid, table_offset, orientation), target)
    return {
        "patient": patient, "orientation": orientation, "spacing": list(spacing), "shape": list(grid.shape),
        "blur_mm": round(blur, 3), "noise_hu": round(noise, 2), "cancellous_hu": round(spine.cancellous_hu, 1),
        "vertebrae": {str(v.label): _vertebra_truth(v, table_offset) for v in spine.vertebrae},
    }


def _field_of_view(spine: Spine, spacing: tuple[float, float, float], rng: np.random.Generator):
    """Origin, spacing and shape (z, y, x) of a grid covering the vertebrae, the back's skin and some air."""
    vertebrae = spine.vertebrae
    low = np.array([min(v.centre[2] - v.heights.expected_posterior / 2 for v in vertebrae) - rng.uniform(5, 12),
                    min(v.centre[1] - v.half_depth for v in vertebrae) - rng.uniform(15, 25),
                    -max(v.half_width for v in vertebrae) - rng.uniform(8, 15)])
    high = np.array([max(v.centre[2] + v.heights.expected_posterior / 2 for v in vertebrae) + rng.uniform(5, 12),
                     spine.skin_back_y + rng.uniform(5, 12),
                     max(v.half_width for v in vertebrae) + rng.uniform(8, 15)])
    shape = tuple(int(n) for n in np.floor((high - low) / spacing) + 1)
    return tuple(float(value) for value in low), spacing, shape


def _oriented_image(array: np.ndarray, grid: Grid, offset: tuple[float, float, float], orientation: str) -> sitk.Image:
    """Canonical LPS array -> SimpleITK image at the scan's table position, stored with `orientation`'s axes."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(reversed(grid.spacing)))
    image.SetOrigin(tuple(o + d for o, d in zip(reversed(grid.origin), offset)))
    return sitk.DICOMOrient(image, orientation)


def _vertebra_truth(vertebra: Vertebra, offset: tuple[float, float, float]) -> dict[str, Any]:
    heights = vertebra.heights
    return {
        "level": vertebra.level, "grade": vertebra.grade, "deformity": heights.deformity,
        "height_loss": round(heights.height_loss, 4),
        "anterior_mm": round(heights.anterior, 3), "middle_mm": round(heights.middle, 3),
        "posterior_mm": round(heights.posterior, 3), "expected_posterior_mm": round(heights.expected_posterior, 3),
        "depth_mm": round(2 * vertebra.half_depth, 3), "width_mm": round(2 * vertebra.half_width, 3),
        "centre_mm": [round(c + d, 3) for c, d in zip(vertebra.centre, offset)],
        "tilt_degrees": round(vertebra.tilt_degrees, 2),
    }

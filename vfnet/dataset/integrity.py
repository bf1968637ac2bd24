"""The integrity check of a raw dataset: one pass that collects every problem, then one report.

`verify_dataset` starts from the schema problems of `format.parse_dataset` and adds the file checks
(readable 3D images, matching geometry, mask labels, centroids, stray files). It reads one case at a
time so memory stays at one image and one mask. Nothing here raises on bad data: every finding becomes
a `Problem` naming case, file and what is wrong. `raise_if_problems` turns a non-empty list into one
DatasetError for commands that must stop (e.g. `vfnet_plan_and_preprocess --verify_dataset_integrity`).
"""
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from vfnet.dataset.format import CENTROID_SUFFIX, Problem, RawCase, RawDataset, parse_dataset
from vfnet.dataset.image_io import check_finite, read_centroids, read_image
from vfnet.errors import DatasetError
from vfnet.fileio import write_json, write_text
from vfnet.labels import VERSE_LEVELS, level_name

# Spacing may differ by 0.1 % and the origin by 1 % of a voxel: header round-off between tools that wrote
# image and mask, far below anything that would move a vertebra. Direction cosines are compared absolutely.
SPACING_RELATIVE_TOLERANCE = 1e-3
ORIGIN_VOXEL_TOLERANCE = 1e-2
DIRECTION_TOLERANCE = 1e-3
REPORT_NAME = "integrity_report"


def verify_dataset(folder: str | Path) -> list[Problem]:
    """Every problem of the raw dataset in `folder` (empty list = the dataset is usable)."""
    folder = Path(folder)
    dataset, problems = parse_dataset(folder)
    if dataset is None:
        return problems
    for case in dataset.cases:
        problems.extend(check_case(case))
    problems.extend(_check_stray_files(dataset))
    return problems


def raise_if_problems(problems: list[Problem], folder: str | Path, limit: int = 20) -> None:
    """Raise one DatasetError listing the problems (at most `limit` lines) if there are any."""
    if not problems:
        return
    lines = [f"  - {problem}" for problem in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more (vfnet_verify_dataset writes the full report)")
    raise DatasetError(f"The dataset {folder} failed the integrity check with {len(problems)} problem(s):\n"
                       + "\n".join(lines))


def write_report(problems: list[Problem], dataset_folder: str | Path, report_folder: str | Path) -> tuple[Path, Path]:
    """Write `integrity_report.txt` and `integrity_report.json` into `report_folder`; return both paths."""
    report_folder = Path(report_folder)
    checked = datetime.now(timezone.utc).isoformat(timespec="seconds")
    text_path = report_folder / f"{REPORT_NAME}.txt"
    json_path = report_folder / f"{REPORT_NAME}.json"
    header = (f"Integrity check of {dataset_folder} ({checked}): "
              + (f"{len(problems)} problem(s)." if problems else "no problems."))
    write_text(text_path, "\n".join([header] + [f"- {problem}" for problem in problems]) + "\n")
    write_json(json_path, {"dataset": str(dataset_folder), "checked": checked, "ok": not problems,
                           "num_problems": len(problems),
                           "problems": [{"case": p.case, "file": p.file, "message": p.message} for p in problems]})
    return text_path, json_path


def geometry_mismatches(image: sitk.Image, mask: sitk.Image) -> list[str]:
    """Human-readable differences between two images' grids beyond the tolerances (empty = same grid)."""
    differences = []
    if image.GetSize() != mask.GetSize():
        return [f"shape {mask.GetSize()} differs from the image's {image.GetSize()} (x, y, z)"]
    spacing_a, spacing_b = np.array(image.GetSpacing()), np.array(mask.GetSpacing())
    if np.any(np.abs(spacing_a - spacing_b) > SPACING_RELATIVE_TOLERANCE * np.maximum(spacing_a, spacing_b)):
        differences.append(f"spacing {_fmt(spacing_b)} differs from the image's {_fmt(spacing_a)}")
    origin_a, origin_b = np.array(image.GetOrigin()), np.array(mask.GetOrigin())
    if np.any(np.abs(origin_a - origin_b) > ORIGIN_VOXEL_TOLERANCE * spacing_a):
        differences.append(f"origin {_fmt(origin_b)} differs from the image's {_fmt(origin_a)}")
    direction_a, direction_b = np.array(image.GetDirection()), np.array(mask.GetDirection())
    if np.any(np.abs(direction_a - direction_b) > DIRECTION_TOLERANCE):
        differences.append(f"direction {_fmt(direction_b)} differs from the image's {_fmt(direction_a)}")
    return differences


def mask_label_problems(mask: sitk.Image) -> tuple[set[int], list[str]]:
    """The labels present in a vertebra mask and what is wrong with its values."""
    array = sitk.GetArrayViewFromImage(mask)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            return set(), ["mask contains NaN or infinite voxels"]
        if not np.array_equal(array, np.round(array)):
            return set(), ["mask holds non-integer values; it must be a label map of VerSe ids"]
    labels = {int(value) for value in np.unique(array)} - {0}
    if not labels:
        return labels, ["mask is empty (no vertebra labelled)"]
    unknown = sorted(label for label in labels if label not in VERSE_LEVELS)
    if unknown:
        return labels, [f"mask holds label(s) {unknown} that are not VerSe vertebra ids (1-28)"]
    return labels, []


def check_case(case: RawCase) -> list[Problem]:
    """File checks of one case: image, mask or centroids, and that every graded vertebra is there."""
    problems: list[Problem] = []

    def report(message: str, path: Path) -> None:
        problems.append(Problem(message, case=case.case_id, file=str(path)))

    image = _read(case.image, "image", report)
    if image is not None:
        try:
            check_finite(image, case.image)
        except DatasetError as error:
            report(_without_path(str(error), "image", case.image), case.image)
    if case.mask is not None:
        labels = _check_mask(case, image, report)
    elif case.centroids is not None:
        labels = _check_centroids(case, image, report)
    else:  # parse_dataset never builds such a case, but a hand-made RawCase could
        report("the case has neither a mask nor a centroid file", case.image)
        labels = None
    if labels is not None:
        source = case.mask if case.mask is not None else case.centroids
        for label in sorted(set(case.grades) - labels):
            report(f"graded vertebra {label} ({level_name(label)}) is absent from the "
                   f"{'mask' if case.mask is not None else 'centroid file'}", source)
    return problems


def _check_mask(case: RawCase, image: sitk.Image | None, report) -> set[int] | None:
    if not case.mask.exists():
        report(f"neither a mask nor a centroid file ({case.case_id}{CENTROID_SUFFIX}) exists for this case",
               case.mask)
        return None
    mask = _read(case.mask, "mask", report)
    if mask is None:
        return None
    if image is not None:
        for difference in geometry_mismatches(image, mask):
            report(f"mask and image disagree: {difference}", case.mask)
    labels, label_problems = mask_label_problems(mask)
    for message in label_problems:
        report(message, case.mask)
    return labels or None  # an empty or non-label mask was reported already; do not list every vertebra


def _check_centroids(case: RawCase, image: sitk.Image | None, report) -> set[int] | None:
    if image is None:  # centroids are voxel coordinates of the image: nothing to check them against
        return None
    try:
        return set(read_centroids(case.centroids, image))
    except Exception as error:  # DatasetError, or VfnetError from read_json for a file that is not JSON
        report(str(error), case.centroids)
        return None


def _check_stray_files(dataset: RawDataset) -> list[Problem]:
    """Images no training entry lists, and an image count that disagrees with numTraining."""
    problems: list[Problem] = []
    images_folder = dataset.folder / "imagesTr"
    if not images_folder.is_dir():
        return [Problem("the imagesTr folder is missing", file=str(images_folder))]
    expected = {case.image.name for case in dataset.cases}
    image_files = sorted(path for path in images_folder.iterdir() if not path.name.startswith("."))
    for path in image_files:
        if path.name not in expected:
            problems.append(Problem(f"no entry in dataset.json 'training' lists this file (expected names "
                                    f"<case>_0000{dataset.file_ending})", file=str(path)))
    num_training = dataset.description.get("numTraining")
    if isinstance(num_training, int) and num_training != len(image_files):
        problems.append(Problem(f"numTraining is {num_training} but imagesTr holds {len(image_files)} file(s)",
                                file=str(images_folder)))
    return problems


def _read(path: Path, what: str, report) -> sitk.Image | None:
    if not path.exists():
        report(f"{what} file is missing", path)
        return None
    try:
        return read_image(path, what)
    except DatasetError as error:
        report(_without_path(str(error), what, path), path)
        return None


def _without_path(message: str, what: str, path: Path) -> str:
    """image_io's messages start with '<what> <path> '; the Problem already names the file."""
    prefix = f"{what} {path} "
    return f"{what} {message[len(prefix):]}" if message.startswith(prefix) else message


def _fmt(values: np.ndarray) -> str:
    return "(" + ", ".join(f"{value:.4g}" for value in values) + ")"

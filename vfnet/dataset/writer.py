"""Writing a raw dataset from converted sources, all or nothing.

The converters in dataset_conversion/ read their own table format and hand each case to `RawDatasetWriter`.
The writer builds `$vfnet_raw/.DatasetXXX_Name.partial-<pid>/` and renames it to `DatasetXXX_Name` only at the
end, so an interrupted conversion never leaves a half dataset under the real name. It also keeps the
conversion summary: converted cases, graded vertebrae per grade, skipped subjects and skipped vertebrae by reason.
"""
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from vfnet.dataset.format import (CENTROID_SUFFIX, centroid_path, image_path, is_safe_case_id,
                                  make_dataset_json, mask_path, write_dataset_json)
from vfnet.dataset.image_io import check_finite, read_centroids, read_image, write_image
from vfnet.dataset.integrity import geometry_mismatches, mask_label_problems
from vfnet.errors import DatasetError, VfnetError
from vfnet.fileio import atomic_path, write_json
from vfnet.labels import GENANT_GRADES, GRADABLE_LABELS, LEVEL_TO_VERSE, level_name
from vfnet.paths import raw_folder

FILE_ENDING = ".nii.gz"
SAFE_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


FOREIGN_MATERIAL = "foreign material (x)"


def parse_grade_cell(value: object) -> tuple[int | None, str | None]:
    """A table cell as (grade, None), or (None, why it is not graded); (None, None) for a blank cell.

    Spreadsheets hand over 2, 2.0 or '2'; 'x' marks foreign material (VerSe); anything else is invalid.
    """
    if value is None or isinstance(value, bool):
        return (None, None) if value is None else (None, f"grade {value!r} is not 0-3")
    text = str(value).strip()
    if text == "":
        return None, None
    if text.lower() == "x":
        return None, FOREIGN_MATERIAL
    try:
        number = float(text)
    except ValueError:
        return None, f"grade {text!r} is not 0-3"
    if number.is_integer() and int(number) in GENANT_GRADES:
        return int(number), None
    return None, f"grade {text!r} is not 0-3"


def parse_vertebra(value: object) -> int | None:
    """A vertebra given as VerSe id (20, '20') or level name ('L1', 'l1') -> gradable VerSe id, else None."""
    text = str(value).strip()
    if isinstance(value, bool) or text == "":
        return None
    label = int(text) if text.isdigit() else LEVEL_TO_VERSE.get(text.upper())
    return label if label in GRADABLE_LABELS else None


def image_stem(path: Path) -> str:
    """File name without its image ending ('.nii.gz', '.nii', '.mha', ...)."""
    name = path.name
    for ending in (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr"):
        if name.lower().endswith(ending):
            return name[:-len(ending)]
    return path.stem


@dataclass
class CaseFiles:
    """A case's source files, read and checked: the image, and a mask or a centroid file."""
    image_source: Path
    image: sitk.Image
    mask_source: Path | None
    mask: sitk.Image | None
    centroid_source: Path | None
    labels: set[int]             # vertebra labels present in the mask (or the centroid file)


def read_case_files(image_source: Path, mask_source: Path | None = None,
                    centroid_source: Path | None = None) -> CaseFiles:
    """Read and check a case's sources; raise DatasetError naming the file on anything the dataset cannot hold."""
    image = read_image(image_source, "image")
    check_finite(image, image_source)
    if mask_source is not None:
        mask = read_image(mask_source, "mask")
        differences = geometry_mismatches(image, mask)
        if differences:
            raise DatasetError(f"mask {mask_source} and image {image_source} disagree: {'; '.join(differences)}.")
        labels, problems = mask_label_problems(mask)
        if problems:
            raise DatasetError(f"mask {mask_source}: {problems[0]}.")
        return CaseFiles(image_source, image, mask_source, mask, None, labels)
    if centroid_source is not None:
        labels = set(read_centroids(centroid_source, image))
        return CaseFiles(image_source, image, None, None, centroid_source, labels)
    raise DatasetError(f"image {image_source} has neither a mask nor a centroid file.")


def dataset_target(dataset_id: int, name: str, base: Path | None = None) -> Path:
    """`$vfnet_raw/DatasetXXX_Name`, checking that id and name make a valid folder name."""
    if not 1 <= dataset_id <= 999:
        raise VfnetError(f"Dataset id {dataset_id} must lie between 1 and 999 (it becomes three digits).")
    if not SAFE_DATASET_NAME.match(name):
        raise VfnetError(f"Dataset name {name!r} may hold only letters, digits, '_' and '-'.")
    return (base if base is not None else raw_folder()) / f"Dataset{dataset_id:03d}_{name}"


class RawDatasetWriter:
    """Use as a context manager: add cases, record skips, then `finish()`; on error nothing is left behind."""

    def __init__(self, dataset_id: int, name: str, overwrite: bool = False, base: Path | None = None,
                 description: str = ""):
        self.target = dataset_target(dataset_id, name, base)
        self.overwrite = overwrite
        self.description = description
        self.staging = self.target.parent / f".{self.target.name}.partial-{os.getpid()}"
        self.entries: list[dict[str, Any]] = []
        self.skipped_subjects: dict[str, str] = {}
        self.skipped_vertebrae: list[dict[str, Any]] = []
        self.cases_without_patient: list[str] = []
        self._refuse_existing()

    def __enter__(self) -> "RawDatasetWriter":
        if self.staging.exists():  # left by an earlier run killed with the same pid
            shutil.rmtree(self.staging)
        try:
            for sub in ("imagesTr", "labelsTr"):
                (self.staging / sub).mkdir(parents=True)
        except OSError as error:
            raise VfnetError(f"Cannot create {self.staging}: {error.strerror or error}.") from None
        return self

    def __exit__(self, *exc_info) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def _refuse_existing(self) -> None:
        if self.target.exists() and not self.overwrite:
            raise VfnetError(f"{self.target} already exists; pass --overwrite to replace it.")

    def skip_subject(self, subject: str, reason: str) -> None:
        self.skipped_subjects[subject] = reason

    def skip_vertebra(self, case_id: str, vertebra: str | int, reason: str) -> None:
        self.skipped_vertebrae.append({"case": case_id, "vertebra": str(vertebra), "reason": reason})

    def add_case(self, case_id: str, patient: str | None, files: CaseFiles, grades: dict[int, int],
                 extra: dict[str, Any] | None = None) -> bool:
        """Store a case whose graded vertebrae are all in its mask; returns False (and records why) otherwise.

        Without a patient id the case is its own patient (and counted, so the summary can warn)."""
        if not is_safe_case_id(case_id):
            self.skip_subject(str(case_id), "case id is not a safe file name (letters, digits, '.', '_', '-')")
            return False
        if any(entry["case"] == case_id for entry in self.entries):
            self.skip_subject(case_id, "case id occurs twice")
            return False
        kept = {}
        for label, grade in sorted(grades.items()):
            if label in files.labels:
                kept[label] = grade
            else:
                self.skip_vertebra(case_id, level_name(label), "graded but absent from the mask")
        if not kept:
            self.skip_subject(case_id, "none of its graded vertebrae is in the mask")
            return False
        self._copy_or_write(files.image_source, files.image, image_path(self.staging, case_id, FILE_ENDING))
        if files.mask is not None:
            self._copy_or_write(files.mask_source, files.mask, mask_path(self.staging, case_id, FILE_ENDING))
        else:
            with atomic_path(centroid_path(self.staging, case_id), suffix=CENTROID_SUFFIX) as temporary:
                shutil.copyfile(files.centroid_source, temporary)
        if patient is None:
            self.cases_without_patient.append(case_id)
        self.entries.append({"case": case_id, "patient": patient if patient is not None else case_id,
                             "vertebrae": kept, **(extra or {})})
        return True

    @staticmethod
    def _copy_or_write(source: Path, image: sitk.Image, target: Path) -> None:
        # A NIfTI source is copied byte for byte (exact voxels and header); anything else is converted.
        if source.name.endswith(FILE_ENDING):
            with atomic_path(target, suffix=FILE_ENDING) as temporary:
                shutil.copyfile(source, temporary)
        else:
            write_image(image, target)

    def summary(self) -> dict[str, Any]:
        per_grade = Counter(grade for entry in self.entries for grade in entry["vertebrae"].values())
        return {
            "dataset": str(self.target),
            "cases": len(self.entries),
            "patients": len({entry["patient"] for entry in self.entries}),
            "graded_vertebrae": sum(per_grade.values()),
            "graded_per_grade": {str(grade): per_grade.get(grade, 0) for grade in GENANT_GRADES},
            "skipped_subjects": dict(sorted(self.skipped_subjects.items())),
            "skipped_vertebrae_by_reason": dict(Counter(item["reason"] for item in self.skipped_vertebrae)),
            "skipped_vertebrae": self.skipped_vertebrae,
            "cases_without_patient": len(self.cases_without_patient),
        }

    def finish(self) -> dict[str, Any]:
        """Write dataset.json and conversion_summary.json, then move the dataset to its final name."""
        if not self.entries:
            raise VfnetError(f"No case could be converted for {self.target.name}; skipped: "
                             + "; ".join(f"{subject}: {reason}" for subject, reason in
                                         list(self.skipped_subjects.items())[:5]) + ".")
        write_dataset_json(self.staging, make_dataset_json(self.target.name, self.entries, FILE_ENDING,
                                                           self.description))
        summary = self.summary()
        write_json(self.staging / "conversion_summary.json", summary)
        self._refuse_existing()  # another process may have created it meanwhile
        previous = self.target.parent / f".{self.target.name}.replaced-{os.getpid()}"
        try:
            if self.target.exists():
                os.replace(self.target, previous)
            os.replace(self.staging, self.target)
        except OSError as error:
            raise VfnetError(f"Cannot move the converted dataset to {self.target}: {error.strerror or error}.") \
                from None
        shutil.rmtree(previous, ignore_errors=True)
        return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The summary printed at the end of a conversion."""
    per_grade = ", ".join(f"grade {grade}: {count}" for grade, count in summary["graded_per_grade"].items())
    lines = [f"Wrote {summary['dataset']}: {summary['cases']} case(s) of {summary['patients']} patient(s), "
             f"{summary['graded_vertebrae']} graded vertebrae ({per_grade})."]
    if summary["skipped_subjects"]:
        lines.append(f"Skipped {len(summary['skipped_subjects'])} subject(s)/case(s):")
        lines += [f"  {subject}: {reason}" for subject, reason in summary["skipped_subjects"].items()]
    if summary["skipped_vertebrae_by_reason"]:
        lines.append("Vertebrae not converted, by reason:")
        lines += [f"  {count} x {reason}" for reason, count in summary["skipped_vertebrae_by_reason"].items()]
    lines += [patient_warning(summary["cases_without_patient"], summary["cases"])] \
        if summary.get("cases_without_patient") else []
    return "\n".join(lines)


def patient_warning(without: int, cases: int) -> str:
    return (f"Warning: {without} of {cases} case(s) have no patient id, so each is taken as its own patient: the "
            f"cross-validation folds then group by case, and repeat scans of one patient would leak between "
            f"training and validation. Give patient ids where a patient has several scans.")

"""The raw dataset format: the one place that parses dataset.json.

Layout (nnU-Net v2 naming, see documentation/dataset_format.md)::

    DatasetXXX_Name/
      dataset.json
      imagesTr/<case>_0000<file_ending>      CT in HU
      labelsTr/<case><file_ending>           vertebra instance mask, VerSe label ids
      labelsTr/<case>_ctd.json               VerSe centroid JSON, allowed where no mask exists

dataset.json keeps nnU-Net's keys and adds `grades` and `training` (case, patient, {vertebra label: grade}).
Schema problems are collected, not raised one by one, so the integrity check can report all of them.
"""
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vfnet.errors import DatasetError
from vfnet.fileio import read_json, write_json
from vfnet.labels import GENANT_GRADES, GRADABLE_LABELS, nnunet_label_names

REQUIRED_KEYS = ("channel_names", "labels", "numTraining", "file_ending", "grades", "training")
SAFE_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
CENTROID_SUFFIX = "_ctd.json"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset: which case, which file, what."""
    message: str
    case: str | None = None
    file: str | None = None

    def __str__(self) -> str:
        where = " ".join(part for part in (f"case {self.case}" if self.case else "", self.file or "") if part)
        return f"{where}: {self.message}" if where else self.message


@dataclass(frozen=True)
class RawCase:
    case_id: str
    patient: str
    image: Path
    mask: Path | None            # None when only centroids exist
    centroids: Path | None       # VerSe centroid JSON, used where there is no mask
    grades: dict[int, int]       # VerSe vertebra label -> Genant grade 0-3


@dataclass
class RawDataset:
    folder: Path
    name: str
    file_ending: str
    description: dict[str, Any]
    cases: list[RawCase] = field(default_factory=list)

    @property
    def num_vertebrae(self) -> int:
        return sum(len(case.grades) for case in self.cases)


def is_safe_case_id(case_id: Any) -> bool:
    return isinstance(case_id, str) and bool(SAFE_CASE_ID.match(case_id)) and ".." not in case_id


def image_path(folder: Path, case_id: str, file_ending: str) -> Path:
    return folder / "imagesTr" / f"{case_id}_0000{file_ending}"


def mask_path(folder: Path, case_id: str, file_ending: str) -> Path:
    return folder / "labelsTr" / f"{case_id}{file_ending}"


def centroid_path(folder: Path, case_id: str) -> Path:
    return folder / "labelsTr" / f"{case_id}{CENTROID_SUFFIX}"


def parse_grade(value: Any) -> int | None:
    """A Genant grade is a JSON integer 0-3; anything else (2.5, '2', true, 4) is rejected."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in GENANT_GRADES:
        return None
    return value


def parse_dataset(folder: str | Path) -> tuple[RawDataset | None, list[Problem]]:
    """Read dataset.json and check its schema. Returns the dataset (None if unusable) and every problem found."""
    folder = Path(folder)
    json_file = folder / "dataset.json"
    problems: list[Problem] = []
    if not folder.is_dir():
        return None, [Problem("dataset folder does not exist", file=str(folder))]
    try:
        description = read_json(json_file, "dataset.json")
    except Exception as error:  # VfnetError with a message naming the file
        return None, [Problem(str(error), file=str(json_file))]
    if not isinstance(description, dict):
        return None, [Problem("dataset.json must hold a JSON object", file=str(json_file))]
    missing = [key for key in REQUIRED_KEYS if key not in description]
    if missing:
        return None, [Problem(f"dataset.json lacks the key(s) {', '.join(missing)}", file=str(json_file))]
    file_ending = description["file_ending"]
    if not isinstance(file_ending, str) or not file_ending.startswith("."):
        return None, [Problem(f"file_ending must be a string such as '.nii.gz', not {file_ending!r}",
                              file=str(json_file))]
    training = description["training"]
    if not isinstance(training, list):
        return None, [Problem("'training' must be a list of {case, patient, vertebrae}", file=str(json_file))]

    dataset = RawDataset(folder=folder, name=folder.name, file_ending=file_ending, description=description)
    seen: set[str] = set()
    for index, entry in enumerate(training):
        case = _parse_case(entry, index, folder, file_ending, seen, problems, str(json_file))
        if case is not None:
            dataset.cases.append(case)

    num_training = description["numTraining"]
    if isinstance(num_training, bool) or not isinstance(num_training, int) or num_training != len(training):
        problems.append(Problem(f"numTraining is {num_training!r} but 'training' lists {len(training)} cases",
                                file=str(json_file)))
    if not training:
        problems.append(Problem("the dataset has no training cases", file=str(json_file)))
    grades_present = {grade for case in dataset.cases for grade in case.grades.values()}
    if training and len(grades_present) < 2:
        problems.append(Problem(f"at least two different grades are needed to train a classifier; found only "
                                f"{sorted(grades_present)}", file=str(json_file)))
    return dataset, problems


def _parse_case(entry: Any, index: int, folder: Path, file_ending: str, seen: set[str],
                problems: list[Problem], json_file: str) -> RawCase | None:
    if not isinstance(entry, dict) or "case" not in entry or "vertebrae" not in entry:
        problems.append(Problem(f"training[{index}] must be an object with 'case', 'patient' and 'vertebrae'",
                                file=json_file))
        return None
    case_id = entry["case"]
    if not is_safe_case_id(case_id):
        problems.append(Problem(f"training[{index}]: case id {case_id!r} is not a safe file name (letters, digits, "
                                f"'.', '_' and '-' only, no '..' or slashes)", file=json_file))
        return None
    if case_id in seen:
        problems.append(Problem("case id is listed twice in 'training'", case=case_id, file=json_file))
        return None
    seen.add(case_id)
    patient = entry.get("patient", case_id)
    if not isinstance(patient, (str, int)) or isinstance(patient, bool) or str(patient) == "":
        problems.append(Problem(f"patient {patient!r} must be a non-empty string", case=case_id, file=json_file))
        return None
    vertebrae = entry["vertebrae"]
    if not isinstance(vertebrae, dict) or not vertebrae:
        problems.append(Problem("'vertebrae' must map vertebra labels to grades and not be empty",
                                case=case_id, file=json_file))
        return None
    grades: dict[int, int] = {}
    for key, value in vertebrae.items():
        label = int(key) if isinstance(key, str) and key.isdigit() else None
        if label is None or label not in GRADABLE_LABELS:
            problems.append(Problem(f"vertebra {key!r} is not a gradable VerSe label id (1-25 or 28)",
                                    case=case_id, file=json_file))
            continue
        grade = parse_grade(value)
        if grade is None:
            problems.append(Problem(f"vertebra {key}: grade {value!r} is not a Genant grade (an integer 0-3)",
                                    case=case_id, file=json_file))
            continue
        grades[label] = grade
    mask = mask_path(folder, case_id, file_ending)
    centroids = centroid_path(folder, case_id)
    return RawCase(case_id=case_id, patient=str(patient), image=image_path(folder, case_id, file_ending),
                   mask=mask if mask.exists() or not centroids.exists() else None,
                   centroids=centroids if centroids.exists() else None, grades=grades)


def load_raw_dataset(folder: str | Path) -> RawDataset:
    """Read a raw dataset, raising DatasetError listing every schema problem (file checks: see integrity.py)."""
    dataset, problems = parse_dataset(folder)
    if problems or dataset is None:
        listing = "\n".join(f"  - {problem}" for problem in problems)
        raise DatasetError(f"The dataset in {folder} has {len(problems)} problem(s):\n{listing}")
    return dataset


def make_dataset_json(name: str, cases: list[dict[str, Any]], file_ending: str = ".nii.gz",
                      description: str = "") -> dict[str, Any]:
    """Build dataset.json from [{'case', 'patient', 'vertebrae': {label: grade}, ...}] (converters/generator)."""
    return {
        "name": name,
        "description": description,
        "channel_names": {"0": "CT"},
        "labels": nnunet_label_names(),
        "numTraining": len(cases),
        "file_ending": file_ending,
        "grades": {str(grade): name for grade, name in GENANT_GRADES.items()},
        "training": [_training_entry(c) for c in cases],
    }


def _training_entry(case: dict[str, Any]) -> dict[str, Any]:
    """One 'training' entry; extra keys (e.g. a converter's 'shapes') are kept after the required ones."""
    entry = {"case": case["case"], "patient": str(case.get("patient", case["case"])),
             "vertebrae": {str(label): int(grade)
                           for label, grade in sorted(case["vertebrae"].items(), key=lambda kv: int(kv[0]))}}
    entry.update({key: value for key, value in case.items() if key not in entry})
    return entry


def write_dataset_json(folder: str | Path, data: dict[str, Any]) -> None:
    write_json(Path(folder) / "dataset.json", data)

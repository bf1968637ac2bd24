"""Reading prediction and reference tables (csv module, no pandas), with errors that name the file and row."""
import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vfnet.errors import VfnetError
from vfnet.fileio import read_json
from vfnet.labels import LEVEL_TO_VERSE, NUM_GRADES

PROBABILITY_COLUMNS = [f"p{grade}" for grade in range(NUM_GRADES)]
SUM_TOLERANCE = 1e-2  # CSVs round probabilities; a larger deviation means the columns are not probabilities

Key = tuple[str, int]  # (case, VerSe vertebra label)


@dataclass
class PredictionTable:
    keys: list[Key]
    probabilities: np.ndarray            # (N, 4)
    patients: list[str | None]           # from a `patient` column where present
    reference: list[int | None]          # from a `reference` column where present (validation predictions)


def parse_vertebra(value: str, where: str) -> int:
    """A vertebra is a VerSe label id ('20') or a level name ('L1')."""
    text = value.strip()
    if text.isdigit():
        return int(text)
    if text in LEVEL_TO_VERSE:
        return LEVEL_TO_VERSE[text]
    raise VfnetError(f"{where}: vertebra {value!r} is neither a VerSe label id nor a level name such as L1.")


def _read_rows(path: Path, required: list[str]) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            rows = list(reader)
    except FileNotFoundError:
        raise VfnetError(f"The file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise VfnetError(f"The file {path} cannot be read as CSV: {error}.") from None
    missing = [column for column in required if column not in columns]
    if missing:
        raise VfnetError(f"{path} lacks the column(s) {', '.join(missing)} (it has: {', '.join(columns) or 'none'}).")
    if not rows:
        raise VfnetError(f"{path} has a header but no rows.")
    return rows


def _parse_grade(value: str | None, where: str) -> int | None:
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    if not text.isdigit() or int(text) >= NUM_GRADES:
        raise VfnetError(f"{where}: grade {value!r} is not a Genant grade (an integer 0-3).")
    return int(text)


def read_predictions(path: str | Path) -> PredictionTable:
    """Read predictions.csv (columns case, vertebra, p0..p3; optional patient and reference)."""
    path = Path(path)
    rows = _read_rows(path, ["case", "vertebra", *PROBABILITY_COLUMNS])
    keys: list[Key] = []
    probabilities = np.zeros((len(rows), NUM_GRADES))
    seen: dict[Key, int] = {}
    for index, row in enumerate(rows):
        where = f"{path} row {index + 2}"  # row 1 is the header
        key = (row["case"].strip(), parse_vertebra(row["vertebra"], where))
        if key in seen:
            raise VfnetError(f"{where}: case {key[0]} vertebra {key[1]} is listed twice (first on row "
                             f"{seen[key] + 2}).")
        seen[key] = index
        keys.append(key)
        try:
            probabilities[index] = [float(row[column]) for column in PROBABILITY_COLUMNS]
        except (TypeError, ValueError):
            raise VfnetError(f"{where}: p0-p3 must be numbers, got "
                             f"{[row[c] for c in PROBABILITY_COLUMNS]}.") from None
        values = probabilities[index]
        if not all(math.isfinite(v) and 0 <= v <= 1 for v in values) or abs(values.sum() - 1) > SUM_TOLERANCE:
            raise VfnetError(f"{where}: p0-p3 must be probabilities in [0, 1] that sum to 1, got {values.tolist()}.")
    return PredictionTable(
        keys=keys, probabilities=probabilities,
        patients=[(row.get("patient") or "").strip() or None for row in rows],
        reference=[_parse_grade(row.get("reference"), f"{path} row {i + 2}") for i, row in enumerate(rows)])


def read_reference(path: str | Path) -> dict[Key, tuple[int, str]]:
    """Reference grades {(case, vertebra): (grade, patient)} from a CSV (case, vertebra, grade[, patient]),
    a dataset.json, or a dataset folder holding one."""
    path = Path(path)
    if path.is_dir():
        path = path / "dataset.json"
    if path.suffix.lower() == ".json":
        return _reference_from_dataset_json(path)
    rows = _read_rows(path, ["case", "vertebra", "grade"])
    reference: dict[Key, tuple[int, str]] = {}
    for index, row in enumerate(rows):
        where = f"{path} row {index + 2}"
        key = (row["case"].strip(), parse_vertebra(row["vertebra"], where))
        grade = _parse_grade(row["grade"], where)
        if grade is None:
            raise VfnetError(f"{where}: the grade is empty.")
        if key in reference:
            raise VfnetError(f"{where}: case {key[0]} vertebra {key[1]} is listed twice.")
        reference[key] = (grade, (row.get("patient") or "").strip() or key[0])
    return reference


def _reference_from_dataset_json(path: Path) -> dict[Key, tuple[int, str]]:
    description = read_json(path, "dataset.json")
    training = description.get("training") if isinstance(description, dict) else None
    if not isinstance(training, list):
        raise VfnetError(f"{path} has no 'training' list of {{case, patient, vertebrae}} entries.")
    reference: dict[Key, tuple[int, str]] = {}
    for index, entry in enumerate(training):
        if not isinstance(entry, dict) or not isinstance(entry.get("vertebrae"), dict) or "case" not in entry:
            raise VfnetError(f"{path}: training[{index}] must be an object with 'case' and 'vertebrae'.")
        case = str(entry["case"])
        for label, grade in entry["vertebrae"].items():
            if isinstance(grade, bool) or not isinstance(grade, int) or not 0 <= grade < NUM_GRADES:
                raise VfnetError(f"{path}: case {case} vertebra {label}: grade {grade!r} is not an integer 0-3.")
            reference[(case, parse_vertebra(str(label), f"{path} case {case}"))] = (
                grade, str(entry.get("patient", case)))
    return reference

"""Convert any CT collection described by a CSV table into a vfnet raw dataset.

Usage::

    python dataset_conversion/convert_csv.py -i TABLE.csv -d ID [-n NAME] [--overwrite]

TABLE.csv has the columns `case, image, mask, vertebra, grade` and optionally `patient`, one row per graded
vertebra. `image` and `mask` are paths relative to the CSV's folder or absolute; a `mask` ending in `.json` is a
VerSe centroid file (centroid-only case). `vertebra` is a VerSe id (20) or a level name (L1); `grade` is 0-3.
Rows of one case must name the same image, mask and patient (default patient: the case id). Case ids must be
safe file names (letters, digits, '.', '_', '-'), so none can escape the dataset folder.
Writes `$vfnet_raw/DatasetID_NAME` (default NAME `CSV`) and prints what was converted and skipped.
"""
import argparse
import csv
import sys
from pathlib import Path
from typing import Sequence

from vfnet.cli.common import add_debug_flag, run_cli
from vfnet.dataset.format import is_safe_case_id
from vfnet.dataset.writer import (RawDatasetWriter, format_summary, parse_grade_cell, parse_vertebra,
                                  read_case_files)
from vfnet.errors import VfnetError

REQUIRED_COLUMNS = ("case", "image", "mask", "vertebra", "grade")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convert_csv.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("-i", dest="table", type=Path, required=True, metavar="TABLE.csv",
                        help="CSV table, one row per graded vertebra")
    parser.add_argument("-d", dest="dataset_id", type=int, required=True, metavar="ID", help="dataset id (1-999)")
    parser.add_argument("-n", dest="name", metavar="NAME", default="CSV", help="dataset name (default: CSV)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing DatasetID_NAME")
    add_debug_flag(parser)
    return parser


def read_rows(table: Path) -> list[dict[str, str]]:
    if not table.is_file():
        raise VfnetError(f"CSV table {table} does not exist.")
    try:
        with open(table, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [name.strip() for name in reader.fieldnames or []]
            rows = [{key.strip(): (value or "").strip() for key, value in row.items() if key} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise VfnetError(f"CSV table {table} cannot be read ({error}).") from None
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        raise VfnetError(f"CSV table {table} lacks the column(s) {', '.join(missing)} "
                         f"(needed: {', '.join(REQUIRED_COLUMNS)}[, patient]).")
    if not rows:
        raise VfnetError(f"CSV table {table} has no rows.")
    return rows


def group_by_case(rows: list[dict[str, str]]) -> dict[str, list[tuple[int, dict[str, str]]]]:
    """{case: [(CSV line number, row), ...]} in the order cases first appear."""
    cases: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for index, row in enumerate(rows):
        cases.setdefault(row["case"], []).append((index + 2, row))  # line 1 is the header
    return cases


def case_grades(case_id: str, rows: list[tuple[int, dict[str, str]]], writer: RawDatasetWriter) -> dict[int, int]:
    grades: dict[int, int] = {}
    for line, row in rows:
        label = parse_vertebra(row["vertebra"])
        if label is None:
            writer.skip_vertebra(case_id, row["vertebra"], "not a gradable VerSe id or level name")
            continue
        grade, reason = parse_grade_cell(row["grade"])
        if grade is None:
            writer.skip_vertebra(case_id, row["vertebra"], reason or "grade is blank")
        elif grades.get(label, grade) != grade:
            writer.skip_vertebra(case_id, row["vertebra"], f"graded twice with different grades (line {line})")
            grades.pop(label)
        else:
            grades[label] = grade
    return grades


def resolve(table: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else table.parent / path


def convert(args: argparse.Namespace) -> dict:
    table = args.table.expanduser()
    rows = read_rows(table)
    with RawDatasetWriter(args.dataset_id, args.name, overwrite=args.overwrite,
                          description=f"converted from {table.name}") as writer:
        for case_id, case_rows in group_by_case(rows).items():
            if not is_safe_case_id(case_id):
                writer.skip_subject(repr(case_id), "case id is not a safe file name (letters, digits, '.', '_', '-')")
                continue
            sources = {(row["image"], row["mask"], row.get("patient") or None) for _, row in case_rows}
            if len(sources) > 1:
                writer.skip_subject(case_id, "its rows name different image, mask or patient values")
                continue
            image, mask, patient = sources.pop()
            grades = case_grades(case_id, case_rows, writer)
            if not grades:
                writer.skip_subject(case_id, "no row gives a valid vertebra and grade")
                continue
            if not image or not mask:
                writer.skip_subject(case_id, "the image or mask column is empty")
                continue
            mask_path = resolve(table, mask)
            centroid_only = mask_path.name.lower().endswith(".json")
            try:
                files = read_case_files(resolve(table, image), None if centroid_only else mask_path,
                                        mask_path if centroid_only else None)
            except VfnetError as error:  # DatasetError for images, VfnetError for an unreadable JSON
                writer.skip_subject(case_id, str(error))
                continue
            writer.add_case(case_id, patient, files, grades)
        return writer.finish()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(format_summary(convert(args)))
    return 0


def entry() -> None:
    sys.exit(run_cli("convert_csv", main))


if __name__ == "__main__":
    entry()

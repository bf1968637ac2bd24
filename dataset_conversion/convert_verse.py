"""Convert VerSe'19/'20 (subject layout) with Genant grades into a vfnet raw dataset.

Usage::

    python dataset_conversion/convert_verse.py -i VERSE_DIR -g GRADES_FILE -d ID [-n NAME] [--overwrite]

VERSE_DIR holds `rawdata/<sub>/<sub>*_ct.nii.gz` and `derivatives/<sub>/<sub>*_seg-vert_msk.nii.gz`, or
sub-folders that each hold such a pair (VerSe'20's 01_training/, 02_validation/, ...). GRADES_FILE is the table
of Löffler et al. 2020 as xlsx (sheet `VerSe_dataset`) or CSV: one row per subject, `verse_ID` n for
`sub-verse%03d`, `<level>_fx-g` (Genant 0-3, `x` foreign material, blank not graded) and `<level>_fx-s` shape codes
(0 none, 1 wedge, 2 biconcave, 3 crush), kept per case as `shapes` in dataset.json.
Each scan becomes one case (`sub-gl003_dir-ax_ct.nii.gz` -> case `gl003_dir-ax`); the subject is the patient.
Writes `$vfnet_raw/DatasetID_NAME` (default NAME `VerSe`) and prints what was converted and skipped.
"""
import argparse
import csv
import re
import sys
from pathlib import Path
from typing import Sequence

from vfnet.cli.common import add_debug_flag, run_cli
from vfnet.dataset.writer import RawDatasetWriter, format_summary, parse_grade_cell, read_case_files
from vfnet.errors import DatasetError, VfnetError
from vfnet.labels import GRADABLE_LABELS, LEVEL_TO_VERSE, level_name

CT_SUFFIX = "_ct.nii.gz"
MASK_SUFFIX = "_seg-vert_msk.nii.gz"
NOT_GRADED = "in the mask but not graded (blank)"
SHEET = "VerSe_dataset"
LEVEL_COLUMN = re.compile(r"^(?P<level>[A-Za-z]+[0-9]+)_fx-(?P<kind>[gs])$")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convert_verse.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("-i", dest="input", type=Path, required=True, metavar="VERSE_DIR",
                        help="VerSe folder with rawdata/ and derivatives/")
    parser.add_argument("-g", dest="grades", type=Path, required=True, metavar="GRADES_FILE",
                        help="grade table (.xlsx or .csv)")
    parser.add_argument("-d", dest="dataset_id", type=int, required=True, metavar="ID", help="dataset id (1-999)")
    parser.add_argument("-n", dest="name", metavar="NAME", default="VerSe", help="dataset name (default: VerSe)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing DatasetID_NAME")
    add_debug_flag(parser)
    return parser


def read_table_rows(path: Path) -> list[dict[str, object]]:
    """The rows of the grade table (xlsx sheet VerSe_dataset, or CSV) as {column: cell value}."""
    if not path.is_file():
        raise VfnetError(f"Grade table {path} does not exist.")
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        import openpyxl  # only needed for xlsx tables
        try:
            workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as error:  # openpyxl raises several unrelated types for a broken file
            raise VfnetError(f"Grade table {path} cannot be read as an xlsx workbook ({error}).") from None
        if SHEET not in workbook.sheetnames:
            raise VfnetError(f"Grade table {path} has no sheet {SHEET!r} (sheets: {', '.join(workbook.sheetnames)}).")
        rows = list(workbook[SHEET].iter_rows(values_only=True))
        workbook.close()
        if not rows:
            raise VfnetError(f"Grade table {path}: sheet {SHEET!r} is empty.")
        header = [str(cell).strip() if cell is not None else "" for cell in rows[0]]
        return [dict(zip(header, row)) for row in rows[1:]]
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise VfnetError(f"Grade table {path} cannot be read as CSV ({error}).") from None


def subject_name(verse_id: object) -> str | None:
    """verse_ID n -> 'sub-verse%03d'; a VerSe'20 name such as 'gl003' -> 'sub-gl003'; blank -> None."""
    if verse_id is None or str(verse_id).strip() == "":
        return None
    text = str(verse_id).strip()
    try:
        number = float(text)
    except ValueError:
        return text if text.startswith("sub-") else f"sub-{text}"
    if not number.is_integer() or number < 0:
        raise VfnetError(f"verse_ID {text!r} is not a subject number.")
    return f"sub-verse{int(number):03d}"


def read_wide_grade_table(path: Path) -> dict[str, dict[str, dict[int, object]]]:
    """{subject: {"grades": {label: cell}, "shapes": {label: cell}}} from the wide table, one row per subject."""
    rows = read_table_rows(path)
    columns = list(rows[0]) if rows else []
    if "verse_ID" not in columns:
        raise VfnetError(f"Grade table {path} has no 'verse_ID' column.")
    level_columns = {}
    for column in columns:
        match = LEVEL_COLUMN.match(column or "")
        if match:
            label = LEVEL_TO_VERSE.get(match["level"].upper())
            if label not in GRADABLE_LABELS:
                raise VfnetError(f"Grade table {path}: column {column!r} names no gradable vertebra level.")
            level_columns[column] = (label, "grades" if match["kind"] == "g" else "shapes")
    if not any(kind == "grades" for _, kind in level_columns.values()):
        raise VfnetError(f"Grade table {path} has no '<level>_fx-g' column (e.g. 'L1_fx-g').")
    table: dict[str, dict[str, dict[int, object]]] = {}
    for row in rows:
        subject = subject_name(row.get("verse_ID"))
        if subject is None:
            continue  # trailing empty spreadsheet rows
        if subject in table:
            raise VfnetError(f"Grade table {path} lists {subject} twice.")
        table[subject] = {"grades": {}, "shapes": {}}
        for column, (label, kind) in level_columns.items():
            table[subject][kind][label] = row.get(column)
    return table


def find_scans(verse_dir: Path) -> dict[str, list[tuple[str, Path, Path]]]:
    """{subject: [(scan name, CT path, mask path), ...]} for every `rawdata/<sub>/<sub>*_ct.nii.gz`."""
    if not verse_dir.is_dir():
        raise VfnetError(f"VerSe folder {verse_dir} does not exist.")
    rawdata_folders = [verse_dir / "rawdata"] if (verse_dir / "rawdata").is_dir() else sorted(
        verse_dir.glob("*/rawdata"))
    scans: dict[str, list[tuple[str, Path, Path]]] = {}
    for rawdata in rawdata_folders:
        for subject_folder in sorted(p for p in rawdata.iterdir() if p.is_dir() and p.name.startswith("sub-")):
            subject = subject_folder.name
            for ct in sorted(subject_folder.glob(f"{subject}*{CT_SUFFIX}")):
                scan = ct.name[:-len(CT_SUFFIX)]
                mask = rawdata.parent / "derivatives" / subject / f"{scan}{MASK_SUFFIX}"
                scans.setdefault(subject, []).append((scan, ct, mask))
    if not scans:
        raise VfnetError(f"No rawdata/sub-*/sub-*{CT_SUFFIX} found under {verse_dir}.")
    return scans


def subject_grades(row: dict[str, dict[int, object]], subject: str, writer: RawDatasetWriter,
                   ) -> tuple[dict[int, int], dict[str, int], set[int]]:
    """Grades and shape codes of one table row; 'x' and invalid cells are recorded as skipped vertebrae.

    Returns (grades, shapes, labels the table mentions with any value), the last to tell blank from absent.
    """
    grades: dict[int, int] = {}
    mentioned: set[int] = set()
    for label, value in row["grades"].items():
        grade, reason = parse_grade_cell(value)
        if grade is not None:
            grades[label] = grade
        elif reason is not None:
            mentioned.add(label)
            writer.skip_vertebra(subject, level_name(label), reason)
    shapes = {}
    for label in grades:
        shape, _ = parse_grade_cell(row["shapes"].get(label))
        if shape is not None:
            shapes[str(label)] = shape
    return grades, shapes, mentioned | set(grades)


def convert(args: argparse.Namespace) -> dict:
    table = read_wide_grade_table(args.grades)
    scans = find_scans(args.input.expanduser())
    description = f"VerSe converted from {args.input} with grades from {args.grades.name}"
    with RawDatasetWriter(args.dataset_id, args.name, overwrite=args.overwrite, description=description) as writer:
        for subject, row in table.items():
            if subject not in scans:
                writer.skip_subject(subject, "listed in the grade table but has no CT under rawdata/")
                continue
            grades, shapes, mentioned = subject_grades(row, subject, writer)
            if not grades:
                writer.skip_subject(subject, "no vertebra of this subject is graded 0-3 in the table")
                continue
            for scan, ct, mask in scans[subject]:
                case_id = scan.removeprefix("sub-")
                try:
                    files = read_case_files(ct, mask)
                except DatasetError as error:
                    writer.skip_subject(case_id, str(error))
                    continue
                for label in sorted(files.labels - mentioned):
                    writer.skip_vertebra(case_id, level_name(label), NOT_GRADED)
                writer.add_case(case_id, subject.removeprefix("sub-"), files, grades,
                                extra={"shapes": {k: v for k, v in shapes.items() if int(k) in files.labels}})
        for subject in sorted(set(scans) - set(table)):
            writer.skip_subject(subject, "not in the grade table")
        return writer.finish()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(format_summary(convert(args)))
    return 0


def entry() -> None:
    sys.exit(run_cli("convert_verse", main))


if __name__ == "__main__":
    entry()

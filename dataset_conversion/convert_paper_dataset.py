"""Convert the dataset released with "Faint Features Tell" (Wei et al. 2022) into a vfnet raw dataset.

Usage::

    python dataset_conversion/convert_paper_dataset.py -i DIR -d ID [-n NAME] [--overwrite]

DIR holds CT and mask files and `annotation.yaml`, which maps each CT file (path relative to DIR) to its
graded vertebrae, given as VerSe ids or level names::

    ct/case01.nii.gz: {L1: 0, L2: 2, 22: 1}
    ct/case02.nii.gz:                     # the explicit form names the mask and the patient
      mask: masks/case02_seg.nii.gz
      patient: p02
      vertebrae: {T12: 0, L1: 3}

Without `mask:` the mask is looked up, in this order, as `<stem>_seg`, `_mask`, `_msk` or `_seg-vert_msk` beside
the CT, then as a file of the same name in a folder `mask(s)`, `label(s)`, `seg(s)` or `segmentation(s)` next to
the CT's folder or inside DIR. The case id is the CT file name without its ending; it is also the patient
unless `patient:` says otherwise. Writes `$vfnet_raw/DatasetID_NAME` (default NAME `FaintFeatures`).
"""
import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml

from vfnet.cli.common import add_debug_flag, run_cli
from vfnet.dataset.writer import (RawDatasetWriter, format_summary, image_stem, parse_grade_cell,
                                  parse_vertebra, read_case_files)
from vfnet.errors import VfnetError

ANNOTATION = "annotation.yaml"
MASK_SUFFIXES = ("_seg", "_mask", "_msk", "_seg-vert_msk")
MASK_FOLDERS = ("mask", "masks", "label", "labels", "seg", "segs", "segmentation", "segmentations")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convert_paper_dataset.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("-i", dest="input", type=Path, required=True, metavar="DIR", help="folder with annotation.yaml")
    parser.add_argument("-d", dest="dataset_id", type=int, required=True, metavar="ID", help="dataset id (1-999)")
    parser.add_argument("-n", dest="name", metavar="NAME", default="FaintFeatures",
                        help="dataset name (default: FaintFeatures)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing DatasetID_NAME")
    add_debug_flag(parser)
    return parser


def read_annotation(folder: Path) -> dict[str, Any]:
    path = folder / ANNOTATION
    if not path.is_file():
        raise VfnetError(f"Annotation file {path} does not exist.")
    try:
        with open(path) as handle:
            annotation = yaml.safe_load(handle)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise VfnetError(f"Annotation file {path} cannot be read as YAML ({str(error).splitlines()[0]}).") from None
    if not isinstance(annotation, dict) or not annotation:
        raise VfnetError(f"Annotation file {path} must map CT files to {{vertebra: grade}}.")
    return annotation


def find_mask(folder: Path, ct: Path) -> Path | None:
    """The mask of `ct` by the naming conventions in the module docstring, or None."""
    stem, ending = image_stem(ct), ct.name[len(image_stem(ct)):]
    candidates = [ct.with_name(f"{stem}{suffix}{ending}") for suffix in MASK_SUFFIXES]
    for base in (ct.parent.parent, folder):
        candidates += [base / name / ct.name for name in MASK_FOLDERS]
    return next((path for path in candidates if path.is_file() and path != ct), None)


def parse_entry(value: Any) -> tuple[dict[Any, Any], str | None, str | None]:
    """(vertebra -> grade cells, explicit mask or None, explicit patient or None) of one annotation entry."""
    if isinstance(value, dict) and "vertebrae" in value:
        vertebrae = value["vertebrae"]
        mask, patient = value.get("mask"), value.get("patient")
        if not isinstance(vertebrae, dict):
            raise ValueError("'vertebrae' must map vertebrae to grades")
        return vertebrae, (str(mask) if mask else None), (str(patient) if patient else None)
    if not isinstance(value, dict):
        raise ValueError("its value must map vertebrae to grades")
    return value, None, None


def convert(args: argparse.Namespace) -> dict:
    folder = args.input.expanduser()
    annotation = read_annotation(folder)
    with RawDatasetWriter(args.dataset_id, args.name, overwrite=args.overwrite,
                          description=f"Faint Features Tell dataset converted from {folder}") as writer:
        for ct_name, value in annotation.items():
            ct = folder / str(ct_name)
            case_id = image_stem(ct)
            try:
                cells, explicit_mask, patient = parse_entry(value)
            except ValueError as error:
                writer.skip_subject(str(ct_name), f"annotation entry is malformed: {error}")
                continue
            grades = {}
            for vertebra, cell in cells.items():
                label = parse_vertebra(vertebra)
                grade, reason = parse_grade_cell(cell)
                if label is None or grade is None:
                    writer.skip_vertebra(case_id, vertebra, "not a gradable VerSe id or level name"
                                         if label is None else reason or "grade is blank")
                else:
                    grades[label] = grade
            if not grades:
                writer.skip_subject(str(ct_name), "no vertebra with a valid grade")
                continue
            mask = folder / explicit_mask if explicit_mask else find_mask(folder, ct)
            if mask is None:
                writer.skip_subject(str(ct_name), "no mask file found for this CT")
                continue
            try:
                files = read_case_files(ct, mask)
            except VfnetError as error:
                writer.skip_subject(str(ct_name), str(error))
                continue
            writer.add_case(case_id, patient, files, grades)
        return writer.finish()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(format_summary(convert(args)))
    return 0


def entry() -> None:
    sys.exit(run_cli("convert_paper_dataset", main))


if __name__ == "__main__":
    entry()

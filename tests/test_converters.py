"""The dataset converters (VerSe, the paper's dataset, CSV) and the raw dataset writer they share."""
import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from vfnet.dataset.integrity import verify_dataset
from vfnet.dataset.writer import parse_grade_cell, parse_vertebra
from vfnet.errors import VfnetError
from vfnet.labels import LEVEL_TO_VERSE

REPO = Path(__file__).resolve().parents[1]
SHAPE = (12, 8, 8)  # z, y, x


def load_script(name):
    """Import dataset_conversion/<name>.py by path, as `python dataset_conversion/<name>.py` would run it."""
    spec = importlib.util.spec_from_file_location(name, REPO / "dataset_conversion" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_pair(ct_path, mask_path, labels, spacing=(1.0, 1.0, 2.0)):
    """A tiny CT and a mask holding `labels` in consecutive 4-slice slabs."""
    ct_path.parent.mkdir(parents=True, exist_ok=True)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    ct = sitk.GetImageFromArray(np.random.default_rng(0).normal(0, 100, SHAPE).astype(np.int16))
    mask = np.zeros(SHAPE, np.uint8)
    for index, label in enumerate(labels):
        mask[index * 4:(index + 1) * 4, 2:6, 2:6] = label
    mask = sitk.GetImageFromArray(mask)
    for image in (ct, mask):
        image.SetSpacing(spacing)
    sitk.WriteImage(ct, str(ct_path))
    sitk.WriteImage(mask, str(mask_path))


def training(folder):
    return {entry["case"]: entry for entry in json.loads((folder / "dataset.json").read_text())["training"]}


def raw_listing(vfnet_folders):
    return sorted(os.listdir(vfnet_folders["vfnet_raw"]))


# ---------------------------------------------------------------- shared parsing helpers

@pytest.mark.parametrize("cell, expected", [
    (2, (2, None)), (2.0, (2, None)), ("3", (3, None)), (" 0 ", (0, None)), (None, (None, None)), ("", (None, None)),
    ("x", (None, "foreign material (x)")), ("X", (None, "foreign material (x)")),
    (4, (None, "grade '4' is not 0-3")), (-1, (None, "grade '-1' is not 0-3")), (2.5, (None, "grade '2.5' is not 0-3")),
    ("two", (None, "grade 'two' is not 0-3")), (True, (None, "grade True is not 0-3")),
])
def test_parse_grade_cell(cell, expected):
    assert parse_grade_cell(cell) == expected


def test_parse_vertebra():
    assert parse_vertebra("L1") == 20 and parse_vertebra("t12") == 19 and parse_vertebra(22) == 22
    assert parse_vertebra("T13") == 28
    assert parse_vertebra("S1") is None and parse_vertebra("L9") is None and parse_vertebra("") is None


# ---------------------------------------------------------------- VerSe

def make_verse(root):
    """Subjects: 001 clean; 002 without CT; 003 with x, blank and a graded level missing from the mask;
    gl003 (VerSe'20 style) with two scans; 005 with a truncated mask; 006 present but not in the table."""
    def subject(name, scans, labels):
        for scan in scans:
            write_pair(root / "rawdata" / name / f"{scan}_ct.nii.gz",
                       root / "derivatives" / name / f"{scan}_seg-vert_msk.nii.gz", labels)
    subject("sub-verse001", ["sub-verse001"], (20, 21))
    subject("sub-verse003", ["sub-verse003"], (20, 21, 22))
    subject("sub-gl003", ["sub-gl003_dir-ax", "sub-gl003_dir-sag"], (19, 20))
    subject("sub-verse005", ["sub-verse005"], (20, 21))
    broken = root / "derivatives" / "sub-verse005" / "sub-verse005_seg-vert_msk.nii.gz"
    broken.write_bytes(broken.read_bytes()[:40])
    subject("sub-verse006", ["sub-verse006"], (20,))
    rows = [
        {"verse_ID": "1", "L1_fx-g": "0", "L2_fx-g": "2", "L1_fx-s": "0", "L2_fx-s": "1"},
        {"verse_ID": "2", "L1_fx-g": "1"},
        {"verse_ID": "3", "L1_fx-g": "1", "L2_fx-g": "x", "L4_fx-g": "3", "L1_fx-s": "2", "L2_fx-s": "x"},
        {"verse_ID": "gl003", "T12_fx-g": "3", "L1_fx-g": "0", "T12_fx-s": "3"},
        {"verse_ID": "5", "L1_fx-g": "0"},
    ]
    columns = ["verse_ID"] + [f"{level}_fx-{kind}" for kind in "gs" for level in ("T12", "L1", "L2", "L3", "L4")]
    with open(root / "grades.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_verse_converter(tmp_path, vfnet_folders, capsys):
    verse = make_verse(tmp_path / "verse")
    convert_verse = load_script("convert_verse")
    assert convert_verse.main(["-i", str(verse), "-g", str(verse / "grades.csv"), "-d", "3"]) == 0
    folder = vfnet_folders["vfnet_raw"] / "Dataset003_VerSe"
    entries = training(folder)
    assert set(entries) == {"verse001", "verse003", "gl003_dir-ax", "gl003_dir-sag"}
    assert entries["verse001"]["vertebrae"] == {"20": 0, "21": 2}
    assert entries["verse001"]["shapes"] == {"20": 0, "21": 1}
    assert entries["verse003"]["vertebrae"] == {"20": 1} and entries["verse003"]["shapes"] == {"20": 2}
    assert entries["gl003_dir-ax"]["patient"] == entries["gl003_dir-sag"]["patient"] == "gl003"
    assert entries["gl003_dir-ax"]["vertebrae"] == {"19": 3, "20": 0}
    assert verify_dataset(folder) == []

    summary = json.loads((folder / "conversion_summary.json").read_text())
    assert summary["graded_per_grade"] == {"0": 3, "1": 1, "2": 1, "3": 2}
    assert summary["skipped_vertebrae_by_reason"] == {
        "foreign material (x)": 1, "in the mask but not graded (blank)": 1, "graded but absent from the mask": 1}
    skipped = summary["skipped_subjects"]
    assert set(skipped) == {"sub-verse002", "verse005", "sub-verse006"}
    assert "no CT" in skipped["sub-verse002"] and "cannot be read" in skipped["verse005"]
    assert "not in the grade table" in skipped["sub-verse006"]
    printed = capsys.readouterr().out
    assert "4 case(s) of 3 patient(s), 7 graded vertebrae" in printed and "1 x foreign material (x)" in printed
    assert "no patient id" not in printed   # VerSe names the subject: no warning
    assert raw_listing(vfnet_folders) == ["Dataset003_VerSe"]


def test_verse_refuses_to_overwrite_unless_asked(tmp_path, vfnet_folders):
    verse = make_verse(tmp_path / "verse")
    convert_verse = load_script("convert_verse")
    arguments = ["-i", str(verse), "-g", str(verse / "grades.csv"), "-d", "3", "-n", "Small"]
    assert convert_verse.main(arguments) == 0
    marker = vfnet_folders["vfnet_raw"] / "Dataset003_Small" / "marker"
    marker.write_text("old")
    with pytest.raises(VfnetError, match="already exists; pass --overwrite"):
        convert_verse.main(arguments)
    assert marker.exists()
    assert convert_verse.main(arguments + ["--overwrite"]) == 0
    assert not marker.exists() and raw_listing(vfnet_folders) == ["Dataset003_Small"]


def test_verse_xlsx_and_bad_tables(tmp_path, vfnet_folders):
    import openpyxl
    verse = make_verse(tmp_path / "verse")
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "VerSe_dataset"
    sheet.append(["verse_ID", "L1_fx-g", "L2_fx-g", "L1_fx-s"])
    sheet.append([1, 3, None, 3])
    sheet.append([None, None, None, None])  # trailing empty row as spreadsheets have
    workbook.save(tmp_path / "grades.xlsx")
    convert_verse = load_script("convert_verse")
    assert convert_verse.main(["-i", str(verse), "-g", str(tmp_path / "grades.xlsx"), "-d", "4"]) == 0
    entries = training(vfnet_folders["vfnet_raw"] / "Dataset004_VerSe")
    assert entries == {"verse001": {"case": "verse001", "patient": "verse001", "vertebrae": {"20": 3},
                                    "shapes": {"20": 3}}}
    workbook.active.title = "Other"
    workbook.save(tmp_path / "wrong_sheet.xlsx")
    with pytest.raises(VfnetError, match="no sheet 'VerSe_dataset'"):
        convert_verse.main(["-i", str(verse), "-g", str(tmp_path / "wrong_sheet.xlsx"), "-d", "5"])
    (tmp_path / "no_id.csv").write_text("subject,L1_fx-g\n1,0\n")
    with pytest.raises(VfnetError, match="no 'verse_ID' column"):
        convert_verse.main(["-i", str(verse), "-g", str(tmp_path / "no_id.csv"), "-d", "5"])
    assert raw_listing(vfnet_folders) == ["Dataset004_VerSe"]


def test_phantom_verse_converts_completely(shared_data, vfnet_folders):
    import openpyxl
    phantom = shared_data / "phantom_verse"
    grades_file = phantom / "fracture_grading.xlsx"
    load_script("convert_verse").main(["-i", str(phantom), "-g", str(grades_file), "-d", "1"])
    folder = vfnet_folders["vfnet_raw"] / "Dataset001_VerSe"
    rows = list(openpyxl.load_workbook(grades_file, read_only=True)["VerSe_dataset"].iter_rows(values_only=True))
    header = rows[0]
    expected = {}
    for row in rows[1:]:
        graded = {str(LEVEL_TO_VERSE[column[:-len("_fx-g")]]): int(value) for column, value in zip(header, row)
                  if column.endswith("_fx-g") and value not in (None, "x")}
        expected[f"verse{int(row[0]):03d}"] = graded
    assert len(expected) == 40
    assert {case: entry["vertebrae"] for case, entry in training(folder).items()} == expected
    assert verify_dataset(folder) == []


# ---------------------------------------------------------------- the paper's dataset

def test_paper_dataset_converter(tmp_path, vfnet_folders, capsys):
    source = tmp_path / "paper"
    write_pair(source / "ct" / "case01.nii.gz", source / "masks" / "case01.nii.gz", (20, 21))
    write_pair(source / "ct" / "case02.nii.gz", source / "ct" / "case02_seg.nii.gz", (19, 20))
    write_pair(source / "ct" / "case03.nii.gz", source / "elsewhere" / "m3.nii.gz", (20,))
    write_pair(source / "ct" / "case04.nii.gz", tmp_path / "unused.nii.gz", (20,))
    (source / "annotation.yaml").write_text(
        "ct/case01.nii.gz: {L1: 0, 21: 2, L3: 5}\n"
        "ct/case02.nii.gz: {T12: 1, L1: 3}\n"
        "ct/case03.nii.gz:\n  mask: elsewhere/m3.nii.gz\n  patient: p01\n  vertebrae: {L1: 2}\n"
        "ct/case04.nii.gz: {L1: 0}\n")
    convert = load_script("convert_paper_dataset")
    assert convert.main(["-i", str(source), "-d", "7"]) == 0
    folder = vfnet_folders["vfnet_raw"] / "Dataset007_FaintFeatures"
    entries = training(folder)
    assert set(entries) == {"case01", "case02", "case03"}
    assert entries["case01"]["vertebrae"] == {"20": 0, "21": 2}
    assert entries["case02"]["vertebrae"] == {"19": 1, "20": 3}
    assert entries["case03"]["patient"] == "p01"
    assert "Warning: 2 of 3 case(s) have no patient id" in capsys.readouterr().out
    summary = json.loads((folder / "conversion_summary.json").read_text())
    assert summary["cases_without_patient"] == 2
    assert summary["skipped_subjects"] == {"ct/case04.nii.gz": "no mask file found for this CT"}
    assert summary["skipped_vertebrae"] == [{"case": "case01", "vertebra": "L3", "reason": "grade '5' is not 0-3"}]
    assert verify_dataset(folder) == []


def test_paper_dataset_bad_yaml(tmp_path, vfnet_folders):
    (tmp_path / "annotation.yaml").write_text("ct/a.nii.gz: {L1: [0\n")
    with pytest.raises(VfnetError, match="annotation.yaml cannot be read as YAML"):
        load_script("convert_paper_dataset").main(["-i", str(tmp_path), "-d", "7"])
    assert raw_listing(vfnet_folders) == []


# ---------------------------------------------------------------- CSV

def test_csv_converter(tmp_path, vfnet_folders, capsys):
    write_pair(tmp_path / "data" / "a_ct.nii.gz", tmp_path / "data" / "a_seg.nii.gz", (20, 21))
    write_pair(tmp_path / "abs" / "b_ct.nii.gz", tmp_path / "abs" / "b_seg.nii.gz", (20, 21))
    write_pair(tmp_path / "data" / "c_ct.nii.gz", tmp_path / "unused_c.nii.gz", (20,))
    (tmp_path / "data" / "c_ctd.json").write_text(json.dumps(
        [{"direction": ["L", "P", "S"]}, {"label": 20, "X": 4, "Y": 4, "Z": 2}]))
    absolute = tmp_path / "abs"
    rows = [
        "case,image,mask,vertebra,grade,patient",
        "a,data/a_ct.nii.gz,data/a_seg.nii.gz,L1,0,p1",
        "a,data/a_ct.nii.gz,data/a_seg.nii.gz,21,2,p1",
        "a,data/a_ct.nii.gz,data/a_seg.nii.gz,S1,1,p1",
        f"b,{absolute}/b_ct.nii.gz,{absolute}/b_seg.nii.gz,L2,3,p1",
        "c,data/c_ct.nii.gz,data/c_ctd.json,L1,1,",
        "../evil,data/a_ct.nii.gz,data/a_seg.nii.gz,L1,1,",
        "d,data/missing.nii.gz,data/a_seg.nii.gz,L1,1,",
    ]
    (tmp_path / "table.csv").write_text("\n".join(rows) + "\n")
    assert load_script("convert_csv").main(["-i", str(tmp_path / "table.csv"), "-d", "12", "-n", "Mine"]) == 0
    folder = vfnet_folders["vfnet_raw"] / "Dataset012_Mine"
    entries = training(folder)
    assert set(entries) == {"a", "b", "c"}
    assert entries["a"]["vertebrae"] == {"20": 0, "21": 2} and entries["b"]["patient"] == "p1"
    assert entries["c"]["patient"] == "c" and (folder / "labelsTr" / "c_ctd.json").is_file()
    printed = capsys.readouterr().out
    assert "Warning: 1 of 3 case(s) have no patient id" in printed and "repeat scans" in printed
    summary = json.loads((folder / "conversion_summary.json").read_text())
    assert "not a safe file name" in summary["skipped_subjects"]["'../evil'"]
    assert "does not exist" in summary["skipped_subjects"]["d"]
    assert summary["skipped_vertebrae_by_reason"] == {"not a gradable VerSe id or level name": 1}
    assert not (vfnet_folders["vfnet_raw"] / "evil").exists() and raw_listing(vfnet_folders) == ["Dataset012_Mine"]
    assert verify_dataset(folder) == []


def test_csv_script_errors_without_traceback(tmp_path, vfnet_folders):
    (tmp_path / "table.csv").write_text("case,image,vertebra\na,x.nii.gz,L1\n")
    result = subprocess.run([sys.executable, str(REPO / "dataset_conversion" / "convert_csv.py"),
                             "-i", str(tmp_path / "table.csv"), "-d", "1"], capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "table.csv lacks the column(s) mask, grade" in result.stderr


def test_nothing_convertible_leaves_nothing(tmp_path, vfnet_folders):
    (tmp_path / "table.csv").write_text("case,image,mask,vertebra,grade\na,none.nii.gz,none.nii.gz,L1,0\n")
    with pytest.raises(VfnetError, match="No case could be converted"):
        load_script("convert_csv").main(["-i", str(tmp_path / "table.csv"), "-d", "1"])
    assert raw_listing(vfnet_folders) == []

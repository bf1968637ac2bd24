"""The integrity check: each file problem built on the fly, found, and named with case, file and problem."""
import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from vfnet.cli import verify_dataset as cli
from vfnet.dataset.format import make_dataset_json, write_dataset_json
from vfnet.dataset.integrity import raise_if_problems, verify_dataset
from vfnet.errors import DatasetError

SHAPE = (8, 8, 8)  # z, y, x


def image(array, spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0), direction=None):
    result = sitk.GetImageFromArray(array)
    result.SetSpacing(spacing)
    result.SetOrigin(origin)
    if direction is not None:
        result.SetDirection(direction)
    return result


def ct_array(seed=0):
    return np.random.default_rng(seed).normal(0, 100, SHAPE).astype(np.int16)


def mask_array(labels=(20, 21)):
    mask = np.zeros(SHAPE, np.uint8)
    for index, label in enumerate(labels):
        mask[index * 4:(index + 1) * 4, 2:6, 2:6] = label
    return mask


def build_dataset(folder, ending=".nii.gz"):
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    cases = [{"case": "a", "patient": "p1", "vertebrae": {20: 0, 21: 1}}, {"case": "b", "vertebrae": {20: 2}}]
    for entry in cases:
        sitk.WriteImage(image(ct_array()), str(folder / "imagesTr" / f"{entry['case']}_0000{ending}"))
        sitk.WriteImage(image(mask_array()), str(folder / "labelsTr" / f"{entry['case']}{ending}"))
    write_dataset_json(folder, make_dataset_json(folder.name, cases, file_ending=ending))
    return folder


@pytest.fixture
def dataset(tmp_path):
    """A clean two-case dataset (grades 0, 1 and 2) that each test then breaks in one way."""
    return build_dataset(tmp_path / "Dataset001_T")


def messages(folder):
    return [str(problem) for problem in verify_dataset(folder)]


def only_problem(folder, *fragments):
    found = messages(folder)
    assert len(found) == 1, found
    assert all(fragment in found[0] for fragment in fragments), found[0]
    return found[0]


def test_clean_dataset_passes(dataset):
    assert verify_dataset(dataset) == []
    raise_if_problems([], dataset)  # no exception


def test_missing_image(dataset):
    (dataset / "imagesTr" / "b_0000.nii.gz").unlink()
    problems = messages(dataset)
    assert any("case b" in m and "b_0000.nii.gz" in m and "image file is missing" in m for m in problems)
    assert any("numTraining is 2 but imagesTr holds 1" in m for m in problems)


def test_unreadable_image(dataset):
    path = dataset / "imagesTr" / "a_0000.nii.gz"
    path.write_bytes(b"not an image at all")
    only_problem(dataset, "case a", "a_0000.nii.gz", "cannot be read as an image")


def test_truncated_mask(dataset):
    path = dataset / "labelsTr" / "a.nii.gz"
    path.write_bytes(path.read_bytes()[:60])
    only_problem(dataset, "case a", "labelsTr", "a.nii.gz", "mask")


def test_two_dimensional_image(dataset):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 8), np.int16)), str(dataset / "imagesTr" / "a_0000.nii.gz"))
    only_problem(dataset, "case a", "a_0000.nii.gz", "is 2D; a 3D image is required")


def test_four_dimensional_image(dataset):
    volume = sitk.GetImageFromArray(np.zeros(SHAPE, np.int16))
    sitk.WriteImage(sitk.JoinSeries([volume, volume]), str(dataset / "imagesTr" / "a_0000.nii.gz"))
    only_problem(dataset, "case a", "is 4D")


def test_nan_voxels(tmp_path):
    # MHA keeps NaN through SimpleITK, so the check sees it in the array read.
    dataset = build_dataset(tmp_path / "Dataset001_T", ending=".mha")
    array = ct_array().astype(np.float32)
    array[1, 2, 3] = np.nan
    sitk.WriteImage(image(array), str(dataset / "imagesTr" / "b_0000.mha"))
    only_problem(dataset, "case b", "b_0000.mha", "1 NaN or infinite voxel(s)")


@pytest.mark.parametrize("ending", [".nii.gz", ".nii"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_voxels_in_nifti_which_simpleitk_reads_as_zero(tmp_path, ending, dtype):
    dataset = build_dataset(tmp_path / "Dataset001_T", ending=ending)
    array = ct_array().astype(dtype)
    array[1, 2, 3], array[4, 4, 4], array[0, 0, 0] = np.nan, np.inf, -np.inf
    path = dataset / "imagesTr" / f"b_0000{ending}"
    sitk.WriteImage(image(array), str(path))
    read_back = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert np.isfinite(read_back).all() and read_back[1, 2, 3] == 0.0, "SimpleITK hides them: the reason for the scan"
    only_problem(dataset, "case b", f"b_0000{ending}", "3 NaN or infinite voxel(s)", "-1024 HU")


def test_cli_names_the_ct_with_nan_voxels(dataset, capsys):
    array = ct_array().astype(np.float32)
    array[2, 2, 2] = np.nan
    sitk.WriteImage(image(array), str(dataset / "imagesTr" / "a_0000.nii.gz"))
    assert cli.main(["-i", str(dataset)]) == 1
    assert "a_0000.nii.gz" in capsys.readouterr().out


@pytest.mark.parametrize("change, expected", [
    ({"array": np.zeros((8, 8, 9), np.uint8)}, "shape"),
    ({"spacing": (1.0, 1.1, 2.0)}, "spacing"),
    ({"origin": (0.0, 0.5, 0.0)}, "origin"),
    ({"direction": (-1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)}, "direction"),
])
def test_geometry_mismatch(dataset, change, expected):
    array = change.pop("array", mask_array())
    sitk.WriteImage(image(array, **change), str(dataset / "labelsTr" / "a.nii.gz"))
    found = [m for m in messages(dataset) if "mask and image disagree" in m]
    assert len(found) == 1 and "case a" in found[0] and expected in found[0], found


def test_geometry_within_tolerance_passes(dataset):
    sitk.WriteImage(image(mask_array(), spacing=(1.0, 1.0002, 2.0), origin=(0.001, 0.0, 0.0)),
                    str(dataset / "labelsTr" / "a.nii.gz"))
    assert messages(dataset) == []


def test_graded_vertebra_absent_from_mask(dataset):
    sitk.WriteImage(image(mask_array(labels=(20,))), str(dataset / "labelsTr" / "a.nii.gz"))
    only_problem(dataset, "case a", "a.nii.gz", "graded vertebra 21 (L2) is absent from the mask")


def test_empty_mask(dataset):
    sitk.WriteImage(image(np.zeros(SHAPE, np.uint8)), str(dataset / "labelsTr" / "b.nii.gz"))
    only_problem(dataset, "case b", "b.nii.gz", "mask is empty")


def test_labels_outside_verse_ids(dataset):
    mask = mask_array()
    mask[0, 0, 0] = 40
    sitk.WriteImage(image(mask), str(dataset / "labelsTr" / "b.nii.gz"))
    only_problem(dataset, "case b", "label(s) [40]", "not VerSe vertebra ids")


def test_non_integer_mask(dataset):
    sitk.WriteImage(image(mask_array().astype(np.float32) * 1.5), str(dataset / "labelsTr" / "b.nii.gz"))
    only_problem(dataset, "case b", "non-integer values")


def _centroid_only(dataset, entries):
    (dataset / "labelsTr" / "b.nii.gz").unlink()
    (dataset / "labelsTr" / "b_ctd.json").write_text(json.dumps(entries))


def test_centroid_only_case_passes(dataset):
    _centroid_only(dataset, [{"direction": ["L", "P", "S"]}, {"label": 20, "X": 4, "Y": 4, "Z": 2}])
    assert messages(dataset) == []


def test_centroid_file_without_direction(dataset):
    _centroid_only(dataset, [{"label": 20, "X": 4, "Y": 4, "Z": 2}])
    only_problem(dataset, "case b", "b_ctd.json", "direction")


def test_centroid_outside_image(dataset):
    _centroid_only(dataset, [{"direction": ["L", "P", "S"]}, {"label": 20, "X": 4, "Y": 4, "Z": 50}])
    only_problem(dataset, "case b", "b_ctd.json", "outside the image")


def test_graded_vertebra_absent_from_centroids(dataset):
    _centroid_only(dataset, [{"direction": ["L", "P", "S"]}, {"label": 21, "X": 4, "Y": 4, "Z": 2}])
    only_problem(dataset, "case b", "b_ctd.json", "graded vertebra 20 (L1) is absent from the centroid file")


def test_centroid_file_not_json(dataset):
    (dataset / "labelsTr" / "b.nii.gz").unlink()
    (dataset / "labelsTr" / "b_ctd.json").write_text("[{")
    only_problem(dataset, "case b", "b_ctd.json", "not valid JSON")


def test_neither_mask_nor_centroids(dataset):
    (dataset / "labelsTr" / "b.nii.gz").unlink()
    only_problem(dataset, "case b", "neither a mask nor a centroid file")


def test_image_without_training_entry(dataset):
    sitk.WriteImage(image(ct_array()), str(dataset / "imagesTr" / "c_0000.nii.gz"))
    found = messages(dataset)
    assert any("c_0000.nii.gz" in m and "no entry in dataset.json 'training'" in m for m in found)
    assert any("numTraining is 2 but imagesTr holds 3" in m for m in found)


def test_schema_and_file_problems_reported_together(dataset):
    data = json.loads((dataset / "dataset.json").read_text())
    data["training"][0]["vertebrae"]["21"] = 7
    (dataset / "dataset.json").write_text(json.dumps(data))
    (dataset / "imagesTr" / "b_0000.nii.gz").unlink()
    found = messages(dataset)
    assert any("grade 7" in m for m in found) and any("image file is missing" in m for m in found)


def test_raise_if_problems_lists_them(dataset):
    (dataset / "imagesTr" / "b_0000.nii.gz").unlink()
    with pytest.raises(DatasetError, match=r"failed the integrity check with 2 problem\(s\)"):
        raise_if_problems(verify_dataset(dataset), dataset)


def test_cli_clean_dataset_writes_report_to_preprocessed(dataset, vfnet_folders, monkeypatch, capsys):
    target = vfnet_folders["vfnet_raw"] / dataset.name
    dataset.rename(target)
    assert cli.main(["-d", "1"]) == 0
    assert "Dataset001_T is OK" in capsys.readouterr().out
    report = json.loads((vfnet_folders["vfnet_preprocessed"] / dataset.name / "integrity_report.json").read_text())
    assert report["ok"] is True and report["problems"] == []


def test_cli_reports_problems_beside_dataset(dataset, monkeypatch, capsys):
    monkeypatch.delenv("vfnet_preprocessed", raising=False)
    (dataset / "imagesTr" / "b_0000.nii.gz").unlink()
    assert cli.main(["-i", str(dataset)]) == 1
    captured = capsys.readouterr()
    assert "image file is missing" in captured.out and "2 problem(s)" in captured.err
    report = json.loads((dataset / "integrity_report.json").read_text())
    assert report["num_problems"] == 2 and report["problems"][0]["case"] == "b"
    assert "image file is missing" in (dataset / "integrity_report.txt").read_text()


def test_cli_broken_dataset_json_has_no_traceback(dataset, tmp_path):
    (dataset / "dataset.json").write_text("not json")
    result = subprocess.run([sys.executable, "-m", "vfnet.cli.verify_dataset", "-i", str(dataset),
                             "--report_dir", str(tmp_path / "reports")], capture_output=True, text=True)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "dataset.json" in result.stdout and "not valid JSON" in result.stdout


def test_cli_unknown_dataset_id(vfnet_folders, capsys):
    from vfnet.cli.common import run_cli
    assert run_cli("vfnet_verify_dataset", cli.main, ["-d", "42"]) == 1
    assert "Dataset042_" in capsys.readouterr().err

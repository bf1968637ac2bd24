"""paths, atomic file writes, the CLI error wrapper and VerSe centroid reading."""
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from vfnet import paths
from vfnet.cli.common import run_cli
from vfnet.dataset.image_io import read_centroids, read_image, write_centroids
from vfnet.errors import DatasetError, VfnetError
from vfnet.fileio import atomic_path, read_json, save_npy, write_json
from vfnet.labels import TOTALSEGMENTATOR_TO_VERSE, VERSE_LEVELS, nnunet_label_names


def test_missing_environment_variable_names_it(monkeypatch):
    monkeypatch.delenv("vfnet_raw", raising=False)
    with pytest.raises(VfnetError, match="vfnet_raw is not set"):
        paths.raw_folder()


def test_dataset_name_resolution(vfnet_folders):
    (vfnet_folders["vfnet_raw"] / "Dataset007_Spine").mkdir()
    assert paths.find_dataset_name(7) == "Dataset007_Spine"
    assert paths.find_dataset_name("007") == "Dataset007_Spine"
    assert paths.find_dataset_name("Dataset007_Spine") == "Dataset007_Spine"
    with pytest.raises(VfnetError, match="found nowhere"):
        paths.find_dataset_name(8)


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "data.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("killed")
    assert read_json(target) == {"a": 1}
    assert os.listdir(tmp_path) == ["data.json"]


def test_save_npy_and_unwritable_folder(tmp_path):
    save_npy(tmp_path / "x.npy", np.arange(3))
    assert np.load(tmp_path / "x.npy").tolist() == [0, 1, 2]
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(VfnetError, match="Cannot write"):
        write_json(blocker / "sub" / "y.json", {})


def test_read_json_names_the_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(VfnetError, match="broken.json is not valid JSON"):
        read_json(broken)


def test_run_cli_turns_errors_into_one_line(capsys):
    def failing(argv):
        raise VfnetError("file x.nii.gz is broken.")

    assert run_cli("vfnet_x", failing, []) == 1
    err = capsys.readouterr().err
    assert err.strip() == "vfnet_x: error: file x.nii.gz is broken."

    def buggy(argv):
        raise ZeroDivisionError("boom")

    assert run_cli("vfnet_x", buggy, []) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_label_tables():
    assert VERSE_LEVELS[20] == "L1" and VERSE_LEVELS[8] == "T1" and VERSE_LEVELS[28] == "T13"
    assert TOTALSEGMENTATOR_TO_VERSE[31] == 20 and TOTALSEGMENTATOR_TO_VERSE[27] == 24
    assert TOTALSEGMENTATOR_TO_VERSE[32] == 19 and TOTALSEGMENTATOR_TO_VERSE[50] == 1
    assert list(nnunet_label_names().values()) == list(range(29))


def _image(codes: str) -> sitk.Image:
    image = sitk.Image(20, 30, 40, sitk.sitkInt16)
    image.SetSpacing((1.0, 2.0, 3.0))
    image.SetOrigin((5.0, -3.0, 7.0))
    return sitk.DICOMOrient(image, codes)


@pytest.mark.parametrize("codes", ["LPS", "RAS", "PIR", "ASL"])
def test_centroids_land_on_the_same_physical_point(tmp_path, codes):
    reference = _image("LPS")
    point = reference.TransformContinuousIndexToPhysicalPoint((4.0, 10.0, 30.0))
    stored = _image(codes)
    index = stored.TransformPhysicalPointToContinuousIndex(point)
    path = tmp_path / "ctd.json"
    path.write_text(json.dumps([{"direction": list(codes)}, {"label": 20, "X": index[0], "Y": index[1],
                                                              "Z": index[2]}]))
    assert np.allclose(read_centroids(path, stored)[20], point)


@pytest.mark.parametrize("codes", ["LPS", "PIR"])
def test_written_centroids_read_back_at_the_same_points(tmp_path, codes):
    reference, image = _image("LPS"), _image(codes)
    points = {20: reference.TransformContinuousIndexToPhysicalPoint((4.0, 10.0, 30.0)),
              21: reference.TransformContinuousIndexToPhysicalPoint((5.5, 2.0, 7.25))}
    write_centroids(tmp_path / "ctd.json", points, image)
    back = read_centroids(tmp_path / "ctd.json", image)
    assert sorted(back) == [20, 21] and all(np.allclose(back[label], points[label]) for label in points)


def test_centroids_without_direction_or_outside(tmp_path):
    image = _image("LPS")
    path = tmp_path / "ctd.json"
    path.write_text(json.dumps([{"label": 20, "X": 1, "Y": 1, "Z": 1}]))
    with pytest.raises(DatasetError, match="direction"):
        read_centroids(path, image)
    path.write_text(json.dumps([{"direction": ["L", "P", "S"]}, {"label": 20, "X": 100, "Y": 1, "Z": 1}]))
    with pytest.raises(DatasetError, match="outside the image"):
        read_centroids(path, image)


def test_read_image_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_image(tmp_path / "missing.nii.gz")
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="junk.nii.gz cannot be read"):
        read_image(junk)
    flat = tmp_path / "flat.nii.gz"
    sitk.WriteImage(sitk.Image(5, 5, sitk.sitkInt16), str(flat))
    with pytest.raises(DatasetError, match="2D"):
        read_image(flat)

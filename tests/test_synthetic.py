"""The synthetic spine phantom generator: format, determinism, geometry and measured morphometry."""
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from vfnet.cli import generate_synthetic
from vfnet.cli.common import run_cli
from vfnet.dataset.format import image_path, load_raw_dataset, mask_path
from vfnet.dataset.image_io import orientation_code, read_image
from vfnet.errors import VfnetError
from vfnet.synthetic import generator
from vfnet.synthetic.deformities import HEIGHT_LOSS_RANGE, sample_heights
from vfnet.synthetic.generator import ScanRanges, generate_dataset, parse_grade_frequencies, plan_patients

FINE_SLICES = ScanRanges(in_plane_mm=(0.8, 1.0), slice_mm=(0.8, 1.0))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("raw") / "Dataset900_SyntheticSpine"
    generate_dataset(folder, 5, seed=7)
    return folder


@pytest.fixture(scope="module")
def fine_dataset(tmp_path_factory) -> Path:
    """Thin slices, so that voxelisation does not hide the height loss that was requested."""
    folder = tmp_path_factory.mktemp("raw") / "Dataset901_SyntheticFine"
    generate_dataset(folder, 4, seed=11, scan_ranges=FINE_SLICES)
    return folder


def _truth(folder: Path) -> dict:
    return json.loads((folder / "synthetic_truth.json").read_text())


def _canonical_mask(folder: Path, case: str) -> sitk.Image:
    return sitk.DICOMOrient(sitk.ReadImage(str(mask_path(folder, case, ".nii.gz"))), "LPS")


def measure_body_heights(mask: sitk.Image, label: int, centre_mm) -> dict[str, float]:
    """Anterior/middle/posterior body heights (mm) along z of a canonical LPS mask, on the mid-sagittal plane.

    The body's AP extent is read on the row through its centre; heights are counted 10 % of that depth inside
    each wall and at the middle, averaged over three neighbouring sagittal columns.
    """
    array = sitk.GetArrayFromImage(mask)
    spacing_x, spacing_y, spacing_z = mask.GetSpacing()
    ix, iy, iz = mask.TransformPhysicalPointToIndex(centre_mm)
    row = array[iz, :, ix] == label
    assert row[iy], f"the centre of vertebra {label} is not inside its mask"
    anterior_edge, posterior_edge = iy, iy
    while anterior_edge > 0 and row[anterior_edge - 1]:
        anterior_edge -= 1
    while posterior_edge < row.size - 1 and row[posterior_edge + 1]:
        posterior_edge += 1
    depth = (posterior_edge - anterior_edge + 1) * spacing_y
    heights = {}
    for name, fraction in (("anterior", 0.1), ("middle", 0.5), ("posterior", 0.9)):
        y = int(round(anterior_edge - 0.5 + fraction * depth / spacing_y))
        columns = array[:, y, ix - 1:ix + 2] == label
        heights[name] = float(columns.sum(axis=0).mean() * spacing_z)
    return heights


def _measured_loss(heights: dict[str, float], vertebra: dict) -> float:
    if vertebra["deformity"] == "crush":
        return 1 - heights["posterior"] / vertebra["expected_posterior_mm"]
    return 1 - min(heights["anterior"], heights["middle"]) / heights["posterior"]


def test_dataset_json_is_a_valid_raw_dataset(dataset):
    raw = load_raw_dataset(dataset)
    truth = _truth(dataset)
    assert len(raw.cases) == 5 and set(truth["cases"]) == {case.case_id for case in raw.cases}
    for case in raw.cases:
        expected = {int(label): v["grade"] for label, v in truth["cases"][case.case_id]["vertebrae"].items()}
        assert case.grades == expected
        assert 6 <= len(case.grades) <= 9 and min(case.grades) >= 13 and max(case.grades) <= 24  # T6-L5
        assert sorted(case.grades) == list(range(min(case.grades), max(case.grades) + 1))  # consecutive
        assert case.patient == truth["cases"][case.case_id]["patient"]
    assert not list(dataset.parent.glob(".*partial*"))
    assert raw.description["synthetic"] is True  # the model card reads it


def test_images_and_masks_share_geometry_and_hold_every_graded_label(dataset):
    for case in load_raw_dataset(dataset).cases:
        image, mask = read_image(case.image), read_image(case.mask)
        assert image.GetSize() == mask.GetSize()
        np.testing.assert_allclose(image.GetSpacing(), mask.GetSpacing())
        np.testing.assert_allclose(image.GetOrigin(), mask.GetOrigin())
        np.testing.assert_allclose(image.GetDirection(), mask.GetDirection())
        labels = set(np.unique(sitk.GetArrayViewFromImage(mask))) - {0}
        assert labels == set(case.grades)
        hu = sitk.GetArrayViewFromImage(image)
        assert hu.min() >= -1024 and hu.min() < -800  # air behind the back
        bone = hu[sitk.GetArrayViewFromImage(mask) > 0]
        assert 100 < np.median(bone) < 900
        assert image.GetNumberOfPixels() * 2 < 12e6  # small volumes


def test_same_seed_gives_identical_output_and_another_seed_does_not(dataset, tmp_path):
    again = tmp_path / "again"
    generate_dataset(again, 5, seed=7)
    assert (again / "dataset.json").read_text().replace("again", "X") == \
        (dataset / "dataset.json").read_text().replace(dataset.name, "X")
    assert _truth(again) == _truth(dataset)
    for case in _truth(dataset)["cases"]:
        for path_of in (lambda f: image_path(f, case, ".nii.gz"), lambda f: mask_path(f, case, ".nii.gz")):
            first, second = sitk.ReadImage(str(path_of(dataset))), sitk.ReadImage(str(path_of(again)))
            assert first.GetOrigin() == second.GetOrigin() and first.GetDirection() == second.GetDirection()
            np.testing.assert_array_equal(sitk.GetArrayViewFromImage(first), sitk.GetArrayViewFromImage(second))
    other = tmp_path / "other"
    generate_dataset(other, 1, seed=8)
    assert _truth(other)["cases"]["synth0001"] != _truth(dataset)["cases"]["synth0001"]


def test_orientation_varies_but_anatomy_does_not(dataset, tmp_path):
    codes = {orientation_code(read_image(case.image)) for case in load_raw_dataset(dataset).cases}
    assert len(codes) >= 2
    canonical = {}
    for code in ("LPS", "PIR"):
        folder = tmp_path / code
        generate_dataset(folder, 1, seed=3, scan_ranges=ScanRanges(orientations=(code,)))
        assert orientation_code(read_image(image_path(folder, "synth0001", ".nii.gz"))) == code
        canonical[code] = [sitk.DICOMOrient(sitk.ReadImage(str(path(folder, "synth0001", ".nii.gz"))), "LPS")
                           for path in (image_path, mask_path)]
    for lps, pir in zip(canonical["LPS"], canonical["PIR"]):
        np.testing.assert_allclose(lps.GetOrigin(), pir.GetOrigin(), atol=1e-4)
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(lps), sitk.GetArrayViewFromImage(pir))


def test_heights_measured_on_the_mask_match_the_truth(dataset):
    """Any spacing: each measured height within about one slice of the requested one."""
    truth = _truth(dataset)
    for case, entry in truth["cases"].items():
        mask = _canonical_mask(dataset, case)
        slice_mm = mask.GetSpacing()[2]
        for label, vertebra in entry["vertebrae"].items():
            heights = measure_body_heights(mask, int(label), vertebra["centre_mm"])
            for name in ("anterior", "middle", "posterior"):
                assert abs(heights[name] - vertebra[f"{name}_mm"]) <= 1.2 * slice_mm + 1.0, (case, label, name)


def test_height_loss_measured_on_the_mask_lies_in_the_grade_range(fine_dataset):
    truth = _truth(fine_dataset)
    tolerance = 0.055  # voxelisation (~1 mm slices on 15-30 mm bodies) and the gentle tilt of each body
    shapes = set()
    for case, entry in truth["cases"].items():
        mask = _canonical_mask(fine_dataset, case)
        for label, vertebra in entry["vertebrae"].items():
            loss = _measured_loss(measure_body_heights(mask, int(label), vertebra["centre_mm"]), vertebra)
            low, high = HEIGHT_LOSS_RANGE[vertebra["grade"]]
            assert low - tolerance <= loss <= high + tolerance, (case, label, vertebra, loss)
            assert abs(loss - vertebra["height_loss"]) <= tolerance
            shapes.add(vertebra["deformity"])
    assert {"none", "wedge"} <= shapes


@pytest.mark.parametrize("grade", [0, 1, 2, 3])
def test_requested_heights_follow_the_height_loss_definition(grade):
    rng = np.random.default_rng(grade)
    for _ in range(200):
        heights = sample_heights(rng, grade, 25.0)
        low, high = HEIGHT_LOSS_RANGE[grade]
        assert low <= heights.height_loss <= high
        if heights.deformity == "crush":
            derived = 1 - heights.posterior / heights.expected_posterior
        else:
            derived = 1 - min(heights.anterior, heights.middle) / heights.posterior
        assert derived == pytest.approx(heights.height_loss, abs=1e-9)
        assert grade == 0 or heights.deformity in ("wedge", "biconcave", "crush")


def test_some_patients_are_scanned_twice():
    plans = plan_patients(np.random.default_rng(0), 30, generator.DEFAULT_GRADE_FREQUENCIES)
    assert sum(plan.scans for plan in plans) == 30
    assert 1 <= sum(plan.scans == 2 for plan in plans) < len(plans)


def test_two_grades_are_guaranteed(tmp_path):
    plans = plan_patients(np.random.default_rng(0), 1, (0.999, 0.001, 0, 0))
    assert len({grade for plan in plans for grade in plan.grades}) == 2


@pytest.mark.parametrize("text", ["0.5,0.5", "a,b,c,d", "1,0,0,0", "-1,1,1,1"])
def test_bad_grade_frequencies_are_refused(text):
    with pytest.raises(VfnetError, match="grade-frequencies"):
        parse_grade_frequencies(text)


def test_cli_refuses_a_foreign_non_empty_folder(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(VfnetError, match="not empty"):
        generate_synthetic.main(["-o", str(folder), "--cases", "1", "--seed", "0"])
    assert run_cli("vfnet_generate_synthetic", generate_synthetic.main,
                   ["-o", str(folder), "--cases", "1"]) == 1
    assert "refusing" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]


def test_cli_replaces_an_earlier_synthetic_dataset(tmp_path, capsys):
    folder = tmp_path / "Dataset902_Synth"
    assert generate_synthetic.main(["-o", str(folder), "--cases", "2", "--seed", "1"]) == 0
    assert generate_synthetic.main(["-o", str(folder), "--cases", "1", "--seed", "2"]) == 0
    assert "Wrote 1 cases" in capsys.readouterr().out
    assert load_raw_dataset(folder).description["numTraining"] == 1
    assert len(list((folder / "imagesTr").iterdir())) == 1
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]


def test_an_interrupted_run_leaves_no_dataset(tmp_path, monkeypatch):
    calls = []

    def failing_write_case(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_write_case(*args, **kwargs)

    real_write_case = generator.write_case
    monkeypatch.setattr(generator, "write_case", failing_write_case)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(tmp_path / "Dataset903_Cut", 3, seed=0)
    assert list(tmp_path.iterdir()) == []

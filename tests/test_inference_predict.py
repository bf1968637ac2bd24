"""vfnet_predict end to end on a tiny untrained model: orientation invariance, input kinds, failures, reruns."""
import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from test_inference_ensemble import TINY_NETWORK, save_tiny_model
from test_inference_phantom import PHANTOM_LABELS, phantom, write_phantom
from vfnet import paths
from vfnet.cli.predict import main
from vfnet.dataset.format import make_dataset_json
from vfnet.dataset.image_io import write_image
from vfnet.fileio import write_json
from vfnet.inference.predictor import PredictSettings, run_prediction
from vfnet.labels import TOTALSEGMENTATOR_TO_VERSE

TINY_PREPROCESSING = {"target_spacing": [2.0, 2.0, 2.0], "crop_size_mm": [24.0, 24.0, 24.0], "crop_size": [12, 12, 12],
                      "background_hu": -1024, "ct_interpolation": "linear",
                      "ct_channels": [{"name": "bone", "clip": [-200, 1200], "center": 300.0, "scale": 500.0}],
                      "mask_channel": "target_vertebra", "num_input_channels": 2}


def tiny_plans() -> dict:
    return {"plans_name": "vfnetPlans", "dataset_name": "Dataset001_Tiny", "vfnet_version": "0.1.0", "budget": "cpu",
            "data_identifier": "vfnetPlans_3d", "grades_present": [0, 1, 2, 3], "preprocessing": TINY_PREPROCESSING,
            "network": TINY_NETWORK,
            "training": {"epochs": 1, "iterations_per_epoch": 1, "batch_size": 4, "samples_per_grade": 1,
                         "optimizer": "adamw", "learning_rate": 1e-3, "weight_decay": 1e-4, "warmup_epochs": 0,
                         "lr_schedule": "cosine", "grad_clip": 12.0, "ce_class_weights": [1.0, 1.0, 1.0, 1.0],
                         "supcon_weight": 0.5, "supcon_temperature": 0.1, "detach_classifier": False,
                         "augmentation": {"rotation_degrees": [15, 10, 10], "scale_range": [0.9, 1.1],
                                          "mirror_left_right": True, "gamma_range": [0.8, 1.25],
                                          "brightness_range": [0.9, 1.1], "contrast_range": [0.9, 1.1],
                                          "noise_std": 0.05, "blur_sigma": [0.5, 1.0],
                                          "low_resolution_zoom": [0.6, 1.0], "probabilities": {}}},
            "estimates": {}, "reasons": {}}


@pytest.fixture
def model_folder(vfnet_folders):
    folder = paths.model_folder("Dataset001_Tiny", "vfnetTrainer", "vfnetPlans", vfnet_folders["vfnet_results"])
    save_tiny_model(folder, [0, 1], preprocessing=TINY_PREPROCESSING)
    write_json(folder / "plans.json", tiny_plans())
    return folder


def _read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def _settings(model_folder, **changes):
    return PredictSettings(model_folder=model_folder, folds=[0, 1], **changes)


def test_prediction_is_identical_in_lps_ras_and_pir(tmp_path, model_folder):
    for orientation in ("LPS", "RAS", "PIR"):
        write_phantom(tmp_path / "in", orientation.lower(), orientation)
    run = run_prediction(tmp_path / "in", tmp_path / "out", _settings(model_folder))
    assert not run.failures
    probabilities = {record["case"]: np.array([[row[f"p{g}"] for g in range(4)] for row in record["vertebrae"]])
                     for record in run.records}
    assert probabilities["lps"].shape == (len(PHANTOM_LABELS), 4)
    np.testing.assert_allclose(probabilities["ras"], probabilities["lps"], atol=1e-4)
    np.testing.assert_allclose(probabilities["pir"], probabilities["lps"], atol=1e-4)
    rows = _read_csv(tmp_path / "out" / "predictions.csv")
    assert [(row["case"], row["level"]) for row in rows[:3]] == [("lps", "L1"), ("lps", "L2"), ("lps", "L3")]
    # Each phantom body is 8 slices of 2 mm tall and whole: measured (within a quarter voxel), not flagged as cut.
    assert all(abs(float(row["anterior_mm"]) - 16.0) <= 0.5 and "field of view" not in row["note"] for row in rows)
    assert len(_read_csv(tmp_path / "out" / "patients.csv")) == 3
    record = json.loads((tmp_path / "out" / "pir.json").read_text())
    assert record["source"]["orientation"] == "PIR" and len(record["vertebrae"]) == 3


def test_totalsegmentator_output_beside_a_single_ct(tmp_path, model_folder):
    ct, mask = phantom()
    array = sitk.GetArrayFromImage(mask)
    total = np.zeros_like(array)
    verse_to_total = {verse: total_id for total_id, verse in TOTALSEGMENTATOR_TO_VERSE.items()}
    for label in PHANTOM_LABELS:
        total[array == label] = verse_to_total[label]
    total_image = sitk.GetImageFromArray(total)
    total_image.CopyInformation(mask)
    (tmp_path / "in").mkdir()
    write_image(sitk.DICOMOrient(ct, "RAS"), tmp_path / "in" / "ct.nii.gz")
    write_image(sitk.DICOMOrient(total_image, "RAS"), tmp_path / "in" / "totalseg_multilabel.nii.gz")
    # The phantom's 22 mm level spacing reads as upper thoracic under `auto`; the point here is finding the file.
    run = run_prediction(tmp_path / "in", tmp_path / "out", _settings(model_folder, label_format="totalsegmentator"))
    assert not run.failures
    assert [row["level"] for row in run.records[0]["vertebrae"]] == ["L1", "L2", "L3"]
    assert "TotalSegmentator v2" in run.records[0]["source"]["vertebrae_from"]


def _centroid_files(tmp_path, offset_mm=(3.0, 0.0, 0.0)):
    """The phantom without its mask, and VerSe centroid files `offset_mm` away from the masks' centres of mass
    (annotators mark the vertebral body, not the centre of mass of the whole vertebra)."""
    ct_path, mask_path = write_phantom(tmp_path / "in", "case")
    mask = sitk.ReadImage(str(mask_path))
    mask_path.unlink()
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(mask)
    entries = [{"direction": ["L", "P", "S"]}]
    for label in PHANTOM_LABELS:
        point = np.add(statistics.GetCentroid(label), offset_mm)
        x, y, z = mask.TransformPhysicalPointToContinuousIndex([float(v) for v in point])
        entries.append({"label": label, "X": x, "Y": y, "Z": z})
    (tmp_path / "ctd").mkdir()
    (tmp_path / "ctd" / "case_ctd.json").write_text(json.dumps(entries))
    return tmp_path / "ctd"


def test_centroid_input_is_graded_from_masks_estimated_from_the_ct(tmp_path, model_folder):
    centroids = _centroid_files(tmp_path)
    assert main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-d", "1", "-f", "0", "1",
                 "--centroids", str(centroids), "--no_pictures"]) == 0
    rows = _read_csv(tmp_path / "out" / "predictions.csv")
    assert [row["level"] for row in rows] == ["L1", "L2", "L3"]
    record = json.loads((tmp_path / "out" / "case.json").read_text())
    assert "estimated from the CT" in record["source"]["vertebrae_from"]


def test_centroid_input_with_the_ellipsoid_has_no_morphometry(tmp_path, model_folder):
    centroids = _centroid_files(tmp_path)
    assert main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-d", "1", "-f", "0", "1",
                 "--centroids", str(centroids), "--centroid_masks", "ellipsoid", "--no_pictures"]) == 0
    rows = _read_csv(tmp_path / "out" / "predictions.csv")
    assert [row["level"] for row in rows] == ["L1", "L2", "L3"]
    assert all(row["anterior_mm"] == "" for row in rows)  # no mask, no morphometry


def _bad_cases(folder, good=True):
    if good:
        write_phantom(folder, "good")
    ct, mask = phantom()
    write_image(ct, folder / "empty_0000.nii.gz")
    write_image(mask * 0, folder / "empty.nii.gz")
    (folder / "broken_0000.nii.gz").write_bytes(b"not an image")


def test_with_continue_on_error_bad_cases_are_reported_and_the_others_predicted(tmp_path, model_folder, capsys):
    _bad_cases(tmp_path / "in")
    code = main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-d", "1", "-f", "0", "1",
                 "--continue_on_error"])
    assert code == 1
    error = capsys.readouterr().err
    assert "empty.nii.gz holds no gradable vertebra" in error and "broken_0000.nii.gz" in error
    assert error.strip().splitlines()[-1].startswith("vfnet_predict: 2 of 3 case(s) failed")
    assert {row["case"] for row in _read_csv(tmp_path / "out" / "predictions.csv")} == {"good"}
    assert {row["case"] for row in _read_csv(tmp_path / "out" / "failures.csv")} == {"broken", "empty"}
    assert not (tmp_path / "out" / "empty.json").exists()
    # Fixed inputs: the rerun succeeds and the stale failures.csv goes.
    for name in ("empty_0000.nii.gz", "empty.nii.gz", "broken_0000.nii.gz"):
        (tmp_path / "in" / name).unlink()
    assert main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-d", "1", "-f", "0", "1"]) == 0
    assert not (tmp_path / "out" / "failures.csv").exists()


def test_by_default_the_first_failing_case_stops_the_run(tmp_path, model_folder, capsys):
    _bad_cases(tmp_path / "in")
    assert main_cli(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-d", "1", "-f", "0", "1"]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("vfnet_predict: error: case broken failed") and "--continue_on_error" in last
    assert "broken_0000.nii.gz" in last and "Traceback" not in last
    assert not (tmp_path / "out" / "predictions.csv").exists()


def test_nothing_predicted_is_an_error_and_leaves_no_empty_table(tmp_path, model_folder, capsys):
    _bad_cases(tmp_path / "in", good=False)
    code = main_cli(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-d", "1", "-f", "0", "1",
                     "--continue_on_error"])
    assert code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "nothing was predicted: all 2 case(s) failed" in last and "failures.csv" in last
    assert not (tmp_path / "out" / "predictions.csv").exists() and (tmp_path / "out" / "failures.csv").is_file()


def test_case_json_lists_labels_not_predicted_resampling_and_levels_the_model_never_saw(tmp_path, model_folder,
                                                                                           capsys):
    ct, mask = phantom()
    array = sitk.GetArrayFromImage(mask)
    array[1:3, 5:15, 6:18] = 26                       # an S1 below L3
    coarse = sitk.GetImageFromArray(array)
    coarse.CopyInformation(mask)
    coarse = sitk.Resample(coarse, [n // 2 for n in mask.GetSize()], sitk.Transform(), sitk.sitkNearestNeighbor,
                           mask.GetOrigin(), [4.0, 4.0, 4.0], mask.GetDirection(), 0, sitk.sitkUInt8)
    (tmp_path / "in").mkdir()
    write_image(ct, tmp_path / "in" / "case_0000.nii.gz")
    write_image(coarse, tmp_path / "in" / "case.nii.gz")
    write_json(model_folder / "dataset.json",   # the copy vfnet_train leaves: this model saw L1 and L2 only
               make_dataset_json("Dataset001_Tiny", [{"case": "x", "patient": "p", "vertebrae": {20: 0, 21: 1}}]))
    assert main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-d", "1", "-f", "0", "1"]) == 0
    record = json.loads((tmp_path / "out" / "case.json").read_text())
    assert [row["level"] for row in record["vertebrae"]] == ["L1", "L2"]
    reasons = {entry["structure"]: entry["reason"] for entry in record["not_predicted"]}
    assert reasons["S1"].startswith("S1 is sacral") and reasons["L3"] == "the model was trained on L1-L2 only"
    assert record["source"]["mask_resampled"] is True and "resampled" in record["source"]["notes"][0]
    output = capsys.readouterr().out
    assert "case: note: mask case.nii.gz is on another voxel grid than the CT" in output
    assert "case: not predicted: S1 (S1 is sacral" in output and "L3 (the model was trained on L1-L2 only)" in output


def test_the_cut_note_gives_the_rule_that_fired(tmp_path, model_folder):
    ct, mask = phantom()
    array = sitk.GetArrayFromImage(mask)
    array[-2:, 5:15, 6:18] = 19     # a T12 whose mask reaches the top slice; its body box is mostly in view
    cut = sitk.GetImageFromArray(array)
    cut.CopyInformation(mask)
    (tmp_path / "in").mkdir()
    write_image(ct, tmp_path / "in" / "case_0000.nii.gz")
    write_image(cut, tmp_path / "in" / "case.nii.gz")
    run = run_prediction(tmp_path / "in", tmp_path / "out", _settings(model_folder))
    rows = {row["level"]: row for row in run.records[0]["vertebrae"]}
    t12 = rows["T12"]
    assert t12["cut_by_field_of_view"] and t12["note"].startswith("cut by the field of view")
    assert "reaches the first or last slice" in t12["note"] or "of its typical body box is inside" in t12["note"]
    assert f"{t12['fraction_in_view']:.0%}" in t12["note"]
    assert not rows["L2"]["cut_by_field_of_view"] and "field of view" not in rows["L2"]["note"]


def test_missing_fold_is_a_clear_error(tmp_path, model_folder, capsys):
    write_phantom(tmp_path / "in", "case")
    code = main_cli(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-d", "1", "-f", "0", "1", "2"])
    assert code == 1
    assert "fold_2/checkpoint_final.pth" in capsys.readouterr().err
    assert not (tmp_path / "out" / "predictions.csv").exists()


def test_models_trained_on_other_morphometric_features_stop_before_any_case(tmp_path, model_folder, capsys):
    # An earlier vfnet compared the body with its neighbours ("..._vs_neighbours"); its models read other ratios.
    plans = tiny_plans()
    plans["network"] = {**plans["network"], "morphometric_features": [
        "loss_anterior_vs_posterior", "loss_middle_vs_posterior", "loss_anterior_vs_neighbours",
        "loss_middle_vs_neighbours", "loss_posterior_vs_neighbours", "height_loss"]}
    write_json(model_folder / "plans.json", plans)
    write_phantom(tmp_path / "in", "case")
    code = main_cli(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-d", "1", "-f", "0", "1"])
    assert code == 1
    error = capsys.readouterr().err
    assert "plans.json lists the morphometric features" in error and "loss_anterior_vs_neighbours" in error
    assert "train again" in error and "case case failed" not in error
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def main_cli(argv):
    from vfnet.cli.common import run_cli
    return run_cli("vfnet_predict", main, argv)


def test_rerun_recomputes_only_incomplete_cases(tmp_path, model_folder):
    write_phantom(tmp_path / "in", "a")
    write_phantom(tmp_path / "in", "b")
    first = run_prediction(tmp_path / "in", tmp_path / "out", _settings(model_folder))
    (tmp_path / "out" / "b.json").unlink()
    second = run_prediction(tmp_path / "in", tmp_path / "out", _settings(model_folder))
    assert second.reused == ["a"] and [r["case"] for r in second.records] == ["a", "b"]
    assert second.records[1]["vertebrae"] == first.records[1]["vertebrae"]
    no_tta = run_prediction(tmp_path / "in", tmp_path / "out", _settings(model_folder, mirror=False))
    assert no_tta.reused == []  # other settings: nothing reused


def _write_dicom_series(image: sitk.Image, folder) -> None:
    """One DICOM file per slice, with the geometry tags a series reader needs."""
    folder.mkdir(parents=True)
    image = sitk.Cast(image, sitk.sitkInt16)
    direction = image.GetDirection()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for index in range(image.GetDepth()):
        slice_image = image[:, :, index]
        position = image.TransformIndexToPhysicalPoint((0, 0, index))
        for tag, value in (("0008|0060", "CT"), ("0020|000e", "1.2.826.0.1.3680043.2.1125.1.42"),
                           ("0020|0013", str(index + 1)), ("0020|0032", "\\".join(map(str, position))),
                           ("0020|0037", "\\".join(map(str, direction[0:1] + direction[3:4] + direction[6:7]
                                                      + direction[1:2] + direction[4:5] + direction[7:8]))),
                           ("0028|0030", f"{image.GetSpacing()[1]}\\{image.GetSpacing()[0]}"),
                           ("0018|0050", str(image.GetSpacing()[2]))):
            slice_image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{index:03d}.dcm"))
        writer.Execute(slice_image)


def test_dicom_series_folder_with_mask_beside_it(tmp_path, model_folder):
    ct, mask = phantom()
    _write_dicom_series(ct, tmp_path / "in" / "scan")
    write_image(mask, tmp_path / "masks" / "scan.nii.gz")
    reference = run_prediction(tmp_path / "in", tmp_path / "out", _settings(model_folder, masks=tmp_path / "masks"))
    assert not reference.failures and [r["case"] for r in reference.records] == ["scan"]
    write_phantom(tmp_path / "nifti", "scan")
    nifti = run_prediction(tmp_path / "nifti", tmp_path / "out2", _settings(model_folder))
    # DICOM stores integers: the CT differs from the NIfTI phantom by rounding only.
    for dicom_row, nifti_row in zip(reference.records[0]["vertebrae"], nifti.records[0]["vertebrae"]):
        assert dicom_row["level"] == nifti_row["level"]
        assert abs(dicom_row["p_fracture"] - nifti_row["p_fracture"]) < 1e-2

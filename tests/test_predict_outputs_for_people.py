"""What vfnet_predict adds for its reader: the model card's two lines and copy, per-vertebra warnings outside the
training data, a picture of each case, saliency maps on request. A tiny untrained model stands in for a trained
one; its card says what it was 'trained' on."""
import csv
import json

from test_inference_ensemble import TINY_NETWORK, save_tiny_model
from test_inference_phantom import write_phantom
from test_inference_predict import TINY_PREPROCESSING, tiny_plans
from test_predict_real import REAL_PREPROCESSING
from vfnet.cli.predict import main
from vfnet.fileio import write_json
from vfnet.inference.domain import SYNTHETIC_WARNING
from vfnet.model.card import build_training_card, write_card

# Like the demo's data: synthetic, thoraco-lumbar T10-L3, 1-2.5 mm slices, vertebra medians 150-330 HU.
SYNTHETIC_DATASET = {"synthetic": True, "description": "Synthetic spine phantoms",
                     "training": [{"case": "s1", "patient": "p1", "vertebrae": {str(label): label % 4 for label in
                                                                                 range(17, 23)}}]}
SYNTHETIC_FINGERPRINT = {"intensity": {"percentile_00_5": 100.0, "percentile_99_5": 700.0},
                         "cases": [{"case": "s1", "patient": "p1", "spacing": [1.0, 0.8, 0.8], "orientation": "LPS",
                                    "vertebrae": {"20": {"median_hu": 150.0}, "21": {"median_hu": 330.0}}},
                                   {"case": "s2", "patient": "p2", "spacing": [2.5, 1.5, 1.5], "orientation": "RAS",
                                    "vertebrae": {}}]}


def model_with_card(folder, preprocessing, dataset_json, fingerprint):
    save_tiny_model(folder, [0], preprocessing=preprocessing)
    plans = {**tiny_plans(), "preprocessing": preprocessing, "network": TINY_NETWORK}
    write_json(folder / "plans.json", plans)
    if dataset_json is not None:
        write_card(folder, build_training_card(folder, dataset_json, fingerprint, plans))
    return folder


def _rows(output):
    with open(output / "predictions.csv") as handle:
        return {row["level"]: row for row in csv.DictReader(handle)}


def test_synthetic_model_on_a_real_ct_warns_on_every_vertebra(shared_data, tmp_path, capsys):
    model = model_with_card(tmp_path / "model", REAL_PREPROCESSING, SYNTHETIC_DATASET, SYNTHETIC_FINGERPRINT)
    output = tmp_path / "out"
    assert main(["-i", str(shared_data / "real" / "totalsegmentator_example"), "-o", str(output), "-m", str(model),
                 "-f", "0"]) == 0
    console = capsys.readouterr().out.splitlines()
    card_line = next(index for index, line in enumerate(console) if line.startswith("Model "))
    assert "trained on SYNTHETIC phantoms" in console[card_line]
    assert console[card_line + 1].startswith("Cross-validation: not")
    rows = _rows(output)
    assert sorted(rows) == ["L1", "L2", "L3", "L4", "L5", "T11", "T12"]
    for level, row in rows.items():
        assert row["warning"].startswith(SYNTHETIC_WARNING), level
        # The CT has 3 mm voxels, coarser than any training scan on every axis.
        assert "spacing (z, y, x) 3 x 3 x 3 mm (training 1-2.5 x 0.8-1.5 x 0.8-1.5 mm)" in row["warning"]
    for level in ("L4", "L5"):      # never seen in training (T10-L3)
        assert f"level {level} (training T10-L3)" in rows[level]["warning"]
    assert "level" not in rows["L2"]["warning"]
    record = json.loads((output / "ct.json").read_text())
    assert all(vertebra["warning"] for vertebra in record["vertebrae"])
    summary = console[console.index("Outside what the model was trained on (the 'warning' column of "
                                    "predictions.csv):") + 1:]
    assert summary[0].startswith(f"  ct, all 7 vertebrae: {SYNTHETIC_WARNING}; spacing")
    assert any(line.startswith("  ct L5: level L5 (training T10-L3)") for line in summary)
    # The card travels with the predictions; the picture is there and shows something.
    assert json.loads((output / "model_card.json").read_text())["training_data"]["synthetic"] is True
    assert (output / "model_card.md").is_file()
    picture = output / record["picture"]
    assert picture == output / "pictures" / "ct.png" and picture.stat().st_size > 50_000


def test_inside_the_training_range_no_warning_and_pictures_on_request(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_phantom(inputs, "case1")
    real = {"description": "real", "training": [{"case": "r1", "patient": "r1", "vertebrae": {"20": 0, "21": 1,
                                                                                              "22": 2}}]}
    fingerprint = {"cases": [{"case": "r1", "patient": "r1", "spacing": [1.0, 1.0, 1.0], "orientation": "LPS",
                              "vertebrae": {"20": {"median_hu": -200.0}, "21": {"median_hu": 900.0}}},
                             {"case": "r2", "patient": "r2", "spacing": [3.0, 3.0, 3.0], "vertebrae": {}}]}
    model = model_with_card(tmp_path / "model", TINY_PREPROCESSING, real, fingerprint)
    output = tmp_path / "out"
    assert main(["-i", str(inputs), "-o", str(output), "-m", str(model), "-f", "0", "--saliency"]) == 0
    assert "Outside what the model" not in capsys.readouterr().out
    rows = _rows(output)
    assert [row["warning"] for row in rows.values()] == ["", "", ""]
    assert (output / "pictures" / "case1.png").stat().st_size > 20_000
    saliency = sorted(path.name for path in (output / "pictures").glob("*_saliency.png"))
    assert saliency == sorted(f"case1_{level}_saliency.png" for level, row in rows.items() if int(row["grade"]) >= 1)
    # --no_pictures: no picture (the settings differ, so the case is recomputed).
    other = tmp_path / "out2"
    assert main(["-i", str(inputs), "-o", str(other), "-m", str(model), "-f", "0", "--no_pictures"]) == 0
    assert not (other / "pictures").exists() and "picture" not in json.loads((other / "case1.json").read_text())


def test_a_model_without_card_is_predicted_and_says_so(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_phantom(inputs, "case1")
    model = model_with_card(tmp_path / "model", TINY_PREPROCESSING, None, None)
    assert main(["-i", str(inputs), "-o", str(tmp_path / "out"), "-m", str(model), "-f", "0", "--no_pictures"]) == 0
    assert "Model card: none in" in capsys.readouterr().out
    assert not (tmp_path / "out" / "model_card.json").exists()
    assert all(row["warning"] == "" for row in _rows(tmp_path / "out").values())

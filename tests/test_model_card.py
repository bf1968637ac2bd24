"""The model card: its content from dataset.json, the fingerprint and the plan; completion by the CV summary."""
import json

import numpy as np
import pytest

from test_inference_predict import tiny_plans
from vfnet.errors import VfnetError
from vfnet.evaluation.report import summarise
from vfnet.labels import level_ranges
from vfnet.model.card import CARD_JSON, add_cross_validation, build_training_card, load_card, write_training_card
from vfnet.model.card_text import render_markdown, summary_lines

DATASET_JSON = {"name": "Dataset900_Synth", "description": "Synthetic spine phantoms", "synthetic": True,
                "training": [{"case": "c1", "patient": "p1", "vertebrae": {"19": 0, "20": 2, "21": 0}},
                             {"case": "c2", "patient": "p1", "vertebrae": {"20": 1, "21": 0}},
                             {"case": "c3", "patient": "p2", "vertebrae": {"28": 3, "20": 0}}]}
FINGERPRINT = {"intensity": {"percentile_00_5": 90.0, "percentile_99_5": 600.0, "mean": 250.0, "std": 80.0},
               "cases": [{"case": "c1", "patient": "p1", "spacing": [2.0, 0.8, 0.8], "orientation": "RAS",
                          "vertebrae": {"19": {"grade": 0, "median_hu": 210.0}, "20": {"grade": 2, "median_hu": 260.5},
                                        "21": {"grade": 0, "median_hu": 190.0}}},
                         {"case": "c2", "patient": "p1", "spacing": [1.0, 1.2, 1.2], "orientation": "LPS",
                          "vertebrae": {"20": {"grade": 1, "median_hu": 150.0}, "21": {"grade": 0}}},
                         {"case": "c3", "patient": "p2", "spacing": [3.0, 1.0, 1.0], "orientation": "LPS",
                          "vertebrae": {"28": {"grade": 3, "median_hu": 300.0}, "20": {"grade": 0}}}]}


@pytest.fixture
def dataset_folder(tmp_path):
    folder = tmp_path / "preprocessed" / "Dataset900_Synth"
    folder.mkdir(parents=True)
    (folder / "dataset.json").write_text(json.dumps(DATASET_JSON))
    (folder / "dataset_fingerprint.json").write_text(json.dumps(FINGERPRINT))
    return folder


def test_card_content(tmp_path, dataset_folder):
    model = tmp_path / "results" / "Dataset900_Synth" / "vfnetTrainer__vfnetPlans"
    card = write_training_card(model, dataset_folder, tiny_plans())
    assert json.loads((model / CARD_JSON).read_text()) == card
    assert card["dataset"] == "Dataset900_Synth" and card["model"] == "vfnetTrainer__vfnetPlans"
    assert card["vfnet_version"] and card["created"][:2] == "20" and card["cross_validation"] is None
    data = card["training_data"]
    assert data["synthetic"] is True and (data["cts"], data["patients"], data["vertebrae"]) == (3, 2, 7)
    assert data["per_grade"] == {"0": {"cts": 3, "patients": 2, "vertebrae": 4},
                                 "1": {"cts": 1, "patients": 1, "vertebrae": 1},
                                 "2": {"cts": 1, "patients": 1, "vertebrae": 1},
                                 "3": {"cts": 1, "patients": 1, "vertebrae": 1}}
    assert list(data["levels"]) == ["T12", "T13", "L1", "L2"]   # spine order: T13 between T12 and L1
    assert data["spacing_mm"]["min"] == [1.0, 0.8, 0.8] and data["spacing_mm"]["max"] == [3.0, 1.2, 1.2]
    assert (data["vertebra_median_hu"]["min"], data["vertebra_median_hu"]["max"]) == (150.0, 300.0)
    assert data["voxel_hu"]["percentile_99_5"] == 600.0 and data["orientations"] == {"RAS": 1, "LPS": 2}
    plan = card["plan"]
    assert plan["crop_size_voxels"] == [12, 12, 12] and plan["epochs"] == 1 and "SupCon" in plan["loss"]
    text = (model / "model_card.md").read_text()
    for expected in ("Trained on synthetic phantoms only", "| 0 normal | 3 | 2 | 4 |", "T12 1, T13 1, L1 3, L2 2",
                     "spacing z (cranio-caudal): 1-3 mm", "150 to 300 HU", "Not summarised yet"):
        assert expected in text, expected
    first, second = summary_lines(card)
    assert "SYNTHETIC phantoms, 3 CTs of 2 patients, 7 vertebrae (grades 0/1/2/3: 4/1/1/1), levels T12-L2" in first
    assert "not summarised yet" in second


def test_a_real_dataset_without_fingerprint_says_what_is_not_checked(tmp_path):
    real = {key: value for key, value in DATASET_JSON.items() if key != "synthetic"}
    card = build_training_card(tmp_path / "Dataset001_Real" / "m", real, None, tiny_plans())
    assert card["training_data"]["synthetic"] is False and card["training_data"]["spacing_mm"] is None
    assert "real CTs" in summary_lines(card)[0] and "are not checked" in render_markdown(card)


def test_cross_validation_completes_the_card(tmp_path, dataset_folder):
    model = tmp_path / "results" / "Dataset900_Synth" / "vfnetTrainer__vfnetPlans"
    write_training_card(model, dataset_folder, tiny_plans())
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 4, 60)
    probabilities = rng.dirichlet(np.ones(4), 60)
    probabilities[np.arange(60), reference] += 1.0
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    summary = {**summarise(reference, probabilities, groups=np.arange(60) // 3, n_bootstrap=100),
               "folds": [0, 1, 2, 3, 4], "missing_folds": [], "pooled": "out-of-fold",
               "checkpoints": {"0": "checkpoint_final"}}
    card = add_cross_validation(model, summary, model / "cv_summary")
    cv = card["cross_validation"]
    assert cv["vertebrae"] == 60 and cv["checkpoints"] == ["checkpoint_final"]
    low, high = cv["metrics"]["macro_f1"]["ci95"]
    assert low <= cv["metrics"]["macro_f1"]["value"] <= high
    assert load_card(model)["training_data"]["vertebrae"] == 7   # the training part is kept
    second = summary_lines(card)[1]
    assert second.startswith("Cross-validation (5 folds, 60 vertebrae): macro-F1 ") and "95 % CI" in second
    assert "| macro-F1 |" in (model / "model_card.md").read_text()


def test_a_broken_card_is_a_clear_error(tmp_path):
    (tmp_path / CARD_JSON).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(VfnetError, match="model_card.json is not a vfnet-model-card-1 card"):
        load_card(tmp_path)
    assert load_card(tmp_path / "elsewhere") is None


def test_level_ranges():
    assert level_ranges(["L2", "T12", "L1", "T11"]) == "T11-L2"
    assert level_ranges(["T12", "T13", "L1", "L3"]) == "T12-L1, L3"
    assert level_ranges(["T4", "label99"]) == "T4, label99"

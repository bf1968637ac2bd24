"""The fold ensemble (softmax averaging, mirroring TTA, fold spread, plan checks) and the output files."""
import csv

import numpy as np
import pytest
import torch

from vfnet.errors import CheckpointError
from vfnet.inference.ensemble import FoldEnsemble, load_fold_models
from vfnet.inference.outputs import CUT_NOTE, load_complete_case, make_case_record, write_case_record, write_tables
from vfnet.model.checkpoint import save_checkpoint
from vfnet.model.network import build_network
from vfnet.paths import fold_folder

TINY_NETWORK = {"architecture": "ResidualEncoderClassifier", "in_channels": 2, "num_classes": 4, "stem_channels": 8,
                "stem_stride": 2, "stage_channels": [8, 16], "blocks_per_stage": [1, 1], "stage_strides": [1, 2],
                "projection_dim": 8, "dropout": 0.0}
TINY_PREPROCESSING = {"target_spacing": [2.0, 2.0, 2.0], "crop_size": [12, 12, 12]}


class ConstantLogits(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits, dtype=torch.float32)

    def forward(self, x, morphometry=None):
        return {"logits": self.logits.expand(x.shape[0], -1)}


def save_tiny_model(model_folder, folds, seed=0, network=TINY_NETWORK, preprocessing=TINY_PREPROCESSING):
    for fold in folds:
        torch.manual_seed(seed + fold)
        model = build_network(network)
        save_checkpoint(fold_folder(model_folder, fold) / "checkpoint_final.pth",
                        {"trainer": "vfnetTrainer", "plans_name": "vfnetPlans", "fold": fold, "epoch": 1,
                         "network_plan": network, "preprocessing": preprocessing,
                         "network_weights": model.state_dict()})


def test_fold_average_and_spread():
    ensemble = FoldEnsemble([ConstantLogits([0.0, 0.0, 0.0, 0.0]), ConstantLogits([np.log(7.0), 0.0, 0.0, 0.0])],
                            mirror=False)
    output = ensemble.predict(np.zeros((3, 2, 4, 4, 4), dtype=np.float32))
    # Fold 1: uniform (p0 = 0.25); fold 2: p0 = 7/10.
    np.testing.assert_allclose(output.probabilities[:, 0], [(0.25 + 0.7) / 2] * 3, atol=1e-6)
    np.testing.assert_allclose(output.probabilities.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(output.fold_spread, [np.std([0.75, 0.3])] * 3, atol=1e-6)


def test_mirroring_tta_makes_prediction_left_right_symmetric():
    torch.manual_seed(0)
    model = build_network(TINY_NETWORK)
    batch = np.random.default_rng(0).normal(size=(2, 2, 12, 12, 12)).astype(np.float32)
    mirrored = batch[..., ::-1].copy()
    with_tta = FoldEnsemble([model], mirror=True)
    np.testing.assert_allclose(with_tta.predict(batch).probabilities, with_tta.predict(mirrored).probabilities,
                               atol=1e-5)
    without = FoldEnsemble([model], mirror=False)
    assert not np.allclose(without.predict(batch).probabilities, without.predict(mirrored).probabilities, atol=1e-6)


def test_loaded_folds_reproduce_saved_networks(tmp_path):
    save_tiny_model(tmp_path, [0, 1])
    plans = {"network": TINY_NETWORK, "preprocessing": TINY_PREPROCESSING}
    models = load_fold_models(tmp_path, [0, 1], "checkpoint_final", plans)
    torch.manual_seed(1)
    reference = build_network(TINY_NETWORK).eval()
    x = torch.randn(1, 2, 12, 12, 12)
    with torch.inference_mode():
        assert torch.allclose(models[1].eval()(x)["logits"], reference(x)["logits"])


def test_missing_fold_names_the_checkpoint(tmp_path):
    save_tiny_model(tmp_path, [0, 1])
    plans = {"network": TINY_NETWORK, "preprocessing": TINY_PREPROCESSING}
    with pytest.raises(CheckpointError, match=r"fold_2/checkpoint_final.pth"):
        load_fold_models(tmp_path, [0, 1, 2], "checkpoint_final", plans)


def test_checkpoint_disagreeing_with_plans_is_refused(tmp_path):
    save_tiny_model(tmp_path, [0])
    plans = {"network": TINY_NETWORK, "preprocessing": {**TINY_PREPROCESSING, "target_spacing": [1.0, 1.0, 1.0]}}
    with pytest.raises(CheckpointError, match=r"fold_0/checkpoint_final.pth.*preprocessing.*target_spacing"):
        load_fold_models(tmp_path, [0], "checkpoint_final", plans)


def _row(case, label, level, grade, cut=False):
    return {"case": case, "vertebra": label, "level": level, "grade": grade, "p0": 0.1, "p1": 0.2, "p2": 0.3,
            "p3": 0.4, "p_fracture": 0.9, "fold_spread": 0.0, "anterior_mm": 20.0, "middle_mm": None,
            "posterior_mm": 25.0, "height_loss": 0.2, "morphometric_grade": 1, "cut_by_field_of_view": cut,
            "note": CUT_NOTE if cut else ""}


def test_tables_and_reuse_of_complete_cases(tmp_path):
    settings = {"model_folder": "m", "checkpoint": "checkpoint_final"}
    record = make_case_record("a", {}, settings, [_row("a", 20, "L1", 2), _row("a", 21, "L2", 0),
                                                  _row("a", 19, "T12", 3, cut=True)])
    assert record["highest_grade"] == 2 and record["fractured_levels"] == ["L1"]
    assert record["unreliable_levels"] == ["T12"]
    write_case_record(tmp_path, record)
    write_tables(tmp_path, [record])
    with open(tmp_path / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["level"] for row in rows] == ["L1", "L2", "T12"]
    assert rows[0]["middle_mm"] == "" and rows[2]["note"] == CUT_NOTE
    with open(tmp_path / "patients.csv") as handle:
        patients = list(csv.DictReader(handle))
    assert patients == [{"case": "a", "patient": "a", "vertebrae": "3", "highest_grade": "2",
                         "fractured_levels": "L1", "unreliable_levels": "T12", "max_p_fracture": "0.9",
                         "flagged_for_review": ""}]
    assert load_complete_case(tmp_path, "a", settings) == record
    assert load_complete_case(tmp_path, "a", {**settings, "checkpoint": "checkpoint_best"}) is None
    (tmp_path / "a.json").write_text('{"format": "vfnet-prediction-1", "case": "a", "vert')  # torn file
    assert load_complete_case(tmp_path, "a", settings) is None

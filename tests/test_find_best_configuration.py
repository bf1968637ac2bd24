"""vfnet_find_best_configuration: selection and ensembling, calibration, operating point, review flag, bad inputs."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from fake_models import (DATASET, make_cohort, model_probabilities, write_configuration, write_splits)
from hardening_corpus import assert_clean_failure, run_in_process, trained_model  # noqa: F401 (fixture)
from test_inference_predict import TINY_PREPROCESSING
from vfnet import paths
from vfnet.cli import find_best_configuration
from vfnet.evaluation.tables import read_predictions
from vfnet.inference.decisions import Decisions, calibrate, normalised_entropy
from vfnet.model.checkpoint import load_checkpoint, save_checkpoint
from vfnet.selection.alignment import PooledPredictions
from vfnet.selection.calibration import expected_calibration_error, fit_temperature, negative_log_likelihood
from vfnet.selection.instructions import decisions
from vfnet.selection.candidates import Candidate
from vfnet.selection.choice import choose

FAST = ["--bootstrap", "200"]


def _run(arguments, capsys):
    return run_in_process("vfnet_find_best_configuration", find_best_configuration.main, ["-d", "950", *FAST,
                                                                                          *arguments], capsys)


def _dataset_results(folders):
    return folders["vfnet_results"] / DATASET


def _instructions(folders):
    return json.loads(paths.inference_instructions_file(_dataset_results(folders)).read_text())


def _pooled_oof(folder, folds=range(5)):
    """(reference, probabilities) of a model folder's out-of-fold predictions, read back from its CSVs."""
    tables = [read_predictions(paths.validation_predictions_file(folder, fold)) for fold in folds]
    return (np.concatenate([table.reference for table in tables]),
            np.concatenate([table.probabilities for table in tables]))


@pytest.fixture
def cohort():
    return make_cohort(100)


@pytest.fixture
def two_models(vfnet_folders, cohort):
    """Two configurations with the same preprocessing and independent errors: their mean is clearly better."""
    write_splits(vfnet_folders["vfnet_preprocessed"], cohort)
    results = vfnet_folders["vfnet_results"]
    write_configuration(results, cohort, model_probabilities(cohort, 1, signal=1.5), trainer="A")
    write_configuration(results, cohort, model_probabilities(cohort, 2, signal=1.5), trainer="B", checkpoint_seed=7)
    return vfnet_folders


def test_the_clearly_better_ensemble_is_chosen_and_every_candidate_is_reported(two_models, capsys):
    assert _run([], capsys)[0] == 0
    instructions = _instructions(two_models)
    assert instructions["configuration"] == "A__vfnetPlans + B__vfnetPlans"
    assert [m["model_folder"] for m in instructions["members"]] == ["A__vfnetPlans", "B__vfnetPlans"]
    assert instructions["folds"] == [0, 1, 2, 3, 4] and instructions["checkpoint"] == "checkpoint_final"
    summary_folder = paths.selection_summary_folder(_dataset_results(two_models))
    summary = (summary_folder / "summary.txt").read_text()
    for name in ("* A__vfnetPlans + B__vfnetPlans", "  A__vfnetPlans ", "  B__vfnetPlans "):
        assert name in summary, summary
    record = json.loads((summary_folder / "selection.json").read_text())
    assert len(record["candidates"]) == 3 and record["vertebrae"] == 500 and record["patients"] == 100
    singles = [c for c in record["candidates"] if len(c["members"]) == 1]
    assert all(c["difference_to_chosen"]["high"] < 0 for c in singles)   # significantly worse
    for name in ("reliability_diagram.png", "referral_curve.png", "referral_curve.csv"):
        assert (summary_folder / name).stat().st_size > 0


def test_the_simpler_candidate_wins_when_the_difference_includes_zero(cohort):
    probabilities = model_probabilities(cohort, 1, signal=1.5)
    improved = probabilities.copy()
    wrong = np.flatnonzero(probabilities.argmax(axis=1) != cohort.grades)[:3]
    improved[wrong] = np.eye(4)[cohort.grades[wrong]] * 0.97 + 0.01   # three more vertebrae right
    pooled = PooledPredictions([(c, int(v)) for c, v in zip(cohort.cases, cohort.vertebrae)], [0, 1, 2, 3, 4],
                               cohort.grades, cohort.cases, {}, cohort.folds)
    choice = choose([Candidate(("single",), probabilities), Candidate(("a", "b"), improved)], pooled, 200, 0)
    assert choice.ranking[0].candidate.members == ("a", "b")             # the better point estimate ...
    assert choice.chosen.candidate.members == ("single",)                # ... loses to the simpler one
    assert "includes 0" in choice.reason
    gap = choice.ranking[0].versus_chosen
    assert gap["low"] <= 0 < gap["difference"] <= gap["high"]


def test_configurations_with_other_preprocessing_compete_alone(two_models, cohort, capsys):
    other = {"preprocessing": {**TINY_PREPROCESSING, "crop_size": [14, 14, 14]}}
    write_configuration(two_models["vfnet_results"], cohort, model_probabilities(cohort, 3, signal=1.5), trainer="C",
                        plans_name="vfnetPlans_other", plans_changes=other)
    assert _run([], capsys)[0] == 0
    record = json.loads((paths.selection_summary_folder(_dataset_results(two_models)) / "selection.json").read_text())
    names = {c["name"] for c in record["candidates"]}
    assert "C__vfnetPlans_other" in names and not any("C__" in n and "+" in n for n in names)
    assert len(names) == 4


def test_calibration_lowers_ece_on_an_over_confident_model(vfnet_folders, cohort, capsys):
    over_confident = model_probabilities(cohort, 1, signal=1.5, sharpness=4.0)
    folder = write_configuration(vfnet_folders["vfnet_results"], cohort, over_confident)
    assert _run([], capsys)[0] == 0
    instructions = _instructions(vfnet_folders)
    calibration = instructions["calibration"]
    held_out = calibration["held_out"]
    assert calibration["map"] in ("temperature", "isotonic")
    assert held_out[calibration["map"]]["ece_p_fracture"] < held_out["none"]["ece_p_fracture"]
    assert held_out[calibration["map"]]["macro_f1"] >= held_out["none"]["macro_f1"]
    assert calibration["ece_p_fracture_after"] < 0.5 * calibration["ece_p_fracture_before"]
    reference, stored = _pooled_oof(folder)
    calibrated = decisions(instructions).calibrate(stored)   # what vfnet_predict applies
    assert expected_calibration_error(reference, 1 - calibrated[:, 0]) == pytest.approx(
        calibration["ece_p_fracture_after"], abs=1e-6)
    # The temperature alone softens this model too, and keeps its grades.
    temperature = fit_temperature(reference, stored)
    scaled = calibrate(stored, temperature)
    assert temperature > 2.0 and held_out["temperature"]["ece_p_fracture"] < held_out["none"]["ece_p_fracture"]
    np.testing.assert_array_equal(scaled.argmax(axis=1), stored.argmax(axis=1))
    assert negative_log_likelihood(reference, scaled) < negative_log_likelihood(reference, stored)


def test_the_threshold_meets_its_sensitivity_on_the_out_of_fold_predictions(vfnet_folders, cohort, capsys):
    folder = write_configuration(vfnet_folders["vfnet_results"], cohort, model_probabilities(cohort, 1, signal=1.0))
    assert _run(["--target_sensitivity", "0.95"], capsys)[0] == 0
    instructions = _instructions(vfnet_folders)
    threshold = instructions["fracture_threshold"]
    reference, stored = _pooled_oof(folder)
    p_fracture = 1 - decisions(instructions).calibrate(stored)[:, 0]
    called = p_fracture >= threshold["threshold"]
    sensitivity = called[reference >= 1].mean()
    assert 0.95 <= sensitivity == pytest.approx(threshold["sensitivity"], abs=1e-3)
    # The highest threshold that reaches it: the next higher p_fracture (ties move together: an isotonic map
    # makes plateaus) misses the target.
    higher = p_fracture[p_fracture > threshold["threshold"] + 1e-9]
    assert higher.size == 0 or (p_fracture[reference >= 1] >= higher.min()).mean() < 0.95
    assert (~called[reference == 0]).mean() == pytest.approx(threshold["specificity"], abs=1e-3)


def test_the_review_threshold_and_referral_curve(two_models, capsys):
    assert _run(["--review_fraction", "0.2", "--max_fold_spread", "0.25"], capsys)[0] == 0
    review = _instructions(two_models)["review"]
    assert review["fraction_flagged"] == pytest.approx(0.2, abs=0.01)
    assert review["macro_f1_kept"] > review["macro_f1_all"] and review["fold_spread_threshold"] == 0.25
    with open(paths.selection_summary_folder(_dataset_results(two_models)) / "referral_curve.csv") as handle:
        curve = list(csv.DictReader(handle))
    assert [row["target_fraction"] for row in curve][:3] == ["0.0000", "0.0500", "0.1000"] and len(curve) == 11
    assert float(curve[0]["fraction_flagged"]) == 0 and float(curve[-1]["macro_f1_kept"]) > float(
        curve[0]["macro_f1_kept"])


def test_review_decisions_combine_entropy_and_fold_spread():
    decisions = Decisions(temperature=1.0, fracture_threshold=0.3, review_entropy=0.6, review_fold_spread=0.2)
    rows = []
    for probabilities, spread in (([0.97, 0.01, 0.01, 0.01], 0.0), ([0.4, 0.3, 0.2, 0.1], 0.0),
                                  ([0.97, 0.01, 0.01, 0.01], 0.3), ([0.6, 0.38, 0.01, 0.01], 0.0)):
        row = {f"p{g}": p for g, p in enumerate(probabilities)}
        rows.append({**row, "grade": int(np.argmax(probabilities)), "p_fracture": 1 - probabilities[0],
                     "fold_spread": spread})
    decisions.annotate(rows)
    assert [row["review"] for row in rows] == [False, True, True, False]
    assert [row["fracture"] for row in rows] == [False, True, False, True]   # p_fracture >= 0.3, grade 0 in row 4
    assert rows[1]["entropy"] == pytest.approx(normalised_entropy(np.array([[0.4, 0.3, 0.2, 0.1]]))[0])
    unassessed = [dict(rows[0])]
    Decisions().annotate(unassessed)
    assert unassessed[0]["review"] is None and unassessed[0]["fracture"] is False


# ---------------------------------------------------------------- bad inputs: one line, exit 1, nothing written
def _missing_fold(folders, cohort):
    paths.validation_predictions_file(folders["vfnet_results"] / DATASET / "B__vfnetPlans", 3).unlink()
    return [], "fold_3"


def _splits_file_disagrees(folders, cohort):
    splits_path = folders["vfnet_preprocessed"] / DATASET / "splits_final.json"
    splits = json.loads(splits_path.read_text())
    splits[0]["val"], splits[1]["val"] = splits[1]["val"], splits[0]["val"]
    splits_path.write_text(json.dumps(splits))
    return [], "splits_final.json"


def _configurations_on_different_splits(folders, cohort):
    (folders["vfnet_preprocessed"] / DATASET / "splits_final.json").unlink()
    fold_of = cohort.folds.copy()
    first, second = (fold_of == 0) & (cohort.cases == "case000"), (fold_of == 1) & (cohort.cases == "case001")
    fold_of[first], fold_of[second] = 1, 0
    write_configuration(folders["vfnet_results"], cohort, model_probabilities(cohort, 2), trainer="B", fold_of=fold_of)
    return [], "different splits"


def _other_dataset(folders, cohort):
    plans_path = folders["vfnet_results"] / DATASET / "B__vfnetPlans" / "plans.json"
    plans_path.write_text(json.dumps({**json.loads(plans_path.read_text()), "dataset_name": "Dataset951_Other"}))
    return [], "Dataset951_Other"


def _fold_with_other_preprocessing(folders, cohort):
    checkpoint = paths.fold_folder(folders["vfnet_results"] / DATASET / "B__vfnetPlans", 2) / "checkpoint_final.pth"
    payload = load_checkpoint(checkpoint)
    payload["preprocessing"] = {**payload["preprocessing"], "target_spacing": [1.0, 1.0, 1.0]}
    save_checkpoint(checkpoint, payload)
    return [], "preprocessing"


def _missing_checkpoint(folders, cohort):
    (paths.fold_folder(folders["vfnet_results"] / DATASET / "A__vfnetPlans", 1) / "checkpoint_final.pth").unlink()
    return [], "checkpoint_final.pth"


def _other_reference_grades(folders, cohort):
    changed = cohort.grades.copy()
    changed[0] = (changed[0] + 1) % 4
    write_configuration(folders["vfnet_results"], type(cohort)(cohort.cases, cohort.vertebrae, changed, cohort.folds),
                        model_probabilities(cohort, 2), trainer="B")
    return [], "reference grade"


def _unknown_configuration(folders, cohort):
    return ["-c", "A__vfnetPlans", "nope__vfnetPlans"], "nope__vfnetPlans"


def _sensitivity_out_of_range(folders, cohort):
    return ["--target_sensitivity", "1.5"], "--target_sensitivity"


BAD_INPUTS = {function.__name__.strip("_"): function for function in (
    _missing_fold, _splits_file_disagrees, _configurations_on_different_splits, _other_dataset,
    _fold_with_other_preprocessing, _missing_checkpoint, _other_reference_grades, _unknown_configuration,
    _sensitivity_out_of_range)}


@pytest.mark.parametrize("breakage", sorted(BAD_INPUTS))
def test_bad_inputs_end_with_one_clear_line_and_write_nothing(breakage, two_models, cohort, capsys):
    arguments, fragment = BAD_INPUTS[breakage](two_models, cohort)
    before = sorted(path for path in two_models["vfnet_results"].rglob("*"))
    code, stderr = _run(arguments, capsys)
    assert_clean_failure(code, stderr, fragment)
    assert sorted(path for path in two_models["vfnet_results"].rglob("*")) == before


def test_missing_folds_are_allowed_when_asked(two_models, capsys):
    _missing_fold(two_models, None)
    assert _run(["--allow_missing_folds"], capsys)[0] == 0
    assert _instructions(two_models)["folds"] == [0, 1, 2, 4]


def test_no_trained_configuration_is_one_clear_line(vfnet_folders, capsys):
    _dataset_results(vfnet_folders).mkdir()
    code, stderr = _run([], capsys)
    assert_clean_failure(code, stderr, "vfnet_train")


def test_the_command_is_registered():
    setup = (Path(__file__).parents[1] / "setup.py").read_text()
    assert '"vfnet_find_best_configuration": "vfnet.cli.find_best_configuration:entry"' in setup


# ---------------------------------------------------------------- two short real trainings
def test_two_trained_configurations_end_to_end(trained_model, vfnet_folders, tmp_path, capsys):
    """Folds 0 and 1 of the tiny trained model plus a CE-only trainer: select, then predict with the choice."""
    from hardening_corpus import DATASET as TINY, install_model, prediction_input
    from vfnet.cli import predict, train
    install_model(trained_model, vfnet_folders)
    for fold in ("0", "1"):
        assert train.main(["-d", "901", "-f", fold, "--epochs", "1", "--iterations", "1", "-tr", "ceTrainer",
                           "--override", "training.supcon_weight=0"]) == 0
    code, stderr = run_in_process("vfnet_find_best_configuration", find_best_configuration.main,
                                  ["-d", "901", "--allow_missing_folds", "--bootstrap", "100"], capsys)
    assert code == 0, stderr
    instructions = json.loads(paths.inference_instructions_file(vfnet_folders["vfnet_results"] / TINY).read_text())
    assert instructions["folds"] == [0, 1] and instructions["selection"]["vertebrae"] == 6
    assert {m["trainer"] for m in instructions["members"]} <= {"vfnetTrainer", "ceTrainer"}
    candidates = json.loads((paths.selection_summary_folder(vfnet_folders["vfnet_results"] / TINY) /
                             "selection.json").read_text())["candidates"]
    assert len(candidates) == 3   # both trainers share the plan's preprocessing, so their ensemble competes
    inputs = prediction_input(vfnet_folders, tmp_path / "in")
    capsys.readouterr()
    assert predict.main(["-i", str(inputs), "-o", str(tmp_path / "out"), "-d", "901"]) == 0
    assert "Using inference_instructions.json" in capsys.readouterr().out
    with open(tmp_path / "out" / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(row["review"] in ("true", "false") for row in rows)


def test_a_map_is_kept_only_if_it_lowers_the_held_out_ece_and_keeps_macro_f1(monkeypatch):
    from vfnet.selection import calibration
    rng = np.random.default_rng(0)
    folds = np.arange(400) % 5
    # p_fracture is calibrated (fractures drawn from it), but every fracture is grade 1 while the model puts its
    # fracture mass on grade 3: the four-grade NLL wants a large T, which pulls p_fracture towards 0.75.
    p_fracture = rng.uniform(0.02, 0.98, 400)
    reference = (rng.uniform(size=400) < p_fracture).astype(int)
    probabilities = np.column_stack([1 - p_fracture, np.full(400, 1e-3), np.full(400, 1e-3), p_fracture - 2e-3])
    chosen, _, held_out = calibration.checked_calibration(reference, probabilities, folds)
    assert chosen != "temperature" and held_out["temperature"]["ece_p_fracture"] > held_out["none"]["ece_p_fracture"]
    # An over-confident model: a map fitted on the other folds lowers the held-out ECE and is kept.
    p_true = rng.uniform(0.02, 0.98, 400)
    reference = np.where(rng.uniform(size=400) < p_true, rng.integers(1, 4, 400), 0)
    sharp = np.column_stack([1 - p_true, *(p_true / 3 for _ in range(3))]) ** 4
    sharp /= sharp.sum(axis=1, keepdims=True)
    chosen, fitted, held_out = calibration.checked_calibration(reference, sharp, folds)
    assert chosen in ("temperature", "isotonic") and held_out["temperature"]["ece_p_fracture"] < \
        calibration.expected_calibration_error(reference, 1 - sharp[:, 0])
    keep_macro_f1 = [row for row in held_out.values() if row["macro_f1"] >= held_out["none"]["macro_f1"]]
    assert held_out[chosen]["ece_p_fracture"] == min(row["ece_p_fracture"] for row in keep_macro_f1)
    # A map that predicts the base rate for everyone is perfectly calibrated on average and grades every vertebra
    # normal: its held-out ECE is the lowest, its macro-F1 is not, so it is not kept.
    rate = float((reference >= 1).mean())
    monkeypatch.setitem(calibration.MAPS, "isotonic",
                        lambda r, p: Decisions(fracture_map=((0.0, 1.0), (float((r >= 1).mean()),) * 2)))
    chosen, _, held_out = calibration.checked_calibration(reference, sharp, folds)
    assert held_out["isotonic"]["macro_f1"] < held_out["none"]["macro_f1"] and 0.3 < rate < 0.7
    assert chosen != "isotonic"


def test_the_p_fracture_map_keeps_the_fracture_grades_shares():
    probabilities = np.array([[0.9, 0.05, 0.03, 0.02], [0.2, 0.4, 0.3, 0.1], [1.0, 0.0, 0.0, 0.0]])
    mapped = Decisions(fracture_map=((0.0, 0.1, 0.8), (0.0, 0.3, 0.9))).calibrate(probabilities)
    np.testing.assert_allclose(mapped.sum(axis=1), 1.0)
    np.testing.assert_allclose(1 - mapped[:, 0], [0.3, 0.9, 0.0])      # on a breakpoint, beyond the last, at 0
    np.testing.assert_allclose(mapped[1, 1:] / mapped[1, 1:].sum(), [0.5, 0.375, 0.125])
    np.testing.assert_allclose(mapped[0, 1:] / mapped[0, 1:].sum(), [0.5, 0.3, 0.2])
    assert mapped[0].argmax() == 0 and Decisions().calibrate(probabilities) is not None
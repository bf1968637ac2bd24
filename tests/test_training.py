"""End-to-end training of a tiny fake fold: outputs, resume, determinism, fold 'all', DDP with two CPU processes."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vfnet.cli import train as train_cli
from vfnet.model.checkpoint import load_checkpoint
from vfnet.paths import fold_folder, model_folder, model_folder_name
from vfnet.preprocessing.samples import load_arrays, preprocessing_signature, read_properties, sample_id, write_sample
from vfnet.training import trainer

DATASET = "Dataset901_Fake"
CROP = [16, 16, 16]


def _plans() -> dict:
    return {
        "plans_name": "vfnetPlans", "dataset_name": DATASET, "vfnet_version": "0.1.0", "budget": "cpu",
        "data_identifier": "vfnetPlans_3d", "grades_present": [0, 1, 2, 3],
        "preprocessing": {"target_spacing": [1.0, 1.0, 1.0], "crop_size_mm": CROP, "crop_size": CROP,
                          "background_hu": -1024, "ct_interpolation": "linear",
                          "ct_channels": [{"name": "bone", "clip": [-200, 1200], "center": 300, "scale": 500}],
                          "mask_channel": "target_vertebra", "num_input_channels": 2},
        "network": {"architecture": "ResidualEncoderClassifier", "in_channels": 2, "num_classes": 4,
                    "stem_channels": 8, "stem_stride": 2, "stage_channels": [8, 16], "blocks_per_stage": [1, 1],
                    "stage_strides": [1, 2], "projection_dim": 8, "dropout": 0.1},
        "training": {"epochs": 2, "iterations_per_epoch": 3, "batch_size": 8, "samples_per_grade": 2,
                     "optimizer": "adamw", "learning_rate": 3e-3, "weight_decay": 1e-4, "warmup_epochs": 1,
                     "lr_schedule": "cosine", "grad_clip": 12.0, "ce_class_weights": [1.0, 2.0, 2.0, 1.0],
                     "supcon_weight": 0.5, "supcon_temperature": 0.1, "detach_classifier": False,
                     "weight_averaging": {"decay": 0.9, "start_fraction": 0.5}, "collapse_restarts": 0,
                     "collapse_check_fraction": 0.3, "collapse_min_loss_drop": 0.05,
                     "centroid_input_probability": 0.3, "centroid_jitter_mm": 1.0,
                     "augmentation": {"rotation_degrees": [15, 10, 10], "scale_range": [0.9, 1.1],
                                      "mirror_left_right": True, "gamma_range": [0.8, 1.25],
                                      "brightness_range": [0.9, 1.1], "contrast_range": [0.9, 1.1], "noise_std": 0.05,
                                      "blur_sigma": [0.5, 1.0], "low_resolution_zoom": [0.6, 1.0],
                                      "probabilities": {"rotation": 0.3, "scale": 0.3}}},
        "reasons": {},
    }


def _crop(grade: int, rng: np.random.Generator) -> np.ndarray:
    """A vertebral 'body' whose height shrinks with the grade, plus noise; channel 1 is its mask."""
    height = 10 - 2 * grade
    mask = np.zeros(CROP, dtype=np.float32)
    start = (CROP[0] - height) // 2
    mask[start:start + height, 4:12, 4:12] = 1
    ct = np.where(mask > 0, 1.0, -0.5) + 0.1 * rng.standard_normal(CROP)
    return np.stack([ct, mask]).astype(np.float16)


@pytest.fixture
def fake_dataset(vfnet_folders):
    folder = vfnet_folders["vfnet_preprocessed"] / DATASET
    crops = folder / "vfnetPlans_3d"
    crops.mkdir(parents=True)
    rng = np.random.default_rng(0)
    cases = [f"case{i:02d}" for i in range(8)]
    for index, case in enumerate(cases):
        for label, grade in ((20, index % 4), (21, (index + 1) % 4)):
            sample = sample_id(case, label)
            write_sample(crops, _crop(grade, rng), {
                "sample": sample, "case": case, "patient": case, "vertebra": label, "level": f"L{label - 19}",
                "grade": grade, "shape": [2, *CROP], "spacing": [1.0, 1.0, 1.0], "fraction_in_view": 1.0,
                "preprocessing_signature": preprocessing_signature(_plans()["preprocessing"])})
    (folder / "vfnetPlans.json").write_text(json.dumps(_plans()))
    (folder / "dataset.json").write_text(json.dumps({"name": DATASET}))
    splits = [{"train": cases[:6], "val": cases[6:]}, {"train": cases[2:], "val": cases[:2]}]
    (folder / "splits_final.json").write_text(json.dumps(splits))
    return model_folder(DATASET, "vfnetTrainer", "vfnetPlans", vfnet_folders["vfnet_results"])


def test_a_tiny_fold_trains_end_to_end_and_writes_every_output(fake_dataset):
    assert train_cli.main(["-d", "901", "-f", "0", "--epochs", "2", "--iterations", "2"]) == 0
    fold = fake_dataset / "fold_0"
    for name in ("checkpoint_latest.pth", "checkpoint_best.pth", "checkpoint_final.pth", "training_log.txt",
                 "progress.png"):
        assert (fold / name).is_file(), name
    assert json.loads((fake_dataset / "plans.json").read_text())["training"]["epochs"] == 2
    assert (fake_dataset / "dataset.json").is_file()
    lines = (fold / "validation" / "predictions.csv").read_text().splitlines()
    assert lines[0] == "case,patient,vertebra,level,reference,grade,p0,p1,p2,p3,p_fracture"
    assert len(lines) == 1 + 4 and lines[1].startswith("case06,case06,20,L1,")
    metrics = json.loads((fold / "validation" / "metrics.json").read_text())
    assert metrics["n"] == 4 and metrics["evaluated_on"] == "validation fold" and "loss" in metrics
    embeddings = np.load(fold / "validation" / "embeddings.npz")
    assert embeddings["embedding"].shape == (4, 8) and list(embeddings["sample"])[0] == "case06_20"
    final = load_checkpoint(fold / "checkpoint_final.pth")
    assert final["epoch"] == 1 and len(final["log"]["train_loss"]) == 2 and final["fold"] == 0
    assert all(value is not None for value in final["log"]["val_macro_f1"])
    assert "epoch 2/2" in (fold / "training_log.txt").read_text()
    card = json.loads((fake_dataset / "model_card.json").read_text())
    assert card["plan"]["epochs"] == 2 and card["cross_validation"] is None
    assert (fake_dataset / "model_card.md").read_text().startswith("# Model card: Dataset901_Fake")


def test_the_network_learns_the_grade_from_the_box_height(fake_dataset):
    arguments = ["-d", "901", "-f", "0", "--epochs", "10", "--iterations", "4", "--deterministic",
                 "--override", "training.augmentation.probabilities.rotation=0", "training.warmup_epochs=0",
                 "training.learning_rate=0.01", "training.centroid_input_probability=0"]
    assert train_cli.main(arguments) == 0
    log = load_checkpoint(fake_dataset / "fold_0" / "checkpoint_final.pth")["log"]
    assert log["train_ce"][-1] < 0.85 * log["train_ce"][0]


def test_deterministic_runs_give_identical_loss_curves_and_resume_matches(fake_dataset, monkeypatch):
    arguments = ["-d", "901", "-f", "1", "--deterministic"]
    final = fake_dataset / "fold_1" / "checkpoint_final.pth"
    assert train_cli.main(arguments) == 0
    first = load_checkpoint(final)
    assert train_cli.main(arguments) == 0
    second = load_checkpoint(final)
    assert first["log"]["train_loss"] == second["log"]["train_loss"]
    assert first["log"]["val_loss"] == second["log"]["val_loss"]

    # Ctrl-C in the second epoch, then --c: same weights as the uninterrupted run.
    final.unlink()
    real_run_epoch, calls = trainer.run_epoch, []

    def interrupted_in_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run_epoch(*args, **kwargs)

    monkeypatch.setattr(trainer, "run_epoch", interrupted_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_cli.main(arguments)
    assert not final.exists() and load_checkpoint(fake_dataset / "fold_1" / "checkpoint_latest.pth")["epoch"] == 0
    assert "Resume with --c" in (fake_dataset / "fold_1" / "training_log.txt").read_text()
    monkeypatch.setattr(trainer, "run_epoch", real_run_epoch)
    assert train_cli.main(arguments + ["--c"]) == 0
    resumed = load_checkpoint(final)
    assert resumed["log"]["train_loss"] == first["log"]["train_loss"]
    for name, tensor in first["network_weights"].items():
        assert torch.equal(tensor, resumed["network_weights"][name]), name


def test_fold_all_trains_on_everything_and_labels_its_evaluation(fake_dataset):
    assert train_cli.main(["-d", "901", "-f", "all", "--epochs", "1", "--iterations", "1",
                           "--override", "training.supcon_weight=0"]) == 0
    fold = fake_dataset / "fold_all"
    metrics = json.loads((fold / "validation" / "metrics.json").read_text())
    assert metrics["n"] == 16 and "optimistic" in metrics["evaluated_on"]
    assert not (fold / "checkpoint_best.pth").exists()


def test_user_errors_are_clear(fake_dataset, capsys):
    assert train_cli.entry.__module__ == "vfnet.cli.train"
    from vfnet.cli.common import run_cli
    assert run_cli("vfnet_train", train_cli.main, ["-d", "901", "-f", "7"]) == 1
    assert "Fold 7 does not exist" in capsys.readouterr().err
    assert run_cli("vfnet_train", train_cli.main, ["-d", "901", "-f", "0", "--override", "training.nope=1"]) == 1
    assert "training.nope" in capsys.readouterr().err
    assert run_cli("vfnet_train", train_cli.main, ["-d", "901", "-f", "0", "-device", "cuda"]) == (
        0 if torch.cuda.is_available() else 1)


def test_ddp_with_two_cpu_processes_gives_the_same_outputs(fake_dataset):
    assert train_cli.main(["-d", "901", "-f", "0", "--epochs", "2", "--iterations", "3", "--num_gpus", "2",
                           "-tr", "ddpTrainer", "--deterministic"]) == 0
    fold = fold_folder(fake_dataset.parent / model_folder_name("ddpTrainer", "vfnetPlans"), 0)
    final = load_checkpoint(fold / "checkpoint_final.pth")
    assert len(final["log"]["train_loss"]) == 2
    embeddings = np.load(fold / "validation" / "embeddings.npz")
    assert embeddings["embedding"].shape == (4, 8)
    assert len((fold / "validation" / "predictions.csv").read_text().splitlines()) == 5
    # 3 iterations per epoch over 2 processes: 2 steps each per epoch, so 4 scheduler steps in 2 epochs.
    assert "3 iterations per epoch divided among 2 processes: 2 each" in (fold / "training_log.txt").read_text()
    latest = load_checkpoint(fold / "checkpoint_latest.pth")
    assert latest["scheduler"]["step_count"] == 4
    # Each rank's own random stream is kept for --c (all used to restore rank 0's).
    ranks = latest["rng_ranks"]
    assert len(ranks) == 2 and not torch.equal(ranks[0]["torch"], ranks[1]["torch"])
    assert torch.equal(latest["rng"]["torch"], ranks[0]["torch"])


def test_validation_and_checkpoints_follow_the_plans_cadence(fake_dataset, monkeypatch):
    written = []
    real_save = trainer.save_checkpoint
    def recording_save(path, payload):
        written.append((path.name, payload["epoch"]))
        real_save(path, payload)

    monkeypatch.setattr(trainer, "save_checkpoint", recording_save)
    plans_path = fake_dataset.parent.parent.parent / "vfnet_preprocessed" / DATASET / "vfnetPlans.json"
    plans = json.loads(plans_path.read_text())
    plans["training"].update(validation_every=2, checkpoint_every_seconds=3600)
    plans_path.write_text(json.dumps(plans))
    assert train_cli.main(["-d", "901", "-f", "0", "--epochs", "3", "--iterations", "1"]) == 0
    assert [epoch for name, epoch in written if name == "checkpoint_latest.pth"] == [2]   # only at the last epoch
    log = load_checkpoint(fake_dataset / "fold_0" / "checkpoint_final.pth")["log"]
    assert log["val_macro_f1"][0] is None and None not in log["val_macro_f1"][1:]   # epochs 2 and 3 (the last)
    text = (fake_dataset / "fold_0" / "training_log.txt").read_text()
    assert "Validation every 2 epochs" in text and "repeats at most the last 3600 s" in text


def test_training_needs_no_simpleitk():
    """benchmarks/gpu_check.sh trains on a GPU machine without SimpleITK, from carried crops."""
    import subprocess
    import sys
    code = ("import sys; sys.modules['SimpleITK'] = None; import vfnet.cli.train, vfnet.cli.cv_summary, "
            "vfnet.training.throughput, vfnet.planning.measured")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_crops_made_with_another_preprocessing_are_refused(fake_dataset, capsys):
    from vfnet.cli.common import run_cli
    arguments = ["-d", "901", "-f", "0", "--epochs", "1", "--override", "preprocessing.target_spacing=[2.0, 2.0, 2.0]"]
    assert run_cli("vfnet_train", train_cli.main, arguments) == 1
    error = capsys.readouterr().err
    assert "vfnet_preprocess -d Dataset901_Fake -pl vfnetPlans" in error and "Traceback" not in error
    assert len(error.strip().splitlines()) == 1
    assert not (fake_dataset / "fold_0" / "checkpoint_latest.pth").exists()


def test_vertebrae_cut_by_the_field_of_view_are_left_out_of_training(fake_dataset):
    crops = fake_dataset.parents[2] / "vfnet_preprocessed" / DATASET / "vfnetPlans_3d"
    for sample in ("case00_20", "case01_21", "case06_20"):          # two training vertebrae, one validation
        properties = read_properties(crops, sample)
        write_sample(crops, load_arrays(crops, [sample], properties["shape"])[0],
                     {**properties, "fraction_in_view": 0.5})
    plans_path = fake_dataset.parents[2] / "vfnet_preprocessed" / DATASET / "vfnetPlans.json"
    plans = json.loads(plans_path.read_text())
    plans["training"]["min_fraction_in_view"] = 0.9
    plans_path.write_text(json.dumps(plans))
    train_set, val_set = trainer.load_fold(fake_dataset.parents[2] / "vfnet_preprocessed" / DATASET, plans, 0)
    assert train_set.left_out == ["case00_20", "case01_21"] and len(train_set) == 10
    assert "case06_20" in val_set.ids, "validation still grades them, as prediction does"
    assert train_cli.main(["-d", "901", "-f", "0", "--epochs", "1", "--iterations", "1"]) == 0
    log = (fold_folder(fake_dataset, 0) / "training_log.txt").read_text()
    assert "Left out of training: 2 vertebra(e) less than 90% in the field of view" in log


def test_final_checkpoint_holds_averaged_weights_that_differ_from_the_last_epoch(fake_dataset):
    arguments = ["-d", "901", "-f", "0", "--epochs", "2", "--iterations", "3", "--override",
                 'training.weight_averaging={"decay": 0.5, "start_fraction": 0.0}']
    assert train_cli.main(arguments) == 0
    fold = fake_dataset / "fold_0"
    final, latest = load_checkpoint(fold / "checkpoint_final.pth"), load_checkpoint(fold / "checkpoint_latest.pth")
    differing = [key for key, value in final["network_weights"].items()
                 if not torch.equal(value, latest["network_weights"][key])]
    assert differing, "the averaged weights equal the last epoch's"
    metrics = json.loads((fold / "validation" / "metrics.json").read_text())
    assert metrics["final_weights"] == "averaged weights (EMA)" and "macro_f1" in metrics["last_epoch_weights"]


def test_a_fold_that_cannot_learn_is_restarted_and_flagged(fake_dataset):
    # A learning rate of 1e-12 cannot lower the loss: every attempt collapses, the last one is flagged.
    arguments = ["-d", "901", "-f", "0", "--epochs", "3", "--iterations", "2", "--deterministic", "--override",
                 "training.learning_rate=1e-12", "training.collapse_restarts=1", "training.collapse_check_fraction=0.6"]
    assert train_cli.main(arguments) == 0
    log = (fake_dataset / "fold_0" / "training_log.txt").read_text()
    assert log.count("COLLAPSE in fold 0 after 2 epochs: the training loss has not fallen") == 1
    assert "attempt 2 of 2" in log and "seed 13345" in log
    metrics = json.loads((fake_dataset / "fold_0" / "validation" / "metrics.json").read_text())
    if len({row.split(",")[5] for row in
            (fake_dataset / "fold_0" / "validation" / "predictions.csv").read_text().splitlines()[1:]}) == 1:
        assert "degenerate" in metrics and "WARNING" in log


def test_morphometric_branch_gets_the_same_inputs_at_training_and_prediction(fake_dataset, vfnet_folders):
    from vfnet.morphometry.genant import FEATURE_NAMES, morphometry_inputs
    from vfnet.training.data import load_fold

    folder = vfnet_folders["vfnet_preprocessed"] / DATASET
    plans = _plans()
    plans["network"]["morphometric_features"] = list(FEATURE_NAMES)
    report = {name: 0.05 * index for index, name in enumerate(FEATURE_NAMES)}
    crops = folder / plans["data_identifier"]
    for sample in ("case06_20", "case06_21"):
        properties = read_properties(crops, sample)
        properties["morphometry"] = report if sample.endswith("20") else None
        write_sample(crops, load_arrays(crops, [sample], [2, *CROP])[0], properties)
    _, val = load_fold(folder, plans, 0)
    at_prediction = morphometry_inputs([read_properties(crops, s) for s in val.ids], FEATURE_NAMES)
    np.testing.assert_array_equal(val.morphometry, at_prediction)
    assert val.morphometry[val.ids.index("case06_20")][len(FEATURE_NAMES):].all()
    assert not val.morphometry[val.ids.index("case06_21")].any()

"""Planner rules, plan validation and overrides, on hand-made fingerprints (no images needed)."""
import copy

import pytest

from vfnet.errors import PlanError
from vfnet.planning.budget import get_budget
from vfnet.planning.network_plan import forward_flops, total_stride
from vfnet.planning.planner import MIN_VOXELS_PER_BODY_HEIGHT, plan_experiment
from vfnet.planning.plans import apply_overrides, load_plans, save_plans, validate_plans
from vfnet.typical_sizes import typical_body_size_mm

LUMBAR_EXTENT = [38.0, 80.0, 70.0]


def fingerprint(grade_counts=(150, 50, 50, 30), spacings=((1.0, 0.8, 0.8),), extent=LUMBAR_EXTENT):
    """A fingerprint with the given grade counts spread over cases of 10 vertebrae (T7-L4)."""
    grades = [grade for grade, count in enumerate(grade_counts) for _ in range(count)]
    cases = []
    for start in range(0, len(grades), 10):
        chunk = grades[start:start + 10]
        cases.append({"case": f"c{start}", "patient": f"p{start}", "spacing": list(spacings[len(cases) % len(spacings)]),
                      "shape": [200, 256, 256], "orientation": "LPS",
                      "vertebrae": {str(14 + i): {"grade": g, "extent_mm": extent,
                                                                          "extent_source": "mask"}
                                    for i, g in enumerate(chunk)}})
    return {"dataset_name": "Dataset001_X", "num_vertebrae": len(grades),
            "grade_counts": {str(g): c for g, c in enumerate(grade_counts)}, "cases": cases,
            "intensity": {"percentile_00_5": -300.0, "percentile_99_5": 1200.0, "mean": 250.0, "std": 180.0,
                          "median": 240.0, "num_samples": 1000}}


def test_cpu_plan_is_in_the_expected_range_and_fits_the_budget():
    plans = plan_experiment(fingerprint())
    validate_plans(plans)
    spacing, crop = plans["preprocessing"]["target_spacing"], plans["preprocessing"]["crop_size"]
    assert all(1.5 <= s <= 2.2 for s in spacing)
    assert all(24 <= n <= 48 for n in crop)
    assert plans["estimates"]["training_minutes_per_fold"] <= get_budget("cpu").minutes_per_fold + 1e-6
    assert plans["estimates"]["voxels_per_body_height"] >= MIN_VOXELS_PER_BODY_HEIGHT
    assert all(n % total_stride(plans["network"]) == 0 for n in crop)
    assert plans["preprocessing"]["crop_size_mm"][0] >= LUMBAR_EXTENT[0] + 16
    # The 2-core budget affords ~18 passes at the coarsest allowed spacing; the plan says it may under-train.
    assert plans["training"]["epochs"] >= 15
    for key in ("preprocessing.target_spacing", "preprocessing.crop_size_mm", "training.batch_size",
                "training.ce_class_weights", "training.supcon_weight", "training.epochs", "network",
                "training.min_fraction_in_view"):
        assert any(ch.isdigit() for ch in plans["reasons"][key])
    assert plans["training"]["min_fraction_in_view"] == 0.9
    assert 0 < plans["training"]["centroid_input_probability"] < 1
    assert "centroids" in plans["reasons"]["training.centroid_input_probability"]


def test_smaller_budget_gives_coarser_spacing_or_smaller_crop():
    cpu, gpu = plan_experiment(fingerprint(), "cpu"), plan_experiment(fingerprint(), "gpu")
    cpu_voxels = [n for n in cpu["preprocessing"]["crop_size"]]
    gpu_voxels = [n for n in gpu["preprocessing"]["crop_size"]]
    assert all(c >= g for c, g in zip(cpu["preprocessing"]["target_spacing"], gpu["preprocessing"]["target_spacing"]))
    assert sum(cpu_voxels) < sum(gpu_voxels)
    assert cpu["estimates"]["gflops_per_sample"] < gpu["estimates"]["gflops_per_sample"]
    assert forward_flops(cpu["network"], cpu_voxels) / 1e9 == pytest.approx(cpu["estimates"]["gflops_per_sample"],
                                                                             rel=1e-3)


def test_anisotropic_spacing_uses_a_low_percentile_and_caps_at_body_resolution():
    thick = fingerprint(spacings=[(5.0, 0.7, 0.7)] * 9 + [(1.0, 0.7, 0.7)])
    plans = plan_experiment(thick, "gpu")
    assert "coarser than the finest" in plans["reasons"]["preprocessing.target_spacing"]
    # 5 mm slices would give ~5 voxels per body height; the plan resamples to >= 12 voxels per height.
    body_height = sorted(typical_body_size_mm(label)[0] for label in range(14, 24))[5]
    assert plans["preprocessing"]["target_spacing"][0] <= body_height / MIN_VOXELS_PER_BODY_HEIGHT + 1e-6
    assert plans["estimates"]["voxels_per_body_height"] >= MIN_VOXELS_PER_BODY_HEIGHT


def test_tiny_dataset_plans_with_every_grade_in_the_batch():
    plans = plan_experiment(fingerprint(grade_counts=(4, 1, 1, 1)))
    training = plans["training"]
    assert training["batch_size"] == 4 * training["samples_per_grade"] and training["samples_per_grade"] >= 2
    assert training["iterations_per_epoch"] == 1 and training["epochs"] <= 100
    assert "repeat" in plans["reasons"]["training.batch_size"]


def test_batch_holds_k_of_every_grade_present_and_absent_grade_weight_is_zero():
    plans = plan_experiment(fingerprint(grade_counts=(100, 0, 30, 10)))
    training = plans["training"]
    assert plans["grades_present"] == [0, 2, 3]
    assert training["batch_size"] == 3 * training["samples_per_grade"]
    weights = training["ce_class_weights"]
    # Balanced batches x weights ∝ sqrt(count): the effective prior still favours the common grade, less so.
    assert weights[1] == 0 and weights[0] > weights[2] > weights[3]
    assert weights[0] / weights[3] == pytest.approx((100 / 10) ** 0.5, rel=1e-3)
    assert sum(weights) == pytest.approx(3.0, abs=1e-3)


def test_supcon_settings_follow_the_imbalance():
    balanced = plan_experiment(fingerprint(grade_counts=(50, 50, 50, 50)), "gpu")["training"]
    skewed = plan_experiment(fingerprint(grade_counts=(500, 10, 10, 5)), "gpu")["training"]
    assert balanced["supcon_weight"] == 0.5 and balanced["supcon_temperature"] == 0.1
    assert skewed["supcon_weight"] > balanced["supcon_weight"]
    assert 0.1 < skewed["supcon_temperature"] <= 0.2


def test_cpu_budget_trains_ce_alone_with_one_view_and_twice_the_epochs():
    cpu = plan_experiment(fingerprint(), "cpu")
    assert cpu["training"]["supcon_weight"] == 0 and "equal wall-clock" in cpu["reasons"]["training.supcon_weight"]
    assert "x1 view(s)" in cpu["reasons"]["training.epochs"]
    gpu = plan_experiment(fingerprint(), "gpu")
    assert gpu["training"]["supcon_weight"] > 0 and "x2 view(s)" in gpu["reasons"]["training.epochs"]


def test_one_grade_is_a_clear_error():
    with pytest.raises(PlanError, match="only 1 grade"):
        plan_experiment(fingerprint(grade_counts=(40, 0, 0, 0)))


def test_overrides_edit_nested_keys_and_reject_typos():
    plans = plan_experiment(fingerprint())
    edited = apply_overrides(plans, ["training.supcon_weight=0.5", "training.lr_schedule=constant",
                                     "preprocessing.target_spacing.0=2.5"])
    assert edited["training"]["supcon_weight"] == 0.5 and edited["training"]["lr_schedule"] == "constant"
    assert edited["preprocessing"]["target_spacing"][0] == 2.5
    assert plans["training"]["supcon_weight"] == 0   # the original is untouched
    with pytest.raises(PlanError, match="training.supcon_wieght"):
        apply_overrides(plans, ["training.supcon_wieght=0"])
    with pytest.raises(PlanError, match="key=value"):
        apply_overrides(plans, ["training.supcon_weight"])
    with pytest.raises(PlanError, match="batch_size"):
        apply_overrides(plans, ["training.batch_size=-3"])
    with pytest.raises(PlanError, match="min_fraction_in_view"):
        apply_overrides(plans, ["training.min_fraction_in_view=1.5"])


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["preprocessing"].update(crop_size=[32, 0, 32]), "crop_size"),
    (lambda p: p["preprocessing"]["ct_channels"][0].update(clip=[500, 100]), "clip"),
    (lambda p: p["network"].update(in_channels=3), "in_channels"),
    (lambda p: p["training"].update(ce_class_weights=[1, 1]), "ce_class_weights"),
    (lambda p: p.pop("network"), "network"),
    (lambda p: p["training"]["augmentation"]["probabilities"].update(mirror=1.5), "mirror"),
    (lambda p: p["network"].update(image_head="yes"), "image_head"),
    (lambda p: p["network"].update(image_head=False), "image_ce_weight"),   # the term would have no head to train
    (lambda p: p["training"].update(image_ce_weight=-1), "image_ce_weight"),
])
def test_load_plans_rejects_nonsense(tmp_path, edit, message):
    plans = copy.deepcopy(plan_experiment(fingerprint()))
    edit(plans)
    path = tmp_path / "vfnetPlans.json"
    save_plans(path, plans)
    with pytest.raises(PlanError, match=message) as error:
        load_plans(path)
    assert str(path) in str(error.value)


def test_load_plans_roundtrip_and_broken_json(tmp_path):
    plans = plan_experiment(fingerprint())
    save_plans(tmp_path / "p.json", plans)
    assert load_plans(tmp_path / "p.json") == plans
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(PlanError, match="broken.json"):
        load_plans(tmp_path / "broken.json")


def test_constant_vertebra_intensities_still_give_a_valid_window():
    from vfnet.planning.planner import MIN_WINDOW_HU, _intensity_window

    low, high = _intensity_window({"percentile_00_5": 250.0, "percentile_99_5": 250.0})
    assert high - low == MIN_WINDOW_HU and (low + high) / 2 == 250.0
    assert _intensity_window({"percentile_00_5": 80.0, "percentile_99_5": 600.0}) == [80.0, 600.0]


def test_the_budget_sets_the_validation_and_checkpoint_cadence():
    cpu, gpu = plan_experiment(fingerprint(), "cpu")["training"], plan_experiment(fingerprint(), "gpu")
    assert (cpu["validation_every"], cpu["checkpoint_every_seconds"]) == (1, 60.0)
    assert (gpu["training"]["validation_every"], gpu["training"]["checkpoint_every_seconds"]) == (5, 60.0)
    assert "at most every 60 s" in gpu["reasons"]["training.checkpoint_every_seconds"]
    for key, value in (("training.validation_every", 0), ("training.checkpoint_every_seconds", -1)):
        with pytest.raises(PlanError, match=key):
            apply_overrides(gpu, [f"{key}={value}"])


MEASURED = {"device": "cpu", "device_name": "Test CPU", "steps_timed": 3, "step_seconds": 0.5,
            "samples_per_second": 32.0, "validation_seconds_per_sample": 0.01, "checkpoint_and_plot_seconds": 0.4}


def test_measured_speed_replans_the_epochs_and_is_recorded():
    from vfnet.planning.measured import epoch_seconds, replan_from_measurement
    plans = plan_experiment(fingerprint(), "cpu")
    training, estimates = plans["training"], plans["estimates"]
    seconds = epoch_seconds(training, estimates["validation_vertebrae_per_fold"], MEASURED)
    steps_and_validation = training["iterations_per_epoch"] * 0.5 + 56 * 0.01
    # The cpu plan writes checkpoint_latest at most every 60 s: each epoch bears its share of one write.
    share = min(1.0, steps_and_validation / training["checkpoint_every_seconds"])
    assert seconds == pytest.approx(steps_and_validation + share * 0.4)
    replanned = replan_from_measurement(plans, MEASURED)
    epochs = replanned["training"]["epochs"]
    assert epochs == min(get_budget("cpu").max_epochs, int(get_budget("cpu").minutes_per_fold * 60 // seconds))
    assert epochs != training["epochs"]
    assert replanned["training"]["warmup_epochs"] == max(1, round(0.05 * epochs))
    assert replanned["training"]["weight_averaging"]["decay"] != training["weight_averaging"]["decay"]
    measured = replanned["estimates"]["measured"]
    assert measured["epochs_from_constant"] == training["epochs"] and measured["samples_per_second"] == 32.0
    assert replanned["estimates"]["training_minutes_per_fold"] <= get_budget("cpu").minutes_per_fold
    assert "Measured on this machine (Test CPU)" in replanned["reasons"]["training.epochs"]
    # Why the budget has its minutes is measured on the benchmark, and survives the replanning of the epochs.
    assert replanned["reasons"]["budget"] == plans["reasons"]["budget"] and "0.812" in plans["reasons"]["budget"]
    validate_plans(replanned)
    assert plans["training"]["epochs"] == training["epochs"]   # the input plan is left as it was
    # Checkpoints written at most every 60 s cost an epoch only its share of a write.
    gpu_like = dict(training, checkpoint_every_seconds=60, validation_every=5)
    assert epoch_seconds(gpu_like, 50, MEASURED) == pytest.approx(
        training["iterations_per_epoch"] * 0.5 + 0.1 + 0.4 * (training["iterations_per_epoch"] * 0.5 + 0.1) / 60)


def test_a_fast_machine_measured_plan_stops_at_the_budgets_epochs():
    from vfnet.planning.measured import replan_from_measurement
    plans = plan_experiment(fingerprint(), "cpu")
    fast = dict(MEASURED, step_seconds=0.01, samples_per_second=1600.0)   # room for hundreds of epochs
    replanned = replan_from_measurement(plans, fast)
    assert replanned["training"]["epochs"] == get_budget("cpu").max_epochs == 34
    assert replanned["estimates"]["training_minutes_per_fold"] < get_budget("cpu").minutes_per_fold
    assert "(at most 34)" in replanned["reasons"]["training.epochs"]


def test_the_printed_minutes_say_which_speed_they_assume():
    from vfnet.plan_and_preprocess import _speed_basis
    from vfnet.planning.measured import replan_from_measurement
    plans = plan_experiment(fingerprint(), "cpu")
    assumed = _speed_basis(plans)
    assert f"reference speed of {get_budget('cpu').effective_gflops:g}" in assumed and "--measure" in assumed
    assert "measured here" in _speed_basis(replan_from_measurement(plans, MEASURED))


def test_measure_times_real_training_steps_of_the_plan(monkeypatch):
    from vfnet.training import throughput
    monkeypatch.setattr(throughput, "MIN_TIMED_SECONDS", 0.0)
    plans = plan_experiment(fingerprint(grade_counts=(20, 10, 10, 10)), "cpu")
    plans["network"].update(stem_channels=4, stage_channels=[4, 8, 8, 8][:len(plans["network"]["stage_channels"])])
    plans["training"].update(samples_per_grade=1, batch_size=4)
    measured = throughput.measure_training(plans, "cpu")
    assert measured["steps_timed"] == throughput.MIN_TIMED_STEPS and measured["device"] == "cpu"
    assert measured["step_seconds"] > 0 and measured["samples_per_second"] == pytest.approx(
        4 / measured["step_seconds"], rel=1e-2)
    assert measured["validation_seconds_per_sample"] > 0 and measured["checkpoint_and_plot_seconds"] > 0


def test_measuring_a_gpu_plan_without_a_gpu_is_a_clear_error(monkeypatch):
    import torch

    from vfnet.errors import VfnetError
    from vfnet.plan_and_preprocess import measure_and_replan
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(VfnetError, match="--measure times the gpu budget's plan on a CUDA GPU"):
        measure_and_replan(plan_experiment(fingerprint(), "gpu"))

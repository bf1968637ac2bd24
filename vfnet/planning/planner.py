"""The self-configuring planner: fingerprint + budget -> vfnetPlans.json, every choice with its reason.

documentation/how_planning_works.md explains each rule and its numbers.
"""
import math
from typing import Any

import numpy as np

from vfnet import __version__
from vfnet.errors import PlanError
from vfnet.labels import GENANT_GRADES
from vfnet.planning import training_rules
from vfnet.planning.budget import Budget, get_budget, training_views
from vfnet.planning.network_plan import forward_flops, network_plan, num_downsamplings
from vfnet.typical_sizes import typical_body_size_mm

ANISOTROPY_RATIO = 3.0             # nnU-Net's threshold for treating one axis as low resolution
ANISOTROPIC_PERCENTILE = 10        # ... whose target then is the 10th percentile of that axis' spacings
# Near-constant intensities inside the vertebrae (phantoms, clipped exports) would give an empty window and a
# zero std; these floors keep the normalisation defined.
MIN_WINDOW_HU = 100.0
MIN_INTENSITY_STD_HU = 1.0
MIN_VOXELS_PER_BODY_HEIGHT = 12    # a 20 % height loss must span >= 2 voxels to be visible
EXTENT_PERCENTILE = 90             # crop covers 90 % of vertebrae fully; the largest few are cut at the margin
NEIGHBOUR_MARGIN_MM = 8.0          # intervertebral disc (5-10 mm) + the neighbour's endplate, above and below
SPACING_STEP = 1.08                # coarsening step of the budget search
MIN_EPOCHS = 25                    # passes over the training data below which the plan coarsens instead
NUM_FOLDS = 5
BACKGROUND_HU = -1024.0
DROPOUT = 0.2
MIN_FRACTION_IN_VIEW = 0.9         # vertebrae seen less than this are not trained on (their height is unknown)
ORDINAL_WEIGHT = 0.0
ORDINAL_EVIDENCE = (
    "Off by measurement: five folds of the phantom benchmark (36 epochs of CE alone, same crops) with weight 1 "
    "reached macro-F1 0.776 against 0.784 without it (paired -0.008 [-0.039, +0.018]; QWK +0.005), so it did not "
    "pay for itself.")


def plan_experiment(fingerprint: dict[str, Any], budget_name: str = "cpu",
                    plans_name: str = "vfnetPlans") -> dict[str, Any]:
    budget = get_budget(budget_name)
    reasons: dict[str, str] = {}
    counts, present = _grade_counts(fingerprint)
    target = _target_spacing(fingerprint, reasons)
    body_height = _median_body_height(fingerprint)
    finest_allowed = body_height / MIN_VOXELS_PER_BODY_HEIGHT
    target = [min(t, finest_allowed) for t in target]
    crop_mm = _crop_size_mm(fingerprint, reasons)
    samples_per_grade = max(2, budget.samples_per_grade)
    batch_size = samples_per_grade * len(present)
    # Its own key: `--measure` rewrites reasons["training.epochs"], the budget's minutes stay as planned.
    reasons["budget"] = " ".join(filter(None, [f"{budget.name}: {budget.minutes_per_fold:g} minutes of training per "
                                               f"fold, at {budget.effective_gflops:g} effective GFLOP/s.",
                                               budget.why_minutes]))
    loss = _loss_weights(counts, present, budget, reasons)
    fit = _fit_budget(budget, target, finest_allowed, crop_mm, batch_size, fingerprint["num_vertebrae"],
                      training_views(loss["supcon_weight"]), reasons)
    spacing, crop_size, network, flops, epochs, iterations, minutes = fit
    reasons["preprocessing.target_spacing"] += (
        f" Vertebral bodies of the graded levels are {body_height:.1f} mm high (median of typical sizes), so no "
        f"axis may be coarser than {finest_allowed:.2f} mm (>= {MIN_VOXELS_PER_BODY_HEIGHT} voxels per body "
        f"height); within that the {budget.name} budget gave {_fmt(spacing)} mm.")
    reasons["training.batch_size"] = (
        f"{samples_per_grade} samples of each of the {len(present)} grades present ({present}): every grade in "
        f"every batch (SupCon, when on, needs positives of each).")
    rare = [g for g in present if counts[g] < samples_per_grade]
    if rare:
        reasons["training.batch_size"] += (f" Grade(s) {rare} have fewer than {samples_per_grade} vertebrae, so "
                                           f"their samples repeat within a batch (as augmented views).")
    training = {"epochs": epochs, "iterations_per_epoch": iterations, "batch_size": batch_size,
                "samples_per_grade": samples_per_grade, "optimizer": "adamw", "learning_rate": 1e-3,
                "weight_decay": 1e-4, "warmup_epochs": warmup_epochs(epochs), "lr_schedule": "cosine",
                "grad_clip": 12.0, **loss, "detach_classifier": False,
                "augmentation": augmentation(reasons), "min_fraction_in_view": MIN_FRACTION_IN_VIEW,
                **training_rules.protection(epochs, iterations, reasons), **_cadence(budget, reasons)}
    mask_settings, mask_probabilities = training_rules.mask_errors(reasons)
    training["augmentation"].update(mask_settings)
    training["augmentation"]["probabilities"].update(mask_probabilities)
    error_preprocessing, error_training = training_rules.mask_error_morphometry(reasons)
    training.update(error_training)
    network.update(training_rules.morphometric_branch(reasons))
    image_network, image_training = training_rules.image_head(reasons)
    network.update(image_network)
    training.update(image_training)
    reasons["training.min_fraction_in_view"] = (
        f"{MIN_FRACTION_IN_VIEW}: a vertebra with less of its typical body box inside the scan may have lost the "
        f"endplate whose height defines its grade, so its label would teach a wrong height ratio; such vertebrae are "
        f"left out of training (still validated) and flagged at prediction.")
    intensity = fingerprint["intensity"]
    clip = _intensity_window(intensity)
    preprocessing = {
        "target_spacing": spacing, "crop_size_mm": [round(n * s, 2) for n, s in zip(crop_size, spacing)],
        "crop_size": crop_size, "background_hu": BACKGROUND_HU, "ct_interpolation": "linear",
        "ct_channels": [{"name": "bone", "clip": clip, "center": round(intensity["mean"], 3),
                         "scale": round(max(intensity["std"], MIN_INTENSITY_STD_HU), 3)}],
        "mask_channel": "target_vertebra", "num_input_channels": 2, "morphometry": True, **error_preprocessing}
    reasons["preprocessing.ct_channels"] = (
        f"nnU-Net's CT normalisation from {intensity['num_samples']} voxels sampled inside the graded vertebrae: "
        f"clip to their 0.5/99.5 percentiles [{intensity['percentile_00_5']:.0f}, "
        f"{intensity['percentile_99_5']:.0f}] HU (widened to at least {MIN_WINDOW_HU:g} HU), subtract the mean "
        f"{intensity['mean']:.1f}, divide by the std {intensity['std']:.1f} (at least {MIN_INTENSITY_STD_HU:g}).")
    return {
        "plans_name": plans_name, "dataset_name": fingerprint["dataset_name"], "vfnet_version": __version__,
        "budget": budget.name, "data_identifier": f"{plans_name}_3d", "grades_present": present,
        "preprocessing": preprocessing, "network": network, "training": training,
        "estimates": {"gflops_per_sample": round(flops / 1e9, 4),
                      "voxels_per_body_height": round(body_height / spacing[0], 1),
                      "training_minutes_per_fold": round(minutes, 2),
                      "effective_gflops_assumed": budget.effective_gflops,
                      "training_vertebrae_per_fold": _num_train(fingerprint["num_vertebrae"]),
                      "validation_vertebrae_per_fold": _num_val(fingerprint["num_vertebrae"])},
        "reasons": reasons,
    }


def warmup_epochs(epochs: int) -> int:
    return max(1, round(0.05 * epochs))


def _cadence(budget: Budget, reasons: dict[str, str]) -> dict[str, Any]:
    reasons["training.validation_every"] = (
        f"{budget.validation_every} ({budget.name} budget): the validation fold is predicted every "
        f"{budget.validation_every} epoch(s), and always at the collapse check and the last epoch" +
        ("; on a GPU an epoch is about a second and validating each one costs as much as training it." if
         budget.validation_every > 1 else "."))
    reasons["training.checkpoint_every_seconds"] = (
        f"{budget.checkpoint_every_seconds:g} ({budget.name} budget): checkpoint_latest and progress.png are written "
        + ("after every epoch." if budget.checkpoint_every_seconds <= 0 else
           f"at most every {budget.checkpoint_every_seconds:g} s and at the last epoch, so --c repeats at most that "
           f"much training plus the interrupted epoch; writing them took 1.7 s of a ~19 s cpu epoch and more than "
           f"a whole ~1 s gpu epoch."))
    return {"validation_every": budget.validation_every, "checkpoint_every_seconds": budget.checkpoint_every_seconds}


def _fmt(values: Any) -> str:
    return "[" + ", ".join(f"{v:.3g}" for v in values) + "]"


def _grade_counts(fingerprint: dict[str, Any]) -> tuple[dict[int, int], list[int]]:
    counts = {int(grade): int(count) for grade, count in fingerprint["grade_counts"].items()}
    present = sorted(grade for grade, count in counts.items() if count > 0)
    if len(present) < 2:
        raise PlanError(f"Dataset {fingerprint['dataset_name']} has vertebrae of only {len(present)} grade(s) "
                        f"{present}; a classifier needs at least two different Genant grades.")
    return counts, present


def _target_spacing(fingerprint: dict[str, Any], reasons: dict[str, str]) -> list[float]:
    spacings = np.array([case["spacing"] for case in fingerprint["cases"]], dtype=float)
    target = np.median(spacings, axis=0)
    reason = f"Median spacing of the {len(spacings)} CTs is {_fmt(target)} mm (z, y, x)."
    coarse_axis = int(np.argmax(target))
    others = [target[axis] for axis in range(3) if axis != coarse_axis]
    if target[coarse_axis] > ANISOTROPY_RATIO * min(others):
        # nnU-Net's anisotropy rule: the low-resolution axis takes a low percentile of its spacings, so the
        # thick-slice cases do not dictate the grid, but it is never made finer than the other axes.
        low = max(float(np.percentile(spacings[:, coarse_axis], ANISOTROPIC_PERCENTILE)), max(others))
        reason += (f" Axis {'zyx'[coarse_axis]} is more than {ANISOTROPY_RATIO:g}x coarser than the finest, so it "
                   f"takes the {ANISOTROPIC_PERCENTILE}th percentile of its spacings ({low:.3g} mm).")
        target[coarse_axis] = low
    reasons["preprocessing.target_spacing"] = reason
    return [float(t) for t in target]


def _graded_vertebrae(fingerprint: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    return [(int(label), entry) for case in fingerprint["cases"] for label, entry in case["vertebrae"].items()]


def _median_body_height(fingerprint: dict[str, Any]) -> float:
    return float(np.median([typical_body_size_mm(label)[0] for label, _ in _graded_vertebrae(fingerprint)]))


def _crop_size_mm(fingerprint: dict[str, Any], reasons: dict[str, str]) -> list[float]:
    extents = np.array([entry["extent_mm"] for _, entry in _graded_vertebrae(fingerprint)], dtype=float)
    large = np.percentile(extents, EXTENT_PERCENTILE, axis=0)
    crop = [float(large[0] + 2 * NEIGHBOUR_MARGIN_MM), float(large[1]), float(large[2])]
    reasons["preprocessing.crop_size_mm"] = (
        f"The {EXTENT_PERCENTILE}th percentile of the {len(extents)} graded vertebrae's extents is {_fmt(large)} mm; "
        f"cranio-caudally {NEIGHBOUR_MARGIN_MM:g} mm are added above and below to keep the neighbours' endplates "
        f"(disc + endplate), giving at least {_fmt(crop)} mm; the crop in voxels is rounded up from it.")
    return crop


def _num_train(num_vertebrae: int) -> int:
    return max(1, round(num_vertebrae * (NUM_FOLDS - 1) / NUM_FOLDS))


def _num_val(num_vertebrae: int) -> int:
    return max(1, num_vertebrae - _num_train(num_vertebrae))


def _fit_budget(budget: Budget, target: list[float], finest_allowed: float, crop_mm: list[float],
                batch_size: int, num_vertebrae: int, views: int, reasons: dict[str, str]) -> tuple:
    """Coarsen the spacing from the data's own until one fold of >= MIN_EPOCHS epochs fits the budget."""
    n_train = _num_train(num_vertebrae)
    n_val = _num_val(num_vertebrae)
    iterations = max(1, math.ceil(n_train / batch_size))
    budget_seconds = budget.minutes_per_fold * 60.0
    candidates = []
    step = min(target)
    while step < finest_allowed:
        candidates.append(step)
        step *= SPACING_STEP
    candidates.append(finest_allowed)
    for index, step in enumerate(candidates):
        spacing = [round(max(t, step), 4) for t in target]
        downsamplings = num_downsamplings([math.ceil(m / s) for m, s in zip(crop_mm, spacing)])
        multiple = 2 ** downsamplings
        crop_size = [int(math.ceil(m / s / multiple) * multiple) for m, s in zip(crop_mm, spacing)]
        network = network_plan(downsamplings, 2, budget.stem_channels, budget.max_channels,
                               budget.projection_dim, DROPOUT)
        flops = forward_flops(network, crop_size)
        # Training runs `views` augmented views per sample, forward + backward ~ 3x forward.
        epoch_seconds = (iterations * batch_size * views * 3 * flops +
                         n_val * flops / budget.validation_every) / (budget.effective_gflops * 1e9)
        last = index == len(candidates) - 1
        if (max(crop_size) <= budget.max_crop_voxels and epoch_seconds * MIN_EPOCHS <= budget_seconds) or last:
            break
    epochs = int(min(budget.max_epochs, max(1, budget_seconds // epoch_seconds)))
    reasons["network"] = (
        f"Stride-2 stem, then stages until the bottleneck's smallest axis is ~4 voxels ({downsamplings} "
        f"downsamplings of {crop_size} voxels); widths double from {budget.stem_channels} up to "
        f"{budget.max_channels} ({budget.name} budget).")
    reasons["preprocessing.crop_size"] = (f"Crop in mm / spacing, rounded up to a multiple of {multiple} (the "
                                          f"network's total stride).")
    reasons["training.epochs"] = (
        f"One epoch = {iterations} iterations x {batch_size} = one pass over the ~{n_train} training vertebrae; "
        f"estimated {epoch_seconds:.1f} s per epoch at {budget.effective_gflops:g} effective GFLOP/s "
        f"({flops / 1e9:.3f} GFLOP forward per sample, x3 for training, x{views} view(s)); {epochs} epochs fill the "
        f"{budget.minutes_per_fold:g}-minute {budget.name} budget per fold (at most {budget.max_epochs}).")
    if epochs < MIN_EPOCHS:
        reasons["training.epochs"] += (f" Even at the coarsest allowed spacing fewer than {MIN_EPOCHS} epochs fit: "
                                       f"expect under-training; use --budget gpu or a smaller crop.")
    minutes = epochs * epoch_seconds / 60.0
    return spacing, crop_size, network, flops, epochs, iterations, minutes


def _intensity_window(intensity: dict[str, float]) -> list[float]:
    """The 0.5/99.5 percentile window, widened symmetrically to at least MIN_WINDOW_HU."""
    low, high = float(intensity["percentile_00_5"]), float(intensity["percentile_99_5"])
    if high - low < MIN_WINDOW_HU:
        middle = (low + high) / 2.0
        low, high = middle - MIN_WINDOW_HU / 2.0, middle + MIN_WINDOW_HU / 2.0
    return [round(low, 2), round(high, 2)]


def _loss_weights(counts: dict[int, int], present: list[int], budget: Budget,
                  reasons: dict[str, str]) -> dict[str, Any]:
    # The balanced sampler shows every grade equally often; weights ∝ sqrt(n_g) turn that into an effective
    # class prior ∝ sqrt(n_g): inverse-square-root re-weighting of the dataset's own prior, not a double correction.
    raw = {grade: math.sqrt(counts[grade]) for grade in present}
    mean = sum(raw.values()) / len(raw)
    weights = [round(raw[grade] / mean, 4) if grade in raw else 0.0 for grade in GENANT_GRADES]
    ratio = max(counts[g] for g in present) / min(counts[g] for g in present)
    rule_weight = round(min(1.0, 0.5 + 0.25 * math.log10(ratio)), 3)
    temperature = round(min(0.2, 0.1 * (1.0 + 0.5 * math.log10(ratio))), 3)
    reasons["training.ce_class_weights"] = (
        f"Square root of the grade counts {[counts.get(g, 0) for g in GENANT_GRADES]}, normalised to mean 1 over the "
        f"grades present (absent grades 0): with the class-balanced sampler the effective class prior is then "
        f"proportional to sqrt(count), the dataset's prior re-weighted by 1/sqrt(count).")
    rule = (f"0.5 + 0.25 log10(imbalance ratio {ratio:.1f}), at most 1: the rarer the fractures, the more the "
            f"encoder relies on the contrastive signal.")
    if budget.supcon:
        reasons["training.supcon_weight"] = (
            f"{rule} Kept at the {budget.name} budget: the only measurement there (first session, a method without "
            f"the morphometric branch, 120 epochs each) had CE alone 0.704 against 0.681, within noise; not "
            f"re-measured with the current method (documentation/benchmarks.md).")
    else:
        reasons["training.supcon_weight"] = (
            f"0 at the {budget.name} budget (the rule would give {rule_weight}: {rule}). Measured at equal "
            f"wall-clock on the phantom benchmark, five folds: CE alone with one view per sample trains twice the "
            f"samples and reached macro-F1 0.784 (36 epochs on SupCon's grid) and 0.780 (the finer grid this plan "
            f"then affords) against 0.750 with SupCon, whose loss never left chance level at this budget. Set "
            f"training.supcon_weight to train the paper's contrastive term anyway (two views per sample: about "
            f"twice the time per epoch).")
    reasons["training.supcon_temperature"] = (f"0.1 x (1 + 0.5 log10(imbalance ratio {ratio:.1f})), at most 0.2: "
                                              f"oversampled rare grades repeat in batches, a softer temperature keeps "
                                              f"SupCon from memorising them.")
    reasons["training.ordinal_weight"] = (
        f"{ORDINAL_WEIGHT:g} x the cumulative ordinal term (training/losses.py: binary CE of P(grade > k), which "
        f"costs more the further the predicted mass lies from the true grade). " + ORDINAL_EVIDENCE)
    return {"ce_class_weights": weights, "supcon_weight": rule_weight if budget.supcon else 0.0,
            "supcon_temperature": temperature, "ordinal_weight": ORDINAL_WEIGHT}


def augmentation(reasons: dict[str, str]) -> dict[str, Any]:
    reasons["training.augmentation"] = (
        "Label-preserving only: isotropic scaling (height ratios unchanged), rotations of at most 15 degrees about "
        "the cranio-caudal axis and 10 about the others, left-right mirroring only, intensity changes; no "
        "anisotropic scaling or elastic deformation, which would change the Genant grade.")
    return {"rotation_degrees": [15, 10, 10], "scale_range": [0.9, 1.1], "mirror_left_right": True,
            "gamma_range": [0.8, 1.25], "brightness_range": [0.9, 1.1], "contrast_range": [0.9, 1.1],
            "noise_std": 0.05, "blur_sigma": [0.5, 1.0], "low_resolution_zoom": [0.6, 1.0],
            "probabilities": {"rotation": 0.3, "scale": 0.3, "mirror": 0.5, "gamma": 0.3, "brightness": 0.15,
                              "contrast": 0.15, "noise": 0.1, "blur": 0.2, "low_resolution": 0.2}}

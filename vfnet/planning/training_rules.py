"""Planning rules for the parts of training that protect the result: the morphometric branch, the image-only head,
centroid input, weight averaging, mask-error augmentation and the collapse guard. Each returns plan entries and
writes its reason."""
import math
from typing import Any

from vfnet.morphometry.genant import FEATURE_NAMES, FEATURE_SCALE, GENANT_THRESHOLDS

PRIOR_WIDTH = 0.02                 # 2 % of height loss: the soft edge of each Genant threshold

MORPHOMETRY_DROPOUT = 0.2          # fraction of training samples shown without their measured ratios
AVERAGING_START_FRACTION = 0.5     # weight averaging covers the second half of training ...
AVERAGING_HORIZON_FRACTION = 0.1   # ... with an EMA time constant of a tenth of all steps
COLLAPSE_CHECK_FRACTION = 0.3
COLLAPSE_MIN_LOSS_DROP = 0.05
COLLAPSE_RESTARTS = 2
MASK_ERROR_PROBABILITY = 0.3
MASK_SHIFT_VOXELS = 1
MASK_MORPHOLOGY_VOXELS = 2         # the mask channel's erosion or dilation: 1 or 2 crop voxels
# Training vertebrae are also measured on their masks degraded these ways (preprocessing/mask_errors.py), and
# that fraction of the training samples is shown those ratios instead of the exact ones (training/mask_error_input.py).
MORPHOMETRY_MASK_ERRORS = ["eroded_1", "dilated_1", "eroded_2", "dilated_2"]
MASK_ERROR_MORPHOMETRY_PROBABILITY = 0.3
CENTROID_INPUT_PROBABILITY = 0.3   # fraction of training views shown as centroid input (training/centroid_input.py)
CENTROID_JITTER_MM = 2.0           # standard deviation of the centroid's offset from the crop centre, per axis
IMAGE_CE_WEIGHT = 1.0              # weight of the image-only head's CE beside the main CE


def morphometric_branch(reasons: dict[str, str]) -> dict[str, Any]:
    """Network entry: the features the classifier head receives beside the CNN's."""
    reasons["network.morphometric_features"] = (
        "Genant's grade is a height ratio, and at the planned spacing a mild (20-25 %) loss is about one voxel of "
        "the crop; the body heights measured on the stored CT and mask (vfnet.morphometry: heights along the "
        "vertebra's own axis, endplates refined on the image) give the head those ratios directly. On the phantom "
        "benchmark the measured height loss alone reaches macro-F1 0.74 with Genant's thresholds (documentation/"
        "benchmarks.md).")
    reasons["network.genant_prior"] = (
        "Genant's thresholds (20/25/40 % height loss) on the measured height loss, as a learnable cumulative-link "
        "layer whose log-probabilities are added to the logits: the network starts from the radiologist's rule "
        "instead of relearning thresholds from a few dozen mild fractures (a head trained on the same six "
        "ratios, cross-validated on the phantom benchmark, reached macro-F1 0.63-0.69 against the rule's 0.73).")
    prior = {"feature_index": FEATURE_NAMES.index("height_loss"),
             "thresholds": [round(t / FEATURE_SCALE, 4) for t in GENANT_THRESHOLDS],
             "width": round(PRIOR_WIDTH / FEATURE_SCALE, 4)}
    return {"morphometric_features": list(FEATURE_NAMES), "genant_prior": prior}


def image_head(reasons: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(network entry, training entry): a second classifier on the CNN's pooled features alone, trained with its own
    CE, so that the encoder learns what the CT shows even where the measured heights already tell the grade."""
    reasons["network.image_head"] = (
        "A linear classifier on the CNN's pooled features alone, trained but never used to predict: the main "
        "classifier reads those features beside the measured ratios and the Genant prior, and with the prior at hand "
        "the encoder learned little from the image (the default's folds with their ratios blanked: macro-F1 0.21, "
        "fracture ROC-AUC 0.68, benchmarks/bench_image_path.py), so a wrong measurement carried the grade.")
    reasons["training.image_ce_weight"] = (
        f"{IMAGE_CE_WEIGHT:g} x the image-only head's CE (the main CE's class weights). Phantom benchmark, five folds, "
        f"two training seeds each, the seeds' probabilities averaged (documentation/benchmarks.md, twentieth "
        f"session): exact masks macro-F1 0.819 against 0.818 without it; masks each vertebra off its own way by up "
        f"to one / two voxels +0.020 / +0.014, eroded by two +0.026, centroids +0.030 (no paired interval excludes "
        f"0; no condition lost).")
    return {"image_head": True}, {"image_ce_weight": IMAGE_CE_WEIGHT}


def protection(epochs: int, iterations: int, reasons: dict[str, str]) -> dict[str, Any]:
    """Training entries: morphometry dropout, centroid input, weight averaging, collapse guard."""
    steps = max(1, epochs * iterations)
    decay = round(1.0 - 1.0 / max(2.0, AVERAGING_HORIZON_FRACTION * steps), 5)
    reasons["training.morphometry_dropout"] = (
        f"{MORPHOMETRY_DROPOUT:g} of the training samples are shown without their measured ratios, so the network "
        f"also grades when none can be measured (centroid input, a body cut by the field of view).")
    reasons["training.weight_averaging"] = (
        f"checkpoint_final holds an exponential moving average of the weights over the last "
        f"{1 - AVERAGING_START_FRACTION:.0%} of the {steps} steps (decay {decay}: a time constant of "
        f"{AVERAGING_HORIZON_FRACTION:.0%} of all steps); the last epoch's weights alone are a noisy draw (GPU "
        f"benchmark: last-epoch validation macro-F1 0.57-0.76 per fold against 0.80-0.89 at the best epoch).")
    reasons["training.collapse_check_fraction"] = (
        f"After {COLLAPSE_CHECK_FRACTION:.0%} of the epochs a fold that predicts one grade for all validation "
        f"vertebrae, or whose training CE has not fallen by {COLLAPSE_MIN_LOSS_DROP:.0%} while its validation grades "
        f"show no ordinal agreement, is restarted with a new seed, at most {COLLAPSE_RESTARTS} times (a demo fold "
        f"once stayed at grade 0 for all epochs; with the Genant prior a flat loss alone is normal).")
    reasons["training.centroid_input_probability"] = (
        f"{CENTROID_INPUT_PROBABILITY:.0%} of the training views are shown as vfnet_predict --centroids sees a "
        f"vertebra: the mask channel replaced by the level's typical-body ellipsoid around the crop centre moved by "
        f"N(0, {CENTROID_JITTER_MM:g} mm) per axis, no morphometry. Trained on masks only, the default cpu plan "
        f"fell from macro-F1 0.67 (masks) to 0.32 (centroids) on an independent phantom test. vfnet_predict now "
        f"estimates masks around centroids, yet the views stay: they also help with real masks (phantom "
        f"benchmark, folds 0-3, cpu plan: without them macro-F1 0.757 against 0.787, paired +0.030 [+0.007, "
        f"+0.062]), as a dropout of the mask channel and the measured ratios.")
    return {"morphometry_dropout": MORPHOMETRY_DROPOUT,
            "centroid_input_probability": CENTROID_INPUT_PROBABILITY, "centroid_jitter_mm": CENTROID_JITTER_MM,
            "weight_averaging": {"decay": decay, "start_fraction": AVERAGING_START_FRACTION},
            "collapse_check_fraction": COLLAPSE_CHECK_FRACTION, "collapse_min_loss_drop": COLLAPSE_MIN_LOSS_DROP,
            "collapse_restarts": COLLAPSE_RESTARTS}


def mask_errors(reasons: dict[str, str]) -> tuple[dict[str, Any], dict[str, float]]:
    """Augmentation entries (settings, probabilities) that imitate a segmentation model's mask errors."""
    reasons["training.augmentation"] += (
        f" The mask channel gets an erosion or dilation by 1 to {MASK_MORPHOLOGY_VOXELS} voxels (p "
        f"{MASK_ERROR_PROBABILITY:g}) and a shift of up to {MASK_SHIFT_VOXELS} voxel (p {MASK_ERROR_PROBABILITY:g}): "
        f"masks from TotalSegmentator or nnU-Net are a voxel or two off, and the network must not lean on the exact "
        f"outline.")
    return ({"mask_shift_voxels": MASK_SHIFT_VOXELS, "mask_morphology_voxels": MASK_MORPHOLOGY_VOXELS},
            {"mask_morphology": MASK_ERROR_PROBABILITY, "mask_shift": MASK_ERROR_PROBABILITY})


def mask_error_morphometry(reasons: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(preprocessing entry, training entry): the training ratios measured on degraded masks."""
    reasons["preprocessing.morphometry_mask_errors"] = (
        f"Each training vertebra is measured a second time on its mask degraded each of these ways "
        f"({', '.join(MORPHOMETRY_MASK_ERRORS)}: eroded or dilated by one or two voxels of the stored CT), and "
        f"{MASK_ERROR_MORPHOMETRY_PROBABILITY:.0%} of the training samples see one of those measurements instead of "
        f"the exact one (training.mask_error_morphometry_probability). Trained on exact ratios only, masks two "
        f"voxels off cost macro-F1 0.13-0.15 on the phantom benchmark (documentation/benchmarks.md).")
    return ({"morphometry_mask_errors": list(MORPHOMETRY_MASK_ERRORS)},
            {"mask_error_morphometry_probability": MASK_ERROR_MORPHOMETRY_PROBABILITY})

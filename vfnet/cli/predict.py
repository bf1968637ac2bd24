"""vfnet_predict: grade every vertebra of new CTs with the ensemble of a trained model's folds."""
import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from vfnet.cli.common import add_debug_flag, run_cli
from vfnet.devices import DEVICE_CHOICES, choose_device
from vfnet.errors import VfnetError
from vfnet.inference.vertebra_sources import LABEL_FORMATS
from vfnet.paths import (INFERENCE_INSTRUCTIONS_FILE, dataset_folder_name, inference_instructions_file, model_folder,
                         results_folder)

DEFAULT_TRAINER = "vfnetTrainer"
DEFAULT_PLANS = "vfnetPlans"
DEFAULT_FOLDS = ["0", "1", "2", "3", "4"]
DEFAULT_CHECKPOINT = "checkpoint_final"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vfnet_predict",
        description="Predict Genant grades for every vertebra of the CTs in a folder (or one CT file). CTs: "
                    "<case>_0000.nii.gz (nnU-Net naming), <case>_ct.nii.gz, any .nii/.nii.gz/.nrrd/.mha/.mhd file "
                    "or DICOM series folder. Vertebrae: masks (VerSe ids or TotalSegmentator output) or VerSe "
                    "centroid JSONs, by default looked for beside the CTs.")
    parser.add_argument("-i", dest="input", required=True, type=Path, help="input folder or a single CT file")
    parser.add_argument("-o", dest="output", required=True, type=Path, help="output folder")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("-d", dest="dataset", help="dataset id or name, e.g. 1 or Dataset001_Spine")
    model.add_argument("-m", dest="model_folder", type=Path,
                       help="a model folder <trainer>__<plans>/ with plans.json and fold_N/ (instead of -d)")
    parser.add_argument("-f", dest="folds", nargs="+", default=None,
                        help="folds to ensemble (default: 0 1 2 3 4, or those of the inference instructions; 'all' "
                             "for a model trained on all data)")
    parser.add_argument("-tr", dest="trainer", default=None,
                        help=f"trainer name (default {DEFAULT_TRAINER}; with -d and neither -tr nor -p, the "
                             f"configuration of inference_instructions.json where vfnet_find_best_configuration "
                             f"wrote one)")
    parser.add_argument("-p", dest="plans", default=None, help=f"plans name (default {DEFAULT_PLANS})")
    parser.add_argument("-chk", dest="checkpoint", default=None, choices=("checkpoint_final", "checkpoint_best"),
                        help="checkpoint of each fold to use (default checkpoint_final, or the instructions' one)")
    sources = parser.add_mutually_exclusive_group()
    sources.add_argument("--masks", type=Path, help="folder (or file, for one CT) of vertebra masks")
    sources.add_argument("--centroids", type=Path, help="folder (or file, for one CT) of VerSe centroid JSONs")
    parser.add_argument("--centroid_masks", choices=["estimate", "ellipsoid"], default="estimate",
                        help="centroid input: estimate each vertebra's mask from the CT around its centroid (bone "
                             "threshold; then graded as from a mask, default) or draw the ellipsoid of its level's "
                             "typical body (no morphometry)")
    parser.add_argument("--keep_masks", action="store_true",
                        help="grade on the given masks even where they hold far less or far more than the bone the CT "
                             "shows, or sit off it (by default such masks are snapped to the CT's bone, or moved "
                             "onto it, keeping their labels, with a note)")
    parser.add_argument("--label_format", choices=LABEL_FORMATS, default="auto",
                        help="mask label ids: verse, totalsegmentator_v2 (TotalSegmentator 2.x 'total'; "
                             "'totalsegmentator' means the same), totalsegmentator_v1 (1.x), or auto (default: "
                             "detected from the mask; an ambiguous mask stops and asks for this option)")
    parser.add_argument("--disable_tta", action="store_true", help="no left-right mirroring at test time")
    parser.add_argument("-device", default="auto", choices=DEVICE_CHOICES,
                        help="auto (default): a CUDA GPU, else Apple MPS, else the CPU; the choice is printed")
    parser.add_argument("--overwrite", action="store_true", help="recompute cases whose outputs already exist")
    parser.add_argument("--continue_on_error", action="store_true",
                        help="keep going when a case fails; failed cases are listed at the end and in "
                             "OUT/failures.csv, and the exit code is still 1")
    parser.add_argument("--no_pictures", action="store_true",
                        help="skip the picture of each case (pictures/<case>.png: sagittal and coronal views)")
    parser.add_argument("--saliency", action="store_true",
                        help="Grad-CAM map of each vertebra graded >= 1 (pictures/<case>_<level>_saliency.png)")
    add_debug_flag(parser)
    return parser


def model_folder_from_args(args: argparse.Namespace) -> Path:
    if args.model_folder is not None:
        folder = args.model_folder
    else:
        base = results_folder()
        folder = model_folder(dataset_folder_name(base, args.dataset), args.trainer or DEFAULT_TRAINER,
                              args.plans or DEFAULT_PLANS, base)
    _check_model_folder(folder)
    return folder


def _check_model_folder(folder: Path) -> None:
    if not (folder / "plans.json").is_file():
        raise VfnetError(f"Model folder {folder} has no plans.json: train the model first or check -d/-tr/-p/-m.")


def instructions_from_args(args: argparse.Namespace) -> dict[str, Any] | None:
    """inference_instructions.json of -d's dataset, used when neither -tr, -p nor -m names a model."""
    if args.dataset is None or args.trainer is not None or args.plans is not None:
        return None
    from vfnet.selection.instructions import read_instructions
    base = results_folder()
    dataset_name = dataset_folder_name(base, args.dataset)
    path = inference_instructions_file(base / dataset_name)
    return read_instructions(path, dataset_name) if path.is_file() else None


def model_choice(args: argparse.Namespace) -> dict[str, Any]:
    """PredictSettings' model fields: from the flags, or from the inference instructions (-f and -chk override)."""
    instructions = instructions_from_args(args)
    if instructions is None:
        return {"model_folder": model_folder_from_args(args), "folds": parse_folds(args.folds or DEFAULT_FOLDS),
                "checkpoint_name": args.checkpoint or DEFAULT_CHECKPOINT}
    from vfnet.selection.instructions import decisions, member_folders
    folders = member_folders(instructions, results_folder())
    for folder in folders:
        _check_model_folder(folder)
    choice = {"model_folder": folders[0], "ensemble_members": folders[1:],
              "folds": parse_folds(args.folds) if args.folds else list(instructions["folds"]),
              "checkpoint_name": args.checkpoint or instructions["checkpoint"], "decisions": decisions(instructions)}
    threshold = instructions.get("fracture_threshold")
    print(f"Using {INFERENCE_INSTRUCTIONS_FILE} of {instructions['dataset']} (written by "
          f"vfnet_find_best_configuration; -tr/-p override it): {instructions['configuration']}, folds "
          f"{' '.join(map(str, choice['folds']))}, {choice['checkpoint_name']}, calibration "
          f"{choice['decisions'].describe_calibration()}, fracture = "
          + (f"p_fracture >= {threshold['threshold']:.4f}." if threshold else "grade >= 1."))
    return choice


def parse_folds(values: list[str]) -> list[int | str]:
    folds: list[int | str] = []
    for value in values:
        if value == "all":
            folds.append("all")
        elif value.isdigit():
            folds.append(int(value))
        else:
            raise VfnetError(f"Fold '{value}' is neither a number nor 'all'.")
    return folds


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Imported here so `--help` stays fast and does not load torch.
    from vfnet.inference.case_extras import warning_lines
    from vfnet.inference.predictor import PredictSettings, run_prediction
    device, reason = choose_device(args.device)
    print(f"vfnet_predict: predicting on {device} ({reason}).", flush=True)
    settings = PredictSettings(**model_choice(args), mirror=not args.disable_tta, device=device,
                               label_format=args.label_format, masks=args.masks, centroids=args.centroids,
                               centroid_masks=args.centroid_masks, keep_masks=args.keep_masks,
                               overwrite=args.overwrite,
                               continue_on_error=args.continue_on_error,
                               pictures=not args.no_pictures, saliency=args.saliency)
    run = run_prediction(args.input, args.output, settings)
    total = len(run.records) + len(run.failures)
    failures = args.output / "failures.csv"
    if not run.records:
        raise VfnetError(f"nothing was predicted: all {total} case(s) failed (listed in {failures}); no "
                         f"predictions.csv was written.")
    print(f"{len(run.records)} case(s) predicted ({len(run.reused)} reused from an earlier run) -> "
          f"{args.output / 'predictions.csv'}")
    for line in warning_lines(run.records):
        print(line)
    if run.failures:
        print(f"vfnet_predict: {len(run.failures)} of {total} case(s) failed and are not in predictions.csv "
              f"(listed above and in {failures}): {', '.join(run.failures)}.", file=sys.stderr)
        return 1
    return 0


def entry() -> None:
    sys.exit(run_cli("vfnet_predict", main))


if __name__ == "__main__":
    entry()

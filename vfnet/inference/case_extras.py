"""What prediction adds for the person who reads it, beyond the grades: the model card (two lines on the console,
a copy in the output folder), a warning on each vertebra outside the training data, a picture of each case and,
on request, a saliency map of each vertebra graded >= 1. The predictor makes one `CaseExtras` per run and calls
`complete(record, ...)` once per case, so this logic stays out of its loop.
"""
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import SimpleITK as sitk

from vfnet.fileio import remove_stale_temporaries
from vfnet.inference import domain
from vfnet.model.card import load_card, write_card
from vfnet.model.card_text import data_kind, summary_lines
from vfnet.morphometry.genant import morphometry_inputs
from vfnet.planning.plans import load_plans, morphometric_features

PICTURES_FOLDER = "pictures"
NO_CARD = ("Model card: none in {folder} (trained before vfnet wrote cards): the training data are unknown and "
           "no vertebra is checked against them.")


class CaseExtras:
    def __init__(self, model_folder: Path, output_folder: Path, pictures: bool = True, saliency: bool = False):
        self.output_folder, self.pictures, self.saliency = Path(output_folder), pictures, saliency
        # Saliency explains the score that graded each vertebra: with the plan's morphometric inputs, if any.
        self.morphometric_features = morphometric_features(load_plans(Path(model_folder) / "plans.json"))
        self.card = load_card(model_folder)
        if self.card is None:
            print(NO_CARD.format(folder=model_folder))
        else:
            for line in summary_lines(self.card):
                print(line)
            write_card(self.output_folder, self.card)   # the predictions carry the description of their model
        if pictures or saliency:
            remove_stale_temporaries(self.output_folder / PICTURES_FOLDER)   # left by a run killed mid-write

    def complete(self, record: dict[str, Any], image: sitk.Image, mask: sitk.Image | None,
                 crops: dict[int, tuple[np.ndarray, dict[str, Any]]], models: Sequence[Any]) -> None:
        """Add `warning` to every row, write the case's picture and saliency maps, note their paths in `record`."""
        common = domain.case_warnings(self.card, image)
        own: dict[int, list[str]] = {}
        for row in record["vertebrae"]:
            label = int(row["vertebra"])
            own[label] = domain.vertebra_warnings(self.card, row["level"], domain.vertebra_median_hu(image, crops[label]))
            row["warning"] = "; ".join(common + own[label])
        if self.saliency:
            self._saliency(record, crops, models)
        if self.pictures:
            record["picture"] = f"{PICTURES_FOLDER}/{record['case']}.png"
            self._picture(record, image, mask, crops, common, own)

    def _picture(self, record: dict[str, Any], image: sitk.Image, mask: sitk.Image | None,
                 crops: dict[int, tuple[np.ndarray, dict[str, Any]]], common: list[str],
                 own: dict[int, list[str]]) -> None:
        from vfnet.inference.pictures import write_case_picture   # matplotlib only when pictures are drawn
        rows = record["vertebrae"]
        highest = record.get("highest_grade")
        title = (f"{record['case']}: {len(rows)} vertebrae, highest grade "
                 f"{'n/a' if highest is None else highest}" + (f" ({', '.join(record['fractured_levels'])})"
                                                               if record.get("fractured_levels") else ""))
        subtitles, alarm = [], False
        if self.card is not None:
            alarm = bool(self.card["training_data"].get("synthetic"))
            subtitles.append(f"Model {self.card['dataset']}/{self.card['model']}, trained on {data_kind(self.card)}"
                             + (": these grades mean nothing clinically" if alarm else ""))
        shown = [warning for warning in common if warning != domain.SYNTHETIC_WARNING]
        if shown:
            subtitles.append("Outside training, every vertebra: " + "; ".join(shown))
            alarm = True
        centres = {label: crop[1]["centre_mm"] for label, crop in crops.items()}
        write_case_picture(self.output_folder / record["picture"], image, mask, rows, centres, title, subtitles,
                           alarm, own)

    def _saliency(self, record: dict[str, Any], crops: dict[int, tuple[np.ndarray, dict[str, Any]]],
                  models: Sequence[Any]) -> None:
        from vfnet.inference.saliency import ensemble_grad_cam, explained_block, write_saliency_picture
        for row in record["vertebrae"]:
            if int(row["grade"]) < 1:
                continue
            array, properties = crops[int(row["vertebra"])]
            morphometry = morphometry_inputs([properties], self.morphometric_features)[0] \
                if self.morphometric_features else None
            cam = ensemble_grad_cam(models, array, morphometry)
            layer = explained_block(models[0], array.shape, morphometry)[0]
            note = (f"Grad-CAM of the fracture log-odds at {layer}, mean of {len(models)} fold(s); mid-sagittal "
                    f"slice of the crop, anterior left. Where the network looked, not proof of a fracture.")
            row["saliency"] = f"{PICTURES_FOLDER}/{record['case']}_{row['level']}_saliency.png"
            write_saliency_picture(self.output_folder / row["saliency"], array, cam, properties["spacing"],
                                   row, note)


def warning_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """The console summary: per case, the warnings all its vertebrae share, then each vertebra's own."""
    lines = []
    for record in records:
        rows = [row for row in record["vertebrae"] if row.get("warning")]
        if not rows:
            continue
        split = [row["warning"].split("; ") for row in record["vertebrae"]]
        shared = [item for item in split[0] if all(item in items for items in split)]
        if shared:
            lines.append(f"  {record['case']}, all {len(split)} vertebrae: {'; '.join(shared)}")
        for row, items in zip(record["vertebrae"], split):
            own = [item for item in items if item and item not in shared]
            if own:
                lines.append(f"  {record['case']} {row['level']}: {'; '.join(own)}")
    if lines:
        lines.insert(0, "Outside what the model was trained on (the 'warning' column of predictions.csv):")
    return lines

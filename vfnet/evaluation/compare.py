"""vfnet_evaluate's work: match a predictions CSV to reference grades, then write metrics.json and report.html."""
from pathlib import Path
from typing import Any

import numpy as np

from vfnet.errors import VfnetError
from vfnet.evaluation.report import summarise, write_classification_figures, write_report
from vfnet.evaluation.tables import read_predictions, read_reference
from vfnet.fileio import write_json

EXAMPLES = 3  # how many unmatched rows an error message names


def _examples(keys: list[tuple[str, int]]) -> str:
    shown = ", ".join(f"{case} vertebra {vertebra}" for case, vertebra in keys[:EXAMPLES])
    return shown + (f" and {len(keys) - EXAMPLES} more" if len(keys) > EXAMPLES else "")


def evaluate_predictions(reference_path: Path, predictions_path: Path, output: Path, n_bootstrap: int = 1000,
                         seed: int = 0) -> dict[str, Any]:
    """Compare predictions with the reference on the cases the predictions cover.

    Cases absent from the predictions are not evaluated (a dataset.json usually lists more cases than were
    predicted); a graded vertebra of a predicted case without a prediction is an error; predicted vertebrae
    without a reference grade (ungraded levels) are ignored and counted.
    """
    reference = read_reference(reference_path)
    predictions = read_predictions(predictions_path)
    predicted_cases = {case for case, _ in predictions.keys}
    row_of = {key: index for index, key in enumerate(predictions.keys)}
    expected = sorted(key for key in reference if key[0] in predicted_cases)
    if not expected:
        raise VfnetError(f"None of the cases in {predictions_path} has a reference grade in {reference_path}: "
                         f"check that the case ids match.")
    missing = [key for key in expected if key not in row_of]
    if missing:
        raise VfnetError(f"{predictions_path} has no prediction for {len(missing)} graded vertebra(e) of its cases "
                         f"in {reference_path}: {_examples(missing)}.")
    rows = [row_of[key] for key in expected]
    grades = np.array([reference[key][0] for key in expected])
    probabilities = predictions.probabilities[rows]
    patients = np.array([reference[key][1] for key in expected])
    summary = summarise(grades, probabilities, groups=patients, n_bootstrap=n_bootstrap, seed=seed)
    ungraded = len(predictions.keys) - len(rows)
    content = {"reference": str(reference_path), "predictions": str(predictions_path),
               "cases": len({case for case, _ in expected}), "ungraded_predictions_ignored": ungraded,
               "reference_cases_not_predicted": len({case for case, _ in reference} - predicted_cases), **summary}
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "metrics.json", content)
    figures = write_classification_figures(output, grades, probabilities, summary["metrics"])
    notes = [f"Predictions {predictions_path} against reference grades {reference_path}: "
             f"{len(rows)} vertebrae of {content['cases']} cases; {ungraded} predicted vertebrae without a "
             f"reference grade were ignored. Intervals resample patients."]
    write_report(output, "vfnet evaluation", summary, figures, notes)
    return content

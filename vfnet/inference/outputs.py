"""Prediction outputs: one `<case>.json` per case (the unit of work), then predictions.csv and patients.csv.

A case's JSON is written atomically when the case is done, so its presence means the case is complete. A rerun
reuses a case's JSON when it was made by the same model settings and recomputes only the missing ones; the two
CSVs are rebuilt from the JSONs of every case in the run, and only when at least one case was predicted (a
header-only table would read like success). Cases that failed are listed in failures.csv.
"""
import csv
import io
from pathlib import Path
from typing import Any

from vfnet.errors import VfnetError
from vfnet.fileio import read_json, write_json, write_text

PREDICTION_COLUMNS = ("case", "vertebra", "level", "grade", "p0", "p1", "p2", "p3", "p_fracture", "fold_spread",
                      "fracture", "entropy", "review", "anterior_mm", "middle_mm", "posterior_mm", "height_loss",
                      "morphometric_grade", "note", "warning")
PATIENT_COLUMNS = ("case", "patient", "vertebrae", "highest_grade", "fractured_levels", "unreliable_levels",
                   "max_p_fracture", "flagged_for_review")
CASE_FORMAT = "vfnet-prediction-1"
FAILURE_COLUMNS = ("case", "error")
CUT_NOTE = "cut by the field of view: grade unreliable"


def case_json_path(output_folder: Path, case_id: str) -> Path:
    return output_folder / f"{case_id}.json"


def field_of_view_note(fraction_in_view: float, touches_border: bool, min_fraction: float) -> str | None:
    """The cut note with the rule that fired, so it never contradicts the `fraction_in_view` printed beside it.

    `fraction_in_view` is the share of the level's typical body box (around the vertebra's centre) inside the
    scan; a mask that reaches the scan's first or last slice along the body axis is cut too, even when that box
    fits, because part of the vertebra (often its posterior elements or an endplate) lies beyond the scan.
    """
    reasons = []
    if fraction_in_view < min_fraction:
        reasons.append(f"only {fraction_in_view:.0%} of its typical body box is inside the scan, below "
                       f"{min_fraction:.0%}")
    if touches_border:
        reasons.append("its mask reaches the first or last slice of the scan along the body axis" +
                       (f" although its typical body box is {fraction_in_view:.0%} inside" if not reasons else ""))
    return f"{CUT_NOTE} ({'; '.join(reasons)})" if reasons else None


def make_case_record(case_id: str, source: dict[str, Any], settings: dict[str, Any],
                     rows: list[dict[str, Any]], not_predicted: list[dict[str, Any]] = ()) -> dict[str, Any]:
    reliable = [row for row in rows if not row["cut_by_field_of_view"]]
    return {"format": CASE_FORMAT, "case": case_id, "source": source, "settings": settings,
            "highest_grade": max((row["grade"] for row in reliable), default=None),
            "fractured_levels": [row["level"] for row in reliable if row["grade"] >= 1],
            "unreliable_levels": [row["level"] for row in rows if row["cut_by_field_of_view"]],
            "not_predicted": list(not_predicted), "vertebrae": rows}


def case_remarks(record: dict[str, Any]) -> list[str]:
    """Console lines beside a case's result: how its mask was read, and every mask label not graded, with why."""
    lines = [f"note: {note}" for note in record["source"].get("notes", [])]
    skipped = record.get("not_predicted", [])
    other = [entry for entry in skipped if entry["reason"] == "not a vertebra"]
    listed = [f"{entry['structure']} ({entry['reason']})" for entry in skipped if entry["reason"] != "not a vertebra"]
    if other:
        listed.append(f"{len(other)} other label(s) (not vertebrae: ids "
                      f"{', '.join(str(entry['label']) for entry in other[:8])}{', ...' if len(other) > 8 else ''})")
    if listed:
        lines.append("not predicted: " + "; ".join(listed))
    return lines


def write_case_record(output_folder: Path, record: dict[str, Any]) -> None:
    write_json(case_json_path(output_folder, record["case"]), record)


def load_complete_case(output_folder: Path, case_id: str, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The case's earlier result if it is complete and was made with the same settings, else None."""
    path = case_json_path(output_folder, case_id)
    if not path.is_file():
        return None
    try:
        record = read_json(path, "prediction file")
    except VfnetError:
        return None  # unreadable: recompute and overwrite it
    if (not isinstance(record, dict) or record.get("format") != CASE_FORMAT or record.get("case") != case_id
            or record.get("settings") != settings or not isinstance(record.get("vertebrae"), list)):
        return None
    return record


def write_run_outputs(output_folder: Path, records: list[dict[str, Any]], failures: dict[str, str]) -> None:
    """The tables when something was predicted; failures.csv when something failed (a stale one is removed)."""
    if records:
        write_tables(output_folder, records)
    failures_path = Path(output_folder) / "failures.csv"
    if failures:
        write_text(failures_path, _csv_text(FAILURE_COLUMNS, [{"case": case, "error": error}
                                                              for case, error in failures.items()]))
    elif failures_path.exists():
        failures_path.unlink()


def write_tables(output_folder: Path, records: list[dict[str, Any]]) -> None:
    """predictions.csv (one row per vertebra) and patients.csv (one row per case)."""
    vertebra_rows = [row for record in records for row in record["vertebrae"]]
    write_text(output_folder / "predictions.csv", _csv_text(PREDICTION_COLUMNS, vertebra_rows))
    write_text(output_folder / "patients.csv", _csv_text(PATIENT_COLUMNS, [_patient_row(r) for r in records]))


def _patient_row(record: dict[str, Any]) -> dict[str, Any]:
    p_fracture = [row["p_fracture"] for row in record["vertebrae"] if not row["cut_by_field_of_view"]]
    return {"case": record["case"], "patient": record["case"], "vertebrae": len(record["vertebrae"]),
            "highest_grade": record["highest_grade"], "fractured_levels": " ".join(record["fractured_levels"]),
            "unreliable_levels": " ".join(record["unreliable_levels"]),
            "max_p_fracture": max(p_fracture, default=None), "flagged_for_review": _flagged(record["vertebrae"])}


def _flagged(rows: list[dict[str, Any]]) -> int | None:
    """How many vertebrae have review = true; None (an empty cell) where review was not assessed."""
    assessed = [row["review"] for row in rows if row.get("review") is not None]
    return sum(assessed) if assessed else None


def _csv_text(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(row.get(key)) for key in columns})
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return value

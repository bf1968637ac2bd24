"""Which vertebra levels a trained model has seen: the graded vertebrae of its folder's dataset.json copy.

A level the model never saw in training (a cervical vertebra for a thoraco-lumbar model) would be graded from
a shape it does not know; it is listed as not predicted instead. Model folders without dataset.json (written
by hand or before vfnet_train copied it) grade every level.
"""
from pathlib import Path

from vfnet.dataset.format import parse_dataset
from vfnet.labels import level_name


def trained_levels(model_folder: Path) -> set[int] | None:
    if not (Path(model_folder) / "dataset.json").is_file():
        return None
    dataset, _ = parse_dataset(model_folder)   # only the grades are used; file problems do not matter here
    levels = {label for case in dataset.cases for label in case.grades} if dataset is not None else set()
    return levels or None


def describe_levels(levels: set[int]) -> str:
    """'T4-L5' style, in spine order (VerSe ids grow caudally, T13 = 28 sits between T12 and L1)."""
    order = sorted(levels, key=lambda label: 19.5 if label == 28 else label)
    return level_name(order[0]) if len(order) == 1 else f"{level_name(order[0])}-{level_name(order[-1])}"
